/*
 * test-lifecycle.c - LUGS on a real registry of real modules (copies of the
 * built echo, oldabi, zstd, json and the veto and nodelete fixtures): the
 * five checks of DESIGN.md §4 and the three policies as a table of cases
 * driven through lugs_try_unload, the sweep (each refusal counted by its
 * check, the resident minimum taken in LRU order), feature modules leaving
 * as soon as they are released, pinned and vetoing modules, and the
 * policy and grace period resolved from the configuration.
 *
 * Module fields the checks read (refs, hot_ops, cache_deps, last_used_ms,
 * policy) are set by hand where a case needs them, and put back before the
 * registry is finalised.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "lifecycle.h"
#include "log.h"
#include "registry.h"
#include "util.h"

static struct {
	tu_loop tl;
	char dir[256];
	config cfg;
	registry reg;
	lugs l;
} h;

static void on_released(void *ud, module *m)
{
	ck_assert_ptr_eq(ud, &h);
	lugs_module_released(&h.l, m);
}

static void setup(void)
{
	static const char *const mods[] = { "echo", "oldabi", "zstd", "json", "veto", "nodelete" };

	memset(&h, 0, sizeof(h));
	log_init(3);
	tu_loop_init(&h.tl);
	tu_tmpdir(h.dir, sizeof(h.dir), "lifecycle");
	for (size_t i = 0; i < ARRAY_SIZE(mods); i++)
		tu_add_module(h.dir, mods[i]);
	config_init_defaults(&h.cfg);
	/* sweeps only when a test runs one */
	h.cfg.lugs.sweep_interval_ms = 3600 * 1000;
	ck_assert_int_eq(registry_init(&h.reg, h.dir, &h.cfg), 0);
	h.reg.on_released = on_released;
	h.reg.ud = &h;
	ck_assert_int_eq(lugs_init(&h.l, &h.tl.loop, &h.cfg, &h.reg, false), 0);
}

static void teardown(void)
{
	/* what tests set by hand, back to what the registry expects */
	for (uint32_t i = 0; i < h.reg.n_mods; i++) {
		module *m = h.reg.mods[i];

		m->refs = 0;
		m->hot_ops = 0;
		m->cache_deps = 0;
	}
	lugs_fini(&h.l);
	registry_fini(&h.reg);
	tu_loop_fini(&h.tl);
	tu_rmtree(h.dir);
}

static module *mod(const char *name)
{
	module *m = registry_find(&h.reg, name, strlen(name));

	ck_assert_msg(m != NULL, "no module %s", name);
	return m;
}

static module *load(const char *name)
{
	module *m = mod(name);

	ck_assert_int_eq(registry_load(&h.reg, m), 0);
	return m;
}

/* Last used this long before the grace period ran out (ms > 0), or just
 * now (ms == 0). */
static void idle_for(module *m, uint64_t past_grace_ms)
{
	m->last_used_ms = past_grace_ms ? now_ms() - module_grace_ms(m) - past_grace_ms : now_ms();
}

/* ---- the checks, one case per row ---- */

typedef struct unload_case {
	const char *what;
	module_policy policy;
	uint32_t refs, hot_ops, cache_deps;
	bool keep_while_cached;
	bool idle; /* past its grace period */
	bool force; /* lmms.unload NAME true */
	uint32_t min_resident; /* echo is the one module resident */
	int want; /* 0 unloaded, or -EBUSY */
	lugs_check which; /* the check that refused */
} unload_case;

#define UTIL POLICY_UTILITY
#define CORE POLICY_CORE
#define FEAT POLICY_FEATURE

