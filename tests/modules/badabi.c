/*
 * badabi.c - test module built for an ABI the daemon does not speak (999):
 * the daemon must refuse it before calling anything but the entry.
 */
#include <lmms/lmms-module.h>

static int op_ping(const lmms_host *h, lmms_call *c, void *state)
{
	return h->ret_str(c, "pong", 4);
}

static const lmms_op badabi_ops[] = {
	{ .name = "ping", .fn = op_ping, .flags = 0 },
};

static const lmms_module_desc badabi_desc = {
	.abi_version = 999,
	.size = sizeof(lmms_module_desc),
	.name = "badabi",
	.version = "1.0",
	.op_size = sizeof(lmms_op),
	.ops = badabi_ops,
	.n_ops = 1,
};

LMMS_EXPORT const lmms_module_desc *LMMS_MODULE_ENTRY(void);
const lmms_module_desc *LMMS_MODULE_ENTRY(void)
{
	return &badabi_desc;
}
