/*
 * nodeletedep.c - test module that is not nodelete itself but links a
 * library that is (libpinlib.so): dlclose would unmap the module and leave
 * the library, so the registry must mark it pinned at load, naming the
 * library in pinned_by.
 */
#include <lmms/lmms-module.h>

int pinlib_answer(void);

static int op_answer(const lmms_host *h, lmms_call *c, void *state)
{
	return h->ret_int(c, pinlib_answer());
}

static const lmms_op nodeletedep_ops[] = {
	{ .name = "answer", .fn = op_answer, .flags = 0 },
};

LMMS_MODULE_DEFINE(nodeletedep, "1.0", nodeletedep_ops, NULL, NULL, NULL)
