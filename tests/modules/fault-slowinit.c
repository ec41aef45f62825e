/*
 * fault-slowinit.c - test module whose init takes init_ms (a setting,
 * default 5000): in lmmsd that stalls every client; in a worker only the
 * calls to this module wait. It also reads its settings the way real modules
 * do (greeting in init, any key from the setting op) so the unread-key
 * warning and host->setting in a worker are tested through it.
 */
#include <lmms/lmms-module.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *get(const lmms_host *h, lmms_call *c, const char *key)
{
	return LMMS_HOST_HAS(h, setting) && h->setting ? h->setting(c, key) : NULL;
}

static int slow_init(const lmms_host *h, lmms_call *c, void **state)
{
	const char *ms = get(h, c, "init_ms");
	long v = ms ? strtol(ms, NULL, 10) : 5000;
	struct timespec ts;

	(void)get(h, c, "greeting");
	if (v < 0 || v > 60000)
		return h->fail(c, LMMS_FAIL_MODULE, "init_ms must be 0..60000");
	ts.tv_sec = v / 1000;
	ts.tv_nsec = (v % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	return 0;
}

static int op_ping(const lmms_host *h, lmms_call *c, void *state)
{
	return h->ret_str(c, "pong", 4);
}

static int op_setting(const lmms_host *h, lmms_call *c, void *state)
{
	const char *key, *v;
	size_t n;
	char buf[64];

	if (h->arg_str(c, 0, &key, &n) < 0 || n >= sizeof(buf))
		return h->fail(c, LMMS_FAIL_PARAMS, "takes a key");
	memcpy(buf, key, n);
	buf[n] = '\0';
	v = get(h, c, buf);
	return v ? h->ret_str(c, v, strlen(v)) : h->ret_nil(c);
}

static const lmms_op slow_ops[] = {
	{ .name = "ping", .fn = op_ping, .doc = "answer pong" },
	{ .name = "setting", .fn = op_setting, .doc = "the value of one of its settings" },
};

LMMS_MODULE(.name = "fault-slowinit", .version = "1.0", LMMS_OPS(slow_ops),
	    .description = "takes its time to start", .init = slow_init);
