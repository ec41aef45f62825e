/*
 * fault-hang.c - test module whose ops never return, inline (the loop that
 * runs it freezes) and BLOCKING (a pool thread is lost for good). Only
 * server.call_timeout killing the worker ends such a call.
 */
#include <lmms/lmms-module.h>

#include <unistd.h>

static int op_ping(const lmms_host *h, lmms_call *c, void *state)
{
	return h->ret_str(c, "pong", 4);
}

static __attribute__((noreturn)) void wait_forever(void)
{
	for (;;)
		pause();
}

static int op_hang(const lmms_host *h, lmms_call *c, void *state)
{
	wait_forever();
}

static const lmms_op hang_ops[] = {
	{ .name = "ping", .fn = op_ping, .doc = "answer pong" },
	{ .name = "hang", .fn = op_hang, .doc = "never return, on the loop" },
	{ .name = "hang_blocking", .fn = op_hang, .flags = LMMS_OP_BLOCKING,
	  .doc = "never return, on the pool" },
};

LMMS_MODULE(.name = "fault-hang", .version = "1.0", LMMS_OPS(hang_ops),
	    .description = "never answers");
