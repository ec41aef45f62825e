/*
 * test-config.c - unit tests of daemon/config.c: value parsers, files,
 * drop-ins, --set precedence, error messages, print/load round trip, and
 * that the shipped template (LMMS_CONF_TEMPLATE) equals the embedded defaults.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../daemon/config.h"
#include "util.h"

static char basedir[512]; /* made once; removed even when a test fails */
static char tmpdir[1024]; /* one per test under basedir; short, so + a name fits PATH_MAX */
static char err[1024];
static config cfg, ref;

static void setup_base(void)
{
	tu_tmpdir(basedir, sizeof(basedir), "config");
}

static void teardown_base(void)
{
	tu_rmtree(basedir);
}

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "%s/t-XXXXXX", basedir);
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	memset(&cfg, 0xa5, sizeof(cfg));
	err[0] = '\0';
}

static void teardown(void)
{
	tu_rmtree(tmpdir);
}

/* Write n bytes to tmpdir/name; returns the full path (one of 8 static buffers). */
static const char *write_bytes(const char *name, const void *data, size_t n)
{
	static char paths[8][PATH_MAX];
	static int next;
	char *p = paths[next++ % 8];
	FILE *f;

	snprintf(p, PATH_MAX, "%s/%s", tmpdir, name);
	f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
	return p;
}

static const char *write_file(const char *name, const char *text)
{
	return write_bytes(name, text, strlen(text));
}

static void make_dir(const char *name)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
	ck_assert_int_eq(mkdir(p, 0700), 0);
}

static int load(const char *path, const char *const *ov, size_t n)
{
	return config_load(&cfg, path, ov, n, err, sizeof(err));
}

/* Load text as lmmsd.conf and expect failure with a message containing want. */
static void expect_error(const char *text, int code, const char *want)
{
	const char *p = write_file("bad.conf", text);
	int r = load(p, NULL, 0);

	ck_assert_msg(r == code, "expected %d, got %d (%s) for:\n%s", code, r, err, text);
	ck_assert_msg(strstr(err, want), "message \"%s\" lacks \"%s\"", err, want);
}

/* --- parsers ---------------------------------------------------------- */

