/*
 * oldabi.c - a module as built against the ABI 1 header before
 * lmms_op.blocking_above was appended: its op_size stops at cache_ttl_ms.
 * The daemon must walk the table with the module's own stride and read no
 * field the module does not have.
 */
#include <lmms/lmms-module.h>

struct old_op {
	const char *name;
	lmms_op_fn fn;
	uint32_t flags;
	uint32_t cache_ttl_ms;
};

static int op_ping(const lmms_host *h, lmms_call *c, void *state)
{
	return h->ret_str(c, "pong", 4);
}

static const struct old_op oldabi_ops[] = {
	{ "ping", op_ping, 0, 0 },
	{ "cached", op_ping, LMMS_OP_PURE, 1234 },
};

static const lmms_module_desc oldabi_desc = {
	.abi_version = LMMS_MODULE_ABI_VERSION,
	.size = sizeof(lmms_module_desc),
	.name = "oldabi",
	.version = "0.9",
	.op_size = sizeof(struct old_op),
	.ops = (const lmms_op *)(const void *)oldabi_ops,
	.n_ops = 2,
};

LMMS_EXPORT const lmms_module_desc *LMMS_MODULE_ENTRY(void);
const lmms_module_desc *LMMS_MODULE_ENTRY(void)
{
	return &oldabi_desc;
}
