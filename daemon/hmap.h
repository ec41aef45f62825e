/*
 * hmap.h - open-addressing hash map from byte strings to pointers.
 *
 * Keys are not copied: each key must live as long as its entry (callers key
 * by a string owned by the value). Supports insert, lookup and remove; the
 * table grows at 50% load so probes stay short. Used for module names,
 * methods and the ZAFP fast-path table.
 */
#ifndef LMMS_HMAP_H
#define LMMS_HMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct hmap_slot {
	const char *key; /* NULL: empty; HMAP_TOMBSTONE: removed */
	uint32_t len;
	uint32_t hash;
	void *value;
} hmap_slot;

typedef struct hmap {
	hmap_slot *slots;
	uint32_t cap; /* power of two, or 0 */
	uint32_t used; /* live entries */
	uint32_t filled; /* live + tombstones */
	uint32_t max; /* refuse inserts beyond this many live entries */
} hmap;

uint32_t hmap_hash(const void *key, size_t len);

void hmap_init(hmap *m, uint32_t max_entries);
void hmap_fini(hmap *m);
void *hmap_get(const hmap *m, const void *key, size_t len);
void *hmap_get_h(const hmap *m, const void *key, size_t len, uint32_t hash);
/* -EEXIST, -ENOSPC (over max), -ENOMEM, or 0. */
int hmap_put(hmap *m, const char *key, size_t len, void *value);
/* The removed value, or NULL if absent. */
void *hmap_del(hmap *m, const void *key, size_t len);

#endif
