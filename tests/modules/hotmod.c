/*
 * hotmod.c - a module built twice, as hotmod-v1.so and hotmod-v2.so, for the
 * tests that replace a module's file on disk while it is called: the copy
 * installed as hotmod.so answers hotmod.version with the version it was
 * built as.
 */
#include <lmms/lmms-module.h>

#ifndef HOTMOD_VERSION
#define HOTMOD_VERSION "1"
#endif

static int op_version(const lmms_host *h, lmms_call *c, void *state)
{
	(void)state;
	return h->ret_str(c, HOTMOD_VERSION, sizeof(HOTMOD_VERSION) - 1);
}

static const lmms_op ops[] = {
	{ .name = "version", .fn = op_version, .doc = "the version this copy was built as" },
};

LMMS_MODULE(.name = "hotmod", .version = HOTMOD_VERSION, LMMS_OPS(ops),
	    .description = "a module replaced on disk by the hot-reload tests");
