/*
 * lmmsctl.c - command-line control and inspection tool for lmmsd.
 *
 * A thin layer over liblmms-client: it turns command-line words into calls
 * of the built-in "lmms" interface (or any method, for "call"), and results
 * into tables (table.c), JSON (mpjson.c) or live views (top.c, monitor.c).
 *
 * Exit status (DESIGN.md §6): 0 ok, 1 the daemon answered an error (printed
 * as "code: message" on stderr), 2 usage, 3 cannot connect (or the
 * connection broke), 4 no answer within --timeout.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <libsmartcols.h>
#include <limits.h>
#include <locale.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmms-build-config.h"
#include "lmmsctl.h"

volatile sig_atomic_t ctl_interrupted;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: lmmsctl [-s PATH] [--json] [--timeout MS] COMMAND [ARGS]\n"
		"\n"
		"Commands:\n"
		"  ping                      check that the daemon answers\n"
		"  call METHOD [ARG...]      call any method; each ARG is a JSON value\n"
		"                            (quote strings: '\"abc\"'; {\"$bin\": \"<base64>\"} is\n"
		"                            binary; - reads the next value from stdin)\n"
		"  modules                   modules, their state and why\n"
		"  ops                       operations: calls, heat, latency, TTL, doc\n"
		"  stats [--prometheus [--output FILE]]\n"
		"                            daemon counters; --prometheus prints lmms.metrics,\n"
		"                            --output writes it atomically (textfile collector)\n"
		"  config                    the configuration in effect\n"
		"  load NAME                 load a module now (admin)\n"
		"  unload NAME [--now]       unload a module; --now skips the grace period (admin)\n"
		"  invalidate [WHAT]         drop cached results: all, a module or a method (admin)\n"
		"  reload                    re-read the configuration (admin)\n"
		"  trim                      shed idle modules and cache now (admin)\n"
		"  top [--once] [--interval MS] [-n COUNT]\n"
		"                            live view: rates, modules, ops (q quits)\n"
		"  monitor [-n COUNT]        stream every call the daemon finishes (admin)\n"
		"\n"
		"Options:\n"
		"  -s, --socket PATH         daemon socket (default: $LMMS_SOCKET, else your own\n"
		"                            $XDG_RUNTIME_DIR/lmms/lmmsd.sock, /run/lmms/lmmsd.sock\n"
		"                            for root, then the system /run/lmms/lmmsd.sock)\n"
		"  -j, --json                print JSON (tables as libsmartcols JSON)\n"
		"  -t, --timeout MS          per-call timeout in milliseconds (0: none; default 30000)\n"
		"  -h, --help                show this help\n"
		"  -V, --version             show the version\n"
		"\n"
		"Exit status: 0 ok, 1 the daemon answered an error, 2 usage, 3 cannot connect,\n"
		"4 timed out. See lmmsctl(1).\n");
}

int usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "lmmsctl: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, " (see lmmsctl --help)\n");
	va_end(ap);
	return EXIT_USAGE;
}

__attribute__((format(printf, 2, 3))) static void ctl_report(ctl *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->last_error, sizeof(c->last_error), fmt, ap);
	va_end(ap);
	if (!c->quiet)
		fprintf(stderr, "%s\n", c->last_error);
}

static void on_interrupt(int sig)
{
	(void)sig;
	ctl_interrupted = 1;
}

void ctl_catch_interrupts(void)
{
	struct sigaction sa = { .sa_handler = on_interrupt };

	/* No SA_RESTART: a wait must end on ^C so we exit cleanly. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/* ---- calls ---- */

int ctl_exit_for(int err)
{
	return err == -ETIMEDOUT ? EXIT_TIMEOUT : EXIT_CONNECT;
}

void result_clear(result *res)
{
	if (res->obj) {
		msgpack_unpacked_destroy(&res->up);
		lmms_reply_clear(&res->reply);
	}
	res->obj = NULL;
}

static const char *connect_hint(int err)
{
	switch (err) {
	case -EACCES:
	case -EPERM:
		return "hint: the system socket admits root and members of group lmms: "
		       "sudo usermod -aG lmms $USER, then log in again";
	case -ENOENT:
	case -ECONNREFUSED:
	case -ENOTDIR:
		return "hint: is lmmsd running? (systemctl start lmmsd.socket, or "
		       "lmmsd --socket PATH and lmmsctl -s PATH)";
	default:
		return NULL;
	}
}

