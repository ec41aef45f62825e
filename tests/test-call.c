/*
 * test-call.c - unit tests of the host API (daemon/call.c).
 *
 * Params are built the way the daemon gets them (packed, then unpacked into
 * a msgpack_object array), every host function is called through call_host
 * as a module would, and results are decoded again to check the bytes.
 */
#include <check.h>
/* check.h defines a deprecated fail() macro that would hide lmms_host.fail. */
#undef fail
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "call.h"

/* ---- helpers ------------------------------------------------------------ */

typedef struct pbuild {
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked up;
} pbuild;

static msgpack_packer *pb_begin(pbuild *b, uint32_t n)
{
	msgpack_sbuffer_init(&b->sb);
	msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
	msgpack_unpacked_init(&b->up);
	msgpack_pack_array(&b->pk, n);
	return &b->pk;
}

static const msgpack_object *pb_end(pbuild *b)
{
	ck_assert_int_eq(msgpack_unpack_next(&b->up, b->sb.data, b->sb.size, NULL),
			 MSGPACK_UNPACK_SUCCESS);
	return &b->up.data;
}

static void pb_free(pbuild *b)
{
	msgpack_unpacked_destroy(&b->up);
	msgpack_sbuffer_destroy(&b->sb);
}

/* Decode the call's result (asserting it is one complete value). */
typedef struct result {
	char *bytes;
	size_t len;
	msgpack_unpacked up;
} result;

static const msgpack_object *result_take(lmms_call *c, result *r)
{
	size_t off = 0;

	r->bytes = call_take_result(c, &r->len);
	ck_assert_ptr_nonnull(r->bytes);
	msgpack_unpacked_init(&r->up);
	ck_assert_int_eq(msgpack_unpack_next(&r->up, r->bytes, r->len, &off),
			 MSGPACK_UNPACK_SUCCESS);
	ck_assert_uint_eq(off, r->len);
	return &r->up.data;
}

static void result_free(result *r)
{
	msgpack_unpacked_destroy(&r->up);
	free(r->bytes);
}

static const lmms_host *H = &call_host;

/* ---- host table ---------------------------------------------------------- */

START_TEST(test_host_table)
{
	ck_assert_uint_eq(H->abi_version, LMMS_MODULE_ABI_VERSION);
	ck_assert_uint_eq(H->size, sizeof(lmms_host));
	ck_assert_ptr_nonnull(H->arg_count);
	ck_assert_ptr_nonnull(H->arg_type);
	ck_assert_ptr_nonnull(H->arg_bool);
	ck_assert_ptr_nonnull(H->arg_int);
	ck_assert_ptr_nonnull(H->arg_double);
	ck_assert_ptr_nonnull(H->arg_str);
	ck_assert_ptr_nonnull(H->arg_bytes);
	ck_assert_ptr_nonnull(H->arg_msgpack);
	ck_assert_ptr_nonnull(H->ret_nil);
	ck_assert_ptr_nonnull(H->ret_bool);
	ck_assert_ptr_nonnull(H->ret_int);
	ck_assert_ptr_nonnull(H->ret_uint);
	ck_assert_ptr_nonnull(H->ret_double);
	ck_assert_ptr_nonnull(H->ret_str);
	ck_assert_ptr_nonnull(H->ret_bin);
	ck_assert_ptr_nonnull(H->ret_array);
	ck_assert_ptr_nonnull(H->ret_map);
	ck_assert_ptr_nonnull(H->ret_msgpack);
	ck_assert_ptr_nonnull(H->fail);
	ck_assert_ptr_nonnull(H->log);
	ck_assert_ptr_nonnull(H->now_ms);
}
END_TEST

/* ---- params -------------------------------------------------------------- */

/* [nil, true, 5, -7, UINT64_MAX, 1.5, "str", bin"\0b", [1], {"a": 1}, ext, ""] */
static const msgpack_object *build_mixed(pbuild *b)
{
	msgpack_packer *pk = pb_begin(b, 12);

	msgpack_pack_nil(pk);
	msgpack_pack_true(pk);
	msgpack_pack_int(pk, 5);
	msgpack_pack_int(pk, -7);
	msgpack_pack_uint64(pk, UINT64_MAX);
	msgpack_pack_double(pk, 1.5);
	msgpack_pack_str_with_body(pk, "str", 3);
	msgpack_pack_bin_with_body(pk, "\0b", 2);
	msgpack_pack_array(pk, 1);
	msgpack_pack_int(pk, 1);
	msgpack_pack_map(pk, 1);
	msgpack_pack_str_with_body(pk, "a", 1);
	msgpack_pack_int(pk, 1);
	msgpack_pack_ext_with_body(pk, "xyz", 3, 7);
	msgpack_pack_str(pk, 0);
	return pb_end(b);
}

