/*
 * lmms-module.h - the module ABI of lmmsd.
 *
 * A module is a shared object in the daemon's module directory. Its file name
 * is its interface name: "hash.sha256" lives in "hash.so". It exports exactly
 * one symbol, LMMS_MODULE_ENTRY, which returns a pointer to a static
 * descriptor. The daemon never calls anything else by name and a module never
 * links against the daemon: every service the daemon offers reaches the module
 * through the lmms_host table passed to init and to every operation.
 *
 * Versioning (Redis-module style): both the descriptor and the host table
 * carry their own struct size and only ever grow by appending fields at the
 * end. The daemon reads a descriptor by the size the module says it has, so a
 * module built against an older header keeps working; a module checks
 * host->size before using a field appended after it was written.
 *
 * Writing a module
 * ----------------
 *
 *     #include <lmms/lmms-module.h>
 *
 *     static int op_ping(const lmms_host *h, lmms_call *c, void *state)
 *     {
 *         const char *s; size_t n;
 *         if (h->arg_str(c, 0, &s, &n) < 0)
 *             return h->fail(c, LMMS_FAIL_PARAMS, "ping takes one string");
 *         return h->ret_str(c, s, n);
 *     }
 *
 *     static const lmms_op ops[] = {
 *         { .name = "ping", .fn = op_ping, .flags = LMMS_OP_PURE,
 *           .doc = "echo one string back" },
 *     };
 *
 *     LMMS_MODULE(.name = "mymod", .version = "1.0", LMMS_OPS(ops),
 *                 .description = "a tiny example");
 *
 * Build it with -fvisibility=hidden; LMMS_MODULE_DEFINE marks the one entry
 * symbol visible. See modules/README.md for the rules on threads, state and
 * memory.
 *
 * Rules the daemon relies on:
 *  - Ops without LMMS_OP_BLOCKING run on the daemon's event-loop thread and
 *    must return quickly (microseconds). Anything that sleeps, does disk I/O
 *    or heavy CPU work is BLOCKING and runs on a worker thread; several such
 *    calls may run concurrently, so shared state needs the module's own lock.
 *  - Pointers returned by arg_* are valid only until the op returns.
 *    Everything passed to ret_* is copied into daemon memory before ret_*
 *    returns: nothing the daemon keeps ever points into a module, which is
 *    what lets it dlclose the module later.
 *  - An op reports failure with h->fail(), which records a stable error class
 *    and a message and returns a negative value for the op to return.
 */
#ifndef LMMS_MODULE_H
#define LMMS_MODULE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped only for incompatible changes; appending fields does not bump it. */
#define LMMS_MODULE_ABI_VERSION 1u

#define LMMS_MODULE_ENTRY lmms_module_entry
#define LMMS_MODULE_ENTRY_NAME "lmms_module_entry"

#define LMMS_EXPORT __attribute__((visibility("default")))

typedef struct lmms_call lmms_call; /* one call in progress; opaque */
typedef struct lmms_host lmms_host;

/* Operation flags. */
enum {
	LMMS_OP_PURE = 1u << 0,     /* result depends only on params: cacheable */
	LMMS_OP_BLOCKING = 1u << 1, /* run on the thread pool, not the loop */
};

/* Module flags (reserved; none defined yet). */

/* Types of params as seen by arg_type(). */
typedef enum lmms_type {
	LMMS_T_NONE = 0, /* no such argument */
	LMMS_T_NIL,
	LMMS_T_BOOL,
	LMMS_T_INT, /* fits int64_t */
	LMMS_T_UINT, /* positive and > INT64_MAX */
	LMMS_T_FLOAT,
	LMMS_T_STR,
	LMMS_T_BIN,
	LMMS_T_ARRAY,
	LMMS_T_MAP,
	LMMS_T_EXT,
} lmms_type;

/* Error classes for fail(); each maps to a wire error code. */
typedef enum lmms_fail_class {
	LMMS_FAIL_MODULE = 0, /* "module_error": the operation itself failed */
	LMMS_FAIL_PARAMS = 1, /* "bad_params": the caller passed wrong arguments */
} lmms_fail_class;

/*
 * Services of the daemon. Every function takes the call it works on, so all
 * of them are safe to use from BLOCKING ops on worker threads. Functions
 * returning int give 0 on success and a negative errno on failure (-EINVAL for
 * a type mismatch, -ERANGE for a missing argument, -ENOMEM, -E2BIG when a
 * result would exceed the daemon's result size limit).
 *
 * Results: an op produces exactly one top-level value. ret_array/ret_map open
 * a container whose next n (array) or 2n (map) values are its elements;
 * containers nest. A result left incomplete is an error the daemon reports.
 */
