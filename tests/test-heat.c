/*
 * test-heat.c - ZAFP alone: heat levels at the configured thresholds, the
 * fast-path table (creation at hot, lookup, LRU eviction at max_hot_paths),
 * decay, module protection counts, forgetting a module, sampled records and
 * percentiles. Modules and ops are plain registry structs filled in by hand.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "heat.h"
#include "registry.h"
#include "util.h"

#define N_OPS 4

static config cfg;
static heat h;
static module mod_a, mod_b;
static op_info ops[N_OPS]; /* a.0 a.1 a.2 on mod_a, b.0 on mod_b */
static op_info *a_ops[3];
static char names[N_OPS][8];

static void setup(void)
{
	config_init_defaults(&cfg);
	memset(&mod_a, 0, sizeof(mod_a));
	memset(&mod_b, 0, sizeof(mod_b));
	mod_a.handle = mod_b.handle = (void *)&mod_a; /* callable: any non-NULL */
	memset(ops, 0, sizeof(ops));
	for (int i = 0; i < N_OPS; i++) {
		module *m = i < 3 ? &mod_a : &mod_b;

		snprintf(names[i], sizeof(names[i]), "%c.%d", i < 3 ? 'a' : 'b', i < 3 ? i : 0);
		ops[i].mod = m;
		ops[i].method = names[i];
		ops[i].method_len = (uint32_t)strlen(names[i]);
	}
	for (int i = 0; i < 3; i++)
		a_ops[i] = &ops[i];
	mod_a.ops = a_ops;
	mod_a.n_ops = 3;
	heat_init(&h, &cfg);
}

static void teardown(void)
{
	heat_fini(&h);
	ck_assert_uint_eq(mod_a.hot_ops, 0);
	ck_assert_uint_eq(mod_b.hot_ops, 0);
}

static void record_n(op_info *op, int n, uint64_t now)
{
	for (int i = 0; i < n; i++)
		heat_record(&h, op, 1000, now);
}

static fastpath *lookup(op_info *op)
{
	return heat_lookup(&h, op->method, op->method_len, 1);
}

START_TEST(thresholds)
{
	ck_assert_uint_eq(cfg.zafp.warm, 5);
	ck_assert_uint_eq(cfg.zafp.hot, 20);
	ck_assert_uint_eq(cfg.zafp.critical, 100);
	record_n(&ops[0], 4, 1);
	ck_assert_int_eq(ops[0].heat.level, HEAT_COLD);
	record_n(&ops[0], 1, 1);
	ck_assert_int_eq(ops[0].heat.level, HEAT_WARM);
	record_n(&ops[0], 14, 1);
	ck_assert_int_eq(ops[0].heat.level, HEAT_WARM);
	ck_assert_ptr_null(ops[0].heat.fp);
	ck_assert_ptr_null(lookup(&ops[0]));
	ck_assert_uint_eq(mod_a.hot_ops, 0);
	record_n(&ops[0], 1, 1);
	ck_assert_int_eq(ops[0].heat.level, HEAT_HOT);
	ck_assert_ptr_nonnull(ops[0].heat.fp);
	ck_assert_uint_eq(mod_a.hot_ops, 1);
	ck_assert_uint_eq(h.n_paths, 1);
	record_n(&ops[0], 79, 1);
	ck_assert_int_eq(ops[0].heat.level, HEAT_HOT);
	record_n(&ops[0], 1, 1);
	ck_assert_int_eq(ops[0].heat.level, HEAT_CRITICAL);
	ck_assert_uint_eq(ops[0].heat.calls, 100);
	ck_assert_uint_eq(ops[0].heat.total_ns, 100 * 1000);
	ck_assert_str_eq(heat_level_name(ops[0].heat.level), "critical");
	ck_assert_uint_eq(h.n_paths, 1);
}
END_TEST

START_TEST(lookup_counts_hits)
{
	fastpath *fp;

	ck_assert_ptr_null(lookup(&ops[1]));
	ck_assert_uint_eq(h.hits, 0);
	record_n(&ops[1], 20, 1);
	fp = lookup(&ops[1]);
	ck_assert_ptr_nonnull(fp);
	ck_assert_ptr_eq(fp->op, &ops[1]);
	ck_assert_uint_eq(h.hits, 1);
	lookup(&ops[1]);
	ck_assert_uint_eq(h.hits, 2);
	/* other bytes, a prefix, an unknown method: no entry, no hit */
	ck_assert_ptr_null(heat_lookup(&h, "a.", 2, 1));
	ck_assert_ptr_null(heat_lookup(&h, "a.10", 4, 1));
	ck_assert_uint_eq(h.hits, 2);
}
END_TEST

