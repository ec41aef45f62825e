/*
 * scan.c - resumable, allocation-free msgpack pre-scan of one RPC message.
 *
 * msgpack-c's unpacker trusts declared lengths and allocates for them before
 * the bytes arrive, so the daemon runs every incoming message through this
 * walker first. It reads object headers only (never string bodies), keeps a
 * small per-depth stack of how many objects each open container still owes,
 * and rejects a message the moment a header shows it cannot fit the limits.
 *
 * Resumability: s->pos always points at the start of an object not yet
 * accepted. An object is accepted only once all of its own bytes (header and,
 * for str/bin/ext, payload) are in the buffer, so a partial header is read
 * again on the next call (a few bytes) and a partial body is only measured,
 * never read. Each call therefore costs O(1 + newly completed objects), which
 * makes a message trickled in one byte at a time O(n) overall.
 */
#include "proto.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

/*
 * msgpack-c's C unpacker (msgpack_unpack, msgpack_unpacker) keeps open
 * containers on a fixed stack of MSGPACK_EMBED_STACK_SIZE (32) entries and
 * fails any deeper message with MSGPACK_UNPACK_NOMEM_ERROR. A message this
 * scanner passes must unpack, so the effective depth limit is also clamped
 * to that; tests/test-proto.c checks the two still agree.
 */
#define SCAN_UNPACKER_DEPTH_MAX 32u

enum scan_kind {
	KIND_SCALAR, /* nil, bool, float */
	KIND_UINT, /* non-negative integer, value in u */
	KIND_NINT, /* negative integer */
	KIND_BLOB, /* str, bin or ext: payload of plen bytes follows the header */
	KIND_ARRAY,
	KIND_MAP,
};

typedef struct scan_obj {
	enum scan_kind kind;
	bool is_str; /* KIND_BLOB: str (as opposed to bin/ext) */
	uint32_t hdr; /* header bytes, including an ext's type byte */
	uint64_t u; /* KIND_UINT value; KIND_BLOB payload; container count */
} scan_obj;

void proto_limits_default(proto_limits *l)
{
	l->max_message_bytes = 1024u * 1024u;
	l->max_depth = 32;
	l->max_elements = 65536;
	l->max_str_bytes = l->max_message_bytes;
}

void proto_scan_reset(proto_scan *s)
{
	/* The container stack is written before it is read (a container's
	 * count is stored as it opens), so only the fields before it need
	 * clearing: this runs once per message. */
	memset(s, 0, offsetof(proto_scan, remaining));
	s->err = PROTO_OK;
}

