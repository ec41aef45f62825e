/*
 * test-builtin.c - the built-in "lmms" interface as a method table, called
 * through builtin_call on a real lmmsd in process (tests/util.c's
 * tu_daemon): every row with a correct call, its arity bounds answered
 * bad_params with the row's own usage text, admin rights (refused for a
 * connection whose uid is neither root nor the daemon's, granted through
 * access.admin_uids, the admin group's gid or a supplementary group),
 * notifications (read-only rows do nothing, admin rows run, nothing is ever
 * answered), and each method's errors.
 *
 * Every reply is decoded by tu_peer, which fails on anything but whole,
 * well-formed messages, so a truncated reply could not pass unnoticed. A
 * reply that fails half-way cannot be forced through this interface (its
 * handlers write bounded values into a growable buffer); test-reply covers
 * the builder's failures and reply_finish's verdict.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builtin.h"
#include "daemon.h"
#include "stats.h"
#include "util.h"

static tu_daemon t;

static void setup(void)
{
	static const char *const mods[] = { "echo", "veto", "nodelete", "badinit", NULL };

	tu_daemon_init(&t, mods);
}

static void teardown(void)
{
	tu_daemon_fini(&t);
}

/* builtin_call on a request or notification (params as tu_pack_request). */
static void bcall_va(bool notification, uint32_t msgid, const char *method, const char *fmt,
		     va_list ap)
{
	msgpack_sbuffer sb;
	msgpack_object params;
	msgpack_zone zone;
	proto_request r;
	size_t off = 0;

	msgpack_sbuffer_init(&sb);
	tu_pack_va(&sb, notification, msgid, method, fmt, ap);
	ck_assert(proto_request_peek(sb.data, sb.size, &r));
	ck_assert(msgpack_zone_init(&zone, 1024));
	ck_assert_int_eq(msgpack_unpack(r.params, r.params_len, &off, &zone, &params),
			 MSGPACK_UNPACK_SUCCESS);
	builtin_call(&t.d.bi, t.c, &r, &params);
	conn_flush(t.c);
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_destroy(&sb);
}

static void bcall(uint32_t msgid, const char *method, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	bcall_va(false, msgid, method, fmt, ap);
	va_end(ap);
}

static void bnotify(const char *method, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	bcall_va(true, 0, method, fmt, ap);
	va_end(ap);
}

static module *mod(const char *name)
{
	return tu_daemon_module(&t, name);
}

static void expect_true(uint32_t msgid)
{
	tu_msg m;

	tu_expect_ok(&t.peer, msgid, &m);
	ck_assert_int_eq(m.result->type, MSGPACK_OBJECT_BOOLEAN);
	ck_assert(m.result->via.boolean);
	tu_msg_free(&m);
}

static uint64_t expect_uint(uint32_t msgid)
{
	uint64_t v;
	tu_msg m;

	tu_expect_ok(&t.peer, msgid, &m);
	ck_assert_int_eq(m.result->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	v = m.result->via.u64;
	tu_msg_free(&m);
	return v;
}

/* Nothing was answered before this: lmms.ping now is the next reply. */
static void expect_nothing_before_ping(uint32_t msgid)
{
	tu_msg m;

	bcall(msgid, "lmms.ping", "");
	tu_expect_ok(&t.peer, msgid, &m);
	ck_assert(tu_obj_is_str(m.result, "pong"));
	tu_msg_free(&m);
}

static void expect_keys(const msgpack_object *map, const char *const *keys)
{
	ck_assert_int_eq(map->type, MSGPACK_OBJECT_MAP);
	for (const char *const *k = keys; *k; k++)
		ck_assert_msg(tu_map_get(map, *k) != NULL, "no key \"%s\"", *k);
}

/* A uid that is neither root nor the daemon's own. */
static uid_t other_uid(void)
{
	return geteuid() == 65534 ? 65533 : 65534;
}

static void become_other_user(void)
{
	t.c->uid = other_uid();
	t.c->gid = other_uid();
	t.c->n_groups = 0;
}

/* ---- the table ---- */

/* The read-only rows first, then the admin ones. */
static const char *const rows[] = {
	"ping", "stats", "modules", "ops", "config", "metrics",
	"load", "unload", "invalidate", "reload", "trim", "monitor",
};
#define N_READ_ONLY 6

START_TEST(table_has_every_row)
{
	const builtin_method *bm;

	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		bm = builtin_find(rows[i], strlen(rows[i]));
		ck_assert_msg(bm != NULL, "no row %s", rows[i]);
		ck_assert_str_eq(bm->name, rows[i]);
		ck_assert_int_eq(bm->admin, i >= N_READ_ONLY);
		ck_assert_ptr_nonnull(bm->fn);
		ck_assert_uint_le(bm->min_params, bm->max_params);
		/* a row with an arity bound says what it takes */
		if (bm->min_params > 0 || bm->max_params != UINT32_MAX)
			ck_assert_ptr_nonnull(bm->usage);
	}
	ck_assert_ptr_null(builtin_find("pin", 3));
	ck_assert_ptr_null(builtin_find("pingx", 5));
	ck_assert_ptr_null(builtin_find("", 0));
	bcall(1, "lmms.nosuch", "");
	tu_expect_error(&t.peer, 1, "no_such_method", "the lmms interface has no \"nosuch\"");
}
END_TEST