static const unload_case unload_cases[] = {
	/* what, policy, refs, hot_ops, cache_deps, keep_while_cached, idle, force,
	 * min_resident, result, refusing check */
	{ "idle utility unloads", UTIL, 0, 0, 0, true, true, false, 0, 0, 0 },
	{ "1: refs", UTIL, 1, 0, 0, true, true, false, 0, -EBUSY, LUGS_REFS },
	{ "1: refs, force", UTIL, 1, 0, 0, true, true, true, 0, -EBUSY, LUGS_REFS },
	{ "2: core", CORE, 0, 0, 0, true, true, false, 0, -EBUSY, LUGS_PROTECTED },
	{ "2: core, force", CORE, 0, 0, 0, true, true, true, 0, -EBUSY, LUGS_PROTECTED },
	{ "2: hot op", UTIL, 0, 1, 0, true, true, false, 0, -EBUSY, LUGS_PROTECTED },
	{ "2: hot op, force", UTIL, 0, 1, 0, true, true, true, 0, -EBUSY, LUGS_PROTECTED },
	{ "3: cached", UTIL, 0, 0, 2, true, true, false, 0, -EBUSY, LUGS_CACHED },
	{ "3: cached, force", UTIL, 0, 0, 2, true, true, true, 0, -EBUSY, LUGS_CACHED },
	{ "3: cached, keep_while_cached off", UTIL, 0, 0, 2, false, true, false, 0, 0, 0 },
	{ "4: in grace", UTIL, 0, 0, 0, true, false, false, 0, -EBUSY, LUGS_GRACE },
	{ "4: in grace, force", UTIL, 0, 0, 0, true, false, true, 0, 0, 0 },
	{ "5: at min_resident", UTIL, 0, 0, 0, true, true, false, 1, -EBUSY, LUGS_MIN_RESIDENT },
	{ "5: at min_resident, force", UTIL, 0, 0, 0, true, true, true, 1, 0, 0 },
	/* the first check that fails is the one named */
	{ "1 before 2, 3, 4, 5", CORE, 1, 1, 1, true, false, false, 1, -EBUSY, LUGS_REFS },
	{ "2 before 3, 4, 5", CORE, 0, 1, 1, true, false, false, 1, -EBUSY, LUGS_PROTECTED },
	{ "3 before 4, 5", UTIL, 0, 0, 1, true, false, false, 1, -EBUSY, LUGS_CACHED },
	{ "4 before 5", UTIL, 0, 0, 0, true, false, false, 1, -EBUSY, LUGS_GRACE },
	/* feature: checks 1-3 only */
	{ "feature in grace, at min_resident", FEAT, 0, 0, 0, true, false, false, 1, 0, 0 },
	{ "feature: refs", FEAT, 1, 0, 0, true, false, false, 0, -EBUSY, LUGS_REFS },
	{ "feature: hot op", FEAT, 0, 1, 0, true, false, false, 0, -EBUSY, LUGS_PROTECTED },
	{ "feature: cached", FEAT, 0, 0, 1, true, false, false, 0, -EBUSY, LUGS_CACHED },
	{ "feature: cached, keep_while_cached off", FEAT, 0, 0, 1, false, false, false, 0, 0, 0 },
};

START_TEST(five_checks_and_policies)
{
	const unload_case *uc = &unload_cases[_i];
	module *m = load("echo");
	const char *reason = "unset";
	lugs_check which = LUGS_CHECK_MAX;
	int r;

	m->policy = uc->policy;
	m->refs = uc->refs;
	m->hot_ops = uc->hot_ops;
	m->cache_deps = uc->cache_deps;
	h.cfg.lugs.keep_while_cached = uc->keep_while_cached;
	h.cfg.lugs.min_resident = uc->min_resident;
	idle_for(m, uc->idle ? 1000 : 0);
	ck_assert_uint_eq(h.reg.n_resident, 1);

	r = lugs_try_unload(&h.l, m, uc->force, &which, &reason);
	ck_assert_msg(r == uc->want, "%s: %d, %d expected", uc->what, r, uc->want);
	ck_assert_ptr_null(reason);
	if (r == 0) {
		ck_assert_int_eq(m->state, MOD_UNLOADED);
		ck_assert_ptr_null(m->handle);
		ck_assert_uint_eq(h.reg.unloads, 1);
		ck_assert_uint_eq(h.l.st.unload_blocked, 0);
		return;
	}
	ck_assert_msg(which == uc->which, "%s: refused by %s, %s expected", uc->what,
		      lugs_check_name(which), lugs_check_name(uc->which));
	ck_assert_int_eq(m->state, MOD_LOADED);
	ck_assert(module_callable(m));
	ck_assert_uint_eq(m->blocked[which], 1);
	ck_assert_uint_eq(h.l.st.unload_blocked, 1);
	ck_assert_uint_eq(h.reg.unloads, 0);
}
END_TEST

START_TEST(protected_means_core_or_hot)
{
	module *m = mod("echo");

	ck_assert(!lugs_protected(&h.l, m));
	m->policy = POLICY_CORE;
	ck_assert(lugs_protected(&h.l, m));
	m->policy = POLICY_FEATURE;
	ck_assert(!lugs_protected(&h.l, m));
	m->hot_ops = 1;
	ck_assert(lugs_protected(&h.l, m));
}
END_TEST

START_TEST(not_loaded_is_nothing_to_do)
{
	lugs_check which = LUGS_CHECK_MAX;
	const char *reason;

	ck_assert_int_eq(lugs_try_unload(&h.l, mod("echo"), false, &which, &reason), 0);
	ck_assert_int_eq(which, LUGS_CHECK_MAX);
	ck_assert_uint_eq(h.l.st.unload_blocked, 0);
}
END_TEST

