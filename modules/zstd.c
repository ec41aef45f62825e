/*
 * zstd.c - Zstandard compression of a str or bin argument, through libzstd.
 *
 * Both directions are CPU work on up to megabytes, so they are BLOCKING (run
 * on the thread pool) and PURE (cached). Decompression trusts nothing in its
 * input: the frame must state its decompressed size, and that size must be
 * below ZSTD_MOD_MAX_OUTPUT before anything is allocated, so a tiny "zip
 * bomb" frame cannot make the daemon allocate gigabytes.
 */
#include <lmms/lmms-module.h>

#include <stdlib.h>
#include <zstd.h>

#define ZSTD_MOD_MAX_OUTPUT (16u << 20)
#define ZSTD_MOD_DEFAULT_LEVEL 3
#define ZSTD_MOD_MIN_LEVEL 1
#define ZSTD_MOD_MAX_LEVEL 19

static int op_compress(const lmms_host *h, lmms_call *c, void *state)
{
	int64_t level = ZSTD_MOD_DEFAULT_LEVEL;
	size_t n, cap, len;
	const void *p;
	void *out;
	int r;

	if (h->arg_count(c) < 1 || h->arg_count(c) > 2 || h->arg_bytes(c, 0, &p, &n) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS,
			       "zstd.compress takes str or bin data and an optional level");
	if (h->arg_count(c) == 2 &&
	    (h->arg_int(c, 1, &level) < 0 || level < ZSTD_MOD_MIN_LEVEL ||
	     level > ZSTD_MOD_MAX_LEVEL))
		return h->fail(c, LMMS_FAIL_PARAMS, "zstd.compress: level must be an integer %d..%d",
			       ZSTD_MOD_MIN_LEVEL, ZSTD_MOD_MAX_LEVEL);
	cap = ZSTD_compressBound(n);
	if (ZSTD_isError(cap) || cap == 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "zstd.compress: input of %zu bytes is too large",
			       n);
	out = malloc(cap);
	if (!out)
		return h->fail(c, LMMS_FAIL_MODULE, "zstd.compress: out of memory");
	len = ZSTD_compress(out, cap, p, n, (int)level);
	if (ZSTD_isError(len)) {
		r = h->fail(c, LMMS_FAIL_MODULE, "zstd.compress: %s", ZSTD_getErrorName(len));
		goto out;
	}
	r = h->ret_bin(c, out, len);
out:
	free(out);
	return r;
}

static int op_decompress(const lmms_host *h, lmms_call *c, void *state)
{
	unsigned long long size;
	const void *p;
	size_t n, len;
	void *out;
	int r;

	if (h->arg_count(c) != 1 || h->arg_bytes(c, 0, &p, &n) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "zstd.decompress takes one bin (a zstd frame)");
	size = ZSTD_getFrameContentSize(p, n);
	if (size == ZSTD_CONTENTSIZE_ERROR)
		return h->fail(c, LMMS_FAIL_MODULE, "zstd.decompress: input is not a zstd frame");
	if (size == ZSTD_CONTENTSIZE_UNKNOWN)
		return h->fail(c, LMMS_FAIL_MODULE,
			       "zstd.decompress: frame does not state its decompressed size");
	if (size > ZSTD_MOD_MAX_OUTPUT)
		return h->fail(c, LMMS_FAIL_MODULE,
			       "zstd.decompress: decompressed size %llu exceeds the limit of %u bytes",
			       size, ZSTD_MOD_MAX_OUTPUT);
	out = malloc(size ? (size_t)size : 1);
	if (!out)
		return h->fail(c, LMMS_FAIL_MODULE, "zstd.decompress: out of memory");
	len = ZSTD_decompress(out, (size_t)size, p, n);
	if (ZSTD_isError(len)) {
		r = h->fail(c, LMMS_FAIL_MODULE, "zstd.decompress: %s", ZSTD_getErrorName(len));
		goto out;
	}
	if (len != size) {
		r = h->fail(c, LMMS_FAIL_MODULE,
			    "zstd.decompress: frame decoded to %zu bytes, header said %llu", len,
			    size);
		goto out;
	}
	r = h->ret_bin(c, out, len);
out:
	free(out);
	return r;
}

static int op_version(const lmms_host *h, lmms_call *c, void *state)
{
	const char *v = ZSTD_versionString();
	size_t n = 0;

	if (h->arg_count(c) != 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "zstd.version takes no params");
	while (v[n])
		n++;
	return h->ret_str(c, v, n);
}

static const lmms_op zstd_ops[] = {
	{ .name = "compress", .fn = op_compress, .flags = LMMS_OP_PURE | LMMS_OP_BLOCKING,
	  .doc = "compress str or bin into one zstd frame (level 1..19, default 3)" },
	{ .name = "decompress", .fn = op_decompress, .flags = LMMS_OP_PURE | LMMS_OP_BLOCKING,
	  .doc = "decompress one zstd frame that states its size (at most 16 MiB)" },
	{ .name = "version", .fn = op_version, .flags = 0,
	  .doc = "the libzstd version" },
};

LMMS_MODULE(.name = "zstd", .version = "1.0", LMMS_OPS(zstd_ops),
	    .description = "Zstandard compression and bounded decompression (libzstd)");
