/*
 * cache.h - TTL cache of PURE ops' results.
 *
 * Key: the method bytes and the params' msgpack bytes exactly as they came
 * off the wire. Value: the result's msgpack bytes (or, with negative caching,
 * a module_error message). Bounded by bytes (LRU) and by entry count;
 * expired entries are dropped by a timer through a min-heap on expiry time,
 * not only when looked up. Every live entry holds a dependency on its op's
 * module (LUGS check 3), released on expiry, eviction or invalidation.
 */
#ifndef LMMS_CACHE_H
#define LMMS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hmap.h"
#include "list.h"

struct op_info;
struct module;

typedef struct cache_entry {
	struct op_info *op;
	uint64_t expires_ms;
	uint32_t heap_idx;
	bool negative; /* value is a module_error message, not a result */
	list_node lru; /* in cache.lru, most recent first */
	uint32_t key_len;
	uint32_t val_len;
	char data[]; /* key bytes, then value bytes */
} cache_entry;

typedef struct cache {
	hmap map; /* key -> entry */
	cache_entry **heap; /* min-heap on expires_ms */
	uint32_t heap_cap;
	list_node lru; /* entries, most recently used first */
	uint32_t entries;
	uint64_t bytes;
	uint64_t max_bytes;
	uint32_t max_entries;
	uint64_t hits, misses, evictions, expirations;
} cache;

int cache_init(cache *c, uint64_t max_bytes, uint32_t max_entries);
void cache_fini(cache *c);
void cache_set_limits(cache *c, uint64_t max_bytes, uint32_t max_entries);
/* Evict least recently used entries down to max_bytes; the bytes dropped. */
uint64_t cache_shrink(cache *c, uint64_t max_bytes);

/* Scopes: the caller's uid (cache.scope = uid), or CACHE_SHARED. */
#define CACHE_SHARED UINT32_MAX

/* A live entry for (method, scope, params), or NULL. Counts a hit or a miss. */
cache_entry *cache_get(cache *c, const char *method, size_t mlen, uint32_t scope,
		       const char *params, size_t plen, uint64_t now_ms);
static inline const char *cache_entry_value(const cache_entry *e)
{
	return e->data + e->key_len;
}

/* Store; replaces an existing entry. -E2BIG if it alone exceeds the bound. */
int cache_put(cache *c, struct op_info *op, uint32_t scope, const char *params, size_t plen,
	      const char *val, size_t vlen, uint64_t ttl_ms, bool negative, uint64_t now_ms);

/* Drop expired entries; returns how many. */
uint32_t cache_expire(cache *c, uint64_t now_ms);
/* Milliseconds until the next expiry, or UINT64_MAX when empty. */
uint64_t cache_next_expiry(const cache *c, uint64_t now_ms);

/* Invalidate: everything (mod == NULL && op == NULL), one module, one op. */
uint32_t cache_invalidate(cache *c, const struct module *mod, const struct op_info *op);

#endif