START_TEST(not_callable_no_path)
{
	mod_b.unloading = true;
	record_n(&ops[3], 30, 1);
	ck_assert_int_eq(ops[3].heat.level, HEAT_HOT);
	ck_assert_ptr_null(ops[3].heat.fp);
	ck_assert_uint_eq(mod_b.hot_ops, 0);
	mod_b.unloading = false;
	mod_b.handle = NULL;
	record_n(&ops[3], 1, 1);
	ck_assert_ptr_null(ops[3].heat.fp);
	/* callable again: the next record adds it */
	mod_b.handle = &mod_b;
	record_n(&ops[3], 1, 1);
	ck_assert_ptr_nonnull(ops[3].heat.fp);
	ck_assert_uint_eq(mod_b.hot_ops, 1);
}
END_TEST

START_TEST(lru_eviction)
{
	cfg.zafp.max_hot_paths = 2;
	record_n(&ops[0], 20, 1);
	record_n(&ops[1], 20, 1);
	ck_assert_uint_eq(h.n_paths, 2);
	/* ops[0] used last: ops[1] is the LRU */
	ck_assert_ptr_nonnull(lookup(&ops[0]));
	record_n(&ops[3], 20, 1);
	ck_assert_uint_eq(h.n_paths, 2);
	ck_assert_uint_eq(h.evictions, 1);
	ck_assert_ptr_null(ops[1].heat.fp);
	ck_assert_ptr_null(lookup(&ops[1]));
	ck_assert_ptr_nonnull(ops[0].heat.fp);
	ck_assert_ptr_nonnull(ops[3].heat.fp);
	ck_assert_uint_eq(mod_a.hot_ops, 1);
	ck_assert_uint_eq(mod_b.hot_ops, 1);
	/* evict ops[0] too: mod_a has no hot op left */
	ck_assert_ptr_nonnull(lookup(&ops[3]));
	record_n(&ops[2], 20, 1);
	ck_assert_ptr_null(ops[0].heat.fp);
	ck_assert_uint_eq(mod_a.hot_ops, 1); /* ops[2] */
	ck_assert_uint_eq(h.evictions, 2);
	/* max 0: no fast paths at all */
	heat_fini(&h);
	heat_init(&h, &cfg);
	cfg.zafp.max_hot_paths = 0;
	record_n(&ops[1], 25, 1);
	ck_assert_ptr_null(ops[1].heat.fp);
	ck_assert_uint_eq(h.n_paths, 0);
}
END_TEST

START_TEST(decay)
{
	op_info *all[N_OPS] = { &ops[0], &ops[1], &ops[2], &ops[3] };

	record_n(&ops[0], 100, 1);
	record_n(&ops[3], 25, 1);
	ck_assert_uint_eq(mod_a.hot_ops, 1);
	ck_assert_uint_eq(mod_b.hot_ops, 1);
	heat_decay(&h, all, N_OPS);
	ck_assert_uint_eq(ops[0].heat.count, 50);
	ck_assert_int_eq(ops[0].heat.level, HEAT_HOT);
	ck_assert_ptr_nonnull(ops[0].heat.fp);
	ck_assert_uint_eq(ops[3].heat.count, 12);
	ck_assert_int_eq(ops[3].heat.level, HEAT_WARM);
	ck_assert_ptr_null(ops[3].heat.fp);
	ck_assert_uint_eq(mod_b.hot_ops, 0);
	ck_assert_ptr_null(lookup(&ops[3]));
	heat_decay(&h, all, N_OPS);
	heat_decay(&h, all, N_OPS);
	ck_assert_uint_eq(ops[0].heat.count, 12);
	ck_assert_ptr_null(ops[0].heat.fp);
	ck_assert_uint_eq(mod_a.hot_ops, 0);
	ck_assert_uint_eq(h.n_paths, 0);
	/* calls since start are not decayed */
	ck_assert_uint_eq(ops[0].heat.calls, 100);
	for (int i = 0; i < 10; i++)
		heat_decay(&h, all, N_OPS);
	ck_assert_int_eq(ops[0].heat.level, HEAT_COLD);
	ck_assert_uint_eq(ops[0].heat.count, 0);
}
END_TEST

