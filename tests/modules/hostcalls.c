/*
 * hostcalls.c - test module whose ops call every function of the host table,
 * steered by their params, for the in-process dispatch fuzzer
 * (tests/fuzz/fuzz-dispatch.c) and any test that wants a module to do odd
 * but legal things.
 *
 *   hostcalls.echo [v...]           every arg read by every accessor (the
 *   hostcalls.echo_pure [v...]      matching one and the others), written back
 *   hostcalls.echo_blocking [v...]  as an array of the same values; PURE and
 *                                   BLOCKING copies share the function
 *   hostcalls.build [prog, v...]    runs a result program, one byte per step
 *                                   (see build_step), over the other args
 *   hostcalls.fail [class, msg]     fail() with any class, "fail: msg"
 *   hostcalls.log [level, msg]      log() with any level, then nil
 *   hostcalls.now []                now_ms()
 *   hostcalls.setting [key]         setting(key), or nil
 *   hostcalls.veto [bool]           whether can_unload refuses from now on
 *
 * The accessors' contract (lmms-module.h) is checked on every arg; a breach
 * fails the call with a message starting "host contract broken", which the
 * fuzzer treats as a finding.
 */
#include <lmms/lmms-module.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define BREACH "host contract broken: "
#define KEY_MAX 64
#define TEXT "the quick brown fox jumps over the lazy dog"

typedef struct hc_state {
	bool veto; /* touched by the loop thread only: veto and can_unload */
	bool greeted; /* init found its "greeting" setting */
} hc_state;

/* Every accessor on arg i; the one matching its type must succeed, the
 * others must refuse with -EINVAL (or -EOVERFLOW, for a big uint as int). */
static int check_accessors(const lmms_host *h, lmms_call *c, size_t i, lmms_type t)
{
	int b, r;
	int64_t iv;
	double d;
	const char *s;
	const void *p;
	size_t n;

	r = h->arg_bool(c, i, &b);
	if ((r == 0) != (t == LMMS_T_BOOL) || (r && r != -EINVAL))
		return h->fail(c, LMMS_FAIL_MODULE, BREACH "arg_bool %d on type %d", r, t);
	r = h->arg_int(c, i, &iv);
	if ((r == 0) != (t == LMMS_T_INT) ||
	    (r && r != (t == LMMS_T_UINT ? -EOVERFLOW : -EINVAL)))
		return h->fail(c, LMMS_FAIL_MODULE, BREACH "arg_int %d on type %d", r, t);
	r = h->arg_double(c, i, &d);
	if ((r == 0) != (t == LMMS_T_FLOAT || t == LMMS_T_INT || t == LMMS_T_UINT))
		return h->fail(c, LMMS_FAIL_MODULE, BREACH "arg_double %d on type %d", r, t);
	r = h->arg_str(c, i, &s, &n);
	if ((r == 0) != (t == LMMS_T_STR) || (r == 0 && !s))
		return h->fail(c, LMMS_FAIL_MODULE, BREACH "arg_str %d on type %d", r, t);
	r = h->arg_bytes(c, i, &p, &n);
	if ((r == 0) != (t == LMMS_T_STR || t == LMMS_T_BIN) || (r == 0 && !p))
		return h->fail(c, LMMS_FAIL_MODULE, BREACH "arg_bytes %d on type %d", r, t);
	r = h->arg_msgpack(c, i, &p, &n);
	if (r < 0 || !p || n == 0)
		return h->fail(c, LMMS_FAIL_MODULE, BREACH "arg_msgpack %d on type %d", r, t);
	return 0;
}

/* Arg i written back with the ret_* of its type (containers and ext as msgpack). */
static int echo_arg(const lmms_host *h, lmms_call *c, size_t i, lmms_type t)
{
	int b;
	int64_t iv;
	double d;
	const char *s;
	const void *p;
	size_t n;

	switch (t) {
	case LMMS_T_NIL:
		return h->ret_nil(c);
	case LMMS_T_BOOL:
		h->arg_bool(c, i, &b);
		return h->ret_bool(c, b);
	case LMMS_T_INT:
		h->arg_int(c, i, &iv);
		return h->ret_int(c, iv);
	case LMMS_T_UINT:
		/* no accessor reads it exactly; its encoding does */
		h->arg_msgpack(c, i, &p, &n);
		return h->ret_msgpack(c, p, n);
	case LMMS_T_FLOAT:
		h->arg_double(c, i, &d);
		return h->ret_double(c, d);
	case LMMS_T_STR:
		h->arg_str(c, i, &s, &n);
		return h->ret_str(c, s, n);
	case LMMS_T_BIN:
		h->arg_bytes(c, i, &p, &n);
		return h->ret_bin(c, p, n);
	default:
		h->arg_msgpack(c, i, &p, &n);
		return h->ret_msgpack(c, p, n);
	}
}