START_TEST(test_duration)
{
	static const struct {
		const char *s;
		int r;
		uint64_t ms;
	} cases[] = {
		{ "250ms", 0, 250 },
		{ "30s", 0, 30000 },
		{ "5m", 0, 300000 },
		{ "5min", 0, 300000 },
		{ "1h", 0, 3600000 },
		{ "1d", 0, 86400000 },
		{ "1h30m", 0, 5400000 },
		{ "1m 30s", 0, 90000 },
		{ "7", 0, 7000 },
		{ "0", 0, 0 },
		{ "0ms", 0, 0 },
		{ " 10s ", 0, 10000 },
		{ "18446744073709551615ms", 0, UINT64_MAX },
		{ "18446744073709551616ms", -ERANGE, 0 },
		{ "18446744073709552s", -ERANGE, 0 },
		{ "18446744073709551615", -ERANGE, 0 },
		{ "213503982335d", -ERANGE, 0 },
		{ "", -EINVAL, 0 },
		{ "  ", -EINVAL, 0 },
		{ "abc", -EINVAL, 0 },
		{ "-1s", -EINVAL, 0 },
		{ "+1s", -EINVAL, 0 },
		{ "1.5s", -EINVAL, 0 },
		{ "10x", -EINVAL, 0 },
		{ "10 seconds", -EINVAL, 0 },
		{ "s", -EINVAL, 0 },
		{ "1s2", -EINVAL, 0 },
		{ "0x10", -EINVAL, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 12345;
		int r = config_parse_duration_ms(cases[i].s, &v);

		ck_assert_msg(r == cases[i].r, "\"%s\": got %d want %d", cases[i].s, r, cases[i].r);
		if (r == 0)
			ck_assert_msg(v == cases[i].ms, "\"%s\": got %llu", cases[i].s,
				      (unsigned long long)v);
		else
			ck_assert_msg(v == 12345, "\"%s\": output written on error", cases[i].s);
	}
	ck_assert_int_eq(config_parse_duration_ms(NULL, NULL), -EINVAL);
}
END_TEST

START_TEST(test_size)
{
	static const struct {
		const char *s;
		int r;
		uint64_t b;
	} cases[] = {
		{ "512B", 0, 512 },
		{ "512", 0, 512 },
		{ "0", 0, 0 },
		{ "64KiB", 0, 65536 },
		{ "64K", 0, 65536 },
		{ "64k", 0, 65536 },
		{ "1MiB", 0, 1048576 },
		{ "1M", 0, 1048576 },
		{ "1GiB", 0, 1073741824 },
		{ "1G", 0, 1073741824 },
		{ "2 MiB", 0, 2097152 },
		{ "16777215TiB", 0, 16777215ull << 40 },
		{ "16777216TiB", -ERANGE, 0 },
		{ "18446744073709551615", 0, UINT64_MAX },
		{ "18446744073709551616", -ERANGE, 0 },
		{ "17179869184GiB", -ERANGE, 0 },
		{ "", -EINVAL, 0 },
		{ "MiB", -EINVAL, 0 },
		{ "1.5MiB", -EINVAL, 0 },
		{ "-1", -EINVAL, 0 },
		{ "1MB", -EINVAL, 0 },
		{ "1 mib", -EINVAL, 0 },
		{ "1KiBB", -EINVAL, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 777;
		int r = config_parse_size(cases[i].s, &v);

		ck_assert_msg(r == cases[i].r, "\"%s\": got %d want %d", cases[i].s, r, cases[i].r);
		if (r == 0)
			ck_assert_msg(v == cases[i].b, "\"%s\": got %llu", cases[i].s,
				      (unsigned long long)v);
	}
}
END_TEST

START_TEST(test_bool)
{
	const char *t[] = { "true", "yes", "on", "1", "TRUE", "Yes" };
	const char *f[] = { "false", "no", "off", "0", "False", "OFF" };
	const char *bad[] = { "", "2", "y", "n", "truee", "enable", " true" };
	bool b;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		b = false;
		ck_assert_int_eq(config_parse_bool(t[i], &b), 0);
		ck_assert(b);
	}
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		b = true;
		ck_assert_int_eq(config_parse_bool(f[i], &b), 0);
		ck_assert(!b);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(config_parse_bool(bad[i], &b) == -EINVAL, "\"%s\" accepted", bad[i]);
}
END_TEST

/* --- defaults ----------------------------------------------------------- */

START_TEST(test_defaults)
{
	config_init_defaults(&cfg);
	ck_assert_str_eq(cfg.server.socket, "");
	ck_assert_uint_eq(cfg.server.max_connections, 256);
	ck_assert_uint_eq(cfg.server.max_connections_per_uid, 64);
	ck_assert_uint_eq(cfg.server.max_message_bytes, 1u << 20);
	ck_assert_uint_eq(cfg.server.max_depth, 32);
	ck_assert_uint_eq(cfg.server.max_elements, 65536);
	ck_assert_uint_eq(cfg.server.max_inflight, 64);
	ck_assert_uint_eq(cfg.server.max_output_bytes, 4u << 20);
	ck_assert_uint_eq(cfg.server.max_result_bytes, 1u << 20);
	ck_assert_uint_eq(cfg.server.idle_timeout_ms, 0);
	ck_assert_uint_eq(cfg.server.message_timeout_ms, 10000);
	ck_assert_int_eq(cfg.server.log_level, 6);
	ck_assert_str_eq(cfg.ligs.module_dir, "");
	ck_assert_uint_eq(cfg.ligs.n_preload, 0);
	ck_assert_uint_eq(cfg.ligs.retry_backoff_ms, 1000);
	ck_assert_uint_eq(cfg.ligs.retry_backoff_max_ms, 60000);
	ck_assert_uint_eq(cfg.lugs.grace_period_ms, 30000);
	ck_assert_uint_eq(cfg.lugs.sweep_interval_ms, 5000);
	ck_assert_uint_eq(cfg.lugs.min_resident, 0);
	ck_assert(cfg.lugs.keep_while_cached);
	ck_assert_uint_eq(cfg.zafp.warm, 5);
	ck_assert_uint_eq(cfg.zafp.hot, 20);
	ck_assert_uint_eq(cfg.zafp.critical, 100);
	ck_assert_uint_eq(cfg.zafp.max_hot_paths, 100);
	ck_assert_uint_eq(cfg.zafp.decay_interval_ms, 60000);
	ck_assert_uint_eq(cfg.cache.default_ttl_ms, 300000);
	ck_assert_uint_eq(cfg.cache.max_bytes, 64u << 20);
	ck_assert_uint_eq(cfg.cache.max_entries, 65536);
	ck_assert_uint_eq(cfg.cache.expire_interval_ms, 1000);
	ck_assert_uint_eq(cfg.cache.negative_ttl_ms, 0);
	ck_assert_str_eq(cfg.access.admin_group, "");
	ck_assert_uint_eq(cfg.access.n_admin_uids, 0);
	ck_assert_uint_eq(cfg.n_modules, 0);
	ck_assert_int_eq(config_module_policy(&cfg, "hash"), POLICY_UTILITY);
	ck_assert_uint_eq(config_module_grace_ms(&cfg, "hash"), 30000);
	ck_assert_str_eq(policy_name(POLICY_CORE), "core");
	ck_assert_str_eq(policy_name(POLICY_UTILITY), "utility");
	ck_assert_str_eq(policy_name(POLICY_FEATURE), "feature");
	ck_assert_str_eq(policy_name((module_policy)42), "unknown");
}
END_TEST

START_TEST(test_missing_files)
{
	char p[PATH_MAX];

	/* an explicit path must exist */
	snprintf(p, sizeof(p), "%s/nope.conf", tmpdir);
	ck_assert_int_eq(load(p, NULL, 0), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, p));
	ck_assert_int_eq(load("", NULL, 0), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "empty"));
	/* an empty file is all defaults */
	ck_assert_int_eq(load(write_file("empty.conf", ""), NULL, 0), 0);
	config_init_defaults(&ref);
	ck_assert_int_eq(memcmp(&cfg, &ref, sizeof(cfg)), 0);
	/* a directory is not a config file */
	make_dir("dir.conf");
	snprintf(p, sizeof(p), "%s/dir.conf", tmpdir);
	ck_assert_int_lt(load(p, NULL, 0), 0);
	ck_assert_str_ne(err, "");
}
END_TEST

/* --- files ------------------------------------------------------------- */

