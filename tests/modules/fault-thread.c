/*
 * fault-thread.c - test module that starts a thread of its own and never
 * stops it. In lmmsd the thread's code is unmapped under it at dlclose and
 * the daemon crashes a moment later; a worker simply ends with it.
 */
#include <lmms/lmms-module.h>

#include <pthread.h>
#include <unistd.h>

LMMS_MODULE_ISOLATION("process");

static void *idle_thread(void *arg)
{
	for (;;)
		pause();
	return arg;
}

static int op_start(const lmms_host *h, lmms_call *c, void *state)
{
	pthread_attr_t attr;
	pthread_t t;
	int r;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&t, &attr, idle_thread, NULL);
	pthread_attr_destroy(&attr);
	if (r != 0)
		return h->fail(c, LMMS_FAIL_MODULE, "pthread_create: %d", r);
	return h->ret_bool(c, 1);
}

static const lmms_op thread_ops[] = {
	{ .name = "start", .fn = op_start, .doc = "start a thread that never ends" },
};

LMMS_MODULE(.name = "fault-thread", .version = "1.0", LMMS_OPS(thread_ops),
	    .description = "leaves a thread running");