/* One below the row's minimum and one above its maximum: bad_params with
 * the row's usage, nothing done. */
START_TEST(arity_is_checked_once_for_every_row)
{
	static const char many[] = "ssssssss";
	const builtin_method *bm = builtin_find(rows[_i], strlen(rows[_i]));
	char method[32];
	uint32_t loads = t.d.reg.loads;

	snprintf(method, sizeof(method), "lmms.%s", bm->name);
	if (bm->min_params > 0) {
		bcall(1, method, many + sizeof(many) - bm->min_params, "echo", "echo", "echo",
		      "echo", "echo", "echo", "echo");
		tu_expect_error(&t.peer, 1, "bad_params", bm->usage);
	}
	if (bm->max_params != UINT32_MAX) {
		ck_assert_uint_lt(bm->max_params + 1, sizeof(many));
		bcall(2, method, many + sizeof(many) - 1 - (bm->max_params + 1), "echo", "echo",
		      "echo", "echo", "echo", "echo", "echo");
		tu_expect_error(&t.peer, 2, "bad_params", bm->usage);
	}
	ck_assert_uint_eq(t.d.reg.loads, loads);
	ck_assert_uint_eq(t.d.cache.entries, 0);
	expect_nothing_before_ping(3);
}
END_TEST

/* ---- each method ---- */

START_TEST(ping_pongs)
{
	expect_nothing_before_ping(1);
}
END_TEST

START_TEST(stats_has_every_key)
{
	static const char *const keys[] = {
		"uptime_seconds", "requests_total",	    "errors_total",  "connections",
		"rss_bytes",	  "modules_known",	    "modules_resident", "ligs_loads",
		"lugs_unloads",	  "lugs_unload_blocked",    "zafp_hits",     "hot_paths",
		"cache_hits",	  "cache_misses",	    "cache_entries", "cache_bytes",
		"memory_reclaimed_bytes", NULL,
	};
	tu_msg m;

	ck_assert_int_eq(tu_daemon_call(&t, 1, "echo.upper", "s", "a"), 0);
	tu_expect_ok(&t.peer, 1, NULL);
	bcall(2, "lmms.stats", "");
	tu_expect_ok(&t.peer, 2, &m);
	expect_keys(m.result, keys);
	ck_assert_uint_eq(m.result->via.map.size, STAT_MAX);
	ck_assert_uint_eq(tu_map_uint(m.result, "modules_known"), 4);
	ck_assert_uint_eq(tu_map_uint(m.result, "modules_resident"), 1);
	ck_assert_uint_eq(tu_map_uint(m.result, "ligs_loads"), 1);
	ck_assert_uint_eq(tu_map_uint(m.result, "connections"), 1);
	ck_assert_uint_eq(tu_map_uint(m.result, "cache_misses"), 1);
	ck_assert_uint_eq(tu_map_uint(m.result, "cache_entries"), 1);
	ck_assert_uint_eq(tu_map_uint(m.result, "requests_total"), 1);
	ck_assert_uint_gt(tu_map_uint(m.result, "rss_bytes"), 0);
	tu_msg_free(&m);
}
END_TEST

