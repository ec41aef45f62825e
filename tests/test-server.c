/*
 * test-server.c - the transport alone, with no daemon above it: a server on
 * a private loop whose on_message records every message it is handed and
 * answers requests itself (echoing the message back as the result, holding
 * it in flight, or answering with a large value), over socketpairs and over
 * a real listening socket in a temporary directory.
 *
 * Framing across every split position and a 1-byte dribble, every limit of
 * server_limits and proto_limits (with the error reply when the msgid is
 * known, and the close), the in-flight and output caps and their resumption,
 * the three deadlines, connection caps on real accepts, on_close exactly
 * once per connection, drain, close, and the socket path rules.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"
#include "server.h"
#include "util.h"

#define MAX_PEERS 16
#define MAX_HELD 64
#define MAX_CLOSED 1024

typedef enum answer_mode {
	ANSWER_ECHO, /* the message itself as the result */
	ANSWER_HOLD, /* conn_request_begin, answered later by the test */
	ANSWER_BIG, /* a bin of big_len bytes */
	ANSWER_HANDED_BACK, /* begin, answer and done at once: a handoff that failed */
} answer_mode;

typedef struct held {
	conn *c;
	uint32_t msgid;
} held;

static struct {
	tu_loop tl;
	server srv;
	char dir[256];
	char path[128];
	answer_mode mode;
	size_t big_len;
	char *big; /* the packed bin result for ANSWER_BIG */

	/* what on_message was handed */
	bbuf msgs; /* every message, concatenated */
	uint32_t n_msgs;
	/* what on_close was told */
	uint64_t closed[MAX_CLOSED];
	uint32_t n_closes;

	int64_t pending; /* the sum of on_pending's deltas */

	held held[MAX_HELD];
	uint32_t n_held, n_released;
	tu_peer peers[MAX_PEERS];
	uint32_t n_peers;
} h;

/* ---- the layer above, as a test ---- */

static int on_message(void *ud, conn *c, const char *msg, size_t len)
{
	proto_request r;

	ck_assert_ptr_eq(ud, &h);
	ck_assert_int_eq(bbuf_append(&h.msgs, msg, len), 0);
	h.n_msgs++;
	if (!proto_request_peek(msg, len, &r) || r.notify)
		return 0;
	/* "close.me": answer, then ask the transport to close */
	if (r.method_len == 8 && memcmp(r.method, "close.me", 8) == 0) {
		conn_reply_raw(c, r.msgid, "\xc3", 1);
		return -EBADMSG;
	}
	switch (h.mode) {
	case ANSWER_ECHO:
		conn_reply_raw(c, r.msgid, msg, len);
		break;
	case ANSWER_HOLD:
		ck_assert_uint_lt(h.n_held, MAX_HELD);
		conn_request_begin(c);
		h.held[h.n_held].c = c;
		h.held[h.n_held].msgid = r.msgid;
		h.n_held++;
		break;
	case ANSWER_BIG:
		conn_reply_raw(c, r.msgid, h.big, h.big_len);
		break;
	case ANSWER_HANDED_BACK:
		conn_request_begin(c);
		conn_reply_raw(c, r.msgid, "\xc0", 1);
		conn_request_done(c);
		break;
	}
	return 0;
}

static void on_close(void *ud, conn *c)
{
	ck_assert_ptr_eq(ud, &h);
	for (uint32_t i = 0; i < h.n_closes; i++)
		ck_assert_msg(h.closed[i] != c->id, "on_close twice for connection %llu",
			      (unsigned long long)c->id);
	ck_assert_uint_lt(h.n_closes, MAX_CLOSED);
	h.closed[h.n_closes++] = c->id;
}

static void on_pending(void *ud, conn *c, int64_t delta)
{
	ck_assert_ptr_eq(ud, &h);
	/* a change of what this connection holds, which never goes below zero */
	ck_assert_int_ne(delta, 0);
	ck_assert_int_ge((int64_t)c->pending + delta, 0);
	h.pending += delta;
}

/* Answer the oldest held request that is not answered yet. */
static void release_one(void)
{
	held *x;

	ck_assert_uint_lt(h.n_released, h.n_held);
	x = &h.held[h.n_released++];
	conn_reply_raw(x->c, x->msgid, "\xc0", 1);
	conn_request_done(x->c);
}

static void defaults(server_limits *l)
{
	memset(l, 0, sizeof(*l));
	proto_limits_default(&l->proto);
	l->max_connections = 64;
	l->max_connections_per_uid = 64;
	l->max_inflight = 16;
	l->max_output_bytes = 1 << 20;
	l->backlog = 16;
}

static void set_big(size_t payload)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	char *zeros = calloc(1, payload);

	ck_assert_ptr_nonnull(zeros);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_bin_with_body(&pk, zeros, payload);
	free(zeros);
	free(h.big);
	h.big = sb.data;
	h.big_len = sb.size;
	h.mode = ANSWER_BIG;
}

