/*
 * test-proto.c - unit tests of proto/: pre-scan limits and resumption, message
 * shapes, error names, method split and the pack helpers.
 *
 * Scanned buffers are placed so that they end exactly at a PROT_NONE page:
 * a scanner reading one byte past len crashes the test even without ASan.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "proto.h"

/* ---- helpers ---- */

#define GUARD_CAP (2u * 1024u * 1024u)

static uint8_t *guard_base;
static size_t guard_page;

/* Copy src into memory whose end is followed by an inaccessible page. */
static const uint8_t *guard_place(const void *src, size_t len)
{
	if (!guard_base) {
		guard_page = (size_t)sysconf(_SC_PAGESIZE);
		void *m = mmap(NULL, GUARD_CAP + guard_page, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ck_assert(m != MAP_FAILED);
		ck_assert_int_eq(mprotect((uint8_t *)m + GUARD_CAP, guard_page, PROT_NONE), 0);
		guard_base = m;
	}
	ck_assert_uint_le(len, GUARD_CAP);
	uint8_t *p = guard_base + GUARD_CAP - len;
	if (len)
		memcpy(p, src, len);
	return p;
}

typedef struct msgbuf {
	msgpack_sbuffer sb;
	msgpack_packer pk;
} msgbuf;

static void mb_init(msgbuf *b)
{
	msgpack_sbuffer_init(&b->sb);
	msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
}

static void mb_free(msgbuf *b)
{
	msgpack_sbuffer_destroy(&b->sb);
}

static proto_limits lim_default(void)
{
	proto_limits l;

	proto_limits_default(&l);
	return l;
}

static proto_scan_status scan_once(const void *buf, size_t len, const proto_limits *l,
				   proto_scan *s)
{
	const uint8_t *p = guard_place(buf, len);

	proto_scan_reset(s);
	return proto_scan_feed(s, l, p, len);
}

/* Feed a growing prefix one byte at a time until the scanner decides. */
static proto_scan_status scan_bytewise(const void *buf, size_t len, const proto_limits *l,
				       proto_scan *s)
{
	proto_scan_status st = PROTO_SCAN_MORE;

	proto_scan_reset(s);
	for (size_t i = 0; i <= len && st == PROTO_SCAN_MORE; i++)
		st = proto_scan_feed(s, l, buf, i);
	return st;
}

/* Unpack exactly one message of len bytes; fails the test otherwise. */
static void unpack_exact(const void *buf, size_t len, msgpack_unpacked *u)
{
	size_t off = 0;

	msgpack_unpacked_init(u);
	ck_assert_int_eq(msgpack_unpack_next(u, buf, len, &off), MSGPACK_UNPACK_SUCCESS);
	ck_assert_uint_eq(off, len);
}

/* [0, 1, "a.b", params] header with n params; caller packs the params. */
static void pack_req(msgbuf *b, uint32_t n)
{
	ck_assert_int_eq(proto_pack_request(&b->pk, 1, "a.b", 3, n), 0);
}

/* Objects in a request header of pack_req: array, type, msgid, method, params. */
#define REQ_OBJS 5u

/* ---- error names ---- */

START_TEST(test_err_names)
{
	static const char *const names[] = {
		"no_such_module", "no_such_method", "bad_request", "bad_params",
		"load_failed", "module_error", "timeout", "denied", "busy", "too_large",
		"shutting_down", "internal", "module_crashed",
	};

	ck_assert_uint_eq(sizeof(names) / sizeof(names[0]), PROTO_E__MAX - 1);
	for (unsigned i = 0; i < PROTO_E__MAX - 1; i++) {
		proto_err e = (proto_err)(i + 1);
		ck_assert_str_eq(proto_err_name(e), names[i]);
		ck_assert_int_eq(proto_err_from_name(names[i], strlen(names[i])), e);
	}
	ck_assert_int_eq(proto_err_from_name("busy", 4), PROTO_E_BUSY);
	ck_assert_int_eq(proto_err_from_name("busyx", 4), PROTO_E_BUSY); /* length-bounded */
	ck_assert_int_eq(proto_err_from_name("bus", 3), PROTO_E_INTERNAL);
	ck_assert_int_eq(proto_err_from_name("BUSY", 4), PROTO_E_INTERNAL);
	ck_assert_int_eq(proto_err_from_name("nope", 4), PROTO_E_INTERNAL);
	ck_assert_int_eq(proto_err_from_name("ok", 2), PROTO_E_INTERNAL);
	ck_assert_int_eq(proto_err_from_name(NULL, 3), PROTO_E_INTERNAL);
	ck_assert_int_eq(proto_err_from_name("", 0), PROTO_E_INTERNAL);
	ck_assert_str_eq(proto_err_name((proto_err)(PROTO_E__MAX + 7)), "internal");
	ck_assert_str_eq(proto_err_name((proto_err)-1), "internal");
}
END_TEST

/* ---- round trips ---- */

static void roundtrip(msgbuf *b, msgpack_unpacked *u, proto_msg *m)
{
	proto_limits l = lim_default();
	proto_scan s;
	const char *reason = "unset";

	ck_assert_int_eq(scan_once(b->sb.data, b->sb.size, &l, &s), PROTO_SCAN_DONE);
	ck_assert_uint_eq(s.msg_len, b->sb.size);
	unpack_exact(b->sb.data, b->sb.size, u);
	ck_assert_int_eq(proto_msg_parse(&u->data, m, &reason), PROTO_OK);
	ck_assert_ptr_null(reason);
}

START_TEST(test_roundtrip_request)
{
	msgbuf b;
	msgpack_unpacked u;
	proto_msg m;

	mb_init(&b);
	ck_assert_int_eq(proto_pack_request(&b.pk, 0xfffffffeu, "hash.sha256", 11, 2), 0);
	ck_assert_int_eq(proto_pack_cstr(&b.pk, "abc"), 0);
	msgpack_pack_int64(&b.pk, -5);
	roundtrip(&b, &u, &m);
	ck_assert_int_eq(m.type, PROTO_REQUEST);
	ck_assert_uint_eq(m.msgid, 0xfffffffeu);
	ck_assert_uint_eq(m.method_len, 11);
	ck_assert_mem_eq(m.method, "hash.sha256", 11);
	ck_assert_ptr_nonnull(m.params);
	ck_assert_int_eq(m.params->type, MSGPACK_OBJECT_ARRAY);
	ck_assert_uint_eq(m.params->via.array.size, 2);
	ck_assert_int_eq(m.params->via.array.ptr[0].type, MSGPACK_OBJECT_STR);
	ck_assert_mem_eq(m.params->via.array.ptr[0].via.str.ptr, "abc", 3);
	ck_assert_int_eq(m.params->via.array.ptr[1].via.i64, -5);
	ck_assert_ptr_null(m.error);
	ck_assert_ptr_null(m.result);

	/* the scanner saw the msgid too */
	proto_limits l = lim_default();
	proto_scan s;
	ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_DONE);
	ck_assert(s.have_msgid);
	ck_assert_uint_eq(s.msgid, 0xfffffffeu);
	msgpack_unpacked_destroy(&u);
	mb_free(&b);
}
END_TEST

START_TEST(test_roundtrip_request_bin_method)
{
	msgbuf b;
	msgpack_unpacked u;
	proto_msg m;

	mb_init(&b);
	msgpack_pack_array(&b.pk, 4);
	msgpack_pack_uint8(&b.pk, 0);
	msgpack_pack_uint8(&b.pk, 9);
	msgpack_pack_bin(&b.pk, 9);
	msgpack_pack_bin_body(&b.pk, "lmms.ping", 9);
	msgpack_pack_array(&b.pk, 0);
	roundtrip(&b, &u, &m);
	ck_assert_int_eq(m.type, PROTO_REQUEST);
	ck_assert_uint_eq(m.msgid, 9);
	ck_assert_uint_eq(m.method_len, 9);
	ck_assert_mem_eq(m.method, "lmms.ping", 9);
	ck_assert_uint_eq(m.params->via.array.size, 0);
	msgpack_unpacked_destroy(&u);
	mb_free(&b);
}
END_TEST

