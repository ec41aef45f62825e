/*
 * registry.h - LIGS: the module registry and lazy loading.
 *
 * The registry is the module directory's listing: at start it records one
 * entry per "NAME.so" and maps nothing. The first call of "NAME.op" loads the
 * module (dlopen RTLD_NOW|RTLD_LOCAL, ABI and struct-size checks, init) and
 * learns its ops. What it learned (ops, flags, heat) outlives an unload, so
 * the op table, the cache and lmms.ops keep working while the module is out
 * of memory.
 *
 * Everything here runs on the loop thread. Worker threads only ever see an
 * op's function and state pointers, captured while holding a ref.
 */
#ifndef LMMS_REGISTRY_H
#define LMMS_REGISTRY_H

#include <lmms/lmms-module.h>
#include <limits.h>
#include <sys/types.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "call.h"
#include "config.h"
#include "grace.h"
#include "heat.h"
#include "hmap.h"
#include "watch.h"
#include "worker.h"

#define REGISTRY_MAX_MODULES 1024
#define MODULE_MAX_OPS 256
#define MODULE_NAME_MAX 63
#define OP_NAME_MAX 63
#define MODULE_ERROR_MAX 256
#define REGISTRY_NAME_BUF (MODULE_NAME_MAX + 1)

typedef struct module module;
typedef struct registry registry;

typedef enum module_state {
	MOD_UNLOADED = 0,
	MOD_LOADED,
	MOD_PINNED, /* mapped for good (-z nodelete, unique symbols, ...): never unloaded */
	MOD_FAILED, /* last load failed; retried after a backoff */
} module_state;

const char *module_state_name(module_state s);

/* Reasons LUGS refuses to unload, in the order the checks run. */
typedef enum lugs_check {
	LUGS_REFS = 0,
	LUGS_PROTECTED,
	LUGS_CACHED,
	LUGS_GRACE,
	LUGS_MIN_RESIDENT,
	LUGS_VETO, /* the module's can_unload said no */
	LUGS_CHECK_MAX,
} lugs_check;

const char *lugs_check_name(lugs_check c);

typedef struct op_info {
	module *mod;
	char *method; /* "module.op", owned; the key of registry.ops */
	uint32_t method_len;
	const char *name; /* inside method, after the dot */
	lmms_op_fn fn; /* NULL whenever the module is not callable */
	uint32_t flags; /* LMMS_OP_* */
	uint32_t cache_ttl_ms; /* as declared; 0 = cache.default_ttl */
	uint32_t blocking_above; /* run on the pool above this many params bytes; 0 = never */
	bool gone; /* the module no longer declares it */
	char *doc; /* the op's one-line description, owned; "" when none */
	op_heat heat; /* ZAFP metrics, kept across unloads */
} op_info;

struct module {
	registry *reg;
	char name[MODULE_NAME_MAX + 1];
	uint32_t name_len;
	char *path; /* owned */
	module_state state;
	bool unloading; /* set before fini: no path may call in from then on */

	/* resolved from the configuration at load and on reload */
	module_policy policy;
	uint64_t grace_ms; /* the configured grace: the base adaptive grace starts from */
	cache_scope cache_scope;
	grace adapt; /* what LUGS learned of this module's reload pattern */

	void *handle; /* dlopen handle while callable */
	lmms_module_desc desc; /* copied by the module's size, zero beyond it */
	void *mstate; /* what init stored */
	char *description; /* from the descriptor, owned; kept across unloads */
	call_settings settings; /* the module's own [module NAME] keys, owned, rebuilt per load */
	bool settings_oom;

	op_info **ops; /* owned; pointers stay stable for the fast path */
	uint32_t n_ops;
	bool ops_known;

	uint32_t refs; /* ops in flight */
	uint32_t cache_deps; /* live cache entries depending on it */
	uint32_t hot_ops; /* ops with a ZAFP fast-path entry */

