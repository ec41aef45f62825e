/*
 * opname.c - test module whose second op takes its name from the
 * environment (LMMS_TEST_OP_NAME) when the daemon reads the descriptor, so
 * one object tries every name the registry must refuse at load, and the
 * dotted ones it must accept.
 */
#include <lmms/lmms-module.h>
#include <stdlib.h>

static int op_ping(const lmms_host *h, lmms_call *c, void *state)
{
	return h->ret_str(c, "pong", 4);
}

/* not const: entry() fills in the name under test */
static lmms_op opname_ops[] = {
	{ .name = "ping", .fn = op_ping, .doc = "answers pong" },
	{ .name = "named.by.env", .fn = op_ping, .doc = "named by LMMS_TEST_OP_NAME" },
};

static const lmms_module_desc opname_desc = {
	.abi_version = LMMS_MODULE_ABI_VERSION,
	.size = sizeof(lmms_module_desc),
	.name = "opname",
	.version = "1.0",
	.op_size = sizeof(lmms_op),
	LMMS_OPS(opname_ops),
};

LMMS_EXPORT const lmms_module_desc *LMMS_MODULE_ENTRY(void);
const lmms_module_desc *LMMS_MODULE_ENTRY(void)
{
	const char *name = getenv("LMMS_TEST_OP_NAME");

	if (name)
		opname_ops[1].name = name;
	return &opname_desc;
}