START_TEST(test_arg_types)
{
	static const lmms_type want[] = {
		LMMS_T_NIL, LMMS_T_BOOL, LMMS_T_INT, LMMS_T_INT, LMMS_T_UINT, LMMS_T_FLOAT,
		LMMS_T_STR, LMMS_T_BIN, LMMS_T_ARRAY, LMMS_T_MAP, LMMS_T_EXT, LMMS_T_STR,
	};
	lmms_call c;
	pbuild b;

	call_init(&c, build_mixed(&b), 0, "t");
	ck_assert_uint_eq(H->arg_count(&c), 12);
	for (size_t i = 0; i < 12; i++)
		ck_assert_int_eq(H->arg_type(&c, i), want[i]);
	ck_assert_int_eq(H->arg_type(&c, 12), LMMS_T_NONE);
	ck_assert_int_eq(H->arg_type(&c, SIZE_MAX), LMMS_T_NONE);
	call_fini(&c);
	pb_free(&b);
}
END_TEST

START_TEST(test_arg_getters)
{
	const char *s;
	const void *p;
	int64_t i64;
	double d;
	size_t n;
	lmms_call c;
	pbuild b;
	int v;

	call_init(&c, build_mixed(&b), 0, "t");

	ck_assert_int_eq(H->arg_bool(&c, 1, &v), 0);
	ck_assert_int_eq(v, 1);
	ck_assert_int_eq(H->arg_bool(&c, 2, &v), -EINVAL);
	ck_assert_int_eq(H->arg_bool(&c, 0, &v), -EINVAL); /* nil is not false */
	ck_assert_int_eq(H->arg_bool(&c, 99, &v), -ERANGE);

	ck_assert_int_eq(H->arg_int(&c, 2, &i64), 0);
	ck_assert_int_eq(i64, 5);
	ck_assert_int_eq(H->arg_int(&c, 3, &i64), 0);
	ck_assert_int_eq(i64, -7);
	ck_assert_int_eq(H->arg_int(&c, 4, &i64), -EOVERFLOW);
	ck_assert_int_eq(H->arg_int(&c, 5, &i64), -EINVAL); /* float is not int */
	ck_assert_int_eq(H->arg_int(&c, 6, &i64), -EINVAL);
	ck_assert_int_eq(H->arg_int(&c, 12, &i64), -ERANGE);

	ck_assert_int_eq(H->arg_double(&c, 5, &d), 0);
	ck_assert(d == 1.5);
	ck_assert_int_eq(H->arg_double(&c, 3, &d), 0);
	ck_assert(d == -7.0);
	ck_assert_int_eq(H->arg_double(&c, 4, &d), 0);
	ck_assert(d == (double)UINT64_MAX);
	ck_assert_int_eq(H->arg_double(&c, 6, &d), -EINVAL);
	ck_assert_int_eq(H->arg_double(&c, 12, &d), -ERANGE);

	ck_assert_int_eq(H->arg_str(&c, 6, &s, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(memcmp(s, "str", 3), 0);
	ck_assert_int_eq(H->arg_str(&c, 7, &s, &n), -EINVAL); /* bin is not str */
	ck_assert_int_eq(H->arg_str(&c, 2, &s, &n), -EINVAL);
	ck_assert_int_eq(H->arg_str(&c, 12, &s, &n), -ERANGE);
	ck_assert_int_eq(H->arg_str(&c, 11, &s, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_nonnull(s); /* empty, but never NULL */

	ck_assert_int_eq(H->arg_bytes(&c, 6, &p, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(H->arg_bytes(&c, 7, &p, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(memcmp(p, "\0b", 2), 0);
	ck_assert_int_eq(H->arg_bytes(&c, 8, &p, &n), -EINVAL);
	ck_assert_int_eq(H->arg_bytes(&c, 10, &p, &n), -EINVAL); /* ext is not bytes */
	ck_assert_int_eq(H->arg_bytes(&c, 12, &p, &n), -ERANGE);

	call_fini(&c);
	pb_free(&b);
}
END_TEST

START_TEST(test_arg_msgpack)
{
	const void *p[12];
	size_t n[12];
	lmms_call c;
	pbuild b;

	call_init(&c, build_mixed(&b), 0, "t");
	/* Fetch all first: earlier pointers must survive later calls. */
	for (size_t i = 0; i < 12; i++)
		ck_assert_int_eq(H->arg_msgpack(&c, i, &p[i], &n[i]), 0);
	for (size_t i = 0; i < 12; i++) {
		msgpack_sbuffer sb;
		msgpack_packer pk;

		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_object(&pk, c.args[i]);
		ck_assert_uint_eq(n[i], sb.size);
		ck_assert_int_eq(memcmp(p[i], sb.data, sb.size), 0);
		msgpack_sbuffer_destroy(&sb);
	}
	ck_assert_int_eq(H->arg_msgpack(&c, 12, &p[0], &n[0]), -ERANGE);
	call_fini(&c);
	pb_free(&b);
}
END_TEST

/* With the wire bytes given (as dispatch does), arg_msgpack hands out slices
 * of them, byte-identical to the re-encoded form for a canonical encoding,
 * and ret_msgpack passes such a slice through. */
START_TEST(test_arg_msgpack_wire)
{
	const void *p[12];
	size_t n[12];
	lmms_call c, ref;
	pbuild b;
	result res;

	call_init(&c, build_mixed(&b), 0, "t");
	call_set_wire(&c, b.sb.data, b.sb.size, 32);
	call_init(&ref, &b.up.data, 0, "t");
	for (size_t i = 0; i < 12; i++) {
		const void *rp;
		size_t rn;

		ck_assert_int_eq(H->arg_msgpack(&c, i, &p[i], &n[i]), 0);
		ck_assert((const char *)p[i] >= b.sb.data &&
			  (const char *)p[i] < b.sb.data + b.sb.size);
		ck_assert_int_eq(H->arg_msgpack(&ref, i, &rp, &rn), 0);
		ck_assert_uint_eq(n[i], rn);
		ck_assert_int_eq(memcmp(p[i], rp, rn), 0);
	}
	ck_assert_int_eq(H->arg_msgpack(&c, 12, &p[0], &n[0]), -ERANGE);
	/* echo: every argument back in an array, through the unchecked path */
	ck_assert_int_eq(H->ret_array(&c, 12), 0);
	for (size_t i = 0; i < 12; i++) {
		ck_assert_int_eq(H->arg_msgpack(&c, i, &p[i], &n[i]), 0);
		ck_assert_int_eq(H->ret_msgpack(&c, p[i], n[i]), 0);
	}
	ck_assert_ptr_nonnull(result_take(&c, &res));
	/* the result is the params array itself */
	ck_assert_uint_eq(res.len, b.sb.size);
	ck_assert_int_eq(memcmp(res.bytes, b.sb.data, b.sb.size), 0);
	result_free(&res);
	call_fini(&c);
	call_fini(&ref);
	pb_free(&b);
}
END_TEST

/* A slice is still checked when the result has no room left for its depth. */
START_TEST(test_arg_msgpack_wire_depth)
{
	lmms_call c;
	pbuild b;
	msgpack_packer *pk = pb_begin(&b, 1);
	const void *p;
	size_t n;

	/* one argument nested 3 deep: [[[1]]] */
	msgpack_pack_array(pk, 1);
	msgpack_pack_array(pk, 1);
	msgpack_pack_array(pk, 1);
	msgpack_pack_int(pk, 1);
	call_init(&c, pb_end(&b), 0, "t");
	call_set_wire(&c, b.sb.data, b.sb.size, 32);
	ck_assert_int_eq(H->arg_msgpack(&c, 0, &p, &n), 0);
	for (int i = 0; i < CALL_MAX_RESULT_DEPTH - 3; i++)
		ck_assert_int_eq(H->ret_array(&c, 1), 0);
	ck_assert_int_eq(H->ret_msgpack(&c, p, n), -ELOOP);
	call_fini(&c);
	pb_free(&b);
}
END_TEST

START_TEST(test_no_params)
{
	const void *p;
	size_t n;
	int64_t v;
	lmms_call c;

	call_init(&c, NULL, 0, "t");
	ck_assert_uint_eq(H->arg_count(&c), 0);
	ck_assert_int_eq(H->arg_type(&c, 0), LMMS_T_NONE);
	ck_assert_int_eq(H->arg_int(&c, 0, &v), -ERANGE);
	ck_assert_int_eq(H->arg_msgpack(&c, 0, &p, &n), -ERANGE);
	call_fini(&c);
	call_fini(&c); /* twice is fine */
}
END_TEST

/* ---- results --------------------------------------------------------------- */

START_TEST(test_ret_scalars)
{
	static const char bin[] = { 0, 1, 2, (char)0xff };
	const msgpack_object *o;
	const char *msg = "unset";
	lmms_call c;
	result r;

	/* Each scalar type once, inside an array so one call can hold them. */
	call_init(&c, NULL, 0, "t");
	ck_assert_int_eq(H->ret_array(&c, 8), 0);
	ck_assert_int_eq(H->ret_nil(&c), 0);
	ck_assert_int_eq(H->ret_bool(&c, 7), 0);
	ck_assert_int_eq(H->ret_int(&c, INT64_MIN), 0);
	ck_assert_int_eq(H->ret_uint(&c, UINT64_MAX), 0);
	ck_assert_int_eq(H->ret_double(&c, -0.25), 0);
	ck_assert_int_eq(H->ret_str(&c, "héllo", strlen("héllo")), 0);
	ck_assert_int_eq(H->ret_bin(&c, bin, sizeof(bin)), 0);
	ck_assert_int_eq(H->ret_str(&c, NULL, 0), 0);
	ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_OK);
	ck_assert_ptr_null(msg);

	o = result_take(&c, &r);
	ck_assert_int_eq(o->type, MSGPACK_OBJECT_ARRAY);
	ck_assert_uint_eq(o->via.array.size, 8);
	o = o->via.array.ptr;
	ck_assert_int_eq(o[0].type, MSGPACK_OBJECT_NIL);
	ck_assert_int_eq(o[1].type, MSGPACK_OBJECT_BOOLEAN);
	ck_assert(o[1].via.boolean);
	ck_assert_int_eq(o[2].type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
	ck_assert(o[2].via.i64 == INT64_MIN);
	ck_assert_int_eq(o[3].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	ck_assert(o[3].via.u64 == UINT64_MAX);
	ck_assert(o[4].via.f64 == -0.25);
	ck_assert_int_eq(o[5].type, MSGPACK_OBJECT_STR);
	ck_assert_uint_eq(o[5].via.str.size, strlen("héllo"));
	ck_assert_int_eq(o[6].type, MSGPACK_OBJECT_BIN);
	ck_assert_uint_eq(o[6].via.bin.size, 4);
	ck_assert_int_eq(memcmp(o[6].via.bin.ptr, bin, 4), 0);
	ck_assert_int_eq(o[7].type, MSGPACK_OBJECT_STR);
	ck_assert_uint_eq(o[7].via.str.size, 0);

	/* Ownership moved: the call holds nothing any more. */
	ck_assert_ptr_null(c.out.data);
	ck_assert_uint_eq(c.out.size, 0);
	call_fini(&c);
	result_free(&r);
}
END_TEST

START_TEST(test_ret_invalid_args)
{
	const char *msg;
	lmms_call c;

	call_init(&c, NULL, 0, "t");
	ck_assert_int_eq(H->ret_str(&c, NULL, 3), -EINVAL);
	/* Sticky: nothing written after a bad call counts. */
	ck_assert_int_lt(H->ret_int(&c, 1), 0);
	ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_E_MODULE_ERROR);
	ck_assert_ptr_nonnull(msg);
	call_fini(&c);
}
END_TEST

START_TEST(test_one_value_rule)
{
	const char *msg;
	lmms_call c;

	call_init(&c, NULL, 0, "t");
	ck_assert_int_eq(H->ret_int(&c, 1), 0);
	ck_assert_int_lt(H->ret_int(&c, 2), 0);
	ck_assert_int_lt(H->ret_nil(&c), 0); /* sticky */
	ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_E_MODULE_ERROR);
	ck_assert_ptr_nonnull(strstr(msg, "more than one"));
	call_fini(&c);

	/* A completed container is the one value too. */
	call_init(&c, NULL, 0, "t");
	ck_assert_int_eq(H->ret_array(&c, 0), 0);
	ck_assert_int_lt(H->ret_array(&c, 0), 0);
	ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_E_MODULE_ERROR);
	call_fini(&c);
}
END_TEST

START_TEST(test_containers)
{
	const msgpack_object *o, *m;
	const char *msg;
	lmms_call c;
	result r;

	/* [1, {"k": nil, "e": []}, []] */
	call_init(&c, NULL, 0, "t");
	ck_assert_int_eq(H->ret_array(&c, 3), 0);
	ck_assert_int_eq(H->ret_int(&c, 1), 0);
	ck_assert_int_eq(H->ret_map(&c, 2), 0);
	ck_assert_int_eq(H->ret_str(&c, "k", 1), 0);
	ck_assert_int_eq(H->ret_nil(&c), 0);
	ck_assert_int_eq(H->ret_str(&c, "e", 1), 0);
	ck_assert_int_eq(H->ret_array(&c, 0), 0);
	ck_assert_uint_eq(c.depth, 1);
	ck_assert_int_eq(H->ret_array(&c, 0), 0);
	ck_assert_uint_eq(c.depth, 0);
	ck_assert_int_lt(H->ret_nil(&c), 0); /* the array is complete */
	call_fini(&c);

	call_init(&c, NULL, 0, "t");
	ck_assert_int_eq(H->ret_array(&c, 3), 0);
	ck_assert_int_eq(H->ret_int(&c, 1), 0);
	ck_assert_int_eq(H->ret_map(&c, 2), 0);
	ck_assert_int_eq(H->ret_str(&c, "k", 1), 0);
	ck_assert_int_eq(H->ret_nil(&c), 0);
	ck_assert_int_eq(H->ret_str(&c, "e", 1), 0);
	ck_assert_int_eq(H->ret_array(&c, 0), 0);
	ck_assert_int_eq(H->ret_array(&c, 0), 0);
	ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_OK);
	o = result_take(&c, &r);
	ck_assert_uint_eq(o->via.array.size, 3);
	m = &o->via.array.ptr[1];
	ck_assert_int_eq(m->type, MSGPACK_OBJECT_MAP);
	ck_assert_uint_eq(m->via.map.size, 2);
	ck_assert_int_eq(m->via.map.ptr[0].val.type, MSGPACK_OBJECT_NIL);
	ck_assert_int_eq(m->via.map.ptr[1].val.type, MSGPACK_OBJECT_ARRAY);
	ck_assert_int_eq(o->via.array.ptr[2].type, MSGPACK_OBJECT_ARRAY);
	result_free(&r);
	call_fini(&c);
}
END_TEST

START_TEST(test_incomplete)
{
	const char *msg;
	lmms_call c;

	call_init(&c, NULL, 0, "t");
	ck_assert_int_eq(H->ret_array(&c, 3), 0);
	ck_assert_int_eq(H->ret_int(&c, 1), 0);
	ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_E_MODULE_ERROR);
	ck_assert_ptr_nonnull(strstr(msg, "incomplete"));
	call_fini(&c);

	/* A map owes two values per entry. */
	call_init(&c, NULL, 0, "t");
	ck_assert_int_eq(H->ret_map(&c, 1), 0);
	ck_assert_int_eq(H->ret_str(&c, "k", 1), 0);
	ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_E_MODULE_ERROR);
	call_fini(&c);

	call_init(&c, NULL, 0, "t");
	ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_E_MODULE_ERROR);
	ck_assert_ptr_nonnull(strstr(msg, "no result"));
	call_fini(&c);
}
END_TEST

START_TEST(test_depth)
{
	const int levels = CALL_MAX_RESULT_DEPTH - 1; /* the response array is one more */
	const char *msg;
	lmms_call c;
	result r;

	/* levels - 1 non-empty containers and an empty one at the bottom... */
	call_init(&c, NULL, 0, "t");
	for (int i = 0; i < levels - 1; i++)
		ck_assert_int_eq(H->ret_array(&c, 1), 0);
	ck_assert_int_eq(H->ret_map(&c, 0), 0);
	ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_OK);
	/* ...is the deepest result that still fits inside a response. */
	result_take(&c, &r);
	{
		msgpack_sbuffer sb;
		msgpack_packer pk;
		msgpack_unpacked up;
		proto_limits lim;
		proto_scan sc;

		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		ck_assert_int_eq(proto_pack_response_ok(&pk, 1), 0);
		msgpack_sbuffer_write(&sb, r.bytes, r.len);
		proto_limits_default(&lim);
		proto_scan_reset(&sc);
		ck_assert_int_eq(proto_scan_feed(&sc, &lim, sb.data, sb.size), PROTO_SCAN_DONE);
		msgpack_unpacked_init(&up);
		ck_assert_int_eq(msgpack_unpack_next(&up, sb.data, sb.size, NULL),
				 MSGPACK_UNPACK_SUCCESS);
		msgpack_unpacked_destroy(&up);
		msgpack_sbuffer_destroy(&sb);
	}
	result_free(&r);
	call_fini(&c);

	call_init(&c, NULL, 0, "t");
	for (int i = 0; i < levels; i++)
		ck_assert_int_eq(H->ret_array(&c, 1), 0);
	ck_assert_int_eq(H->ret_int(&c, 1), 0);
	ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_OK);
	call_fini(&c);

	/* One more level is refused, empty or not. */
	call_init(&c, NULL, 0, "t");
	for (int i = 0; i < levels; i++)
		ck_assert_int_eq(H->ret_array(&c, 1), 0);
	ck_assert_int_eq(H->ret_array(&c, 0), -ELOOP);
	ck_assert_int_lt(H->ret_int(&c, 1), 0);
	ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_E_MODULE_ERROR);
	ck_assert_ptr_nonnull(strstr(msg, "deep"));
	call_fini(&c);

	/* ret_msgpack counts the levels inside the bytes it appends. */
	{
		char deep[64];

		memset(deep, 0x91, sizeof(deep)); /* fixarray of 1, nested */
		call_init(&c, NULL, 0, "t");
		ck_assert_int_eq(H->ret_array(&c, 1), 0);
		deep[levels - 1] = (char)0xc0; /* levels - 1 arrays + nil: fits */
		ck_assert_int_eq(H->ret_msgpack(&c, deep, (size_t)levels), 0);
		ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_OK);
		call_fini(&c);

		call_init(&c, NULL, 0, "t");
		ck_assert_int_eq(H->ret_array(&c, 1), 0);
		deep[levels - 1] = (char)0x91;
		deep[levels] = (char)0xc0; /* one array more: too deep */
		ck_assert_int_eq(H->ret_msgpack(&c, deep, (size_t)levels + 1), -ELOOP);
		ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_E_MODULE_ERROR);
		call_fini(&c);
	}
}
END_TEST