int ctl_connect(ctl *c)
{
	char first[sizeof(c->socket_buf)] = "";
	const char *hint;
	int r;

	if (c->client)
		return EXIT_OK;
	if (c->socket) {
		r = lmms_client_connect(c->socket, &c->client);
	} else {
		lmms_client_default_socket(first, sizeof(first));
		r = lmms_client_connect_default(&c->client, c->socket_buf, sizeof(c->socket_buf));
	}
	if (r < 0) {
		const char *path = c->socket ? c->socket : c->socket_buf;

		hint = connect_hint(r);
		if (!c->socket && strcmp(first, c->socket_buf) != 0)
			ctl_report(c, "lmmsctl: cannot connect to %s: %s (nothing at %s either)%s%s",
				   path, lmms_client_strerror(r), first, hint ? "\n" : "",
				   hint ? hint : "");
		else
			ctl_report(c, "lmmsctl: cannot connect to %s: %s%s%s", path,
				   lmms_client_strerror(r), hint ? "\n" : "", hint ? hint : "");
		return EXIT_CONNECT;
	}
	if (!c->socket)
		c->socket = c->socket_buf;
	lmms_client_set_timeout(c->client, c->timeout_ms);
	return EXIT_OK;
}

void ctl_disconnect(ctl *c)
{
	lmms_client_close(c->client);
	c->client = NULL;
}

int ctl_call(ctl *c, const char *method, const msgpack_sbuffer *params, result *res)
{
	lmms_reply *reply = &res->reply;
	size_t off = 0;
	int r;

	res->obj = NULL;
	r = ctl_connect(c);
	if (r != EXIT_OK)
		return r;

	r = lmms_client_call(c->client, method, params ? params->data : NULL,
			     params ? params->size : 0, reply);
	if (r < 0) {
		ctl_report(c, "lmmsctl: %s: %s", method, lmms_client_strerror(r));
		return ctl_exit_for(r);
	}
	if (reply->error_code) {
		ctl_report(c, "%s: %s", reply->error_code, reply->error_message);
		lmms_reply_clear(reply);
		return EXIT_DAEMON_ERROR;
	}

	msgpack_unpacked_init(&res->up);
	if (msgpack_unpack_next(&res->up, reply->result, reply->result_len, &off) !=
	    MSGPACK_UNPACK_SUCCESS) {
		msgpack_unpacked_destroy(&res->up);
		lmms_reply_clear(reply);
		ctl_report(c, "lmmsctl: %s: undecodable result", method);
		return EXIT_CONNECT;
	}
	res->obj = &res->up.data;
	return EXIT_OK;
}

/* Call method with string params, and a final true when extra_true. */
static int ctl_call_strs(ctl *c, const char *method, char *const *args, size_t n,
			 bool extra_true, result *res)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int r = EXIT_DAEMON_ERROR;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (msgpack_pack_array(&pk, n + (extra_true ? 1 : 0)) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(args[i]);

		if (msgpack_pack_str(&pk, len) < 0 || msgpack_pack_str_body(&pk, args[i], len) < 0)
			goto out;
	}
	if (extra_true && msgpack_pack_true(&pk) < 0)
		goto out;
	r = ctl_call(c, method, &sb, res);
out:
	msgpack_sbuffer_destroy(&sb);
	return r;
}

/* ---- columns ---- */

static const column module_columns[] = {
	{ "NAME", "name", CELL_PLAIN, 0, NULL },
	{ "STATE", "state", CELL_PLAIN, 0, NULL },
	{ "POLICY", "policy", CELL_PLAIN, 0, NULL },
	{ "PROT", "protected", CELL_BOOL, 0, NULL },
	{ "REFS", "refs", CELL_PLAIN, SCOLS_FL_RIGHT, NULL },
	{ "IDLE", "idle_ms", CELL_MS, SCOLS_FL_RIGHT, cell_module_idle },
	{ "CACHE", "cache_deps", CELL_PLAIN, SCOLS_FL_RIGHT, NULL },
	{ "RESIDENT", "resident_bytes", CELL_BYTES, SCOLS_FL_RIGHT, NULL },
	{ "LOADS", "loads", CELL_PLAIN, SCOLS_FL_RIGHT, NULL },
	{ "UNLOADS", "unloads", CELL_PLAIN, SCOLS_FL_RIGHT, NULL },
	{ "WHY", "why", CELL_PLAIN, SCOLS_FL_TRUNC, module_why },
};