START_TEST(test_file_values)
{
	const char *p = write_file("lmmsd.conf",
				   "; a comment\n"
				   "# another\n"
				   "[server]\n"
				   "socket = /tmp/x y.sock\n"
				   "max_connections=10\n"
				   "  max_depth = 2   \n"
				   "max_message_bytes = 64MiB\n"
				   "log_level = debug\n"
				   "idle_timeout = 1h30m ; inline comment\n"
				   "[ligs]\n"
				   "module_dir = /opt/lmms/modules\n"
				   "preload = hash, json  kv,sqlite\n"
				   "[lugs]\n"
				   "grace_period = 250ms\r\n"
				   "keep_while_cached = off\n"
				   "min_resident = 0\n"
				   "[cache]\n"
				   "max_bytes = 0\n"
				   "[access]\n"
				   "admin_group = wheel\n"
				   "admin_uids = 0, 1000,4294967294\n"
				   "[module hash]\n"
				   "policy = core\n"
				   "[module json]\n"
				   "grace_period = 2m\n"
				   "[ module kv ]\n"
				   "policy = feature\n"
				   "[module hash]\n"
				   "grace_period = 0\n");

	ck_assert_msg(load(p, NULL, 0) == 0, "%s", err);
	ck_assert_str_eq(cfg.server.socket, "/tmp/x y.sock");
	ck_assert_uint_eq(cfg.server.max_connections, 10);
	ck_assert_uint_eq(cfg.server.max_depth, 2);
	ck_assert_uint_eq(cfg.server.max_message_bytes, 64u << 20);
	ck_assert_int_eq(cfg.server.log_level, 7);
	ck_assert_uint_eq(cfg.server.idle_timeout_ms, 5400000);
	ck_assert_str_eq(cfg.ligs.module_dir, "/opt/lmms/modules");
	ck_assert_uint_eq(cfg.ligs.n_preload, 4);
	ck_assert_str_eq(cfg.ligs.preload[0], "hash");
	ck_assert_str_eq(cfg.ligs.preload[1], "json");
	ck_assert_str_eq(cfg.ligs.preload[2], "kv");
	ck_assert_str_eq(cfg.ligs.preload[3], "sqlite");
	ck_assert_uint_eq(cfg.lugs.grace_period_ms, 250);
	ck_assert(!cfg.lugs.keep_while_cached);
	ck_assert_uint_eq(cfg.lugs.min_resident, 0);
	ck_assert_uint_eq(cfg.cache.max_bytes, 0);
	ck_assert_str_eq(cfg.access.admin_group, "wheel");
	ck_assert_uint_eq(cfg.access.n_admin_uids, 3);
	ck_assert_uint_eq(cfg.access.admin_uids[0], 0);
	ck_assert_uint_eq(cfg.access.admin_uids[1], 1000);
	ck_assert_uint_eq(cfg.access.admin_uids[2], 4294967294u);
	ck_assert_uint_eq(cfg.n_modules, 3);
	ck_assert_int_eq(config_module_policy(&cfg, "hash"), POLICY_CORE);
	ck_assert_uint_eq(config_module_grace_ms(&cfg, "hash"), 0);
	ck_assert_int_eq(config_module_policy(&cfg, "json"), POLICY_UTILITY);
	ck_assert_uint_eq(config_module_grace_ms(&cfg, "json"), 120000);
	ck_assert_int_eq(config_module_policy(&cfg, "kv"), POLICY_FEATURE);
	ck_assert_uint_eq(config_module_grace_ms(&cfg, "kv"), 250);
	ck_assert_int_eq(config_module_policy(&cfg, "other"), POLICY_UTILITY);

	/* a later value of the same key wins; log level by number */
	p = write_file("lmmsd.conf", "[server]\nlog_level = 3\nlog_level = warning\n"
				     "[server]\nmax_depth = 5\n");
	ck_assert_msg(load(p, NULL, 0) == 0, "%s", err);
	ck_assert_int_eq(cfg.server.log_level, 4);
	ck_assert_uint_eq(cfg.server.max_depth, 5);
}
END_TEST

START_TEST(test_errors)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/bad.conf:", tmpdir);
	/* the brief's example, verbatim after the path */
	expect_error("[server]\n\n[lugs]\n\n\n\n\n\n\n\n\ngrace_period = abc\n", -EINVAL,
		     "bad.conf:12: [lugs] grace_period: \"abc\" is not a duration (e.g. 250ms, 30s, 5m)");
	ck_assert_msg(strncmp(err, p, strlen(p)) == 0, "%s does not start with the path", err);

	expect_error("[server]\nmax_depth = 33\n", -ERANGE,
		     "bad.conf:2: [server] max_depth: \"33\" is out of range (2..32)");
	expect_error("[server]\nmax_depth = 1\n", -ERANGE, ":2: [server] max_depth:");
	expect_error("[server]\nmax_message_bytes = 512B\n", -ERANGE,
		     "[server] max_message_bytes: \"512B\" is out of range (1KiB..64MiB)");
	expect_error("[server]\nmax_message_bytes = 65MiB\n", -ERANGE, "out of range");
	expect_error("[server]\nmax_message_bytes = 99999999999999999999\n", -ERANGE,
		     "is too large");
	expect_error("[server]\nmax_message_bytes = lots\n", -EINVAL, "is not a size");
	expect_error("[server]\nmax_connections = -1\n", -EINVAL,
		     ":2: [server] max_connections: \"-1\" is not a non-negative integer");
	expect_error("[server]\nmax_connections = 0\n", -ERANGE, "out of range (1..65536)");
	expect_error("[server]\nmax_connections = 4294967296\n", -ERANGE, "out of range");
	expect_error("[lugs]\nsweep_interval = 5ms\n", -ERANGE,
		     "[lugs] sweep_interval: \"5ms\" is out of range (10ms..1h)");
	expect_error("[lugs]\nkeep_while_cached = maybe\n", -EINVAL, "is not a boolean");
	expect_error("[server]\nlog_level = loud\n", -EINVAL, "is not a log level");
	expect_error("[server]\nlog_level = 8\n", -EINVAL, "is not a log level");
	expect_error("[server]\nnope = 1\n", -ENOENT, "bad.conf:2: [server]: unknown key \"nope\"");
	expect_error("[server]\n[bogus]\nx = 1\n", -ENOENT, "bad.conf:2: unknown section [bogus]");
	expect_error("[bogus]\n", -ENOENT, "bad.conf:1: unknown section [bogus]");
	expect_error("orphan = 1\n[server]\n", -EINVAL, "bad.conf:1: \"orphan\" comes before");
	expect_error("[server]\nthis line has no equals sign\n", -EINVAL,
		     "bad.conf:2: syntax error");
	expect_error("[server\nmax_depth = 3\n", -EINVAL, "bad.conf:1: syntax error");
	/* the first error is the one reported */
	expect_error("[server]\nmax_depth = 3\nmax_depth = x\nfoo\nmax_depth = 99\n", -EINVAL,
		     "bad.conf:3: [server] max_depth");
	expect_error("[server]\nfoo\nmax_depth = x\n", -EINVAL, "bad.conf:2: syntax error");
	expect_error("[module hash]\npolicy = always\n", -EINVAL,
		     "bad.conf:2: [module hash] policy: \"always\" is not a policy");
	expect_error("[module hash]\nSize = 1\n", -EINVAL, "[module hash]: \"Size\" is not a valid key");
	expect_error("[module ../etc]\npolicy = core\n", -EINVAL,
		     "bad.conf:1: [module ../etc]: \"../etc\" is not a valid module name");
	expect_error("[module a/b]\n", -EINVAL, "not a valid module name");
	expect_error("[module "
		     "a123456789012345678901234567890123456789012345678901234567890123]\n",
		     -ENAMETOOLONG, "bad.conf:1: section name is too long");
	expect_error("[ligs]\npreload = hash, ../x\n", -EINVAL,
		     "[ligs] preload: \"../x\" is not a valid module name");
	expect_error("[ligs]\npreload = hash hash\n", -EINVAL, "\"hash\" is listed twice");
	expect_error("[ligs]\nmodule_dir = relative/dir\n", -EINVAL, "is not an absolute path");
	expect_error("[access]\nadmin_uids = 0, root\n", -EINVAL,
		     "[access] admin_uids: \"root\" is not a numeric uid");
	expect_error("[access]\nadmin_uids = 4294967295\n", -EINVAL, "is not a numeric uid");
	expect_error("[access]\nadmin_group = -oops\n", -EINVAL, "is not a valid group name");
	expect_error("[zafp]\nwarm = 50\n", -EINVAL, "[zafp] warm <= hot <= critical");
	expect_error("[zafp]\ncritical = 10\n", -EINVAL, "warm <= hot <= critical");
	expect_error("[ligs]\nretry_backoff = 2m\n", -EINVAL, "retry_backoff");
	expect_error("[server]\nsocket = "
		     "/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n",
		     -ENAMETOOLONG, "[server] socket: value is too long (at most 107 bytes)");

	/* a line longer than inih's buffer is refused, not split */
	char longline[400];
	memset(longline, 'x', sizeof(longline));
	memcpy(longline, "[ligs]\nmodule_dir = /", 21);
	memcpy(longline + sizeof(longline) - 2, "\n", 2);
	expect_error(longline, -ENAMETOOLONG, "bad.conf:2: line is too long");
}
END_TEST