struct lmms_host {
	uint32_t abi_version; /* LMMS_MODULE_ABI_VERSION of the daemon */
	uint32_t size; /* sizeof(struct lmms_host) as the daemon built it */

	/* params (positional) */
	size_t (*arg_count)(const lmms_call *c);
	lmms_type (*arg_type)(const lmms_call *c, size_t i);
	int (*arg_bool)(const lmms_call *c, size_t i, int *out);
	int (*arg_int)(const lmms_call *c, size_t i, int64_t *out); /* INT or UINT that fits */
	int (*arg_double)(const lmms_call *c, size_t i, double *out); /* FLOAT, INT or UINT */
	int (*arg_str)(const lmms_call *c, size_t i, const char **p, size_t *n); /* STR only */
	int (*arg_bytes)(const lmms_call *c, size_t i, const void **p, size_t *n); /* STR or BIN */
	/* Argument i re-encoded as msgpack into a daemon buffer valid until the op returns. */
	int (*arg_msgpack)(lmms_call *c, size_t i, const void **p, size_t *n);

	/* result */
	int (*ret_nil)(lmms_call *c);
	int (*ret_bool)(lmms_call *c, int v);
	int (*ret_int)(lmms_call *c, int64_t v);
	int (*ret_uint)(lmms_call *c, uint64_t v);
	int (*ret_double)(lmms_call *c, double v);
	int (*ret_str)(lmms_call *c, const char *p, size_t n);
	int (*ret_bin)(lmms_call *c, const void *p, size_t n);
	int (*ret_array)(lmms_call *c, uint32_t n);
	int (*ret_map)(lmms_call *c, uint32_t n);
	/* Append one complete msgpack value (checked by the daemon) as the next value. */
	int (*ret_msgpack)(lmms_call *c, const void *p, size_t n);

	/* failure: records the class and message, returns a negative value to return */
	int (*fail)(lmms_call *c, lmms_fail_class cls, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));

	/* logging into the daemon's log, prefixed with the module name */
	void (*log)(lmms_call *c, int level, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));

	/* Monotonic milliseconds. */
	uint64_t (*now_ms)(void);

	/* ---- appended after ABI 1's first release: test with LMMS_HOST_HAS ---- */

	/*
	 * The module's own setting `key` from its [module NAME] section (keys the
	 * daemon does not use itself, e.g. `[module sqlite] path = FILE`), or NULL
	 * when it is not set. Valid in init, ops and fini, on any thread, until
	 * fini returns. A key present in the section that the module never asked
	 * for during init is reported by the daemon as a warning, which catches
	 * typos in the configuration.
	 */
	const char *(*setting)(lmms_call *c, const char *key);

	/* New fields are appended here, never inserted. */
};

/* Does host h have field f? For fields appended after a module was written
 * against an older daemon: `if (LMMS_HOST_HAS(h, setting)) h->setting(...)`. */
#define LMMS_HOST_HAS(h, f) \
	((h)->size >= offsetof(lmms_host, f) + sizeof(((lmms_host *)0)->f))

/* Log levels for host->log (syslog numbering). */
enum { LMMS_LOG_ERR = 3, LMMS_LOG_WARNING = 4, LMMS_LOG_INFO = 6, LMMS_LOG_DEBUG = 7 };

/* An operation: returns 0 on success (with exactly one value written) or the
 * negative value returned by h->fail(). state is what init stored. */
typedef int (*lmms_op_fn)(const lmms_host *h, lmms_call *c, void *state);

typedef struct lmms_op {
	const char *name; /* "sha256": the method is "<module>.<name>" */
	lmms_op_fn fn;
	uint32_t flags; /* LMMS_OP_* */
	uint32_t cache_ttl_ms; /* PURE ops: 0 means the daemon's cache.default_ttl */
	/* Appended after ABI 1's first release (the daemon reads it only when
	 * op_size covers it): an op without LMMS_OP_BLOCKING still runs on the
	 * thread pool when its params exceed this many encoded bytes, so a large
	 * input never stalls the loop while small ones stay inline. 0 = never. */
	uint32_t blocking_above;
	/* One line saying what the op does (lmms.ops "doc", lmmsctl ops). */
	const char *doc;
	/* New fields are appended here; the descriptor's op_size says how big. */
} lmms_op;