/* A module whose object stays mapped cannot be unloaded, force or not. */
START_TEST(pinned_is_refused)
{
	module *m = load("nodelete");
	lugs_check which;
	const char *reason;

	ck_assert_int_eq(m->state, MOD_PINNED);
	idle_for(m, 1000);
	for (int force = 0; force <= 1; force++) {
		ck_assert_int_eq(lugs_try_unload(&h.l, m, force, &which, &reason), -EBUSY);
		ck_assert_int_eq(which, LUGS_PROTECTED);
		ck_assert_ptr_nonnull(strstr(reason, "pinned"));
		ck_assert(module_callable(m));
	}
	/* once fini'd it is still mapped: reported pinned, not unloaded */
	ck_assert_int_eq(registry_unload(&h.reg, m, NULL), 1);
	ck_assert_int_eq(lugs_try_unload(&h.l, m, true, &which, &reason), 1);
	ck_assert_uint_eq(h.reg.n_resident, 1);
}
END_TEST

START_TEST(veto_is_named)
{
	module *m = load("veto");
	lugs_check which;
	const char *reason = NULL;

	h.cfg.lugs.min_resident = 0;
	idle_for(m, 1000);
	ck_assert_int_eq(lugs_try_unload(&h.l, m, false, &which, &reason), -EBUSY);
	ck_assert_int_eq(which, LUGS_VETO);
	ck_assert_str_eq(reason, "test veto");
	ck_assert_uint_eq(m->blocked[LUGS_VETO], 1);
	ck_assert_uint_eq(h.l.st.unload_blocked, 1);
	ck_assert(module_callable(m));
}
END_TEST

/* policy and grace come from [module NAME], resolved again on reload */
START_TEST(policy_and_grace_from_the_configuration)
{
	char err[256];
	module *m = load("echo");
	lugs_check which;
	const char *reason;

	h.cfg.lugs.min_resident = 0;
	ck_assert_int_eq(m->policy, POLICY_UTILITY);
	ck_assert_uint_eq(m->grace_ms, h.cfg.lugs.grace_period_ms);
	ck_assert_int_eq(config_set(&h.cfg, "module.echo.policy=core", err, sizeof(err)), 0);
	ck_assert_int_eq(config_set(&h.cfg, "module.echo.grace_period=100ms", err, sizeof(err)),
			 0);
	registry_apply_config(&h.reg);
	ck_assert_int_eq(m->policy, POLICY_CORE);
	ck_assert_uint_eq(m->grace_ms, 100);
	idle_for(m, 1);
	ck_assert_int_eq(lugs_try_unload(&h.l, m, false, &which, &reason), -EBUSY);
	ck_assert_int_eq(which, LUGS_PROTECTED);
	ck_assert_int_eq(config_set(&h.cfg, "module.echo.policy=utility", err, sizeof(err)), 0);
	registry_apply_config(&h.reg);
	/* 101 ms idle is past its own 100 ms, far inside the default 30 s */
	ck_assert_int_eq(lugs_try_unload(&h.l, m, false, &which, &reason), 0);
	/* the other modules keep the defaults */
	ck_assert_uint_eq(mod("oldabi")->grace_ms, h.cfg.lugs.grace_period_ms);
}
END_TEST

/* ---- the sweep ---- */

START_TEST(sweep_takes_the_minimum_in_lru_order)
{
	static const char *const lru[] = { "json", "zstd", "oldabi", "echo" }; /* oldest first */

	h.cfg.lugs.min_resident = 2;
	for (size_t i = 0; i < ARRAY_SIZE(lru); i++)
		idle_for(load(lru[i]), 1000 * (ARRAY_SIZE(lru) - i));
	ck_assert_uint_eq(h.reg.n_resident, 4);
	lugs_sweep(&h.l);
	ck_assert_int_eq(mod("json")->state, MOD_UNLOADED);
	ck_assert_int_eq(mod("zstd")->state, MOD_UNLOADED);
	ck_assert_int_eq(mod("oldabi")->state, MOD_LOADED);
	ck_assert_int_eq(mod("echo")->state, MOD_LOADED);
	ck_assert_uint_eq(h.reg.n_resident, 2);
	ck_assert_uint_eq(mod("oldabi")->blocked[LUGS_MIN_RESIDENT], 1);
	ck_assert_uint_eq(mod("echo")->blocked[LUGS_MIN_RESIDENT], 1);
	ck_assert_uint_eq(h.l.st.sweeps, 1);
	/* a lower minimum lets the next one go, still the least recent first */
	h.cfg.lugs.min_resident = 1;
	lugs_sweep(&h.l);
	ck_assert_int_eq(mod("oldabi")->state, MOD_UNLOADED);
	ck_assert_int_eq(mod("echo")->state, MOD_LOADED);
	ck_assert_uint_eq(h.l.st.sweeps, 2);
}
END_TEST

