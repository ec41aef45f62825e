/*
 * fuzz-scan.c - libFuzzer target for the allocation-free pre-scan
 * (proto_scan_feed, proto_check_value in proto/scan.c).
 *
 * The scanner is the only thing between a socket and msgpack-c's unpacker,
 * which trusts declared lengths. So the properties are about what it lets
 * through, and about reaching the same verdict however the bytes arrive.
 *
 * Input: four parameter bytes, then a stream of messages.
 *   p[0]  max_depth = p[0] % 40 (past 32 exercises the clamp to msgpack-c's stack)
 *   p[1]  max_elements = 1 + 8 * p[1] (255: the default, 65536)
 *   p[2]  max_str_bytes = 16 * p[2] (255: the message size)
 *   p[3]  seed of the chunk sizes the stream is fed in
 * Properties, for each message of the stream:
 *   1. fed in chunks, the scanner ends as it does fed all bytes at once:
 *      same status, and the same length when DONE;
 *   2. a message it passes decodes with msgpack_unpack, completely, and the
 *      decoded object keeps every limit (depth, elements, payload, size)
 *      and the outer shape, with the msgid the scanner reported;
 *   3. proto_check_value accepts the message bytes at the same depth;
 * and for the rest of the input taken as one value:
 *   4. what proto_check_value accepts, msgpack_unpack decodes completely,
 *      no deeper than asked;
 *   5. proto_value_len measures a first value proto_check_value accepts
 *      alone, and the whole input when that is one value.
 */
#include <errno.h>
#include <string.h>

#include "fuzz-common.h"
#include "proto.h"

#define MAX_MESSAGES 64

