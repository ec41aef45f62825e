/*
 * badinit.c - test module whose init refuses: the load must fail with
 * load_failed carrying the module's own message, and be retried with backoff.
 */
#include <lmms/lmms-module.h>

static int badinit_init(const lmms_host *h, lmms_call *c, void **state)
{
	h->fail(c, LMMS_FAIL_MODULE, "init refused: test");
	return -1;
}

static int op_ping(const lmms_host *h, lmms_call *c, void *state)
{
	return h->ret_str(c, "pong", 4);
}

static const lmms_op badinit_ops[] = {
	{ .name = "ping", .fn = op_ping, .flags = 0 },
};

LMMS_MODULE_DEFINE(badinit, "1.0", badinit_ops, badinit_init, NULL, NULL)