static const column op_columns[] = {
	{ "METHOD", "method", CELL_PLAIN, 0, NULL },
	{ "CALLS", "calls", CELL_PLAIN, SCOLS_FL_RIGHT, NULL },
	{ "HEAT", "heat", CELL_PLAIN, 0, NULL },
	{ "FAST", "fast_path", CELL_BOOL, 0, NULL },
	{ "AVG", "avg_us", CELL_US, SCOLS_FL_RIGHT, cell_op_avg },
	{ "P99", "p99_us", CELL_US, SCOLS_FL_RIGHT, cell_op_p99 },
	{ "TTL", "cache_ttl_ms", CELL_MS, SCOLS_FL_RIGHT, cell_op_ttl },
	{ "BLOCKING", "blocking", CELL_BOOL, 0, NULL },
	{ "DOC", "doc", CELL_PLAIN, SCOLS_FL_TRUNC, NULL },
};

/* ---- commands ---- */

typedef struct cmd_args {
	int argc;
	char **argv; /* positional words after the command name */
	bool now;
	bool prometheus;
	bool once;
	const char *output;
	uint32_t count; /* top/monitor -n; 0 = forever */
	uint32_t interval_ms;
} cmd_args;

static int print_json_or(ctl *c, const msgpack_object *o, int (*human)(const msgpack_object *))
{
	if (c->json || !human)
		return json_print(o) < 0 ? EXIT_DAEMON_ERROR : EXIT_OK;
	return human(o);
}

static int cmd_ping(ctl *c, cmd_args *a)
{
	result res;
	int r;

	if (a->argc != 0)
		return usage_error("ping takes no arguments");
	r = ctl_call(c, "lmms.ping", NULL, &res);
	if (r != EXIT_OK)
		return r;
	if (!c->json && res.obj->type == MSGPACK_OBJECT_STR)
		printf("%.*s\n", (int)res.obj->via.str.size, res.obj->via.str.ptr);
	else
		r = print_json_or(c, res.obj, NULL);
	result_clear(&res);
	return r;
}

/* An ARG of "call": a JSON value, or "-" for the next JSON value on stdin. */
static json_t *call_arg(int i, const char *word)
{
	json_error_t jerr;
	json_t *j;

	if (strcmp(word, "-") == 0) {
		/* One value per "-": stop right after it, so that several "-"
		 * read several values from the same stream. */
		j = json_loadf(stdin, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DISABLE_EOF_CHECK,
			       &jerr);
		if (!j)
			fprintf(stderr, "lmmsctl: argument %d (-): stdin holds no JSON value: %s\n",
				i, jerr.text);
		return j;
	}
	j = json_loads(word, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!j)
		fprintf(stderr,
			"lmmsctl: argument %d is not a JSON value: %s: %s\n"
			"hint: quote strings, e.g. '\"%s\"'\n",
			i, word, jerr.text, word);
	return j;
}

static int cmd_call(ctl *c, cmd_args *a)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	result res;
	int r = EXIT_USAGE;

	if (a->argc < 1)
		return usage_error("call needs a METHOD");

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, (size_t)a->argc - 1);
	for (int i = 1; i < a->argc; i++) {
		json_t *j = call_arg(i, a->argv[i]);
		int pr;

		if (!j)
			goto out;
		pr = json_to_mp(&pk, j, 0);
		json_decref(j);
		if (pr < 0) {
			fprintf(stderr, "lmmsctl: argument %d: %s\n", i,
				pr == -EINVAL ? "bad {\"$bin\": ...} base64" : "cannot encode");
			goto out;
		}
	}

	r = ctl_call(c, a->argv[0], &sb, &res);
	if (r == EXIT_OK) {
		if (json_print(res.obj) < 0)
			r = EXIT_DAEMON_ERROR;
		result_clear(&res);
	}
out:
	msgpack_sbuffer_destroy(&sb);
	return r;
}

