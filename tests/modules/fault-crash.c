/*
 * fault-crash.c - test module that dies on request, the ways real modules
 * die: a wild write inline or on the thread pool, abort(), exit(status). In
 * lmmsd each of them ends the daemon; in a worker each must end only the
 * worker, with the call answered module_crashed. It declares isolation
 * "process" (the elfnote test reads that back from this file).
 */
#include <lmms/lmms-module.h>

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

LMMS_MODULE_ISOLATION("process");

static int op_ping(const lmms_host *h, lmms_call *c, void *state)
{
	return h->ret_str(c, "pong", 4);
}

/* Not NULL: UBSan would report a null store (and abort) before the fault;
 * page zero is unmapped all the same. */
static int op_segv(const lmms_host *h, lmms_call *c, void *state)
{
	volatile int *volatile p = (volatile int *)(uintptr_t)16;

	*p = 1;
	return h->ret_nil(c);
}

static int op_abort(const lmms_host *h, lmms_call *c, void *state)
{
	abort();
}

static int op_exit(const lmms_host *h, lmms_call *c, void *state)
{
	int64_t status = 0;

	if (h->arg_count(c) > 0 && h->arg_int(c, 0, &status) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "exit takes an optional integer status");
	exit((int)status);
}

static __attribute__((noreturn)) void wait_forever(void)
{
	for (;;)
		pause();
}

/* Never returns: a call that is in flight when another one kills the worker. */
static int op_park(const lmms_host *h, lmms_call *c, void *state)
{
	wait_forever();
}

static const lmms_op crash_ops[] = {
	{ .name = "ping", .fn = op_ping, .doc = "answer pong" },
	{ .name = "segv", .fn = op_segv, .doc = "write to page zero on the loop" },
	{ .name = "segv_blocking", .fn = op_segv, .flags = LMMS_OP_BLOCKING,
	  .doc = "write to page zero on the pool" },
	{ .name = "abort", .fn = op_abort, .doc = "abort()" },
	{ .name = "exit", .fn = op_exit, .doc = "exit(status)" },
	{ .name = "park", .fn = op_park, .flags = LMMS_OP_BLOCKING, .doc = "never return" },
};

LMMS_MODULE(.name = "fault-crash", .version = "1.0", LMMS_OPS(crash_ops),
	    .description = "dies on request");
