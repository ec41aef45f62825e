/*
 * test-registry.c - LIGS registry units against the real built modules:
 * directory scan, lazy load, learned ops, unload verified with RTLD_NOLOAD,
 * pinned detection, load failures with backoff, rescans and kept metrics.
 *
 * Each test copies the modules it needs into its own temporary directory
 * (mode 0755, as the registry insists) so tests never share a dlopen handle.
 */
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "proto.h"
#include "registry.h"
#include "util.h" /* the tests' own: it includes the daemon's */

static config cfg;
static char tmpdir[256]; /* short: paths built from it must fit PATH_MAX */

/* Copy NAME.so into the test's module directory. */
static void add_module(const char *name)
{
	tu_add_module(tmpdir, name);
}

static void setup(void)
{
	tu_tmpdir(tmpdir, sizeof(tmpdir), "registry");
	config_init_defaults(&cfg);
	log_init(3); /* errors only: expected failures would be noise */
}

static void teardown(void)
{
	tu_rmtree(tmpdir);
}

static module *find(registry *r, const char *name)
{
	return registry_find(r, name, strlen(name));
}

static op_info *find_op(registry *r, const char *method)
{
	return registry_find_op(r, method, strlen(method));
}

/* Is the object at path still mapped? Asks the loader without loading. */
static bool still_mapped(const char *path)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD | RTLD_LOCAL);

	if (!h)
		return false;
	dlclose(h);
	return true;
}

START_TEST(scan_lists_valid_modules_only)
{
	registry r;

	add_module("echo");
	add_module("hash");
	tu_write_file(tmpdir, "README.txt", "not a module\n");
	tu_write_file(tmpdir, "bad name.so", "x");
	tu_write_file(tmpdir, "dot.ted.so", "x");
	tu_write_file(tmpdir, "libfoo.so.1", "x");
	tu_write_file(tmpdir, ".so", "x");
	ck_assert_int_eq(registry_init(&r, tmpdir, &cfg), 0);
	/* nothing is listed at start: LIGS applied to the registry itself */
	ck_assert_uint_eq(r.n_mods, 0);
	ck_assert_int_eq(registry_list(&r), 0);
	ck_assert_uint_eq(r.n_mods, 2);
	ck_assert_str_eq(r.mods[0]->name, "echo");
	ck_assert_str_eq(r.mods[1]->name, "hash");
	ck_assert_ptr_nonnull(find(&r, "echo"));
	ck_assert_ptr_null(find(&r, "bad name"));
	ck_assert_ptr_null(find(&r, "dot.ted"));
	ck_assert_ptr_null(find(&r, "../echo"));
	ck_assert_ptr_null(find(&r, "README"));
	/* listing maps nothing */
	ck_assert_uint_eq(r.n_resident, 0);
	ck_assert_int_eq(r.mods[0]->state, MOD_UNLOADED);
	ck_assert(!r.mods[0]->ops_known);
	ck_assert_ptr_null(r.mods[0]->handle);
	/* a rescan keeps the entries it has */
	ck_assert_int_eq(registry_scan(&r), 0);
	ck_assert_uint_eq(r.n_mods, 2);
	registry_fini(&r);
}
END_TEST

START_TEST(scan_of_missing_dir_fails)
{
	registry r;
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/nope", tmpdir);
	ck_assert_int_eq(registry_init(&r, path, &cfg), -ENOENT);
	registry_fini(&r);
}
END_TEST