typedef struct lmms_module_desc {
	uint32_t abi_version; /* LMMS_MODULE_ABI_VERSION the module was built for */
	uint32_t size; /* sizeof(lmms_module_desc) as the module was built */
	const char *name; /* must equal the file name without ".so" */
	const char *version;
	uint32_t flags; /* reserved, 0 */
	uint32_t op_size; /* sizeof(lmms_op) as the module was built */
	const lmms_op *ops; /* array of n_ops elements, each op_size bytes apart */
	uint32_t n_ops;

	/* Optional. Runs once after dlopen on the loop thread; *state is handed to
	 * every op and to fini/can_unload. A negative return fails the load (the
	 * caller sees "load_failed" with the message given through fail() if the
	 * module called it on the call handle c, else a generic one). */
	int (*init)(const lmms_host *h, lmms_call *c, void **state);
	/* Optional. Runs once before dlclose on the loop thread. */
	void (*fini)(const lmms_host *h, void *state);
	/* Optional. Return 0 to allow unloading now, or nonzero and set *reason
	 * (a static string) to veto it. */
	int (*can_unload)(const lmms_host *h, void *state, const char **reason);

	/* Appended after ABI 1's first release (read only when size covers it). */
	const char *description; /* one line: what the module offers (lmms.modules) */

	/* New fields are appended here, never inserted. */
} lmms_module_desc;

typedef const lmms_module_desc *(*lmms_module_entry_fn)(void);

/*
 * Defines the one exported entry symbol and the descriptor behind it, from
 * designated initializers, so fields appended later never need a new
 * positional argument:
 *
 *     LMMS_MODULE(.name = "mymod", .version = "1.0", LMMS_OPS(ops),
 *                 .description = "what it offers", .init = my_init);
 *
 * The ABI version and both struct sizes are filled in by the macro.
 */
#define LMMS_OPS(tab) .ops = (tab), .n_ops = sizeof(tab) / sizeof((tab)[0])
#define LMMS_MODULE(...)                                                   \
	static const lmms_module_desc lmms__desc = {                       \
		.abi_version = LMMS_MODULE_ABI_VERSION,                    \
		.size = sizeof(lmms_module_desc),                          \
		.op_size = sizeof(lmms_op),                                \
		__VA_ARGS__                                                \
	};                                                                 \
	LMMS_EXPORT const lmms_module_desc *LMMS_MODULE_ENTRY(void);       \
	const lmms_module_desc *LMMS_MODULE_ENTRY(void) { return &lmms__desc; }

/*
 * How the module would like to run, declared in its file so the daemon can
 * read it without loading the module (nothing of the module may run before
 * that decision):
 *
 *     LMMS_MODULE_ISOLATION("process");
 *
 * "process": run in a worker process of its own, for a module that starts
 * threads, links libraries that cannot be unloaded (-z nodelete, GNU unique
 * symbols), holds a lot of memory or may crash; "inproc": inside lmmsd.
 * `[module NAME] isolation` in the configuration overrides it; a module that
 * declares nothing gets `ligs.isolation`. The string goes into the ELF
 * section LMMS_ISOLATION_SECTION; `used` keeps the compiler from dropping
 * it (do not link modules with --gc-sections, which would).
 */
#define LMMS_ISOLATION_SECTION ".lmms.isolation"
#define LMMS_MODULE_ISOLATION(mode) \
	__attribute__((used, section(LMMS_ISOLATION_SECTION))) static const char lmms__isolation[] = mode

/* The first, positional form; kept so modules written with it still build. */
#define LMMS_MODULE_DEFINE(mname, mversion, opstab, initfn, finifn, canunloadfn) \
	static const lmms_module_desc lmms__desc = {                             \
		.abi_version = LMMS_MODULE_ABI_VERSION,                          \
		.size = sizeof(lmms_module_desc),                                \
		.name = #mname,                                                  \
		.version = (mversion),                                           \
		.flags = 0,                                                      \
		.op_size = sizeof(lmms_op),                                      \
		.ops = (opstab),                                                 \
		.n_ops = sizeof(opstab) / sizeof((opstab)[0]),                   \
		.init = (initfn),                                                \
		.fini = (finifn),                                                \
		.can_unload = (canunloadfn),                                     \
	};                                                                       \
	LMMS_EXPORT const lmms_module_desc *LMMS_MODULE_ENTRY(void);             \
	const lmms_module_desc *LMMS_MODULE_ENTRY(void) { return &lmms__desc; }

#ifdef __cplusplus
}
#endif

#endif