/* h.dir/name, which must fit a sockaddr_un */
static void in_dir(char *buf, size_t n, const char *name)
{
	struct sockaddr_un sa;
	int len = snprintf(buf, n, "%s/%s", h.dir, name);

	ck_assert_msg(len > 0 && (size_t)len < n && (size_t)len < sizeof(sa.sun_path),
		      "socket path %s/%s too long", h.dir, name);
}

static void setup(void)
{
	const server_callbacks cb = {
		.on_message = on_message,
		.on_close = on_close,
		.on_pending = on_pending,
	};
	server_limits l;

	memset(&h, 0, sizeof(h));
	log_init(3); /* errors only: refused and malformed peers are expected here */
	tu_loop_init(&h.tl);
	tu_tmpdir(h.dir, sizeof(h.dir), "server");
	in_dir(h.path, sizeof(h.path), "s.sock");
	defaults(&l);
	server_init(&h.srv, &h.tl.loop, &l, &cb, &h);
	/* listening also starts the reaper the deadlines need */
	ck_assert_int_eq(server_start(&h.srv, h.path, -1), 0);
}

static void teardown(void)
{
	uint64_t opened = h.srv.st.connections_total;

	/* requests the test left in flight still hold their connections */
	while (h.n_released < h.n_held)
		release_one();
	server_close(&h.srv);
	for (uint32_t i = 0; i < h.n_peers; i++)
		tu_peer_fini(&h.peers[i]);
	tu_loop_fini(&h.tl);
	/* every connection that was kept was closed, each exactly once, and
	 * the output it held was given back */
	ck_assert_uint_eq(h.n_closes, opened);
	ck_assert_int_eq(h.pending, 0);
	bbuf_free(&h.msgs);
	free(h.big);
	tu_rmtree(h.dir);
}

/* A connection over a socketpair; *p is the test's end. */
static conn *open_conn(tu_peer **p)
{
	int sv[2];
	conn *c;

	ck_assert_uint_lt(h.n_peers, MAX_PEERS);
	tu_socketpair(sv);
	c = server_conn_open(&h.srv, sv[0]);
	ck_assert_ptr_nonnull(c);
	*p = &h.peers[h.n_peers++];
	tu_peer_init(*p, &h.tl, sv[1]);
	return c;
}

/* A client connected through the listening socket (maybe not accepted yet). */
static tu_peer *connect_peer(void)
{
	tu_peer *p;
	int fd = tu_connect(h.path);

	ck_assert_msg(fd >= 0, "connect %s: %s", h.path, strerror(-fd));
	ck_assert_uint_lt(h.n_peers, MAX_PEERS);
	p = &h.peers[h.n_peers++];
	tu_peer_init(p, &h.tl, fd);
	return p;
}

static void send_sb(tu_peer *p, const msgpack_sbuffer *sb)
{
	tu_send(&h.tl, p->fd, sb->data, sb->size);
}

static void send_request(tu_peer *p, uint32_t msgid, const char *method)
{
	msgpack_sbuffer sb;

	msgpack_sbuffer_init(&sb);
	tu_pack_request(&sb, msgid, method, "s", "x");
	send_sb(p, &sb);
	msgpack_sbuffer_destroy(&sb);
}

/* Requests first .. first + n - 1 (no params), in one write. */
static void send_requests(tu_peer *p, uint32_t first, uint32_t n)
{
	msgpack_sbuffer sb;

	msgpack_sbuffer_init(&sb);
	for (uint32_t i = first; i < first + n; i++)
		tu_pack_request(&sb, i, "a.b", "");
	send_sb(p, &sb);
	msgpack_sbuffer_destroy(&sb);
}


static void expect_closed(tu_peer *p)
{
	uint32_t n;

	ck_assert_msg(tu_peer_wait_eof(p, &n, TU_TIMEOUT_MS), "connection not closed");
	ck_assert_uint_eq(n, 0);
}

static bool n_msgs_at_least(void *ud)
{
	return h.n_msgs >= *(const uint32_t *)ud;
}

static void wait_msgs(uint32_t n)
{
	ck_assert_msg(tu_pump(&h.tl, n_msgs_at_least, &n, TU_TIMEOUT_MS),
		      "%u messages handed up, %u expected", h.n_msgs, n);
	ck_assert_uint_eq(h.n_msgs, n);
}

static bool n_closes_at_least(void *ud)
{
	return h.n_closes >= *(const uint32_t *)ud;
}

static void wait_closes(uint32_t n)
{
	ck_assert_msg(tu_pump(&h.tl, n_closes_at_least, &n, TU_TIMEOUT_MS),
		      "%u connections closed, %u expected", h.n_closes, n);
}

/* ---- framing ---- */

/* Several messages of different shapes and encodings, in one stream; ends[i]
 * is the offset just past message i. */
