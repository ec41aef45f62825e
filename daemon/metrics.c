/*
 * metrics.c - Prometheus text exposition (see metrics.h).
 */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "stats.h"
#include "util.h"

typedef struct out {
	bbuf *b;
	int err;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(out *o, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	if (o->err)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) || bbuf_append(o->b, line, (size_t)n) < 0)
		o->err = -ENOMEM;
}

static void family(out *o, const char *name, const char *type, const char *help)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The Prometheus name of a stat: counters end in _total. */
static void stat_name(const stat_def *s, char *buf, size_t n)
{
	size_t len = strlen(s->name);
	bool has_total = len > 6 && strcmp(s->name + len - 6, "_total") == 0;

	snprintf(buf, n, "lmms_%s%s", s->name, s->kind == STAT_COUNTER && !has_total ? "_total" : "");
}

/* Module and method names are [A-Za-z0-9_.-]: nothing to escape in a label. */

static void render_stats(const lmmsd *d, out *o)
{
	stats_snapshot s;
	char name[96];

	stats_collect(d, &s);
	for (int i = 0; i < STAT_MAX; i++) {
		stat_name(&stat_defs[i], name, sizeof(name));
		family(o, name, stat_defs[i].kind == STAT_COUNTER ? "counter" : "gauge",
		       stat_defs[i].help);
		put(o, "%s %" PRId64 "\n", name, s.v[i]);
	}
}

static void render_modules(const lmmsd *d, out *o)
{
	static const module_state states[] = { MOD_UNLOADED, MOD_LOADED, MOD_PINNED, MOD_FAILED };
	const registry *r = &d->reg;

	family(o, "lmms_module_state", "gauge",
	       "1 for the state each module is in (unloaded, loaded, pinned, failed).");
	for (uint32_t i = 0; i < r->n_mods; i++)
		for (size_t j = 0; j < ARRAY_SIZE(states); j++)
			put(o, "lmms_module_state{module=\"%s\",state=\"%s\"} %d\n", r->mods[i]->name,
			    module_state_name(states[j]), r->mods[i]->state == states[j]);
	family(o, "lmms_module_resident_bytes", "gauge",
	       "RSS a resident module added when it loaded (its worker's RSS when isolated).");
	for (uint32_t i = 0; i < r->n_mods; i++)
		put(o, "lmms_module_resident_bytes{module=\"%s\"} %" PRId64 "\n", r->mods[i]->name,
		    module_resident(r->mods[i]) ? r->mods[i]->resident_bytes : 0);
	family(o, "lmms_module_loads_total", "counter", "Loads of each module.");
	for (uint32_t i = 0; i < r->n_mods; i++)
		put(o, "lmms_module_loads_total{module=\"%s\"} %" PRIu64 "\n", r->mods[i]->name,
		    r->mods[i]->loads);
	family(o, "lmms_module_unloads_total", "counter", "Unloads of each module.");
	for (uint32_t i = 0; i < r->n_mods; i++)
		put(o, "lmms_module_unloads_total{module=\"%s\"} %" PRIu64 "\n", r->mods[i]->name,
		    r->mods[i]->unloads);
	/* not lmms_module_crashes_total: that is the daemon-wide stat */
	family(o, "lmms_worker_crashes_total", "counter",
	       "Deaths of each module's worker process while calls ran.");
	for (uint32_t i = 0; i < r->n_mods; i++)
		put(o, "lmms_worker_crashes_total{module=\"%s\"} %" PRIu64 "\n", r->mods[i]->name,
		    r->mods[i]->crashes);
	family(o, "lmms_module_unload_refusals_total", "counter",
	       "Unloads of each module refused, by the check that refused.");
	for (uint32_t i = 0; i < r->n_mods; i++)
		for (int c = 0; c < LUGS_CHECK_MAX; c++)
			put(o, "lmms_module_unload_refusals_total{module=\"%s\",check=\"%s\"} %" PRIu64 "\n",
			    r->mods[i]->name, lugs_check_name(c), r->mods[i]->blocked[c]);
}

/* Histogram bounds: powers of four from 1.024 us to 4.3 s (log2 buckets of
 * heat.c folded), then +Inf. */
#define LE_FIRST_BIT 10
#define LE_STEP_BITS 2
#define LE_COUNT 12

static void render_op_histogram(out *o, const op_info *op)
{
	const op_heat *h = &op->heat;
	uint64_t cum = 0, total = 0;
	unsigned b = 0;

	for (unsigned i = 0; i < HEAT_HIST_BUCKETS; i++)
		total += h->hist[i];
	for (int k = 0; k < LE_COUNT; k++) {
		uint64_t le_ns = 1ull << (LE_FIRST_BIT + LE_STEP_BITS * k);

		for (; b < HEAT_HIST_BUCKETS && heat_bucket_upper_ns(b) <= le_ns; b++)
			cum += h->hist[b];
		put(o, "lmms_op_duration_seconds_bucket{method=\"%s\",le=\"%.9g\"} %" PRIu64 "\n",
		    op->method, (double)le_ns / 1e9, cum);
	}
	put(o, "lmms_op_duration_seconds_bucket{method=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
	    op->method, total);
	put(o, "lmms_op_duration_seconds_sum{method=\"%s\"} %.9g\n", op->method,
	    (double)h->total_ns / 1e9);
	put(o, "lmms_op_duration_seconds_count{method=\"%s\"} %" PRIu64 "\n", op->method, total);
}

static void render_ops(const lmmsd *d, out *o)
{
	const registry *r = &d->reg;

#define EACH_OP(body)                                                    \
	for (uint32_t i = 0; i < r->n_mods; i++)                         \
		for (uint32_t j = 0; j < r->mods[i]->n_ops; j++) {       \
			const op_info *op = r->mods[i]->ops[j];          \
			if (!op->gone)                                   \
				body;                                    \
		}

	family(o, "lmms_op_calls_total", "counter", "Calls of each operation that ran it.");
	EACH_OP(put(o, "lmms_op_calls_total{method=\"%s\"} %" PRIu64 "\n", op->method,
		    op->heat.calls));
	family(o, "lmms_op_errors_total", "counter",
	       "Calls of each operation answered with an error.");
	EACH_OP(put(o, "lmms_op_errors_total{method=\"%s\"} %" PRIu64 "\n", op->method,
		    op->heat.errors));
	family(o, "lmms_op_pool_calls_total", "counter",
	       "Calls of each operation run on the thread pool.");
	EACH_OP(put(o, "lmms_op_pool_calls_total{method=\"%s\"} %" PRIu64 "\n", op->method,
		    op->heat.pool_calls));
	family(o, "lmms_op_fast_path", "gauge", "1 while the operation has a ZAFP fast-path entry.");
	EACH_OP(put(o, "lmms_op_fast_path{method=\"%s\"} %d\n", op->method, op->heat.fp != NULL));
	family(o, "lmms_op_duration_seconds", "histogram",
	       "Time each operation took (critical ops are sampled and weighted).");
	EACH_OP(render_op_histogram(o, op));
#undef EACH_OP
}

int metrics_render(lmmsd *d, bbuf *b)
{
	out o = { .b = b };

	registry_list(&d->reg);
	render_stats(d, &o);
	render_modules(d, &o);
	render_ops(d, &o);
	return o.err;
}