START_TEST(test_roundtrip_request_wide_ints)
{
	/* type and msgid in int8/uint64 encodings are still the same integers */
	static const uint8_t msg[] = {
		0x94, 0xd0, 0x00, 0xcf, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
		0xa3, 'a', '.', 'b', 0x90,
	};
	proto_limits l = lim_default();
	proto_scan s;
	msgpack_unpacked u;
	proto_msg m;

	ck_assert_int_eq(scan_once(msg, sizeof(msg), &l, &s), PROTO_SCAN_DONE);
	ck_assert(s.have_msgid);
	ck_assert_uint_eq(s.msgid, UINT32_MAX);
	unpack_exact(msg, sizeof(msg), &u);
	ck_assert_int_eq(proto_msg_parse(&u.data, &m, NULL), PROTO_OK);
	ck_assert_uint_eq(m.msgid, UINT32_MAX);
	msgpack_unpacked_destroy(&u);
}
END_TEST

START_TEST(test_roundtrip_notification)
{
	msgbuf b;
	msgpack_unpacked u;
	proto_msg m;

	mb_init(&b);
	ck_assert_int_eq(proto_pack_notification(&b.pk, "nvim_buf_lines_event", 20, 1), 0);
	msgpack_pack_true(&b.pk);
	roundtrip(&b, &u, &m);
	ck_assert_int_eq(m.type, PROTO_NOTIFICATION);
	ck_assert_uint_eq(m.method_len, 20);
	ck_assert_mem_eq(m.method, "nvim_buf_lines_event", 20);
	ck_assert_uint_eq(m.params->via.array.size, 1);
	ck_assert_int_eq(m.params->via.array.ptr[0].type, MSGPACK_OBJECT_BOOLEAN);

	proto_limits l = lim_default();
	proto_scan s;
	ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_DONE);
	ck_assert(!s.have_msgid);
	msgpack_unpacked_destroy(&u);
	mb_free(&b);
}
END_TEST

START_TEST(test_roundtrip_response_ok)
{
	msgbuf b;
	msgpack_unpacked u;
	proto_msg m;

	mb_init(&b);
	ck_assert_int_eq(proto_pack_response_ok(&b.pk, 42), 0);
	ck_assert_int_eq(proto_pack_cstr(&b.pk, "pong"), 0);
	roundtrip(&b, &u, &m);
	ck_assert_int_eq(m.type, PROTO_RESPONSE);
	ck_assert_uint_eq(m.msgid, 42);
	ck_assert_int_eq(m.error->type, MSGPACK_OBJECT_NIL);
	ck_assert_int_eq(m.result->type, MSGPACK_OBJECT_STR);
	ck_assert_mem_eq(m.result->via.str.ptr, "pong", 4);
	ck_assert_ptr_null(m.method);
	ck_assert_ptr_null(m.params);

	/* a response's msgid is not recorded as a request's */
	proto_limits l = lim_default();
	proto_scan s;
	ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_DONE);
	ck_assert(!s.have_msgid);
	msgpack_unpacked_destroy(&u);
	mb_free(&b);
}
END_TEST

START_TEST(test_roundtrip_response_error)
{
	msgbuf b;
	msgpack_unpacked u;
	proto_msg m;
	const msgpack_object *e;

	mb_init(&b);
	ck_assert_int_eq(proto_pack_response_error(&b.pk, 7, PROTO_E_BUSY, "refs > 0"), 0);
	roundtrip(&b, &u, &m);
	ck_assert_int_eq(m.type, PROTO_RESPONSE);
	ck_assert_uint_eq(m.msgid, 7);
	e = m.error;
	ck_assert_int_eq(e->type, MSGPACK_OBJECT_ARRAY);
	ck_assert_uint_eq(e->via.array.size, 2);
	ck_assert_int_eq(proto_err_from_name(e->via.array.ptr[0].via.str.ptr,
					     e->via.array.ptr[0].via.str.size),
			 PROTO_E_BUSY);
	ck_assert_uint_eq(e->via.array.ptr[1].via.str.size, 8);
	ck_assert_mem_eq(e->via.array.ptr[1].via.str.ptr, "refs > 0", 8);
	ck_assert_int_eq(m.result->type, MSGPACK_OBJECT_NIL);
	msgpack_unpacked_destroy(&u);
	mb_free(&b);

	/* relayed code string, NULL message packs as "" */
	mb_init(&b);
	ck_assert_int_eq(proto_pack_response_error_str(&b.pk, 8, "custom_code", NULL), 0);
	roundtrip(&b, &u, &m);
	e = m.error;
	ck_assert_uint_eq(e->via.array.ptr[0].via.str.size, 11);
	ck_assert_mem_eq(e->via.array.ptr[0].via.str.ptr, "custom_code", 11);
	ck_assert_uint_eq(e->via.array.ptr[1].via.str.size, 0);
	msgpack_unpacked_destroy(&u);
	mb_free(&b);

	/* PROTO_OK is not an error code: it goes out as "internal" */
	mb_init(&b);
	ck_assert_int_eq(proto_pack_response_error(&b.pk, 9, PROTO_OK, "x"), 0);
	roundtrip(&b, &u, &m);
	e = m.error;
	ck_assert_int_eq(proto_err_from_name(e->via.array.ptr[0].via.str.ptr,
					     e->via.array.ptr[0].via.str.size),
			 PROTO_E_INTERNAL);
	ck_assert_uint_eq(e->via.array.ptr[0].via.str.size, 8);
	msgpack_unpacked_destroy(&u);
	mb_free(&b);
}
END_TEST

START_TEST(test_pack_bad_args)
{
	msgbuf b;

	mb_init(&b);
	ck_assert_int_eq(proto_pack_request(&b.pk, 1, NULL, 3, 0), -EINVAL);
	ck_assert_int_eq(proto_pack_notification(&b.pk, NULL, 1, 0), -EINVAL);
	ck_assert_int_eq(proto_pack_response_error_str(&b.pk, 1, NULL, "m"), -EINVAL);
	ck_assert_int_eq(proto_pack_cstr(&b.pk, NULL), -EINVAL);
	ck_assert_int_eq(proto_pack_response_ok(NULL, 1), -EINVAL);
	ck_assert_uint_eq(b.sb.size, 0); /* nothing half-written */
	mb_free(&b);
}
END_TEST

/* ---- limits ---- */

START_TEST(test_limits_default)
{
	proto_limits l;

	memset(&l, 0xff, sizeof(l));
	proto_limits_default(&l);
	ck_assert_uint_eq(l.max_message_bytes, 1024 * 1024);
	ck_assert_uint_eq(l.max_depth, 32);
	ck_assert_uint_eq(l.max_elements, 65536);
	ck_assert_uint_eq(l.max_str_bytes, l.max_message_bytes);
}
END_TEST

START_TEST(test_limit_message_bytes)
{
	proto_limits l = lim_default();
	proto_scan s;
	msgbuf b;
	char *big = calloc(1, 1024 * 1024);

	ck_assert_ptr_nonnull(big);
	/* exactly 1 MiB with the default limit: str32 payload fills the rest */
	mb_init(&b);
	pack_req(&b, 1);
	size_t hdr = b.sb.size + 5;
	msgpack_pack_str(&b.pk, (uint32_t)(1024 * 1024 - hdr));
	msgpack_pack_str_body(&b.pk, big, 1024 * 1024 - hdr);
	ck_assert_uint_eq(b.sb.size, 1024 * 1024);
	ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_DONE);
	ck_assert_uint_eq(s.msg_len, 1024 * 1024);

	l.max_message_bytes = 1024 * 1024 - 1;
	ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_ERROR);
	ck_assert_int_eq(s.err, PROTO_E_TOO_LARGE);
	ck_assert_ptr_nonnull(s.reason);
	ck_assert(s.have_msgid);
	ck_assert_uint_eq(s.msgid, 1);
	/* rejected on the str header, long before the body arrives */
	ck_assert_int_eq(scan_once(b.sb.data, hdr, &l, &s), PROTO_SCAN_ERROR);
	ck_assert_int_eq(s.err, PROTO_E_TOO_LARGE);
	mb_free(&b);
	free(big);

	/* a message of many small objects: the limit falls mid-stream */
	for (uint32_t n = 1; n < 40; n++) {
		mb_init(&b);
		pack_req(&b, n);
		for (uint32_t i = 0; i < n; i++)
			msgpack_pack_nil(&b.pk);
		l = lim_default();
		l.max_message_bytes = (uint32_t)b.sb.size;
		ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_DONE);
		l.max_message_bytes = (uint32_t)b.sb.size - 1;
		ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_ERROR);
		ck_assert_int_eq(s.err, PROTO_E_TOO_LARGE);
		ck_assert_int_eq(scan_bytewise(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_ERROR);
		ck_assert_int_eq(s.err, PROTO_E_TOO_LARGE);
		mb_free(&b);
	}
}
END_TEST