	uint64_t loads, unloads, load_failures;
	uint64_t last_used_ms; /* stamped by every path into the module */
	uint64_t loaded_ms;
	int64_t resident_bytes; /* RSS growth measured across its load */
	int64_t reclaimed_bytes; /* RSS drop measured across its last unload */
	uint64_t blocked[LUGS_CHECK_MAX]; /* unload refusals by reason */

	uint64_t retry_at_ms; /* FAILED: no new attempt before */
	uint64_t backoff_ms;
	char error[MODULE_ERROR_MAX]; /* last load failure */
	char pinned_by[64]; /* PINNED: the nodelete object, or why glibc kept it */
	char unload_trigger[64]; /* who asked for the last unload: "sweep (idle 31s)", ... */
	uint64_t crashes; /* process isolation: worker deaths while loaded */
	watch_stamp stamp; /* the file as it was loaded */
	bool reload_pending; /* its file was replaced: reload once no call runs */
	bool tainted; /* its mapped file was overwritten in place: never called again */
	int isolation; /* isolation in force (ISOLATION_*), decided at each load */
	pid_t pid; /* process isolation: the worker's, or 0 */
	worker *w; /* process isolation: the current worker (starting or ready), or NULL */
	worker_crashes crash; /* process isolation: deaths, backoff, quarantine */
	char *version; /* of the code loaded last, owned */
};

struct registry {
	char dir[PATH_MAX];
	const config *cfg;
	module *mods[REGISTRY_MAX_MODULES]; /* sorted by name */
	uint32_t n_mods;
	hmap by_name; /* name -> module */
	hmap ops; /* "module.op" -> op_info */
	uint32_t n_resident; /* LOADED + PINNED */
	uint64_t loads; /* successful loads */
	uint64_t unloads;
	uint64_t worker_spawns; /* process isolation */
	uint64_t module_crashes;
	uint64_t hot_reloads; /* modules reloaded because their file changed */
	uint64_t premature_reloads; /* loaded again within the grace that unloaded them */
	int64_t reclaimed_bytes; /* sum of measured RSS drops */
	long dir_mtime_ns; /* of the last scan */
	uint64_t last_scan_ms;
	bool listed; /* the directory was listed at least once */
	bool left_mapped; /* registry_fini left modules mapped: exit with _exit */

	/* Called once a module is no longer callable, before its fini, for the
	 * cache and ZAFP to drop what points at it. */
	void (*on_unload)(void *ud, module *m);
	/* Called when a module's last op in flight returned (refs reached 0). */
	void (*on_released)(void *ud, module *m);
	/* Called after the resident set changed (a load, an unload). */
	void (*on_residency)(void *ud, module *m);
	/* The loop workers of isolated modules run on; NULL: everything in process. */
	uv_loop_t *loop;
	void *ud;
};

/*
 * References. Every path that runs an op holds one from before it reads the
 * op's function until after its completion ran; registry_unload refuses while
 * any is held. These are the only places refs and last_used_ms change.
 */
static inline void module_ref(module *m)
{
	m->refs++;
}

void module_unref(module *m);