START_TEST(load_learns_ops_and_unload_unmaps)
{
	registry r;
	module *m;
	op_info *sleep_op, *upper, *ping;

	add_module("echo");
	ck_assert_int_eq(registry_init(&r, tmpdir, &cfg), 0);
	m = find(&r, "echo");
	ck_assert_ptr_nonnull(m);
	ck_assert_ptr_null(find_op(&r, "echo.ping")); /* not known before the load */
	ck_assert(!still_mapped(m->path));

	ck_assert_int_eq(registry_load(&r, m), 0);
	ck_assert_int_eq(m->state, MOD_LOADED);
	ck_assert(m->ops_known);
	ck_assert(module_callable(m));
	ck_assert(still_mapped(m->path));
	ck_assert_uint_eq(m->loads, 1);
	ck_assert_uint_eq(r.loads, 1);
	ck_assert_uint_eq(r.n_resident, 1);
	ck_assert_int_ge(m->resident_bytes, 0);
	ck_assert_str_eq(m->error, "");

	ping = find_op(&r, "echo.ping");
	sleep_op = find_op(&r, "echo.sleep");
	upper = find_op(&r, "echo.upper");
	ck_assert_ptr_nonnull(ping);
	ck_assert_ptr_nonnull(sleep_op);
	ck_assert_ptr_nonnull(upper);
	ck_assert_ptr_null(find_op(&r, "echo.nosuch"));
	ck_assert_ptr_eq(ping->mod, m);
	ck_assert_str_eq(ping->name, "ping");
	ck_assert_str_eq(ping->method, "echo.ping");
	ck_assert_uint_eq(ping->flags, 0);
	ck_assert_uint_eq(sleep_op->flags, LMMS_OP_BLOCKING);
	ck_assert_uint_eq(upper->flags, LMMS_OP_PURE);
	ck_assert_ptr_nonnull(ping->fn);
	/* loading again is a no-op */
	ck_assert_int_eq(registry_load(&r, m), 0);
	ck_assert_uint_eq(m->loads, 1);

	ck_assert_int_eq(registry_unload(&r, m, NULL), 0);
	ck_assert_int_eq(m->state, MOD_UNLOADED);
	ck_assert_ptr_null(m->handle);
	ck_assert(!still_mapped(m->path));
	ck_assert_uint_eq(m->unloads, 1);
	ck_assert_uint_eq(r.n_resident, 0);
	/* what was learned outlives the unload, but nothing points into it */
	ck_assert(m->ops_known);
	ck_assert_ptr_eq(find_op(&r, "echo.sleep"), sleep_op);
	ck_assert_uint_eq(sleep_op->flags, LMMS_OP_BLOCKING);
	ck_assert_ptr_null(sleep_op->fn);
	ck_assert_ptr_null(ping->fn);
	registry_fini(&r);
}
END_TEST

START_TEST(unload_refused_while_in_flight)
{
	registry r;
	module *m;
	const char *why = NULL;

	add_module("echo");
	ck_assert_int_eq(registry_init(&r, tmpdir, &cfg), 0);
	m = find(&r, "echo");
	ck_assert_int_eq(registry_load(&r, m), 0);
	m->refs = 1;
	ck_assert_int_eq(registry_unload(&r, m, &why), -EBUSY);
	ck_assert_ptr_nonnull(why);
	ck_assert(still_mapped(m->path));
	ck_assert_int_eq(m->state, MOD_LOADED);
	m->refs = 0;
	ck_assert_int_eq(registry_unload(&r, m, NULL), 0);
	ck_assert(!still_mapped(m->path));
	registry_fini(&r);
}
END_TEST

START_TEST(veto_blocks_unload)
{
	registry r;
	module *m;
	const char *why = NULL;

	add_module("veto");
	ck_assert_int_eq(registry_init(&r, tmpdir, &cfg), 0);
	m = find(&r, "veto");
	ck_assert_int_eq(registry_load(&r, m), 0);
	ck_assert_int_eq(registry_unload(&r, m, &why), -EBUSY);
	ck_assert_ptr_nonnull(why);
	ck_assert_uint_eq(m->blocked[LUGS_VETO], 1);
	ck_assert(module_callable(m));
	ck_assert_ptr_nonnull(find_op(&r, "veto.ping")->fn);
	registry_fini(&r);
}
END_TEST

START_TEST(nodelete_is_pinned)
{
	registry r;
	module *m;

	add_module("nodelete");
	ck_assert_int_eq(registry_init(&r, tmpdir, &cfg), 0);
	m = find(&r, "nodelete");
	ck_assert_int_eq(registry_load(&r, m), 0);
	/* detected from DT_FLAGS_1 at load time, before any unload attempt */
	ck_assert_int_eq(m->state, MOD_PINNED);
	ck_assert_uint_eq(r.n_resident, 1);
	ck_assert_int_eq(registry_unload(&r, m, NULL), 1);
	ck_assert_int_eq(m->state, MOD_PINNED);
	ck_assert(still_mapped(m->path));
	ck_assert_uint_eq(r.n_resident, 1);
	/* it can be made callable again */
	ck_assert_int_eq(registry_load(&r, m), 0);
	ck_assert_int_eq(m->state, MOD_PINNED);
	ck_assert_ptr_nonnull(find_op(&r, "nodelete.ping")->fn);
	registry_fini(&r);
}
END_TEST

/* A module built before lmms_op grew blocking_above: walked by its own
 * op_size, and the missing field reads as 0. */
