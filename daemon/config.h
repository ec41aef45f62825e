/*
 * config.h - lmmsd's configuration: embedded defaults, INI files, --set.
 *
 * Order of precedence, lowest first: the embedded defaults (every key has
 * one, so the daemon runs with no file at all), the main file, drop-ins
 * "<main>.d/NAME.conf" in name order, then --set section.key=value flags.
 * Durations are stored in milliseconds and take units (ms, s, m, h; a bare
 * number is seconds); sizes are stored in bytes and take units (B, KiB, MiB,
 * GiB, also k/K/M/G as powers of 1024).
 */
#ifndef LMMS_CONFIG_H
#define LMMS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define CONFIG_DEFAULT_FILE "/etc/lmms/lmmsd.conf"
#define CONFIG_MAX_MODULES 256 /* [module NAME] sections */
#define CONFIG_MAX_ADMIN_UIDS 64
#define CONFIG_MAX_PRELOAD 64
#define CONFIG_NAME_MAX 64
#define CONFIG_MAX_SETTINGS 128 /* module-own keys, all modules together */
#define CONFIG_SETTING_KEY_MAX 48
#define CONFIG_SETTING_VALUE_MAX 208

typedef enum module_policy {
	POLICY_UTILITY = 0, /* the five checks */
	POLICY_CORE, /* never unloaded */
	POLICY_FEATURE, /* unloaded as soon as refs reach 0 (checks 1-3 apply) */
} module_policy;

const char *policy_name(module_policy p);

/* [A-Za-z0-9_-], 1..63 bytes: the one rule for module names (directory
 * listing, [module NAME] sections, ligs.preload). */
bool config_module_name_valid(const char *s, size_t n);

typedef enum isolation {
	ISOLATION_INPROC = 0, /* dlopened into lmmsd */
	ISOLATION_PROCESS, /* dlopened into a worker process of its own */
} isolation;

/* [module NAME] isolation and cache_scope: "" (index 0) = not set here. */
enum { MODULE_ISOLATION_DEFAULT = 0, MODULE_ISOLATION_INPROC, MODULE_ISOLATION_PROCESS };
enum { MODULE_SCOPE_DEFAULT = 0, MODULE_SCOPE_UID, MODULE_SCOPE_SHARED };

typedef enum cache_scope {
	CACHE_SCOPE_UID = 0, /* a result is served only to the uid that computed it */
	CACHE_SCOPE_SHARED,
} cache_scope;

typedef struct config_module {
	char name[CONFIG_NAME_MAX];
	module_policy policy;
	bool has_grace_period;
	uint64_t grace_period_ms; /* overrides lugs.grace_period when set */
	int isolation; /* MODULE_ISOLATION_* */
	uint64_t memory_max; /* process isolation: RLIMIT_AS/DATA of the worker; 0 = none */
	int cache_scope; /* MODULE_SCOPE_* */
} config_module;

/* A key of [module NAME] that the daemon does not use itself: the module's own
 * setting, read by the module through lmms_host.setting. */
typedef struct config_setting {
	uint16_t module; /* index into config.modules */
	char key[CONFIG_SETTING_KEY_MAX];
	char value[CONFIG_SETTING_VALUE_MAX];
} config_setting;

