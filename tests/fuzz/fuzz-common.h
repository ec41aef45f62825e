/*
 * fuzz-common.h - what the libFuzzer targets share: a failed property is a
 * crash (so libFuzzer keeps the input), and a walk over a decoded msgpack
 * object that measures it the way proto/scan.c limits it.
 */
#ifndef LMMS_FUZZ_COMMON_H
#define LMMS_FUZZ_COMMON_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property that must hold whatever the input: abort, so libFuzzer saves it. */
#define FUZZ_ASSERT(cond)                                                            \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__,    \
				__LINE__, #cond);                                    \
			abort();                                                     \
		}                                                                    \
	} while (0)

typedef struct obj_measure {
	uint64_t elements; /* objects, containers and map keys included */
	uint32_t depth; /* deepest container nesting; a lone scalar is 0 */
	uint64_t max_payload; /* longest str, bin or ext payload */
} obj_measure;

static inline void obj_measure_walk(const msgpack_object *o, uint32_t level, obj_measure *m)
{
	m->elements++;
	switch (o->type) {
	case MSGPACK_OBJECT_ARRAY:
		if (level + 1 > m->depth)
			m->depth = level + 1;
		for (uint32_t i = 0; i < o->via.array.size; i++)
			obj_measure_walk(&o->via.array.ptr[i], level + 1, m);
		break;
	case MSGPACK_OBJECT_MAP:
		if (level + 1 > m->depth)
			m->depth = level + 1;
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			obj_measure_walk(&o->via.map.ptr[i].key, level + 1, m);
			obj_measure_walk(&o->via.map.ptr[i].val, level + 1, m);
		}
		break;
	case MSGPACK_OBJECT_STR:
		if (o->via.str.size > m->max_payload)
			m->max_payload = o->via.str.size;
		break;
	case MSGPACK_OBJECT_BIN:
		if (o->via.bin.size > m->max_payload)
			m->max_payload = o->via.bin.size;
		break;
	case MSGPACK_OBJECT_EXT:
		if (o->via.ext.size > m->max_payload)
			m->max_payload = o->via.ext.size;
		break;
	default:
		break;
	}
}

/* msgpack_object_equal with floats compared by their bits: NaN is itself. */
static inline bool obj_same(const msgpack_object *a, const msgpack_object *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return memcmp(&a->via.f64, &b->via.f64, sizeof(a->via.f64)) == 0;
	case MSGPACK_OBJECT_ARRAY:
		if (a->via.array.size != b->via.array.size)
			return false;
		for (uint32_t i = 0; i < a->via.array.size; i++) {
			if (!obj_same(&a->via.array.ptr[i], &b->via.array.ptr[i]))
				return false;
		}
		return true;
	case MSGPACK_OBJECT_MAP:
		if (a->via.map.size != b->via.map.size)
			return false;
		for (uint32_t i = 0; i < a->via.map.size; i++) {
			if (!obj_same(&a->via.map.ptr[i].key, &b->via.map.ptr[i].key) ||
			    !obj_same(&a->via.map.ptr[i].val, &b->via.map.ptr[i].val))
				return false;
		}
		return true;
	default:
		return msgpack_object_equal(*a, *b);
	}
}

#endif