static uint64_t load_be(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/*
 * Decode the header at p (avail > 0 bytes). Returns 1 when decoded, 0 when
 * the header itself is incomplete, -1 for a byte that starts no msgpack
 * object (0xc1).
 */
static int scan_header(const uint8_t *p, size_t avail, scan_obj *o)
{
	uint8_t b = p[0];
	unsigned len_bytes = 0; /* big-endian length/value bytes after the tag */

	memset(o, 0, sizeof(*o));
	o->hdr = 1;

	if (b <= 0x7f) {
		o->kind = KIND_UINT;
		o->u = b;
		return 1;
	}
	if (b >= 0xe0) {
		o->kind = KIND_NINT;
		return 1;
	}
	if (b <= 0x8f) {
		o->kind = KIND_MAP;
		o->u = b & 0x0f;
		return 1;
	}
	if (b <= 0x9f) {
		o->kind = KIND_ARRAY;
		o->u = b & 0x0f;
		return 1;
	}
	if (b <= 0xbf) {
		o->kind = KIND_BLOB;
		o->is_str = true;
		o->u = b & 0x1f;
		return 1;
	}

	switch (b) {
	case 0xc0: /* nil */
	case 0xc2: /* false */
	case 0xc3: /* true */
		o->kind = KIND_SCALAR;
		return 1;
	case 0xc1:
		return -1;
	case 0xc4: case 0xc5: case 0xc6: /* bin 8/16/32 */
		o->kind = KIND_BLOB;
		len_bytes = 1u << (b - 0xc4);
		o->hdr = 1 + len_bytes;
		break;
	case 0xc7: case 0xc8: case 0xc9: /* ext 8/16/32: length, then type byte */
		o->kind = KIND_BLOB;
		len_bytes = 1u << (b - 0xc7);
		o->hdr = 2 + len_bytes;
		break;
	case 0xca: /* float32 */
		o->kind = KIND_SCALAR;
		o->hdr = 5;
		return avail >= o->hdr;
	case 0xcb: /* float64 */
		o->kind = KIND_SCALAR;
		o->hdr = 9;
		return avail >= o->hdr;
	case 0xcc: case 0xcd: case 0xce: case 0xcf: /* uint 8..64 */
		o->kind = KIND_UINT;
		len_bytes = 1u << (b - 0xcc);
		o->hdr = 1 + len_bytes;
		if (avail < o->hdr)
			return 0;
		o->u = load_be(p + 1, len_bytes);
		return 1;
	case 0xd0: case 0xd1: case 0xd2: case 0xd3: { /* int 8..64 */
		len_bytes = 1u << (b - 0xd0);
		o->hdr = 1 + len_bytes;
		if (avail < o->hdr)
			return 0;
		/* A non-negative value is the same integer whatever the
		 * encoding; msgpack-c unpacks it as POSITIVE_INTEGER too. */
		uint64_t v = load_be(p + 1, len_bytes);
		if (p[1] & 0x80) {
			o->kind = KIND_NINT;
		} else {
			o->kind = KIND_UINT;
			o->u = v;
		}
		return 1;
	}
	case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: /* fixext 1..16 */
		o->kind = KIND_BLOB;
		o->hdr = 2;
		o->u = 1u << (b - 0xd4);
		return avail >= o->hdr;
	case 0xd9: case 0xda: case 0xdb: /* str 8/16/32 */
		o->kind = KIND_BLOB;
		o->is_str = true;
		len_bytes = 1u << (b - 0xd9);
		o->hdr = 1 + len_bytes;
		break;
	case 0xdc: case 0xdd: /* array 16/32 */
		o->kind = KIND_ARRAY;
		len_bytes = 2u << (b - 0xdc);
		o->hdr = 1 + len_bytes;
		break;
	case 0xde: case 0xdf: /* map 16/32 */
		o->kind = KIND_MAP;
		len_bytes = 2u << (b - 0xde);
		o->hdr = 1 + len_bytes;
		break;
	}

	if (avail < o->hdr)
		return 0;
	o->u = load_be(p + 1, len_bytes);
	return 1;
}

static const char reason_too_deep[] = "message nested too deeply";

static proto_scan_status scan_fail(proto_scan *s, proto_err err, const char *reason)
{
	s->err = err;
	s->reason = reason;
	return PROTO_SCAN_ERROR;
}

/*
 * Outer shape checks on the top array header (depth 0) and its first two
 * elements (depth 1). Everything deeper is left to proto_msg_parse, which
 * sees the unpacked object; these only catch what the bytes make obvious.
 */
static proto_scan_status scan_shape(proto_scan *s, const scan_obj *o)
{
	if (s->value_only)
		return PROTO_SCAN_MORE;
	if (s->depth == 0) {
		if (o->kind != KIND_ARRAY)
			return scan_fail(s, PROTO_E_BAD_REQUEST, "message is not an array");
		if (o->u != 3 && o->u != 4)
			return scan_fail(s, PROTO_E_BAD_REQUEST,
					 "message array must have 3 or 4 elements");
		return PROTO_SCAN_MORE;
	}
	if (s->depth != 1)
		return PROTO_SCAN_MORE;

	if (s->top_index == 0) {
		uint64_t n = s->remaining[0]; /* nothing consumed yet: the size */

		if (o->kind != KIND_UINT || o->u > PROTO_NOTIFICATION)
			return scan_fail(s, PROTO_E_BAD_REQUEST,
					 "message type must be 0, 1 or 2");
		if ((o->u == PROTO_NOTIFICATION) != (n == 3))
			return scan_fail(s, PROTO_E_BAD_REQUEST,
					 o->u == PROTO_NOTIFICATION
						 ? "notification must have 3 elements"
						 : "request and response must have 4 elements");
		s->top_type = (uint32_t)o->u;
	} else if (s->top_index == 1 && s->top_type != PROTO_NOTIFICATION) {
		if (o->kind != KIND_UINT || o->u > UINT32_MAX)
			return scan_fail(s, PROTO_E_BAD_REQUEST, "msgid must be a uint32");
		if (s->top_type == PROTO_REQUEST) {
			s->have_msgid = true;
			s->msgid = (uint32_t)o->u;
		}
	}
	return PROTO_SCAN_MORE;
}

proto_scan_status proto_scan_feed(proto_scan *s, const proto_limits *l, const void *buf,
				  size_t len)
{
	const uint8_t *p = buf;
	uint32_t max_depth = l->max_depth;

	if (s->err != PROTO_OK)
		return PROTO_SCAN_ERROR;
	if (s->pos > 0 && s->depth == 0)
		return PROTO_SCAN_DONE; /* already complete; msg_len is set */
	if (max_depth > PROTO_DEPTH_HARD_MAX)
		max_depth = PROTO_DEPTH_HARD_MAX;
	if (max_depth > SCAN_UNPACKER_DEPTH_MAX)
		max_depth = SCAN_UNPACKER_DEPTH_MAX;

	while (s->pos < len) {
		size_t avail = len - s->pos;
		uint64_t end, children = 0;
		scan_obj o;
		int r;

		r = scan_header(p + s->pos, avail, &o);
		if (r < 0)
			return scan_fail(s, PROTO_E_BAD_REQUEST, "invalid msgpack byte 0xc1");
		if (r == 0)
			break;

		/* Shape, then limits: both need only the header, and rejecting
		 * on the header is the point (no waiting for gigabytes). */
		if (scan_shape(s, &o) == PROTO_SCAN_ERROR)
			return PROTO_SCAN_ERROR;
		if (s->elements >= l->max_elements)
			return scan_fail(s, PROTO_E_BAD_REQUEST, "too many elements in message");
		end = (uint64_t)s->pos + o.hdr;
		if (o.kind == KIND_BLOB) {
			if (o.u > l->max_str_bytes)
				return scan_fail(s, PROTO_E_TOO_LARGE,
						 "string, bin or ext payload too large");
			end += o.u;
		} else if (o.kind == KIND_ARRAY || o.kind == KIND_MAP) {
			if (s->depth + 1 > max_depth)
				return scan_fail(s, PROTO_E_BAD_REQUEST, reason_too_deep);
			children = o.kind == KIND_MAP ? 2 * o.u : o.u;
			if (children > (uint64_t)l->max_elements - s->elements - 1)
				return scan_fail(s, PROTO_E_BAD_REQUEST,
						 "too many elements in message");
			/* each child needs at least one byte */
			end += children;
		}
		if (end > l->max_message_bytes)
			return scan_fail(s, PROTO_E_TOO_LARGE, "message too large");

		/* Accept the object only when its own bytes are all here. */
		if (o.kind == KIND_BLOB && avail - o.hdr < o.u)
			break;
		s->pos += o.hdr + (o.kind == KIND_BLOB ? (size_t)o.u : 0);
		s->elements++;

		if (s->depth > 0) {
			s->remaining[s->depth - 1]--;
			if (s->depth == 1)
				s->top_index++;
		}
		if (children > 0)
			s->remaining[s->depth++] = children;
		while (s->depth > 0 && s->remaining[s->depth - 1] == 0)
			s->depth--;
		if (s->depth == 0) {
			s->msg_len = s->pos;
			return PROTO_SCAN_DONE;
		}
	}

	/* Incomplete: the message extends past len, so past the limit too. */
	if (len > l->max_message_bytes)
		return scan_fail(s, PROTO_E_TOO_LARGE, "message too large");
	return PROTO_SCAN_MORE;
}

int proto_value_len(const void *p, size_t n, uint32_t max_depth, size_t *len)
{
	proto_limits l = {
		.max_message_bytes = (uint32_t)n,
		.max_depth = max_depth,
		.max_elements = UINT32_MAX,
		.max_str_bytes = (uint32_t)n,
	};
	proto_scan s;

	if (n > UINT32_MAX)
		return -E2BIG;
	proto_scan_reset(&s);
	s.value_only = true;
	switch (proto_scan_feed(&s, &l, p, n)) {
	case PROTO_SCAN_DONE:
		*len = s.msg_len;
		return 0;
	case PROTO_SCAN_ERROR:
		return s.reason == reason_too_deep ? -ELOOP : -EINVAL;
	default:
		return -EINVAL; /* truncated */
	}
}

int proto_check_value(const void *p, size_t n, uint32_t max_depth)
{
	size_t len = 0;
	int r = proto_value_len(p, n, max_depth, &len);

	if (r < 0)
		return r;
	return len == n ? 0 : -EINVAL;
}

/* ---- request peek (the dispatch fast path) ---- */

static bool peek_uint32(const unsigned char **pp, const unsigned char *end, uint32_t *out)
{
	const unsigned char *p = *pp;

	if (p >= end)
		return false;
	if (*p <= 0x7f) {
		*out = *p;
		*pp = p + 1;
		return true;
	}
	if (*p == 0xcc && end - p >= 2) {
		*out = p[1];
		*pp = p + 2;
		return true;
	}
	if (*p == 0xcd && end - p >= 3) {
		*out = (uint32_t)p[1] << 8 | p[2];
		*pp = p + 3;
		return true;
	}
	if (*p == 0xce && end - p >= 5) {
		*out = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
		*pp = p + 5;
		return true;
	}
	return false;
}

static bool peek_str(const unsigned char **pp, const unsigned char *end, const char **s,
		     uint32_t *n)
{
	const unsigned char *p = *pp;
	uint32_t len;

	if (p >= end)
		return false;
	if ((*p & 0xe0) == 0xa0) {
		len = *p & 0x1f;
		p += 1;
	} else if (*p == 0xd9 && end - p >= 2) {
		len = p[1];
		p += 2;
	} else if (*p == 0xda && end - p >= 3) {
		len = (uint32_t)p[1] << 8 | p[2];
		p += 3;
	} else {
		return false;
	}
	if ((size_t)(end - p) < len)
		return false;
	*s = (const char *)p;
	*n = len;
	*pp = p + len;
	return true;
}

static bool is_array_header(unsigned char b)
{
	return (b & 0xf0) == 0x90 || b == 0xdc || b == 0xdd;
}

/* The scanner already proved msg is one whole, well-formed message, so the
 * params array, the last element, runs exactly to its end. */
bool proto_request_peek(const char *msg, size_t len, proto_request *r)
{
	const unsigned char *p = (const unsigned char *)msg, *end = p + len;

	if (len < 4)
		return false;
	if (p[0] == 0x94 && p[1] == 0x00) {
		p += 2;
		if (!peek_uint32(&p, end, &r->msgid))
			return false;
		r->notify = false;
	} else if (p[0] == 0x93 && p[1] == 0x02) {
		p += 2;
		r->msgid = 0;
		r->notify = true;
	} else {
		return false;
	}
	if (!peek_str(&p, end, &r->method, &r->method_len) || p >= end || !is_array_header(*p))
		return false;
	r->params = (const char *)p;
	r->params_len = (size_t)(end - p);
	return true;
}