START_TEST(modules_lists_every_module)
{
	static const char *const keys[] = {
		"name", "state",      "policy",	    "protected", "refs",    "loads",
		"unloads", "idle_ms", "cache_deps", "resident_bytes", "version", "blocked", NULL,
	};
	const msgpack_object *a;
	tu_msg m;

	bcall(1, "lmms.load", "s", "echo");
	tu_expect_ok(&t.peer, 1, NULL);
	bcall(2, "lmms.modules", "");
	tu_expect_ok(&t.peer, 2, &m);
	ck_assert_int_eq(m.result->type, MSGPACK_OBJECT_ARRAY);
	ck_assert_uint_eq(m.result->via.array.size, 4);
	a = m.result->via.array.ptr;
	for (uint32_t i = 0; i < 4; i++)
		expect_keys(&a[i], keys);
	/* sorted by name */
	ck_assert(tu_obj_is_str(tu_map_get(&a[0], "name"), "badinit"));
	ck_assert(tu_obj_is_str(tu_map_get(&a[1], "name"), "echo"));
	ck_assert(tu_obj_is_str(tu_map_get(&a[1], "state"), "loaded"));
	ck_assert(tu_obj_is_str(tu_map_get(&a[1], "policy"), "utility"));
	ck_assert(tu_obj_is_str(tu_map_get(&a[1], "version"), "1.0"));
	ck_assert_uint_eq(tu_map_uint(&a[1], "loads"), 1);
	ck_assert(tu_obj_is_str(tu_map_get(&a[3], "state"), "unloaded"));
	ck_assert(tu_obj_is_str(tu_map_get(&a[3], "version"), ""));
	tu_msg_free(&m);
}
END_TEST

/*
 * idle_ms right after a load: the registry stamps a load with the monotonic
 * clock read then, while lmms.modules subtracts from the loop's cached time,
 * which is older until the loop runs again. A load by a call that then runs
 * no op (an unknown method) leaves that stamp in place.
 */
START_TEST(modules_idle_ms_right_after_a_load)
{
	const msgpack_object *echo;
	tu_msg m;

	/* the load's clock reading is past the loop's cached time */
	while (now_ms() <= uv_now(&t.tl.loop))
		;
	ck_assert_int_eq(tu_daemon_call(&t, 1, "echo.nosuch", ""), 0);
	tu_expect_error(&t.peer, 1, "no_such_method", NULL);
	ck_assert_int_eq(mod("echo")->state, MOD_LOADED);
	bcall(2, "lmms.modules", "");
	tu_expect_ok(&t.peer, 2, &m);
	echo = &m.result->via.array.ptr[1];
	ck_assert(tu_obj_is_str(tu_map_get(echo, "name"), "echo"));
	/* not a wrapped-around difference: an hour is beyond any test's life */
	ck_assert_uint_lt(tu_map_uint(echo, "idle_ms"), 3600 * 1000);
	/* and why it stays says so */
	ck_assert_msg(tu_obj_is_str(tu_map_get(echo, "why"), "grace: idle 0s of 30s"),
		      "why is \"%.*s\"", (int)tu_map_get(echo, "why")->via.str.size,
		      tu_map_get(echo, "why")->via.str.ptr);
	tu_msg_free(&m);
}
END_TEST

START_TEST(ops_lists_learned_ops)
{
	static const char *const keys[] = {
		"method", "calls", "heat", "fast_path", "avg_us", "p99_us", "cache_ttl_ms",
		"blocking", NULL,
	};
	const msgpack_object *a, *upper = NULL;
	tu_msg m;

	bcall(1, "lmms.ops", "");
	tu_expect_ok(&t.peer, 1, &m);
	ck_assert_uint_eq(m.result->via.array.size, 0); /* nothing learned yet */
	tu_msg_free(&m);
	ck_assert_int_eq(tu_daemon_call(&t, 2, "echo.upper", "s", "a"), 0);
	tu_expect_ok(&t.peer, 2, NULL);
	bcall(3, "lmms.ops", "");
	tu_expect_ok(&t.peer, 3, &m);
	ck_assert_uint_eq(m.result->via.array.size, mod("echo")->n_ops);
	a = m.result->via.array.ptr;
	for (uint32_t i = 0; i < m.result->via.array.size; i++) {
		expect_keys(&a[i], keys);
		if (tu_obj_is_str(tu_map_get(&a[i], "method"), "echo.upper"))
			upper = &a[i];
	}
	ck_assert_ptr_nonnull(upper);
	ck_assert_uint_eq(tu_map_uint(upper, "calls"), 1);
	ck_assert(tu_obj_is_str(tu_map_get(upper, "heat"), "cold"));
	ck_assert_uint_eq(tu_map_uint(upper, "cache_ttl_ms"), t.d.cfg.cache.default_ttl_ms);
	tu_msg_free(&m);
}
END_TEST