START_TEST(old_op_size_is_read_by_its_own_stride)
{
	registry r;
	module *m;
	op_info *op;

	add_module("oldabi");
	add_module("echo");
	ck_assert_int_eq(registry_init(&r, tmpdir, &cfg), 0);
	m = find(&r, "oldabi");
	ck_assert_int_eq(registry_load(&r, m), 0);
	ck_assert_uint_eq(m->n_ops, 2);
	op = find_op(&r, "oldabi.cached");
	ck_assert_uint_eq(op->flags, LMMS_OP_PURE);
	ck_assert_uint_eq(op->cache_ttl_ms, 1234);
	ck_assert_uint_eq(op->blocking_above, 0);
	ck_assert_uint_eq(find_op(&r, "oldabi.ping")->blocking_above, 0);
	/* a current module declares it */
	ck_assert_int_eq(registry_load(&r, find(&r, "echo")), 0);
	ck_assert_uint_eq(find_op(&r, "echo.upper")->blocking_above, 4096);
	registry_fini(&r);
}
END_TEST

START_TEST(nodelete_dependency_pins)
{
	char src[PATH_MAX], dst[PATH_MAX];
	registry r;
	module *m;

	/* the module is ordinary; the library it links is -z nodelete */
	add_module("nodeletedep");
	snprintf(src, sizeof(src), "%s/libpinlib.so", getenv("LMMS_TEST_MODULE_DIR"));
	snprintf(dst, sizeof(dst), "%s/libpinlib.so", tmpdir);
	tu_copy_file(src, dst, 0755);
	ck_assert_int_eq(registry_init(&r, tmpdir, &cfg), 0);
	m = find(&r, "nodeletedep");
	ck_assert_int_eq(registry_load(&r, m), 0);
	ck_assert_int_eq(m->state, MOD_PINNED);
	ck_assert_str_eq(m->pinned_by, "libpinlib.so");
	ck_assert_uint_eq(r.n_resident, 1);
	registry_fini(&r);
}
END_TEST

START_TEST(ordinary_module_is_not_pinned)
{
	registry r;
	module *m;

	/* json's dlopen maps libjansson too: a library that is not nodelete
	 * must not pin it */
	add_module("json");
	ck_assert_int_eq(registry_init(&r, tmpdir, &cfg), 0);
	m = find(&r, "json");
	ck_assert_int_eq(registry_load(&r, m), 0);
	ck_assert_int_eq(m->state, MOD_LOADED);
	ck_assert_str_eq(m->pinned_by, "");
	registry_fini(&r);
}
END_TEST

/* One module that fails to load: error text, FAILED state, backoff. */
static void check_load_fails(const char *name, int want_rc, const char *want_text)
{
	registry r;
	module *m;
	uint64_t t;

	add_module(name);
	add_module("echo");
	ck_assert_int_eq(registry_init(&r, tmpdir, &cfg), 0);
	m = find(&r, name);
	ck_assert_ptr_nonnull(m);
	t = now_ms();
	ck_assert_int_eq(registry_load(&r, m), want_rc);
	ck_assert_msg(strstr(m->error, want_text), "error \"%s\" lacks \"%s\"", m->error,
		      want_text);
	ck_assert_int_eq(m->state, MOD_FAILED);
	ck_assert_uint_eq(m->load_failures, 1);
	ck_assert_ptr_null(m->handle);
	ck_assert(!still_mapped(m->path));
	ck_assert_uint_eq(r.n_resident, 0);
	ck_assert_uint_gt(m->retry_at_ms, t);
	ck_assert_uint_ge(m->retry_at_ms, t + cfg.ligs.retry_backoff_ms);
	/* an immediate retry waits for the backoff */
	ck_assert_int_eq(registry_load(&r, m), -EAGAIN);
	ck_assert_uint_eq(m->load_failures, 1);
	/* after it, the attempt is made again and the backoff doubles */
	m->retry_at_ms = now_ms();
	ck_assert_int_eq(registry_load(&r, m), want_rc);
	ck_assert_uint_eq(m->load_failures, 2);
	ck_assert_uint_eq(m->backoff_ms, 2 * cfg.ligs.retry_backoff_ms);
	/* the others are unaffected */
	ck_assert_int_eq(registry_load(&r, find(&r, "echo")), 0);
	ck_assert_ptr_nonnull(find_op(&r, "echo.ping")->fn);
	registry_fini(&r);
}

START_TEST(badabi_fails)
{
	check_load_fails("badabi", -ENOEXEC, "ABI version 999");
}
END_TEST

START_TEST(badinit_fails)
{
	check_load_fails("badinit", -EIO, "init refused: test");
}
END_TEST