static int cmd_table(ctl *c, cmd_args *a, const char *method, const char *name,
		     const column *cols, size_t ncols)
{
	result res;
	int r;

	if (a->argc != 0)
		return usage_error("%s takes no arguments", name);
	r = ctl_call(c, method, NULL, &res);
	if (r != EXIT_OK)
		return r;
	if (c->json)
		r = table_print_json(name, res.obj);
	else
		r = table_print(res.obj, cols, ncols);
	result_clear(&res);
	return r;
}

static int cmd_modules(ctl *c, cmd_args *a)
{
	return cmd_table(c, a, "lmms.modules", "modules", module_columns, N_ELEMS(module_columns));
}

static int cmd_ops(ctl *c, cmd_args *a)
{
	return cmd_table(c, a, "lmms.ops", "ops", op_columns, N_ELEMS(op_columns));
}

/* Write text to path as the textfile collector wants it: never a half-written
 * file under the final name (temporary file, fsync, rename, fsync the dir). */
static int write_atomic(const char *path, const char *text, size_t n)
{
	char *tmp = NULL, *dir_copy = NULL;
	int fd = -1, dfd, r = 0;
	mode_t mask;
	size_t off = 0;

	if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0)
		return -ENOMEM;
	fd = mkstemp(tmp);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	/* mkstemp makes 0600; the collector runs as another user. */
	mask = umask(0);
	umask(mask);
	if (fchmod(fd, 0666 & ~mask) < 0)
		goto fail;
	while (off < n) {
		ssize_t w = write(fd, text + off, n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			goto fail;
		off += (size_t)w;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto fail;
	dir_copy = strdup(path);
	if (dir_copy) {
		dfd = open(dirname(dir_copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd); /* best effort: the data itself is safe */
			close(dfd);
		}
	}
	goto out;

fail:
	r = -errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
out:
	free(dir_copy);
	free(tmp);
	return r;
}

static int cmd_stats(ctl *c, cmd_args *a)
{
	result res;
	int r;

	if (a->argc != 0)
		return usage_error("stats takes no arguments");
	if (c->json && a->prometheus)
		return usage_error("--json and --prometheus exclude each other");
	if (a->output && !a->prometheus)
		return usage_error("--output goes with --prometheus");
	if (!a->prometheus) {
		r = ctl_call(c, "lmms.stats", NULL, &res);
		if (r != EXIT_OK)
			return r;
		r = print_json_or(c, res.obj, table_print_kv);
		result_clear(&res);
		return r;
	}

	/* The daemon renders the exposition (HELP, TYPE, labels): print it. */
	r = ctl_call(c, "lmms.metrics", NULL, &res);
	if (r != EXIT_OK)
		return r;
	if (res.obj->type != MSGPACK_OBJECT_STR) {
		fprintf(stderr, "lmmsctl: lmms.metrics answered something else than text\n");
		r = EXIT_DAEMON_ERROR;
	} else if (a->output) {
		int w = write_atomic(a->output, res.obj->via.str.ptr, res.obj->via.str.size);

		if (w < 0) {
			fprintf(stderr, "lmmsctl: cannot write %s: %s\n", a->output, strerror(-w));
			r = EXIT_DAEMON_ERROR;
		}
	} else {
		fwrite(res.obj->via.str.ptr, 1, res.obj->via.str.size, stdout);
	}
	result_clear(&res);
	return r;
}

static int cmd_config(ctl *c, cmd_args *a)
{
	result res;
	int r;

	if (a->argc != 0)
		return usage_error("config takes no arguments");
	r = ctl_call(c, "lmms.config", NULL, &res);
	if (r != EXIT_OK)
		return r;
	r = print_json_or(c, res.obj, table_print_kv);
	result_clear(&res);
	return r;
}

static int cmd_load(ctl *c, cmd_args *a)
{
	result res;
	int r;

	if (a->argc != 1)
		return usage_error("load takes one module NAME");
	r = ctl_call_strs(c, "lmms.load", a->argv, 1, false, &res);
	if (r != EXIT_OK)
		return r;
	if (c->json || res.obj->type != MSGPACK_OBJECT_MAP) {
		r = json_print(res.obj) < 0 ? EXIT_DAEMON_ERROR : EXIT_OK;
	} else {
		/* One module map: show it as a one-row modules table. */
		msgpack_object arr = { .type = MSGPACK_OBJECT_ARRAY };

		arr.via.array.size = 1;
		arr.via.array.ptr = (msgpack_object *)res.obj;
		r = table_print(&arr, module_columns, N_ELEMS(module_columns));
	}
	result_clear(&res);
	return r;
}

static int cmd_unload(ctl *c, cmd_args *a)
{
	result res;
	int r;

	if (a->argc != 1)
		return usage_error("unload takes one module NAME");
	r = ctl_call_strs(c, "lmms.unload", a->argv, 1, a->now, &res);
	if (r != EXIT_OK)
		return r;
	if (c->json)
		r = print_json_or(c, res.obj, NULL);
	else
		printf("unloaded %s\n", a->argv[0]);
	result_clear(&res);
	return r;
}

static int cmd_invalidate(ctl *c, cmd_args *a)
{
	result res;
	int r;

	if (a->argc > 1)
		return usage_error("invalidate takes at most one argument");
	r = ctl_call_strs(c, "lmms.invalidate", a->argv, (size_t)a->argc, false, &res);
	if (r != EXIT_OK)
		return r;
	r = print_json_or(c, res.obj, NULL); /* a number: the same in both modes */
	result_clear(&res);
	return r;
}

static int cmd_reload(ctl *c, cmd_args *a)
{
	result res;
	int r;

	if (a->argc != 0)
		return usage_error("reload takes no arguments");
	r = ctl_call(c, "lmms.reload", NULL, &res);
	if (r != EXIT_OK)
		return r;
	if (c->json)
		r = print_json_or(c, res.obj, NULL);
	else
		printf("configuration reloaded\n");
	result_clear(&res);
	return r;
}

static int print_trim(const msgpack_object *o)
{
	char dropped[FMT_MAX], before[FMT_MAX], after[FMT_MAX];

	if (o->type != MSGPACK_OBJECT_MAP)
		return json_print(o) < 0 ? EXIT_DAEMON_ERROR : EXIT_OK;
	printf("unloaded %.0f modules, dropped %s of cache, RSS %s -> %s\n",
	       map_num(o, "modules_unloaded", 0),
	       fmt_bytes(map_num(o, "cache_bytes_dropped", 0), dropped),
	       fmt_bytes(map_num(o, "rss_before", 0), before),
	       fmt_bytes(map_num(o, "rss_after", 0), after));
	return EXIT_OK;
}

static int cmd_trim(ctl *c, cmd_args *a)
{
	result res;
	int r;

	if (a->argc != 0)
		return usage_error("trim takes no arguments");
	r = ctl_call(c, "lmms.trim", NULL, &res);
	if (r != EXIT_OK)
		return r;
	r = print_json_or(c, res.obj, print_trim);
	result_clear(&res);
	return r;
}

static int cmd_top(ctl *c, cmd_args *a)
{
	top_opts o = { .once = a->once, .interval_ms = a->interval_ms, .count = a->count };

	if (a->argc != 0)
		return usage_error("top takes no arguments");
	if (c->json)
		return usage_error("top has no --json (use modules, ops and stats --json)");
	return cmd_top_run(c, &o);
}

static int cmd_monitor(ctl *c, cmd_args *a)
{
	monitor_opts o = { .count = a->count };

	if (a->argc != 0)
		return usage_error("monitor takes no arguments");
	return cmd_monitor_run(c, &o);
}

typedef struct command {
	const char *name;
	int (*fn)(ctl *c, cmd_args *a);
	/* sub-options it accepts: n(ow) p(rometheus) o(utput) c(ount)
	 * O(nce) i(nterval) */
	const char *flags;
} command;

static const command commands[] = {
	{ "ping", cmd_ping, "" },
	{ "call", cmd_call, "" },
	{ "modules", cmd_modules, "" },
	{ "ops", cmd_ops, "" },
	{ "stats", cmd_stats, "po" },
	{ "config", cmd_config, "" },
	{ "load", cmd_load, "" },
	{ "unload", cmd_unload, "n" },
	{ "invalidate", cmd_invalidate, "" },
	{ "reload", cmd_reload, "" },
	{ "trim", cmd_trim, "" },
	{ "top", cmd_top, "cOi" },
	{ "monitor", cmd_monitor, "c" },
};

static int parse_u32(const char *s, uint32_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* The value of an option that takes one: "--opt VALUE" or "--opt=VALUE". */
static const char *opt_value(const char *name, int argc, char **argv, int *i)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (*i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

static bool opt_is(const char *w, const char *name)
{
	size_t n = strlen(name);

	return strncmp(w, name, n) == 0 && (w[n] == '\0' || w[n] == '=');
}

/*
 * Split the words after the command into options and positional args.
 * Global --json is accepted here too ("lmmsctl stats --json"). For "call"
 * every word after METHOD is a JSON value, except exactly "--json", which
 * is not valid JSON anyway.
 */
static int cmd_args_parse(ctl *c, const command *cmd, int argc, char **argv, cmd_args *a)
{
	bool is_call = strcmp(cmd->name, "call") == 0;
	bool only_pos = false;
	const char *v;

	a->argc = 0;
	for (int i = 0; i < argc; i++) {
		const char *w = argv[i];

		if (!only_pos && (strcmp(w, "--json") == 0 || strcmp(w, "-j") == 0)) {
			c->json = true;
		} else if (is_call || only_pos || w[0] != '-' || !w[1]) {
			a->argv[a->argc++] = argv[i];
		} else if (strcmp(w, "--") == 0) {
			only_pos = true;
		} else if (strchr(cmd->flags, 'n') && strcmp(w, "--now") == 0) {
			a->now = true;
		} else if (strchr(cmd->flags, 'p') && strcmp(w, "--prometheus") == 0) {
			a->prometheus = true;
		} else if (strchr(cmd->flags, 'o') && (opt_is(w, "--output") || strcmp(w, "-o") == 0)) {
			a->output = opt_value(w[1] == 'o' ? "-o" : "--output", argc, argv, &i);
			if (!a->output || !*a->output)
				return usage_error("%s needs a FILE", w);
		} else if (strchr(cmd->flags, 'O') && strcmp(w, "--once") == 0) {
			a->once = true;
		} else if (strchr(cmd->flags, 'i') && (opt_is(w, "--interval") || strcmp(w, "-i") == 0)) {
			v = opt_value(w[1] == 'i' ? "-i" : "--interval", argc, argv, &i);
			if (parse_u32(v, &a->interval_ms) < 0 || a->interval_ms < 100)
				return usage_error("--interval needs milliseconds, at least 100");
		} else if (strchr(cmd->flags, 'c') && (opt_is(w, "--count") || strcmp(w, "-n") == 0)) {
			v = opt_value(w[1] == 'n' ? "-n" : "--count", argc, argv, &i);
			if (parse_u32(v, &a->count) < 0 || a->count == 0)
				return usage_error("%s needs a positive COUNT", w);
		} else {
			return usage_error("%s has no option '%s'", cmd->name, w);
		}
	}
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{},
	};
	ctl c = { .timeout_ms = 30000 };
	cmd_args a = { 0 };
	const command *cmd = NULL;
	int opt, r;

	/* Display widths of names and docs (libsmartcols, ncurses) follow the
	 * user's locale; numbers stay C-formatted for scripts. */
	setlocale(LC_ALL, "");
	setlocale(LC_NUMERIC, "C");

	/* "+": stop at the command so its own words (e.g. "-1" for call) stay. */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:s:jt:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			c.socket = optarg;
			break;
		case 'j':
			c.json = true;
			break;
		case 't':
			if (parse_u32(optarg, &c.timeout_ms) < 0)
				return usage_error("--timeout needs milliseconds, not '%s'", optarg);
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("lmmsctl %s\n", LMMS_VERSION);
			return EXIT_OK;
		case ':':
			return usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage_error("no COMMAND given");

	for (size_t i = 0; i < N_ELEMS(commands); i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			cmd = &commands[i];
	if (!cmd)
		return usage_error("unknown command '%s'", argv[optind]);

	a.argv = calloc((size_t)argc, sizeof(*a.argv));
	if (!a.argv) {
		fprintf(stderr, "lmmsctl: out of memory\n");
		return EXIT_DAEMON_ERROR;
	}
	r = cmd_args_parse(&c, cmd, argc - optind - 1, argv + optind + 1, &a);
	if (r == EXIT_OK)
		r = cmd->fn(&c, &a);

	free(a.argv);
	lmms_client_close(c.client);
	if (fflush(stdout) != 0 && r == EXIT_OK) {
		fprintf(stderr, "lmmsctl: cannot write the output: %s\n", strerror(errno));
		r = EXIT_DAEMON_ERROR;
	}
	return r;
}
