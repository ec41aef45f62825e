/*
 * config.c - lmmsd's configuration: embedded defaults, INI files, drop-ins
 * and --set overrides.
 *
 * Everything is driven by one table (config_keys) that names each key, its
 * type, where it lives in struct config, its range and its default as text.
 * The defaults are applied by parsing that text, so the embedded defaults,
 * the file parser, config_print and config_visit cannot drift apart: what
 * config_print writes, config_load reads back to the same struct.
 *
 * The INI syntax itself is inih's. inih is fed through our own line reader
 * so that we know the line number of every key (the distribution's inih is
 * built without INI_HANDLER_LINENO), can refuse over-long lines instead of
 * letting inih split them, and can check section headers where they stand.
 */
#include "config.h"

/* The daemon's build names SYSCONFDIR/lmms/lmmsd.conf, where meson installs
 * the template; the unit tests compile this file alone and get the /usr one. */
#ifdef __has_include
#if __has_include("lmms-build-config.h")
#include "lmms-build-config.h"
#endif
#endif
#ifdef LMMS_CONFIG_FILE_DEFAULT
#define CONFIG_FILE_BUILT LMMS_CONFIG_FILE_DEFAULT
#else
#define CONFIG_FILE_BUILT CONFIG_DEFAULT_FILE
#endif

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ini.h>

#define MS_SECOND UINT64_C(1000)
#define MS_MINUTE (UINT64_C(60) * MS_SECOND)
#define MS_HOUR (UINT64_C(60) * MS_MINUTE)
#define MS_DAY (UINT64_C(24) * MS_HOUR)
#define KIB UINT64_C(1024)
#define MIB (UINT64_C(1024) * KIB)
#define GIB (UINT64_C(1024) * MIB)

#define CONFIG_MAX_DROPINS 256
#define CONFIG_VALUE_MAX 4096 /* longest value text we print or accept */

/*
 * What Debian's libinih carries, so what config_print may write: a line of
 * INI_MAX_LINE bytes with room for "\r\n" and NUL (ctx_read_line refuses a
 * longer one), and a section name of 49 bytes between '[' and ']' (its
 * MAX_SECTION, private to ini.c: a longer name is cut without a word).
 */
#define CONFIG_LINE_MAX (INI_MAX_LINE - 3)
#define CONFIG_SECTION_MAX 49
#define MODULE_SECTION_PREFIX "module "

typedef enum key_type {
	KT_DURATION, /* uint64_t milliseconds */
	KT_SIZE, /* uint32_t or uint64_t bytes (width) */
	KT_UINT, /* uint32_t */
	KT_BOOL,
	KT_STRING, /* char[width] */
	KT_PATH, /* char[width], absolute or empty */
	KT_GROUP, /* char[width], a group name or empty */
	KT_LOGLEVEL, /* int, syslog numbering */
	KT_UIDS, /* access.admin_uids + n_admin_uids */
	KT_NAMES, /* ligs.preload + n_preload */
	KT_POLICY, /* module_policy */
	KT_CHOICE, /* int: an index into key_def.choices */
} key_type;

typedef struct key_def {
	const char *section;
	const char *key;
	key_type type;
	size_t offset;
	size_t width; /* bytes of the field (strings: the array) */
	uint64_t min, max;
	bool reloadable;
	const char *def; /* the embedded default, as text */
	const char *const *choices; /* KT_CHOICE: NULL-terminated names */
} key_def;

