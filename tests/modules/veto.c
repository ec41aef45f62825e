/*
 * veto.c - test module whose can_unload always refuses: LUGS must count the
 * veto and keep it resident.
 */
#include <lmms/lmms-module.h>

static int veto_can_unload(const lmms_host *h, void *state, const char **reason)
{
	*reason = "test veto";
	return 1;
}

static int op_ping(const lmms_host *h, lmms_call *c, void *state)
{
	return h->ret_str(c, "pong", 4);
}

static const lmms_op veto_ops[] = {
	{ .name = "ping", .fn = op_ping, .flags = 0 },
};

LMMS_MODULE_DEFINE(veto, "1.0", veto_ops, NULL, NULL, veto_can_unload)
