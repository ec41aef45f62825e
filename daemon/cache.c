/*
 * cache.c - result cache: hash map for lookup, LRU list for the byte and
 * count bounds, min-heap on expiry time for the expiry timer.
 */
#include "cache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"
#include "util.h"

/* The key is method, a NUL, the scope (4 bytes), then the params bytes: a
 * method can never be a prefix of another method's key, and an entry of one
 * scope never answers another. */
static size_t key_len_for(size_t mlen, size_t plen)
{
	return mlen + 1 + sizeof(uint32_t) + plen;
}

static void key_write(char *key, const char *method, size_t mlen, uint32_t scope,
		      const char *params, size_t plen)
{
	memcpy(key, method, mlen);
	key[mlen] = '\0';
	memcpy(key + mlen + 1, &scope, sizeof(scope));
	memcpy(key + mlen + 1 + sizeof(scope), params, plen);
}

static size_t entry_bytes(const cache_entry *e)
{
	return sizeof(*e) + e->key_len + e->val_len;
}

int cache_init(cache *c, uint64_t max_bytes, uint32_t max_entries)
{
	memset(c, 0, sizeof(*c));
	list_init(&c->lru);
	c->max_bytes = max_bytes;
	c->max_entries = max_entries;
	hmap_init(&c->map, 0);
	return 0;
}

/* ---- heap ---- */

static void heap_swap(cache *c, uint32_t a, uint32_t b)
{
	cache_entry *t = c->heap[a];

	c->heap[a] = c->heap[b];
	c->heap[b] = t;
	c->heap[a]->heap_idx = a;
	c->heap[b]->heap_idx = b;
}

static void heap_up(cache *c, uint32_t i)
{
	while (i > 0) {
		uint32_t p = (i - 1) / 2;

		if (c->heap[p]->expires_ms <= c->heap[i]->expires_ms)
			break;
		heap_swap(c, i, p);
		i = p;
	}
}

static void heap_down(cache *c, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < c->entries && c->heap[l]->expires_ms < c->heap[m]->expires_ms)
			m = l;
		if (r < c->entries && c->heap[r]->expires_ms < c->heap[m]->expires_ms)
			m = r;
		if (m == i)
			return;
		heap_swap(c, i, m);
		i = m;
	}
}

/* ---- entries ---- */

static cache_entry *entry_of(list_node *n)
{
	return container_of(n, cache_entry, lru);
}

static void entry_remove(cache *c, cache_entry *e)
{
	uint32_t i = e->heap_idx, last = c->entries - 1;

	hmap_del(&c->map, e->data, e->key_len);
	list_unlink(&e->lru);
	if (i != last) {
		heap_swap(c, i, last);
		c->entries--;
		heap_down(c, i);
		heap_up(c, i);
	} else {
		c->entries--;
	}
	c->bytes -= entry_bytes(e);
	e->op->mod->cache_deps--;
	free(e);
}

void cache_fini(cache *c)
{
	while (!list_empty(&c->lru))
		entry_remove(c, entry_of(c->lru.next));
	free(c->heap);
	hmap_fini(&c->map);
	memset(c, 0, sizeof(*c));
}

static void cache_shrink_to(cache *c, uint64_t max_bytes, uint32_t max_entries)
{
	while (c->entries && (c->bytes > max_bytes || c->entries > max_entries)) {
		c->evictions++;
		entry_remove(c, entry_of(c->lru.prev));
	}
}

uint64_t cache_shrink(cache *c, uint64_t max_bytes)
{
	uint64_t before = c->bytes;

	cache_shrink_to(c, max_bytes, c->max_entries);
	return before - c->bytes;
}

void cache_set_limits(cache *c, uint64_t max_bytes, uint32_t max_entries)
{
	c->max_bytes = max_bytes;
	c->max_entries = max_entries;
	cache_shrink_to(c, max_bytes, max_entries);
}