static int op_echo(const lmms_host *h, lmms_call *c, void *state)
{
	size_t n = h->arg_count(c);
	int r;

	if (h->arg_type(c, n) != LMMS_T_NONE)
		return h->fail(c, LMMS_FAIL_MODULE, BREACH "arg_type past the last arg");
	if (h->arg_int(c, n, NULL) != -ERANGE || h->arg_msgpack(c, n, NULL, NULL) != -ERANGE)
		return h->fail(c, LMMS_FAIL_MODULE, BREACH "an accessor past the last arg");
	for (size_t i = 0; i < n; i++) {
		lmms_type t = h->arg_type(c, i);

		if (t == LMMS_T_NONE)
			return h->fail(c, LMMS_FAIL_MODULE, BREACH "arg %zu has no type", i);
		r = check_accessors(h, c, i, t);
		if (r < 0)
			return r;
	}
	r = h->ret_array(c, (uint32_t)n);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = echo_arg(h, c, i, h->arg_type(c, i));
	/* a write error is the daemon's to report (too_large, ...) */
	return r < 0 ? r : 0;
}

/* Arg i's bytes (str or bin), or an empty string. */
static void arg_raw(const lmms_host *h, lmms_call *c, size_t i, const void **p, size_t *n)
{
	if (h->arg_bytes(c, i, p, n) < 0) {
		*p = "";
		*n = 0;
	}
}

/*
 * One step of a result program: the low nibble says what to write, the high
 * one (a) how much. Results may come out malformed on purpose (an array
 * left short, two top-level values, raw bytes that are not msgpack): the
 * daemon must turn each into a clean error reply.
 */
static int build_step(const lmms_host *h, lmms_call *c, uint8_t step, size_t n_args)
{
	unsigned a = step >> 4;
	size_t data_arg = n_args > 1 ? 1 + a % (n_args - 1) : 0;
	const void *p;
	size_t n;
	char key[KEY_MAX];
	const char *v;

	switch (step & 0x0f) {
	case 0:
		return h->ret_nil(c);
	case 1:
		return h->ret_bool(c, a & 1);
	case 2:
		return h->ret_int(c, -(int64_t)a * 1000003);
	case 3:
		return h->ret_uint(c, UINT64_MAX - a);
	case 4:
		return h->ret_double(c, a / 3.0);
	case 5:
		return h->ret_str(c, TEXT, a * 2);
	case 6:
		return h->ret_bin(c, TEXT + a, a);
	case 7:
		return h->ret_array(c, a);
	case 8:
		return h->ret_map(c, a);
	case 9: /* another arg, re-encoded */
		if (h->arg_msgpack(c, data_arg, &p, &n) < 0)
			return h->ret_nil(c);
		return h->ret_msgpack(c, p, n);
	case 10: /* another arg's bytes taken for msgpack: checked by the daemon */
		arg_raw(h, c, data_arg, &p, &n);
		return h->ret_msgpack(c, n ? p : NULL, n);
	case 11:
		return h->fail(c, a & 1 ? LMMS_FAIL_PARAMS : LMMS_FAIL_MODULE, "build: step fails %u",
			       a);
	case 12:
		h->log(c, (int)a, "build: log at level %u", a);
		return 0;
	case 13: /* counts no result could ever hold */
		return a & 1 ? h->ret_map(c, UINT32_MAX - a) : h->ret_array(c, UINT32_MAX - a);
	case 14: /* a setting named by another arg */
		arg_raw(h, c, data_arg, &p, &n);
		if (n >= sizeof(key))
			n = sizeof(key) - 1;
		memcpy(key, p, n);
		key[n] = '\0';
		v = LMMS_HOST_HAS(h, setting) ? h->setting(c, key) : NULL;
		return v ? h->ret_str(c, v, strlen(v)) : h->ret_nil(c);
	default: /* another arg's bytes as a str */
		arg_raw(h, c, data_arg, &p, &n);
		return h->ret_str(c, p, n);
	}
}