START_TEST(config_shows_the_values_in_use)
{
	tu_msg m;

	t.d.cfg.lugs.min_resident = 3;
	bcall(1, "lmms.config", "");
	tu_expect_ok(&t.peer, 1, &m);
	ck_assert_int_eq(m.result->type, MSGPACK_OBJECT_MAP);
	ck_assert(tu_obj_is_str(tu_map_get(m.result, "lugs.min_resident"), "3"));
	ck_assert(tu_obj_is_str(tu_map_get(m.result, "lugs.grace_period"), "30s"));
	ck_assert_ptr_nonnull(tu_map_get(m.result, "server.socket"));
	ck_assert_ptr_nonnull(tu_map_get(m.result, "ligs.module_dir"));
	tu_msg_free(&m);
}
END_TEST

START_TEST(load_loads_and_answers_the_module)
{
	module *m = mod("echo");
	tu_msg r;

	bcall(1, "lmms.load", "s", "echo");
	tu_expect_ok(&t.peer, 1, &r);
	ck_assert(tu_obj_is_str(tu_map_get(r.result, "name"), "echo"));
	ck_assert(tu_obj_is_str(tu_map_get(r.result, "state"), "loaded"));
	tu_msg_free(&r);
	ck_assert_int_eq(m->state, MOD_LOADED);
	ck_assert(m->ops_known);
	/* again: already loaded, no second load */
	bcall(2, "lmms.load", "s", "echo");
	tu_expect_ok(&t.peer, 2, NULL);
	ck_assert_uint_eq(m->loads, 1);

	bcall(3, "lmms.load", "s", "nosuch");
	tu_expect_error(&t.peer, 3, "no_such_module", "no module \"nosuch\"");
	bcall(4, "lmms.load", "i", 5);
	tu_expect_error(&t.peer, 4, "bad_params", "lmms.load takes [name]");
	bcall(5, "lmms.load", "s", "badinit");
	tu_expect_error(&t.peer, 5, "load_failed", "badinit: init failed: init refused: test");
}
END_TEST

START_TEST(unload_runs_the_checks)
{
	module *m = mod("echo");

	bcall(1, "lmms.load", "s", "echo");
	tu_expect_ok(&t.peer, 1, NULL);
	/* just used: the grace period refuses, naming its check */
	bcall(2, "lmms.unload", "s", "echo");
	tu_expect_error(&t.peer, 2, "busy", "grace: used within the grace period");
	ck_assert_uint_eq(m->blocked[LUGS_GRACE], 1);
	ck_assert_int_eq(m->state, MOD_LOADED);
	/* true skips the grace period (and the resident minimum) */
	bcall(3, "lmms.unload", "sb", "echo", 1);
	expect_true(3);
	ck_assert_int_eq(m->state, MOD_UNLOADED);
	/* not loaded: nothing to do */
	bcall(4, "lmms.unload", "sb", "echo", 1);
	expect_true(4);

	bcall(5, "lmms.unload", "s", "nosuch");
	tu_expect_error(&t.peer, 5, "no_such_module", NULL);
	bcall(6, "lmms.unload", "ss", "echo", "now");
	tu_expect_error(&t.peer, 6, "bad_params", "second param must be a bool");
	bcall(7, "lmms.unload", "ib", 5, 1);
	tu_expect_error(&t.peer, 7, "bad_params", "lmms.unload takes [name] or [name, true]");
	bcall(8, "lmms.unload", "i", 5);
	tu_expect_error(&t.peer, 8, "bad_params", "lmms.unload takes [name] or [name, true]");
}
END_TEST