static cache_entry *cache_find(cache *c, const char *method, size_t mlen, uint32_t scope,
			       const char *params, size_t plen)
{
	char stackkey[512];
	size_t klen = key_len_for(mlen, plen);
	char *key = klen <= sizeof(stackkey) ? stackkey : malloc(klen);
	cache_entry *e;

	if (!key)
		return NULL;
	key_write(key, method, mlen, scope, params, plen);
	e = hmap_get(&c->map, key, klen);
	if (key != stackkey)
		free(key);
	return e;
}

cache_entry *cache_get(cache *c, const char *method, size_t mlen, uint32_t scope,
		       const char *params, size_t plen, uint64_t now_ms)
{
	cache_entry *e;

	if (!c->entries) {
		c->misses++;
		return NULL;
	}
	e = cache_find(c, method, mlen, scope, params, plen);
	if (!e || e->expires_ms <= now_ms) {
		if (e)
			entry_remove(c, e);
		c->misses++;
		return NULL;
	}
	c->hits++;
	list_move_front(&c->lru, &e->lru);
	return e;
}

int cache_put(cache *c, op_info *op, uint32_t scope, const char *params, size_t plen,
	      const char *val, size_t vlen, uint64_t ttl_ms, bool negative, uint64_t now_ms)
{
	size_t klen = key_len_for(op->method_len, plen);
	cache_entry *e, *old;

	if (!c->max_entries || klen > UINT32_MAX || vlen > UINT32_MAX ||
	    sizeof(*e) + klen + vlen > c->max_bytes)
		return -E2BIG;
	old = cache_find(c, op->method, op->method_len, scope, params, plen);
	if (old)
		entry_remove(c, old);
	cache_shrink_to(c, c->max_bytes - (sizeof(*e) + klen + vlen), c->max_entries - 1);

	if (c->entries >= c->heap_cap) {
		uint32_t cap = c->heap_cap ? c->heap_cap * 2 : 64;
		cache_entry **h = realloc(c->heap, cap * sizeof(*h));

		if (!h)
			return -ENOMEM;
		c->heap = h;
		c->heap_cap = cap;
	}
	e = malloc(sizeof(*e) + klen + vlen);
	if (!e)
		return -ENOMEM;
	e->op = op;
	e->expires_ms = now_ms + ttl_ms;
	e->negative = negative;
	e->key_len = (uint32_t)klen;
	e->val_len = (uint32_t)vlen;
	key_write(e->data, op->method, op->method_len, scope, params, plen);
	memcpy(e->data + klen, val, vlen);
	if (hmap_put(&c->map, e->data, klen, e) < 0) {
		free(e);
		return -ENOMEM;
	}
	list_push_front(&c->lru, &e->lru);
	e->heap_idx = c->entries;
	c->heap[c->entries++] = e;
	heap_up(c, e->heap_idx);
	c->bytes += entry_bytes(e);
	op->mod->cache_deps++;
	/* a cache store is a path into the module's life: it stamps last use */
	module_touch(op->mod, now_ms);
	return 0;
}

uint32_t cache_expire(cache *c, uint64_t now_ms)
{
	uint32_t n = 0;

	while (c->entries && c->heap[0]->expires_ms <= now_ms) {
		entry_remove(c, c->heap[0]);
		c->expirations++;
		n++;
	}
	return n;
}

uint64_t cache_next_expiry(const cache *c, uint64_t now_ms)
{
	if (!c->entries)
		return UINT64_MAX;
	return c->heap[0]->expires_ms > now_ms ? c->heap[0]->expires_ms - now_ms : 0;
}

uint32_t cache_invalidate(cache *c, const module *mod, const op_info *op)
{
	list_node *it, *next;
	uint32_t n = 0;

	for (it = c->lru.next; it != &c->lru; it = next) {
		cache_entry *e = entry_of(it);

		next = it->next;
		if ((op && e->op != op) || (mod && e->op->mod != mod))
			continue;
		entry_remove(c, e);
		n++;
	}
	return n;
}
