/*
 * test-reply.c - the self-counting reply builder (daemon/reply.c) alone:
 * container headers chosen exactly as msgpack-c chooses them (compared byte
 * for byte with msgpack_pack_map/array at every size boundary), scalars,
 * nesting, and every way a value can fail (unbalanced or crossed ends, a
 * dangling map key, too deep, too many or no top-level values, an oversized
 * string) with the first failure kept.
 */
#include <check.h>
#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reply.h"
#include "util.h"

static reply r;
static msgpack_sbuffer want;
static msgpack_packer pk;

static void setup(void)
{
	reply_init(&r);
	msgpack_sbuffer_init(&want);
	msgpack_packer_init(&pk, &want, msgpack_sbuffer_write);
}

static void teardown(void)
{
	reply_fini(&r);
	msgpack_sbuffer_destroy(&want);
}

/* r finished and holds exactly what msgpack-c packed into want. */
static void expect_same(void)
{
	ck_assert_int_eq(reply_finish(&r), 0);
	ck_assert_uint_eq(r.buf.len, want.size);
	ck_assert_msg(memcmp(r.buf.data, want.data, want.size) == 0,
		      "reply bytes differ from msgpack-c's");
}

static const uint32_t sizes[] = { 0, 1, 15, 16, 17, 65535, 65536, 70000 };

START_TEST(array_headers_match_msgpack_c)
{
	uint32_t n = sizes[_i];

	reply_array_begin(&r);
	for (uint32_t i = 0; i < n; i++)
		reply_u64(&r, i & 0x7f);
	reply_array_end(&r);
	msgpack_pack_array(&pk, n);
	for (uint32_t i = 0; i < n; i++)
		msgpack_pack_uint64(&pk, i & 0x7f);
	expect_same();
}
END_TEST

START_TEST(map_headers_match_msgpack_c)
{
	uint32_t n = sizes[_i];

	reply_map_begin(&r);
	for (uint32_t i = 0; i < n; i++) {
		reply_u64(&r, i);
		reply_nil(&r);
	}
	reply_map_end(&r);
	msgpack_pack_map(&pk, n);
	for (uint32_t i = 0; i < n; i++) {
		msgpack_pack_uint64(&pk, i);
		msgpack_pack_nil(&pk);
	}
	expect_same();
}
END_TEST

START_TEST(scalars_match_msgpack_c)
{
	static const char raw[] = { (char)0x92, 0x01, (char)0xa1, 'x' }; /* [1, "x"] */
	static const uint64_t u[] = { 0, 127, 128, 255, 256, 65535, 65536, UINT32_MAX,
				      (uint64_t)UINT32_MAX + 1, UINT64_MAX };
	static const int64_t s[] = { 0, -1, -32, -33, -128, -129, -32768, -32769, INT32_MIN,
				     (int64_t)INT32_MIN - 1, INT64_MIN, 5, INT64_MAX };
	char big[300];

	memset(big, 'b', sizeof(big));
	reply_array_begin(&r);
	msgpack_pack_array(&pk, 10 + ARRAY_SIZE(u) + ARRAY_SIZE(s));
	reply_nil(&r);
	msgpack_pack_nil(&pk);
	reply_bool(&r, true);
	msgpack_pack_true(&pk);
	reply_bool(&r, false);
	msgpack_pack_false(&pk);
	for (size_t i = 0; i < ARRAY_SIZE(u); i++) {
		reply_u64(&r, u[i]);
		msgpack_pack_uint64(&pk, u[i]);
	}
	for (size_t i = 0; i < ARRAY_SIZE(s); i++) {
		reply_i64(&r, s[i]);
		msgpack_pack_int64(&pk, s[i]);
	}
	reply_f64(&r, 0.25);
	msgpack_pack_double(&pk, 0.25);
	reply_str(&r, "pong");
	msgpack_pack_str_with_body(&pk, "pong", 4);
	reply_str(&r, NULL); /* NULL packs as "" */
	msgpack_pack_str_with_body(&pk, "", 0);
	reply_strn(&r, NULL, 0);
	msgpack_pack_str_with_body(&pk, "", 0);
	reply_strn(&r, big, sizeof(big)); /* str16 */
	msgpack_pack_str_with_body(&pk, big, sizeof(big));
	reply_strn(&r, big, 40); /* str8 */
	msgpack_pack_str_with_body(&pk, big, 40);
	reply_raw(&r, raw, sizeof(raw)); /* one value, however many bytes */
	msgpack_pack_array(&pk, 2);
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_str_with_body(&pk, "x", 1);
	reply_array_end(&r);
	expect_same();
}
END_TEST

