/*
 * hash.c - message digests of a str or bin argument, as lower-case hex.
 *
 * Through nettle, not OpenSSL: Debian's libcrypto.so.3 is linked with
 * -z nodelete (OpenSSL's linux targets set OPENSSL_USE_NODELETE), so once
 * this module pulled it in, about 3.5 MiB (its text plus its global state)
 * stayed resident for the daemon's life after hash.so itself was unloaded.
 * No init flag avoids that, and OPENSSL_cleanup() cannot be used in fini
 * because the still-mapped library refuses to initialise again when the
 * module is loaded the next time. libnettle is unloaded with us, and keeps
 * no global state. Digests are PURE: the daemon caches them, keyed by the input.
 */
#include <lmms/lmms-module.h>

#include <nettle/md5.h>
#include <nettle/nettle-meta.h>
#include <nettle/sha1.h>
#include <nettle/sha2.h>

/* The largest hash context we use, so the context can live on the stack. */
typedef union hash_ctx {
	struct md5_ctx md5;
	struct sha1_ctx sha1;
	struct sha256_ctx sha256;
	struct sha512_ctx sha512;
} hash_ctx;

#define HASH_MAX_DIGEST SHA512_DIGEST_SIZE

static int hash_digest(const lmms_host *h, lmms_call *c, const struct nettle_hash *md,
		       const char *name)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t digest[HASH_MAX_DIGEST];
	char out[2 * HASH_MAX_DIGEST];
	hash_ctx ctx;
	const void *p;
	size_t n;

	if (h->arg_count(c) != 1 || h->arg_bytes(c, 0, &p, &n) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "hash.%s takes one str or bin argument", name);
	if (md->context_size > sizeof(ctx) || md->digest_size > sizeof(digest))
		return h->fail(c, LMMS_FAIL_MODULE, "hash.%s: digest larger than expected", name);
	md->init(&ctx);
	md->update(&ctx, n, p);
	md->digest(&ctx, md->digest_size, digest);
	for (unsigned int i = 0; i < md->digest_size; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 0x0f];
	}
	return h->ret_str(c, out, 2 * (size_t)md->digest_size);
}

static int op_sha256(const lmms_host *h, lmms_call *c, void *state)
{
	return hash_digest(h, c, &nettle_sha256, "sha256");
}

static int op_sha512(const lmms_host *h, lmms_call *c, void *state)
{
	return hash_digest(h, c, &nettle_sha512, "sha512");
}

static int op_sha1(const lmms_host *h, lmms_call *c, void *state)
{
	return hash_digest(h, c, &nettle_sha1, "sha1");
}

static int op_md5(const lmms_host *h, lmms_call *c, void *state)
{
	return hash_digest(h, c, &nettle_md5, "md5");
}

static const lmms_op hash_ops[] = {
	{ .name = "sha256", .fn = op_sha256, .flags = LMMS_OP_PURE, .cache_ttl_ms = 0 },
	{ .name = "sha512", .fn = op_sha512, .flags = LMMS_OP_PURE, .cache_ttl_ms = 0 },
	{ .name = "sha1", .fn = op_sha1, .flags = LMMS_OP_PURE, .cache_ttl_ms = 0 },
	{ .name = "md5", .fn = op_md5, .flags = LMMS_OP_PURE, .cache_ttl_ms = 0 },
};

LMMS_MODULE_DEFINE(hash, "1.0", hash_ops, NULL, NULL, NULL)
