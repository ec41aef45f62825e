/*
 * test-dispatch.c - dispatch in process: a real lmmsd composed on a private
 * loop, real modules (copies of the built echo and the badinit fixture), a
 * connection over a socketpair; messages go into dispatch_on_message and
 * replies are read from the other end. Every path of DESIGN.md §1: the
 * routing errors, built-ins, cache miss and hit (also while the module is
 * out), lazy load and its failure, inline and thread-pool calls, the call
 * timeout, notifications, shutting down, the ZAFP fast path, the general
 * decoding path, responses from clients and malformed messages.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "dispatch.h"
#include "util.h"

static tu_daemon t;

/* Pack and feed a request / notification; dispatch_on_message's result. */
#define CALL(...) tu_daemon_call(&t, __VA_ARGS__)
#define NOTIFY(...) tu_daemon_notify(&t, __VA_ARGS__)

static void setup(void)
{
	static const char *const mods[] = { "echo", "badinit", NULL };

	tu_daemon_init(&t, mods);
}

static void teardown(void)
{
	tu_daemon_fini(&t);
}

static int feed(const char *bytes, size_t len)
{
	return tu_daemon_feed(&t, bytes, len);
}

static module *mod(const char *name)
{
	return tu_daemon_module(&t, name);
}

static op_info *op(const char *method)
{
	return tu_daemon_op(&t, method);
}

/* ---- what the tests expect back ---- */

static void expect_str(uint32_t msgid, const char *want)
{
	tu_msg m;

	tu_expect_ok(&t.peer, msgid, &m);
	ck_assert_msg(tu_obj_is_str(m.result, want), "msgid %u: result is not \"%s\"", msgid,
		      want);
	tu_msg_free(&m);
}