#define OFF(f) offsetof(config, f)
#define WID(f) sizeof(((config *)0)->f)
#define K(sec, name, type, field, min, max, rel, def) \
	{ sec, #name, type, OFF(field), WID(field), min, max, rel, def, NULL }
#define KC(sec, name, field, names, def) \
	{ sec, #name, KT_CHOICE, OFF(field), WID(field), 0, 0, true, def, names }

static const char *const isolation_names[] = { "inproc", "process", NULL };
/* a module's isolation: "" = its own preference, then ligs.isolation */
static const char *const module_isolation_names[] = { "", "inproc", "process", NULL };
static const char *const pressure_names[] = { "auto", "off", NULL };
static const char *const scope_names[] = { "uid", "shared", NULL };
static const char *const module_scope_names[] = { "", "uid", "shared", NULL };

/* Every key, in the order config_print and config_visit present them. */
static const key_def config_keys[] = {
	K("server", socket, KT_STRING, server.socket, 0, 0, false, ""),
	K("server", max_connections, KT_UINT, server.max_connections, 1, 65536, true, "256"),
	K("server", max_connections_per_uid, KT_UINT, server.max_connections_per_uid, 1, 65536,
	  true, "64"),
	K("server", max_message_bytes, KT_SIZE, server.max_message_bytes, KIB, 64 * MIB, true,
	  "1MiB"),
	/* msgpack-c's unpacker keeps a fixed stack of 32 levels
	 * (MSGPACK_EMBED_STACK_SIZE) and fails on anything deeper */
	K("server", max_depth, KT_UINT, server.max_depth, 2, 32, true, "32"),
	K("server", max_elements, KT_UINT, server.max_elements, 16, 1u << 24, true, "65536"),
	K("server", max_inflight, KT_UINT, server.max_inflight, 1, 4096, true, "64"),
	K("server", max_output_bytes, KT_SIZE, server.max_output_bytes, 64 * KIB, GIB, true,
	  "4MiB"),
	K("server", max_result_bytes, KT_SIZE, server.max_result_bytes, KIB, GIB, true, "1MiB"),
	K("server", idle_timeout, KT_DURATION, server.idle_timeout_ms, 0, 7 * MS_DAY, true, "0"),
	K("server", message_timeout, KT_DURATION, server.message_timeout_ms, 10, MS_HOUR, true,
	  "10s"),
	K("server", call_timeout, KT_DURATION, server.call_timeout_ms, 0, MS_DAY, true, "0"),
	K("server", log_level, KT_LOGLEVEL, server.log_level, 3, 7, true, "info"),
	/* round 2: see README "Decisions written down" for the defaults */
	K("server", workers, KT_UINT, server.workers, 1, 256, false, "4"),
	K("server", write_timeout, KT_DURATION, server.write_timeout_ms, 0, MS_DAY, true, "30s"),
	K("server", max_queued_bytes_per_uid, KT_SIZE, server.max_queued_bytes_per_uid, 64 * KIB,
	  64 * GIB, true, "64MiB"),
	K("server", max_calls_per_uid, KT_UINT, server.max_calls_per_uid, 1, 1u << 20, true, "256"),
	K("server", backlog, KT_UINT, server.backlog, 1, 65535, false, "256"),

	K("ligs", module_dir, KT_PATH, ligs.module_dir, 0, 0, false, ""),
	K("ligs", preload, KT_NAMES, ligs.preload, 0, CONFIG_MAX_PRELOAD, true, ""),
	K("ligs", retry_backoff, KT_DURATION, ligs.retry_backoff_ms, 10, MS_HOUR, true, "1s"),
	K("ligs", retry_backoff_max, KT_DURATION, ligs.retry_backoff_max_ms, 10, MS_DAY, true,
	  "60s"),
	KC("ligs", isolation, ligs.isolation, isolation_names, "inproc"),
	K("ligs", state_dir, KT_PATH, ligs.state_dir, 0, 0, false, ""),
	K("ligs", preload_hot, KT_BOOL, ligs.preload_hot, 0, 0, true, "true"),
	K("ligs", crash_limit, KT_UINT, ligs.crash_limit, 1, 1000, true, "3"),
	K("ligs", crash_window, KT_DURATION, ligs.crash_window_ms, 100, MS_DAY, true, "60s"),

	K("lugs", grace_period, KT_DURATION, lugs.grace_period_ms, 0, 7 * MS_DAY, true, "30s"),
	K("lugs", sweep_interval, KT_DURATION, lugs.sweep_interval_ms, 10, MS_HOUR, true, "5s"),
	K("lugs", min_resident, KT_UINT, lugs.min_resident, 0, 4096, true, "0"),
	K("lugs", keep_while_cached, KT_BOOL, lugs.keep_while_cached, 0, 0, true, "true"),
	K("lugs", grace_max, KT_DURATION, lugs.grace_max_ms, 0, 7 * MS_DAY, true, "10m"),
	KC("lugs", pressure, lugs.pressure, pressure_names, "auto"),

	K("zafp", warm, KT_UINT, zafp.warm, 1, 1000000000, true, "5"),
	K("zafp", hot, KT_UINT, zafp.hot, 1, 1000000000, true, "20"),
	K("zafp", critical, KT_UINT, zafp.critical, 1, 1000000000, true, "100"),
	K("zafp", max_hot_paths, KT_UINT, zafp.max_hot_paths, 0, 65536, true, "100"),
	K("zafp", decay_interval, KT_DURATION, zafp.decay_interval_ms, 10, MS_DAY, true, "60s"),

	K("cache", default_ttl, KT_DURATION, cache.default_ttl_ms, 0, 7 * MS_DAY, true, "300s"),
	K("cache", max_bytes, KT_SIZE, cache.max_bytes, 0, 64 * GIB, true, "64MiB"),
	K("cache", max_entries, KT_UINT, cache.max_entries, 0, 1u << 24, true, "65536"),
	K("cache", expire_interval, KT_DURATION, cache.expire_interval_ms, 10, MS_HOUR, true,
	  "1s"),
	K("cache", negative_ttl, KT_DURATION, cache.negative_ttl_ms, 0, MS_HOUR, true, "0"),
	KC("cache", scope, cache.scope, scope_names, "uid"),

	K("access", admin_group, KT_GROUP, access.admin_group, 0, 0, true, ""),
	K("access", admin_uids, KT_UIDS, access.admin_uids, 0, CONFIG_MAX_ADMIN_UIDS, true, ""),
};

#define MOFF(f) offsetof(config_module, f)
#define MWID(f) sizeof(((config_module *)0)->f)

/* The keys of a [module NAME] section; offsets are into config_module. */
static const key_def module_keys[] = {
	{ "module", "policy", KT_POLICY, MOFF(policy), MWID(policy), 0, 0, true, "utility", NULL },
	{ "module", "grace_period", KT_DURATION, MOFF(grace_period_ms), MWID(grace_period_ms), 0,
	  7 * MS_DAY, true, NULL, NULL },
	{ "module", "isolation", KT_CHOICE, MOFF(isolation), MWID(isolation), 0, 0, true, "",
	  module_isolation_names },
	{ "module", "memory_max", KT_SIZE, MOFF(memory_max), MWID(memory_max), 0, 64 * GIB, true,
	  "0", NULL },
	{ "module", "cache_scope", KT_CHOICE, MOFF(cache_scope), MWID(cache_scope), 0, 0, true, "",
	  module_scope_names },
};

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static const char *const config_sections[] = { "server", "ligs", "lugs", "zafp", "cache",
					       "access" };

static const char *const policy_names[] = {
	[POLICY_UTILITY] = "utility",
	[POLICY_CORE] = "core",
	[POLICY_FEATURE] = "feature",
};

static const char *const log_level_names[] = {
	[3] = "err", [4] = "warning", [5] = "notice", [6] = "info", [7] = "debug",
};

const char *policy_name(module_policy p)
{
	if ((unsigned)p >= N_ELEMS(policy_names))
		return "unknown";
	return policy_names[p];
}

/* --- error text ------------------------------------------------------- */

static void err_set(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void err_set(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Prefix err with "origin: " (file:line, or --set). */
static void err_prefix(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void err_prefix(char *err, size_t errlen, const char *fmt, ...)
{
	char pre[512], msg[1024];
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	snprintf(msg, sizeof(msg), "%s", err);
	snprintf(err, errlen, "%s: %s", pre, msg);
}

/* --- value parsers ---------------------------------------------------- */

/* Decimal digits only: no sign, no spaces, no hex; overflow is -ERANGE. */
static int parse_u64_prefix(const char **sp, uint64_t *out)
{
	const char *s = *sp;
	uint64_t v = 0;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*sp = s;
	*out = v;
	return 0;
}

static int mul_checked(uint64_t a, uint64_t b, uint64_t *out)
{
	if (b != 0 && a > UINT64_MAX / b)
		return -ERANGE;
	*out = a * b;
	return 0;
}

static const char *skip_space(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

int config_parse_duration_ms(const char *s, uint64_t *out)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {
		/* longest first so "ms" and "min" win over "m" */
		{ "min", MS_MINUTE }, { "ms", 1 }, { "s", MS_SECOND },
		{ "m", MS_MINUTE },   { "h", MS_HOUR }, { "d", MS_DAY },
	};
	uint64_t total = 0;
	bool any = false;
	int r;

	if (!s || !out)
		return -EINVAL;
	s = skip_space(s);
	if (!*s)
		return -EINVAL;
	/* A bare number is seconds; "1h30m" adds its parts up. */
	while (*s) {
		uint64_t n, part;
		size_t i, len = 0;

		r = parse_u64_prefix(&s, &n);
		if (r < 0)
			return r;
		s = skip_space(s);
		if (!*s && !any) {
			r = mul_checked(n, MS_SECOND, &total);
			if (r < 0)
				return r;
			break;
		}
		for (i = 0; i < N_ELEMS(units); i++) {
			len = strlen(units[i].unit);
			if (strncmp(s, units[i].unit, len) == 0 && !isalpha((unsigned char)s[len]))
				break;
		}
		if (i == N_ELEMS(units))
			return -EINVAL;
		s = skip_space(s + len);
		r = mul_checked(n, units[i].ms, &part);
		if (r < 0)
			return r;
		if (total > UINT64_MAX - part)
			return -ERANGE;
		total += part;
		any = true;
	}
	*out = total;
	return 0;
}

int config_parse_size(const char *s, uint64_t *out)
{
	static const struct {
		const char *unit;
		uint64_t mult;
	} units[] = {
		{ "B", 1 },	  { "KiB", KIB }, { "K", KIB }, { "k", KIB },
		{ "MiB", MIB },	  { "M", MIB },	  { "GiB", GIB }, { "G", GIB },
		{ "TiB", GIB * KIB }, { "T", GIB * KIB },
	};
	uint64_t n;
	size_t i;
	int r;

	if (!s || !out)
		return -EINVAL;
	s = skip_space(s);
	r = parse_u64_prefix(&s, &n);
	if (r < 0)
		return r;
	s = skip_space(s);
	if (!*s) {
		*out = n;
		return 0;
	}
	for (i = 0; i < N_ELEMS(units); i++) {
		if (strcmp(s, units[i].unit) == 0)
			break;
		/* trailing blanks are harmless */
		size_t len = strlen(units[i].unit);
		if (strncmp(s, units[i].unit, len) == 0 && !*skip_space(s + len))
			break;
	}
	if (i == N_ELEMS(units))
		return -EINVAL;
	return mul_checked(n, units[i].mult, out);
}

int config_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };
	size_t i;

	if (!s || !out)
		return -EINVAL;
	for (i = 0; i < N_ELEMS(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_uint(const char *s, uint64_t *out)
{
	uint64_t v;
	int r;

	s = skip_space(s);
	r = parse_u64_prefix(&s, &v);
	if (r < 0)
		return r;
	if (*skip_space(s))
		return -EINVAL;
	*out = v;
	return 0;
}

/* Module names become file names ("<name>.so") and method prefixes (split
 * at the first '.'), so they are kept boring: the registry uses this rule
 * for the directory listing too. */
bool config_module_name_valid(const char *s, size_t n)
{
	if (n == 0 || n >= CONFIG_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

static bool module_name_valid(const char *s)
{
	return config_module_name_valid(s, strlen(s));
}

/* Like useradd's rules: portable characters, not starting with '-'. */
static bool group_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= CONFIG_NAME_MAX || s[0] == '-')
		return false;
	for (; *s; s++) {
		if (!isalnum((unsigned char)*s) && !strchr("_-.", *s))
			return false;
	}
	return true;
}

/* --- formatting --------------------------------------------------------- */

static void format_duration(uint64_t ms, char *buf, size_t n)
{
	uint64_t s = ms / MS_SECOND;

	if (ms == 0)
		snprintf(buf, n, "0");
	else if (ms % MS_SECOND)
		snprintf(buf, n, "%" PRIu64 "ms", ms);
	else if (s % 3600 == 0)
		snprintf(buf, n, "%" PRIu64 "h", s / 3600);
	else if (s % 60 == 0 && s >= 600)
		snprintf(buf, n, "%" PRIu64 "m", s / 60);
	else
		snprintf(buf, n, "%" PRIu64 "s", s);
}

static void format_size(uint64_t b, char *buf, size_t n)
{
	if (b == 0)
		snprintf(buf, n, "0");
	else if (b % GIB == 0)
		snprintf(buf, n, "%" PRIu64 "GiB", b / GIB);
	else if (b % MIB == 0)
		snprintf(buf, n, "%" PRIu64 "MiB", b / MIB);
	else if (b % KIB == 0)
		snprintf(buf, n, "%" PRIu64 "KiB", b / KIB);
	else
		snprintf(buf, n, "%" PRIu64 "B", b);
}

/* --- typed field access ------------------------------------------------- */

static uint64_t field_get_u(const void *base, const key_def *k)
{
	const char *p = (const char *)base + k->offset;

	if (k->width == sizeof(uint64_t)) {
		uint64_t v;
		memcpy(&v, p, sizeof(v));
		return v;
	} else {
		uint32_t v;
		memcpy(&v, p, sizeof(v));
		return v;
	}
}

static void field_set_u(void *base, const key_def *k, uint64_t v)
{
	char *p = (char *)base + k->offset;

	if (k->width == sizeof(uint64_t)) {
		memcpy(p, &v, sizeof(v));
	} else {
		uint32_t w = (uint32_t)v;
		memcpy(p, &w, sizeof(w));
	}
}

static const char *type_hint(key_type t)
{
	switch (t) {
	case KT_DURATION:
		return "is not a duration (e.g. 250ms, 30s, 5m)";
	case KT_SIZE:
		return "is not a size (e.g. 512B, 64KiB, 1MiB)";
	case KT_UINT:
		return "is not a non-negative integer";
	case KT_BOOL:
		return "is not a boolean (true/false, yes/no, on/off, 1/0)";
	case KT_LOGLEVEL:
		return "is not a log level (err, warning, notice, info, debug or 3..7)";
	case KT_POLICY:
		return "is not a policy (core, utility, feature)";
	case KT_CHOICE:
		return "is not one of the allowed values";
	default:
		return "is not valid";
	}
}

static void format_range(const key_def *k, uint64_t v, char *buf, size_t n)
{
	if (k->type == KT_DURATION)
		format_duration(v, buf, n);
	else if (k->type == KT_SIZE)
		format_size(v, buf, n);
	else
		snprintf(buf, n, "%" PRIu64, v);
}

/* Values must survive the print -> parse round trip through inih. */
static bool string_value_ok(const char *v)
{
	size_t n = strlen(v);

	if (n && (isspace((unsigned char)v[0]) || isspace((unsigned char)v[n - 1])))
		return false;
	for (const char *p = v; *p; p++) {
		if (iscntrl((unsigned char)*p))
			return false;
		/* inih would take " ;..." for an inline comment */
		if (*p == ';' && p > v && isspace((unsigned char)p[-1]))
			return false;
	}
	return true;
}

static int split_list(const char *v, char items[][CONFIG_NAME_MAX], size_t max, size_t *n_out,
		      const char *what, char *err, size_t errlen)
{
	size_t n = 0;
	const char *p = v;

	while (*p) {
		size_t len;

		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		len = strcspn(p, ", \t");
		if (len >= CONFIG_NAME_MAX) {
			err_set(err, errlen, "\"%.*s...\" is too long for %s", 16, p, what);
			return -ENAMETOOLONG;
		}
		if (n == max) {
			err_set(err, errlen, "more than %zu entries", max);
			return -E2BIG;
		}
		/* zero-filled, so equal configurations compare equal bytewise */
		memset(items[n], 0, CONFIG_NAME_MAX);
		memcpy(items[n], p, len);
		n++;
		p += len;
	}
	*n_out = n;
	return 0;
}

/*
 * Parse value v for key k into the struct at base. err gets the message
 * without an origin prefix; the caller adds file:line or --set.
 */
static int key_apply(void *base, const key_def *k, const char *sec, const char *v, char *err,
		     size_t errlen)
{
	char *field = (char *)base + k->offset;
	char lo[32], hi[32];
	uint64_t u = 0;
	int r = 0;

	switch (k->type) {
	case KT_DURATION:
		r = config_parse_duration_ms(v, &u);
		break;
	case KT_SIZE:
		r = config_parse_size(v, &u);
		break;
	case KT_UINT:
		r = parse_uint(v, &u);
		break;
	case KT_BOOL: {
		bool b;
		r = config_parse_bool(v, &b);
		if (r < 0)
			break;
		memcpy(field, &b, sizeof(b));
		return 0;
	}
	case KT_LOGLEVEL: {
		int lvl = -1;
		for (size_t i = 3; i < N_ELEMS(log_level_names); i++) {
			if (strcasecmp(v, log_level_names[i]) == 0)
				lvl = (int)i;
		}
		if (strcasecmp(v, "error") == 0)
			lvl = 3;
		else if (strcasecmp(v, "warn") == 0)
			lvl = 4;
		if (lvl < 0 && parse_uint(v, &u) == 0 && u >= k->min && u <= k->max)
			lvl = (int)u;
		if (lvl < 0) {
			r = -EINVAL;
			break;
		}
		memcpy(field, &lvl, sizeof(lvl));
		return 0;
	}
	case KT_POLICY: {
		size_t i;
		for (i = 0; i < N_ELEMS(policy_names); i++) {
			if (strcasecmp(v, policy_names[i]) == 0)
				break;
		}
		if (i == N_ELEMS(policy_names)) {
			r = -EINVAL;
			break;
		}
		module_policy p = (module_policy)i;
		memcpy(field, &p, sizeof(p));
		return 0;
	}
	case KT_CHOICE: {
		int i;
		for (i = 0; k->choices[i]; i++) {
			if (strcasecmp(v, k->choices[i]) == 0)
				break;
		}
		if (!k->choices[i]) {
			char list[128] = "";
			for (int j = 0; k->choices[j]; j++)
				snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s%s%s",
					 j ? ", " : "", k->choices[j][0] ? "" : "\"", k->choices[j],
					 k->choices[j][0] ? "" : "\"");
			err_set(err, errlen, "[%s] %s: \"%s\" is not one of: %s", sec, k->key, v,
				list);
			return -EINVAL;
		}
		memcpy(field, &i, sizeof(i));
		return 0;
	}
	case KT_STRING:
	case KT_PATH:
	case KT_GROUP:
		if (strlen(v) >= k->width) {
			err_set(err, errlen, "[%s] %s: value is too long (at most %zu bytes)", sec,
				k->key, k->width - 1);
			return -ENAMETOOLONG;
		}
		if (!string_value_ok(v)) {
			err_set(err, errlen,
				"[%s] %s: \"%s\" has control characters, surrounding blanks or \" ;\"",
				sec, k->key, v);
			return -EINVAL;
		}
		if (k->type == KT_PATH && v[0] && v[0] != '/') {
			err_set(err, errlen, "[%s] %s: \"%s\" is not an absolute path", sec, k->key, v);
			return -EINVAL;
		}
		if (k->type == KT_GROUP && v[0] && !group_name_valid(v)) {
			err_set(err, errlen, "[%s] %s: \"%s\" is not a valid group name", sec, k->key,
				v);
			return -EINVAL;
		}
		memset(field, 0, k->width);
		memcpy(field, v, strlen(v));
		return 0;
	case KT_NAMES: {
		config *c = base;
		char items[CONFIG_MAX_PRELOAD][CONFIG_NAME_MAX];
		size_t n;

		r = split_list(v, items, CONFIG_MAX_PRELOAD, &n, "a module name", err, errlen);
		if (r < 0) {
			err_prefix(err, errlen, "[%s] %s", sec, k->key);
			return r;
		}
		for (size_t i = 0; i < n; i++) {
			if (!module_name_valid(items[i])) {
				err_set(err, errlen, "[%s] %s: \"%s\" is not a valid module name", sec,
					k->key, items[i]);
				return -EINVAL;
			}
			for (size_t j = 0; j < i; j++) {
				if (strcmp(items[i], items[j]) == 0) {
					err_set(err, errlen, "[%s] %s: \"%s\" is listed twice", sec,
						k->key, items[i]);
					return -EINVAL;
				}
			}
		}
		memset(c->ligs.preload, 0, sizeof(c->ligs.preload));
		memcpy(c->ligs.preload, items, n * sizeof(items[0]));
		c->ligs.n_preload = (uint32_t)n;
		return 0;
	}
	case KT_UIDS: {
		config *c = base;
		char items[CONFIG_MAX_ADMIN_UIDS][CONFIG_NAME_MAX];
		uid_t uids[CONFIG_MAX_ADMIN_UIDS];
		size_t n;

		r = split_list(v, items, CONFIG_MAX_ADMIN_UIDS, &n, "a uid", err, errlen);
		if (r < 0) {
			err_prefix(err, errlen, "[%s] %s", sec, k->key);
			return r;
		}
		for (size_t i = 0; i < n; i++) {
			/* (uid_t)-1 means "no change" to chown & co., never a user */
			if (parse_uint(items[i], &u) < 0 || u >= (uid_t)-1) {
				err_set(err, errlen, "[%s] %s: \"%s\" is not a numeric uid", sec,
					k->key, items[i]);
				return -EINVAL;
			}
			uids[i] = (uid_t)u;
		}
		memset(c->access.admin_uids, 0, sizeof(c->access.admin_uids));
		memcpy(c->access.admin_uids, uids, n * sizeof(uids[0]));
		c->access.n_admin_uids = (uint32_t)n;
		return 0;
	}
	}

	if (r == -ERANGE) {
		err_set(err, errlen, "[%s] %s: \"%s\" is too large", sec, k->key, v);
		return r;
	}
	if (r < 0) {
		err_set(err, errlen, "[%s] %s: \"%s\" %s", sec, k->key, v, type_hint(k->type));
		return r;
	}
	if (u < k->min || u > k->max) {
		format_range(k, k->min, lo, sizeof(lo));
		format_range(k, k->max, hi, sizeof(hi));
		err_set(err, errlen, "[%s] %s: \"%s\" is out of range (%s..%s)", sec, k->key, v, lo,
			hi);
		return -ERANGE;
	}
	field_set_u(base, k, u);
	return 0;
}

/* The value of key k as text, exactly as config_load reads it back. */
static void key_format(const void *base, const key_def *k, char *buf, size_t n)
{
	const char *field = (const char *)base + k->offset;

	switch (k->type) {
	case KT_DURATION:
		format_duration(field_get_u(base, k), buf, n);
		break;
	case KT_SIZE:
		format_size(field_get_u(base, k), buf, n);
		break;
	case KT_UINT:
		snprintf(buf, n, "%" PRIu64, field_get_u(base, k));
		break;
	case KT_BOOL: {
		bool b;
		memcpy(&b, field, sizeof(b));
		snprintf(buf, n, "%s", b ? "true" : "false");
		break;
	}
	case KT_LOGLEVEL: {
		int lvl;
		memcpy(&lvl, field, sizeof(lvl));
		if (lvl >= 3 && lvl <= 7)
			snprintf(buf, n, "%s", log_level_names[lvl]);
		else
			snprintf(buf, n, "%d", lvl);
		break;
	}
	case KT_POLICY: {
		module_policy p;
		memcpy(&p, field, sizeof(p));
		snprintf(buf, n, "%s", policy_name(p));
		break;
	}
	case KT_CHOICE: {
		int i;
		memcpy(&i, field, sizeof(i));
		snprintf(buf, n, "%s", k->choices[i]);
		break;
	}
	case KT_STRING:
	case KT_PATH:
	case KT_GROUP:
		snprintf(buf, n, "%.*s", (int)strnlen(field, k->width), field);
		break;
	case KT_NAMES:
	case KT_UIDS: {
		const config *c = base;
		uint32_t cnt = k->type == KT_NAMES ? c->ligs.n_preload : c->access.n_admin_uids;
		size_t off = 0;

		buf[0] = '\0';
		for (uint32_t i = 0; i < cnt && off < n; i++) {
			int w;
			if (k->type == KT_NAMES)
				w = snprintf(buf + off, n - off, "%s%s", i ? ", " : "",
					     c->ligs.preload[i]);
			else
				w = snprintf(buf + off, n - off, "%s%u", i ? ", " : "",
					     (unsigned)c->access.admin_uids[i]);
			if (w < 0)
				break;
			off += (size_t)w;
		}
		break;
	}
	}
}

/* --- lookup ------------------------------------------------------------- */

static const key_def *key_find(const char *section, const char *key)
{
	for (size_t i = 0; i < N_ELEMS(config_keys); i++) {
		if (strcmp(config_keys[i].section, section) == 0 &&
		    strcmp(config_keys[i].key, key) == 0)
			return &config_keys[i];
	}
	return NULL;
}

static const key_def *module_key_find(const char *key)
{
	for (size_t i = 0; i < N_ELEMS(module_keys); i++) {
		if (strcmp(module_keys[i].key, key) == 0)
			return &module_keys[i];
	}
	return NULL;
}

static bool section_known(const char *s)
{
	for (size_t i = 0; i < N_ELEMS(config_sections); i++) {
		if (strcmp(config_sections[i], s) == 0)
			return true;
	}
	return false;
}

/* "module NAME" -> NAME, or NULL when s is not a module section. */
static const char *module_section_name(const char *s)
{
	if (strncmp(s, "module", 6) != 0 || (s[6] != ' ' && s[6] != '\t'))
		return NULL;
	return skip_space(s + 6);
}

static const config_module *module_find(const config *c, const char *name)
{
	for (uint32_t i = 0; i < c->n_modules; i++) {
		if (strcmp(c->modules[i].name, name) == 0)
			return &c->modules[i];
	}
	return NULL;
}

static int module_get(config *c, const char *name, config_module **out, char *err,
		      size_t errlen)
{
	config_module *m = (config_module *)module_find(c, name);

	if (!m) {
		if (!module_name_valid(name)) {
			err_set(err, errlen, "[module %s]: \"%s\" is not a valid module name", name,
				name);
			return -EINVAL;
		}
		if (strlen(MODULE_SECTION_PREFIX) + strlen(name) > CONFIG_SECTION_MAX) {
			err_set(err, errlen,
				"[module %s]: the name is too long for a section (at most %zu characters)",
				name, CONFIG_SECTION_MAX - strlen(MODULE_SECTION_PREFIX));
			return -ENAMETOOLONG;
		}
		if (c->n_modules == CONFIG_MAX_MODULES) {
			err_set(err, errlen, "[module %s]: more than %d module sections", name,
				CONFIG_MAX_MODULES);
			return -E2BIG;
		}
		m = &c->modules[c->n_modules++];
		memset(m, 0, sizeof(*m));
		snprintf(m->name, sizeof(m->name), "%s", name);
		m->policy = POLICY_UTILITY;
	}
	*out = m;
	return 0;
}

static bool setting_key_valid(const char *k)
{
	size_t n = strlen(k);

	if (n == 0 || n >= CONFIG_SETTING_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '_'))
			return false;
	return true;
}

/* Keys the daemon does not use are the module's own (DESIGN.md §3). */
static int module_setting_set(config *c, uint16_t module, const char *key, const char *value,
			      char *err, size_t errlen)
{
	const char *mname = c->modules[module].name;
	config_setting *s = NULL;

	if (!setting_key_valid(key)) {
		err_set(err, errlen,
			"[module %s]: \"%s\" is not a valid key (lowercase letters, digits, _; at most %d)",
			mname, key, CONFIG_SETTING_KEY_MAX - 1);
		return -EINVAL;
	}
	if (strlen(value) >= CONFIG_SETTING_VALUE_MAX) {
		err_set(err, errlen, "[module %s] %s: value longer than %d bytes", mname, key,
			CONFIG_SETTING_VALUE_MAX - 1);
		return -ENAMETOOLONG;
	}
	if (!string_value_ok(value)) {
		err_set(err, errlen,
			"[module %s] %s: \"%s\" has control characters, surrounding blanks or \" ;\"",
			mname, key, value);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < c->n_settings; i++)
		if (c->settings[i].module == module && strcmp(c->settings[i].key, key) == 0)
			s = &c->settings[i];
	if (!s) {
		if (c->n_settings == CONFIG_MAX_SETTINGS) {
			err_set(err, errlen, "[module %s] %s: more than %d module settings", mname,
				key, CONFIG_MAX_SETTINGS);
			return -E2BIG;
		}
		uint32_t at = c->n_settings;

		/* grouped by module in module order, as config_print writes them,
		 * so its output loads back to the same array */
		while (at > 0 && c->settings[at - 1].module > module)
			at--;
		memmove(&c->settings[at + 1], &c->settings[at],
			(c->n_settings - at) * sizeof(c->settings[0]));
		c->n_settings++;
		s = &c->settings[at];
		memset(s, 0, sizeof(*s));
		s->module = module;
		snprintf(s->key, sizeof(s->key), "%s", key);
	}
	/* zero-filled, so equal configurations compare equal bytewise */
	memset(s->value, 0, sizeof(s->value));
	memcpy(s->value, value, strlen(value));
	return 0;
}

size_t config_module_settings(const config *c, const char *name,
			      void (*fn)(void *ud, const char *key, const char *value), void *ud)
{
	const config_module *m = module_find(c, name);
	size_t n = 0;

	if (!m)
		return 0;
	for (uint32_t i = 0; i < c->n_settings; i++)
		if (&c->modules[c->settings[i].module] == m) {
			if (fn)
				fn(ud, c->settings[i].key, c->settings[i].value);
			n++;
		}
	return n;
}

/*
 * Set section/key to value: the one entry point the file parser and --set
 * share. Messages carry no origin; callers add it.
 */
/*
 * config_print writes "key = value" (value as formatted), and inih must read
 * that line back: a value set by --set, or a list that prints wider than it
 * was written, may not fit.
 */
static int line_fits(const char *sec, const char *key, const char *printed, char *err,
		     size_t errlen)
{
	size_t n = strlen(key) + strlen(" = ") + strlen(printed);

	if (n <= CONFIG_LINE_MAX)
		return 0;
	err_set(err, errlen,
		"[%s] %s: value is too long for one configuration line (\"%s = ...\" would take "
		"%zu characters, at most %d)",
		sec, key, key, n, CONFIG_LINE_MAX);
	return -ENAMETOOLONG;
}

/* key_apply, then the check that the key still prints on one line. */
static int key_apply_printable(void *base, const key_def *k, const char *sec, const char *value,
			       char *err, size_t errlen)
{
	char printed[CONFIG_VALUE_MAX + 64];
	int r = key_apply(base, k, sec, value, err, errlen);

	if (r < 0)
		return r;
	key_format(base, k, printed, sizeof(printed));
	return line_fits(sec, k->key, printed, err, errlen);
}

static int config_assign(config *c, const char *section, const char *key, const char *value,
			 char *err, size_t errlen)
{
	const char *mname = module_section_name(section);
	const key_def *k;
	int r;

	if (mname) {
		config_module *m;
		char sec[CONFIG_NAME_MAX + 8];

		k = module_key_find(key);
		r = module_get(c, mname, &m, err, errlen);
		if (r < 0)
			return r;
		snprintf(sec, sizeof(sec), MODULE_SECTION_PREFIX "%s", mname);
		if (!k) {
			r = line_fits(sec, key, value, err, errlen);
			if (r < 0)
				return r;
			return module_setting_set(c, (uint16_t)(m - c->modules), key, value, err,
						  errlen);
		}
		r = key_apply_printable(m, k, sec, value, err, errlen);
		if (r < 0)
			return r;
		if (k->type == KT_DURATION)
			m->has_grace_period = true;
		return 0;
	}
	if (!section_known(section)) {
		err_set(err, errlen, "unknown section [%s]", section);
		return -ENOENT;
	}
	k = key_find(section, key);
	if (!k) {
		err_set(err, errlen, "[%s]: unknown key \"%s\"", section, key);
		return -ENOENT;
	}
	return key_apply_printable(c, k, section, value, err, errlen);
}

/* --- public API --------------------------------------------------------- */

void config_init_defaults(config *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < N_ELEMS(config_keys); i++) {
		/* The defaults are constants checked by the test suite. */
		(void)key_apply(c, &config_keys[i], config_keys[i].section, config_keys[i].def,
				NULL, 0);
	}
}

int config_set(config *c, const char *assignment, char *err, size_t errlen)
{
	char buf[CONFIG_VALUE_MAX + 256], section[CONFIG_NAME_MAX + 16];
	const char *eq, *key, *dot;
	char *name_end, *value;
	int r;

	if (!assignment) {
		err_set(err, errlen, "--set: missing assignment");
		return -EINVAL;
	}
	if (strlen(assignment) >= sizeof(buf)) {
		err_set(err, errlen, "--set: assignment is too long");
		return -ENAMETOOLONG;
	}
	snprintf(buf, sizeof(buf), "%s", assignment);
	eq = strchr(buf, '=');
	if (!eq) {
		err_set(err, errlen, "--set %s: expected section.key=value", assignment);
		return -EINVAL;
	}
	value = (char *)eq + 1;
	name_end = (char *)eq;
	while (name_end > buf && isspace((unsigned char)name_end[-1]))
		name_end--;
	*name_end = '\0';
	/* trim the value as inih would, so --set and the file agree */
	value = (char *)skip_space(value);
	for (size_t n = strlen(value); n && isspace((unsigned char)value[n - 1]); n--)
		value[n - 1] = '\0';

	const char *name = skip_space(buf);
	if (strncmp(name, "module.", 7) == 0) {
		/* module.NAME.key; NAME may itself hold dots, the key never does */
		dot = strrchr(name, '.');
		if (dot == name + 6) {
			err_set(err, errlen, "--set %s: expected module.NAME.key=value", assignment);
			return -EINVAL;
		}
		if ((size_t)(dot - (name + 7)) >= CONFIG_NAME_MAX) {
			err_set(err, errlen, "--set %s: module name is too long", assignment);
			return -ENAMETOOLONG;
		}
		snprintf(section, sizeof(section), "module %.*s", (int)(dot - (name + 7)), name + 7);
	} else {
		dot = strchr(name, '.');
		if (!dot || dot == name || (size_t)(dot - name) >= sizeof(section)) {
			err_set(err, errlen, "--set %s: expected section.key=value", assignment);
			return -EINVAL;
		}
		snprintf(section, sizeof(section), "%.*s", (int)(dot - name), name);
	}
	key = dot + 1;
	if (!*key) {
		err_set(err, errlen, "--set %s: expected section.key=value", assignment);
		return -EINVAL;
	}
	r = config_assign(c, section, key, value, err, errlen);
	if (r < 0)
		err_prefix(err, errlen, "--set %s", assignment);
	return r;
}

/* Relations between keys, checked once everything is applied. */
static int config_check(const config *c, char *err, size_t errlen)
{
	if (!(c->zafp.warm <= c->zafp.hot && c->zafp.hot <= c->zafp.critical)) {
		err_set(err, errlen,
			"[zafp] warm <= hot <= critical does not hold (warm %" PRIu32 ", hot %" PRIu32
			", critical %" PRIu32 ")",
			c->zafp.warm, c->zafp.hot, c->zafp.critical);
		return -EINVAL;
	}
	if (c->ligs.retry_backoff_ms > c->ligs.retry_backoff_max_ms) {
		err_set(err, errlen, "[ligs] retry_backoff is larger than retry_backoff_max");
		return -EINVAL;
	}
	return 0;
}

/* --- INI files ---------------------------------------------------------- */

typedef struct parse_ctx {
	config *c;
	FILE *f;
	const char *path;
	int lineno;
	int err_line; /* line of the first error we raised, 0 = none */
	int err_code;
	char *err;
	size_t errlen;
} parse_ctx;

static void ctx_fail(parse_ctx *ctx, int code)
{
	if (ctx->err_line)
		return;
	ctx->err_line = ctx->lineno;
	ctx->err_code = code;
	err_prefix(ctx->err, ctx->errlen, "%s:%d", ctx->path, ctx->lineno);
}

/* Section headers are checked here, where their line number is known. */
static int ctx_check_header(parse_ctx *ctx, const char *l)
{
	char name[CONFIG_NAME_MAX + 16];
	const char *end = strchr(l, ']');
	size_t len;

	if (!end)
		return 0; /* inih reports the syntax error */
	if ((size_t)(end - (l + 1)) > CONFIG_SECTION_MAX) {
		err_set(ctx->err, ctx->errlen,
			"section name is too long (at most %d characters between [ and ])",
			CONFIG_SECTION_MAX);
		return -ENAMETOOLONG;
	}
	l = skip_space(l + 1);
	len = (size_t)(end - l);
	while (len && isspace((unsigned char)l[len - 1]))
		len--;
	if (len >= sizeof(name)) {
		err_set(ctx->err, ctx->errlen, "section name is too long");
		return -ENAMETOOLONG;
	}
	memcpy(name, l, len);
	name[len] = '\0';
	if (section_known(name))
		return 0;
	const char *m = module_section_name(name);
	if (m) {
		if (!module_name_valid(m)) {
			err_set(ctx->err, ctx->errlen, "[module %s]: \"%s\" is not a valid module name",
				m, m);
			return -EINVAL;
		}
		return 0;
	}
	err_set(ctx->err, ctx->errlen, "unknown section [%s]", name);
	return -ENOENT;
}

/*
 * fgets-like reader for inih, and the only code that sees the file's bytes:
 * inih gets a sanitized line or nothing. It reads straight into inih's
 * buffer and never writes more than fits, whatever the line holds.
 *  - Leading blanks are dropped, so an indented line is never taken for a
 *    continuation of the previous value.
 *  - A line longer than inih's buffer is an error rather than two lines.
 *  - A CR is accepted only as part of a CRLF line ending (and is dropped);
 *    anywhere else it is an error, as is a NUL byte: neither can be meant.
 * The line ending itself is not handed on: inih strips trailing blanks.
 */
static char *ctx_read_line(char *str, int num, void *stream)
{
	parse_ctx *ctx = stream;
	size_t n = 0, max;
	int ch;

	if (ctx->err_line || num < 4)
		return NULL; /* stop at the first error */
	/* the limit inih's own fgets path would have: text, "\r\n" and NUL */
	max = (size_t)num - 3;
	ch = getc(ctx->f);
	if (ch == EOF)
		return NULL;
	ctx->lineno++;
	while (ch == ' ' || ch == '\t' || ch == '\f' || ch == '\v')
		ch = getc(ctx->f);
	for (; ch != EOF && ch != '\n'; ch = getc(ctx->f)) {
		if (ch == '\r') {
			ch = getc(ctx->f);
			if (ch == '\n' || ch == EOF)
				break;
			err_set(ctx->err, ctx->errlen,
				"carriage return inside the line (only CRLF line endings are accepted)");
			ctx_fail(ctx, -EINVAL);
			return NULL;
		}
		if (ch == '\0') {
			err_set(ctx->err, ctx->errlen, "NUL byte in line");
			ctx_fail(ctx, -EINVAL);
			return NULL;
		}
		if (n == max) {
			err_set(ctx->err, ctx->errlen, "line is too long (at most %zu characters)",
				max);
			ctx_fail(ctx, -ENAMETOOLONG);
			return NULL;
		}
		str[n++] = (char)ch;
	}
	str[n] = '\0';
	if (*str == '[') {
		int r = ctx_check_header(ctx, str);
		if (r < 0) {
			ctx_fail(ctx, r);
			return NULL;
		}
	}
	return str;
}

static int ctx_handler(void *user, const char *section, const char *name, const char *value)
{
	parse_ctx *ctx = user;
	int r;

	if (ctx->err_line)
		return 0;
	if (!section[0]) {
		err_set(ctx->err, ctx->errlen, "\"%s\" comes before any [section]", name);
		ctx_fail(ctx, -EINVAL);
		return 0;
	}
	/* inih keeps the blanks of "[ module x ]"; the header check did not */
	char sec[CONFIG_NAME_MAX + 16];
	const char *st = skip_space(section);
	size_t len = strlen(st);
	while (len && isspace((unsigned char)st[len - 1]))
		len--;
	snprintf(sec, sizeof(sec), "%.*s", (int)len, st);
	r = config_assign(ctx->c, sec, name, value ? value : "", ctx->err, ctx->errlen);
	if (r < 0) {
		ctx_fail(ctx, r);
		return 0;
	}
	return 1;
}

/* Parse one file into c. must_exist: a missing file is an error. */
static int config_parse_file(config *c, const char *path, bool must_exist, char *err,
			     size_t errlen)
{
	parse_ctx ctx = { .c = c, .path = path, .err = err, .errlen = errlen };
	int r;

	ctx.f = fopen(path, "re");
	if (!ctx.f) {
		r = -errno;
		if (r == -ENOENT && !must_exist)
			return 0;
		err_set(err, errlen, "%s: cannot open: %s", path, strerror(-r));
		return r;
	}
	r = ini_parse_stream(ctx_read_line, &ctx, ctx_handler, &ctx);
	if (ferror(ctx.f) && !ctx.err_line) {
		err_set(err, errlen, "%s: read error", path);
		r = -EIO;
		goto out;
	}
	if (ctx.err_line && (r <= 0 || r >= ctx.err_line)) {
		r = ctx.err_code;
	} else if (r > 0) {
		err_set(err, errlen, "%s:%d: syntax error (expected [section] or key = value)", path,
			r);
		r = -EINVAL;
	} else if (r < 0) {
		err_set(err, errlen, "%s: cannot parse", path);
		r = -ENOMEM;
	}
out:
	fclose(ctx.f);
	return r;
}

static int dropin_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return d->d_name[0] != '.' && n > 5 && strcmp(d->d_name + n - 5, ".conf") == 0;
}

static int dropin_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int config_parse_dropins(config *c, const char *path, char *err, size_t errlen)
{
	char dir[PATH_MAX], file[PATH_MAX];
	struct dirent **list = NULL;
	int n, r = 0;

	if ((size_t)snprintf(dir, sizeof(dir), "%s.d", path) >= sizeof(dir)) {
		err_set(err, errlen, "%s.d: path too long", path);
		return -ENAMETOOLONG;
	}
	n = scandir(dir, &list, dropin_filter, dropin_cmp);
	if (n < 0) {
		r = -errno;
		if (r == -ENOENT || r == -ENOTDIR)
			return 0;
		err_set(err, errlen, "%s: cannot read directory: %s", dir, strerror(-r));
		return r;
	}
	if (n > CONFIG_MAX_DROPINS) {
		err_set(err, errlen, "%s: more than %d drop-in files", dir, CONFIG_MAX_DROPINS);
		r = -E2BIG;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		struct stat st;

		if ((size_t)snprintf(file, sizeof(file), "%s/%s", dir, list[i]->d_name) >=
		    sizeof(file)) {
			err_set(err, errlen, "%s/%s: path too long", dir, list[i]->d_name);
			r = -ENAMETOOLONG;
			goto out;
		}
		/* a dangling link or a subdirectory named *.conf is not a drop-in */
		if (stat(file, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		r = config_parse_file(c, file, true, err, errlen);
		if (r < 0)
			goto out;
	}
out:
	for (int i = 0; i < n; i++)
		free(list[i]);
	free(list);
	return r;
}

int config_load(config *c, const char *path, const char *const *overrides, size_t n_overrides,
		char *err, size_t errlen)
{
	bool explicit_path = path != NULL;
	int r;

	if (err && errlen)
		err[0] = '\0';
	config_init_defaults(c);
	if (!path)
		path = CONFIG_FILE_BUILT;
	if (!*path) {
		err_set(err, errlen, "the configuration file name is empty");
		return -EINVAL;
	}
	r = config_parse_file(c, path, explicit_path, err, errlen);
	if (r < 0)
		return r;
	r = config_parse_dropins(c, path, err, errlen);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n_overrides; i++) {
		r = config_set(c, overrides[i], err, errlen);
		if (r < 0)
			return r;
	}
	return config_check(c, err, errlen);
}

size_t config_visit(const config *c, config_visit_fn fn, void *ud)
{
	char value[CONFIG_VALUE_MAX + 64];
	size_t n = 0;

	for (size_t i = 0; i < N_ELEMS(config_keys); i++) {
		key_format(c, &config_keys[i], value, sizeof(value));
		fn(ud, config_keys[i].section, config_keys[i].key, value);
		n++;
	}
	for (uint32_t m = 0; m < c->n_modules && m < CONFIG_MAX_MODULES; m++) {
		const config_module *mod = &c->modules[m];
		char sec[CONFIG_NAME_MAX + 8];

		snprintf(sec, sizeof(sec), "module %s", mod->name);
		for (size_t i = 0; i < N_ELEMS(module_keys); i++) {
			/* an unset grace period inherits lugs.grace_period */
			if (module_keys[i].type == KT_DURATION && !mod->has_grace_period)
				continue;
			key_format(mod, &module_keys[i], value, sizeof(value));
			/* keys added after policy show only where they were set */
			if (i > 0 && module_keys[i].def && strcmp(value, module_keys[i].def) == 0)
				continue;
			fn(ud, sec, module_keys[i].key, value);
			n++;
		}
		for (uint32_t i = 0; i < c->n_settings; i++)
			if (c->settings[i].module == m) {
				fn(ud, sec, c->settings[i].key, c->settings[i].value);
				n++;
			}
	}
	return n;
}

typedef struct print_ctx {
	FILE *f;
	bool started;
	char section[CONFIG_NAME_MAX + 16]; /* a copy: visit's strings are transient */
} print_ctx;

static void print_one(void *ud, const char *section, const char *key, const char *value)
{
	print_ctx *p = ud;

	if (!p->started || strcmp(p->section, section) != 0) {
		fprintf(p->f, "%s[%s]\n", p->started ? "\n" : "", section);
		snprintf(p->section, sizeof(p->section), "%s", section);
		p->started = true;
	}
	/* inih ends a value at a ';' that follows a blank (an inline comment),
	 * and "key = " is such a blank: a value starting with ';' must hug the
	 * '=' to be read back. string_value_ok keeps " ;" out of the rest. */
	if (!value[0])
		fprintf(p->f, "%s =\n", key);
	else if (value[0] == ';')
		fprintf(p->f, "%s =%s\n", key, value);
	else
		fprintf(p->f, "%s = %s\n", key, value);
}

void config_print(const config *c, FILE *f)
{
	print_ctx p = { .f = f };

	fprintf(f, "# lmmsd effective configuration\n");
	config_visit(c, print_one, &p);
}

int config_module_isolation(const config *c, const char *name)
{
	const config_module *m = module_find(c, name);

	return m ? m->isolation : MODULE_ISOLATION_DEFAULT;
}

uint64_t config_module_memory_max(const config *c, const char *name)
{
	const config_module *m = module_find(c, name);

	return m ? m->memory_max : 0;
}

cache_scope config_module_cache_scope(const config *c, const char *name)
{
	const config_module *m = module_find(c, name);

	if (m && m->cache_scope == MODULE_SCOPE_SHARED)
		return CACHE_SCOPE_SHARED;
	if (m && m->cache_scope == MODULE_SCOPE_UID)
		return CACHE_SCOPE_UID;
	return (cache_scope)c->cache.scope;
}

module_policy config_module_policy(const config *c, const char *name)
{
	const config_module *m = module_find(c, name);

	return m ? m->policy : POLICY_UTILITY;
}

uint64_t config_module_grace_ms(const config *c, const char *name)
{
	const config_module *m = module_find(c, name);

	return m && m->has_grace_period ? m->grace_period_ms : c->lugs.grace_period_ms;
}

int config_diff_restart_only(const config *old, const config *new_, char *buf, size_t n)
{
	char a[CONFIG_VALUE_MAX + 64], b[CONFIG_VALUE_MAX + 64];
	size_t off = 0;
	int count = 0;

	if (buf && n)
		buf[0] = '\0';
	for (size_t i = 0; i < N_ELEMS(config_keys); i++) {
		const key_def *k = &config_keys[i];

		if (k->reloadable)
			continue;
		key_format(old, k, a, sizeof(a));
		key_format(new_, k, b, sizeof(b));
		if (strcmp(a, b) == 0)
			continue;
		count++;
		if (buf && off < n) {
			int w = snprintf(buf + off, n - off, "%s%s.%s", off ? "," : "", k->section,
					 k->key);
			if (w > 0)
				off += (size_t)w;
		}
	}
	return count;
}