START_TEST(forget_module)
{
	record_n(&ops[0], 20, 1);
	record_n(&ops[2], 20, 1);
	record_n(&ops[3], 20, 1);
	ck_assert_uint_eq(mod_a.hot_ops, 2);
	heat_forget_module(&h, &mod_a);
	ck_assert_uint_eq(mod_a.hot_ops, 0);
	ck_assert_uint_eq(h.n_paths, 1);
	ck_assert_ptr_null(lookup(&ops[0]));
	ck_assert_ptr_null(lookup(&ops[2]));
	ck_assert_ptr_nonnull(lookup(&ops[3]));
	/* the heat itself is kept: lmms.ops still shows it */
	ck_assert_int_eq(ops[0].heat.level, HEAT_HOT);
	ck_assert_uint_eq(ops[0].heat.calls, 20);
}
END_TEST

START_TEST(percentiles)
{
	op_heat oh;

	memset(&oh, 0, sizeof(oh));
	ck_assert_uint_eq(heat_percentile_us(&oh, 50), 0);
	/* 98 calls of 1 us, 2 of 1 ms: p50 is in 1 us's bucket, p99 in 1 ms's */
	for (int i = 0; i < 98; i++)
		heat_record(&h, &ops[0], 1000, 1);
	for (int i = 0; i < 2; i++)
		heat_record(&h, &ops[0], 1000000, 1);
	/* buckets are halves of powers of two: the bound is within 1.5x */
	ck_assert_uint_ge(heat_percentile_us(&ops[0].heat, 50), 1);
	ck_assert_uint_le(heat_percentile_us(&ops[0].heat, 50), 2);
	ck_assert_uint_ge(heat_percentile_us(&ops[0].heat, 99), 1000);
	ck_assert_uint_le(heat_percentile_us(&ops[0].heat, 99), 1500);
	ck_assert_uint_le(heat_percentile_us(&ops[0].heat, 98), 2);
	/* a known histogram straight in */
	oh.hist[20] = 10; /* 2^10 ns .. 1.5 * 2^10 ns */
	ck_assert_uint_eq(heat_percentile_us(&oh, 50), 2); /* 1536 ns rounds up */
	oh.hist[41] = 10; /* 2^20 * 1.5 .. 2^21 ns */
	ck_assert_uint_eq(heat_percentile_us(&oh, 99), (2097152 + 999) / 1000);
	ck_assert_uint_eq(heat_percentile_us(&oh, 50), 2);
}
END_TEST

START_TEST(sampled_records)
{
	ck_assert(heat_sample_now(&ops[0].heat));
	heat_record_weighted(&h, &ops[0], 1200, HEAT_SAMPLE_EVERY, 1);
	for (int i = 1; i < HEAT_SAMPLE_EVERY; i++) {
		ck_assert(!heat_sample_now(&ops[0].heat));
		heat_record_weighted(&h, &ops[0], 0, 0, 1);
	}
	ck_assert(heat_sample_now(&ops[0].heat));
	ck_assert_uint_eq(ops[0].heat.calls, HEAT_SAMPLE_EVERY);
	ck_assert_uint_eq(ops[0].heat.count, HEAT_SAMPLE_EVERY);
	/* the average over all calls is the sampled latency */
	ck_assert_uint_eq(ops[0].heat.total_ns / ops[0].heat.calls, 1200);
	ck_assert_uint_eq(heat_percentile_us(&ops[0].heat, 50), 2);
}
END_TEST

START_TEST(result_buffer)
{
	char *p;
	size_t cap;

	heat_result_buf_take(&h, &p, &cap);
	ck_assert_ptr_null(p);
	ck_assert_uint_eq(cap, 0);
	heat_result_buf_give(&h, malloc(100), 100);
	heat_result_buf_take(&h, &p, &cap);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(cap, 100);
	heat_result_buf_give(&h, p, cap);
	/* too big ones are freed, not kept (ASan would see a leak otherwise) */
	heat_result_buf_give(&h, malloc(HEAT_RESULT_BUF_MAX + 1), HEAT_RESULT_BUF_MAX + 1);
	heat_result_buf_take(&h, &p, &cap);
	ck_assert_uint_eq(cap, 100);
	heat_result_buf_give(&h, p, cap);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("heat");
	TCase *tc = tcase_create("heat");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, thresholds);
	tcase_add_test(tc, lookup_counts_hits);
	tcase_add_test(tc, not_callable_no_path);
	tcase_add_test(tc, lru_eviction);
	tcase_add_test(tc, decay);
	tcase_add_test(tc, forget_module);
	tcase_add_test(tc, percentiles);
	tcase_add_test(tc, sampled_records);
	tcase_add_test(tc, result_buffer);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
