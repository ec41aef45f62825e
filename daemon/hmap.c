/*
 * hmap.c - open-addressing hash map (linear probing, FNV-1a).
 */
#include "hmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char hmap_tombstone[1];
#define HMAP_TOMBSTONE hmap_tombstone

uint32_t hmap_hash(const void *key, size_t len)
{
	const unsigned char *p = key;
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 16777619u;
	}
	return h;
}

void hmap_init(hmap *m, uint32_t max_entries)
{
	memset(m, 0, sizeof(*m));
	m->max = max_entries;
}

void hmap_fini(hmap *m)
{
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

static hmap_slot *hmap_find(const hmap *m, const void *key, size_t len, uint32_t hash)
{
	if (!m->cap)
		return NULL;
	for (uint32_t i = hash & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		hmap_slot *s = &m->slots[i];

		if (!s->key)
			return NULL;
		if (s->key != HMAP_TOMBSTONE && s->hash == hash && s->len == len &&
		    memcmp(s->key, key, len) == 0)
			return s;
	}
}

void *hmap_get_h(const hmap *m, const void *key, size_t len, uint32_t hash)
{
	hmap_slot *s = hmap_find(m, key, len, hash);

	return s ? s->value : NULL;
}

void *hmap_get(const hmap *m, const void *key, size_t len)
{
	return hmap_get_h(m, key, len, hmap_hash(key, len));
}

static int hmap_resize(hmap *m, uint32_t cap)
{
	hmap_slot *old = m->slots;
	uint32_t old_cap = m->cap;

	m->slots = calloc(cap, sizeof(*m->slots));
	if (!m->slots) {
		m->slots = old;
		return -ENOMEM;
	}
	m->cap = cap;
	m->filled = m->used;
	for (uint32_t i = 0; i < old_cap; i++) {
		hmap_slot *s = &old[i];
		uint32_t j;

		if (!s->key || s->key == HMAP_TOMBSTONE)
			continue;
		for (j = s->hash & (cap - 1); m->slots[j].key; j = (j + 1) & (cap - 1))
			;
		m->slots[j] = *s;
	}
	free(old);
	return 0;
}

int hmap_put(hmap *m, const char *key, size_t len, void *value)
{
	uint32_t hash = hmap_hash(key, len);
	uint32_t i;
	int r;

	if (len > UINT32_MAX)
		return -EINVAL;
	if (hmap_find(m, key, len, hash))
		return -EEXIST;
	if (m->max && m->used >= m->max)
		return -ENOSPC;
	if ((m->filled + 1) * 2 > m->cap) {
		uint32_t cap = 16;

		/* Sized by live entries: a table full of tombstones is rehashed at
		 * its own size instead of growing without bound under churn. */
		while ((m->used + 1) * 2 > cap)
			cap *= 2;
		if (cap < m->cap)
			cap = m->cap;
		r = hmap_resize(m, cap);
		if (r < 0)
			return r;
	}
	for (i = hash & (m->cap - 1); m->slots[i].key && m->slots[i].key != HMAP_TOMBSTONE;
	     i = (i + 1) & (m->cap - 1))
		;
	if (!m->slots[i].key)
		m->filled++;
	m->slots[i] = (hmap_slot){ .key = key, .len = (uint32_t)len, .hash = hash, .value = value };
	m->used++;
	return 0;
}

void *hmap_del(hmap *m, const void *key, size_t len)
{
	hmap_slot *s = hmap_find(m, key, len, hmap_hash(key, len));
	void *v;

	if (!s)
		return NULL;
	v = s->value;
	s->key = HMAP_TOMBSTONE;
	s->value = NULL;
	m->used--;
	return v;
}