START_TEST(test_limit_len_beyond_max_incomplete)
{
	/* [0, 1, "a.b", [uint32]]: the uint32 header starts inside the limit
	 * and ends past it. Once the buffer holds more than the limit and the
	 * message is still open, the answer is too_large, not MORE. */
	static const uint8_t msg[] = { 0x94, 0x00, 0x01, 0xa3, 'a', '.', 'b', 0x91,
				       0xce, 0x00, 0x00, 0x00, 0x07 };
	proto_limits l = lim_default();
	proto_scan s;

	l.max_message_bytes = 9;
	ck_assert_int_eq(scan_once(msg, 9, &l, &s), PROTO_SCAN_MORE);
	ck_assert_uint_eq(s.pos, 8);
	ck_assert_int_eq(scan_once(msg, 10, &l, &s), PROTO_SCAN_ERROR);
	ck_assert_int_eq(s.err, PROTO_E_TOO_LARGE);
	ck_assert_int_eq(scan_once(msg, sizeof(msg), &l, &s), PROTO_SCAN_ERROR);
	ck_assert_int_eq(s.err, PROTO_E_TOO_LARGE);
	l.max_message_bytes = sizeof(msg);
	ck_assert_int_eq(scan_once(msg, sizeof(msg), &l, &s), PROTO_SCAN_DONE);
}
END_TEST

/* Request whose params hold `nest` arrays, one inside the other. */
static void pack_nested(msgbuf *b, unsigned nest)
{
	pack_req(b, nest > 0 ? 1 : 0);
	for (unsigned i = 0; i < nest; i++)
		msgpack_pack_array(&b->pk, i + 1 < nest ? 1 : 0);
}

START_TEST(test_limit_depth)
{
	proto_limits l = lim_default();
	proto_scan s;
	msgpack_unpacked u;
	msgbuf b;

	/* depth = 1 (message) + 1 (params) + nest */
	for (unsigned d = 2; d <= 32; d++) {
		l.max_depth = d;
		mb_init(&b);
		pack_nested(&b, d - 2);
		ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_DONE);
		unpack_exact(b.sb.data, b.sb.size, &u);
		msgpack_unpacked_destroy(&u);
		mb_free(&b);

		mb_init(&b);
		pack_nested(&b, d - 1);
		ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_ERROR);
		ck_assert_int_eq(s.err, PROTO_E_BAD_REQUEST);
		ck_assert(s.have_msgid);
		mb_free(&b);
	}

	/* maps count as nesting too */
	static const uint8_t map_deep[] = { 0x94, 0x00, 0x01, 0xa1, 'x', 0x91, 0x81, 0x01, 0x80 };
	l.max_depth = 3;
	ck_assert_int_eq(scan_once(map_deep, sizeof(map_deep), &l, &s), PROTO_SCAN_ERROR);
	ck_assert_int_eq(s.err, PROTO_E_BAD_REQUEST);
	l.max_depth = 4;
	ck_assert_int_eq(scan_once(map_deep, sizeof(map_deep), &l, &s), PROTO_SCAN_DONE);

	/* depth 0 admits nothing; even empty params need depth 2 */
	l.max_depth = 0;
	mb_init(&b);
	pack_nested(&b, 0);
	ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_ERROR);
	l.max_depth = 1;
	ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_ERROR);
	l.max_depth = 2;
	ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_DONE);
	mb_free(&b);
}
END_TEST

START_TEST(test_limit_depth_clamp)
{
	/* max_depth above what msgpack-c can unpack is clamped: depth 32 passes
	 * and unpacks, depth 33 is refused whatever max_depth says */
	proto_limits l = lim_default();
	proto_scan s;
	msgpack_unpacked u;
	msgbuf b;
	size_t off = 0;

	l.max_depth = 1000;
	mb_init(&b);
	pack_nested(&b, 30);
	ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_DONE);
	unpack_exact(b.sb.data, b.sb.size, &u);
	msgpack_unpacked_destroy(&u);
	mb_free(&b);

	mb_init(&b);
	pack_nested(&b, 31);
	ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_ERROR);
	ck_assert_int_eq(s.err, PROTO_E_BAD_REQUEST);
	/* ...and msgpack-c would indeed have failed on it: if this starts
	 * succeeding, msgpack-c's stack grew and the clamp may be relaxed */
	msgpack_unpacked_init(&u);
	ck_assert_int_ne(msgpack_unpack_next(&u, b.sb.data, b.sb.size, &off),
			 MSGPACK_UNPACK_SUCCESS);
	msgpack_unpacked_destroy(&u);
	mb_free(&b);
}
END_TEST

START_TEST(test_deep_nesting_1000)
{
	enum { N = 1000 };
	uint8_t *msg = malloc(7 + N + 1);
	proto_limits l = lim_default();
	proto_scan s;

	ck_assert_ptr_nonnull(msg);
	memcpy(msg, "\x94\x00\x01\xa3" "a.b", 7);
	memset(msg + 7, 0x91, N);
	msg[7 + N] = 0x90;
	for (int pass = 0; pass < 2; pass++) {
		l.max_depth = pass ? UINT32_MAX : 32;
		ck_assert_int_eq(scan_once(msg, 7 + N + 1, &l, &s), PROTO_SCAN_ERROR);
		ck_assert_int_eq(s.err, PROTO_E_BAD_REQUEST);
		ck_assert(s.have_msgid);
		ck_assert_uint_eq(s.msgid, 1);
		ck_assert_int_eq(scan_bytewise(msg, 7 + N + 1, &l, &s), PROTO_SCAN_ERROR);
		ck_assert_int_eq(s.err, PROTO_E_BAD_REQUEST);
		/* stopped at the first container too deep, not at the end */
		ck_assert_uint_le(s.pos, 7 + 64);
	}

	/* 1000 nested arrays as the whole message: refused on the first header */
	memset(msg, 0x91, N);
	ck_assert_int_eq(scan_once(msg, N, &l, &s), PROTO_SCAN_ERROR);
	ck_assert_int_eq(s.err, PROTO_E_BAD_REQUEST);
	free(msg);
}
END_TEST

START_TEST(test_limit_elements)
{
	proto_limits l = lim_default();
	proto_scan s;
	msgbuf b;

	for (uint32_t n = 0; n < 50; n++) {
		/* params of n nils */
		mb_init(&b);
		pack_req(&b, n);
		for (uint32_t i = 0; i < n; i++)
			msgpack_pack_nil(&b.pk);
		l.max_elements = REQ_OBJS + n;
		ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_DONE);
		l.max_elements = REQ_OBJS + n - 1;
		ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_ERROR);
		ck_assert_int_eq(s.err, PROTO_E_BAD_REQUEST);
		/* the params header already declares too many: no bytes needed */
		if (n > 0) {
			ck_assert_int_eq(scan_once(b.sb.data, b.sb.size - n, &l, &s),
					 PROTO_SCAN_ERROR);
			ck_assert_int_eq(s.err, PROTO_E_BAD_REQUEST);
		}
		mb_free(&b);

		/* params [ map of n entries ]: a map entry is two objects */
		mb_init(&b);
		pack_req(&b, 1);
		msgpack_pack_map(&b.pk, n);
		for (uint32_t i = 0; i < n; i++) {
			msgpack_pack_uint32(&b.pk, i);
			msgpack_pack_true(&b.pk);
		}
		l.max_elements = REQ_OBJS + 1 + 2 * n;
		ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_DONE);
		l.max_elements = REQ_OBJS + 2 * n;
		ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_ERROR);
		ck_assert_int_eq(s.err, PROTO_E_BAD_REQUEST);
		mb_free(&b);
	}

	/* degenerate limits refuse even the message array itself */
	mb_init(&b);
	pack_req(&b, 0);
	for (uint32_t max = 0; max < REQ_OBJS; max++) {
		l.max_elements = max;
		ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_ERROR);
		ck_assert_int_eq(s.err, PROTO_E_BAD_REQUEST);
		ck_assert_uint_eq(s.pos, 0);
	}
	mb_free(&b);

	/* the default limit with the largest params it admits */
	l = lim_default();
	mb_init(&b);
	pack_req(&b, 65536 - REQ_OBJS);
	for (uint32_t i = 0; i < 65536 - REQ_OBJS; i++)
		msgpack_pack_uint8(&b.pk, 1);
	ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_DONE);
	mb_free(&b);
	mb_init(&b);
	pack_req(&b, 65536 - REQ_OBJS + 1);
	ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_ERROR);
	ck_assert_int_eq(s.err, PROTO_E_BAD_REQUEST);
	mb_free(&b);
}
END_TEST

