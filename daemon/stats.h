/*
 * stats.h - the daemon's figures, defined once.
 *
 * Each unit keeps its own counters in its own state; this unit names them,
 * says what each is (counter or gauge, with a help line) and collects one
 * snapshot from the composed daemon. lmms.stats and lmms.metrics are both
 * rendered from the same table, so they cannot disagree on a name or a type.
 */
#ifndef LMMS_STATS_H
#define LMMS_STATS_H

#include <stdbool.h>
#include <stdint.h>

struct lmmsd;

typedef enum stat_kind {
	STAT_COUNTER,
	STAT_GAUGE,
} stat_kind;

/* In lmms.stats order (append only: clients read the map by key, but the
 * order is part of what tests/golden pins). */
typedef enum stat_id {
	ST_UPTIME_SECONDS,
	ST_REQUESTS_TOTAL,
	ST_ERRORS_TOTAL,
	ST_CONNECTIONS,
	ST_RSS_BYTES,
	ST_MODULES_KNOWN,
	ST_MODULES_RESIDENT,
	ST_LIGS_LOADS,
	ST_LUGS_UNLOADS,
	ST_LUGS_UNLOAD_BLOCKED,
	ST_ZAFP_HITS,
	ST_HOT_PATHS,
	ST_CACHE_HITS,
	ST_CACHE_MISSES,
	ST_CACHE_ENTRIES,
	ST_CACHE_BYTES,
	ST_MEMORY_RECLAIMED_BYTES,
	ST_NOTIFICATIONS_TOTAL,
	ST_CONNECTIONS_TOTAL,
	ST_CACHE_EVICTIONS,
	ST_ZAFP_EVICTIONS,
	ST_WORKER_SPAWNS,
	ST_MODULE_CRASHES,
	ST_LUGS_PREMATURE_RELOADS,
	ST_PRESSURE_EVENTS,
	ST_HOT_RELOADS,
	ST_POOL_CALLS,
	STAT_MAX,
} stat_id;

typedef struct stat_def {
	const char *name; /* the lmms.stats key */
	stat_kind kind;
	bool is_signed; /* packed as an int64 (measured differences) */
	const char *help;
} stat_def;

typedef struct stats_snapshot {
	int64_t v[STAT_MAX];
} stats_snapshot;

extern const stat_def stat_defs[STAT_MAX];

void stats_collect(const struct lmmsd *d, stats_snapshot *s);

#endif
