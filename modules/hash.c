/*
 * hash.c - message digests of a str or bin argument, as lower-case hex.
 *
 * All through OpenSSL's EVP interface, so the implementation (and any
 * hardware acceleration) is libcrypto's. Digests are PURE: the daemon caches
 * them, keyed by the input.
 */
#include <lmms/lmms-module.h>

#include <openssl/evp.h>

static int hash_digest(const lmms_host *h, lmms_call *c, const EVP_MD *md, const char *name)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char digest[EVP_MAX_MD_SIZE];
	char out[2 * EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	const void *p;
	size_t n;

	if (h->arg_count(c) != 1 || h->arg_bytes(c, 0, &p, &n) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "hash.%s takes one str or bin argument", name);
	if (!md)
		return h->fail(c, LMMS_FAIL_MODULE, "hash.%s: digest unavailable in libcrypto",
			       name);
	if (EVP_Digest(p, n, digest, &len, md, NULL) != 1 || len > EVP_MAX_MD_SIZE)
		return h->fail(c, LMMS_FAIL_MODULE, "hash.%s: libcrypto digest failed", name);
	for (unsigned int i = 0; i < len; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 0x0f];
	}
	return h->ret_str(c, out, 2 * (size_t)len);
}

static int op_sha256(const lmms_host *h, lmms_call *c, void *state)
{
	return hash_digest(h, c, EVP_sha256(), "sha256");
}

static int op_sha512(const lmms_host *h, lmms_call *c, void *state)
{
	return hash_digest(h, c, EVP_sha512(), "sha512");
}

static int op_sha1(const lmms_host *h, lmms_call *c, void *state)
{
	return hash_digest(h, c, EVP_sha1(), "sha1");
}

static int op_md5(const lmms_host *h, lmms_call *c, void *state)
{
	return hash_digest(h, c, EVP_md5(), "md5");
}

static const lmms_op hash_ops[] = {
	{ .name = "sha256", .fn = op_sha256, .flags = LMMS_OP_PURE, .cache_ttl_ms = 0 },
	{ .name = "sha512", .fn = op_sha512, .flags = LMMS_OP_PURE, .cache_ttl_ms = 0 },
	{ .name = "sha1", .fn = op_sha1, .flags = LMMS_OP_PURE, .cache_ttl_ms = 0 },
	{ .name = "md5", .fn = op_md5, .flags = LMMS_OP_PURE, .cache_ttl_ms = 0 },
};

LMMS_MODULE_DEFINE(hash, "1.0", hash_ops, NULL, NULL, NULL)
