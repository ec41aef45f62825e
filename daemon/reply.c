/*
 * reply.c - self-counting msgpack builder (see reply.h).
 */
#include "reply.h"

#include <errno.h>
#include <msgpack.h>
#include <string.h>

/* Reserved for every container header: the largest form (map32/array32). */
#define HDR_MAX 5

void reply_init(reply *r)
{
	memset(r, 0, sizeof(*r));
}

void reply_fini(reply *r)
{
	bbuf_free(&r->buf);
	memset(r, 0, sizeof(*r));
}

static void fail(reply *r, int e)
{
	if (!r->err)
		r->err = e;
}

static void counted(reply *r)
{
	if (r->depth)
		r->open[r->depth - 1].n++;
	else
		r->top_values++;
}

static void append(reply *r, const void *p, size_t n)
{
	if (r->err)
		return;
	if (bbuf_append(&r->buf, p, n) < 0)
		fail(r, -ENOMEM);
}

static msgpack_packer packer(reply *r)
{
	msgpack_packer pk;

	msgpack_packer_init(&pk, &r->buf, bbuf_msgpack_write);
	return pk;
}

static void begin(reply *r, bool map)
{
	static const char zeros[HDR_MAX];

	if (r->err)
		return;
	if (r->depth == REPLY_MAX_DEPTH) {
		fail(r, -EINVAL);
		return;
	}
	counted(r);
	r->open[r->depth].off = r->buf.len;
	r->open[r->depth].n = 0;
	r->open[r->depth].map = map;
	r->depth++;
	append(r, zeros, HDR_MAX);
}

static void end(reply *r, bool map)
{
	unsigned char hdr[HDR_MAX];
	size_t off, hlen, body;
	uint32_t n;

	if (r->err)
		return;
	if (!r->depth || r->open[r->depth - 1].map != map) {
		fail(r, -EINVAL);
		return;
	}
	r->depth--;
	off = r->open[r->depth].off;
	n = r->open[r->depth].n;
	if (map) {
		if (n % 2) {
			fail(r, -EINVAL); /* a key without its value */
			return;
		}
		n /= 2;
	}
	/* the encoding msgpack_pack_map/array use: fix, then 16, then 32 bits */
	if (n < 16) {
		hdr[0] = (unsigned char)((map ? 0x80 : 0x90) | n);
		hlen = 1;
	} else if (n < 65536) {
		hdr[0] = map ? 0xde : 0xdc;
		hdr[1] = (unsigned char)(n >> 8);
		hdr[2] = (unsigned char)n;
		hlen = 3;
	} else {
		hdr[0] = map ? 0xdf : 0xdd;
		hdr[1] = (unsigned char)(n >> 24);
		hdr[2] = (unsigned char)(n >> 16);
		hdr[3] = (unsigned char)(n >> 8);
		hdr[4] = (unsigned char)n;
		hlen = 5;
	}
	body = r->buf.len - off - HDR_MAX;
	memcpy(r->buf.data + off, hdr, hlen);
	memmove(r->buf.data + off + hlen, r->buf.data + off + HDR_MAX, body);
	r->buf.len -= HDR_MAX - hlen;
}

void reply_map_begin(reply *r) { begin(r, true); }
void reply_map_end(reply *r) { end(r, true); }
void reply_array_begin(reply *r) { begin(r, false); }
void reply_array_end(reply *r) { end(r, false); }

#define PACK(r, call)                                  \
	do {                                           \
		msgpack_packer pk;                     \
		if ((r)->err)                          \
			return;                        \
		counted(r);                            \
		pk = packer(r);                        \
		if ((call) < 0)                        \
			fail((r), -ENOMEM);            \
	} while (0)

void reply_nil(reply *r) { PACK(r, msgpack_pack_nil(&pk)); }
void reply_bool(reply *r, bool v)
{
	PACK(r, v ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk));
}
void reply_u64(reply *r, uint64_t v) { PACK(r, msgpack_pack_uint64(&pk, v)); }
void reply_i64(reply *r, int64_t v) { PACK(r, msgpack_pack_int64(&pk, v)); }
void reply_f64(reply *r, double v) { PACK(r, msgpack_pack_double(&pk, v)); }

void reply_strn(reply *r, const char *s, size_t n)
{
	if (n > UINT32_MAX) {
		fail(r, -E2BIG);
		return;
	}
	PACK(r, msgpack_pack_str_with_body(&pk, s ? s : "", n));
}

void reply_str(reply *r, const char *s)
{
	reply_strn(r, s, s ? strlen(s) : 0);
}

void reply_raw(reply *r, const void *p, size_t n)
{
	if (r->err)
		return;
	counted(r);
	append(r, p, n);
}

void reply_kv_u64(reply *r, const char *k, uint64_t v)
{
	reply_str(r, k);
	reply_u64(r, v);
}

void reply_kv_i64(reply *r, const char *k, int64_t v)
{
	reply_str(r, k);
	reply_i64(r, v);
}

void reply_kv_str(reply *r, const char *k, const char *v)
{
	reply_str(r, k);
	reply_str(r, v);
}

void reply_kv_bool(reply *r, const char *k, bool v)
{
	reply_str(r, k);
	reply_bool(r, v);
}

int reply_finish(reply *r)
{
	if (!r->err && (r->depth || r->top_values != 1))
		r->err = -EINVAL;
	return r->err;
}