START_TEST(unload_names_veto_pin_and_eager)
{
	tu_msg r;

	bcall(1, "lmms.load", "s", "veto");
	tu_expect_ok(&t.peer, 1, NULL);
	bcall(2, "lmms.unload", "sb", "veto", 1);
	tu_expect_error(&t.peer, 2, "busy", "veto: test veto");
	ck_assert_int_eq(mod("veto")->state, MOD_LOADED);

	bcall(3, "lmms.load", "s", "nodelete");
	tu_expect_ok(&t.peer, 3, &r);
	ck_assert(tu_obj_is_str(tu_map_get(r.result, "state"), "pinned"));
	tu_msg_free(&r);
	bcall(4, "lmms.unload", "sb", "nodelete", 1);
	tu_expect_error(&t.peer, 4, "busy", "pinned by nodelete.so");

	t.d.eager = true;
	bcall(5, "lmms.unload", "sb", "veto", 1);
	tu_expect_error(&t.peer, 5, "busy", "eager mode");
}
END_TEST

START_TEST(invalidate_by_all_module_and_method)
{
	static const char *const words[] = { "a", "b", "c" };

	for (uint32_t i = 0; i < ARRAY_SIZE(words); i++) {
		ck_assert_int_eq(tu_daemon_call(&t, i, "echo.upper", "s", words[i]), 0);
		tu_expect_ok(&t.peer, i, NULL);
	}
	ck_assert_uint_eq(t.d.cache.entries, 3);
	bcall(10, "lmms.invalidate", "s", "echo.ping"); /* not cached */
	ck_assert_uint_eq(expect_uint(10), 0);
	bcall(11, "lmms.invalidate", "s", "nosuch.op");
	ck_assert_uint_eq(expect_uint(11), 0);
	bcall(12, "lmms.invalidate", "s", "echo.upper");
	ck_assert_uint_eq(expect_uint(12), 3);
	ck_assert_uint_eq(t.d.cache.entries, 0);

	ck_assert_int_eq(tu_daemon_call(&t, 13, "echo.upper", "s", "a"), 0);
	tu_expect_ok(&t.peer, 13, NULL);
	bcall(14, "lmms.invalidate", "s", "echo");
	ck_assert_uint_eq(expect_uint(14), 1);
	ck_assert_uint_eq(mod("echo")->cache_deps, 0);

	ck_assert_int_eq(tu_daemon_call(&t, 15, "echo.upper", "s", "a"), 0);
	tu_expect_ok(&t.peer, 15, NULL);
	bcall(16, "lmms.invalidate", "");
	ck_assert_uint_eq(expect_uint(16), 1);

	bcall(17, "lmms.invalidate", "s", "nosuch");
	tu_expect_error(&t.peer, 17, "no_such_module", NULL);
	bcall(18, "lmms.invalidate", "i", 5);
	tu_expect_error(&t.peer, 18, "bad_params", "argument must be a string");
}
END_TEST

START_TEST(reload_reads_the_configuration_again)
{
	char path[512];

	snprintf(path, sizeof(path), "%s",
		 tu_write_file(t.dir, "lmmsd.conf",
			       "[server]\nlog_level = 3\n[lugs]\nmin_resident = 3\n"));
	t.d.config_path = path;
	bcall(1, "lmms.reload", "");
	expect_true(1);
	ck_assert_uint_eq(t.d.cfg.lugs.min_resident, 3);
	/* a broken file keeps the configuration in use */
	tu_write_file(t.dir, "lmmsd.conf",
		      "[server]\nlog_level = 3\n[lugs]\nmin_resident = many\n");
	bcall(2, "lmms.reload", "");
	tu_expect_error(&t.peer, 2, "bad_params", "reload refused, old configuration kept");
	ck_assert_uint_eq(t.d.cfg.lugs.min_resident, 3);
	t.d.config_path = NULL;
}
END_TEST

START_TEST(metrics_is_prometheus_text)
{
	tu_msg m;

	bcall(1, "lmms.metrics", "");
	tu_expect_ok(&t.peer, 1, &m);
	ck_assert_int_eq(m.result->type, MSGPACK_OBJECT_STR);
	ck_assert_ptr_nonnull(memmem(m.result->via.str.ptr, m.result->via.str.size,
				     "# TYPE lmms_requests_total counter", 34));
	tu_msg_free(&m);
}
END_TEST

