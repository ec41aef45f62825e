/*
 * hash.c - message digests of a str or bin argument, as lower-case hex.
 *
 * Two backends, chosen at build time with -Dhash_backend:
 *
 *  openssl: OpenSSL's libcrypto through EVP, the heavy library
 *    whose lazy loading LIGS exists for. Debian's libcrypto.so.3 is linked
 *    with -z nodelete (OpenSSL's linux targets set OPENSSL_USE_NODELETE), so
 *    once mapped it stays for the process's life: no init flag avoids it and
 *    OPENSSL_cleanup() in fini would make the still-mapped library refuse to
 *    initialise on the next load. The daemon sees the nodelete dependency at
 *    load and reports hash as pinned (pinned_by "libcrypto.so.3").
 *
 *  nettle (default): the same digests through libnettle, which has no nodelete flag
 *    and no global state, so LUGS gives all of its memory back (about 3 MiB
 *    less after the sweep than with libcrypto; see bench/RESULTS.md).
 *
 * Digests are PURE: the daemon caches them, keyed by the input.
 */
#include <lmms/lmms-module.h>

#include <stdint.h>

#ifdef HASH_NETTLE
#include <nettle/md5.h>
#include <nettle/nettle-meta.h>
#include <nettle/sha1.h>
#include <nettle/sha2.h>

typedef const struct nettle_hash *hash_md;
#define HASH_MAX_DIGEST SHA512_DIGEST_SIZE
#define MD_SHA256 (&nettle_sha256)
#define MD_SHA512 (&nettle_sha512)
#define MD_SHA1 (&nettle_sha1)
#define MD_MD5 (&nettle_md5)

/* The largest context we use, so it can live on the stack. */
typedef union hash_ctx {
	struct md5_ctx md5;
	struct sha1_ctx sha1;
	struct sha256_ctx sha256;
	struct sha512_ctx sha512;
} hash_ctx;

static int md_digest(hash_md md, const void *p, size_t n, uint8_t *digest, unsigned *len)
{
	hash_ctx ctx;

	if (md->context_size > sizeof(ctx) || md->digest_size > HASH_MAX_DIGEST)
		return -1;
	md->init(&ctx);
	md->update(&ctx, n, p);
	md->digest(&ctx, md->digest_size, digest);
	*len = md->digest_size;
	return 0;
}
#else
#include <openssl/evp.h>

typedef const EVP_MD *hash_md;
#define HASH_MAX_DIGEST EVP_MAX_MD_SIZE
#define MD_SHA256 EVP_sha256()
#define MD_SHA512 EVP_sha512()
#define MD_SHA1 EVP_sha1()
#define MD_MD5 EVP_md5()

static int md_digest(hash_md md, const void *p, size_t n, uint8_t *digest, unsigned *len)
{
	if (!md || EVP_Digest(p, n, digest, len, md, NULL) != 1 || *len > EVP_MAX_MD_SIZE)
		return -1;
	return 0;
}
#endif

static int hash_digest(const lmms_host *h, lmms_call *c, hash_md md, const char *name)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t digest[HASH_MAX_DIGEST];
	char out[2 * HASH_MAX_DIGEST];
	unsigned len = 0;
	const void *p;
	size_t n;

	if (h->arg_count(c) != 1 || h->arg_bytes(c, 0, &p, &n) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "hash.%s takes one str or bin argument", name);
	if (md_digest(md, p, n, digest, &len) < 0)
		return h->fail(c, LMMS_FAIL_MODULE, "hash.%s: digest failed", name);
	for (unsigned i = 0; i < len; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 0x0f];
	}
	return h->ret_str(c, out, 2 * (size_t)len);
}

static int op_sha256(const lmms_host *h, lmms_call *c, void *state)
{
	return hash_digest(h, c, MD_SHA256, "sha256");
}

static int op_sha512(const lmms_host *h, lmms_call *c, void *state)
{
	return hash_digest(h, c, MD_SHA512, "sha512");
}

static int op_sha1(const lmms_host *h, lmms_call *c, void *state)
{
	return hash_digest(h, c, MD_SHA1, "sha1");
}

static int op_md5(const lmms_host *h, lmms_call *c, void *state)
{
	return hash_digest(h, c, MD_MD5, "md5");
}

/* Digesting is ~1 ms per MiB: past 64 KiB it moves off the event loop. */
#define HASH_INLINE_MAX (64 * 1024)

static const lmms_op hash_ops[] = {
	{ .name = "sha256", .fn = op_sha256, .flags = LMMS_OP_PURE, .cache_ttl_ms = 0,
	  .blocking_above = HASH_INLINE_MAX, .doc = "SHA-256 of a str or bin, as lower-case hex" },
	{ .name = "sha512", .fn = op_sha512, .flags = LMMS_OP_PURE, .cache_ttl_ms = 0,
	  .blocking_above = HASH_INLINE_MAX, .doc = "SHA-512 of a str or bin, as lower-case hex" },
	{ .name = "sha1", .fn = op_sha1, .flags = LMMS_OP_PURE, .cache_ttl_ms = 0,
	  .blocking_above = HASH_INLINE_MAX, .doc = "SHA-1 of a str or bin, as lower-case hex" },
	{ .name = "md5", .fn = op_md5, .flags = LMMS_OP_PURE, .cache_ttl_ms = 0,
	  .blocking_above = HASH_INLINE_MAX, .doc = "MD5 of a str or bin, as lower-case hex" },
};

LMMS_MODULE(.name = "hash", .version = "1.0", LMMS_OPS(hash_ops),
	    .description = "message digests (SHA-2, SHA-1, MD5) as hex");
