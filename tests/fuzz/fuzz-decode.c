/*
 * fuzz-decode.c - libFuzzer target for the decoder path behind the
 * pre-scan: msgpack_unpack of a message proto_scan_feed passed, then
 * proto_msg_parse, proto_method_split, and the writers of the replies.
 *
 * Input: a byte stream as a client would send it (default limits).
 * Properties, for each message the scanner passes:
 *   1. proto_msg_parse either accepts, with every field it promises, or
 *      refuses with a reason; a request's msgid it reports (even on error,
 *      for the reply) is the one the scanner saw;
 *   2. the method lies inside the message bytes, and the params are exactly
 *      the bytes from the method's end to the message's end: what the
 *      daemon's general path (dispatch_message) relies on to find them;
 *   3. proto_method_split accepts only "module.op" with a module part free
 *      of dots and neither part empty, and nothing with '/', ".." or NUL;
 *   4. a request or notification packed again by proto_pack_* with the same
 *      params parses back to the same method, msgid and params;
 *   5. the error reply to a refused request passes the scanner and parses
 *      as a response with that msgid and code;
 *   6. what proto_request_peek (dispatch's fast path) reads from the bytes
 *      is what the full decode reads: same kind, msgid, method and params.
 */
#include <errno.h>
#include <string.h>

#include "fuzz-common.h"
#include "proto.h"

#define MAX_MESSAGES 32

static bool method_ok_by_rule(const char *m, size_t n, size_t *dot)
{
	const char *d;

	if (n == 0 || n > 255 || memchr(m, '\0', n) || memchr(m, '/', n) || memmem(m, n, "..", 2))
		return false;
	d = memchr(m, '.', n);
	if (!d || d == m || d == m + n - 1)
		return false;
	*dot = (size_t)(d - m);
	return true;
}

static void check_split(const char *method, size_t len)
{
	const char *mod = NULL, *op = NULL;
	size_t mod_len = 0, op_len = 0, dot = 0;
	int r = proto_method_split(method, len, &mod, &mod_len, &op, &op_len);

	FUZZ_ASSERT(r == 0 || r == -EINVAL);
	FUZZ_ASSERT((r == 0) == method_ok_by_rule(method, len, &dot));
	if (r < 0)
		return;
	FUZZ_ASSERT(mod == method && mod_len == dot && mod_len > 0);
	FUZZ_ASSERT(!memchr(mod, '.', mod_len));
	FUZZ_ASSERT(op == method + dot + 1 && op_len == len - dot - 1 && op_len > 0);
}

/* Scan, unpack and parse buf[0..len) as one message; the zone holds o. */
static proto_err reparse(const char *buf, size_t len, msgpack_zone *z, msgpack_object *o,
			 proto_msg *pm)
{
	proto_limits l;
	proto_scan s;
	size_t off = 0;
	const char *why;

	proto_limits_default(&l);
	l.max_message_bytes = UINT32_MAX;
	l.max_elements = UINT32_MAX;
	l.max_str_bytes = UINT32_MAX;
	proto_scan_reset(&s);
	FUZZ_ASSERT(proto_scan_feed(&s, &l, buf, len) == PROTO_SCAN_DONE && s.msg_len == len);
	FUZZ_ASSERT(msgpack_unpack(buf, len, &off, z, o) == MSGPACK_UNPACK_SUCCESS && off == len);
	return proto_msg_parse(o, pm, &why);
}

/* Property 4: pack the call again and read it back. */
static void check_repack(const proto_msg *pm, msgpack_zone *z)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_object o;
	proto_msg back;
	const msgpack_object *params = pm->params;
	int r;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (pm->type == PROTO_REQUEST)
		r = proto_pack_request(&pk, pm->msgid, pm->method, pm->method_len,
				       params->via.array.size);
	else
		r = proto_pack_notification(&pk, pm->method, pm->method_len,
					    params->via.array.size);
	FUZZ_ASSERT(r == 0);
	for (uint32_t i = 0; i < params->via.array.size; i++)
		FUZZ_ASSERT(msgpack_pack_object(&pk, params->via.array.ptr[i]) == 0);

	FUZZ_ASSERT(reparse(sb.data, sb.size, z, &o, &back) == PROTO_OK);
	FUZZ_ASSERT(back.type == pm->type && back.msgid == pm->msgid);
	/* msgpack-c leaves an empty str's pointer NULL: compare lengths first */
	FUZZ_ASSERT(back.method_len == pm->method_len);
	FUZZ_ASSERT(!pm->method_len || memcmp(back.method, pm->method, pm->method_len) == 0);
	FUZZ_ASSERT(obj_same(back.params, params));
	msgpack_sbuffer_destroy(&sb);
}

/* Property 5: the reply the daemon sends to a request it cannot take. */
static void check_error_reply(uint32_t msgid, const char *reason, msgpack_zone *z)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_object o;
	proto_msg back;
	const msgpack_object *e;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	FUZZ_ASSERT(proto_pack_response_error(&pk, msgid, PROTO_E_BAD_REQUEST, reason) == 0);
	FUZZ_ASSERT(reparse(sb.data, sb.size, z, &o, &back) == PROTO_OK);
	FUZZ_ASSERT(back.type == PROTO_RESPONSE && back.msgid == msgid);
	e = back.error;
	FUZZ_ASSERT(e->type == MSGPACK_OBJECT_ARRAY && e->via.array.size == 2);
	FUZZ_ASSERT(proto_err_from_name(e->via.array.ptr[0].via.str.ptr,
					e->via.array.ptr[0].via.str.size) == PROTO_E_BAD_REQUEST);
	FUZZ_ASSERT(e->via.array.ptr[1].via.str.size == strlen(reason) &&
		    memcmp(e->via.array.ptr[1].via.str.ptr, reason, strlen(reason)) == 0);
	msgpack_sbuffer_destroy(&sb);
}

