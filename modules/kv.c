/*
 * kv.c - a small in-memory key-value store held in the module's state.
 *
 * Keys are strings, values any msgpack value (stored as the bytes the daemon
 * re-encoded, and handed back through ret_msgpack). The store is bounded in
 * keys, key size, value size and total bytes, each with its own clear error.
 * Its data would vanish with the module, so can_unload vetoes unloading while
 * it holds keys: the reason can_unload exists.
 *
 * All ops are non-BLOCKING, so they run only on the daemon's loop thread, as
 * do init, fini and can_unload: no lock is needed.
 */
#include <lmms/lmms-module.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KV_MAX_KEYS 65536u
#define KV_MAX_KEY_BYTES 1024u
#define KV_MAX_VALUE_BYTES (1u << 20)
#define KV_MAX_TOTAL_BYTES (64u << 20)
#define KV_INITIAL_BUCKETS 64u

struct kv_entry {
	struct kv_entry *next;
	uint64_t hash;
	size_t key_len;
	size_t val_len;
	unsigned char data[]; /* key bytes, then value bytes */
};

struct kv_store {
	struct kv_entry **buckets;
	size_t n_buckets; /* power of two */
	size_t n_keys;
	size_t bytes; /* keys + values */
	char reason[64];
};

static uint64_t kv_hash(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static struct kv_entry **kv_find(struct kv_store *s, const char *k, size_t n, uint64_t h)
{
	struct kv_entry **pp = &s->buckets[h & (s->n_buckets - 1)];

	for (; *pp; pp = &(*pp)->next) {
		if ((*pp)->hash == h && (*pp)->key_len == n && memcmp((*pp)->data, k, n) == 0)
			return pp;
	}
	return pp;
}

static int kv_grow(struct kv_store *s)
{
	size_t nb = s->n_buckets * 2;
	struct kv_entry **b = calloc(nb, sizeof(*b));

	if (!b)
		return -1;
	for (size_t i = 0; i < s->n_buckets; i++) {
		struct kv_entry *e = s->buckets[i], *next;

		for (; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	}
	free(s->buckets);
	s->buckets = b;
	s->n_buckets = nb;
	return 0;
}

static int kv_init(const lmms_host *h, lmms_call *c, void **state)
{
	struct kv_store *s = calloc(1, sizeof(*s));

	if (!s)
		return h->fail(c, LMMS_FAIL_MODULE, "kv: out of memory");
	s->n_buckets = KV_INITIAL_BUCKETS;
	s->buckets = calloc(s->n_buckets, sizeof(*s->buckets));
	if (!s->buckets) {
		free(s);
		return h->fail(c, LMMS_FAIL_MODULE, "kv: out of memory");
	}
	*state = s;
	return 0;
}

static void kv_fini(const lmms_host *h, void *state)
{
	struct kv_store *s = state;

	if (!s)
		return;
	for (size_t i = 0; i < s->n_buckets; i++) {
		struct kv_entry *e = s->buckets[i], *next;

		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(s->buckets);
	free(s);
}

static int kv_can_unload(const lmms_host *h, void *state, const char **reason)
{
	struct kv_store *s = state;

	if (!s || s->n_keys == 0)
		return 0;
	snprintf(s->reason, sizeof(s->reason), "holds %zu keys", s->n_keys);
	*reason = s->reason;
	return 1;
}

static int kv_key(const lmms_host *h, lmms_call *c, const char *op, size_t want_args,
		  const char **k, size_t *n)
{
	if (h->arg_count(c) != want_args || h->arg_str(c, 0, k, n) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "kv.%s takes a string key%s", op,
			       want_args == 2 ? " and a value" : "");
	if (*n > KV_MAX_KEY_BYTES)
		return h->fail(c, LMMS_FAIL_PARAMS, "kv.%s: key of %zu bytes exceeds %u", op, *n,
			       KV_MAX_KEY_BYTES);
	return 0;
}

static int op_set(const lmms_host *h, lmms_call *c, void *state)
{
	struct kv_store *s = state;
	struct kv_entry **pp, *e, *old;
	const void *v;
	const char *k;
	size_t kn, vn, bytes;
	uint64_t hv;

	if (kv_key(h, c, "set", 2, &k, &kn) < 0)
		return -1;
	if (h->arg_msgpack(c, 1, &v, &vn) < 0)
		return h->fail(c, LMMS_FAIL_MODULE, "kv.set: cannot read the value");
	if (vn > KV_MAX_VALUE_BYTES)
		return h->fail(c, LMMS_FAIL_PARAMS, "kv.set: value of %zu bytes exceeds %u", vn,
			       KV_MAX_VALUE_BYTES);
	hv = kv_hash(k, kn);
	pp = kv_find(s, k, kn, hv);
	old = *pp;
	bytes = s->bytes - (old ? old->key_len + old->val_len : 0) + kn + vn;
	if (bytes > KV_MAX_TOTAL_BYTES)
		return h->fail(c, LMMS_FAIL_MODULE, "kv.set: store full (%zu of %u bytes used)",
			       s->bytes, KV_MAX_TOTAL_BYTES);
	if (!old && s->n_keys >= KV_MAX_KEYS)
		return h->fail(c, LMMS_FAIL_MODULE, "kv.set: store full (%u keys)", KV_MAX_KEYS);
	e = malloc(sizeof(*e) + kn + vn);
	if (!e)
		return h->fail(c, LMMS_FAIL_MODULE, "kv.set: out of memory");
	e->hash = hv;
	e->key_len = kn;
	e->val_len = vn;
	memcpy(e->data, k, kn);
	memcpy(e->data + kn, v, vn);
	if (old) {
		e->next = old->next;
		*pp = e;
		free(old);
	} else {
		e->next = *pp;
		*pp = e;
		s->n_keys++;
	}
	s->bytes = bytes;
	/* Growing is an optimisation: on failure the chains just get longer. */
	if (s->n_keys > s->n_buckets)
		(void)kv_grow(s);
	return h->ret_bool(c, 1);
}

static int op_get(const lmms_host *h, lmms_call *c, void *state)
{
	struct kv_store *s = state;
	struct kv_entry *e;
	const char *k;
	size_t kn;

	if (kv_key(h, c, "get", 1, &k, &kn) < 0)
		return -1;
	e = *kv_find(s, k, kn, kv_hash(k, kn));
	if (!e)
		return h->ret_nil(c);
	return h->ret_msgpack(c, e->data + e->key_len, e->val_len);
}

static int op_del(const lmms_host *h, lmms_call *c, void *state)
{
	struct kv_store *s = state;
	struct kv_entry **pp, *e;
	const char *k;
	size_t kn;

	if (kv_key(h, c, "del", 1, &k, &kn) < 0)
		return -1;
	pp = kv_find(s, k, kn, kv_hash(k, kn));
	e = *pp;
	if (!e)
		return h->ret_bool(c, 0);
	*pp = e->next;
	s->n_keys--;
	s->bytes -= e->key_len + e->val_len;
	free(e);
	return h->ret_bool(c, 1);
}

static int op_count(const lmms_host *h, lmms_call *c, void *state)
{
	struct kv_store *s = state;

	if (h->arg_count(c) != 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "kv.count takes no params");
	return h->ret_uint(c, s->n_keys);
}

static const lmms_op kv_ops[] = {
	{ .name = "set", .fn = op_set, .flags = 0,
	  .doc = "store a value (any) under a str key" },
	{ .name = "get", .fn = op_get, .flags = 0,
	  .doc = "the value stored under a key, or nil" },
	{ .name = "del", .fn = op_del, .flags = 0,
	  .doc = "remove a key; true if it existed" },
	{ .name = "count", .fn = op_count, .flags = 0,
	  .doc = "the number of keys held" },
};

LMMS_MODULE(.name = "kv", .version = "1.0", LMMS_OPS(kv_ops),
	    .description = "a small in-memory key-value store, kept while it holds keys",
	    .init = kv_init, .fini = kv_fini, .can_unload = kv_can_unload);
