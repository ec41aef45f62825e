/*
 * fault-hog.c - test module that allocates (and touches) as much memory as
 * it is asked for, for memory_max. alloc aborts when malloc fails, as
 * g_malloc and C++'s new do, so a worker over its limit dies (SIGABRT);
 * alloc_checked answers module_error instead and the worker lives on.
 */
#include <lmms/lmms-module.h>

#include <stdlib.h>
#include <string.h>

#define HOG_CHUNK (1u << 20)
#define HOG_MAX_MIB 4096

/* n MiB, touched; 0 or -1 when malloc said no. */
static int hog(int64_t mib, int abort_on_fail)
{
	static void *chunks[HOG_MAX_MIB];
	int64_t got = 0;
	int r = 0;

	for (; got < mib; got++) {
		chunks[got] = malloc(HOG_CHUNK);
		if (!chunks[got]) {
			if (abort_on_fail)
				abort();
			r = -1;
			break;
		}
		memset(chunks[got], 0x5a, HOG_CHUNK);
	}
	while (got > 0)
		free(chunks[--got]);
	return r;
}

static int op_alloc_common(const lmms_host *h, lmms_call *c, int abort_on_fail)
{
	int64_t mib;

	if (h->arg_int(c, 0, &mib) < 0 || mib < 0 || mib > HOG_MAX_MIB)
		return h->fail(c, LMMS_FAIL_PARAMS, "takes MiB, 0..%d", HOG_MAX_MIB);
	if (hog(mib, abort_on_fail) < 0)
		return h->fail(c, LMMS_FAIL_MODULE, "out of memory after asking for %lld MiB",
			       (long long)mib);
	return h->ret_int(c, mib);
}

static int op_alloc(const lmms_host *h, lmms_call *c, void *state)
{
	return op_alloc_common(h, c, 1);
}

static int op_alloc_checked(const lmms_host *h, lmms_call *c, void *state)
{
	return op_alloc_common(h, c, 0);
}

static const lmms_op hog_ops[] = {
	{ .name = "alloc", .fn = op_alloc, .doc = "allocate MiB; abort when refused" },
	{ .name = "alloc_checked", .fn = op_alloc_checked,
	  .doc = "allocate MiB; module_error when refused" },
	{ .name = "alloc_blocking", .fn = op_alloc_checked, .flags = LMMS_OP_BLOCKING,
	  .doc = "alloc_checked on the pool" },
};

LMMS_MODULE(.name = "fault-hog", .version = "1.0", LMMS_OPS(hog_ops),
	    .description = "allocates on request");