/* Property 6: the fast path agrees with the full decode, or stays out. */
static void check_peek(const char *msg, size_t len, proto_err e, const proto_msg *pm,
		       msgpack_zone *z)
{
	proto_request r;
	msgpack_object po;
	size_t off = 0;

	if (!proto_request_peek(msg, len, &r))
		return;
	FUZZ_ASSERT(e == PROTO_OK);
	FUZZ_ASSERT(pm->type == (r.notify ? PROTO_NOTIFICATION : PROTO_REQUEST));
	if (!r.notify)
		FUZZ_ASSERT(r.msgid == pm->msgid);
	FUZZ_ASSERT(r.method_len == pm->method_len);
	FUZZ_ASSERT(!r.method_len || memcmp(r.method, pm->method, r.method_len) == 0);
	FUZZ_ASSERT(r.params >= msg && r.params + r.params_len == msg + len);
	FUZZ_ASSERT(proto_check_value(r.params, r.params_len, 32) == 0);
	FUZZ_ASSERT(msgpack_unpack(r.params, r.params_len, &off, z, &po) ==
		    MSGPACK_UNPACK_SUCCESS);
	FUZZ_ASSERT(obj_same(&po, pm->params));
}

static void check_message(const char *msg, const proto_scan *s, msgpack_zone *z)
{
	msgpack_object o;
	proto_msg pm;
	const char *reason = (const char *)1; /* must be overwritten */
	size_t off = 0;
	proto_err e;

	FUZZ_ASSERT(msgpack_unpack(msg, s->msg_len, &off, z, &o) == MSGPACK_UNPACK_SUCCESS);
	e = proto_msg_parse(&o, &pm, &reason);
	check_peek(msg, s->msg_len, e, &pm, z);

	/* property 1 */
	FUZZ_ASSERT(e == PROTO_OK || e == PROTO_E_BAD_REQUEST);
	if (pm.type == PROTO_REQUEST) {
		FUZZ_ASSERT(s->have_msgid && s->msgid == pm.msgid);
	}
	if (e != PROTO_OK) {
		FUZZ_ASSERT(reason != NULL && reason != (const char *)1 && *reason);
		FUZZ_ASSERT(pm.type == PROTO_REQUEST || pm.type == -1);
		if (pm.type == PROTO_REQUEST)
			check_error_reply(pm.msgid, reason, z);
		msgpack_zone_clear(z);
		return;
	}
	FUZZ_ASSERT(reason == NULL);
	FUZZ_ASSERT(pm.type == PROTO_REQUEST || pm.type == PROTO_RESPONSE ||
		    pm.type == PROTO_NOTIFICATION);
	if (pm.type == PROTO_RESPONSE) {
		FUZZ_ASSERT(pm.error && pm.result && !pm.method && !pm.params);
		FUZZ_ASSERT(pm.error->type == MSGPACK_OBJECT_NIL ||
			    (pm.error->type == MSGPACK_OBJECT_ARRAY &&
			     pm.error->via.array.size == 2));
		msgpack_zone_clear(z);
		return;
	}
	FUZZ_ASSERT(pm.params && pm.params->type == MSGPACK_OBJECT_ARRAY);
	FUZZ_ASSERT(!pm.error && !pm.result);

	/* property 2: the method inside the message, the params right after it */
	if (pm.method_len > 0) {
		const char *params = pm.method + pm.method_len;
		size_t plen;
		size_t poff = 0;
		msgpack_object po;

		FUZZ_ASSERT(pm.method >= msg && params <= msg + s->msg_len);
		plen = (size_t)(msg + s->msg_len - params);
		FUZZ_ASSERT(proto_check_value(params, plen, 32) == 0);
		FUZZ_ASSERT(msgpack_unpack(params, plen, &poff, z, &po) == MSGPACK_UNPACK_SUCCESS);
		FUZZ_ASSERT(obj_same(&po, pm.params));
	}

	check_split(pm.method, pm.method_len); /* property 3 */
	check_repack(&pm, z); /* property 4 */
	msgpack_zone_clear(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static msgpack_zone zone;
	static int zone_ready;
	proto_limits l;
	size_t pos = 0;

	if (!zone_ready) {
		FUZZ_ASSERT(msgpack_zone_init(&zone, 4096));
		zone_ready = 1;
	}
	proto_limits_default(&l);
	for (int i = 0; i < MAX_MESSAGES && pos < size; i++) {
		proto_scan s;

		proto_scan_reset(&s);
		if (proto_scan_feed(&s, &l, data + pos, size - pos) != PROTO_SCAN_DONE)
			break;
		check_message((const char *)data + pos, &s, &zone);
		pos += s.msg_len;
	}
	/* the splitter on its own, on any bytes: the method of a bin or str */
	check_split((const char *)data, size < 300 ? size : 300);
	return 0;
}
