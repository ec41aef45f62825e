/*
 * fuzz-dispatch.c - libFuzzer target for dispatching messages in process: a
 * real lmmsd core (registry, heat, cache, built-ins, dispatch, the
 * transport's connection) over one end of a socketpair, with the hostcalls
 * test module (tests/modules/hostcalls.c), whose ops call every host
 * function as their params say, as the only module.
 *
 * Input: the bytes a client sends. They are framed with the daemon's own
 * limits by proto_scan_feed, as the transport does, and each whole message
 * goes to dispatch_on_message; a message the scanner or dispatch refuses
 * ends the input, as it would end the connection. Then the loop runs until
 * the thread pool is idle and every reply is out, and the peer reads them.
 * Properties:
 *   1. every request gets exactly one response, with its msgid; a
 *      notification gets none; the daemon sends nothing else but its own
 *      notifications;
 *   2. every response is a well-formed message the scanner passes, its
 *      error nil or [code, message] with a code of PROTOCOL.md;
 *   3. no module reports "host contract broken" (hostcalls checks every
 *      accessor against lmms-module.h);
 *   4. the pool drains and the connection stays usable.
 * The daemon lives across inputs (loading a module per input would be most
 * of the time spent), so heat, the cache and the module's state carry over:
 * a finding that needs its predecessors replays with the corpus, not alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "fuzz-common.h"
#include "log.h"

#ifndef FUZZ_HOSTCALLS_SO
#error "FUZZ_HOSTCALLS_SO: path of the built hostcalls.so"
#endif

#define MAX_MESSAGES 32
#define PEER_MAX (8u << 20) /* replies read back per input */
#define LOOP_ROUNDS_MAX 100000

static const char *const overrides[] = {
	"server.log_level=err", /* module log lines would drown libFuzzer's */
	"cache.max_bytes=1MiB", /* state carries over: keep it small */
	"lugs.grace_period=0",
	"module.hostcalls.greeting=hello",
	"module.hostcalls.policy=feature", /* unloaded when idle: load paths every input */
};

static struct {
	uv_loop_t loop;
	lmmsd d;
	conn *c;
	int peer;
	char dir[256];
	char *in; /* what the peer read */
	size_t in_len;
} F;

static void copy_module(const char *src, const char *dst)
{
	char buf[65536];
	ssize_t n;
	int in = open(src, O_RDONLY | O_CLOEXEC);
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);

	FUZZ_ASSERT(in >= 0 && out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		FUZZ_ASSERT(write(out, buf, (size_t)n) == n);
	FUZZ_ASSERT(n == 0);
	close(in);
	FUZZ_ASSERT(close(out) == 0);
}

static void cleanup(void)
{
	char p[300];

	snprintf(p, sizeof(p), "%s/hostcalls.so", F.dir);
	unlink(p);
	rmdir(F.dir);
}

static void open_conn(void)
{
	int sv[2];

	FUZZ_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
	F.peer = sv[1];
	F.c = server_conn_open(&F.d.srv, sv[0]);
	FUZZ_ASSERT(F.c);
	conn_ref(F.c); /* ours: it stays valid even if the daemon closes it */
}

/* A connection the daemon closed is replaced, as a client would reconnect. */
static void reopen_conn_if_closed(void)
{
	if (!F.c->closing)
		return;
	conn_unref(F.c);
	close(F.peer);
	uv_run(&F.loop, UV_RUN_NOWAIT);
	open_conn();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[512], so[300];
	const char *tmp = getenv("TMPDIR");

	signal(SIGPIPE, SIG_IGN);
	snprintf(F.dir, sizeof(F.dir), "%s/lmms-fuzz-dispatch-XXXXXX", tmp ? tmp : "/tmp");
	FUZZ_ASSERT(mkdtemp(F.dir));
	FUZZ_ASSERT(chmod(F.dir, 0755) == 0);
	atexit(cleanup);
	snprintf(so, sizeof(so), "%s/hostcalls.so", F.dir);
	copy_module(FUZZ_HOSTCALLS_SO, so);

	FUZZ_ASSERT(uv_loop_init(&F.loop) == 0);
	F.d.config_path = "/dev/null"; /* lmms.reload reads it: empty, no drop-ins */
	for (size_t i = 0; i < sizeof(overrides) / sizeof(overrides[0]); i++)
		F.d.overrides[F.d.n_overrides++] = overrides[i];
	snprintf(F.d.module_dir, sizeof(F.d.module_dir), "%s", F.dir);
	if (config_load(&F.d.cfg, F.d.config_path, F.d.overrides, F.d.n_overrides, err,
			sizeof(err)) < 0) {
		fprintf(stderr, "fuzz-dispatch: %s\n", err);
		abort();
	}
	log_init(F.d.cfg.server.log_level);
	FUZZ_ASSERT(lmmsd_init(&F.d, &F.loop) == 0);
	open_conn();
	F.in = malloc(PEER_MAX);
	FUZZ_ASSERT(F.in);
	return 0;
}

