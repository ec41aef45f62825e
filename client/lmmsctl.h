/*
 * lmmsctl.h - what the units of lmmsctl share: exit statuses, the
 * connection and call helpers (lmmsctl.c), msgpack <-> JSON (mpjson.c),
 * size and duration formatting (fmt.c), tables (table.c), and the two
 * long-running commands, top (top.c) and monitor (monitor.c).
 */
#ifndef LMMSCTL_H
#define LMMSCTL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <lmms/lmms-client.h>
#include <msgpack.h>

/* DESIGN.md §6 */
enum {
	EXIT_OK = 0,
	EXIT_DAEMON_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_CONNECT = 3,
	EXIT_TIMEOUT = 4,
};

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

typedef struct ctl {
	const char *socket; /* -s, or NULL: the default rule */
	char socket_buf[128]; /* the socket in use when the default rule chose it */
	bool json;
	bool quiet; /* top: errors go to last_error only, not to the terminal */
	char last_error[1024]; /* the last error reported, for top's status line */
	uint32_t timeout_ms;
	lmms_client *client;
} ctl;

/* A decoded reply: the msgpack result object of one call. */
typedef struct result {
	lmms_reply reply; /* the unpacked strings point into reply.result */
	msgpack_unpacked up;
	const msgpack_object *obj;
} result;

/* Set by SIGINT/SIGTERM in top and monitor. */
extern volatile sig_atomic_t ctl_interrupted;

/* Connect (once); an exit status. */
int ctl_connect(ctl *c);
/* Forget the connection (top reconnects after the daemon restarts). */
void ctl_disconnect(ctl *c);
/* Call method with packed params (NULL: []); an exit status, and on
 * EXIT_OK res holds the result (release with result_clear). */
int ctl_call(ctl *c, const char *method, const msgpack_sbuffer *params, result *res);
void result_clear(result *res);
/* An exit status for a negative errno of liblmms-client. */
int ctl_exit_for(int err);
/* Print "lmmsctl: MESSAGE (see lmmsctl --help)" on stderr; EXIT_USAGE. */
__attribute__((format(printf, 1, 2))) int usage_error(const char *fmt, ...);
/* Install the handler that sets ctl_interrupted (no SA_RESTART). */
void ctl_catch_interrupts(void);

/* ---- msgpack <-> JSON (mpjson.c) ---- */
json_t *mp_to_json(const msgpack_object *o, int depth);
/* Pack a JSON value; {"$bin": base64} becomes a msgpack bin. -EINVAL on bad
 * base64, -E2BIG when nested too deep, -ENOMEM. */
int json_to_mp(msgpack_packer *pk, json_t *j, int depth);
/* Print o as indented JSON on stdout; 0 or a negative errno. */
int json_print(const msgpack_object *o);
/* ... with jansson's flags (JSON_COMPACT: one line). */
int json_print_flags(const msgpack_object *o, size_t flags);

/* ---- msgpack look-ups ---- */
const msgpack_object *map_get(const msgpack_object *map, const char *key);
const msgpack_object *map_get_n(const msgpack_object *map, const char *key, size_t n);
bool mp_number(const msgpack_object *o, double *out);
/* The string at key, or NULL (when absent, not a string, or empty). */
bool map_str(const msgpack_object *map, const char *key, const char **s, size_t *n);
double map_num(const msgpack_object *map, const char *key, double fallback);

/* ---- formatting (fmt.c): the one copy of sizes and durations ---- */
#define FMT_MAX 48
/* 512 B, 1.4 MiB, 2.0 GiB */
const char *fmt_bytes(double bytes, char buf[FMT_MAX]);
/* 850ms, 3.2s, 4.0m, 1.5h, 2.0d */
const char *fmt_ms(double ms, char buf[FMT_MAX]);
/* 12µs, 850µs, 1.2ms, then as fmt_ms */
const char *fmt_us(double us, char buf[FMT_MAX]);
/* 0, 0.4, 12, 1.2k, 3.4M (per-second rates) */
const char *fmt_rate(double per_s, char buf[FMT_MAX]);
/* 1h02m, 3d04h: an uptime */
const char *fmt_uptime(double seconds, char buf[FMT_MAX]);

/* ---- tables (table.c) ---- */
typedef enum cell_fmt {
	CELL_PLAIN, /* numbers and strings as they are, other values as JSON */
	CELL_BOOL, /* yes/no */
	CELL_BYTES,
	CELL_MS,
	CELL_US,
} cell_fmt;

typedef struct column {
	const char *header;
	const char *key; /* entry key the cell shows */
	cell_fmt f;
	int flags; /* SCOLS_FL_* */
	/* Computed cell (malloc'd), or NULL to format the key's value. */
	char *(*cell)(const msgpack_object *entry);
} column;

/* A cell's text (malloc'd; "-" when the key is absent). */
char *cell_text(const msgpack_object *entry, const column *col);
/* Render an array of maps as a table, one row per map, into *out (malloc'd).
 * width > 0 fits it to that many columns (truncating SCOLS_FL_TRUNC ones). */
int table_render(const msgpack_object *arr, const column *cols, size_t ncols, size_t width,
		 char **out);
/* Print an array of maps as a table; an exit status. */
int table_print(const msgpack_object *arr, const column *cols, size_t ncols);
/* Print an array of maps as libsmartcols JSON {"name": [{...}, ...]}, one
 * member per key of the entries (typed), whether or not a column shows it. */
int table_print_json(const char *name, const msgpack_object *arr);
/* Print a map as a KEY VALUE table (sizes and durations by key suffix). */
int table_print_kv(const msgpack_object *map);

/* Computed cells, "-" where a figure does not apply. */
/* The WHY of a lmms.modules entry: its "why", else derived (malloc'd). */
char *module_why(const msgpack_object *entry);
/* idle_ms, "-" for a module that never ran */
char *cell_module_idle(const msgpack_object *entry);
/* avg_us / p99_us, "-" for an op never called */
char *cell_op_avg(const msgpack_object *entry);
char *cell_op_p99(const msgpack_object *entry);
/* cache_ttl_ms, "-" for an op that is not cached */
char *cell_op_ttl(const msgpack_object *entry);

/* ---- long-running commands ---- */
typedef struct top_opts {
	bool once; /* one frame on stdout, no terminal control */
	uint32_t interval_ms;
	uint32_t count; /* frames to show; 0 = until q */
} top_opts;
int cmd_top_run(ctl *c, const top_opts *o);

typedef struct monitor_opts {
	uint32_t count; /* events to show; 0 = until interrupted */
} monitor_opts;
int cmd_monitor_run(ctl *c, const monitor_opts *o);

#endif