START_TEST(kv_shorthands_are_key_then_value)
{
	reply_map_begin(&r);
	reply_kv_u64(&r, "u", 70000);
	reply_kv_i64(&r, "i", -5);
	reply_kv_str(&r, "s", "v");
	reply_kv_str(&r, "null", NULL);
	reply_kv_bool(&r, "b", true);
	reply_map_end(&r);
	msgpack_pack_map(&pk, 5);
	msgpack_pack_str_with_body(&pk, "u", 1);
	msgpack_pack_uint64(&pk, 70000);
	msgpack_pack_str_with_body(&pk, "i", 1);
	msgpack_pack_int64(&pk, -5);
	msgpack_pack_str_with_body(&pk, "s", 1);
	msgpack_pack_str_with_body(&pk, "v", 1);
	msgpack_pack_str_with_body(&pk, "null", 4);
	msgpack_pack_str_with_body(&pk, "", 0);
	msgpack_pack_str_with_body(&pk, "b", 1);
	msgpack_pack_true(&pk);
	expect_same();
}
END_TEST

/* Containers inside containers, each counted on its own, with sizes on
 * both sides of the fix/16-bit boundary at every level. */
START_TEST(nesting_counts_each_level)
{
	reply_map_begin(&r);
	msgpack_pack_map(&pk, 3);
	reply_str(&r, "empty");
	msgpack_pack_str_with_body(&pk, "empty", 5);
	reply_array_begin(&r);
	reply_array_end(&r);
	msgpack_pack_array(&pk, 0);

	reply_str(&r, "wide");
	msgpack_pack_str_with_body(&pk, "wide", 4);
	reply_array_begin(&r);
	msgpack_pack_array(&pk, 20);
	for (int i = 0; i < 20; i++) {
		reply_map_begin(&r);
		msgpack_pack_map(&pk, (size_t)i % 3);
		for (int j = 0; j < i % 3; j++) {
			reply_kv_u64(&r, "k", (uint64_t)j);
			msgpack_pack_str_with_body(&pk, "k", 1);
			msgpack_pack_uint64(&pk, (uint64_t)j);
		}
		reply_map_end(&r);
	}
	reply_array_end(&r);

	reply_str(&r, "deep");
	msgpack_pack_str_with_body(&pk, "deep", 4);
	/* the map is level 1: 15 more arrays reach REPLY_MAX_DEPTH */
	for (int i = 0; i < REPLY_MAX_DEPTH - 1; i++) {
		reply_array_begin(&r);
		msgpack_pack_array(&pk, 2);
		reply_u64(&r, (uint64_t)i);
		msgpack_pack_uint64(&pk, (uint64_t)i);
	}
	for (int i = 0; i < REPLY_MAX_DEPTH - 1; i++) {
		if (i == 0) {
			reply_nil(&r);
			msgpack_pack_nil(&pk);
		}
		reply_array_end(&r);
	}
	reply_map_end(&r);
	expect_same();
}
END_TEST

START_TEST(end_without_begin_fails)
{
	reply_array_end(&r);
	ck_assert_int_eq(reply_finish(&r), -EINVAL);
}
END_TEST

START_TEST(crossed_ends_fail)
{
	reply_map_begin(&r);
	reply_array_begin(&r);
	reply_map_end(&r); /* closes the array as a map */
	ck_assert_int_eq(reply_finish(&r), -EINVAL);
}
END_TEST