typedef struct config {
	struct {
		char socket[108]; /* "" = the default of DESIGN.md §6 */
		uint32_t max_connections;
		uint32_t max_connections_per_uid;
		uint32_t max_message_bytes;
		uint32_t max_depth;
		uint32_t max_elements;
		uint32_t max_inflight; /* requests in flight per connection */
		uint32_t max_output_bytes; /* unsent output per connection before reading stops */
		uint32_t max_result_bytes; /* one op's result */
		uint64_t idle_timeout_ms; /* 0 = never */
		uint64_t message_timeout_ms; /* a partly received message must complete in this */
		uint64_t call_timeout_ms; /* a BLOCKING call is answered "timeout" after this; 0 = never */
		int log_level; /* syslog numbering: 3 err .. 7 debug */
		uint32_t workers; /* threads running BLOCKING calls */
		uint64_t write_timeout_ms; /* output without progress closes the connection; 0 = never */
		uint64_t max_queued_bytes_per_uid; /* params held for a uid's queued work */
		uint32_t max_calls_per_uid; /* a uid's BLOCKING calls queued or running */
		uint32_t backlog; /* listen(2) backlog, as lmmsd.socket */
	} server;
	struct {
		char module_dir[4096]; /* "" = $LMMS_MODULE_DIR, else the compiled-in dir */
		char preload[CONFIG_MAX_PRELOAD][CONFIG_NAME_MAX];
		uint32_t n_preload;
		uint64_t retry_backoff_ms; /* first retry delay after a failed load */
		uint64_t retry_backoff_max_ms;
		int isolation; /* isolation: the default of [module NAME] isolation */
		char state_dir[4096]; /* "" = $STATE_DIRECTORY, else none */
		bool preload_hot; /* load modules whose ops were hot, after READY */
		uint32_t crash_limit; /* worker crashes within crash_window that quarantine */
		uint64_t crash_window_ms;
	} ligs;
	struct {
		uint64_t grace_period_ms;
		uint64_t sweep_interval_ms;
		uint32_t min_resident;
		bool keep_while_cached;
		uint64_t grace_max_ms; /* adaptive grace grows up to this */
		int pressure; /* 0 auto, 1 off */
	} lugs;
	struct {
		uint32_t warm, hot, critical;
		uint32_t max_hot_paths;
		uint64_t decay_interval_ms;
	} zafp;
	struct {
		uint64_t default_ttl_ms;
		uint64_t max_bytes;
		uint32_t max_entries;
		uint64_t expire_interval_ms;
		uint64_t negative_ttl_ms; /* 0 = module_error answers are not cached */
		int scope; /* cache_scope */
	} cache;
	struct {
		char admin_group[CONFIG_NAME_MAX]; /* "" = none */
		uid_t admin_uids[CONFIG_MAX_ADMIN_UIDS];
		uint32_t n_admin_uids;
	} access;
	config_module modules[CONFIG_MAX_MODULES];
	uint32_t n_modules;
	config_setting settings[CONFIG_MAX_SETTINGS];
	uint32_t n_settings;
} config;

/* Fill with the embedded defaults. */
void config_init_defaults(config *c);

/*
 * Load: defaults, then path (NULL: CONFIG_DEFAULT_FILE, which may be absent;
 * an explicit path must exist), its drop-in directory, then the overrides
 * ("section.key=value" strings). On error returns a negative errno and writes
 * a message naming file, line and key into err (errlen bytes); *c is then
 * unspecified, so load into a scratch struct when the old one must survive.
 */
int config_load(config *c, const char *path, const char *const *overrides, size_t n_overrides,
		char *err, size_t errlen);

/* Apply one "section.key=value" (as --set does). Same error contract. */
int config_set(config *c, const char *assignment, char *err, size_t errlen);

/* The effective configuration in INI form, every key, as --check-config prints it. */
void config_print(const config *c, FILE *f);

/* Per-module view: the policy and grace period that apply to module name. */
module_policy config_module_policy(const config *c, const char *name);
/* [module NAME] isolation (MODULE_ISOLATION_*), memory_max, cache scope. */
int config_module_isolation(const config *c, const char *name);
uint64_t config_module_memory_max(const config *c, const char *name);
cache_scope config_module_cache_scope(const config *c, const char *name);
uint64_t config_module_grace_ms(const config *c, const char *name);

/* The module's own settings: fn(ud, key, value) for each, in file order.
 * Returns how many. */
size_t config_module_settings(const config *c, const char *name,
			      void (*fn)(void *ud, const char *key, const char *value), void *ud);

/*
 * Keys that cannot change on reload (server.socket, ligs.module_dir): returns
 * the number of such keys that differ between old and new and writes their
 * names, comma separated, into buf.
 */
int config_diff_restart_only(const config *old, const config *new_, char *buf, size_t n);

/* Parsers, exposed for tests. Return 0 or -EINVAL/-ERANGE. */
int config_parse_duration_ms(const char *s, uint64_t *out);
int config_parse_size(const char *s, uint64_t *out);
int config_parse_bool(const char *s, bool *out);

/* Iterate every key as (section, key, value-string) in the order of
 * config_print, for lmms.config. Returns the number of keys. */
typedef void (*config_visit_fn)(void *ud, const char *section, const char *key,
				const char *value);
size_t config_visit(const config *c, config_visit_fn fn, void *ud);

#endif
