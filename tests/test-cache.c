/*
 * test-cache.c - the result cache alone: hits and misses, TTL expiry at a
 * given time, LRU eviction under the byte and entry bounds, replacement,
 * invalidation by kind, module dependency accounting and the expiry heap.
 * Modules and ops are plain registry structs filled in by hand.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "registry.h"

static module mod_a, mod_b;
static op_info op_a1, op_a2, op_b1;
static cache c;

static void op_setup(op_info *op, module *m, const char *method)
{
	memset(op, 0, sizeof(*op));
	op->mod = m;
	op->method = (char *)method;
	op->method_len = (uint32_t)strlen(method);
	op->flags = LMMS_OP_PURE;
}

static void setup(void)
{
	memset(&mod_a, 0, sizeof(mod_a));
	memset(&mod_b, 0, sizeof(mod_b));
	strcpy(mod_a.name, "a");
	strcpy(mod_b.name, "b");
	op_setup(&op_a1, &mod_a, "a.one");
	op_setup(&op_a2, &mod_a, "a.two");
	op_setup(&op_b1, &mod_b, "b.one");
	ck_assert_int_eq(cache_init(&c, 1 << 20, 1000), 0);
}

static void teardown(void)
{
	cache_fini(&c);
	ck_assert_uint_eq(mod_a.cache_deps, 0);
	ck_assert_uint_eq(mod_b.cache_deps, 0);
}

static int put(op_info *op, const char *params, const char *val, uint64_t ttl, uint64_t now)
{
	return cache_put(&c, op, CACHE_SHARED, params, strlen(params), val, strlen(val), ttl, false, now);
}

static cache_entry *get(op_info *op, const char *params, uint64_t now)
{
	return cache_get(&c, op->method, op->method_len, CACHE_SHARED, params, strlen(params), now);
}

START_TEST(hit_and_miss)
{
	cache_entry *e;

	ck_assert_ptr_null(get(&op_a1, "p1", 0));
	ck_assert_uint_eq(c.misses, 1);
	ck_assert_int_eq(put(&op_a1, "p1", "v1", 100, 0), 0);
	e = get(&op_a1, "p1", 10);
	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(e->val_len, 2);
	ck_assert_mem_eq(cache_entry_value(e), "v1", 2);
	ck_assert_uint_eq(c.hits, 1);
	/* other params, other method with the same params, a method that is a
	 * prefix: all misses */
	ck_assert_ptr_null(get(&op_a1, "p2", 10));
	ck_assert_ptr_null(get(&op_a2, "p1", 10));
	ck_assert_ptr_null(cache_get(&c, "a.on", 4, CACHE_SHARED, "ep1", 3, 10));
	ck_assert_uint_eq(c.misses, 4);
	ck_assert_uint_eq(c.entries, 1);
	ck_assert_uint_eq(mod_a.cache_deps, 1);
	ck_assert_uint_gt(c.bytes, 0);
}
END_TEST

START_TEST(ttl_expiry)
{
	ck_assert_int_eq(put(&op_a1, "p1", "v", 100, 1000), 0);
	ck_assert_int_eq(put(&op_a1, "p2", "v", 300, 1000), 0);
	ck_assert_int_eq(put(&op_b1, "p1", "v", 200, 1000), 0);
	ck_assert_uint_eq(cache_next_expiry(&c, 1000), 100);
	ck_assert_uint_eq(cache_expire(&c, 1099), 0);
	ck_assert_uint_eq(cache_expire(&c, 1100), 1);
	ck_assert_uint_eq(mod_a.cache_deps, 1);
	ck_assert_uint_eq(cache_next_expiry(&c, 1100), 100);
	ck_assert_uint_eq(cache_expire(&c, 1250), 1);
	ck_assert_uint_eq(mod_b.cache_deps, 0);
	/* an expired entry is not returned even before the timer ran */
	ck_assert_ptr_null(get(&op_a1, "p2", 1300));
	ck_assert_uint_eq(c.entries, 0);
	ck_assert_uint_eq(mod_a.cache_deps, 0);
	ck_assert_uint_eq(c.bytes, 0);
	ck_assert_uint_eq(cache_next_expiry(&c, 1300), UINT64_MAX);
	ck_assert_uint_eq(c.expirations, 2);
}
END_TEST

