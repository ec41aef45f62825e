/*
 * heat.h - ZAFP: per-op metrics, heat levels and the hot fast path.
 *
 * Every call records its duration and bumps its op's heat count. The count
 * decides the level (cold < warm < hot < critical, thresholds from [zafp]);
 * at hot an op gets a fast-path entry: a slot in a small table keyed by the
 * method bytes as they arrive on the wire, holding the op's function, its
 * module and the module's state, so dispatch skips method splitting, the
 * registry lookup and the load checks. Its module is protected from LUGS
 * while any of its ops has an entry. A decay timer halves counts so paths
 * that went quiet cool down and lose entry and protection.
 *
 * Critical ops (see heat.c for the measurements) are run by dispatch with a
 * reused result buffer and sampled timing; their answers are identical.
 *
 * Why no fast path ever calls into a module that is being unloaded:
 *  1. Everything that creates, looks up, uses or removes an entry runs on
 *     the loop thread (dispatch, heat_record from call completion, the decay
 *     timer, LUGS, lmms.unload), so none of it interleaves with an unload.
 *  2. An entry is only created while module_callable(m) holds (handle set,
 *     not unloading): fastpath_add checks it.
 *  3. registry_unload refuses while m->refs > 0; every call, inline or on the
 *     thread pool, holds a ref from before op->fn is read until after its
 *     completion (heat_record included) ran; a pool worker uses the fn and
 *     state captured under that ref, never the entry.
 *  4. Past that check registry_unload sets m->unloading, clears every
 *     op->fn and calls on_unload -> heat_forget_module, which removes all of
 *     m's entries, all before fini and dlclose. From then on heat_lookup
 *     cannot find them, and (2) keeps new ones out until a load succeeded.
 *  5. An op_info is never freed before registry_fini (heat_fini runs first),
 *     so an entry's op pointer itself is always valid.
 * tests/test_zafp.py::test_unload_racing_hot_fast_path drives this under
 * ASan: pipelined hot calls while decay, LUGS and forced unloads cycle echo.
 */
#ifndef LMMS_HEAT_H
#define LMMS_HEAT_H

#include <stdbool.h>
#include <stdint.h>

#include "hmap.h"
#include "list.h"

#define HEAT_HIST_BUCKETS 64

typedef enum heat_level {
	HEAT_COLD = 0,
	HEAT_WARM,
	HEAT_HOT,
	HEAT_CRITICAL,
} heat_level;

const char *heat_level_name(heat_level l);

struct op_info;
struct module;
struct config;

typedef struct fastpath {
	struct op_info *op;
	uint64_t last_hit_ms; /* for LRU eviction */
	list_node lru; /* in heat.lru, most recent first */
} fastpath;

typedef struct op_heat {
	uint64_t calls; /* since the daemon started */
	uint64_t pool_calls; /* of those, run on the thread pool */
	uint64_t errors; /* of those, answered with an error */
	uint64_t total_ns;
	uint64_t last_call_ms;
	uint32_t hist[HEAT_HIST_BUCKETS]; /* durations, log2 buckets with 2 sub-buckets */
	uint32_t count; /* decaying count that decides the level */
	heat_level level;
	fastpath *fp; /* non-NULL while the op has a fast-path entry */
} op_heat;

/* Critical inline calls time one call in this many (a power of two); the
 * sample is recorded with this weight, so averages and percentiles stay
 * unbiased. See the measurements at the top of heat.c. */
#define HEAT_SAMPLE_EVERY 16
/* The critical path keeps its result buffer for the next call up to this. */
#define HEAT_RESULT_BUF_MAX (64 * 1024)

typedef struct heat {
	const struct config *cfg;
	hmap table; /* method bytes -> fastpath */
	list_node lru; /* fast paths, most recently used first */
	uint32_t n_paths;
	uint64_t hits; /* zafp_hits */
	uint64_t evictions;
	char *result_buf; /* the critical path's reusable result buffer (loop thread) */
	size_t result_cap;
} heat;

void heat_init(heat *h, const struct config *cfg);
void heat_fini(heat *h);

/* The fast-path entry for these method bytes, or NULL. Counts a hit. */
fastpath *heat_lookup(heat *h, const char *method, uint32_t len, uint64_t now_ms);

/* Record one finished call of op taking ns; may promote it to a fast path. */
void heat_record(heat *h, struct op_info *op, uint64_t ns, uint64_t now_ms);
/* Same, for a sampled call: weight 0 = not timed (counted only), else ns
 * stands for weight calls' worth of the latency distribution. */
void heat_record_weighted(heat *h, struct op_info *op, uint64_t ns, uint32_t weight,
			  uint64_t now_ms);
/* Is the next call of a critical op one to time? */
static inline bool heat_sample_now(const op_heat *oh)
{
	return (oh->calls & (HEAT_SAMPLE_EVERY - 1)) == 0;
}

/* Lend the critical path's result buffer (NULL/0 when none is kept) and take
 * it back after the call; one over HEAT_RESULT_BUF_MAX is freed instead. */
void heat_result_buf_take(heat *h, char **data, size_t *cap);
void heat_result_buf_give(heat *h, char *data, size_t cap);

/* Age every count (the decay timer); demotes ops that cooled. */
void heat_decay(heat *h, struct op_info *const *ops, uint32_t n_ops);

/* Evict down to zafp.max_hot_paths (after a reload lowered it). */
void heat_trim(heat *h);

/* Drop every entry of module m (before it is unloaded). */
void heat_forget_module(heat *h, struct module *m);

/* Recompute every op's level (after a reload changed thresholds). */
heat_level heat_level_for(const struct config *cfg, uint32_t count);

/* The upper bound, in ns, of histogram bucket b. */
uint64_t heat_bucket_upper_ns(unsigned b);

/* Latency percentile (0..100) from the histogram, in microseconds. */
uint64_t heat_percentile_us(const op_heat *oh, double pct);

#endif