static int op_build(const lmms_host *h, lmms_call *c, void *state)
{
	size_t n_args = h->arg_count(c);
	const void *prog;
	size_t len;
	int rc = 0;

	if (h->arg_bytes(c, 0, &prog, &len) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "hostcalls.build takes [program, value...]");
	if (len > 4096)
		len = 4096;
	for (size_t i = 0; i < len; i++) {
		int r = build_step(h, c, ((const uint8_t *)prog)[i], n_args);

		if (r < 0 && rc == 0)
			rc = r; /* keep going: later writes must fail cleanly too */
	}
	return rc;
}

/* Up to 1 KiB of arg i as text, for fail and log. */
static int arg_text(const lmms_host *h, lmms_call *c, size_t i, const char **s, int *n)
{
	size_t len;

	if (h->arg_str(c, i, s, &len) < 0)
		return -EINVAL;
	*n = len > 1024 ? 1024 : (int)len;
	return 0;
}

static int op_fail(const lmms_host *h, lmms_call *c, void *state)
{
	int64_t cls;
	const char *s;
	int n;

	if (h->arg_int(c, 0, &cls) < 0 || arg_text(h, c, 1, &s, &n) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "hostcalls.fail takes [class, message]");
	/* prefixed, so no caller can make it read like a contract breach */
	return h->fail(c, (lmms_fail_class)(int)cls, "fail: %.*s", n, s);
}

static int op_log(const lmms_host *h, lmms_call *c, void *state)
{
	int64_t level;
	const char *s;
	int n;

	if (h->arg_int(c, 0, &level) < 0 || arg_text(h, c, 1, &s, &n) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "hostcalls.log takes [level, message]");
	h->log(c, (int)level, "%.*s", n, s);
	return h->ret_nil(c);
}

static int op_now(const lmms_host *h, lmms_call *c, void *state)
{
	return h->ret_uint(c, h->now_ms());
}

static int op_setting(const lmms_host *h, lmms_call *c, void *state)
{
	char key[KEY_MAX];
	const char *s, *v;
	size_t n;

	if (h->arg_str(c, 0, &s, &n) < 0 || n >= sizeof(key))
		return h->fail(c, LMMS_FAIL_PARAMS, "hostcalls.setting takes [key]");
	memcpy(key, s, n);
	key[n] = '\0';
	if (!LMMS_HOST_HAS(h, setting))
		return h->ret_nil(c);
	v = h->setting(c, key);
	return v ? h->ret_str(c, v, strlen(v)) : h->ret_nil(c);
}

static int op_veto(const lmms_host *h, lmms_call *c, void *state)
{
	hc_state *st = state;
	int on;

	if (h->arg_bool(c, 0, &on) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "hostcalls.veto takes [bool]");
	st->veto = on;
	return h->ret_bool(c, st->greeted);
}

static int hc_init(const lmms_host *h, lmms_call *c, void **state)
{
	hc_state *st = calloc(1, sizeof(*st));

	if (!st)
		return h->fail(c, LMMS_FAIL_MODULE, "out of memory");
	st->greeted = LMMS_HOST_HAS(h, setting) && h->setting(c, "greeting") != NULL;
	*state = st;
	return 0;
}

static void hc_fini(const lmms_host *h, void *state)
{
	free(state);
}

static int hc_can_unload(const lmms_host *h, void *state, const char **reason)
{
	const hc_state *st = state;

	if (!st->veto)
		return 0;
	*reason = "hostcalls.veto";
	return 1;
}

static const lmms_op hostcalls_ops[] = {
	{ .name = "echo", .fn = op_echo, .doc = "every arg through every accessor, echoed" },
	{ .name = "echo_pure", .fn = op_echo, .flags = LMMS_OP_PURE, .doc = "echo, cached" },
	{ .name = "echo_blocking", .fn = op_echo, .flags = LMMS_OP_BLOCKING,
	  .doc = "echo, on the thread pool" },
	{ .name = "build", .fn = op_build, .doc = "a result written by a program of steps" },
	{ .name = "fail", .fn = op_fail, .doc = "fail with a class and a message" },
	{ .name = "log", .fn = op_log, .doc = "log a message at a level" },
	{ .name = "now", .fn = op_now, .doc = "the host's monotonic milliseconds" },
	{ .name = "setting", .fn = op_setting, .doc = "one of the module's settings, or nil" },
	{ .name = "veto", .fn = op_veto, .doc = "make can_unload refuse, or not" },
};

LMMS_MODULE(.name = "hostcalls", .version = "1.0", LMMS_OPS(hostcalls_ops), .init = hc_init,
	    .fini = hc_fini, .can_unload = hc_can_unload,
	    .description = "every host call, driven by params (a test fixture)");