START_TEST(test_size_limit)
{
	char big[100];
	const char *msg;
	lmms_call c;

	memset(big, 'x', sizeof(big));
	call_init(&c, NULL, 64, "t");
	ck_assert_int_eq(H->ret_str(&c, big, sizeof(big)), -E2BIG);
	ck_assert_int_eq(H->ret_nil(&c), -E2BIG); /* sticky */
	ck_assert_uint_le(c.out.size, 64);
	ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_E_TOO_LARGE);
	ck_assert_ptr_nonnull(strstr(msg, "64"));
	call_fini(&c);

	/* Cumulative: many small values add up. */
	call_init(&c, NULL, 64, "t");
	ck_assert_int_eq(H->ret_array(&c, 40), 0);
	int r = 0;
	for (int i = 0; i < 40 && r == 0; i++)
		r = H->ret_str(&c, "abcd", 4);
	ck_assert_int_eq(r, -E2BIG);
	ck_assert_int_eq(call_finish(&c, -1, &msg), PROTO_E_TOO_LARGE);
	call_fini(&c);

	/* A container count that can never fit is refused up front. */
	call_init(&c, NULL, 64, "t");
	ck_assert_int_eq(H->ret_array(&c, 1000), -E2BIG);
	ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_E_TOO_LARGE);
	call_fini(&c);

	call_init(&c, NULL, 64, "t");
	ck_assert_int_eq(H->ret_map(&c, UINT32_MAX), -E2BIG);
	call_fini(&c);

	/* Exactly at the limit is fine: bin8 header (2) + 62 bytes. */
	call_init(&c, NULL, 64, "t");
	ck_assert_int_eq(H->ret_bin(&c, big, 62), 0);
	ck_assert_uint_eq(c.out.size, 64);
	ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_OK);
	call_fini(&c);
}
END_TEST