/*
 * Regression: a CR followed by ~200 more bytes made the line reader check
 * the length only up to the CR and then copy the whole line into inih's
 * 200-byte stack buffer, smashing libinih's stack (--check-config, start-up
 * and SIGHUP reload all crashed). This is the file that crashed them.
 */
START_TEST(test_cr_overflow)
{
	char text[512];
	int n = snprintf(text, sizeof(text), "[server]\nsocket = x\r");

	memset(text + n, 'A', 250);
	memcpy(text + n + 250, "\n", 2);
	expect_error(text, -EINVAL, "bad.conf:2: carriage return inside the line");

	/* the length is measured over the whole line, CR or no CR */
	memset(text, 'x', sizeof(text));
	memcpy(text, "[server]\n# ", 11);
	memcpy(text + 300, "\r\n", 3);
	expect_error(text, -ENAMETOOLONG, "bad.conf:2: line is too long");

	/* a bare CR is refused even in a short line: inih would keep it in the value */
	expect_error("[server]\nsocket = /a\rb\n", -EINVAL, "bad.conf:2: carriage return");
	expect_error("[server]\r\n\r[ligs]\n", -EINVAL, "bad.conf:2: carriage return");
}
END_TEST

/* CRLF files (edited elsewhere) still load, and the limits are exact. */
START_TEST(test_line_endings_and_length)
{
	char text[1024];
	const char *p;

	p = write_file("crlf.conf", "[server]\r\nmax_depth = 3\r\n\r\n[lugs]\r\nmin_resident = 2\r");
	ck_assert_msg(load(p, NULL, 0) == 0, "%s", err);
	ck_assert_uint_eq(cfg.server.max_depth, 3);
	ck_assert_uint_eq(cfg.lugs.min_resident, 2);

	/* 197 characters is inih's limit (its 200-byte buffer less "\r\n\0") */
	memset(text, '#', sizeof(text));
	memcpy(text, "[server]\n", 9);
	memcpy(text + 9 + 197, "\r\nmax_depth = 4\n", 17);
	p = write_file("edge.conf", text);
	ck_assert_msg(load(p, NULL, 0) == 0, "%s", err);
	ck_assert_uint_eq(cfg.server.max_depth, 4);
	memset(text, '#', sizeof(text));
	memcpy(text, "[server]\n", 9);
	memcpy(text + 9 + 198, "\n", 2);
	expect_error(text, -ENAMETOOLONG, "bad.conf:2: line is too long (at most 197 characters)");

	/* indentation is dropped before the limit applies */
	memset(text, ' ', sizeof(text));
	memcpy(text, "[server]\n", 9);
	memcpy(text + 600, "max_depth = 5\n", 15);
	p = write_file("indent.conf", text);
	ck_assert_msg(load(p, NULL, 0) == 0, "%s", err);
	ck_assert_uint_eq(cfg.server.max_depth, 5);

	/* a form feed is no continuation marker either */
	p = write_file("ff.conf", "[server]\nmax_depth = 6\n\fmax_inflight = 7\n");
	ck_assert_msg(load(p, NULL, 0) == 0, "%s", err);
	ck_assert_uint_eq(cfg.server.max_depth, 6);
	ck_assert_uint_eq(cfg.server.max_inflight, 7);

	static const char nul[] = "[server]\nmax_depth = 6\0 7\n";
	p = write_bytes("nul.conf", nul, sizeof(nul) - 1);
	ck_assert_int_eq(load(p, NULL, 0), -EINVAL);
	ck_assert_msg(strstr(err, "nul.conf:2: NUL byte in line"), "%s", err);
}
END_TEST

START_TEST(test_limits_edges)
{
	const char *p = write_file("lmmsd.conf", "[server]\n"
						 "max_message_bytes = 1KiB\n"
						 "max_depth = 32\n"
						 "max_connections = 65536\n"
						 "[lugs]\n"
						 "sweep_interval = 10ms\n"
						 "[ligs]\n"
						 "retry_backoff = 10ms\n"
						 "retry_backoff_max = 10ms\n"
						 "[zafp]\n"
						 "warm = 7\nhot = 7\ncritical = 7\n");

	ck_assert_msg(load(p, NULL, 0) == 0, "%s", err);
	ck_assert_uint_eq(cfg.server.max_message_bytes, 1024);
	ck_assert_uint_eq(cfg.server.max_depth, 32);
	ck_assert_uint_eq(cfg.server.max_connections, 65536);
	ck_assert_uint_eq(cfg.lugs.sweep_interval_ms, 10);
	ck_assert_uint_eq(cfg.zafp.hot, 7);
}
END_TEST

/* --- precedence ------------------------------------------------------- */