static uint32_t next_rand(uint32_t *s)
{
	/* xorshift32: chunk sizes only need to vary, reproducibly */
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* The chunk sizes of a socket: mostly small, sometimes one byte, now and then large. */
static size_t chunk_size(uint32_t *s)
{
	uint32_t r = next_rand(s);

	switch (r & 3) {
	case 0:
		return 1;
	case 1:
		return 1 + ((r >> 2) & 7);
	case 2:
		return 1 + ((r >> 2) & 255);
	default:
		return 1 + ((r >> 2) & 8191);
	}
}

static uint32_t effective_depth(uint32_t max_depth)
{
	/* the scanner's clamp: its own stack and msgpack-c's (32) */
	return max_depth > 32 ? 32 : max_depth;
}

static void check_passed_message(const uint8_t *msg, const proto_scan *s, const proto_limits *l,
				 msgpack_zone *zone)
{
	msgpack_object o;
	obj_measure m = { 0 };
	size_t off = 0;
	const msgpack_object *el;

	FUZZ_ASSERT(s->msg_len > 0 && s->msg_len <= l->max_message_bytes);
	FUZZ_ASSERT(msgpack_unpack((const char *)msg, s->msg_len, &off, zone, &o) ==
		    MSGPACK_UNPACK_SUCCESS);
	FUZZ_ASSERT(off == s->msg_len);

	obj_measure_walk(&o, 0, &m);
	FUZZ_ASSERT(m.elements <= l->max_elements);
	FUZZ_ASSERT(m.depth <= effective_depth(l->max_depth));
	FUZZ_ASSERT(m.max_payload <= l->max_str_bytes);

	/* the outer shape the scanner checks on the bytes */
	FUZZ_ASSERT(o.type == MSGPACK_OBJECT_ARRAY);
	FUZZ_ASSERT(o.via.array.size == 3 || o.via.array.size == 4);
	el = o.via.array.ptr;
	FUZZ_ASSERT(el[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER && el[0].via.u64 <= 2);
	FUZZ_ASSERT((el[0].via.u64 == PROTO_NOTIFICATION) == (o.via.array.size == 3));
	if (el[0].via.u64 != PROTO_NOTIFICATION) {
		FUZZ_ASSERT(el[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
			    el[1].via.u64 <= UINT32_MAX);
	}
	FUZZ_ASSERT(s->have_msgid == (el[0].via.u64 == PROTO_REQUEST));
	if (s->have_msgid)
		FUZZ_ASSERT(s->msgid == el[1].via.u64);

	FUZZ_ASSERT(proto_check_value(msg, s->msg_len, l->max_depth) == 0);
	msgpack_zone_clear(zone);
}

/* Scan one message at buf[0..len) both ways; returns its length, or 0 when the stream ends. */
static size_t scan_one(const uint8_t *buf, size_t len, const proto_limits *l, uint32_t *seed,
		       msgpack_zone *zone)
{
	proto_scan whole, part;
	proto_scan_status st_whole, st_part = PROTO_SCAN_MORE;
	size_t avail = 0;

	proto_scan_reset(&whole);
	st_whole = proto_scan_feed(&whole, l, buf, len);

	proto_scan_reset(&part);
	while (avail < len && st_part == PROTO_SCAN_MORE) {
		size_t n = chunk_size(seed);

		avail = n > len - avail ? len : avail + n;
		st_part = proto_scan_feed(&part, l, buf, avail);
		/* a call after the verdict repeats it */
		if (st_part != PROTO_SCAN_MORE)
			FUZZ_ASSERT(proto_scan_feed(&part, l, buf, avail) == st_part);
	}
	FUZZ_ASSERT(st_part == st_whole);
	if (st_whole == PROTO_SCAN_ERROR) {
		FUZZ_ASSERT(whole.reason && part.reason);
		FUZZ_ASSERT(whole.err == PROTO_E_TOO_LARGE || whole.err == PROTO_E_BAD_REQUEST);
		FUZZ_ASSERT(part.err == PROTO_E_TOO_LARGE || part.err == PROTO_E_BAD_REQUEST);
		return 0;
	}
	if (st_whole == PROTO_SCAN_MORE) {
		FUZZ_ASSERT(len <= l->max_message_bytes);
		return 0;
	}
	FUZZ_ASSERT(part.msg_len == whole.msg_len);
	FUZZ_ASSERT(whole.msg_len <= len);
	FUZZ_ASSERT(part.have_msgid == whole.have_msgid && part.msgid == whole.msgid);
	check_passed_message(buf, &whole, l, zone);
	return whole.msg_len;
}

static void check_value_rest(const uint8_t *p, size_t n, uint32_t max_depth, msgpack_zone *zone)
{
	msgpack_object o;
	obj_measure m = { 0 };
	size_t off = 0;
	int r = proto_check_value(p, n, max_depth);
	size_t first = 0;

	FUZZ_ASSERT(r == 0 || r == -EINVAL || r == -ELOOP);
	if (proto_value_len(p, n, max_depth, &first) == 0) {
		FUZZ_ASSERT(first > 0 && first <= n);
		FUZZ_ASSERT(proto_check_value(p, first, max_depth) == 0);
		FUZZ_ASSERT(r != 0 || first == n);
	} else {
		FUZZ_ASSERT(r != 0);
	}
	if (r != 0)
		return;
	FUZZ_ASSERT(msgpack_unpack((const char *)p, n, &off, zone, &o) == MSGPACK_UNPACK_SUCCESS);
	FUZZ_ASSERT(off == n);
	obj_measure_walk(&o, 0, &m);
	FUZZ_ASSERT(m.depth <= effective_depth(max_depth));
	msgpack_zone_clear(zone);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static msgpack_zone zone;
	static int zone_ready;
	proto_limits l;
	uint32_t seed;
	size_t pos;

	if (size < 4)
		return 0;
	if (!zone_ready) {
		FUZZ_ASSERT(msgpack_zone_init(&zone, 4096));
		zone_ready = 1;
	}
	proto_limits_default(&l);
	l.max_depth = data[0] % 40;
	if (data[1] != 255)
		l.max_elements = 1 + 8u * data[1];
	if (data[2] != 255)
		l.max_str_bytes = 16u * data[2];
	seed = 0x9e3779b9u ^ data[3];
	data += 4;
	size -= 4;

	pos = 0;
	for (int i = 0; i < MAX_MESSAGES && pos < size; i++) {
		size_t n = scan_one(data + pos, size - pos, &l, &seed, &zone);

		if (n == 0)
			break;
		pos += n;
	}
	check_value_rest(data, size, l.max_depth, &zone);
	return 0;
}