static void peer_read(void)
{
	ssize_t n;

	while (F.in_len < PEER_MAX &&
	       (n = read(F.peer, F.in + F.in_len, PEER_MAX - F.in_len)) > 0)
		F.in_len += (size_t)n;
}

/* Run the loop until the pool is idle and the connection has sent everything. */
static void settle(void)
{
	for (int i = 0; i < LOOP_ROUNDS_MAX; i++) {
		bool busy = dispatch_pool_in_flight(&F.d.dp) > 0;

		if (!F.c->closing)
			conn_flush(F.c);
		peer_read();
		if (!busy && (F.c->closing || (F.c->out.len == 0 && !F.c->writing)))
			return;
		/* ONCE waits for the pool's completion or the write's progress */
		uv_run(&F.loop, busy ? UV_RUN_ONCE : UV_RUN_NOWAIT);
	}
	FUZZ_ASSERT(!"the daemon did not settle");
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static bool error_code_known(const msgpack_object *code)
{
	const char *s = code->via.str.ptr;
	size_t n = code->via.str.size;

	return proto_err_from_name(s, n) != PROTO_E_INTERNAL || (n == 8 && !memcmp(s, "internal", 8));
}

/* Properties 1-3 over what the peer read; returns the number of responses. */
static size_t check_replies(uint32_t *ids, size_t max)
{
	static msgpack_zone zone;
	static bool zone_ready;
	proto_limits l;
	size_t pos = 0, n = 0;

	if (!zone_ready) {
		FUZZ_ASSERT(msgpack_zone_init(&zone, 4096));
		zone_ready = true;
	}
	proto_limits_default(&l);
	l.max_message_bytes = UINT32_MAX; /* a reply may carry a full-size result */
	l.max_str_bytes = UINT32_MAX;
	while (pos < F.in_len) {
		proto_scan s;
		msgpack_object o;
		proto_msg pm;
		const char *why;
		size_t off = 0;

		proto_scan_reset(&s);
		FUZZ_ASSERT(proto_scan_feed(&s, &l, F.in + pos, F.in_len - pos) == PROTO_SCAN_DONE);
		FUZZ_ASSERT(msgpack_unpack(F.in + pos, s.msg_len, &off, &zone, &o) ==
			    MSGPACK_UNPACK_SUCCESS);
		FUZZ_ASSERT(proto_msg_parse(&o, &pm, &why) == PROTO_OK);
		FUZZ_ASSERT(pm.type == PROTO_RESPONSE || pm.type == PROTO_NOTIFICATION);
		if (pm.type == PROTO_RESPONSE) {
			const msgpack_object *e = pm.error;

			if (e->type == MSGPACK_OBJECT_ARRAY) {
				const msgpack_object *msg = &e->via.array.ptr[1];

				FUZZ_ASSERT(error_code_known(&e->via.array.ptr[0]));
				if (msg->via.str.size >= 22 &&
				    memcmp(msg->via.str.ptr, "host contract broken: ", 22) == 0) {
					fprintf(stderr, "%.*s\n", (int)msg->via.str.size,
						msg->via.str.ptr);
					abort();
				}
			}
			FUZZ_ASSERT(n < max);
			ids[n++] = pm.msgid;
		}
		msgpack_zone_clear(&zone);
		pos += s.msg_len;
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t sent[MAX_MESSAGES], got[MAX_MESSAGES + 1];
	size_t n_sent = 0, n_got, pos = 0;
	proto_limits l;

	reopen_conn_if_closed();
	F.in_len = 0;
	l = F.d.srv.limits.proto; /* the transport's, as lmms.reload left them */

	for (int i = 0; i < MAX_MESSAGES && pos < size; i++) {
		proto_scan s;

		proto_scan_reset(&s);
		if (proto_scan_feed(&s, &l, data + pos, size - pos) != PROTO_SCAN_DONE)
			break;
		if (s.have_msgid)
			sent[n_sent++] = s.msgid;
		if (dispatch_on_message(&F.d.dp, F.c, (const char *)data + pos, s.msg_len) < 0)
			break;
		pos += s.msg_len;
		if (F.c->closing)
			break;
	}
	settle();
	FUZZ_ASSERT(dispatch_pool_in_flight(&F.d.dp) == 0);

	n_got = check_replies(got, MAX_MESSAGES + 1);
	if (!F.c->closing) {
		/* property 1: one response per request, by msgid */
		FUZZ_ASSERT(n_got == n_sent);
		qsort(sent, n_sent, sizeof(sent[0]), cmp_u32);
		qsort(got, n_got, sizeof(got[0]), cmp_u32);
		FUZZ_ASSERT(memcmp(sent, got, n_sent * sizeof(sent[0])) == 0);
	}
	return 0;
}
