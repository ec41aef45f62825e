/*
 * test-hmap.c - the daemon's open-addressing hash map: basic operations,
 * limits, growth, and that put/del churn does not grow the table (tombstones
 * are reclaimed by rehashing at the same size).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "util.h"

#define NKEYS 4096

/* Keys are not copied by the map: they live here for the whole test. */
static char keys[NKEYS][16];

static void make_keys(void)
{
	for (int i = 0; i < NKEYS; i++)
		snprintf(keys[i], sizeof(keys[i]), "key-%d", i);
}

static int put(hmap *m, int i)
{
	return hmap_put(m, keys[i], strlen(keys[i]), &keys[i]);
}

static void *get(const hmap *m, int i)
{
	return hmap_get(m, keys[i], strlen(keys[i]));
}

static void *del(hmap *m, int i)
{
	return hmap_del(m, keys[i], strlen(keys[i]));
}

START_TEST(empty_map)
{
	hmap m;

	hmap_init(&m, 0);
	ck_assert_ptr_null(hmap_get(&m, "x", 1));
	ck_assert_ptr_null(hmap_del(&m, "x", 1));
	ck_assert_uint_eq(m.used, 0);
	hmap_fini(&m);
	ck_assert_ptr_null(m.slots);
}
END_TEST

START_TEST(put_get_del)
{
	hmap m;
	static int v1 = 1, v2 = 2;

	hmap_init(&m, 0);
	ck_assert_int_eq(hmap_put(&m, "alpha", 5, &v1), 0);
	ck_assert_int_eq(hmap_put(&m, "beta", 4, &v2), 0);
	ck_assert_uint_eq(m.used, 2);
	ck_assert_ptr_eq(hmap_get(&m, "alpha", 5), &v1);
	ck_assert_ptr_eq(hmap_get(&m, "beta", 4), &v2);
	/* lengths matter, not NUL termination */
	ck_assert_ptr_null(hmap_get(&m, "alph", 4));
	ck_assert_ptr_eq(hmap_get(&m, "betamax", 4), &v2);
	ck_assert_ptr_eq(hmap_get_h(&m, "alpha", 5, hmap_hash("alpha", 5)), &v1);

	ck_assert_int_eq(hmap_put(&m, "alpha", 5, &v2), -EEXIST);
	ck_assert_ptr_eq(hmap_get(&m, "alpha", 5), &v1);

	ck_assert_ptr_eq(hmap_del(&m, "alpha", 5), &v1);
	ck_assert_ptr_null(hmap_get(&m, "alpha", 5));
	ck_assert_ptr_null(hmap_del(&m, "alpha", 5));
	ck_assert_ptr_eq(hmap_get(&m, "beta", 4), &v2);
	ck_assert_uint_eq(m.used, 1);
	/* a removed key can be put again */
	ck_assert_int_eq(hmap_put(&m, "alpha", 5, &v2), 0);
	ck_assert_ptr_eq(hmap_get(&m, "alpha", 5), &v2);
	/* the empty key is a key like any other */
	ck_assert_int_eq(hmap_put(&m, "", 0, &v1), 0);
	ck_assert_ptr_eq(hmap_get(&m, "", 0), &v1);
	hmap_fini(&m);
}
END_TEST

START_TEST(max_entries)
{
	hmap m;

	hmap_init(&m, 10);
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(put(&m, i), 0);
	ck_assert_int_eq(put(&m, 10), -ENOSPC);
	ck_assert_ptr_null(get(&m, 10));
	/* a duplicate is still reported as such when full */
	ck_assert_int_eq(put(&m, 3), -EEXIST);
	ck_assert_ptr_eq(del(&m, 3), &keys[3]);
	ck_assert_int_eq(put(&m, 10), 0);
	ck_assert_int_eq(put(&m, 11), -ENOSPC);
	ck_assert_uint_eq(m.used, 10);
	hmap_fini(&m);
}
END_TEST

START_TEST(growth_keeps_everything)
{
	hmap m;
	uint32_t cap_small;

	make_keys();
	hmap_init(&m, 0);
	ck_assert_int_eq(put(&m, 0), 0);
	cap_small = m.cap;
	for (int i = 1; i < NKEYS; i++)
		ck_assert_int_eq(put(&m, i), 0);
	ck_assert_uint_gt(m.cap, cap_small);
	ck_assert_uint_ge(m.cap, 2 * NKEYS); /* grows at 50% load */
	ck_assert_uint_eq(m.cap & (m.cap - 1), 0);
	ck_assert_uint_eq(m.used, NKEYS);
	for (int i = 0; i < NKEYS; i++)
		ck_assert_ptr_eq(get(&m, i), &keys[i]);
	ck_assert_ptr_null(hmap_get(&m, "key-4096", 8));
	/* delete every other key: the rest stay reachable past the tombstones */
	for (int i = 0; i < NKEYS; i += 2)
		ck_assert_ptr_eq(del(&m, i), &keys[i]);
	for (int i = 0; i < NKEYS; i++)
		ck_assert_ptr_eq(get(&m, i), i % 2 ? &keys[i] : NULL);
	ck_assert_uint_eq(m.used, NKEYS / 2);
	hmap_fini(&m);
}
END_TEST

START_TEST(churn_stays_bounded)
{
	hmap m;
	uint32_t cap_after_fill;

	make_keys();
	hmap_init(&m, 0);
	for (int i = 0; i < 64; i++)
		ck_assert_int_eq(put(&m, i), 0);
	cap_after_fill = m.cap;
	/* Each cycle replaces one of 64 live keys by a fresh one, as the fast
	 * path and cache tables do: tombstones pile up unless reclaimed. */
	for (int cycle = 0; cycle < 100000; cycle++) {
		int out = cycle % NKEYS, in = (cycle + 64) % NKEYS;

		ck_assert_ptr_eq(del(&m, out), &keys[out]);
		ck_assert_int_eq(put(&m, in), 0);
		ck_assert_uint_le(m.cap, 4 * cap_after_fill);
		ck_assert_uint_lt(m.filled, m.cap);
	}
	ck_assert_uint_eq(m.used, 64);
	ck_assert_uint_le(m.cap, 256);
	for (int i = 0; i < 64; i++) {
		int k = (100000 + i) % NKEYS;

		ck_assert_ptr_eq(get(&m, k), &keys[k]);
	}
	hmap_fini(&m);
}
END_TEST

START_TEST(churn_same_keys)
{
	hmap m;

	make_keys();
	hmap_init(&m, 64);
	for (int i = 0; i < 64; i++)
		ck_assert_int_eq(put(&m, i), 0);
	for (int cycle = 0; cycle < 100000; cycle++) {
		int k = (cycle * 7) % 64;

		ck_assert_ptr_eq(del(&m, k), &keys[k]);
		ck_assert_int_eq(put(&m, k), 0);
	}
	ck_assert_uint_le(m.cap, 256);
	ck_assert_uint_eq(m.used, 64);
	hmap_fini(&m);
}
END_TEST

static Suite *hmap_suite(void)
{
	Suite *s = suite_create("hmap");
	TCase *tc = tcase_create("hmap");

	tcase_add_test(tc, empty_map);
	tcase_add_test(tc, put_get_del);
	tcase_add_test(tc, max_entries);
	tcase_add_test(tc, growth_keeps_everything);
	tcase_add_test(tc, churn_stays_bounded);
	tcase_add_test(tc, churn_same_keys);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	make_keys();
	return tu_run(hmap_suite());
}
