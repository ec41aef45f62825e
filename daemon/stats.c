/*
 * stats.c - one snapshot of every figure (see stats.h).
 */
#include "stats.h"

#include "daemon.h"

const stat_def stat_defs[STAT_MAX] = {
	[ST_UPTIME_SECONDS] = { "uptime_seconds", STAT_GAUGE, false, "Seconds since lmmsd started." },
	[ST_REQUESTS_TOTAL] = { "requests_total", STAT_COUNTER, false, "Requests received (notifications not included)." },
	[ST_ERRORS_TOTAL] = { "errors_total", STAT_COUNTER, false, "Error replies sent, and notifications that failed." },
	[ST_CONNECTIONS] = { "connections", STAT_GAUGE, false, "Client connections open now." },
	[ST_RSS_BYTES] = { "rss_bytes", STAT_GAUGE, true, "Resident set size of lmmsd, in bytes." },
	[ST_MODULES_KNOWN] = { "modules_known", STAT_GAUGE, false, "Modules in the module directory." },
	[ST_MODULES_RESIDENT] = { "modules_resident", STAT_GAUGE, false, "Modules loaded (or pinned) now." },
	[ST_LIGS_LOADS] = { "ligs_loads", STAT_COUNTER, false, "Successful module loads." },
	[ST_LUGS_UNLOADS] = { "lugs_unloads", STAT_COUNTER, false, "Module unloads." },
	[ST_LUGS_UNLOAD_BLOCKED] = { "lugs_unload_blocked", STAT_COUNTER, false, "Unloads refused by one of the five checks or a veto." },
	[ST_ZAFP_HITS] = { "zafp_hits", STAT_COUNTER, false, "Calls that took the ZAFP fast path." },
	[ST_HOT_PATHS] = { "hot_paths", STAT_GAUGE, false, "Fast-path entries now." },
	[ST_CACHE_HITS] = { "cache_hits", STAT_COUNTER, false, "Calls answered from the result cache." },
	[ST_CACHE_MISSES] = { "cache_misses", STAT_COUNTER, false, "Calls of PURE ops the cache could not answer." },
	[ST_CACHE_ENTRIES] = { "cache_entries", STAT_GAUGE, false, "Result cache entries now." },
	[ST_CACHE_BYTES] = { "cache_bytes", STAT_GAUGE, false, "Bytes held by the result cache." },
	[ST_MEMORY_RECLAIMED_BYTES] = { "memory_reclaimed_bytes", STAT_COUNTER, true, "RSS measured to return to the system on unloads and trims, in bytes." },
	[ST_NOTIFICATIONS_TOTAL] = { "notifications_total", STAT_COUNTER, false, "Notifications received." },
	[ST_CONNECTIONS_TOTAL] = { "connections_total", STAT_COUNTER, false, "Client connections accepted." },
	[ST_CACHE_EVICTIONS] = { "cache_evictions", STAT_COUNTER, false, "Cache entries evicted by the size bounds." },
	[ST_ZAFP_EVICTIONS] = { "zafp_evictions", STAT_COUNTER, false, "Fast-path entries evicted by zafp.max_hot_paths." },
	[ST_WORKER_SPAWNS] = { "worker_spawns", STAT_COUNTER, false, "Worker processes started for isolated modules." },
	[ST_MODULE_CRASHES] = { "module_crashes", STAT_COUNTER, false, "Worker processes that died while calls ran (answered module_crashed)." },
	[ST_LUGS_PREMATURE_RELOADS] = { "lugs_premature_reloads", STAT_COUNTER, false, "Modules loaded again within the grace after LUGS unloaded them." },
	[ST_PRESSURE_EVENTS] = { "pressure_events", STAT_COUNTER, false, "Memory pressure events that made lmmsd shed." },
	[ST_HOT_RELOADS] = { "hot_reloads", STAT_COUNTER, false, "Modules reloaded because their file was replaced on disk." },
	[ST_POOL_CALLS] = { "pool_calls_total", STAT_COUNTER, false, "Calls run on the thread pool." },
};

void stats_collect(const lmmsd *d, stats_snapshot *s)
{
	int64_t rss = rss_bytes();
	int64_t *v = s->v;

	v[ST_UPTIME_SECONDS] = (int64_t)((uv_now(d->loop) - d->start_ms) / 1000);
	v[ST_REQUESTS_TOTAL] = (int64_t)d->dp.st.requests_total;
	v[ST_ERRORS_TOTAL] = (int64_t)(d->dp.st.errors_total + d->srv.st.malformed);
	v[ST_CONNECTIONS] = d->srv.n_conns;
	v[ST_RSS_BYTES] = rss < 0 ? 0 : rss;
	v[ST_MODULES_KNOWN] = d->reg.n_mods;
	v[ST_MODULES_RESIDENT] = d->reg.n_resident;
	v[ST_LIGS_LOADS] = (int64_t)d->reg.loads;
	v[ST_LUGS_UNLOADS] = (int64_t)d->reg.unloads;
	v[ST_LUGS_UNLOAD_BLOCKED] = (int64_t)d->lugs.st.unload_blocked;
	v[ST_ZAFP_HITS] = (int64_t)d->heat.hits;
	v[ST_HOT_PATHS] = d->heat.n_paths;
	v[ST_CACHE_HITS] = (int64_t)d->cache.hits;
	v[ST_CACHE_MISSES] = (int64_t)d->cache.misses;
	v[ST_CACHE_ENTRIES] = (int64_t)d->cache.entries;
	v[ST_CACHE_BYTES] = (int64_t)d->cache.bytes;
	v[ST_MEMORY_RECLAIMED_BYTES] = d->reg.reclaimed_bytes + d->lugs.st.trim_reclaimed_bytes;
	v[ST_NOTIFICATIONS_TOTAL] = (int64_t)d->dp.st.notifications_total;
	v[ST_CONNECTIONS_TOTAL] = (int64_t)d->srv.st.connections_total;
	v[ST_CACHE_EVICTIONS] = (int64_t)d->cache.evictions;
	v[ST_ZAFP_EVICTIONS] = (int64_t)d->heat.evictions;
	v[ST_WORKER_SPAWNS] = (int64_t)d->reg.worker_spawns;
	v[ST_MODULE_CRASHES] = (int64_t)d->reg.module_crashes;
	v[ST_LUGS_PREMATURE_RELOADS] = (int64_t)d->reg.premature_reloads;
	v[ST_PRESSURE_EVENTS] = (int64_t)d->lugs.st.pressure_events;
	v[ST_HOT_RELOADS] = (int64_t)d->reg.hot_reloads;
	v[ST_POOL_CALLS] = (int64_t)d->dp.st.pool_calls;
}