START_TEST(test_fail_classes)
{
	const char *msg;
	lmms_call c;

	call_init(&c, NULL, 0, "t");
	ck_assert_int_lt(H->fail(&c, LMMS_FAIL_PARAMS, "want %d args", 2), 0);
	ck_assert_int_eq(call_finish(&c, -1, &msg), PROTO_E_BAD_PARAMS);
	ck_assert_str_eq(msg, "want 2 args");
	call_fini(&c);

	call_init(&c, NULL, 0, "t");
	ck_assert_int_lt(H->fail(&c, LMMS_FAIL_MODULE, "disk %s", "on fire"), 0);
	ck_assert_int_eq(call_finish(&c, -1, &msg), PROTO_E_MODULE_ERROR);
	ck_assert_str_eq(msg, "disk on fire");
	call_fini(&c);

	/* The first failure is kept; an unknown class counts as module_error. */
	call_init(&c, NULL, 0, "t");
	H->fail(&c, (lmms_fail_class)42, "first");
	H->fail(&c, LMMS_FAIL_PARAMS, "second");
	ck_assert_int_eq(call_finish(&c, -1, &msg), PROTO_E_MODULE_ERROR);
	ck_assert_str_eq(msg, "first");
	call_fini(&c);

	/* fail() after writing a value still fails the call. */
	call_init(&c, NULL, 0, "t");
	ck_assert_int_eq(H->ret_int(&c, 1), 0);
	H->fail(&c, LMMS_FAIL_MODULE, "changed my mind");
	ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_E_MODULE_ERROR);
	call_fini(&c);

	/* rc < 0 without fail(): module_error with a generic message. */
	call_init(&c, NULL, 0, "t");
	ck_assert_int_eq(call_finish(&c, -5, &msg), PROTO_E_MODULE_ERROR);
	ck_assert_ptr_nonnull(msg);
	ck_assert_int_gt(strlen(msg), 0);
	call_fini(&c);

	/* rc < 0 wins over a complete value. */
	call_init(&c, NULL, 0, "t");
	ck_assert_int_eq(H->ret_int(&c, 1), 0);
	ck_assert_int_eq(call_finish(&c, -1, &msg), PROTO_E_MODULE_ERROR);
	call_fini(&c);
}
END_TEST

