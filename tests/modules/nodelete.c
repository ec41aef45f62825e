/*
 * nodelete.c - test module linked with -z nodelete: dlclose cannot unmap it,
 * so the daemon's RTLD_NOLOAD check after unloading must report it "pinned".
 */
#include <lmms/lmms-module.h>

static int op_ping(const lmms_host *h, lmms_call *c, void *state)
{
	return h->ret_str(c, "pong", 4);
}

static const lmms_op nodelete_ops[] = {
	{ .name = "ping", .fn = op_ping, .flags = 0 },
};

LMMS_MODULE_DEFINE(nodelete, "1.0", nodelete_ops, NULL, NULL, NULL)