START_TEST(test_precedence)
{
	const char *main_path = write_file("lmmsd.conf", "[lugs]\n"
							 "grace_period = 1s\n"
							 "sweep_interval = 1s\n"
							 "min_resident = 1\n"
							 "[cache]\nmax_entries = 1\n");
	make_dir("lmmsd.conf.d");
	write_file("lmmsd.conf.d/20-b.conf", "[lugs]\nsweep_interval = 3s\nmin_resident = 3\n");
	write_file("lmmsd.conf.d/10-a.conf", "[lugs]\nsweep_interval = 2s\nmin_resident = 2\n"
					     "[module hash]\npolicy = feature\n");
	write_file("lmmsd.conf.d/30-c.conf.disabled", "[lugs]\nmin_resident = 99\n");
	write_file("lmmsd.conf.d/.hidden.conf", "[lugs]\nmin_resident = 98\n");
	write_file("lmmsd.conf.d/40-d.conf", "[module hash]\ngrace_period = 9s\n");
	make_dir("lmmsd.conf.d/50-dir.conf");
	const char *ov[] = { "lugs.min_resident=7", "module.hash.policy = core",
			     "cache.max_entries=5", "cache.max_entries=6" };

	ck_assert_msg(load(main_path, ov, 4) == 0, "%s", err);
	ck_assert_uint_eq(cfg.lugs.grace_period_ms, 1000); /* file only */
	ck_assert_uint_eq(cfg.lugs.sweep_interval_ms, 3000); /* last drop-in wins */
	ck_assert_uint_eq(cfg.lugs.min_resident, 7); /* --set beats drop-ins */
	ck_assert_uint_eq(cfg.cache.max_entries, 6); /* later --set wins */
	ck_assert_int_eq(config_module_policy(&cfg, "hash"), POLICY_CORE);
	ck_assert_uint_eq(config_module_grace_ms(&cfg, "hash"), 9000);
	ck_assert_uint_eq(cfg.n_modules, 1);

	/* an error in a drop-in names the drop-in */
	write_file("lmmsd.conf.d/35-bad.conf", "[lugs]\n\nmin_resident = many\n");
	ck_assert_int_eq(load(main_path, NULL, 0), -EINVAL);
	ck_assert_msg(strstr(err, "lmmsd.conf.d/35-bad.conf:3: [lugs] min_resident"), "%s", err);
	/* an error in --set names the assignment */
	ck_assert_int_eq(unlink(write_file("lmmsd.conf.d/35-bad.conf", "")), 0);
	const char *bad[] = { "lugs.min_resident=many" };
	ck_assert_int_eq(load(main_path, bad, 1), -EINVAL);
	ck_assert_msg(strstr(err, "--set lugs.min_resident=many: [lugs] min_resident: \"many\""),
		      "%s", err);
}
END_TEST

START_TEST(test_dropins_without_main)
{
	char p[PATH_MAX];

	/* drop-ins of a main file that is absent still count (like systemd) only
	 * for the default path; an explicit path must exist, so test with an
	 * existing one and an absent .d directory */
	snprintf(p, sizeof(p), "%s/x.conf", tmpdir);
	write_file("x.conf", "[lugs]\nmin_resident = 4\n");
	ck_assert_msg(load(p, NULL, 0) == 0, "%s", err);
	ck_assert_uint_eq(cfg.lugs.min_resident, 4);

	/* too many drop-ins */
	make_dir("x.conf.d");
	for (int i = 0; i < 257; i++) {
		char name[64];
		snprintf(name, sizeof(name), "x.conf.d/%03d.conf", i);
		write_file(name, "");
	}
	ck_assert_int_eq(load(p, NULL, 0), -E2BIG);
	ck_assert_ptr_nonnull(strstr(err, "more than 256 drop-in files"));
}
END_TEST

/* --- --set -------------------------------------------------------------- */

