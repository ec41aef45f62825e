/*
 * bigtable.c - test module that holds 16 MiB of touched memory while loaded.
 *
 * init allocates the table and writes every page (so it is really resident,
 * not just reserved), fini frees it: memory tests check the daemon's RSS goes
 * up on load and back down on unload.
 */
#include <lmms/lmms-module.h>

#include <stdlib.h>

#define BIGTABLE_BYTES (16u << 20)

static int bigtable_init(const lmms_host *h, lmms_call *c, void **state)
{
	uint32_t *t = malloc(BIGTABLE_BYTES);

	if (!t)
		return h->fail(c, LMMS_FAIL_MODULE, "bigtable: out of memory");
	for (size_t i = 0; i < BIGTABLE_BYTES / sizeof(*t); i++)
		t[i] = (uint32_t)i * 2654435761u + 1u;
	*state = t;
	return 0;
}

static void bigtable_fini(const lmms_host *h, void *state)
{
	free(state);
}

static int op_sum(const lmms_host *h, lmms_call *c, void *state)
{
	const uint32_t *t = state;
	uint64_t sum = 0;

	for (size_t i = 0; i < BIGTABLE_BYTES / sizeof(*t); i++)
		sum += t[i];
	return h->ret_uint(c, sum);
}

static const lmms_op bigtable_ops[] = {
	{ .name = "sum", .fn = op_sum, .flags = 0 },
};

LMMS_MODULE_DEFINE(bigtable, "1.0", bigtable_ops, bigtable_init, bigtable_fini, NULL)