enum blob_kind { BLOB_STR, BLOB_BIN, BLOB_EXT };

static void pack_blob(msgbuf *b, enum blob_kind k, const char *p, uint32_t n)
{
	switch (k) {
	case BLOB_STR:
		msgpack_pack_str(&b->pk, n);
		msgpack_pack_str_body(&b->pk, p, n);
		break;
	case BLOB_BIN:
		msgpack_pack_bin(&b->pk, n);
		msgpack_pack_bin_body(&b->pk, p, n);
		break;
	case BLOB_EXT:
		msgpack_pack_ext(&b->pk, n, 5);
		msgpack_pack_ext_body(&b->pk, p, n);
		break;
	}
}

START_TEST(test_limit_str_bytes)
{
	/* sizes that cross every encoding: fix, 8, 16 and 32-bit lengths,
	 * and for ext the fixext 1/2/4/8/16 forms */
	static const uint32_t sizes[] = { 0, 1, 2, 3, 4, 8, 15, 16, 17, 31, 32, 255, 256,
					  65535, 65536, 70000 };
	char *body = malloc(70000);
	msgpack_unpacked u;
	proto_scan s;
	msgbuf b;

	ck_assert_ptr_nonnull(body);
	memset(body, 'z', 70000);
	for (int k = BLOB_STR; k <= BLOB_EXT; k++) {
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			uint32_t n = sizes[i];
			proto_limits l = lim_default();

			mb_init(&b);
			ck_assert_int_eq(proto_pack_request(&b.pk, 1, "", 0, 1), 0);
			pack_blob(&b, (enum blob_kind)k, body, n);
			l.max_str_bytes = n;
			ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_DONE);
			ck_assert_uint_eq(s.msg_len, b.sb.size);
			unpack_exact(b.sb.data, b.sb.size, &u);
			msgpack_unpacked_destroy(&u);
			if (n > 0) {
				l.max_str_bytes = n - 1;
				ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s),
						 PROTO_SCAN_ERROR);
				ck_assert_int_eq(s.err, PROTO_E_TOO_LARGE);
				/* decided on the header, without the payload */
				ck_assert_int_eq(scan_once(b.sb.data, b.sb.size - n, &l, &s),
						 PROTO_SCAN_ERROR);
				ck_assert_int_eq(s.err, PROTO_E_TOO_LARGE);
			}
			mb_free(&b);
		}
	}
	free(body);

	/* the method name is a str and obeys the limit as well */
	proto_limits l = lim_default();
	mb_init(&b);
	pack_req(&b, 0);
	l.max_str_bytes = 2;
	ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_ERROR);
	ck_assert_int_eq(s.err, PROTO_E_TOO_LARGE);
	l.max_str_bytes = 3;
	ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_DONE);
	mb_free(&b);
}
END_TEST

START_TEST(test_oversized_declared_counts)
{
	/* [0, 1, "a.b", <header>] and nothing after the header */
	static const struct {
		uint8_t hdr[5];
		proto_err err;
	} cases[] = {
		{ { 0xdd, 0xff, 0xff, 0xff, 0xff }, PROTO_E_BAD_REQUEST }, /* array32 */
		{ { 0xdf, 0xff, 0xff, 0xff, 0xff }, PROTO_E_BAD_REQUEST }, /* map32 */
		{ { 0xdf, 0x80, 0x00, 0x00, 0x00 }, PROTO_E_BAD_REQUEST }, /* 2*n overflows u32 */
		{ { 0xdb, 0xff, 0xff, 0xff, 0xff }, PROTO_E_TOO_LARGE }, /* str32 */
		{ { 0xc6, 0xff, 0xff, 0xff, 0xff }, PROTO_E_TOO_LARGE }, /* bin32 */
	};
	uint8_t msg[32];
	proto_limits l = lim_default();
	proto_scan s;

	memcpy(msg, "\x94\x00\x01\xa3" "a.b", 7);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(msg + 7, cases[i].hdr, 5);
		ck_assert_int_eq(scan_once(msg, 12, &l, &s), PROTO_SCAN_ERROR);
		ck_assert_int_eq(s.err, cases[i].err);
		ck_assert(s.have_msgid);
		/* one byte short of the header: still waiting, nothing consumed */
		ck_assert_int_eq(scan_once(msg, 11, &l, &s), PROTO_SCAN_MORE);
		ck_assert_uint_eq(s.pos, 7);
	}

	/* ext32 of 4 GiB (length, then type byte) */
	memcpy(msg + 7, "\xc9\xff\xff\xff\xff\x01", 6);
	ck_assert_int_eq(scan_once(msg, 13, &l, &s), PROTO_SCAN_ERROR);
	ck_assert_int_eq(s.err, PROTO_E_TOO_LARGE);

	/* with no element limit to speak of, the byte limit catches it:
	 * 4 billion elements need at least 4 billion bytes */
	l.max_elements = UINT32_MAX;
	memcpy(msg + 7, "\xdd\x10\x00\x00\x00", 5);
	ck_assert_int_eq(scan_once(msg, 12, &l, &s), PROTO_SCAN_ERROR);
	ck_assert_int_eq(s.err, PROTO_E_TOO_LARGE);

	/* a top-level array32 claiming 4 elements is fine; claiming 2^32-1 is not */
	l = lim_default();
	static const uint8_t top[] = { 0xdd, 0, 0, 0, 4, 0, 1, 0xa3, 'a', '.', 'b', 0x90 };
	ck_assert_int_eq(scan_once(top, sizeof(top), &l, &s), PROTO_SCAN_DONE);
	static const uint8_t top_big[] = { 0xdd, 0xff, 0xff, 0xff, 0xff };
	ck_assert_int_eq(scan_once(top_big, sizeof(top_big), &l, &s), PROTO_SCAN_ERROR);
	ck_assert_int_eq(s.err, PROTO_E_BAD_REQUEST);
}
END_TEST

/* ---- shapes ---- */

typedef struct shape_case {
	const char *name;
	uint8_t bytes[24];
	size_t len;
	proto_scan_status scan; /* expected from the scanner */
	bool scan_msgid; /* scanner reports have_msgid */
	bool parse_ok; /* proto_msg_parse accepts it (when it unpacks) */
	bool parse_msgid; /* on parse failure, type = REQUEST and msgid = 1 */
} shape_case;

#define B(...) { __VA_ARGS__ }, sizeof((uint8_t[]){ __VA_ARGS__ })

