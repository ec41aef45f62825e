/*
 * fault-tls.c - test module that gives the calling thread a pthread_key
 * value whose destructor is module code. When that thread (a pool thread)
 * exits after the module was dlclosed, glibc calls into unmapped memory; in
 * a worker the module is never unmapped before the threads are gone.
 */
#include <lmms/lmms-module.h>

#include <pthread.h>
#include <stdlib.h>

static pthread_key_t key;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void value_free(void *p)
{
	free(p);
}

static void key_make(void)
{
	pthread_key_create(&key, value_free);
}

static int op_set(const lmms_host *h, lmms_call *c, void *state)
{
	void *v;

	pthread_once(&once, key_make);
	if (pthread_getspecific(key))
		return h->ret_bool(c, 0);
	v = malloc(64);
	if (!v || pthread_setspecific(key, v) != 0) {
		free(v);
		return h->fail(c, LMMS_FAIL_MODULE, "cannot set the thread's value");
	}
	return h->ret_bool(c, 1);
}

static const lmms_op tls_ops[] = {
	{ .name = "set", .fn = op_set, .flags = LMMS_OP_BLOCKING,
	  .doc = "give this pool thread a value with a destructor in the module" },
};

LMMS_MODULE(.name = "fault-tls", .version = "1.0", LMMS_OPS(tls_ops),
	    .description = "registers a TLS destructor");