/* Name what asks for the next unload of m, for the log and lmms.modules. */
void module_set_trigger(module *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static inline void module_touch(module *m, uint64_t now_ms)
{
	m->last_used_ms = now_ms;
}

/* Resolve every module's policy and grace again (after a reload). */
void registry_apply_config(registry *r);

/* The grace in force: the configured one, doubled by premature reloads up to
 * lugs.grace_max, drifting back while the module stays out. */
static inline uint64_t module_grace_ms(const module *m)
{
	return grace_current(&m->adapt, m->grace_ms, m->reg->cfg->lugs.grace_max_ms);
}

int registry_init(registry *r, const char *dir, const config *cfg);
void registry_fini(registry *r); /* unloads every module (fini + dlclose) */

/* (Re)list the directory; existing entries keep their state. */
int registry_scan(registry *r);
/* List the directory if that never happened or it changed since: for what
 * needs every module (lmms.modules, lmms.stats, --eager). */
int registry_list(registry *r);

/* By name. A name not seen yet is looked up as NAME.so in the directory
 * (a stat), so a module dropped in later is found at once. */
module *registry_find(registry *r, const char *name, size_t len);
op_info *registry_find_op(registry *r, const char *method, size_t len);

/*
 * Make m callable. 0 if it is (or became) loaded; otherwise a negative errno
 * with the reason in m->error: -EAGAIN while a failed module waits for its
 * retry, -ENOEXEC for ABI/descriptor problems, -EPERM for unsafe file
 * permissions, -EIO for dlopen or init failures. For an isolated module
 * (isolation = process) the load is a worker starting: -EINPROGRESS, and
 * calls may be sent to it already (module_starting).
 */
int registry_load(registry *r, module *m);

/*
 * Unload m now (the caller ran the checks): can_unload, fini, dlclose, then
 * verify with RTLD_NOLOAD. Returns 0 when unmapped, 1 when it turned out
 * pinned, -EBUSY if refs > 0 or the module vetoed (*reason set).
 */
int registry_unload(registry *r, module *m, const char **reason);

static inline bool module_resident(const module *m)
{
	return m->state == MOD_LOADED || m->state == MOD_PINNED;
}

static inline bool module_callable(const module *m)
{
	if (m->isolation == ISOLATION_PROCESS)
		return m->w && m->w->state == WORKER_READY && !m->unloading;
	return m->handle != NULL && !m->unloading && !m->tainted;
}

/* Is m's code somewhere: mapped here, or in a worker (starting or ready)? */
static inline bool module_has_code(const module *m)
{
	return m->handle != NULL || m->w != NULL;
}

/* An isolated module whose worker is starting: calls may be sent to it (they
 * run once its init returned), though its ops may not be known yet. */
static inline bool module_starting(const module *m)
{
	return m->isolation == ISOLATION_PROCESS && m->w && m->w->state == WORKER_STARTING;
}

/* An administrator asks for m: forget its backoff and recent crashes. */
void registry_forgive(registry *r, module *m);

/* Stop every worker (shutdown); the loop then runs until they exited. */
void registry_stop_workers(registry *r);

/* Its file was replaced on disk: unload it and load the new file, now. The
 * caller checked refs == 0. 0 reloaded, 1 the old object is pinned (a restart
 * or isolation=process is needed), -EBUSY vetoed, or the load's error. */
int registry_reload(registry *r, module *m);
/* Its loaded file was overwritten in place: the code under it changed, so
 * nothing may call into it again, nor run its fini or dlclose it. */
void registry_taint(registry *r, module *m);

/* RSS of this process in bytes, from /proc/self/statm. */
int64_t rss_bytes(void);
/* RSS of process pid (0: this one) in bytes, from /proc/PID/statm. */
int64_t rss_bytes_of(pid_t pid);

/*
 * The descriptor of a dlopened module, checked the one way both lmmsd and its
 * workers check it: entry symbol, ABI version, struct size, the name matching
 * the file's, and a sane op table (count, op_size, valid unique names, a
 * function each). On success *out is the descriptor read by the module's own
 * size (zero beyond it). 0, or -ENOEXEC with the reason in err.
 */
int module_desc_load(void *handle, const char *name, lmms_module_desc *out, char *err,
		     size_t errlen);
/* Op names: [A-Za-z0-9_.-], 1..OP_NAME_MAX bytes. */
bool module_op_name_valid(const char *s);

/* Op i of a checked descriptor: ops are op_size bytes apart. */
static inline const lmms_op *module_desc_op(const lmms_module_desc *d, uint32_t i)
{
	return (const lmms_op *)((const char *)d->ops + (size_t)i * d->op_size);
}
/* Fields appended to lmms_op, read only when the module's op_size covers them. */
uint32_t module_desc_op_blocking_above(const lmms_module_desc *d, const lmms_op *o);
const char *module_desc_op_doc(const lmms_module_desc *d, const lmms_op *o); /* NULL if none */

#endif
