/*
 * heat.c - ZAFP: per-op latency histogram and heat, the hot fast-path table
 * with LRU eviction, and decay.
 *
 * What `critical` does beyond `hot`, and why (bench/bench-dispatch, echo.ping
 * ["x"] in process, best-of-5 ns per dispatch_message on the 2-core CI VM;
 * full table in bench/RESULTS.md):
 *
 *   normal path ~287   hot fast path ~277   critical ~177   cache hit ~97
 *
 * The hot fast path only saves the op lookup and the load checks (~10 ns).
 * Where the rest went, measured part by part and with perf:
 *   call_init + op + call_finish + call_fini  ~120-135 ns, most of it the
 *     result sbuffer's first write: malloc(8 KiB) is a large-bin request
 *     that runs malloc_consolidate (10% of all samples), then free;
 *   clock_gettime                              3 per call, 15% of samples
 *     (two for the op's duration, one for the call's time stamp);
 *   params unpack into the conn zone + clear  ~27 ns;
 *   reply header + result copy                ~25 ns;
 *   heat_record                               ~3 ns; heat_lookup ~8 ns.
 * So a critical inline op (dispatch.c run_inline, critical mode) reuses one result
 * buffer kept here (heat_result_buf_*; at most HEAT_RESULT_BUF_MAX kept),
 * worth ~55 ns, and times one call in HEAT_SAMPLE_EVERY, recording the
 * sample with that weight so avg/p50/p99 stay unbiased, worth ~45 ns.
 * Not done: writing the result straight into the connection's output buffer
 * (saves at most the ~25 ns copy, but needs the call API to write into a
 * bbuf and undo on errors/too_large) and skipping the params unpack (the
 * host API reads msgpack objects). Hot ops keep exact per-call timing.
 * Over the socket all paths cost the same ~5.5 us (two context switches):
 * the gains matter for CPU per call, not for a single client's latency.
 */
#include "heat.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "registry.h"
#include "util.h"

const char *heat_level_name(heat_level l)
{
	switch (l) {
	case HEAT_COLD:
		return "cold";
	case HEAT_WARM:
		return "warm";
	case HEAT_HOT:
		return "hot";
	case HEAT_CRITICAL:
		return "critical";
	}
	return "cold";
}

heat_level heat_level_for(const config *cfg, uint32_t count)
{
	if (count >= cfg->zafp.critical)
		return HEAT_CRITICAL;
	if (count >= cfg->zafp.hot)
		return HEAT_HOT;
	if (count >= cfg->zafp.warm)
		return HEAT_WARM;
	return HEAT_COLD;
}

/* log2 buckets of nanoseconds, each split in two halves: ~41% resolution,
 * plenty for p50/p99, and a constant-time update. */
static unsigned hist_bucket(uint64_t ns)
{
	uint64_t v = ns | 1;
	unsigned lz = 63u - (unsigned)__builtin_clzll(v);
	unsigned sub = lz ? (unsigned)((v >> (lz - 1)) & 1) : 0;
	unsigned b = lz * 2 + sub;

	return b < HEAT_HIST_BUCKETS ? b : HEAT_HIST_BUCKETS - 1;
}

/* Upper bound of a bucket in nanoseconds. */
uint64_t heat_bucket_upper_ns(unsigned b)
{
	unsigned lz = b / 2, sub = b % 2;
	uint64_t base = 1ull << lz;

	if (lz == 0)
		return 1;
	return sub ? base * 2 : base + (base >> 1);
}

uint64_t heat_percentile_us(const op_heat *oh, double pct)
{
	uint64_t total = 0, want, seen = 0;

	for (unsigned i = 0; i < HEAT_HIST_BUCKETS; i++)
		total += oh->hist[i];
	if (!total)
		return 0;
	want = (uint64_t)((double)total * pct / 100.0 + 0.5);
	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < HEAT_HIST_BUCKETS; i++) {
		seen += oh->hist[i];
		if (seen >= want)
			return (heat_bucket_upper_ns(i) + 999) / 1000;
	}
	return (heat_bucket_upper_ns(HEAT_HIST_BUCKETS - 1) + 999) / 1000;
}

void heat_init(heat *h, const config *cfg)
{
	memset(h, 0, sizeof(*h));
	h->cfg = cfg;
	list_init(&h->lru);
	hmap_init(&h->table, 0);
}