static uint32_t build_stream(msgpack_sbuffer *sb, size_t *ends, uint32_t *msgids)
{
	char long_str[300];
	msgpack_packer pk;
	uint32_t n = 0, nreq = 0;

	memset(long_str, 'L', sizeof(long_str) - 1);
	long_str[sizeof(long_str) - 1] = '\0';
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);

	tu_pack_request(sb, 1, "a.b", "s", "x");
	msgids[nreq++] = 1;
	ends[n++] = sb->size;
	tu_pack_notification(sb, "n.m", "ib", 1, 1);
	ends[n++] = sb->size;
	tu_pack_request(sb, 2, "a.long", "s", long_str); /* str16 */
	msgids[nreq++] = 2;
	ends[n++] = sb->size;
	/* nested params: [[1, [2, {"k": nil}]]] */
	proto_pack_request(&pk, 3, "a.nested", 8, 1);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_int(&pk, 1);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_int(&pk, 2);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "k", 1);
	msgpack_pack_nil(&pk);
	msgids[nreq++] = 3;
	ends[n++] = sb->size;
	tu_pack_request(sb, 70000, "a.b", ""); /* uint32 msgid, no params */
	msgids[nreq++] = 70000;
	ends[n++] = sb->size;
	tu_pack_notification(sb, "n.last", "");
	ends[n++] = sb->size;
	return n;
}

#define STREAM_MSGS 6
#define STREAM_REQS 4

typedef struct progress {
	const conn *c;
	size_t base; /* h.msgs.len before this connection */
	size_t sent;
} progress;

/* Everything sent so far was read: handed up or waiting in the buffer. */
static bool all_read(void *ud)
{
	const progress *pr = ud;

	return h.msgs.len - pr->base + pr->c->ilen == pr->sent;
}

static uint32_t complete_before(const size_t *ends, size_t upto)
{
	uint32_t n = 0;

	while (n < STREAM_MSGS && ends[n] <= upto)
		n++;
	return n;
}

/* The whole stream was handed up unchanged, one message per callback, and
 * each request was answered, in order. */
static void check_stream(tu_peer *p, const msgpack_sbuffer *sb, size_t base, uint32_t n_before,
			 const uint32_t *msgids)
{
	ck_assert_uint_eq(h.n_msgs - n_before, STREAM_MSGS);
	ck_assert_uint_eq(h.msgs.len - base, sb->size);
	ck_assert_mem_eq(h.msgs.data + base, sb->data, sb->size);
	for (int i = 0; i < STREAM_REQS; i++)
		tu_expect_ok(p, msgids[i], NULL);
}