static const shape_case shapes[] = {
	{ "map at top", B(0x84, 0, 0, 1, 1, 2, 0xa1, 'x', 3, 0x90), PROTO_SCAN_ERROR, false, false, false },
	{ "str at top", B(0xa3, 'a', '.', 'b'), PROTO_SCAN_ERROR, false, false, false },
	{ "int at top", B(0x05), PROTO_SCAN_ERROR, false, false, false },
	{ "array of 2", B(0x92, 0x00, 0x01), PROTO_SCAN_ERROR, false, false, false },
	{ "array of 5", B(0x95, 0x00, 0x01, 0xa1, 'x', 0x90, 0xc0), PROTO_SCAN_ERROR, false, false, false },
	{ "empty array", B(0x90), PROTO_SCAN_ERROR, false, false, false },
	{ "type 3", B(0x94, 0x03, 0x01, 0xa1, 'x', 0x90), PROTO_SCAN_ERROR, false, false, false },
	{ "type -1", B(0x94, 0xff, 0x01, 0xa1, 'x', 0x90), PROTO_SCAN_ERROR, false, false, false },
	{ "type str", B(0x94, 0xa1, '0', 0x01, 0xa1, 'x', 0x90), PROTO_SCAN_ERROR, false, false, false },
	{ "request of 3", B(0x93, 0x00, 0x01, 0xa1, 'x'), PROTO_SCAN_ERROR, false, false, false },
	{ "notification of 4", B(0x94, 0x02, 0xa1, 'x', 0x90, 0xc0), PROTO_SCAN_ERROR, false, false, false },
	{ "msgid negative", B(0x94, 0x00, 0xff, 0xa1, 'x', 0x90), PROTO_SCAN_ERROR, false, false, false },
	{ "msgid int8 -1", B(0x94, 0x00, 0xd0, 0xff, 0xa1, 'x', 0x90), PROTO_SCAN_ERROR, false, false, false },
	{ "msgid 2^32", B(0x94, 0x00, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0, 0xa1, 'x', 0x90), PROTO_SCAN_ERROR, false, false, false },
	{ "msgid str", B(0x94, 0x00, 0xa1, '1', 0xa1, 'x', 0x90), PROTO_SCAN_ERROR, false, false, false },
	{ "msgid float", B(0x94, 0x00, 0xca, 0x3f, 0x80, 0, 0, 0xa1, 'x', 0x90), PROTO_SCAN_ERROR, false, false, false },
	{ "response msgid nil", B(0x94, 0x01, 0xc0, 0xc0, 0xc0), PROTO_SCAN_ERROR, false, false, false },
	/* well-formed at the byte level: the scanner passes, the parser refuses,
	 * and a request's msgid survives for the error reply */
	{ "method int", B(0x94, 0x00, 0x01, 0x05, 0x90), PROTO_SCAN_DONE, true, false, true },
	{ "method nil", B(0x94, 0x00, 0x01, 0xc0, 0x90), PROTO_SCAN_DONE, true, false, true },
	{ "params map", B(0x94, 0x00, 0x01, 0xa1, 'x', 0x80), PROTO_SCAN_DONE, true, false, true },
	{ "params str", B(0x94, 0x00, 0x01, 0xa1, 'x', 0xa0), PROTO_SCAN_DONE, true, false, true },
	{ "params nil", B(0x94, 0x00, 0x01, 0xa1, 'x', 0xc0), PROTO_SCAN_DONE, true, false, true },
	{ "notification method int", B(0x93, 0x02, 0x05, 0x90), PROTO_SCAN_DONE, false, false, false },
	{ "notification params map", B(0x93, 0x02, 0xa1, 'x', 0x80), PROTO_SCAN_DONE, false, false, false },
	{ "response error str", B(0x94, 0x01, 0x01, 0xa1, 'e', 0xc0), PROTO_SCAN_DONE, false, false, false },
	{ "response error [1 str]", B(0x94, 0x01, 0x01, 0x91, 0xa1, 'e', 0xc0), PROTO_SCAN_DONE, false, false, false },
	{ "response error [int, str]", B(0x94, 0x01, 0x01, 0x92, 0x01, 0xa1, 'e', 0xc0), PROTO_SCAN_DONE, false, false, false },
	{ "response error [str, nil]", B(0x94, 0x01, 0x01, 0x92, 0xa1, 'e', 0xc0, 0xc0), PROTO_SCAN_DONE, false, false, false },
	{ "response ok with map result", B(0x94, 0x01, 0x01, 0xc0, 0x81, 0x01, 0x02), PROTO_SCAN_DONE, false, true, false },
	{ "request empty method", B(0x94, 0x00, 0x01, 0xa0, 0x90), PROTO_SCAN_DONE, true, true, false },
	{ "notification bin method", B(0x93, 0x02, 0xc4, 0x01, 'x', 0x90), PROTO_SCAN_DONE, false, true, false },
};

START_TEST(test_shapes)
{
	const shape_case *c = &shapes[_i];
	proto_limits l = lim_default();
	msgpack_unpacked u;
	proto_scan s;
	proto_msg m;
	size_t off = 0;
	const char *reason = NULL;
	proto_err e;

	ck_assert_msg(scan_once(c->bytes, c->len, &l, &s) == c->scan, "%s: scan status", c->name);
	if (c->scan == PROTO_SCAN_ERROR) {
		ck_assert_msg(s.err == PROTO_E_BAD_REQUEST, "%s: err", c->name);
		ck_assert_ptr_nonnull(s.reason);
	} else {
		ck_assert_uint_eq(s.msg_len, c->len);
	}
	ck_assert_msg(s.have_msgid == c->scan_msgid, "%s: have_msgid", c->name);
	if (s.have_msgid)
		ck_assert_uint_eq(s.msgid, 1);

	/* the parser alone, on whatever msgpack-c makes of the bytes */
	msgpack_unpacked_init(&u);
	if (msgpack_unpack_next(&u, (const char *)c->bytes, c->len, &off) ==
	    MSGPACK_UNPACK_SUCCESS) {
		e = proto_msg_parse(&u.data, &m, &reason);
		if (c->parse_ok) {
			ck_assert_msg(e == PROTO_OK, "%s: parse: %s", c->name, reason);
		} else {
			ck_assert_msg(e == PROTO_E_BAD_REQUEST, "%s: parse accepted", c->name);
			ck_assert_ptr_nonnull(reason);
			if (c->parse_msgid) {
				ck_assert_int_eq(m.type, PROTO_REQUEST);
				ck_assert_uint_eq(m.msgid, 1);
			} else {
				ck_assert_int_ne(m.type, PROTO_REQUEST);
			}
		}
	} else {
		ck_assert_msg(c->scan == PROTO_SCAN_ERROR, "%s: unpack failed", c->name);
	}
	msgpack_unpacked_destroy(&u);
}
END_TEST

START_TEST(test_parse_not_array)
{
	msgpack_object o;
	proto_msg m;
	const char *reason = NULL;

	memset(&o, 0, sizeof(o));
	o.type = MSGPACK_OBJECT_NIL;
	ck_assert_int_eq(proto_msg_parse(&o, &m, &reason), PROTO_E_BAD_REQUEST);
	ck_assert_ptr_nonnull(reason);
	ck_assert_int_eq(proto_msg_parse(NULL, &m, NULL), PROTO_E_BAD_REQUEST);
	ck_assert_int_eq(m.type, -1);
}
END_TEST

/* ---- invalid bytes and fuzz ---- */

START_TEST(test_invalid_c1)
{
	proto_limits l = lim_default();
	proto_scan s;
	static const uint8_t top[] = { 0xc1 };
	static const uint8_t inner[] = { 0x94, 0x00, 0x2a, 0xa1, 'x', 0x91, 0xc1 };
	static const uint8_t in_str[] = { 0x94, 0x00, 0x2a, 0xa1, 0xc1, 0x90 };

	ck_assert_int_eq(scan_once(top, 1, &l, &s), PROTO_SCAN_ERROR);
	ck_assert_int_eq(s.err, PROTO_E_BAD_REQUEST);
	ck_assert(!s.have_msgid);

	ck_assert_int_eq(scan_once(inner, sizeof(inner), &l, &s), PROTO_SCAN_ERROR);
	ck_assert_int_eq(s.err, PROTO_E_BAD_REQUEST);
	ck_assert(s.have_msgid);
	ck_assert_uint_eq(s.msgid, 42);
	/* an error is sticky until reset */
	ck_assert_int_eq(proto_scan_feed(&s, &l, inner, sizeof(inner)), PROTO_SCAN_ERROR);

	/* 0xc1 inside a string body is just data */
	ck_assert_int_eq(scan_once(in_str, sizeof(in_str), &l, &s), PROTO_SCAN_DONE);
}
END_TEST

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* xorshift64*: deterministic, so a failure reproduces */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/* Random msgpack-ish bytes: biased towards headers so the walk goes deep. */
static size_t fuzz_input(uint8_t *buf, size_t cap)
{
	static const uint8_t interesting[] = {
		0x90, 0x91, 0x93, 0x94, 0x80, 0x81, 0xa0, 0xa3, 0xc0, 0xc1, 0xc2, 0xc4, 0xc5,
		0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2,
		0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf,
		0xff, 0x00, 0x01, 0x02, 0x7f,
	};
	size_t len = rng() % cap, i = 0;
	uint64_t mode = rng() % 4;

	if (mode >= 1 && len >= 3) {
		/* a plausible prefix gets past the shape checks */
		buf[i++] = mode == 3 ? 0x93 : 0x94;
		buf[i++] = mode == 3 ? 0x02 : (uint8_t)(rng() % 2);
		if (mode != 3)
			buf[i++] = (uint8_t)(rng() % 128);
	}
	for (; i < len; i++) {
		uint64_t r = rng();
		if (r % 3 == 0)
			buf[i] = interesting[(r >> 8) % sizeof(interesting)];
		else if (r % 3 == 1)
			buf[i] = (uint8_t)((r >> 8) % 4); /* small lengths */
		else
			buf[i] = (uint8_t)(r >> 8);
	}
	return len;
}