START_TEST(test_set)
{
	config_init_defaults(&cfg);
	ck_assert_int_eq(config_set(&cfg, "server.max_depth=9", err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg.server.max_depth, 9);
	ck_assert_int_eq(config_set(&cfg, " zafp.hot = 30 ", err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg.zafp.hot, 30);
	ck_assert_int_eq(config_set(&cfg, "server.socket=", err, sizeof(err)), 0);
	ck_assert_str_eq(cfg.server.socket, "");
	ck_assert_int_eq(config_set(&cfg, "server.socket=/run/a=b.sock", err, sizeof(err)), 0);
	ck_assert_str_eq(cfg.server.socket, "/run/a=b.sock");
	ck_assert_int_eq(config_set(&cfg, "module.my-mod_2.policy=core", err, sizeof(err)), 0);
	ck_assert_int_eq(config_module_policy(&cfg, "my-mod_2"), POLICY_CORE);
	/* a dot can never be in a module name: methods split at the first one */
	ck_assert_int_eq(config_set(&cfg, "module.my.mod.policy=core", err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(config_set(&cfg, "module.hash.grace_period=100ms", err, sizeof(err)), 0);
	ck_assert_uint_eq(config_module_grace_ms(&cfg, "hash"), 100);
	ck_assert_int_eq(config_module_policy(&cfg, "hash"), POLICY_UTILITY);

	static const struct {
		const char *a;
		int r;
		const char *msg;
	} bad[] = {
		{ "server.max_depth", -EINVAL, "expected section.key=value" },
		{ "max_depth=3", -EINVAL, "expected section.key=value" },
		{ ".max_depth=3", -EINVAL, "expected section.key=value" },
		{ "server.=3", -EINVAL, "expected section.key=value" },
		{ "server.nope=3", -ENOENT, "unknown key \"nope\"" },
		{ "nope.key=3", -ENOENT, "unknown section [nope]" },
		{ "module.policy=core", -EINVAL, "expected module.NAME.key=value" },
		{ "module..policy=core", -EINVAL, "not a valid module name" },
		{ "module.a/b.policy=core", -EINVAL, "not a valid module name" },
		{ "module.hash.no-dash=red", -EINVAL, "is not a valid key" },
		{ "server.max_depth=100", -ERANGE, "out of range" },
		{ NULL, -EINVAL, "missing" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = config_set(&cfg, bad[i].a, err, sizeof(err));
		ck_assert_msg(r == bad[i].r, "%s: got %d (%s)", bad[i].a, r, err);
		ck_assert_msg(strstr(err, bad[i].msg), "%s: \"%s\" lacks \"%s\"", bad[i].a, err,
			      bad[i].msg);
	}
	/* a failed --set leaves the key as it was */
	ck_assert_uint_eq(cfg.server.max_depth, 9);

	/* more module sections than fit */
	config_init_defaults(&cfg);
	for (int i = 0; i < CONFIG_MAX_MODULES; i++) {
		char a[96];
		snprintf(a, sizeof(a), "module.m%d.policy=core", i);
		ck_assert_int_eq(config_set(&cfg, a, err, sizeof(err)), 0);
	}
	ck_assert_int_eq(config_set(&cfg, "module.one_more.policy=core", err, sizeof(err)), -E2BIG);
	ck_assert_int_eq(config_set(&cfg, "module.m7.policy=feature", err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg.n_modules, CONFIG_MAX_MODULES);

	/* errors are safe with no buffer at all */
	ck_assert_int_eq(config_set(&cfg, "x", NULL, 0), -EINVAL);
}
END_TEST

/* --- print / visit / diff ------------------------------------------- */

static char *print_to_string(const config *c)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);

	ck_assert_ptr_nonnull(f);
	config_print(c, f);
	ck_assert_int_eq(fclose(f), 0);
	return buf;
}

typedef struct visit_rec {
	size_t n;
	char text[16384];
	size_t off;
} visit_rec;

static void visit_cb(void *ud, const char *section, const char *key, const char *value)
{
	visit_rec *v = ud;

	v->n++;
	v->off += (size_t)snprintf(v->text + v->off, sizeof(v->text) - v->off, "%s|%s|%s\n",
				   section, key, value);
	ck_assert_uint_lt(v->off, sizeof(v->text));
}

START_TEST(test_round_trip)
{
	const char *ov[] = {
		"server.socket=/run/test dir/s.sock",
		"server.max_message_bytes=1025B",
		"server.idle_timeout=90s",
		"server.message_timeout=1500ms",
		"server.log_level=notice",
		"ligs.preload=hash,json",
		"ligs.module_dir=/opt/m",
		"lugs.grace_period=2h",
		"lugs.keep_while_cached=no",
		"cache.max_bytes=3GiB",
		"cache.default_ttl=10m",
		"cache.negative_ttl=45m",
		"access.admin_uids=5,6,7",
		"access.admin_group=adm",
		"module.hash.policy=core",
		"module.kv.grace_period=1ms",
		"module.z.policy=feature",
	};
	visit_rec *v1 = calloc(1, sizeof(*v1)), *v2 = calloc(1, sizeof(*v2));
	char *text, *text2;
	config *back = calloc(1, sizeof(*back));

	ck_assert_msg(load(write_file("empty.conf", ""), ov, sizeof(ov) / sizeof(ov[0])) == 0, "%s",
		      err);
	text = print_to_string(&cfg);
	ck_assert_ptr_nonnull(strstr(text, "[server]\nsocket = /run/test dir/s.sock\n"));
	ck_assert_ptr_nonnull(strstr(text, "max_message_bytes = 1025B\n"));
	ck_assert_ptr_nonnull(strstr(text, "idle_timeout = 90s\n"));
	ck_assert_ptr_nonnull(strstr(text, "message_timeout = 1500ms\n"));
	ck_assert_ptr_nonnull(strstr(text, "grace_period = 2h\n"));
	ck_assert_ptr_nonnull(strstr(text, "default_ttl = 10m\n"));
	ck_assert_ptr_nonnull(strstr(text, "max_bytes = 3GiB\n"));
	ck_assert_ptr_nonnull(strstr(text, "admin_uids = 5, 6, 7\n"));
	ck_assert_ptr_nonnull(strstr(text, "[module hash]\npolicy = core\n\n"));
	ck_assert_ptr_nonnull(strstr(text, "[module kv]\npolicy = utility\ngrace_period = 1ms\n"));

	const char *p = write_file("printed.conf", text);
	ck_assert_msg(config_load(back, p, NULL, 0, err, sizeof(err)) == 0, "%s\n%s", err, text);
	for (size_t i = 0; i < sizeof(cfg); i++)
		ck_assert_msg(((char *)back)[i] == ((char *)&cfg)[i], "differ at offset %zu", i);
	text2 = print_to_string(back);
	ck_assert_str_eq(text, text2);

	/* visit: same keys, same order, same values as print */
	size_t n = config_visit(&cfg, visit_cb, v1);
	ck_assert_uint_eq(n, v1->n);
	ck_assert_uint_eq(config_visit(back, visit_cb, v2), n);
	ck_assert_str_eq(v1->text, v2->text);
	ck_assert_ptr_nonnull(strstr(v1->text, "server|socket|/run/test dir/s.sock\n"));
	ck_assert_ptr_nonnull(strstr(v1->text, "module hash|policy|core\n"));
	ck_assert_ptr_nonnull(strstr(v1->text, "module kv|grace_period|1ms\n"));
	ck_assert_ptr_null(strstr(v1->text, "module hash|grace_period"));
	/* 46 top-level keys, plus policy for 3 modules and one grace period */
	ck_assert_uint_eq(n, 46 + 3 + 1);

	/* the defaults round-trip too */
	config_init_defaults(&ref);
	free(text);
	text = print_to_string(&ref);
	ck_assert_ptr_nonnull(strstr(text, "[server]\nsocket =\n"));
	p = write_file("printed.conf", text);
	ck_assert_msg(config_load(back, p, NULL, 0, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(memcmp(back, &ref, sizeof(ref)), 0);

	free(text);
	free(text2);
	free(back);
	free(v1);
	free(v2);
}
END_TEST

/*
 * Regression: "socket = ;x" is read back by inih as an empty value (a ';'
 * after a blank opens an inline comment), so --check-config's output of a
 * value starting with ';' did not load back to the same configuration.
 */
START_TEST(test_round_trip_semicolon)
{
	static const char *const values[] = { ";x", ";", ";;a;b", "a;b", "#x", "=x" };
	config *back = calloc(1, sizeof(*back));

	ck_assert_ptr_nonnull(back);
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char set[64];
		const char *ov[] = { set };
		char *text;

		snprintf(set, sizeof(set), "server.socket=%s", values[i]);
		ck_assert_msg(load(write_file("empty.conf", ""), ov, 1) == 0, "%s", err);
		ck_assert_str_eq(cfg.server.socket, values[i]);
		text = print_to_string(&cfg);
		ck_assert_msg(config_load(back, write_file("printed.conf", text), NULL, 0, err,
					  sizeof(err)) == 0,
			      "%s\n%s", err, text);
		ck_assert_msg(strcmp(back->server.socket, values[i]) == 0,
			      "socket \"%s\" came back as \"%s\" from:\n%s", values[i],
			      back->server.socket, text);
		ck_assert_int_eq(memcmp(back, &cfg, sizeof(cfg)), 0);
		free(text);
	}
	/* and what a person writes the ordinary way is still a comment */
	ck_assert_msg(load(write_file("c.conf", "[server]\nsocket = ;x\n"), NULL, 0) == 0, "%s",
		      err);
	ck_assert_str_eq(cfg.server.socket, "");
	free(back);
}
END_TEST

/* Load from the empty file with overrides, print, load that: same struct. */
static void round_trip_ok(const char *const *ov, size_t n)
{
	config *back = calloc(1, sizeof(*back));
	char *text;

	ck_assert_ptr_nonnull(back);
	ck_assert_msg(load(write_file("empty.conf", ""), ov, n) == 0, "%s", err);
	text = print_to_string(&cfg);
	ck_assert_msg(config_load(back, write_file("printed.conf", text), NULL, 0, err,
				  sizeof(err)) == 0,
		      "%s\n%s", err, text);
	ck_assert_msg(memcmp(back, &cfg, sizeof(cfg)) == 0, "loads back differently:\n%s", text);
	free(text);
	free(back);
}

static void expect_set_error(const char *assignment, int code, const char *want)
{
	const char *ov[] = { assignment };
	int r = load(write_file("empty.conf", ""), ov, 1);

	ck_assert_msg(r == code, "%s: expected %d, got %d (%s)", assignment, code, r, err);
	ck_assert_msg(strstr(err, want), "%s: message \"%s\" lacks \"%s\"", assignment, err, want);
}

/*
 * Regressions found by tests/fuzz/fuzz-config: configurations that loaded
 * but whose --check-config output did not load back the same. inih cuts a
 * section name at 49 bytes without a word, so "[module <47 bytes>]" came
 * back as another module; a value set by --set printed on a line longer
 * than inih reads; a module's own setting kept the tail of a longer earlier
 * value behind its NUL and took " ;" and control characters as they came.
 */
START_TEST(test_round_trip_what_inih_cannot_carry)
{
	char set[600], name[64];

	/* the fuzzer's input, minimized: a module name too long for its section */
	expect_set_error("module.sqlimax_messagesweep_interval_byte4294967295ste.policy=core",
			 -ENAMETOOLONG, "the name is too long for a section (at most 42 characters)");
	expect_error("[module sqlimax_messagesweep_interval_byte4294967295ste]\npolicy = core\n",
		     -ENAMETOOLONG, "bad.conf:1: section name is too long");
	memset(name, 'm', 42);
	name[42] = '\0';
	snprintf(set, sizeof(set), "module.%s.policy=core", name);
	round_trip_ok((const char *[]){ set }, 1);

	/* a value too long for one printed line */
	memset(set, 0, sizeof(set));
	memcpy(set, "ligs.module_dir=/", 17);
	memset(set + 17, 'd', 300);
	expect_set_error(set, -ENAMETOOLONG,
			 "[ligs] module_dir: value is too long for one configuration line");
	memset(set, 0, sizeof(set));
	memcpy(set, "module.sqlite.path=/", 20);
	memset(set + 20, 'p', 190);
	expect_set_error(set, -ENAMETOOLONG, "[module sqlite] path: value is too long");
	/* a list that prints wider than it was written */
	memset(set, 0, sizeof(set));
	memcpy(set, "[ligs]\npreload = ", 17);
	for (int i = 0; i < 60; i++) /* 189 characters written, 248 printed */
		snprintf(set + strlen(set), sizeof(set) - strlen(set), "%s%c%c", i ? "," : "",
			 'a' + i % 26, 'a' + i / 26);
	strcat(set, "\n");
	expect_error(set, -ENAMETOOLONG, "[ligs] preload: value is too long for one");
	/* the longest value that fits still round-trips */
	memset(set, 0, sizeof(set));
	memcpy(set, "ligs.module_dir=/", 17);
	memset(set + 17, 'd', 197 - strlen("module_dir = /"));
	round_trip_ok((const char *[]){ set }, 1);

	/* module settings: the rules of string values, and no stale tail */
	expect_set_error("module.sqlite.path=a ;b", -EINVAL, "has control characters");
	expect_set_error("module.sqlite.path=a\tb", -EINVAL, "has control characters");
	round_trip_ok((const char *[]){ "module.sqlite.path=/a/long/path/first",
					"module.sqlite.path=;short" },
		      2);
	ck_assert_uint_eq(cfg.n_settings, 1);
	ck_assert_str_eq(cfg.settings[0].value, ";short");
}
END_TEST

START_TEST(test_diff_restart_only)
{
	config *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	char buf[256];

	config_init_defaults(a);
	config_init_defaults(b);
	ck_assert_int_eq(config_diff_restart_only(a, b, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "");
	/* reloadable keys do not count */
	ck_assert_int_eq(config_set(b, "lugs.grace_period=1s", err, sizeof(err)), 0);
	ck_assert_int_eq(config_set(b, "module.hash.policy=core", err, sizeof(err)), 0);
	ck_assert_int_eq(config_diff_restart_only(a, b, buf, sizeof(buf)), 0);
	ck_assert_int_eq(config_set(b, "ligs.module_dir=/x", err, sizeof(err)), 0);
	ck_assert_int_eq(config_diff_restart_only(a, b, buf, sizeof(buf)), 1);
	ck_assert_str_eq(buf, "ligs.module_dir");
	ck_assert_int_eq(config_set(b, "server.socket=/y", err, sizeof(err)), 0);
	ck_assert_int_eq(config_diff_restart_only(a, b, buf, sizeof(buf)), 2);
	ck_assert_str_eq(buf, "server.socket,ligs.module_dir");
	/* a short buffer truncates, the count stays right */
	ck_assert_int_eq(config_diff_restart_only(a, b, buf, 8), 2);
	ck_assert_uint_lt(strlen(buf), 8);
	ck_assert_int_eq(config_diff_restart_only(a, b, NULL, 0), 2);
	free(a);
	free(b);
}
END_TEST

/* --- the shipped template ------------------------------------------- */

START_TEST(test_template)
{
	const char *tpl = getenv("LMMS_CONF_TEMPLATE");
	char line[1024], out[PATH_MAX];
	FILE *in, *o;
	int keys = 0, sections = 0;

	ck_assert_msg(tpl && *tpl, "LMMS_CONF_TEMPLATE is not set");
	in = fopen(tpl, "r");
	ck_assert_msg(in != NULL, "cannot open %s", tpl);
	snprintf(out, sizeof(out), "%s/uncommented.conf", tmpdir);
	o = fopen(out, "w");
	ck_assert_ptr_nonnull(o);
	/* "#key = value" and "#[section]" are settings; "# prose" is not */
	while (fgets(line, sizeof(line), in)) {
		ck_assert_msg(!strchr(line, '@'), "unsubstituted placeholder: %s", line);
		if (line[0] == '#' && (line[1] == '[' || (line[1] >= 'a' && line[1] <= 'z'))) {
			fputs(line + 1, o);
			keys += line[1] != '[';
		} else {
			fputs(line, o);
			sections += line[0] == '[';
		}
	}
	fclose(in);
	ck_assert_int_eq(fclose(o), 0);

	/* the template as shipped, all commented out, is the defaults */
	config_init_defaults(&ref);
	ck_assert_msg(config_load(&cfg, tpl, NULL, 0, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(memcmp(&cfg, &ref, sizeof(ref)), 0);

	/* uncommented, it shows every key and each at its default */
	ck_assert_msg(config_load(&cfg, out, NULL, 0, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(sections, 6);
	ck_assert_int_eq(keys, 46 + 2); /* + the [module hash] example */
	ck_assert_uint_eq(cfg.n_modules, 1);
	ck_assert_str_eq(cfg.modules[0].name, "hash");
	ck_assert_int_eq(cfg.modules[0].policy, POLICY_CORE);
	ck_assert(cfg.modules[0].has_grace_period);
	memset(cfg.modules, 0, sizeof(cfg.modules));
	cfg.n_modules = 0;
	ck_assert_msg(memcmp(&cfg, &ref, sizeof(ref)) == 0, "template defaults differ:\n%s\nvs\n%s",
		      print_to_string(&cfg), print_to_string(&ref));
}
END_TEST

static void collect_setting(void *ud, const char *key, const char *value)
{
	char *out = ud;

	strcat(out, key);
	strcat(out, "=");
	strcat(out, value);
	strcat(out, ";");
}

/*
 * Regression (fuzz-config): settings of modules whose sections come back
 * again ([module a] x, [module b] y, [module a] z) were kept in the order
 * read, while --check-config prints them grouped by module, so the printed
 * configuration loaded back to a different array.
 */
START_TEST(test_round_trip_settings_order)
{
	static const char *const ov[] = { "module.a.x=1", "module.b.y=2", "module.a.z=3",
					  "module.b.w=4", "module.a.x=5" };
	char got[256] = "";

	round_trip_ok(ov, sizeof(ov) / sizeof(ov[0]));
	ck_assert_uint_eq(config_module_settings(&cfg, "a", collect_setting, got), 2);
	ck_assert_uint_eq(config_module_settings(&cfg, "b", collect_setting, got), 2);
	ck_assert_str_eq(got, "x=5;z=3;y=2;w=4;");
}
END_TEST

/* Keys of [module NAME] the daemon does not use are the module's own
 * settings (DESIGN.md §3): kept per module, in order, shown by config_visit,
 * and settable with --set module.NAME.key=value. */
START_TEST(test_module_settings)
{
	config mc;
	char e[512], got[512] = "";
	char ini[] = "[module sqlite]\npath = /var/lib/app.db\npolicy = core\n"
		     "[module kv]\nmax_keys = 10\n";
	char path[] = "/tmp/lmms-test-settings-XXXXXX";
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, ini, strlen(ini)), (int)strlen(ini));
	close(fd);
	ck_assert_int_eq(config_load(&mc, path, NULL, 0, e, sizeof(e)), 0);
	unlink(path);
	ck_assert_int_eq(config_module_policy(&mc, "sqlite"), POLICY_CORE);
	ck_assert_uint_eq(config_module_settings(&mc, "sqlite", collect_setting, got), 1);
	ck_assert_str_eq(got, "path=/var/lib/app.db;");
	ck_assert_int_eq(config_set(&mc, "module.sqlite.path=/tmp/x.db", e, sizeof(e)), 0);
	ck_assert_int_eq(config_set(&mc, "module.sqlite.journal=wal", e, sizeof(e)), 0);
	got[0] = '\0';
	ck_assert_uint_eq(config_module_settings(&mc, "sqlite", collect_setting, got), 2);
	ck_assert_str_eq(got, "path=/tmp/x.db;journal=wal;");
	got[0] = '\0';
	ck_assert_uint_eq(config_module_settings(&mc, "kv", collect_setting, got), 1);
	ck_assert_str_eq(got, "max_keys=10;");
	ck_assert_uint_eq(config_module_settings(&mc, "echo", collect_setting, got), 0);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");

	tcase_add_unchecked_fixture(tc, setup_base, teardown_base);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_duration);
	tcase_add_test(tc, test_size);
	tcase_add_test(tc, test_bool);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_missing_files);
	tcase_add_test(tc, test_file_values);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_cr_overflow);
	tcase_add_test(tc, test_line_endings_and_length);
	tcase_add_test(tc, test_limits_edges);
	tcase_add_test(tc, test_precedence);
	tcase_add_test(tc, test_dropins_without_main);
	tcase_add_test(tc, test_set);
	tcase_add_test(tc, test_module_settings);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_round_trip_semicolon);
	tcase_add_test(tc, test_round_trip_what_inih_cannot_carry);
	tcase_add_test(tc, test_round_trip_settings_order);
	tcase_add_test(tc, test_diff_restart_only);
	tcase_add_test(tc, test_template);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(config_suite());
}