static void expect_int(uint32_t msgid, uint64_t want)
{
	tu_msg m;

	tu_expect_ok(&t.peer, msgid, &m);
	ck_assert_int_eq(m.result->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	ck_assert_uint_eq(m.result->via.u64, want);
	tu_msg_free(&m);
}

/* echo.ping answers its params: ["x"] */
static void expect_ping(uint32_t msgid)
{
	tu_msg m;

	tu_expect_ok(&t.peer, msgid, &m);
	ck_assert_int_eq(m.result->type, MSGPACK_OBJECT_ARRAY);
	ck_assert_uint_eq(m.result->via.array.size, 1);
	ck_assert(tu_obj_is_str(&m.result->via.array.ptr[0], "x"));
	tu_msg_free(&m);
}

/* Nothing was answered before this: a ping sent now is the next reply. */
static void expect_nothing_before_ping(uint32_t msgid)
{
	ck_assert_int_eq(CALL(msgid, "echo.ping", "s", "x"), 0);
	expect_ping(msgid);
}

static bool pool_empty(void *ud)
{
	(void)ud;
	return dispatch_pool_in_flight(&t.d.dp) == 0;
}

static void wait_pool(void)
{
	ck_assert(tu_pump(&t.tl, pool_empty, NULL, TU_TIMEOUT_MS));
}

/* ---- routing errors: answered, connection kept ---- */

START_TEST(unknown_module)
{
	ck_assert_int_eq(CALL(1, "nosuch.op", ""), 0);
	tu_expect_error(&t.peer, 1, "no_such_module", "no module \"nosuch\"");
	ck_assert_uint_eq(t.d.dp.st.errors_total, 1);
	ck_assert_uint_eq(t.d.dp.st.requests_total, 1);
	expect_nothing_before_ping(2);
	ck_assert(!t.c->closing);
}
END_TEST

START_TEST(unknown_method)
{
	module *m = mod("echo");

	ck_assert_int_eq(CALL(1, "echo.nosuch", ""), 0);
	tu_expect_error(&t.peer, 1, "no_such_method", "module echo has no operation \"nosuch\"");
	/* the module was loaded to learn its ops, once */
	ck_assert(m->ops_known);
	ck_assert_int_eq(m->state, MOD_LOADED);
	ck_assert_int_eq(CALL(2, "echo.nosuch", ""), 0);
	tu_expect_error(&t.peer, 2, "no_such_method", NULL);
	ck_assert_uint_eq(m->loads, 1);
	expect_nothing_before_ping(3);
}
END_TEST

START_TEST(invalid_method_name)
{
	static const char *const names[] = { "nodot", ".op", "mod.", "a/b.op", "a..b" };

	for (uint32_t i = 0; i < ARRAY_SIZE(names); i++) {
		ck_assert_int_eq(CALL(i, names[i], ""), 0);
		tu_expect_error(&t.peer, i, "bad_request", "invalid method name");
	}
	ck_assert_uint_eq(t.d.reg.loads, 0);
	expect_nothing_before_ping(100);
}
END_TEST

/* params that are not an array: a malformed request, answered, and the
 * transport is told to close (-EBADMSG) */
START_TEST(params_not_an_array)
{
	/* [0, 5, "echo.ping", 7] and [0, 6, "echo.ping", {"a": 1}] */
	static const char scalar[] = "\x94\x00\x05\xa9"
				     "echo.ping"
				     "\x07";
	static const char map[] = "\x94\x00\x06\xa9"
				  "echo.ping"
				  "\x81\xa1"
				  "a"
				  "\x01";

	ck_assert_int_eq(feed(scalar, sizeof(scalar) - 1), -EBADMSG);
	tu_expect_error(&t.peer, 5, "bad_request", "params must be an array");
	ck_assert_int_eq(feed(map, sizeof(map) - 1), -EBADMSG);
	tu_expect_error(&t.peer, 6, "bad_request", "params must be an array");
	ck_assert_uint_eq(t.d.reg.loads, 0);
}
END_TEST

/* params the op does not take: its own error, connection kept */
START_TEST(bad_params_for_the_op)
{
	ck_assert_int_eq(CALL(1, "echo.upper", "i", 1), 0);
	tu_expect_error(&t.peer, 1, "bad_params", "echo.upper takes one string");
	ck_assert_int_eq(CALL(2, "echo.fail", "s", "boom"), 0);
	tu_expect_error(&t.peer, 2, "module_error", "boom");
	ck_assert_uint_eq(t.d.dp.st.errors_total, 2);
	expect_nothing_before_ping(3);
}
END_TEST

/* ---- built-ins ---- */

START_TEST(builtin_is_routed_to_the_table)
{
	ck_assert_int_eq(CALL(1, "lmms.ping", ""), 0);
	expect_str(1, "pong");
	ck_assert_int_eq(CALL(2, "lmms.nosuch", ""), 0);
	tu_expect_error(&t.peer, 2, "no_such_method", "the lmms interface has no \"nosuch\"");
	/* no module is involved */
	ck_assert_uint_eq(t.d.reg.loads, 0);
}
END_TEST

/* ---- the cache ---- */

START_TEST(cache_miss_then_hit_leaves_the_module_alone)
{
	module *m = mod("echo");
	uint64_t last_used;
	op_info *up;

	ck_assert_int_eq(CALL(1, "echo.upper", "s", "abc"), 0);
	expect_str(1, "ABC");
	up = op("echo.upper");
	ck_assert_uint_eq(t.d.cache.misses, 1);
	ck_assert_uint_eq(t.d.cache.entries, 1);
	ck_assert_uint_eq(m->cache_deps, 1);
	ck_assert_uint_eq(up->heat.calls, 1);
	last_used = m->last_used_ms;

	ck_assert_int_eq(CALL(2, "echo.upper", "s", "abc"), 0);
	expect_str(2, "ABC");
	ck_assert_uint_eq(t.d.cache.hits, 1);
	/* the module was not touched: no call, no ref, no stamp, no load */
	ck_assert_uint_eq(up->heat.calls, 1);
	ck_assert_uint_eq(m->refs, 0);
	ck_assert_uint_eq(m->last_used_ms, last_used);
	ck_assert_uint_eq(m->loads, 1);

	/* other params miss */
	ck_assert_int_eq(CALL(3, "echo.upper", "s", "abd"), 0);
	expect_str(3, "ABD");
	ck_assert_uint_eq(t.d.cache.misses, 2);
	ck_assert_uint_eq(up->heat.calls, 2);
}
END_TEST

START_TEST(cache_hit_while_the_module_is_unloaded)
{
	module *m = mod("echo");

	ck_assert_int_eq(CALL(1, "echo.upper", "s", "abc"), 0);
	expect_str(1, "ABC");
	ck_assert_int_eq(registry_unload(&t.d.reg, m, NULL), 0);
	ck_assert_int_eq(m->state, MOD_UNLOADED);

	ck_assert_int_eq(CALL(2, "echo.upper", "s", "abc"), 0);
	expect_str(2, "ABC");
	ck_assert_uint_eq(t.d.cache.hits, 1);
	/* answered without mapping it again */
	ck_assert_int_eq(m->state, MOD_UNLOADED);
	ck_assert_ptr_null(m->handle);
	ck_assert_uint_eq(m->loads, 1);

	/* a miss loads it again */
	ck_assert_int_eq(CALL(3, "echo.upper", "s", "x"), 0);
	expect_str(3, "X");
	ck_assert_int_eq(m->state, MOD_LOADED);
	ck_assert_uint_eq(m->loads, 2);
}
END_TEST

/* ---- LIGS ---- */

START_TEST(first_call_loads_the_module)
{
	module *m = mod("echo");

	ck_assert_int_eq(m->state, MOD_UNLOADED);
	ck_assert(!m->ops_known);
	ck_assert_uint_eq(t.d.reg.n_resident, 0);
	ck_assert_int_eq(CALL(1, "echo.ping", "s", "x"), 0);
	expect_ping(1);
	ck_assert_int_eq(m->state, MOD_LOADED);
	ck_assert_uint_eq(m->loads, 1);
	ck_assert_uint_eq(t.d.reg.loads, 1);
	ck_assert_uint_eq(t.d.reg.n_resident, 1);
	ck_assert_uint_eq(m->refs, 0);
	ck_assert_uint_gt(m->last_used_ms, 0);
	/* the second call finds it loaded */
	ck_assert_int_eq(CALL(2, "echo.ping", "s", "x"), 0);
	expect_ping(2);
	ck_assert_uint_eq(m->loads, 1);
	ck_assert_uint_eq(op("echo.ping")->heat.calls, 2);
}
END_TEST

START_TEST(load_failure_is_load_failed)
{
	module *m = mod("badinit");

	ck_assert_int_eq(CALL(1, "badinit.ping", ""), 0);
	tu_expect_error(&t.peer, 1, "load_failed", "init refused: test");
	ck_assert_int_eq(m->state, MOD_FAILED);
	ck_assert_uint_eq(m->load_failures, 1);
	/* retried only after the backoff; the answer stays the same */
	ck_assert_int_eq(CALL(2, "badinit.ping", ""), 0);
	tu_expect_error(&t.peer, 2, "load_failed", "init refused: test");
	ck_assert_uint_eq(m->load_failures, 1);
	ck_assert_uint_eq(t.d.reg.n_resident, 0);
	/* others are unaffected */
	expect_nothing_before_ping(3);
}
END_TEST

/* ---- the thread pool ---- */

START_TEST(blocking_call_runs_on_the_pool)
{
	module *m;

	ck_assert_int_eq(CALL(1, "echo.sleep", "i", 50), 0);
	m = mod("echo");
	/* in flight: the module and the connection are held */
	ck_assert_uint_eq(dispatch_pool_in_flight(&t.d.dp), 1);
	ck_assert_uint_eq(m->refs, 1);
	ck_assert_uint_eq(t.c->inflight, 1);
	ck_assert_uint_eq(t.d.dp.st.pool_calls, 1);
	ck_assert_int_eq(registry_unload(&t.d.reg, m, NULL), -EBUSY);
	expect_int(1, 50);
	ck_assert_uint_eq(m->refs, 0);
	ck_assert_uint_eq(t.c->inflight, 0);
	ck_assert_uint_eq(dispatch_pool_in_flight(&t.d.dp), 0);
	ck_assert_uint_eq(op("echo.sleep")->heat.pool_calls, 1);
	ck_assert_uint_eq(op("echo.sleep")->heat.calls, 1);
}
END_TEST

static bool pool_running(void *ud)
{
	sched_stats st;

	(void)ud;
	sched_get_stats(t.d.sched, &st);
	return st.running > 0;
}

/* The client leaves while its call runs: the result goes nowhere, the
 * connection is freed only after the call came back. */
START_TEST(connection_gone_before_the_pool_call_returns)
{
	uint32_t n;

	ck_assert_int_eq(CALL(1, "echo.sleep", "i", 100), 0);
	ck_assert(tu_pump(&t.tl, pool_running, NULL, TU_TIMEOUT_MS));
	conn_close(t.c);
	t.c = NULL;
	wait_pool();
	ck_assert_uint_eq(mod("echo")->refs, 0);
	ck_assert_uint_eq(op("echo.sleep")->heat.calls, 1);
	ck_assert(tu_peer_wait_eof(&t.peer, &n, TU_TIMEOUT_MS));
	ck_assert_uint_eq(n, 0);
}
END_TEST

/* An inline op whose params are over its blocking_above goes to the pool. */
START_TEST(large_params_go_to_the_pool)
{
	char big[5000];
	tu_msg m;

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_int_eq(CALL(1, "echo.upper", "s", "small"), 0);
	expect_str(1, "SMALL");
	ck_assert_uint_eq(t.d.dp.st.pool_calls, 0);
	ck_assert_int_eq(CALL(2, "echo.upper", "s", big), 0);
	ck_assert_uint_eq(t.d.dp.st.pool_calls, 1);
	tu_expect_ok(&t.peer, 2, &m);
	ck_assert_int_eq(m.result->type, MSGPACK_OBJECT_STR);
	ck_assert_uint_eq(m.result->via.str.size, sizeof(big) - 1);
	ck_assert_int_eq(m.result->via.str.ptr[0], 'A');
	tu_msg_free(&m);
}
END_TEST

/* server.call_timeout: "timeout" is answered while the op runs on, holding
 * its module and its in-flight slot; its late result is dropped. */
START_TEST(call_timeout_answers_timeout)
{
	module *m;

	t.d.cfg.server.call_timeout_ms = 50;
	dispatch_config_changed(&t.d.dp);
	ck_assert_int_eq(CALL(1, "echo.sleep", "i", 3000), 0);
	m = mod("echo");
	tu_expect_error(&t.peer, 1, "timeout", "did not finish within 50 ms");
	ck_assert_uint_eq(m->refs, 1);
	ck_assert_uint_eq(t.c->inflight, 1);
	wait_pool();
	ck_assert_uint_eq(m->refs, 0);
	ck_assert_uint_eq(t.c->inflight, 0);
	/* no second answer to msgid 1 */
	expect_nothing_before_ping(2);
	ck_assert_uint_eq(t.d.dp.st.errors_total, 1);
}
END_TEST

/* ---- notifications ---- */

START_TEST(notification_runs_and_is_never_answered)
{
	ck_assert_int_eq(NOTIFY("echo.upper", "s", "q"), 0);
	/* it ran: the op was called and its result cached */
	ck_assert_uint_eq(op("echo.upper")->heat.calls, 1);
	ck_assert_uint_eq(t.d.cache.entries, 1);
	ck_assert_uint_eq(t.d.dp.st.notifications_total, 1);
	ck_assert_uint_eq(t.d.dp.st.requests_total, 0);
	/* errors are counted, never answered */
	ck_assert_int_eq(NOTIFY("nosuch.op", ""), 0);
	ck_assert_int_eq(NOTIFY("echo.fail", ""), 0);
	ck_assert_uint_eq(t.d.dp.st.errors_total, 2);
	/* unknown notifications are ignored silently (Neovim sends some) */
	ck_assert_int_eq(NOTIFY("nvim_buf_lines_event", ""), 0);
	expect_nothing_before_ping(1);
}
END_TEST

START_TEST(blocking_notification_is_never_answered)
{
	ck_assert_int_eq(NOTIFY("echo.sleep", "i", 20), 0);
	ck_assert_uint_eq(dispatch_pool_in_flight(&t.d.dp), 1);
	wait_pool();
	ck_assert_uint_eq(op("echo.sleep")->heat.calls, 1);
	/* its failure is counted, not answered */
	ck_assert_int_eq(NOTIFY("echo.sleep", ""), 0);
	wait_pool();
	ck_assert_uint_eq(t.d.dp.st.errors_total, 1);
	ck_assert_uint_eq(t.d.dp.st.pool_calls, 2);
	expect_nothing_before_ping(1);
}
END_TEST

/* ---- shutting down ---- */

START_TEST(shutting_down_refuses_requests)
{
	dispatch_stop(&t.d.dp);
	ck_assert_int_eq(CALL(1, "echo.ping", "s", "x"), 0);
	tu_expect_error(&t.peer, 1, "shutting_down", NULL);
	ck_assert_int_eq(CALL(2, "lmms.ping", ""), 0);
	tu_expect_error(&t.peer, 2, "shutting_down", NULL);
	ck_assert_uint_eq(t.d.reg.loads, 0);
}
END_TEST

/* ---- ZAFP ---- */

START_TEST(hot_op_takes_the_fast_path)
{
	uint32_t hot = t.d.cfg.zafp.hot;
	op_info *ping;
	uint32_t i;

	for (i = 1; i <= hot; i++) {
		ck_assert_int_eq(CALL(i, "echo.ping", "s", "x"), 0);
		expect_ping(i);
	}
	ping = op("echo.ping");
	ck_assert_int_ge(ping->heat.level, HEAT_HOT);
	ck_assert_ptr_nonnull(ping->heat.fp);
	ck_assert_uint_eq(mod("echo")->hot_ops, 1);
	ck_assert_uint_eq(t.d.heat.hits, 0);
	for (uint32_t k = 1; k <= 3; k++, i++) {
		ck_assert_int_eq(CALL(i, "echo.ping", "s", "x"), 0);
		expect_ping(i);
		ck_assert_uint_eq(t.d.heat.hits, k); /* zafp_hits */
	}
	ck_assert_uint_eq(ping->heat.calls, hot + 3);
}
END_TEST

/* A hot PURE op still answers from the cache first. */
START_TEST(hot_pure_op_hits_the_cache_first)
{
	uint32_t hot = t.d.cfg.zafp.hot;
	char s[16];
	op_info *up;

	for (uint32_t i = 1; i <= hot; i++) {
		snprintf(s, sizeof(s), "v%u", i);
		ck_assert_int_eq(CALL(i, "echo.upper", "s", s), 0);
		s[0] = 'V';
		expect_str(i, s);
	}
	up = op("echo.upper");
	ck_assert_ptr_nonnull(up->heat.fp);
	ck_assert_uint_eq(up->heat.calls, hot);
	ck_assert_int_eq(CALL(100, "echo.upper", "s", "v1"), 0);
	expect_str(100, "V1");
	ck_assert_uint_eq(t.d.heat.hits, 1);
	ck_assert_uint_eq(t.d.cache.hits, 1);
	ck_assert_uint_eq(up->heat.calls, hot); /* not called */
}
END_TEST

/* ---- the general decoding path ---- */

START_TEST(general_path_decodes_other_encodings)
{
	/* method as bin: [0, 1, bin "echo.ping", ["x"]] */
	static const char bin_method[] = "\x94\x00\x01\xc4\x09"
					 "echo.ping"
					 "\x91\xa1"
					 "x";
	/* message as array16: [0, 2, "echo.ping", ["x"]] */
	static const char array16[] = "\xdc\x00\x04\x00\x02\xa9"
				      "echo.ping"
				      "\x91\xa1"
				      "x";
	/* notification as array16 with a str8 method: [2, "echo.upper", ["n"]] */
	static const char note16[] = "\xdc\x00\x03\x02\xd9\x0a"
				     "echo.upper"
				     "\x91\xa1"
				     "n";

	ck_assert_int_eq(feed(bin_method, sizeof(bin_method) - 1), 0);
	expect_ping(1);
	ck_assert_int_eq(feed(array16, sizeof(array16) - 1), 0);
	expect_ping(2);
	ck_assert_int_eq(feed(note16, sizeof(note16) - 1), 0);
	ck_assert_uint_eq(op("echo.upper")->heat.calls, 1);
	ck_assert_uint_eq(t.d.dp.st.requests_total, 2);
	ck_assert_uint_eq(t.d.dp.st.notifications_total, 1);
	expect_nothing_before_ping(3);
}
END_TEST

/* Clients have nothing to answer: a response is ignored, not punished. */
START_TEST(responses_are_ignored)
{
	/* [1, 5, nil, "x"] */
	static const char resp[] = "\x94\x01\x05\xc0\xa1"
				   "x";

	ck_assert_int_eq(feed(resp, sizeof(resp) - 1), 0);
	ck_assert_uint_eq(t.d.dp.st.errors_total, 0);
	ck_assert_uint_eq(t.d.dp.st.requests_total, 0);
	expect_nothing_before_ping(1);
}
END_TEST

START_TEST(malformed_is_ebadmsg)
{
	/* answered, its msgid being known: [0, 30, 5, []] (method not a string) */
	static const char int_method[] = "\x94\x00\x1e\x05\x90";
	static const struct {
		const char *bytes;
		size_t len;
	} silent[] = {
		{ "\xc1", 1 }, /* not msgpack */
		{ "\x94\x00\xa1x\xa1m\x90", 7 }, /* msgid a string */
		{ "\x94\x03\x01\xa1m\x90", 6 }, /* type 3 */
		{ "\x92\x00\x01", 3 }, /* two elements */
	};

	ck_assert_int_eq(feed(int_method, sizeof(int_method) - 1), -EBADMSG);
	tu_expect_error(&t.peer, 30, "bad_request", "method must be a string");
	for (size_t i = 0; i < ARRAY_SIZE(silent); i++)
		ck_assert_int_eq(feed(silent[i].bytes, silent[i].len), -EBADMSG);
	ck_assert_uint_eq(t.d.dp.st.errors_total, 1 + ARRAY_SIZE(silent));
	/* nothing else was queued (the transport would close now) */
	expect_nothing_before_ping(31);
}
END_TEST

/* ---- observers ---- */

static dispatch_event events[8];
static uint32_t n_events;

static void on_event(void *ud, const dispatch_event *ev)
{
	ck_assert_ptr_eq(ud, events);
	ck_assert_uint_lt(n_events, ARRAY_SIZE(events));
	events[n_events++] = *ev;
}

/* Each finished call names the path it took. */
START_TEST(events_name_the_path)
{
	uint32_t hot = t.d.cfg.zafp.hot;

	t.d.dp.on_event = on_event;
	t.d.dp.ud_event = events;
	ck_assert_int_eq(CALL(1, "echo.upper", "s", "a"), 0);
	ck_assert_int_eq(CALL(2, "echo.upper", "s", "a"), 0);
	ck_assert_int_eq(CALL(3, "echo.sleep", "i", 1), 0);
	wait_pool();
	ck_assert_int_eq(CALL(4, "echo.fail", ""), 0);
	ck_assert_uint_eq(n_events, 4);
	ck_assert_int_eq(events[0].path, PATH_INLINE);
	ck_assert(events[0].loaded);
	ck_assert_uint_eq(events[0].result_bytes, 2); /* "A" */
	ck_assert_ptr_eq(events[0].c, t.c);
	ck_assert_int_eq(events[1].path, PATH_CACHE);
	ck_assert(!events[1].loaded);
	ck_assert_int_eq(events[2].path, PATH_POOL);
	ck_assert(!events[2].loaded);
	ck_assert_int_eq(events[3].path, PATH_INLINE);
	ck_assert_int_eq(events[3].error, PROTO_E_MODULE_ERROR);
	/* echo.fail made hot: the next one is on the fast path */
	t.d.dp.on_event = NULL;
	for (uint32_t i = 1; i < hot; i++)
		ck_assert_int_eq(CALL(10 + i, "echo.fail", ""), 0);
	t.d.dp.on_event = on_event;
	n_events = 0;
	ck_assert_int_eq(CALL(9, "echo.fail", ""), 0);
	ck_assert_uint_eq(n_events, 1);
	ck_assert_int_eq(events[0].path, PATH_FAST);
	ck_assert_str_eq(dispatch_path_name(PATH_FAST), "fast_path");
	ck_assert_str_eq(dispatch_path_name((dispatch_path)99), "unknown");
}
END_TEST

static Suite *dispatch_suite(void)
{
	Suite *s = suite_create("dispatch");
	TCase *tc = tcase_create("dispatch");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, unknown_module);
	tcase_add_test(tc, unknown_method);
	tcase_add_test(tc, invalid_method_name);
	tcase_add_test(tc, params_not_an_array);
	tcase_add_test(tc, bad_params_for_the_op);
	tcase_add_test(tc, builtin_is_routed_to_the_table);
	tcase_add_test(tc, cache_miss_then_hit_leaves_the_module_alone);
	tcase_add_test(tc, cache_hit_while_the_module_is_unloaded);
	tcase_add_test(tc, first_call_loads_the_module);
	tcase_add_test(tc, load_failure_is_load_failed);
	tcase_add_test(tc, blocking_call_runs_on_the_pool);
	tcase_add_test(tc, connection_gone_before_the_pool_call_returns);
	tcase_add_test(tc, large_params_go_to_the_pool);
	tcase_add_test(tc, call_timeout_answers_timeout);
	tcase_add_test(tc, notification_runs_and_is_never_answered);
	tcase_add_test(tc, blocking_notification_is_never_answered);
	tcase_add_test(tc, shutting_down_refuses_requests);
	tcase_add_test(tc, hot_op_takes_the_fast_path);
	tcase_add_test(tc, hot_pure_op_hits_the_cache_first);
	tcase_add_test(tc, general_path_decodes_other_encodings);
	tcase_add_test(tc, responses_are_ignored);
	tcase_add_test(tc, malformed_is_ebadmsg);
	tcase_add_test(tc, events_name_the_path);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(dispatch_suite());
}