START_TEST(lru_by_bytes)
{
	char val[100];
	uint64_t one;

	memset(val, 'x', sizeof(val) - 1);
	val[sizeof(val) - 1] = '\0';
	ck_assert_int_eq(put(&op_a1, "k0", val, 1000, 0), 0);
	one = c.bytes;
	cache_set_limits(&c, one * 3, 1000);
	ck_assert_int_eq(put(&op_a1, "k1", val, 1000, 0), 0);
	ck_assert_int_eq(put(&op_a1, "k2", val, 1000, 0), 0);
	ck_assert_uint_eq(c.entries, 3);
	/* touch k0: k1 is now the least recently used */
	ck_assert_ptr_nonnull(get(&op_a1, "k0", 1));
	ck_assert_int_eq(put(&op_a1, "k3", val, 1000, 0), 0);
	ck_assert_uint_eq(c.entries, 3);
	ck_assert_uint_le(c.bytes, one * 3);
	ck_assert_uint_eq(c.evictions, 1);
	ck_assert_ptr_null(get(&op_a1, "k1", 1));
	ck_assert_ptr_nonnull(get(&op_a1, "k0", 1));
	ck_assert_ptr_nonnull(get(&op_a1, "k2", 1));
	ck_assert_ptr_nonnull(get(&op_a1, "k3", 1));
	ck_assert_uint_eq(mod_a.cache_deps, 3);
	/* an entry larger than the whole bound is refused, nothing evicted */
	{
		char big[1024];

		memset(big, 'y', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		ck_assert_int_eq(put(&op_a1, "big", big, 1000, 0), -E2BIG);
		ck_assert_uint_eq(c.entries, 3);
	}
	/* shrinking the bound evicts right away */
	cache_set_limits(&c, one, 1000);
	ck_assert_uint_eq(c.entries, 1);
	ck_assert_ptr_nonnull(get(&op_a1, "k3", 1));
}
END_TEST

START_TEST(lru_by_entries)
{
	cache_set_limits(&c, 1 << 20, 2);
	ck_assert_int_eq(put(&op_a1, "1", "v", 1000, 0), 0);
	ck_assert_int_eq(put(&op_a1, "2", "v", 1000, 0), 0);
	ck_assert_int_eq(put(&op_b1, "3", "v", 1000, 0), 0);
	ck_assert_uint_eq(c.entries, 2);
	ck_assert_ptr_null(get(&op_a1, "1", 1));
	ck_assert_uint_eq(mod_a.cache_deps, 1);
	ck_assert_uint_eq(mod_b.cache_deps, 1);
	/* max_entries 0 turns the cache off */
	cache_set_limits(&c, 1 << 20, 0);
	ck_assert_uint_eq(c.entries, 0);
	ck_assert_int_eq(put(&op_a1, "1", "v", 1000, 0), -E2BIG);
}
END_TEST

START_TEST(replace)
{
	cache_entry *e;

	ck_assert_int_eq(put(&op_a1, "p", "old", 100, 0), 0);
	ck_assert_int_eq(put(&op_a1, "p", "newer", 500, 50), 0);
	ck_assert_uint_eq(c.entries, 1);
	ck_assert_uint_eq(mod_a.cache_deps, 1);
	e = get(&op_a1, "p", 200); /* the old TTL would have expired */
	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(e->val_len, 5);
	ck_assert_mem_eq(cache_entry_value(e), "newer", 5);
	ck_assert_uint_eq(cache_next_expiry(&c, 50), 500);
}
END_TEST

START_TEST(negative)
{
	cache_entry *e;

	ck_assert_int_eq(cache_put(&c, &op_a1, CACHE_SHARED, "p", 1, "boom", 4, 100, true, 0), 0);
	e = get(&op_a1, "p", 1);
	ck_assert_ptr_nonnull(e);
	ck_assert(e->negative);
	ck_assert_mem_eq(cache_entry_value(e), "boom", 4);
}
END_TEST

START_TEST(invalidate_kinds)
{
	ck_assert_int_eq(put(&op_a1, "1", "v", 1000, 0), 0);
	ck_assert_int_eq(put(&op_a1, "2", "v", 1000, 0), 0);
	ck_assert_int_eq(put(&op_a2, "1", "v", 1000, 0), 0);
	ck_assert_int_eq(put(&op_b1, "1", "v", 1000, 0), 0);
	ck_assert_int_eq(put(&op_b1, "2", "v", 1000, 0), 0);
	ck_assert_uint_eq(mod_a.cache_deps, 3);
	ck_assert_uint_eq(cache_invalidate(&c, NULL, &op_a1), 2);
	ck_assert_uint_eq(mod_a.cache_deps, 1);
	ck_assert_uint_eq(cache_invalidate(&c, NULL, &op_a1), 0);
	ck_assert_uint_eq(cache_invalidate(&c, &mod_b, NULL), 2);
	ck_assert_uint_eq(mod_b.cache_deps, 0);
	ck_assert_int_eq(put(&op_b1, "3", "v", 1000, 0), 0);
	ck_assert_uint_eq(cache_invalidate(&c, NULL, NULL), 2);
	ck_assert_uint_eq(c.entries, 0);
	ck_assert_uint_eq(c.bytes, 0);
	ck_assert_uint_eq(mod_a.cache_deps, 0);
	ck_assert_uint_eq(mod_b.cache_deps, 0);
	ck_assert_uint_eq(cache_next_expiry(&c, 0), UINT64_MAX);
}
END_TEST

/* Every parent expires no later than its children, and each entry knows its slot. */
static void heap_check(void)
{
	for (uint32_t i = 0; i < c.entries; i++) {
		ck_assert_uint_eq(c.heap[i]->heap_idx, i);
		if (i)
			ck_assert_uint_le(c.heap[(i - 1) / 2]->expires_ms, c.heap[i]->expires_ms);
	}
}

START_TEST(heap_random)
{
	char key[16];
	uint64_t now = 0;
	uint32_t live = 0;

	srand(12345);
	cache_set_limits(&c, 1 << 24, 300);
	for (int i = 0; i < 20000; i++) {
		int k = rand() % 400, what = rand() % 10;

		snprintf(key, sizeof(key), "k%d", k);
		if (what < 6) {
			ck_assert_int_eq(put(rand() % 2 ? &op_a1 : &op_b1, key, "v",
					     1 + (uint64_t)(rand() % 500), now),
					 0);
		} else if (what < 8) {
			get(&op_a1, key, now);
		} else if (what < 9) {
			now += (uint64_t)(rand() % 50);
			cache_expire(&c, now);
			if (c.entries)
				ck_assert_uint_gt(c.heap[0]->expires_ms, now);
		} else {
			cache_invalidate(&c, NULL, rand() % 2 ? &op_a1 : &op_b1);
		}
		heap_check();
		ck_assert_uint_le(c.entries, 300);
		live = c.entries;
		ck_assert_uint_eq(mod_a.cache_deps + mod_b.cache_deps, live);
	}
	ck_assert_uint_eq(cache_expire(&c, UINT64_MAX - 1), live);
	ck_assert_uint_eq(mod_a.cache_deps + mod_b.cache_deps, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cache");
	TCase *tc = tcase_create("cache");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, hit_and_miss);
	tcase_add_test(tc, ttl_expiry);
	tcase_add_test(tc, lru_by_bytes);
	tcase_add_test(tc, lru_by_entries);
	tcase_add_test(tc, replace);
	tcase_add_test(tc, negative);
	tcase_add_test(tc, invalidate_kinds);
	tcase_add_test(tc, heap_random);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