START_TEST(test_fuzz)
{
	enum { ITER = 20000, CAP = 96 };
	uint8_t in[CAP];
	unsigned done = 0, more = 0, err = 0;

	rng_state = 0x9e3779b97f4a7c15ull;
	for (unsigned it = 0; it < ITER; it++) {
		size_t len = fuzz_input(in, CAP);
		proto_limits l = lim_default();
		proto_scan s, sb;
		proto_scan_status st, stb;

		if (it % 2) {
			l.max_message_bytes = 1 + (uint32_t)(rng() % 100);
			l.max_depth = (uint32_t)(rng() % 10);
			l.max_elements = (uint32_t)(rng() % 50);
			l.max_str_bytes = (uint32_t)(rng() % 50);
		}
		st = scan_once(in, len, &l, &s);
		if (st == PROTO_SCAN_DONE) {
			msgpack_unpacked u;
			proto_msg m;

			done++;
			ck_assert_uint_gt(s.msg_len, 0);
			ck_assert_uint_le(s.msg_len, len);
			ck_assert_uint_le(s.msg_len, l.max_message_bytes);
			/* msgpack-c agrees the message ends exactly there */
			unpack_exact(in, s.msg_len, &u);
			(void)proto_msg_parse(&u.data, &m, NULL);
			msgpack_unpacked_destroy(&u);
		} else if (st == PROTO_SCAN_ERROR) {
			err++;
			ck_assert(s.err == PROTO_E_BAD_REQUEST || s.err == PROTO_E_TOO_LARGE);
			ck_assert_ptr_nonnull(s.reason);
		} else {
			ck_assert_int_eq(st, PROTO_SCAN_MORE);
			more++;
			ck_assert_uint_le(len, l.max_message_bytes);
			ck_assert_uint_le(s.pos, len);
			/* a valid prefix: msgpack-c wants more too (bounded by limits) */
			if (len > 0) {
				msgpack_unpacked u;
				size_t off = 0;
				msgpack_unpacked_init(&u);
				ck_assert_int_eq(msgpack_unpack_next(&u, (const char *)in, len, &off),
						 MSGPACK_UNPACK_CONTINUE);
				msgpack_unpacked_destroy(&u);
			}
		}

		/* one byte at a time reaches the same verdict */
		stb = scan_bytewise(in, len, &l, &sb);
		ck_assert_int_eq(stb, st);
		if (st == PROTO_SCAN_DONE)
			ck_assert_uint_eq(sb.msg_len, s.msg_len);
		/* Fed bytewise, a message that is too large can be cut short
		 * before a header that the whole buffer shows in full. */
		if (st == PROTO_SCAN_ERROR && sb.err != s.err) {
			ck_assert_int_eq(sb.err, PROTO_E_TOO_LARGE);
			continue;
		}
		if (st == PROTO_SCAN_ERROR && s.err == PROTO_E_TOO_LARGE)
			continue;
		ck_assert_int_eq(sb.have_msgid, s.have_msgid);
		if (s.have_msgid)
			ck_assert_uint_eq(sb.msgid, s.msgid);
	}
	/* the generator must actually exercise all three outcomes */
	ck_assert_uint_gt(done, ITER / 100);
	ck_assert_uint_gt(more, ITER / 100);
	ck_assert_uint_gt(err, ITER / 100);
}
END_TEST

/* ---- truncation, resumption, framing ---- */

/* A handful of valid messages touching every encoding. */
static void pack_sample(msgbuf *b, unsigned which)
{
	static const char bytes[300] = { 0 };

	switch (which) {
	case 0:
		proto_pack_request(&b->pk, 123456, "lmms.ping", 9, 0);
		break;
	case 1:
		proto_pack_request(&b->pk, 70000, "kv.set", 6, 14);
		msgpack_pack_nil(&b->pk);
		msgpack_pack_true(&b->pk);
		msgpack_pack_false(&b->pk);
		msgpack_pack_float(&b->pk, 1.5f);
		msgpack_pack_double(&b->pk, -2.25);
		msgpack_pack_uint64(&b->pk, UINT64_MAX);
		msgpack_pack_int64(&b->pk, INT64_MIN);
		msgpack_pack_int16(&b->pk, -300);
		msgpack_pack_str(&b->pk, 300);
		msgpack_pack_str_body(&b->pk, bytes, 300);
		msgpack_pack_bin(&b->pk, 70);
		msgpack_pack_bin_body(&b->pk, bytes, 70);
		msgpack_pack_ext(&b->pk, 16, 1);
		msgpack_pack_ext_body(&b->pk, bytes, 16);
		msgpack_pack_ext(&b->pk, 17, -1);
		msgpack_pack_ext_body(&b->pk, bytes, 17);
		msgpack_pack_array(&b->pk, 20);
		for (int i = 0; i < 20; i++)
			msgpack_pack_int(&b->pk, i - 10);
		msgpack_pack_map(&b->pk, 2);
		proto_pack_cstr(&b->pk, "k");
		msgpack_pack_array(&b->pk, 0);
		msgpack_pack_map(&b->pk, 0);
		msgpack_pack_array(&b->pk, 1);
		msgpack_pack_nil(&b->pk);
		break;
	case 2:
		proto_pack_notification(&b->pk, "redraw", 6, 1);
		msgpack_pack_map(&b->pk, 20);
		for (int i = 0; i < 20; i++) {
			msgpack_pack_int(&b->pk, i);
			msgpack_pack_str(&b->pk, 40);
			msgpack_pack_str_body(&b->pk, bytes, 40);
		}
		break;
	case 3:
		proto_pack_response_ok(&b->pk, 5);
		msgpack_pack_array(&b->pk, 2);
		msgpack_pack_map(&b->pk, 1);
		proto_pack_cstr(&b->pk, "name");
		proto_pack_cstr(&b->pk, "hash");
		msgpack_pack_map(&b->pk, 0);
		break;
	default:
		proto_pack_response_error(&b->pk, 6, PROTO_E_NO_SUCH_METHOD, "no such method");
		break;
	}
}

#define N_SAMPLES 5

START_TEST(test_truncated_every_prefix)
{
	proto_limits l = lim_default();
	proto_scan s;
	msgbuf b;

	mb_init(&b);
	pack_sample(&b, _i);
	for (size_t k = 0; k < b.sb.size; k++) {
		ck_assert_int_eq(scan_once(b.sb.data, k, &l, &s), PROTO_SCAN_MORE);
		ck_assert_uint_le(s.pos, k);
	}
	ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_DONE);
	ck_assert_uint_eq(s.msg_len, b.sb.size);
	mb_free(&b);
}
END_TEST

START_TEST(test_bytewise_equals_whole)
{
	proto_limits l = lim_default();
	proto_scan s1, s2;
	msgbuf b;

	mb_init(&b);
	pack_sample(&b, _i);
	ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s1), PROTO_SCAN_DONE);
	ck_assert_int_eq(scan_bytewise(b.sb.data, b.sb.size, &l, &s2), PROTO_SCAN_DONE);
	ck_assert_uint_eq(s1.msg_len, s2.msg_len);
	ck_assert_int_eq(s1.have_msgid, s2.have_msgid);
	ck_assert_uint_eq(s1.msgid, s2.msgid);
	ck_assert_uint_eq(s1.elements, s2.elements);
	/* DONE is sticky until reset */
	ck_assert_int_eq(proto_scan_feed(&s2, &l, b.sb.data, b.sb.size), PROTO_SCAN_DONE);
	ck_assert_uint_eq(s2.msg_len, b.sb.size);

	/* chunks of every size land on the same answer */
	for (size_t chunk = 2; chunk < 40; chunk++) {
		proto_scan_status st = PROTO_SCAN_MORE;
		size_t have = 0;

		proto_scan_reset(&s2);
		while (st == PROTO_SCAN_MORE) {
			have = have + chunk < b.sb.size ? have + chunk : b.sb.size;
			st = proto_scan_feed(&s2, &l, b.sb.data, have);
		}
		ck_assert_int_eq(st, PROTO_SCAN_DONE);
		ck_assert_uint_eq(s2.msg_len, b.sb.size);
	}
	mb_free(&b);
}
END_TEST

