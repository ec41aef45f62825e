/*
 * fault-unique.cpp - test module with STB_GNU_UNIQUE symbols, as C++
 * libraries have (static locals of inline functions and static members of
 * templates, with default visibility). glibc marks an object that defines
 * one as not unloadable: dlclose leaves it mapped. A worker does not care.
 */
#include <lmms/lmms-module.h>

template <typename T> struct __attribute__((visibility("default"))) tally {
	static T n;
};
template <typename T> T tally<T>::n = 0;

__attribute__((visibility("default"))) inline long &calls()
{
	static long c;
	return c;
}

static int op_count(const lmms_host *h, lmms_call *c, void *)
{
	tally<int>::n++;
	return h->ret_int(c, ++calls());
}

static const lmms_op unique_ops[] = {
	{ .name = "count", .fn = op_count, .flags = 0, .cache_ttl_ms = 0, .blocking_above = 0,
	  .doc = "count the calls in unique symbols" },
};

/* LMMS_MODULE's designated initializers are out of declaration order for
 * C++, so the descriptor is spelled out. */
static const lmms_module_desc unique_desc = {
	.abi_version = LMMS_MODULE_ABI_VERSION,
	.size = sizeof(lmms_module_desc),
	.name = "fault-unique",
	.version = "1.0",
	.flags = 0,
	.op_size = sizeof(lmms_op),
	.ops = unique_ops,
	.n_ops = sizeof(unique_ops) / sizeof(unique_ops[0]),
	.init = nullptr,
	.fini = nullptr,
	.can_unload = nullptr,
	.description = "C++ with GNU unique symbols",
};

extern "C" LMMS_EXPORT const lmms_module_desc *LMMS_MODULE_ENTRY(void);
extern "C" const lmms_module_desc *LMMS_MODULE_ENTRY(void)
{
	return &unique_desc;
}