START_TEST(trim_sheds_idle_modules)
{
	static const char *const keys[] = { "modules_unloaded", "cache_bytes_dropped",
					    "rss_before", "rss_after", NULL };
	tu_msg m;

	bcall(1, "lmms.load", "s", "echo");
	tu_expect_ok(&t.peer, 1, NULL);
	bcall(2, "lmms.trim", "");
	tu_expect_ok(&t.peer, 2, &m);
	expect_keys(m.result, keys);
	ck_assert_uint_eq(tu_map_uint(m.result, "modules_unloaded"), 1);
	tu_msg_free(&m);
	ck_assert_int_eq(mod("echo")->state, MOD_UNLOADED);
}
END_TEST

/* The method an lmms.monitor notification reports: [2, "lmms.monitor", [event]]. */
static bool monitor_event_of(const tu_msg *m, const char *method)
{
	const msgpack_object *a = m->u.data.via.array.ptr;

	return m->type == PROTO_NOTIFICATION && tu_obj_is_str(&a[1], "lmms.monitor") &&
	       a[2].type == MSGPACK_OBJECT_ARRAY && a[2].via.array.size == 1 &&
	       tu_obj_is_str(tu_map_get(&a[2].via.array.ptr[0], "method"), method);
}

/* After lmms.monitor the connection is told of every finished call, its
 * own lmms.monitor included, each after the call's reply. */
START_TEST(monitor_sends_events)
{
	tu_msg m;

	bcall(1, "lmms.monitor", "");
	expect_true(1);
	ck_assert(tu_peer_next(&t.peer, &m, TU_TIMEOUT_MS));
	ck_assert(monitor_event_of(&m, "lmms.monitor"));
	tu_msg_free(&m);
	ck_assert_int_eq(tu_daemon_call(&t, 2, "echo.ping", ""), 0);
	tu_expect_ok(&t.peer, 2, NULL);
	ck_assert(tu_peer_next(&t.peer, &m, TU_TIMEOUT_MS));
	ck_assert(monitor_event_of(&m, "echo.ping"));
	tu_msg_free(&m);
}
END_TEST

/* ---- rights ---- */

/* Each admin row, in the order of rows[], with params it would accept. */
static void call_admin_rows(uint32_t first)
{
	bcall(first, "lmms.load", "s", "echo");
	bcall(first + 1, "lmms.unload", "sb", "echo", 1);
	bcall(first + 2, "lmms.invalidate", "");
	bcall(first + 3, "lmms.reload", "");
	bcall(first + 4, "lmms.trim", "");
	bcall(first + 5, "lmms.monitor", "");
}

START_TEST(admin_rows_refused_to_others)
{
	char text[64];

	become_other_user();
	ck_assert(!access_is_admin(&t.d.acc, t.c));
	call_admin_rows(1);
	for (uint32_t i = N_READ_ONLY; i < ARRAY_SIZE(rows); i++) {
		snprintf(text, sizeof(text), "lmms.%s is for administrators (uid %u is not one)",
			 rows[i], (unsigned)other_uid());
		tu_expect_error(&t.peer, 1 + i - N_READ_ONLY, "denied", text);
	}
	ck_assert_uint_eq(t.d.reg.loads, 0);
	/* refused before the arity is looked at */
	bcall(10, "lmms.load", "");
	tu_expect_error(&t.peer, 10, "denied", NULL);
	/* the read-only rows are for everyone */
	for (uint32_t i = 0; i < N_READ_ONLY; i++) {
		char method[32];

		snprintf(method, sizeof(method), "lmms.%s", rows[i]);
		bcall(20 + i, method, "");
		tu_expect_ok(&t.peer, 20 + i, NULL);
	}
	ck_assert_uint_eq(t.d.dp.st.errors_total, ARRAY_SIZE(rows) - N_READ_ONLY + 1);
}
END_TEST

static void expect_admin_granted(void)
{
	bcall(1, "lmms.load", "s", "echo");
	tu_expect_ok(&t.peer, 1, NULL);
	ck_assert_int_eq(mod("echo")->state, MOD_LOADED);
}