START_TEST(test_fail_truncation)
{
	char longmsg[1000];
	const char *msg;
	lmms_call c;
	size_t len;

	/* "é" is two bytes: an odd prefix length forces a cut inside one. */
	memset(longmsg, 0, sizeof(longmsg));
	longmsg[0] = 'x';
	longmsg[1] = 'y';
	for (size_t i = 2; i + 2 < sizeof(longmsg); i += 2)
		memcpy(longmsg + i, "é", 2);
	call_init(&c, NULL, 0, "t");
	H->fail(&c, LMMS_FAIL_MODULE, "%s", longmsg);
	call_finish(&c, -1, &msg);
	len = strlen(msg);
	ck_assert_uint_lt(len, CALL_FAIL_MSG_MAX);
	ck_assert_uint_ge(len, CALL_FAIL_MSG_MAX - 3);
	/* Never ends in half a character. */
	ck_assert_int_eq(memcmp(msg + len - 2, "é", 2), 0);
	call_fini(&c);

	call_init(&c, NULL, 0, "t");
	H->fail(&c, LMMS_FAIL_MODULE, NULL);
	ck_assert_int_eq(call_finish(&c, -1, &msg), PROTO_E_MODULE_ERROR);
	ck_assert_int_gt(strlen(msg), 0);
	call_fini(&c);
}
END_TEST

