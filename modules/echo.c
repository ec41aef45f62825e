/*
 * echo.c - the smallest useful module: round trips, sleeps and failures.
 *
 * It exists for clients and tests: echo.ping proves the whole path (load,
 * params, result) works, echo.sleep occupies a worker thread for a known time
 * (BLOCKING dispatch, in-flight refs, timeouts), echo.fail produces a
 * module_error on demand (echo.fail_pure the same, flagged PURE, for negative
 * caching) and echo.upper is a cheap PURE op for cache tests.
 */
#include <lmms/lmms-module.h>

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#define ECHO_SLEEP_MAX_MS 60000

/* Returns its params array as it got it. */
static int op_ping(const lmms_host *h, lmms_call *c, void *state)
{
	size_t n = h->arg_count(c);
	int r;

	if (n > UINT32_MAX)
		return h->fail(c, LMMS_FAIL_PARAMS, "echo.ping: too many params");
	r = h->ret_array(c, (uint32_t)n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		const void *p;
		size_t len;

		r = h->arg_msgpack(c, i, &p, &len);
		if (r == 0)
			r = h->ret_msgpack(c, p, len);
	}
	if (r < 0)
		return h->fail(c, LMMS_FAIL_MODULE, "echo.ping: cannot copy params (%d)", r);
	return 0;
}

static int op_sleep(const lmms_host *h, lmms_call *c, void *state)
{
	struct timespec ts;
	int64_t ms;

	if (h->arg_count(c) != 1 || h->arg_int(c, 0, &ms) < 0 || ms < 0 ||
	    ms > ECHO_SLEEP_MAX_MS)
		return h->fail(c, LMMS_FAIL_PARAMS,
			       "echo.sleep takes one integer: milliseconds, 0..%d",
			       ECHO_SLEEP_MAX_MS);
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	/* Signals must not shorten the sleep: tests rely on its length. */
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	return h->ret_int(c, ms);
}

static int op_fail(const lmms_host *h, lmms_call *c, void *state)
{
	const char *s;
	size_t n;

	if (h->arg_count(c) == 0)
		return h->fail(c, LMMS_FAIL_MODULE, "echo.fail: failing as asked");
	if (h->arg_count(c) > 1 || h->arg_str(c, 0, &s, &n) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "echo.fail takes an optional string message");
	if (n > 1024)
		n = 1024;
	return h->fail(c, LMMS_FAIL_MODULE, "%.*s", (int)n, s);
}

/* ASCII only: bytes of multi-byte UTF-8 sequences are >= 0x80 and pass
 * through untouched, so the result stays valid UTF-8. */
static int op_upper(const lmms_host *h, lmms_call *c, void *state)
{
	const char *s;
	char *u;
	size_t n;
	int r;

	if (h->arg_count(c) != 1 || h->arg_str(c, 0, &s, &n) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "echo.upper takes one string");
	u = malloc(n ? n : 1);
	if (!u)
		return h->fail(c, LMMS_FAIL_MODULE, "echo.upper: out of memory");
	for (size_t i = 0; i < n; i++)
		u[i] = (s[i] >= 'a' && s[i] <= 'z') ? (char)(s[i] - 'a' + 'A') : s[i];
	r = h->ret_str(c, u, n);
	free(u);
	return r;
}

static const lmms_op echo_ops[] = {
	{ .name = "ping", .fn = op_ping, .flags = 0,
	  .doc = "return the params array as given" },
	{ .name = "sleep", .fn = op_sleep, .flags = LMMS_OP_BLOCKING,
	  .doc = "sleep ms (0..60000) on a worker thread, return ms" },
	{ .name = "fail", .fn = op_fail, .flags = 0,
	  .doc = "always fail with module_error and the given message" },
	{ .name = "upper", .fn = op_upper, .flags = LMMS_OP_PURE, .cache_ttl_ms = 0,
	  .blocking_above = 4096, /* small on purpose: tests see both paths */
	  .doc = "upper-case the ASCII letters of a string" },
	/* echo.fail declared PURE: what negative caching applies to */
	{ .name = "fail_pure", .fn = op_fail, .flags = LMMS_OP_PURE,
	  .doc = "echo.fail flagged PURE, for negative caching" },
};

LMMS_MODULE(.name = "echo", .version = "1.0", LMMS_OPS(echo_ops),
	    .description = "round trips, sleeps and failures for clients and tests");