START_TEST(sweep_counts_each_refusal)
{
	module *busy = load("echo"), *fresh = load("oldabi"), *core = load("zstd"),
	       *cached = load("json");

	h.cfg.lugs.min_resident = 0;
	idle_for(busy, 1000);
	busy->refs = 1;
	idle_for(fresh, 0);
	idle_for(core, 1000);
	core->policy = POLICY_CORE;
	idle_for(cached, 1000);
	cached->cache_deps = 1;
	load("nodelete"); /* pinned: not a candidate, not counted */
	lugs_sweep(&h.l);
	ck_assert_uint_eq(h.reg.n_resident, 5);
	ck_assert_uint_eq(busy->blocked[LUGS_REFS], 1);
	ck_assert_uint_eq(fresh->blocked[LUGS_GRACE], 1);
	ck_assert_uint_eq(core->blocked[LUGS_PROTECTED], 1);
	ck_assert_uint_eq(cached->blocked[LUGS_CACHED], 1);
	ck_assert_uint_eq(h.l.st.unload_blocked, 4);
	/* released, past grace, uncached: the next sweep takes them */
	busy->refs = 0;
	cached->cache_deps = 0;
	lugs_sweep(&h.l);
	ck_assert_int_eq(busy->state, MOD_UNLOADED);
	ck_assert_int_eq(cached->state, MOD_UNLOADED);
	ck_assert_int_eq(fresh->state, MOD_LOADED);
	ck_assert_int_eq(core->state, MOD_LOADED);
}
END_TEST

START_TEST(sweep_counts_a_veto)
{
	module *m = load("veto");

	h.cfg.lugs.min_resident = 0;
	idle_for(m, 1000);
	lugs_sweep(&h.l);
	ck_assert_int_eq(m->state, MOD_LOADED);
	ck_assert_uint_eq(m->blocked[LUGS_VETO], 1);
	ck_assert_uint_eq(h.l.st.unload_blocked, 1);
}
END_TEST

/* The sweep timer follows lugs.sweep_interval. */
static bool swept_once(void *ud)
{
	(void)ud;
	return h.l.st.sweeps >= 1;
}

START_TEST(sweep_timer_runs_the_sweep)
{
	module *m = load("echo");

	h.cfg.lugs.min_resident = 0;
	idle_for(m, 1000);
	h.cfg.lugs.sweep_interval_ms = 20;
	lugs_config_changed(&h.l);
	ck_assert(tu_pump(&h.tl, swept_once, NULL, TU_TIMEOUT_MS));
	ck_assert_int_eq(m->state, MOD_UNLOADED);
}
END_TEST

/* Shedding (lmms.trim, memory pressure): checks 1-3 only, every module at
 * once, grace and the resident minimum ignored. */
START_TEST(shed_skips_grace_and_minimum_only)
{
	module *busy = load("echo"), *fresh = load("oldabi"), *core = load("zstd"),
	       *cached = load("json");

	h.cfg.lugs.min_resident = 4; /* all four: the minimum does not count here */
	busy->refs = 1;
	core->policy = POLICY_CORE;
	cached->cache_deps = 1;
	idle_for(fresh, 0);
	ck_assert_uint_eq(lugs_shed(&h.l, "test"), 1);
	ck_assert_int_eq(fresh->state, MOD_UNLOADED);
	ck_assert_str_eq(fresh->unload_trigger, "test");
	ck_assert_int_eq(busy->state, MOD_LOADED);
	ck_assert_int_eq(core->state, MOD_LOADED);
	ck_assert_int_eq(cached->state, MOD_LOADED);
	ck_assert_uint_eq(busy->blocked[LUGS_REFS], 1);
	ck_assert_uint_eq(core->blocked[LUGS_PROTECTED], 1);
	ck_assert_uint_eq(cached->blocked[LUGS_CACHED], 1);
	/* nothing is ever shed in eager mode */
	h.l.eager = true;
	busy->refs = 0;
	ck_assert_uint_eq(lugs_shed(&h.l, "test"), 0);
	ck_assert_int_eq(busy->state, MOD_LOADED);
}
END_TEST

/* ---- feature modules, stop and eager ---- */

