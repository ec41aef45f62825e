/*
 * module-harness.h - load real module .so files the way the daemon does and
 * call their ops through call.c's host table, for Check tests.
 *
 * Every function asserts with Check on anything unexpected, so it is meant
 * to run inside a test. The daemon's own call.c is compiled into the test,
 * which is what makes this the real host API rather than a stand-in.
 */
#ifndef LMMS_TESTS_MODULE_HARNESS_H
#define LMMS_TESTS_MODULE_HARNESS_H

#include <msgpack.h>
#include <stddef.h>

#include "call.h"

#define RESULT_MAX (32u << 20)

typedef struct module {
	void *dl;
	const lmms_module_desc *d;
	const lmms_host *host; /* what init and every op are given */
	void *state;
	char path[4096];
} module;

/* $env/name.so into m->path. */
void module_path(module *m, const char *env, const char *name);
/* Checks the daemon does before trusting a descriptor; returns why not. */
const char *desc_check(const lmms_module_desc *d, const char *name);
const lmms_op *op_at(const module *m, uint32_t i);
const lmms_op *op_find(const module *m, const char *name);
/* dlopen, entry, descriptor and op checks, init with call_host. */
void module_load(module *m, const char *env, const char *name);
/* The same with another host table (e.g. one whose setting() answers). */
void module_load_host(module *m, const char *env, const char *name, const lmms_host *host);
/* A description for the module and a doc line for every op. */
void expect_documented(const module *m);
/* fini and dlclose. */
void module_unload(module *m);

/* Params of one call: an array packed by the test. */
typedef struct params {
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked up;
} params;

msgpack_packer *params_begin(params *p, uint32_t n);
void params_free(params *p);
params *p_str(params *p, const char *s);
params *p_none(params *p);
params *p_int(params *p, int64_t v);
params *p_bin(params *p, const void *b, size_t n);
/*
 * Params written as JSON (printf-style, then parsed): p_json(p, "[%d, {\"a\":
 * \"b\"}]", 1). The text must be an array; integers stay integers. JSON has
 * no bin, so p_bin_json puts b first and the array's elements after it.
 */
params *p_json(params *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
params *p_bin_json(params *p, const void *b, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The outcome of one op call: code, message, decoded result. */
typedef struct outcome {
	proto_err err;
	char msg[CALL_FAIL_MSG_MAX + 64];
	char *bytes;
	size_t len;
	msgpack_unpacked up;
	const msgpack_object *v;
} outcome;

void outcome_free(outcome *o);
/* Calls op with params p (consumed; NULL for none) and a result limit. */
void run_max(module *m, const char *op, params *p, size_t max, outcome *o);
void run(module *m, const char *op, params *p, outcome *o);
void expect_str(const outcome *o, const char *want);
void expect_err(const outcome *o, proto_err want);
/* Runs op and expects the error want, with needle in its message (if given). */
void run_fails(module *m, const char *op, params *p, proto_err want, const char *needle);

#endif