START_TEST(noentry_fails)
{
	check_load_fails("noentry", -ENOEXEC, LMMS_MODULE_ENTRY_NAME);
}
END_TEST

/*
 * Regression: op names with "..", or a leading or trailing dot, loaded but
 * could never be called ("opname..x" fails the protocol's name check). They
 * are refused at load now, each with a reason saying what is wrong.
 */
START_TEST(unreachable_op_names_refused)
{
	static const struct {
		const char *name, *want;
	} bad[] = {
		{ "..", "op 1 name \"..\" starts with a dot" },
		{ ".hidden",
		  "op 1 name \".hidden\" starts with a dot: its method \"opname..hidden\" could "
		  "never be called" },
		{ "trailing.", "op 1 name \"trailing.\" ends with a dot" },
		{ "a..b", "op 1 name \"a..b\" holds \"..\"" },
		{ "a/b", "op 1 name has a byte other than A-Z a-z 0-9 _ - ." },
		{ "tab\there", "op 1 name has a byte other than" },
		{ "", "op 1 name is empty or longer than 63 bytes" },
		{ "x123456789012345678901234567890123456789012345678901234567890123",
		  "op 1 name is empty or longer than 63 bytes" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(setenv("LMMS_TEST_OP_NAME", bad[i].name, 1), 0);
		check_load_fails("opname", -ENOEXEC, bad[i].want);
	}
	ck_assert_int_eq(unsetenv("LMMS_TEST_OP_NAME"), 0);
}
END_TEST

/* Inner dots are fine: "opname.a.b" splits at the first dot into opname, a.b. */
START_TEST(dotted_op_names_load)
{
	static const char *const good[] = {
		"a.b", "x.y.z", "_-.9",
		"x12345678901234567890123456789012345678901234567890123456789012",
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char method[128];
		registry r;
		module *m;
		op_info *op;

		ck_assert_int_eq(setenv("LMMS_TEST_OP_NAME", good[i], 1), 0);
		add_module("opname");
		ck_assert_int_eq(registry_init(&r, tmpdir, &cfg), 0);
		m = find(&r, "opname");
		ck_assert_ptr_nonnull(m);
		ck_assert_msg(registry_load(&r, m) == 0, "%s: %s", good[i], m->error);
		snprintf(method, sizeof(method), "opname.%s", good[i]);
		/* what a client sends gets through the protocol's check */
		ck_assert_int_eq(proto_method_split(method, strlen(method), NULL, NULL, NULL, NULL),
				 0);
		op = find_op(&r, method);
		ck_assert_ptr_nonnull(op);
		ck_assert_ptr_nonnull(op->fn);
		ck_assert_str_eq(op->name, good[i]);
		registry_fini(&r);
	}
	ck_assert_int_eq(unsetenv("LMMS_TEST_OP_NAME"), 0);
}
END_TEST

START_TEST(backoff_is_capped)
{
	registry r;
	module *m;

	add_module("badinit");
	ck_assert_int_eq(registry_init(&r, tmpdir, &cfg), 0);
	m = find(&r, "badinit");
	for (int i = 0; i < 40; i++) {
		m->retry_at_ms = 0;
		ck_assert_int_eq(registry_load(&r, m), -EIO);
	}
	ck_assert_uint_eq(m->load_failures, 40);
	ck_assert_uint_eq(m->backoff_ms, cfg.ligs.retry_backoff_max_ms);
	registry_fini(&r);
}
END_TEST

START_TEST(unsafe_permissions_refused)
{
	registry r;
	char path[PATH_MAX];
	module *m;

	add_module("echo");
	snprintf(path, sizeof(path), "%s/echo.so", tmpdir);
	ck_assert_int_eq(chmod(path, 0775), 0);
	ck_assert_int_eq(registry_init(&r, tmpdir, &cfg), 0);
	m = find(&r, "echo");
	ck_assert_int_eq(registry_load(&r, m), -EPERM);
	ck_assert_ptr_nonnull(strstr(m->error, "writable"));
	ck_assert(!still_mapped(m->path));
	ck_assert_int_eq(m->state, MOD_FAILED);
	registry_fini(&r);

	/* a writable directory taints every module in it */
	ck_assert_int_eq(chmod(path, 0755), 0);
	ck_assert_int_eq(chmod(tmpdir, 0777), 0);
	ck_assert_int_eq(registry_init(&r, tmpdir, &cfg), 0);
	m = find(&r, "echo");
	ck_assert_int_eq(registry_load(&r, m), -EPERM);
	ck_assert_ptr_nonnull(strstr(m->error, "directory"));
	ck_assert(!still_mapped(m->path));
	registry_fini(&r);
	ck_assert_int_eq(chmod(tmpdir, 0755), 0);
}
END_TEST

START_TEST(module_added_later_is_found)
{
	registry r;
	module *m = NULL;

	add_module("echo");
	ck_assert_int_eq(registry_init(&r, tmpdir, &cfg), 0);
	ck_assert_ptr_null(find(&r, "hash"));
	add_module("hash");
	/* a module dropped in later is found by its path at once */
	m = find(&r, "hash");
	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(r.n_mods, 1);
	ck_assert_ptr_nonnull(find(&r, "echo"));
	/* kept in name order however they were found */
	ck_assert_uint_eq(r.n_mods, 2);
	ck_assert_ptr_eq(find(&r, "echo"), r.mods[0]);
	ck_assert_ptr_eq(m, r.mods[1]);
	ck_assert_int_eq(registry_load(&r, m), 0);
	ck_assert_ptr_nonnull(find_op(&r, "hash.sha256"));
	registry_fini(&r);
}
END_TEST

START_TEST(metrics_survive_reload)
{
	registry r;
	module *m;
	op_info *op;
	uint32_t n_ops;

	add_module("echo");
	ck_assert_int_eq(registry_init(&r, tmpdir, &cfg), 0);
	m = find(&r, "echo");
	ck_assert_int_eq(registry_load(&r, m), 0);
	n_ops = m->n_ops;
	ck_assert_uint_ge(n_ops, 4);
	op = find_op(&r, "echo.upper");
	op->heat.calls = 1234;
	op->heat.total_ns = 5678;
	ck_assert_int_eq(registry_unload(&r, m, NULL), 0);
	ck_assert_int_eq(registry_load(&r, m), 0);
	ck_assert_uint_eq(m->loads, 2);
	ck_assert_uint_eq(m->unloads, 1);
	/* same op_info, same numbers, callable again */
	ck_assert_ptr_eq(find_op(&r, "echo.upper"), op);
	ck_assert_uint_eq(op->heat.calls, 1234);
	ck_assert_uint_eq(op->heat.total_ns, 5678);
	ck_assert_ptr_nonnull(op->fn);
	ck_assert_uint_eq(op->flags, LMMS_OP_PURE);
	ck_assert_uint_eq(m->n_ops, n_ops); /* merged, not appended again */
	registry_fini(&r);
}
END_TEST

START_TEST(fini_unloads_everything)
{
	registry r;
	char echo_path[PATH_MAX], hash_path[PATH_MAX];

	add_module("echo");
	add_module("hash");
	ck_assert_int_eq(registry_init(&r, tmpdir, &cfg), 0);
	ck_assert_int_eq(registry_load(&r, find(&r, "echo")), 0);
	ck_assert_int_eq(registry_load(&r, find(&r, "hash")), 0);
	snprintf(echo_path, sizeof(echo_path), "%s", find(&r, "echo")->path);
	snprintf(hash_path, sizeof(hash_path), "%s", find(&r, "hash")->path);
	ck_assert(still_mapped(echo_path));
	ck_assert(still_mapped(hash_path));
	registry_fini(&r);
	ck_assert(!still_mapped(echo_path));
	ck_assert(!still_mapped(hash_path));
}
END_TEST

static Suite *registry_suite(void)
{
	Suite *s = suite_create("registry");
	TCase *tc = tcase_create("registry");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, scan_lists_valid_modules_only);
	tcase_add_test(tc, scan_of_missing_dir_fails);
	tcase_add_test(tc, load_learns_ops_and_unload_unmaps);
	tcase_add_test(tc, unload_refused_while_in_flight);
	tcase_add_test(tc, veto_blocks_unload);
	tcase_add_test(tc, nodelete_is_pinned);
	tcase_add_test(tc, nodelete_dependency_pins);
	tcase_add_test(tc, old_op_size_is_read_by_its_own_stride);
	tcase_add_test(tc, ordinary_module_is_not_pinned);
	tcase_add_test(tc, badabi_fails);
	tcase_add_test(tc, badinit_fails);
	tcase_add_test(tc, noentry_fails);
	tcase_add_test(tc, unreachable_op_names_refused);
	tcase_add_test(tc, dotted_op_names_load);
	tcase_add_test(tc, backoff_is_capped);
	tcase_add_test(tc, unsafe_permissions_refused);
	tcase_add_test(tc, module_added_later_is_found);
	tcase_add_test(tc, metrics_survive_reload);
	tcase_add_test(tc, fini_unloads_everything);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(registry_suite());
}
