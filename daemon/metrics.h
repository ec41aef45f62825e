/*
 * metrics.h - lmms.metrics: every figure in the Prometheus text exposition
 * format (version 0.0.4), as `lmmsctl stats --prometheus` prints it and
 * node_exporter's textfile collector reads it.
 *
 * Names are lmms_<stat>; counters end in _total, byte figures in _bytes,
 * times in _seconds; every family has HELP and TYPE. Modules and ops are
 * labelled series (module="NAME", method="module.op"), op latency a
 * histogram. The stats come from stats.c's table, the same one lmms.stats
 * renders, so the two cannot disagree.
 */
#ifndef LMMS_METRICS_H
#define LMMS_METRICS_H

#include "bbuf.h"

struct lmmsd;

/* 0, or -ENOMEM (out is then incomplete and must be dropped). */
/* Lists the module directory first if it changed (so it is not const). */
int metrics_render(struct lmmsd *d, bbuf *out);

#endif