static fastpath *fastpath_of(list_node *n)
{
	return container_of(n, fastpath, lru);
}

static void fastpath_remove(heat *h, fastpath *fp)
{
	op_info *op = fp->op;

	hmap_del(&h->table, op->method, op->method_len);
	list_unlink(&fp->lru);
	op->heat.fp = NULL;
	op->mod->hot_ops--;
	h->n_paths--;
	log_debug("zafp: %s lost its fast path", op->method);
	free(fp);
}

void heat_fini(heat *h)
{
	while (!list_empty(&h->lru))
		fastpath_remove(h, fastpath_of(h->lru.next));
	hmap_fini(&h->table);
	free(h->result_buf);
	h->result_buf = NULL;
	h->result_cap = 0;
}

void heat_result_buf_take(heat *h, char **data, size_t *cap)
{
	*data = h->result_buf;
	*cap = h->result_cap;
	h->result_buf = NULL;
	h->result_cap = 0;
}

void heat_result_buf_give(heat *h, char *data, size_t cap)
{
	if (!data)
		return;
	if (cap > HEAT_RESULT_BUF_MAX || h->result_buf) {
		free(data);
		return;
	}
	h->result_buf = data;
	h->result_cap = cap;
}

/* Evict least recently used entries until at most max remain. */
static void heat_evict_to(heat *h, uint32_t max)
{
	while (h->n_paths > max) {
		h->evictions++;
		fastpath_remove(h, fastpath_of(h->lru.prev));
	}
}

void heat_trim(heat *h)
{
	heat_evict_to(h, h->cfg->zafp.max_hot_paths);
}

static void fastpath_add(heat *h, op_info *op, uint64_t now_ms)
{
	fastpath *fp;

	if (!h->cfg->zafp.max_hot_paths || !module_callable(op->mod))
		return;
	heat_evict_to(h, h->cfg->zafp.max_hot_paths - 1);
	fp = calloc(1, sizeof(*fp));
	if (!fp)
		return;
	fp->op = op;
	fp->last_hit_ms = now_ms;
	if (hmap_put(&h->table, op->method, op->method_len, fp) < 0) {
		free(fp);
		return;
	}
	list_push_front(&h->lru, &fp->lru);
	op->heat.fp = fp;
	op->mod->hot_ops++;
	h->n_paths++;
	log_debug("zafp: %s is hot, fast path added", op->method);
}

fastpath *heat_lookup(heat *h, const char *method, uint32_t len, uint64_t now_ms)
{
	fastpath *fp;

	if (!h->n_paths)
		return NULL;
	fp = hmap_get(&h->table, method, len);
	if (!fp)
		return NULL;
	h->hits++;
	fp->last_hit_ms = now_ms;
	list_move_front(&h->lru, &fp->lru);
	return fp;
}

void heat_record(heat *h, op_info *op, uint64_t ns, uint64_t now_ms)
{
	heat_record_weighted(h, op, ns, 1, now_ms);
}

void heat_record_weighted(heat *h, op_info *op, uint64_t ns, uint32_t weight, uint64_t now_ms)
{
	op_heat *oh = &op->heat;

	oh->calls++;
	if (weight) {
		oh->total_ns += ns * weight;
		oh->hist[hist_bucket(ns)] += weight;
	}
	oh->last_call_ms = now_ms;
	if (oh->count < UINT32_MAX)
		oh->count++;
	oh->level = heat_level_for(h->cfg, oh->count);
	if (oh->level >= HEAT_HOT && !oh->fp)
		fastpath_add(h, op, now_ms);
}

void heat_decay(heat *h, op_info *const *ops, uint32_t n_ops)
{
	for (uint32_t i = 0; i < n_ops; i++) {
		op_heat *oh = &ops[i]->heat;

		oh->count /= 2;
		oh->level = heat_level_for(h->cfg, oh->count);
		if (oh->fp && oh->level < HEAT_HOT)
			fastpath_remove(h, oh->fp);
	}
}

void heat_forget_module(heat *h, module *m)
{
	for (uint32_t i = 0; i < m->n_ops; i++)
		if (m->ops[i]->heat.fp)
			fastpath_remove(h, m->ops[i]->heat.fp);
}
