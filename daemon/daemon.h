/*
 * daemon.h - the lmmsd instance: every unit's state in one place.
 *
 * One lmmsd per process, owned by main.c and passed explicitly to every unit
 * so the core library (liblmmsd-core) can be driven by tests as well.
 */
#ifndef LMMS_DAEMON_H
#define LMMS_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "cache.h"
#include "config.h"
#include "heat.h"
#include "list.h"
#include "proto.h"
#include "registry.h"
#include "server.h"

#define LMMSD_MAX_OVERRIDES 256

typedef struct lmmsd_stats {
	uint64_t requests_total;
	uint64_t errors_total;
	uint64_t notifications_total;
	uint64_t connections_total;
	uint64_t lugs_unload_blocked;
	uint64_t lugs_sweeps;
	int64_t trim_reclaimed_bytes; /* measured across malloc_trim */
} lmmsd_stats;

typedef struct lmmsd {
	uv_loop_t *loop;
	config cfg;
	const char *config_path; /* NULL: default path, may be absent */
	const char *overrides[LMMSD_MAX_OVERRIDES];
	size_t n_overrides;
	proto_limits limits;
	char socket_path[108];
	char module_dir[4096];
	bool eager; /* load everything at start, never unload */

	registry reg;
	heat heat;
	cache cache;
	server srv;

	uv_timer_t lugs_timer;
	uv_timer_t feature_timer; /* runs the checks right after a feature module's refs hit 0 */
	uv_timer_t decay_timer;
	uv_timer_t cache_timer;
	uv_timer_t shutdown_timer;
	uv_timer_t watchdog_timer;
	uv_signal_t sig_int, sig_term, sig_hup;
	uv_work_t watchdog_work;
	bool watchdog_work_busy;
	uint64_t watchdog_pool_ok_ms;

	list_node calls; /* BLOCKING calls on the thread pool, newest first */

	lmmsd_stats st;
	uint64_t start_ms;
	uint64_t last_trim_ms;
	uint64_t cache_timer_due_ms;
	bool trim_pending; /* an unload freed heap that malloc_trim has not returned yet */
	bool shutting_down;
	uint64_t shutdown_deadline_ms;
	uid_t uid;
	gid_t admin_gid;
	bool have_admin_gid;
} lmmsd;

/* Errors from here on are answered to clients; no partial state on failure. */
int lmmsd_init(lmmsd *d, uv_loop_t *loop);
int lmmsd_start(lmmsd *d, int listen_fd);
void lmmsd_shutdown(lmmsd *d); /* begin a graceful stop */
void lmmsd_fini(lmmsd *d);
int lmmsd_reload(lmmsd *d, char *msg, size_t msglen);
/* A cache entry expiring at expires_ms was stored. */
void lmmsd_cache_stored(lmmsd *d, uint64_t expires_ms);

/* LUGS (lifecycle.c) */
void lugs_start(lmmsd *d);
void lugs_stop(lmmsd *d);
void lugs_restart(lmmsd *d); /* after the interval changed */
void lugs_sweep(lmmsd *d);
/* Run the checks for m; admin = lmms.unload; force skips grace and minimum.
 * Returns 0 unloaded, 1 pinned, -EBUSY with *which the refusing check. */
int lugs_try_unload(lmmsd *d, module *m, bool force, lugs_check *which, const char **reason);
void lugs_module_released(lmmsd *d, module *m); /* refs dropped to 0 */
bool lugs_protected(const lmmsd *d, const module *m);

/* access control: the one place admin rights are decided */
bool access_is_admin(const lmmsd *d, const struct conn *c);

/* built-in lmms.* interface (builtin.c) */
void builtin_call(lmmsd *d, struct conn *c, uint32_t msgid, bool notify, const char *op,
		  size_t op_len, const msgpack_object *params);

/* sd_notify helpers (notify.c); no-ops without systemd */
void notify_ready(lmmsd *d);
void notify_status(lmmsd *d);
void notify_stopping(lmmsd *d);
void notify_watchdog_start(lmmsd *d);
int notify_listen_fd(void); /* inherited socket or -1 */

#endif