static size_t pack_into(char *buf, size_t cap, void (*fn)(msgpack_packer *))
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t n;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	fn(&pk);
	ck_assert_uint_le(sb.size, cap);
	memcpy(buf, sb.data, sb.size);
	n = sb.size;
	msgpack_sbuffer_destroy(&sb);
	return n;
}

static void pack_sample(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 2);
	msgpack_pack_str_with_body(pk, "a", 1);
	msgpack_pack_array(pk, 3);
	msgpack_pack_int(pk, 1);
	msgpack_pack_double(pk, 2.5);
	msgpack_pack_bin_with_body(pk, "zz", 2);
	msgpack_pack_str_with_body(pk, "b", 1);
	msgpack_pack_ext_with_body(pk, "12345678", 8, 1);
}

START_TEST(test_ret_msgpack)
{
	char good[128], buf[256];
	const msgpack_object *o;
	const char *msg;
	size_t n;
	lmms_call c;
	result r;

	n = pack_into(good, sizeof(good), pack_sample);

	call_init(&c, NULL, 0, "t");
	ck_assert_int_eq(H->ret_msgpack(&c, good, n), 0);
	ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_OK);
	o = result_take(&c, &r);
	ck_assert_int_eq(o->type, MSGPACK_OBJECT_MAP);
	ck_assert_uint_eq(r.len, n);
	ck_assert_int_eq(memcmp(r.bytes, good, n), 0);
	result_free(&r);
	call_fini(&c);

	/* As elements of a container. */
	call_init(&c, NULL, 0, "t");
	ck_assert_int_eq(H->ret_array(&c, 2), 0);
	ck_assert_int_eq(H->ret_msgpack(&c, good, n), 0);
	ck_assert_int_eq(H->ret_msgpack(&c, "\xc0", 1), 0);
	ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_OK);
	call_fini(&c);

	/* Every strict prefix is incomplete. */
	for (size_t k = 1; k < n; k++) {
		call_init(&c, NULL, 0, "t");
		ck_assert_int_lt(H->ret_msgpack(&c, good, k), 0);
		ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_E_MODULE_ERROR);
		call_fini(&c);
	}

	/* Trailing bytes (two values) are refused. */
	memcpy(buf, good, n);
	buf[n] = (char)0xc0;
	call_init(&c, NULL, 0, "t");
	ck_assert_int_lt(H->ret_msgpack(&c, buf, n + 1), 0);
	ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_E_MODULE_ERROR);
	ck_assert_ptr_nonnull(strstr(msg, "malformed"));
	call_fini(&c);

	/* The never-used byte, a lying array32 count, a lying str32 length. */
	static const struct {
		const char *p;
		size_t n;
	} bad[] = {
		{ "\xc1", 1 },
		{ "\xdd\xff\xff\xff\xff\xc0", 6 },
		{ "\xdf\x7f\xff\xff\xff\xc0\xc0", 7 },
		{ "\xdb\xff\xff\xff\xf0" "abc", 8 },
		{ "\xc7\x05\x01" "ab", 5 },
		{ "\x92\x01", 2 },
		{ "", 0 },
	};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		call_init(&c, NULL, 0, "t");
		ck_assert_int_lt(H->ret_msgpack(&c, bad[k].p, bad[k].n), 0);
		ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_E_MODULE_ERROR);
		ck_assert_uint_eq(c.out.size, 0); /* nothing was appended */
		call_fini(&c);
	}

	/* Valid bytes that exceed the budget: too_large. */
	call_init(&c, NULL, 8, "t");
	ck_assert_int_eq(H->ret_msgpack(&c, good, n), -E2BIG);
	ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_E_TOO_LARGE);
	call_fini(&c);

	/* fixext and float forms are accepted. */
	call_init(&c, NULL, 0, "t");
	ck_assert_int_eq(H->ret_array(&c, 3), 0);
	ck_assert_int_eq(H->ret_msgpack(&c, "\xd4\x01\x02", 3), 0);
	ck_assert_int_eq(H->ret_msgpack(&c, "\xcb\0\0\0\0\0\0\0\0", 9), 0);
	ck_assert_int_eq(H->ret_msgpack(&c, "\xa3" "abc", 4), 0);
	ck_assert_int_eq(call_finish(&c, 0, &msg), PROTO_OK);
	call_fini(&c);
}
END_TEST