START_TEST(framing_across_every_split)
{
	msgpack_sbuffer sb;
	size_t ends[STREAM_MSGS];
	uint32_t msgids[STREAM_REQS];

	ck_assert_uint_eq(build_stream(&sb, ends, msgids), STREAM_MSGS);
	for (size_t k = 1; k < sb.size; k++) {
		uint32_t n_before = h.n_msgs, closes = h.n_closes + 1;
		tu_peer *p;
		conn *c = open_conn(&p);
		progress pr = { c, h.msgs.len, k };

		tu_send(&h.tl, p->fd, sb.data, k);
		ck_assert(tu_pump(&h.tl, all_read, &pr, TU_TIMEOUT_MS));
		ck_assert_uint_eq(h.n_msgs - n_before, complete_before(ends, k));
		tu_send(&h.tl, p->fd, sb.data + k, sb.size - k);
		pr.sent = sb.size;
		ck_assert(tu_pump(&h.tl, all_read, &pr, TU_TIMEOUT_MS));
		ck_assert_uint_eq(c->ilen, 0);
		check_stream(p, &sb, pr.base, n_before, msgids);
		/* the peer leaves: closed once, its slot reused */
		tu_peer_fini(p);
		h.n_peers--;
		wait_closes(closes);
	}
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(framing_one_byte_at_a_time)
{
	msgpack_sbuffer sb;
	size_t ends[STREAM_MSGS];
	uint32_t msgids[STREAM_REQS];
	tu_peer *p;
	conn *c = open_conn(&p);
	progress pr = { c, 0, 0 };

	build_stream(&sb, ends, msgids);
	for (size_t k = 0; k < sb.size; k++) {
		tu_send(&h.tl, p->fd, sb.data + k, 1);
		pr.sent = k + 1;
		ck_assert(tu_pump(&h.tl, all_read, &pr, TU_TIMEOUT_MS));
		ck_assert_uint_eq(h.n_msgs, complete_before(ends, k + 1));
	}
	check_stream(p, &sb, 0, 0, msgids);
	ck_assert_uint_eq(h.srv.st.malformed, 0);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* ---- limits ---- */

/*
 * Each limit: a request just within it is handed up and answered; the next
 * one, just over it, is answered with the error (its msgid is known) and the
 * connection closes, so a third one pipelined behind is never handed up.
 */
typedef struct limit_case {
	void (*change)(server_limits *l);
	void (*pack)(msgpack_packer *pk, uint32_t msgid, bool over);
	const char *code, *text;
} limit_case;

static void pack_str_param(msgpack_packer *pk, uint32_t msgid, size_t n)
{
	char *s = malloc(n);

	ck_assert_ptr_nonnull(s);
	memset(s, 's', n);
	proto_pack_request(pk, msgid, "a.b", 3, 1);
	msgpack_pack_str_with_body(pk, s, n);
	free(s);
}

static void max_1k(server_limits *l)
{
	l->proto.max_message_bytes = 1024;
}

static void pack_long(msgpack_packer *pk, uint32_t msgid, bool over)
{
	pack_str_param(pk, msgid, over ? 2000 : 900);
}

static void max_depth_4(server_limits *l)
{
	l->proto.max_depth = 4;
}

/* the message is depth 1 and its params 2: [[1]] reaches 4 */
static void pack_nested(msgpack_packer *pk, uint32_t msgid, bool over)
{
	proto_pack_request(pk, msgid, "a.b", 3, 1);
	for (int i = 0; i < (over ? 3 : 2); i++)
		msgpack_pack_array(pk, 1);
	msgpack_pack_int(pk, 1);
}

static void max_elements_10(server_limits *l)
{
	l->proto.max_elements = 10;
}

/* array, type, msgid, method and params are 5 elements */
static void pack_many(msgpack_packer *pk, uint32_t msgid, bool over)
{
	int n = over ? 6 : 5;

	proto_pack_request(pk, msgid, "a.b", 3, (uint32_t)n);
	for (int i = 0; i < n; i++)
		msgpack_pack_int(pk, i);
}

static void max_str_16(server_limits *l)
{
	l->proto.max_str_bytes = 16;
}

static void pack_str(msgpack_packer *pk, uint32_t msgid, bool over)
{
	pack_str_param(pk, msgid, over ? 17 : 16);
}

static const limit_case limit_cases[] = {
	{ max_1k, pack_long, "too_large", "message too large" },
	{ max_depth_4, pack_nested, "bad_request", "nested too deeply" },
	{ max_elements_10, pack_many, "bad_request", "too many elements" },
	{ max_str_16, pack_str, "too_large", "payload too large" },
};

static void limits(void (*change)(server_limits *l))
{
	server_limits l = h.srv.limits;

	change(&l);
	server_set_limits(&h.srv, &l);
}

START_TEST(limit_is_answered_and_closed)
{
	const limit_case *lc = &limit_cases[_i];
	msgpack_sbuffer sb;
	msgpack_packer pk;
	tu_peer *p;

	limits(lc->change);
	open_conn(&p);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	lc->pack(&pk, 1, false);
	lc->pack(&pk, 2, true);
	lc->pack(&pk, 3, false);
	send_sb(p, &sb);
	tu_expect_ok(p, 1, NULL);
	tu_expect_error(p, 2, lc->code, lc->text);
	expect_closed(p);
	ck_assert_uint_eq(h.n_msgs, 1);
	ck_assert_uint_eq(h.srv.st.malformed, 1);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* A header announcing more than the limit is refused on the header alone:
 * the body is never sent, nor waited for. */
START_TEST(too_large_refused_on_its_header)
{
	static const char hdr[] = { (char)0x94, 0x00, 0x09, (char)0xa3, 'a', '.', 'b',
				    (char)0x91, (char)0xdb, 0x40, 0x00, 0x00, 0x00 };
	tu_peer *p;

	open_conn(&p);
	tu_send(&h.tl, p->fd, hdr, sizeof(hdr)); /* str32 of 1 GiB, no body */
	tu_expect_error(p, 9, "too_large", NULL);
	expect_closed(p);
	ck_assert_uint_eq(h.n_msgs, 0);
}
END_TEST

/* Without a msgid there is nobody to answer: the connection just closes. */
START_TEST(malformed_without_msgid_closes_silently)
{
	static const struct {
		const char *bytes;
		size_t len;
	} cases[] = {
		{ "\xc1", 1 }, /* never used in msgpack */
		{ "\x01", 1 }, /* not an array */
		{ "\x92\x00\x01", 3 }, /* 2 elements */
		{ "\x94\x05", 2 }, /* type 5 */
		{ "\x94\x00\xa1x", 4 }, /* msgid not an integer */
		{ "\x93\x02\xc1", 3 }, /* a notification with a bad byte */
	};
	tu_peer *p;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		open_conn(&p);
		tu_send(&h.tl, p->fd, cases[i].bytes, cases[i].len);
		expect_closed(p);
	}
	ck_assert_uint_eq(h.n_msgs, 0);
	ck_assert_uint_eq(h.srv.st.malformed, ARRAY_SIZE(cases));
}
END_TEST

/* New limits reach connections already open, from their next read. */
START_TEST(new_limits_reach_open_connections)
{
	char s[200];
	msgpack_sbuffer sb;
	tu_peer *p;

	memset(s, 's', sizeof(s) - 1);
	s[sizeof(s) - 1] = '\0';
	open_conn(&p);
	msgpack_sbuffer_init(&sb);
	tu_pack_request(&sb, 1, "a.b", "s", s);
	send_sb(p, &sb);
	tu_expect_ok(p, 1, NULL);
	limits(max_1k);
	limits(max_str_16);
	send_sb(p, &sb);
	tu_expect_error(p, 1, "too_large", NULL);
	expect_closed(p);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* on_message < 0: what was queued is flushed, then the connection closes;
 * a message pipelined behind is never handed up. */
START_TEST(negative_on_message_closes_after_flush)
{
	msgpack_sbuffer sb;
	tu_msg m;
	tu_peer *p;

	open_conn(&p);
	msgpack_sbuffer_init(&sb);
	tu_pack_request(&sb, 1, "a.b", "");
	tu_pack_request(&sb, 2, "close.me", "");
	tu_pack_request(&sb, 3, "a.b", "");
	send_sb(p, &sb);
	tu_expect_ok(p, 1, NULL);
	tu_expect_ok(p, 2, &m);
	ck_assert_int_eq(m.result->type, MSGPACK_OBJECT_BOOLEAN);
	tu_msg_free(&m);
	expect_closed(p);
	ck_assert_uint_eq(h.n_msgs, 2);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* ---- backpressure ---- */

static void two_in_flight(server_limits *l)
{
	l->max_inflight = 2;
}

START_TEST(inflight_cap_stops_reading_and_done_resumes)
{
	tu_peer *p;
	conn *c;
	size_t ilen;

	limits(two_in_flight);
	h.mode = ANSWER_HOLD;
	c = open_conn(&p);
	send_requests(p, 1, 5);
	wait_msgs(2);
	ck_assert_uint_eq(c->inflight, 2);
	ck_assert(!c->reading);
	ck_assert(c->backlog); /* whole requests wait in the input buffer */
	ck_assert_uint_gt(c->ilen, 0);

	/* not reading: bytes already in the socket stay there */
	ilen = c->ilen;
	send_request(p, 6, "a.b");
	for (int i = 0; i < 5; i++)
		tu_pump_once(&h.tl);
	ck_assert_uint_eq(c->ilen, ilen);
	ck_assert_uint_eq(h.n_msgs, 2);

	/* each request done makes room for exactly one more */
	release_one();
	ck_assert_uint_eq(h.n_msgs, 3);
	tu_expect_ok(p, 1, NULL);
	release_one();
	ck_assert_uint_eq(h.n_msgs, 4);
	release_one();
	release_one();
	/* the backlog is gone: reading resumed and found request 6 */
	wait_msgs(6);
	release_one();
	release_one();
	for (uint32_t i = 2; i <= 6; i++)
		tu_expect_ok(p, i, NULL);
	ck_assert_uint_eq(c->inflight, 0);
	ck_assert(c->reading);
	ck_assert(!c->backlog);
}
END_TEST

/*
 * A request handed off and back within on_message (dispatch does this when
 * it cannot queue pool work): conn_request_done runs while the transport is
 * still inside its framing loop. Each message must still be handed up once.
 */
START_TEST(request_done_inside_on_message)
{
	tu_peer *p;
	conn *c;

	h.mode = ANSWER_HANDED_BACK;
	c = open_conn(&p);
	send_requests(p, 1, 3);
	for (uint32_t i = 1; i <= 3; i++)
		tu_expect_ok(p, i, NULL);
	for (int i = 0; i < 5; i++)
		tu_pump_once(&h.tl);
	ck_assert_uint_eq(h.n_msgs, 3);
	ck_assert_uint_eq(c->inflight, 0);
	ck_assert_uint_eq(c->ilen, 0);
}
END_TEST

/* The layer above pauses a connection (a per-uid budget) and resumes it. */
START_TEST(hold_pauses_reading)
{
	tu_peer *p;
	conn *c = open_conn(&p);

	conn_hold(c, true);
	ck_assert(!c->reading);
	send_request(p, 1, "a.b");
	for (int i = 0; i < 5; i++)
		tu_pump_once(&h.tl);
	ck_assert_uint_eq(h.n_msgs, 0);
	ck_assert_uint_eq(c->ilen, 0);
	conn_hold(c, false);
	wait_msgs(1);
	tu_expect_ok(p, 1, NULL);
}
END_TEST

static void small_output(server_limits *l)
{
	l->max_output_bytes = 4096;
}

#define BIG_REQUESTS 40

/*
 * A peer that does not read: replies pile up until max_output_bytes is
 * exceeded, then the connection stops reading (the requests behind wait in
 * the socket and the input buffer); when the peer drains, everything is
 * answered.
 */
START_TEST(output_cap_with_slow_reader)
{
	tu_peer *p;
	conn *c;
	tu_msg m;

	limits(small_output);
	set_big(256 * 1024);
	c = open_conn(&p);
	send_requests(p, 1, BIG_REQUESTS);
	/* the socket fills after a few replies: the rest wait */
	wait_msgs(1);
	for (int i = 0; i < 20; i++)
		tu_pump_once(&h.tl);
	ck_assert_uint_lt(h.n_msgs, BIG_REQUESTS);
	ck_assert_uint_gt(conn_unsent(c), 4096);
	ck_assert(!c->reading);
	ck_assert(c->backlog);
	/* what the socket did not take is reported up (per-uid budgets) */
	ck_assert_int_gt(h.pending, 0);
	ck_assert_int_eq(h.pending, (int64_t)c->pending);

	for (uint32_t i = 1; i <= BIG_REQUESTS; i++) {
		tu_expect_ok(p, i, &m);
		ck_assert_int_eq(m.result->type, MSGPACK_OBJECT_BIN);
		ck_assert_uint_eq(m.result->via.bin.size, 256 * 1024);
		tu_msg_free(&m);
	}
	ck_assert_uint_eq(h.n_msgs, BIG_REQUESTS);
	ck_assert_uint_eq(conn_unsent(c), 0);
	ck_assert_int_eq(h.pending, 0);
}
END_TEST

/*
 * Replies over max_output_bytes that the socket takes at once (it has room):
 * nothing waits for the peer, so nothing may be left unanswered. Every
 * request pipelined behind the first must be handed up and answered.
 */
START_TEST(output_cap_resumes_when_the_socket_took_everything)
{
	tu_peer *p;

	limits(small_output);
	set_big(8 * 1024); /* over the cap, far under the socket's buffer */
	open_conn(&p);
	send_requests(p, 1, 3);
	for (uint32_t i = 1; i <= 3; i++)
		tu_expect_ok(p, i, NULL);
	ck_assert_uint_eq(h.n_msgs, 3);
}
END_TEST

/* ---- deadlines ---- */

static void write_deadline(server_limits *l)
{
	l->write_timeout_ms = 300;
}

START_TEST(write_timeout_closes_a_peer_that_never_reads)
{
	tu_peer *p;

	limits(write_deadline);
	set_big(1 << 20);
	open_conn(&p);
	send_requests(p, 1, 4);
	wait_closes(1);
	ck_assert_uint_eq(h.srv.st.timeouts, 1);
	ck_assert_uint_eq(h.srv.n_conns, 0);
}
END_TEST

static void message_deadline(server_limits *l)
{
	l->message_timeout_ms = 300;
	l->max_inflight = 4;
}

/* Slowloris: half a message closes the connection after message_timeout,
 * even while one of its requests is in flight. */
START_TEST(message_timeout_closes_half_message_with_request_in_flight)
{
	msgpack_sbuffer sb;
	tu_peer *p;
	conn *c;

	limits(message_deadline);
	h.mode = ANSWER_HOLD;
	c = open_conn(&p);
	msgpack_sbuffer_init(&sb);
	tu_pack_request(&sb, 1, "a.b", "");
	tu_pack_request(&sb, 2, "a.b", "s", "the second one stops half-way");
	tu_send(&h.tl, p->fd, sb.data, sb.size - 10);
	wait_msgs(1);
	ck_assert_uint_eq(c->inflight, 1);
	wait_closes(1);
	ck_assert_uint_eq(h.srv.st.timeouts, 1);
	ck_assert_uint_eq(h.n_msgs, 1);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

static void message_deadline_one_in_flight(server_limits *l)
{
	l->message_timeout_ms = 100;
	l->max_inflight = 1;
}

/* Whole requests waiting behind the in-flight cap are not a slow message:
 * the deadline must not close a connection for the daemon's own backlog. */
START_TEST(message_timeout_spares_the_backlog)
{
	uint32_t one = 1;
	tu_peer *p;
	conn *c;

	limits(message_deadline_one_in_flight);
	h.mode = ANSWER_HOLD;
	c = open_conn(&p);
	send_requests(p, 1, 2);
	wait_msgs(1);
	ck_assert(c->backlog);
	/* several reaper rounds past the deadline: still open */
	ck_assert(!tu_pump(&h.tl, n_closes_at_least, &one, 4 * SERVER_REAPER_MS));
	release_one();
	ck_assert_uint_eq(h.n_msgs, 2);
	release_one();
	tu_expect_ok(p, 1, NULL);
	tu_expect_ok(p, 2, NULL);
	ck_assert_uint_eq(h.srv.st.timeouts, 0);
}
END_TEST

static void idle_deadline(server_limits *l)
{
	l->idle_timeout_ms = 200;
}

/* Idle connections close; one with a request in flight is not idle. */
START_TEST(idle_timeout_closes_idle_connections_only)
{
	tu_peer *idle, *busy;
	uint32_t two = 2;
	conn *cb;

	limits(idle_deadline);
	open_conn(&idle);
	cb = open_conn(&busy);
	h.mode = ANSWER_HOLD;
	send_request(busy, 1, "a.b");
	wait_msgs(1);
	expect_closed(idle);
	ck_assert_uint_eq(h.n_closes, 1);
	ck_assert_uint_eq(h.srv.st.timeouts, 1);
	/* well past its idle time, the busy one stays */
	ck_assert(!tu_pump(&h.tl, n_closes_at_least, &two, 4 * SERVER_REAPER_MS));
	ck_assert(!cb->closing);
	/* answered, it is idle too */
	release_one();
	tu_expect_ok(busy, 1, NULL);
	expect_closed(busy);
	ck_assert_uint_eq(h.srv.st.timeouts, 2);
}
END_TEST

/* ---- connections ---- */

static bool accepted_or_refused(void *ud)
{
	const server_stats *st = &h.srv.st;

	return st->connections_total + st->connections_refused >= *(const uint64_t *)ud;
}

static void wait_accepts(uint64_t n)
{
	ck_assert(tu_pump(&h.tl, accepted_or_refused, &n, TU_TIMEOUT_MS));
}

static bool n_conns_is(void *ud)
{
	return h.srv.n_conns == *(const uint32_t *)ud;
}

static void check_cap(void)
{
	tu_peer *a, *b, *c, *d;
	uint32_t one = 1;

	a = connect_peer();
	b = connect_peer();
	c = connect_peer();
	wait_accepts(3);
	ck_assert_uint_eq(h.srv.n_conns, 2);
	ck_assert_uint_eq(h.srv.st.connections_total, 2);
	ck_assert_uint_eq(h.srv.st.connections_refused, 1);
	/* the one over the cap is closed at once; the others are served */
	expect_closed(c);
	send_request(a, 1, "a.b");
	send_request(b, 2, "a.b");
	tu_expect_ok(a, 1, NULL);
	tu_expect_ok(b, 2, NULL);
	/* one leaves: there is room again */
	tu_peer_fini(a);
	ck_assert(tu_pump(&h.tl, n_conns_is, &one, TU_TIMEOUT_MS));
	d = connect_peer();
	wait_accepts(4);
	ck_assert_uint_eq(h.srv.st.connections_total, 3);
	send_request(d, 3, "a.b");
	tu_expect_ok(d, 3, NULL);
}

static void two_per_uid(server_limits *l)
{
	l->max_connections_per_uid = 2;
}

static void two_in_total(server_limits *l)
{
	l->max_connections = 2;
}

/* server.max_connections_per_uid, then server.max_connections */
static void (*const caps[])(server_limits *l) = { two_per_uid, two_in_total };

START_TEST(connection_cap)
{
	limits(caps[_i]);
	check_cap();
}
END_TEST

/* Accepted connections carry the peer's credentials. */
START_TEST(accepted_connection_has_credentials)
{
	connect_peer();
	wait_accepts(1);
	ck_assert_uint_eq(h.srv.n_conns, 1);
	ck_assert_int_eq(h.srv.conns->pid, getpid());
	ck_assert_uint_eq(h.srv.conns->uid, geteuid());
	ck_assert_uint_eq(h.srv.conns->gid, getegid());
}
END_TEST

/* However a connection ends, on_close runs once (on_close itself fails the
 * test on a repeat; teardown checks the count). */
START_TEST(on_close_once_per_connection)
{
	tu_peer *p;
	conn *c;

	/* the peer leaves */
	open_conn(&p);
	tu_peer_fini(p);
	wait_closes(1);
	/* a malformed message */
	open_conn(&p);
	tu_send(&h.tl, p->fd, "\xc1", 1);
	expect_closed(p);
	ck_assert_uint_eq(h.n_closes, 2);
	/* closed from above, twice */
	c = open_conn(&p);
	conn_close(c);
	conn_close(c);
	ck_assert_uint_eq(h.n_closes, 3);
	expect_closed(p);
	/* closed with a request in flight, which then completes */
	h.mode = ANSWER_HOLD;
	c = open_conn(&p);
	send_request(p, 1, "a.b");
	wait_msgs(1);
	conn_close(c);
	ck_assert_uint_eq(h.n_closes, 4);
	release_one(); /* the reply goes nowhere; the conn is freed after */
	expect_closed(p);
	/* two left open for server_close in teardown */
	open_conn(&p);
	open_conn(&p);
	ck_assert_uint_eq(h.srv.n_conns, 2);
}
END_TEST

/* The peer half-closes after its requests: all are answered, then it closes. */
START_TEST(eof_answers_what_was_sent)
{
	tu_peer *p;
	uint32_t n;

	h.mode = ANSWER_HOLD;
	open_conn(&p);
	send_requests(p, 1, 2);
	ck_assert_int_eq(shutdown(p->fd, SHUT_WR), 0);
	wait_msgs(2);
	for (int i = 0; i < 5; i++)
		tu_pump_once(&h.tl);
	ck_assert_uint_eq(h.n_closes, 0);
	release_one();
	release_one();
	ck_assert(tu_peer_wait_eof(p, &n, TU_TIMEOUT_MS));
	ck_assert_uint_eq(n, 2);
}
END_TEST

/* Draining: no accepting, no reading, but what is in flight is answered. */
START_TEST(drain_stops_reading_and_accepting)
{
	tu_peer *busy, *quiet;
	conn *cq;

	h.mode = ANSWER_HOLD;
	open_conn(&busy);
	cq = open_conn(&quiet);
	send_request(busy, 1, "a.b");
	wait_msgs(1);
	server_drain(&h.srv);
	ck_assert(!server_idle(&h.srv));
	/* the listener is gone, path and all */
	ck_assert_int_eq(access(h.path, F_OK), -1);
	ck_assert_int_lt(tu_connect(h.path), 0);
	/* nothing more is read */
	send_request(quiet, 2, "a.b");
	for (int i = 0; i < 5; i++)
		tu_pump_once(&h.tl);
	ck_assert_uint_eq(h.n_msgs, 1);
	ck_assert_uint_eq(cq->ilen, 0);
	ck_assert(!cq->reading);
	/* the call in flight is still answered */
	release_one();
	tu_expect_ok(busy, 1, NULL);
	ck_assert(server_idle(&h.srv));
	ck_assert_uint_eq(h.n_msgs, 1);
}
END_TEST

START_TEST(server_close_closes_everything)
{
	tu_peer *p[3];

	for (int i = 0; i < 3; i++)
		open_conn(&p[i]);
	connect_peer();
	wait_accepts(4);
	ck_assert_uint_eq(h.srv.n_conns, 4);
	server_close(&h.srv);
	ck_assert_uint_eq(h.srv.n_conns, 0);
	ck_assert_ptr_null(h.srv.conns);
	ck_assert_uint_eq(h.n_closes, 4);
	ck_assert_int_eq(access(h.path, F_OK), -1);
	for (int i = 0; i < 3; i++)
		expect_closed(p[i]);
	/* teardown's second server_close is harmless */
}
END_TEST

/* ---- the socket path ---- */

/* A second server on the test's loop: server_start's result on path. */
static int start_other(server *s, const char *path)
{
	const server_callbacks cb = { .on_message = on_message, .on_close = on_close };

	server_init(s, &h.tl.loop, &h.srv.limits, &cb, &h);
	return server_start(s, path, -1);
}

static void close_other(server *s)
{
	server_close(s);
	tu_pump_once(&h.tl); /* its close callbacks, before s goes out of scope */
}

static void assert_connects(const char *path)
{
	int fd = tu_connect(path);

	ck_assert_msg(fd >= 0, "connect %s: %s", path, strerror(-fd));
	close(fd);
}

START_TEST(stale_socket_replaced_live_one_refused)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char path[160];
	server other;
	int fd;

	log_set_level(2); /* the refusals below log errors, as they should */
	/* a live daemon's socket is not stolen */
	ck_assert_int_eq(start_other(&other, h.path), -EADDRINUSE);
	close_other(&other);
	ck_assert_int_eq(access(h.path, F_OK), 0);
	/* ...and still serves (the probe's connection is accepted and leaves) */
	send_request(connect_peer(), 1, "a.b");
	tu_expect_ok(&h.peers[h.n_peers - 1], 1, NULL);

	/* a socket nobody listens on any more is replaced */
	in_dir(path, sizeof(path), "stale.sock");
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	ck_assert_int_eq(access(path, F_OK), 0);
	ck_assert_int_eq(start_other(&other, path), 0);
	assert_connects(path);
	close_other(&other);
	ck_assert_int_eq(access(path, F_OK), -1); /* ours: removed at close */

	/* anything else at the path is left alone */
	tu_write_file(h.dir, "file.sock", "not a socket\n");
	in_dir(path, sizeof(path), "file.sock");
	ck_assert_int_eq(start_other(&other, path), -EEXIST);
	close_other(&other);
	ck_assert_int_eq(access(path, F_OK), 0);
}
END_TEST

START_TEST(missing_directories_are_created)
{
	char path[160];
	server other;

	in_dir(path, sizeof(path), "a/b/s.sock");
	ck_assert_int_eq(start_other(&other, path), 0);
	assert_connects(path);
	close_other(&other);
}
END_TEST

static Suite *server_suite(void)
{
	Suite *s = suite_create("server");
	TCase *tc = tcase_create("server");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, framing_across_every_split);
	tcase_add_test(tc, framing_one_byte_at_a_time);
	tcase_add_loop_test(tc, limit_is_answered_and_closed, 0, ARRAY_SIZE(limit_cases));
	tcase_add_test(tc, too_large_refused_on_its_header);
	tcase_add_test(tc, malformed_without_msgid_closes_silently);
	tcase_add_test(tc, new_limits_reach_open_connections);
	tcase_add_test(tc, negative_on_message_closes_after_flush);
	tcase_add_test(tc, inflight_cap_stops_reading_and_done_resumes);
	tcase_add_test(tc, request_done_inside_on_message);
	tcase_add_test(tc, hold_pauses_reading);
	tcase_add_test(tc, output_cap_with_slow_reader);
	tcase_add_test(tc, output_cap_resumes_when_the_socket_took_everything);
	tcase_add_test(tc, write_timeout_closes_a_peer_that_never_reads);
	tcase_add_test(tc, message_timeout_closes_half_message_with_request_in_flight);
	tcase_add_test(tc, message_timeout_spares_the_backlog);
	tcase_add_test(tc, idle_timeout_closes_idle_connections_only);
	tcase_add_loop_test(tc, connection_cap, 0, ARRAY_SIZE(caps));
	tcase_add_test(tc, accepted_connection_has_credentials);
	tcase_add_test(tc, on_close_once_per_connection);
	tcase_add_test(tc, eof_answers_what_was_sent);
	tcase_add_test(tc, drain_stops_reading_and_accepting);
	tcase_add_test(tc, server_close_closes_everything);
	tcase_add_test(tc, stale_socket_replaced_live_one_refused);
	tcase_add_test(tc, missing_directories_are_created);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(server_suite());
}