START_TEST(test_back_to_back)
{
	proto_limits l = lim_default();
	proto_scan s;
	msgbuf b;

	for (unsigned i = 0; i < N_SAMPLES; i++) {
		for (unsigned j = 0; j < N_SAMPLES; j++) {
			size_t first, off = 0;

			mb_init(&b);
			pack_sample(&b, i);
			first = b.sb.size;
			pack_sample(&b, j);
			ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_DONE);
			ck_assert_uint_eq(s.msg_len, first);
			/* also when the second arrives one byte at a time */
			ck_assert_int_eq(scan_bytewise(b.sb.data, b.sb.size, &l, &s),
					 PROTO_SCAN_DONE);
			ck_assert_uint_eq(s.msg_len, first);
			off = s.msg_len;
			ck_assert_int_eq(scan_once(b.sb.data + off, b.sb.size - off, &l, &s),
					 PROTO_SCAN_DONE);
			ck_assert_uint_eq(off + s.msg_len, b.sb.size);
			mb_free(&b);
		}
	}

	/* the whole first message plus part of the next: DONE, not too_large,
	 * even when the buffer is over the limit */
	mb_init(&b);
	pack_sample(&b, 0);
	size_t first = b.sb.size;
	pack_sample(&b, 1);
	l.max_message_bytes = (uint32_t)first;
	ck_assert_int_eq(scan_once(b.sb.data, b.sb.size, &l, &s), PROTO_SCAN_DONE);
	ck_assert_uint_eq(s.msg_len, first);
	mb_free(&b);
}
END_TEST

START_TEST(test_trickle_linear)
{
	/* Fed one byte at a time, the scanner must keep pos at the last
	 * complete object: no object it accepted is ever walked again. With
	 * 60000 one-byte elements, re-walking would also be quadratic. */
	enum { N = 60000 };
	proto_limits l = lim_default();
	proto_scan s;
	proto_scan_status st = PROTO_SCAN_MORE;
	msgbuf b;
	size_t i;

	mb_init(&b);
	pack_req(&b, N);
	for (i = 0; i < N; i++)
		msgpack_pack_fix_uint8(&b.pk, 7); /* 2 bytes each: header + value */
	proto_scan_reset(&s);
	for (i = 1; i <= b.sb.size && st == PROTO_SCAN_MORE; i++) {
		st = proto_scan_feed(&s, &l, b.sb.data, i);
		if (st == PROTO_SCAN_MORE)
			ck_assert_uint_le(i - s.pos, 8);
	}
	ck_assert_int_eq(st, PROTO_SCAN_DONE);
	ck_assert_uint_eq(i - 1, b.sb.size);
	ck_assert_uint_eq(s.msg_len, b.sb.size);
	ck_assert_uint_eq(s.elements, REQ_OBJS + N);
	mb_free(&b);

	/* a long string: pos stays on its header, the body is only measured */
	enum { L = 512 * 1024 };
	char *body = calloc(1, L);
	ck_assert_ptr_nonnull(body);
	mb_init(&b);
	pack_req(&b, 1);
	size_t hdr_at = b.sb.size;
	msgpack_pack_str(&b.pk, L);
	msgpack_pack_str_body(&b.pk, body, L);
	proto_scan_reset(&s);
	st = PROTO_SCAN_MORE;
	for (i = 1; i <= b.sb.size && st == PROTO_SCAN_MORE; i++) {
		st = proto_scan_feed(&s, &l, b.sb.data, i);
		if (st == PROTO_SCAN_MORE && i > hdr_at)
			ck_assert_uint_eq(s.pos, hdr_at);
	}
	ck_assert_int_eq(st, PROTO_SCAN_DONE);
	ck_assert_uint_eq(s.msg_len, b.sb.size);
	mb_free(&b);
	free(body);
}
END_TEST

/* ---- method split ---- */

static int split(const char *m, size_t n, const char **mod, size_t *mod_len, const char **op,
		 size_t *op_len)
{
	return proto_method_split(m, n, mod, mod_len, op, op_len);
}

START_TEST(test_method_split)
{
	const char *mod, *op;
	size_t ml, ol;
	char name[300];

	ck_assert_int_eq(split("hash.sha256", 11, &mod, &ml, &op, &ol), 0);
	ck_assert_uint_eq(ml, 4);
	ck_assert_mem_eq(mod, "hash", 4);
	ck_assert_uint_eq(ol, 6);
	ck_assert_mem_eq(op, "sha256", 6);

	/* splits at the first dot: the op may contain more */
	ck_assert_int_eq(split("a.b.c", 5, &mod, &ml, &op, &ol), 0);
	ck_assert_uint_eq(ml, 1);
	ck_assert_uint_eq(ol, 3);
	ck_assert_mem_eq(op, "b.c", 3);

	/* len bounds the name: what follows is not looked at */
	ck_assert_int_eq(split("lmms.pingXYZ", 9, &mod, &ml, &op, &ol), 0);
	ck_assert_uint_eq(ol, 4);
	ck_assert_mem_eq(op, "ping", 4);

	/* NULL outputs are allowed */
	ck_assert_int_eq(split("x.y", 3, NULL, NULL, NULL, NULL), 0);

	ck_assert_int_eq(split("", 0, &mod, &ml, &op, &ol), -EINVAL);
	ck_assert_int_eq(split(NULL, 3, &mod, &ml, &op, &ol), -EINVAL);
	ck_assert_int_eq(split("hash", 4, &mod, &ml, &op, &ol), -EINVAL);
	ck_assert_int_eq(split(".", 1, &mod, &ml, &op, &ol), -EINVAL);
	ck_assert_int_eq(split(".op", 3, &mod, &ml, &op, &ol), -EINVAL);
	ck_assert_int_eq(split("mod.", 4, &mod, &ml, &op, &ol), -EINVAL);
	ck_assert_int_eq(split("a..b", 4, &mod, &ml, &op, &ol), -EINVAL);
	ck_assert_int_eq(split("a.b..c", 6, &mod, &ml, &op, &ol), -EINVAL);
	ck_assert_int_eq(split("../x.y", 6, &mod, &ml, &op, &ol), -EINVAL);
	ck_assert_int_eq(split("a/b.c", 5, &mod, &ml, &op, &ol), -EINVAL);
	ck_assert_int_eq(split("a.b/c", 5, &mod, &ml, &op, &ol), -EINVAL);
	ck_assert_int_eq(split("/etc.x", 6, &mod, &ml, &op, &ol), -EINVAL);
	ck_assert_int_eq(split("a\0b.c", 5, &mod, &ml, &op, &ol), -EINVAL);
	ck_assert_int_eq(split("a.b\0", 4, &mod, &ml, &op, &ol), -EINVAL);

	/* 255 bytes is the longest name */
	memset(name, 'm', sizeof(name));
	name[100] = '.';
	ck_assert_int_eq(split(name, 255, &mod, &ml, &op, &ol), 0);
	ck_assert_uint_eq(ml, 100);
	ck_assert_uint_eq(ol, 154);
	ck_assert_int_eq(split(name, 256, &mod, &ml, &op, &ol), -EINVAL);
	ck_assert_int_eq(split(name, 300, &mod, &ml, &op, &ol), -EINVAL);
}
END_TEST