START_TEST(unclosed_container_fails)
{
	reply_array_begin(&r);
	reply_u64(&r, 1);
	ck_assert_int_eq(reply_finish(&r), -EINVAL);
}
END_TEST

START_TEST(odd_map_fails)
{
	reply_map_begin(&r);
	reply_kv_u64(&r, "a", 1);
	reply_str(&r, "dangling");
	reply_map_end(&r);
	ck_assert_int_eq(reply_finish(&r), -EINVAL);
}
END_TEST

START_TEST(too_deep_fails)
{
	for (int i = 0; i < REPLY_MAX_DEPTH; i++)
		reply_array_begin(&r);
	ck_assert_int_eq(r.err, 0); /* exactly the maximum is fine */
	reply_array_begin(&r);
	ck_assert_int_eq(r.err, -EINVAL);
	for (int i = 0; i < REPLY_MAX_DEPTH + 1; i++)
		reply_array_end(&r);
	ck_assert_int_eq(reply_finish(&r), -EINVAL);
}
END_TEST

START_TEST(top_level_must_be_one_value)
{
	ck_assert_int_eq(reply_finish(&r), -EINVAL); /* nothing */
	reply_fini(&r);
	reply_init(&r);
	reply_u64(&r, 1);
	reply_u64(&r, 2);
	ck_assert_int_eq(reply_finish(&r), -EINVAL);
}
END_TEST

START_TEST(oversized_string_fails)
{
	reply_map_begin(&r);
	reply_kv_u64(&r, "before", 1);
	reply_str(&r, "s");
	/* refused on its length, before a byte of it is read */
	reply_strn(&r, "x", (size_t)UINT32_MAX + 1);
	reply_map_end(&r);
	ck_assert_int_eq(reply_finish(&r), -E2BIG);
}
END_TEST

/* The first failure is kept, and nothing is written after it. */
START_TEST(error_is_sticky)
{
	size_t len;

	reply_array_begin(&r);
	reply_u64(&r, 1);
	reply_map_end(&r); /* crossed: -EINVAL */
	ck_assert_int_eq(r.err, -EINVAL);
	len = r.buf.len;
	reply_str(&r, "more");
	reply_map_begin(&r);
	reply_raw(&r, "\xc0", 1);
	reply_strn(&r, "x", (size_t)UINT32_MAX + 1); /* would be -E2BIG */
	reply_array_end(&r); /* would balance it again */
	ck_assert_uint_eq(r.buf.len, len);
	ck_assert_int_eq(reply_finish(&r), -EINVAL);
	ck_assert_int_eq(reply_finish(&r), -EINVAL);
}
END_TEST

START_TEST(fini_twice_is_harmless)
{
	reply_str(&r, "x");
	reply_fini(&r);
	ck_assert_ptr_null(r.buf.data);
	ck_assert_int_eq(r.err, 0);
	reply_fini(&r);
	/* usable again after reply_init */
	reply_init(&r);
	reply_bool(&r, true);
	msgpack_pack_true(&pk);
	expect_same();
}
END_TEST

static Suite *reply_suite(void)
{
	Suite *s = suite_create("reply");
	TCase *tc = tcase_create("reply");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, array_headers_match_msgpack_c, 0, ARRAY_SIZE(sizes));
	tcase_add_loop_test(tc, map_headers_match_msgpack_c, 0, ARRAY_SIZE(sizes));
	tcase_add_test(tc, scalars_match_msgpack_c);
	tcase_add_test(tc, kv_shorthands_are_key_then_value);
	tcase_add_test(tc, nesting_counts_each_level);
	tcase_add_test(tc, end_without_begin_fails);
	tcase_add_test(tc, crossed_ends_fail);
	tcase_add_test(tc, unclosed_container_fails);
	tcase_add_test(tc, odd_map_fails);
	tcase_add_test(tc, too_deep_fails);
	tcase_add_test(tc, top_level_must_be_one_value);
	tcase_add_test(tc, oversized_string_fails);
	tcase_add_test(tc, error_is_sticky);
	tcase_add_test(tc, fini_twice_is_harmless);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(reply_suite());
}
