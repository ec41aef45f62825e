/*
 * args.h - params the host table only hands over as msgpack: option maps and
 * arrays of strings. Header-only so each module stays one shared object that
 * links nothing of the daemon's.
 *
 * The bytes come from h->arg_msgpack, the daemon's own re-encoding of an
 * argument it already decoded and bounded, so unpacking them cannot fail
 * half-way on hostile input; the objects point into the unpacked zone and
 * live until modargs_fini.
 */
#ifndef LMMS_MODULES_ARGS_H
#define LMMS_MODULES_ARGS_H

#include <lmms/lmms-module.h>

#include <errno.h>
#include <msgpack.h>
#include <stdbool.h>
#include <string.h>

typedef struct modargs {
	msgpack_unpacked up;
} modargs;

static inline void modargs_init(modargs *a)
{
	msgpack_unpacked_init(&a->up);
}

static inline void modargs_fini(modargs *a)
{
	msgpack_unpacked_destroy(&a->up);
}

/*
 * Argument i as a msgpack object of type want, in a. An absent or nil
 * argument gives 0 with *out = NULL (options left out); any other type, or a
 * failure to get the bytes, gives -EINVAL.
 */
static inline int modargs_get(const lmms_host *h, lmms_call *c, size_t i, lmms_type want,
			      modargs *a, const msgpack_object **out)
{
	const void *p;
	size_t n;
	lmms_type t = h->arg_type(c, i);

	*out = NULL;
	if (t == LMMS_T_NONE || t == LMMS_T_NIL)
		return 0;
	if (t != want || h->arg_msgpack(c, i, &p, &n) < 0)
		return -EINVAL;
	msgpack_unpacked_destroy(&a->up);
	msgpack_unpacked_init(&a->up);
	if (msgpack_unpack_next(&a->up, p, n, NULL) != MSGPACK_UNPACK_SUCCESS)
		return -EINVAL;
	*out = &a->up.data;
	return 0;
}

static inline bool modargs_key_is(const msgpack_object *k, const char *name)
{
	size_t n = strlen(name);

	return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
	       memcmp(k->via.str.ptr, name, n) == 0;
}

/* An integer option within [lo, hi]; -EINVAL otherwise. */
static inline int modargs_int(const msgpack_object *v, int64_t lo, int64_t hi, int64_t *out)
{
	int64_t x;

	if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX)
		x = (int64_t)v->via.u64;
	else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		x = v->via.i64;
	else
		return -EINVAL;
	if (x < lo || x > hi)
		return -EINVAL;
	*out = x;
	return 0;
}

#endif
