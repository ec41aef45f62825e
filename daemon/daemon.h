/*
 * daemon.h - the lmmsd instance: it composes the units, each of which keeps
 * its own state in its own struct.
 *
 * One lmmsd per process, owned by main.c and passed explicitly, so the core
 * library (liblmmsd-core) can be driven by tests and the benchmark as well.
 * Every field starts at a safe value and every handle records whether it
 * was opened, so lmmsd_fini (after the loop ran dry) undoes a daemon that
 * stopped half-way through lmmsd_init, the way sd-event and dbus-broker
 * objects are torn down by one ordinary free path.
 */
#ifndef LMMS_DAEMON_H
#define LMMS_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "access.h"
#include "builtin.h"
#include "cache.h"
#include "config.h"
#include "dispatch.h"
#include "heat.h"
#include "learn.h"
#include "lifecycle.h"
#include "monitor.h"
#include "notify.h"
#include "proto.h"
#include "registry.h"
#include "server.h"

#define LMMSD_MAX_OVERRIDES 256
/* How long a stop waits for calls in flight when server.call_timeout is 0. */
#define LMMSD_STOP_DEADLINE_MS 30000

/* Handles of the daemon's own, each closed by lmmsd_close_handles. */
enum {
	H_DECAY = 1u << 0,
	H_CACHE = 1u << 1,
	H_SHUTDOWN = 1u << 2,
	H_SIGINT = 1u << 3,
	H_SIGTERM = 1u << 4,
	H_SIGHUP = 1u << 5,
};

typedef struct lmmsd {
	uv_loop_t *loop;

	/* what the command line said */
	const char *config_path; /* NULL: default path, may be absent */
	const char *overrides[LMMSD_MAX_OVERRIDES];
	size_t n_overrides;
	char socket_path[108];
	char module_dir[4096];
	bool eager; /* load everything at start, never unload */

	config cfg;
	registry reg;
	heat heat;
	cache cache;
	server srv;
	dispatch dp;
	builtin bi;
	lugs lugs;
	access_policy acc;
	notify nt;
	monitor mon;
	learn lrn;
	sched *sched; /* NULL once stopped */
	uint32_t abandoned; /* calls still running when the stop gave up on them */

	/* glue of the daemon's own: timers and signals */
	uint32_t handles; /* H_* opened */
	bool reg_open, heat_open, cache_open, dp_open, lugs_open, srv_open, mon_open, lrn_open;
	uv_timer_t decay_timer;
	uv_timer_t cache_timer;
	uv_timer_t shutdown_timer;
	uv_signal_t sig_int, sig_term, sig_hup;
	uint64_t start_ms;
	uint64_t cache_timer_due_ms;
	bool shutting_down;
	uint64_t shutdown_deadline_ms;
} lmmsd;

/* d's command-line fields (config_path, overrides, socket_path, module_dir,
 * eager) and cfg are set by the caller first. On failure, run the loop and
 * lmmsd_fini as after a normal stop: everything half-built is undone. */
int lmmsd_init(lmmsd *d, uv_loop_t *loop);
int lmmsd_start(lmmsd *d, int listen_fd);
void lmmsd_shutdown(lmmsd *d); /* begin a graceful stop */
void lmmsd_fini(lmmsd *d);
int lmmsd_reload(lmmsd *d, char *msg, size_t msglen);
typedef struct lmmsd_trim_result {
	uint32_t modules_unloaded;
	uint64_t cache_bytes_dropped;
	int64_t rss_before, rss_after;
} lmmsd_trim_result;

/* Shed now what is idle, as under memory pressure (lmms.trim): idle modules
 * regardless of grace and min_resident, half the cache, the heap. */
void lmmsd_trim(lmmsd *d, const char *trigger, lmmsd_trim_result *t);
/* lmms.monitor: stream every finished call to c. */
int lmmsd_monitor_add(lmmsd *d, conn *c);

/* The transport's limits from the configuration. */
void lmmsd_server_limits(const config *cfg, server_limits *l);

#endif