START_TEST(admin_by_uid_list)
{
	become_other_user();
	t.d.cfg.access.admin_uids[0] = other_uid();
	t.d.cfg.access.n_admin_uids = 1;
	expect_admin_granted();
}
END_TEST

/* access.admin_group: by the primary gid (_i 0), or a supplementary group
 * the kernel reported through SO_PEERGROUPS (_i 1) */
START_TEST(admin_by_group)
{
	become_other_user();
	snprintf(t.d.cfg.access.admin_group, sizeof(t.d.cfg.access.admin_group), "root");
	access_reload(&t.d.acc);
	ck_assert(!access_is_admin(&t.d.acc, t.c));
	if (_i == 0) {
		t.c->gid = 0;
	} else {
		t.c->groups[0] = 0;
		t.c->n_groups = 1;
	}
	expect_admin_granted();
}
END_TEST

START_TEST(admin_is_root_or_the_daemons_uid)
{
	t.c->uid = 0;
	ck_assert(access_is_admin(&t.d.acc, t.c));
	t.c->uid = geteuid();
	ck_assert(access_is_admin(&t.d.acc, t.c));
	/* the connection over the socketpair carries our own credentials */
	expect_admin_granted();
}
END_TEST

/* ---- notifications ---- */

START_TEST(read_only_notifications_do_nothing)
{
	for (uint32_t i = 0; i < N_READ_ONLY; i++) {
		char method[32];

		snprintf(method, sizeof(method), "lmms.%s", rows[i]);
		bnotify(method, "");
	}
	ck_assert_uint_eq(t.d.dp.st.errors_total, 0);
	expect_nothing_before_ping(1);
}
END_TEST

START_TEST(admin_notifications_run_unanswered)
{
	bnotify("lmms.load", "s", "echo");
	ck_assert_int_eq(mod("echo")->state, MOD_LOADED);
	bnotify("lmms.unload", "sb", "echo", 1);
	ck_assert_int_eq(mod("echo")->state, MOD_UNLOADED);
	/* failures are counted, not answered */
	bnotify("lmms.load", "s", "nosuch");
	bnotify("lmms.load", "");
	bnotify("lmms.nosuch", "");
	ck_assert_uint_eq(t.d.dp.st.errors_total, 3);
	/* and refusals too */
	become_other_user();
	bnotify("lmms.load", "s", "echo");
	ck_assert_int_eq(mod("echo")->state, MOD_UNLOADED);
	ck_assert_uint_eq(t.d.dp.st.errors_total, 4);
	expect_nothing_before_ping(1);
}
END_TEST

static Suite *builtin_suite(void)
{
	Suite *s = suite_create("builtin");
	TCase *tc = tcase_create("builtin");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, table_has_every_row);
	tcase_add_loop_test(tc, arity_is_checked_once_for_every_row, 0, ARRAY_SIZE(rows));
	tcase_add_test(tc, ping_pongs);
	tcase_add_test(tc, stats_has_every_key);
	tcase_add_test(tc, modules_lists_every_module);
	tcase_add_test(tc, modules_idle_ms_right_after_a_load);
	tcase_add_test(tc, ops_lists_learned_ops);
	tcase_add_test(tc, config_shows_the_values_in_use);
	tcase_add_test(tc, load_loads_and_answers_the_module);
	tcase_add_test(tc, unload_runs_the_checks);
	tcase_add_test(tc, unload_names_veto_pin_and_eager);
	tcase_add_test(tc, invalidate_by_all_module_and_method);
	tcase_add_test(tc, reload_reads_the_configuration_again);
	tcase_add_test(tc, metrics_is_prometheus_text);
	tcase_add_test(tc, trim_sheds_idle_modules);
	tcase_add_test(tc, monitor_sends_events);
	tcase_add_test(tc, admin_rows_refused_to_others);
	tcase_add_test(tc, admin_by_uid_list);
	tcase_add_loop_test(tc, admin_by_group, 0, 2);
	tcase_add_test(tc, admin_is_root_or_the_daemons_uid);
	tcase_add_test(tc, read_only_notifications_do_nothing);
	tcase_add_test(tc, admin_notifications_run_unanswered);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(builtin_suite());
}