/* proto_check_value: one value, any shape, the same grammar and depth rule. */
START_TEST(test_check_value)
{
	static const uint8_t scalar[] = { 0x2a };
	static const uint8_t str[] = { 0xa3, 'a', 'b', 'c' };
	static const uint8_t map[] = { 0x81, 0xa1, 'k', 0x92, 0x01, 0xc0 };
	static const uint8_t trailing[] = { 0x01, 0x02 };
	static const uint8_t truncated[] = { 0xa3, 'a', 'b' };
	static const uint8_t bad[] = { 0xc1 };
	static const uint8_t huge[] = { 0xdd, 0xff, 0xff, 0xff, 0xff };
	uint8_t nest[40];

	ck_assert_int_eq(proto_check_value(scalar, sizeof(scalar), 0), 0);
	ck_assert_int_eq(proto_check_value(str, sizeof(str), 0), 0);
	ck_assert_int_eq(proto_check_value(map, sizeof(map), 2), 0);
	ck_assert_int_eq(proto_check_value(map, sizeof(map), 1), -ELOOP);
	ck_assert_int_eq(proto_check_value(trailing, sizeof(trailing), 4), -EINVAL);
	ck_assert_int_eq(proto_check_value(truncated, sizeof(truncated), 4), -EINVAL);
	ck_assert_int_eq(proto_check_value(bad, sizeof(bad), 4), -EINVAL);
	ck_assert_int_eq(proto_check_value(huge, sizeof(huge), 4), -EINVAL);
	ck_assert_int_eq(proto_check_value(str, 0, 4), -EINVAL);

	/* n nested one-element arrays around nil: n levels */
	for (size_t n = 1; n < sizeof(nest); n++) {
		memset(nest, 0x91, n);
		nest[n] = 0xc0;
		ck_assert_int_eq(proto_check_value(nest, n + 1, (uint32_t)n), n <= 32 ? 0 : -ELOOP);
		ck_assert_int_eq(proto_check_value(nest, n + 1, (uint32_t)n - 1), -ELOOP);
	}
}
END_TEST

/* ---- proto_request_peek ---- */

static size_t pack_msg(char *buf, size_t cap, int type, uint32_t msgid, int msgid_width,
		       const char *method, int str_form, uint32_t nparams)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t n;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, type == 2 ? 3 : 4);
	msgpack_pack_int(&pk, type);
	if (type != 2) {
		if (msgid_width == 1)
			msgpack_pack_uint8(&pk, (uint8_t)msgid);
		else if (msgid_width == 2)
			msgpack_pack_uint16(&pk, (uint16_t)msgid);
		else
			msgpack_pack_uint32(&pk, msgid);
	}
	if (str_form == 0)
		msgpack_pack_str_with_body(&pk, method, strlen(method));
	else
		msgpack_pack_bin_with_body(&pk, method, strlen(method));
	msgpack_pack_array(&pk, nparams);
	for (uint32_t i = 0; i < nparams; i++)
		msgpack_pack_int(&pk, (int)i);
	n = sb.size;
	ck_assert_uint_le(n, cap);
	memcpy(buf, sb.data, n);
	msgpack_sbuffer_destroy(&sb);
	return n;
}

START_TEST(test_request_peek)
{
	static const uint32_t ids[] = { 0, 5, 127, 200, 65535, 70000 };
	static const int widths[] = { 1, 1, 1, 1, 2, 4 };
	char buf[4096], longname[300];
	proto_request r;
	size_t n;

	/* every msgid width, pointers into the message, params to the end */
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		n = pack_msg(buf, sizeof(buf), 0, ids[i], widths[i], "echo.ping", 0, 2);
		ck_assert(proto_request_peek(buf, n, &r));
		ck_assert_uint_eq(r.msgid, ids[i]);
		ck_assert(!r.notify);
		ck_assert_uint_eq(r.method_len, 9);
		ck_assert_int_eq(memcmp(r.method, "echo.ping", 9), 0);
		ck_assert_ptr_eq(r.params + r.params_len, buf + n);
		ck_assert_int_eq((unsigned char)r.params[0], 0x92);
	}
	/* a notification */
	n = pack_msg(buf, sizeof(buf), 2, 0, 0, "a.b", 0, 0);
	ck_assert(proto_request_peek(buf, n, &r));
	ck_assert(r.notify);
	ck_assert_uint_eq(r.params_len, 1);
	/* str8 and str16 method names */
	memset(longname, 'm', sizeof(longname));
	longname[40] = '\0';
	n = pack_msg(buf, sizeof(buf), 0, 1, 1, longname, 0, 0);
	ck_assert(proto_request_peek(buf, n, &r));
	ck_assert_uint_eq(r.method_len, 40);
	longname[40] = 'm';
	longname[299] = '\0';
	n = pack_msg(buf, sizeof(buf), 0, 1, 1, longname, 0, 0);
	ck_assert(proto_request_peek(buf, n, &r));
	ck_assert_uint_eq(r.method_len, 299);
	/* not the common form: left to the general path */
	/* a uint64 msgid */
	memcpy(buf, "\x94\x00\xcf\x00\x00\x00\x01\x00\x00\x00\x00\xa3" "a.b\x90", 16);
	ck_assert(!proto_request_peek(buf, 16, &r));
	n = pack_msg(buf, sizeof(buf), 0, 1, 1, "a.b", 1, 0); /* bin method */
	ck_assert(!proto_request_peek(buf, n, &r));
	n = pack_msg(buf, sizeof(buf), 1, 1, 1, "a.b", 0, 0); /* a response */
	ck_assert(!proto_request_peek(buf, n, &r));
	ck_assert(!proto_request_peek("\x94\x00\x01", 3, &r)); /* too short */
	/* params that are not an array */
	memcpy(buf, "\x94\x00\x01\xa3" "a.b\x80", 8);
	ck_assert(!proto_request_peek(buf, 8, &r));
	/* a method running past the end */
	memcpy(buf, "\x94\x00\x01\xa9" "a.b\x90", 8);
	ck_assert(!proto_request_peek(buf, 8, &r));
	/* every truncation of a valid request is refused or stays inside it */
	n = pack_msg(buf, sizeof(buf), 0, 300, 2, "hash.sha256", 0, 3);
	for (size_t k = 0; k < n; k++)
		if (proto_request_peek(buf, k, &r))
			ck_assert(r.params + r.params_len <= buf + k);
}
END_TEST

static Suite *proto_suite(void)
{
	Suite *s = suite_create("proto");
	TCase *tc;

	tc = tcase_create("names");
	tcase_add_test(tc, test_err_names);
	tcase_add_test(tc, test_method_split);
	suite_add_tcase(s, tc);

	tc = tcase_create("roundtrip");
	tcase_add_test(tc, test_roundtrip_request);
	tcase_add_test(tc, test_roundtrip_request_bin_method);
	tcase_add_test(tc, test_roundtrip_request_wide_ints);
	tcase_add_test(tc, test_roundtrip_notification);
	tcase_add_test(tc, test_roundtrip_response_ok);
	tcase_add_test(tc, test_roundtrip_response_error);
	tcase_add_test(tc, test_pack_bad_args);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_test(tc, test_limits_default);
	tcase_add_test(tc, test_limit_message_bytes);
	tcase_add_test(tc, test_limit_len_beyond_max_incomplete);
	tcase_add_test(tc, test_limit_depth);
	tcase_add_test(tc, test_limit_depth_clamp);
	tcase_add_test(tc, test_deep_nesting_1000);
	tcase_add_test(tc, test_limit_elements);
	tcase_add_test(tc, test_limit_str_bytes);
	tcase_add_test(tc, test_oversized_declared_counts);
	suite_add_tcase(s, tc);

	tc = tcase_create("shapes");
	tcase_add_loop_test(tc, test_shapes, 0, (int)(sizeof(shapes) / sizeof(shapes[0])));
	tcase_add_test(tc, test_parse_not_array);
	tcase_add_test(tc, test_invalid_c1);
	tcase_add_test(tc, test_check_value);
	tcase_add_test(tc, test_request_peek);
	suite_add_tcase(s, tc);

	tc = tcase_create("stream");
	tcase_add_loop_test(tc, test_truncated_every_prefix, 0, N_SAMPLES);
	tcase_add_loop_test(tc, test_bytewise_equals_whole, 0, N_SAMPLES);
	tcase_add_test(tc, test_back_to_back);
	tcase_add_test(tc, test_trickle_linear);
	tcase_add_test(tc, test_fuzz);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(proto_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