static bool unloaded(void *ud)
{
	return ((const module *)ud)->state == MOD_UNLOADED;
}

/* One call in and out: ref, touch, unref, as every dispatch path does. */
static void one_call(module *m)
{
	module_ref(m);
	module_touch(m, now_ms());
	module_unref(m);
}

/* After a call in and out, and whatever the loop has due, m is resident. */
static void expect_stays_after_a_call(module *m)
{
	one_call(m);
	for (int i = 0; i < 3; i++)
		tu_pump_once(&h.tl);
	ck_assert_int_eq(m->state, MOD_LOADED);
}

START_TEST(feature_unloads_right_after_release)
{
	module *feat = load("echo"), *util = load("oldabi");

	/* far from any sweep: grace and a resident minimum in force */
	h.cfg.lugs.min_resident = 2;
	feat->policy = POLICY_FEATURE;
	module_ref(feat);
	module_ref(feat);
	module_unref(feat); /* one still in flight */
	for (int i = 0; i < 3; i++)
		tu_pump_once(&h.tl);
	ck_assert_int_eq(feat->state, MOD_LOADED);
	module_unref(feat);
	ck_assert_int_eq(feat->state, MOD_LOADED); /* never inside the call's completion */
	ck_assert(tu_pump(&h.tl, unloaded, feat, TU_TIMEOUT_MS));
	/* a utility module stays */
	expect_stays_after_a_call(util);
}
END_TEST

START_TEST(stopped_lugs_unloads_nothing)
{
	module *m = load("echo");

	m->policy = POLICY_FEATURE;
	lugs_stop(&h.l);
	ck_assert(!uv_is_active((uv_handle_t *)&h.l.sweep_timer));
	expect_stays_after_a_call(m);
	lugs_sweep(&h.l); /* the timer is stopped; a sweep run by hand is not */
	ck_assert_uint_eq(h.l.st.sweeps, 1);
}
END_TEST

START_TEST(eager_lugs_unloads_nothing)
{
	module *m = load("echo");

	lugs_fini(&h.l);
	tu_pump_once(&h.tl); /* the timers' close, before their memory is reused */
	ck_assert_int_eq(lugs_init(&h.l, &h.tl.loop, &h.cfg, &h.reg, true), 0);
	ck_assert(!uv_is_active((uv_handle_t *)&h.l.sweep_timer));
	m->policy = POLICY_FEATURE;
	expect_stays_after_a_call(m);
}
END_TEST

/* malloc_trim after unloads runs at most once per sweep interval; one put
 * off stays pending for the next sweep. */
START_TEST(trim_once_per_interval)
{
	lugs_check which;
	const char *reason;

	h.cfg.lugs.min_resident = 0;
	ck_assert_int_eq(lugs_try_unload(&h.l, load("echo"), true, &which, &reason), 0);
	ck_assert(!h.l.trim_pending);
	ck_assert_uint_gt(h.l.last_trim_ms, 0);
	ck_assert_int_eq(lugs_try_unload(&h.l, load("oldabi"), true, &which, &reason), 0);
	ck_assert(h.l.trim_pending);
	h.l.last_trim_ms = now_ms() - h.cfg.lugs.sweep_interval_ms - 1;
	lugs_sweep(&h.l);
	ck_assert(!h.l.trim_pending);
	ck_assert_int_ge(h.l.st.trim_reclaimed_bytes, 0);
}
END_TEST

static Suite *lifecycle_suite(void)
{
	Suite *s = suite_create("lifecycle");
	TCase *tc = tcase_create("lifecycle");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, five_checks_and_policies, 0, ARRAY_SIZE(unload_cases));
	tcase_add_test(tc, protected_means_core_or_hot);
	tcase_add_test(tc, not_loaded_is_nothing_to_do);
	tcase_add_test(tc, pinned_is_refused);
	tcase_add_test(tc, veto_is_named);
	tcase_add_test(tc, policy_and_grace_from_the_configuration);
	tcase_add_test(tc, sweep_takes_the_minimum_in_lru_order);
	tcase_add_test(tc, sweep_counts_each_refusal);
	tcase_add_test(tc, sweep_counts_a_veto);
	tcase_add_test(tc, sweep_timer_runs_the_sweep);
	tcase_add_test(tc, shed_skips_grace_and_minimum_only);
	tcase_add_test(tc, feature_unloads_right_after_release);
	tcase_add_test(tc, stopped_lugs_unloads_nothing);
	tcase_add_test(tc, eager_lugs_unloads_nothing);
	tcase_add_test(tc, trim_once_per_interval);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(lifecycle_suite());
}
