/*
 * reply.h - a msgpack value builder whose containers count their own
 * entries, and whose failure is sticky.
 *
 * A container's header is written when it is closed, from the number of
 * values that really went into it, in the same minimal encoding
 * msgpack_pack_map/array would have chosen up front; so no caller counts by
 * hand, and a missed increment cannot produce a malformed message. Any
 * failure (out of memory, unbalanced containers, a map with a dangling key)
 * makes reply_finish fail, and the caller throws the whole value away and
 * answers with an error: nothing half-built ever reaches the wire.
 */
#ifndef LMMS_REPLY_H
#define LMMS_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bbuf.h"

#define REPLY_MAX_DEPTH 16

typedef struct reply {
	bbuf buf;
	int err; /* first failure, sticky */
	uint32_t depth;
	uint32_t top_values; /* values at depth 0 (one when finished) */
	struct {
		size_t off; /* where the reserved header starts */
		uint32_t n; /* values written inside */
		bool map;
	} open[REPLY_MAX_DEPTH];
} reply;

void reply_init(reply *r);
void reply_fini(reply *r);

void reply_map_begin(reply *r);
void reply_map_end(reply *r);
void reply_array_begin(reply *r);
void reply_array_end(reply *r);

void reply_nil(reply *r);
void reply_bool(reply *r, bool v);
void reply_u64(reply *r, uint64_t v);
void reply_i64(reply *r, int64_t v);
void reply_f64(reply *r, double v);
void reply_str(reply *r, const char *s); /* NULL packs as "" */
void reply_strn(reply *r, const char *s, size_t n);
/* One complete msgpack value, copied as it is. */
void reply_raw(reply *r, const void *p, size_t n);

/* key/value shorthands for maps */
void reply_kv_u64(reply *r, const char *k, uint64_t v);
void reply_kv_i64(reply *r, const char *k, int64_t v);
void reply_kv_str(reply *r, const char *k, const char *v);
void reply_kv_bool(reply *r, const char *k, bool v);

/* 0 with the encoded value in r->buf, or the first error (-ENOMEM, -EINVAL
 * for an unbalanced or incomplete value). */
int reply_finish(reply *r);

#endif