START_TEST(test_take_result_empty)
{
	lmms_call c;
	size_t n = 99;

	call_init(&c, NULL, 0, "t");
	ck_assert_ptr_null(call_take_result(&c, &n));
	ck_assert_uint_eq(n, 0);
	call_fini(&c);
}
END_TEST

START_TEST(test_now_ms)
{
	uint64_t a = H->now_ms(), b;

	usleep(30 * 1000);
	b = H->now_ms();
	ck_assert_uint_ge(b, a + 25);
	ck_assert_uint_lt(b, a + 5000);
}
END_TEST

START_TEST(test_log)
{
	char buf[4096];
	FILE *tmp = tmpfile();
	int saved = dup(2);
	lmms_call c;
	size_t n;

	ck_assert_ptr_nonnull(tmp);
	ck_assert_int_ge(saved, 0);
	fflush(stderr);
	dup2(fileno(tmp), 2);
	call_init(&c, NULL, 0, "echo");
	H->log(&c, LMMS_LOG_INFO, "hello %s\nforged line", "world");
	H->log(NULL, LMMS_LOG_ERR, "no call");
	H->log(&c, LMMS_LOG_INFO, NULL);
	H->log(&c, LMMS_LOG_DEBUG, "below the log level");
	call_fini(&c);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);

	rewind(tmp);
	n = fread(buf, 1, sizeof(buf) - 1, tmp);
	buf[n] = '\0';
	fclose(tmp);
	/* through the daemon's log: its timestamp, the module's level, a prefix
	 * naming the module, and the log_level filter (info by default) */
	ck_assert_ptr_nonnull(strstr(buf, " lmmsd info: module echo: hello world forged line\n"));
	ck_assert_ptr_nonnull(strstr(buf, " lmmsd error: module ?: no call\n"));
	ck_assert_ptr_null(strstr(buf, "below the log level"));
	/* Exactly two lines: the newline was not passed through. */
	n = 0;
	for (char *s = buf; *s; s++)
		n += *s == '\n';
	ck_assert_uint_eq(n, 2);
}
END_TEST

static Suite *call_suite(void)
{
	Suite *s = suite_create("call");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_host_table);
	tcase_add_test(tc, test_arg_types);
	tcase_add_test(tc, test_arg_getters);
	tcase_add_test(tc, test_arg_msgpack);
	tcase_add_test(tc, test_arg_msgpack_wire);
	tcase_add_test(tc, test_arg_msgpack_wire_depth);
	tcase_add_test(tc, test_no_params);
	tcase_add_test(tc, test_ret_scalars);
	tcase_add_test(tc, test_ret_invalid_args);
	tcase_add_test(tc, test_one_value_rule);
	tcase_add_test(tc, test_containers);
	tcase_add_test(tc, test_incomplete);
	tcase_add_test(tc, test_depth);
	tcase_add_test(tc, test_size_limit);
	tcase_add_test(tc, test_fail_classes);
	tcase_add_test(tc, test_fail_truncation);
	tcase_add_test(tc, test_ret_msgpack);
	tcase_add_test(tc, test_take_result_empty);
	tcase_add_test(tc, test_now_ms);
	tcase_add_test(tc, test_log);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(call_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
