/*
 * lifecycle.c - LUGS: the sweep that unloads idle modules through the five
 * checks, feature-policy unloads, admin unloads, and the memory accounting
 * around them.
 */
#include "lifecycle.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

bool lugs_protected(const lugs *l, const module *m)
{
	(void)l;
	return m->policy == POLICY_CORE || m->hot_ops > 0;
}

/*
 * Checks 1-4 of DESIGN.md §4, in order. force (admin "now") skips the grace
 * period, never refs, protection or cache dependencies. Feature modules skip
 * the grace period by policy.
 */
static int lugs_check_1_to_4(const lugs *l, const module *m, bool force, uint64_t now,
			     lugs_check *which)
{
	if (m->refs > 0)
		*which = LUGS_REFS;
	else if (lugs_protected(l, m))
		*which = LUGS_PROTECTED;
	else if (l->cfg->lugs.keep_while_cached && m->cache_deps > 0)
		*which = LUGS_CACHED;
	else if (!force && m->policy != POLICY_FEATURE && now - m->last_used_ms < module_grace_ms(m))
		*which = LUGS_GRACE;
	else
		return 0;
	return -EBUSY;
}

/* Check 5: the resident minimum (not for force or feature modules). */
static int lugs_check_5(const lugs *l, const module *m, bool force, lugs_check *which)
{
	if (force || m->policy == POLICY_FEATURE || l->reg->n_resident > l->cfg->lugs.min_resident)
		return 0;
	*which = LUGS_MIN_RESIDENT;
	return -EBUSY;
}

static void lugs_count_blocked(lugs *l, module *m, lugs_check which)
{
	m->blocked[which]++;
	l->st.unload_blocked++;
}

/* Give the heap that unloads freed back to the kernel, at most once per
 * sweep interval, and count what it measurably returned. A trim that the
 * rate limit put off stays pending for the next sweep, so the heap of the
 * last unloads of a burst is not kept until some later unload. */
static void lugs_trim(lugs *l)
{
	uint64_t now = now_ms();
	int64_t before, after;

	if (!l->trim_pending)
		return;
	if (l->last_trim_ms && now - l->last_trim_ms < l->cfg->lugs.sweep_interval_ms)
		return;
	l->trim_pending = false;
	l->last_trim_ms = now;
	before = rss_bytes();
	malloc_trim(0);
	after = rss_bytes();
	if (before > after && after >= 0)
		l->st.trim_reclaimed_bytes += before - after;
}

static int lugs_unload(lugs *l, module *m, lugs_check *which, const char **reason)
{
	int r = registry_unload(l->reg, m, reason);

	if (r == -EBUSY) {
		/* registry_unload counted the veto on the module */
		l->st.unload_blocked++;
		*which = m->refs ? LUGS_REFS : LUGS_VETO;
		return r;
	}
	l->trim_pending = true;
	return r;
}

int lugs_try_unload(lugs *l, module *m, bool force, lugs_check *which, const char **reason)
{
	int r;

	*reason = NULL;
	if (!module_has_code(m))
		return m->state == MOD_PINNED ? 1 : 0;
	if (m->state == MOD_PINNED) {
		*which = LUGS_PROTECTED;
		*reason = "pinned: it stays mapped whatever dlclose does";
		return -EBUSY;
	}
	r = lugs_check_1_to_4(l, m, force, now_ms(), which);
	if (r == 0)
		r = lugs_check_5(l, m, force, which);
	if (r < 0) {
		lugs_count_blocked(l, m, *which);
		return r;
	}
	r = lugs_unload(l, m, which, reason);
	lugs_trim(l);
	return r;
}

static int lru_cmp(const void *a, const void *b)
{
	const module *x = *(module *const *)a, *y = *(module *const *)b;

	return x->last_used_ms < y->last_used_ms ? -1 : x->last_used_ms > y->last_used_ms;
}

void lugs_sweep(lugs *l)
{
	module *eligible[REGISTRY_MAX_MODULES];
	uint32_t n = 0;
	uint64_t now = now_ms();
	lugs_check which;
	const char *reason;
	int r;

	l->st.sweeps++;
	for (uint32_t i = 0; i < l->reg->n_mods; i++) {
		module *m = l->reg->mods[i];

		if (!module_resident(m)) {
			/* a learned grace drifts back while the module stays out */
			grace_drift(&m->adapt, now, m->grace_ms);
			continue;
		}
		if (m->state != MOD_LOADED || !module_has_code(m))
			continue;
		/* checks 1-4 here; 5 below, in LRU order, as each unload
		 * lowers the resident count */
		if (lugs_check_1_to_4(l, m, false, now, &which) == 0)
			eligible[n++] = m;
		else
			lugs_count_blocked(l, m, which);
	}
	qsort(eligible, n, sizeof(eligible[0]), lru_cmp);
	for (uint32_t i = 0; i < n; i++) {
		module *m = eligible[i];

		if (lugs_check_5(l, m, false, &which) < 0) {
			lugs_count_blocked(l, m, which);
			continue;
		}
		module_set_trigger(m, "sweep (idle %llus)",
				   (unsigned long long)((now - m->last_used_ms) / 1000));
		r = lugs_unload(l, m, &which, &reason);
		if (r == -EBUSY)
			log_debug("lugs: %s refused: %s", m->name, reason ? reason : "busy");
		else if (r == 0)
			/* only the grace decided this one: a reload soon proves it wrong */
			grace_on_unload(&m->adapt, now);
	}
	/* once, after all of this sweep's unloads */
	lugs_trim(l);
}

uint32_t lugs_shed(lugs *l, const char *trigger)
{
	uint64_t now = now_ms();
	lugs_check which;
	const char *reason;
	uint32_t n = 0;

	if (l->eager)
		return 0;
	for (uint32_t i = 0; i < l->reg->n_mods; i++) {
		module *m = l->reg->mods[i];

		if (m->state != MOD_LOADED || !module_has_code(m))
			continue;
		/* checks 1-3 only: grace and the minimum are what shedding skips */
		if (lugs_check_1_to_4(l, m, true, now, &which) < 0) {
			lugs_count_blocked(l, m, which);
			continue;
		}
		module_set_trigger(m, "%s", trigger);
		if (lugs_unload(l, m, &which, &reason) == 0)
			n++;
	}
	l->trim_pending = false;
	l->last_trim_ms = now;
	return n;
}

static void lugs_on_timer(uv_timer_t *t)
{
	lugs_sweep(t->data);
}

/* Feature modules leave as soon as their last call finished. Deferred to a
 * zero timer so the unload never runs inside the call's own completion. */
static void lugs_on_feature(uv_timer_t *t)
{
	lugs *l = t->data;
	lugs_check which;
	const char *reason;

	for (uint32_t i = 0; i < l->reg->n_mods; i++) {
		module *m = l->reg->mods[i];

		if (m->state == MOD_LOADED && module_has_code(m) && m->refs == 0 &&
		    m->policy == POLICY_FEATURE) {
			module_set_trigger(m, "feature policy");
			lugs_try_unload(l, m, false, &which, &reason);
		}
	}
}

void lugs_module_released(lugs *l, module *m)
{
	if (l->eager || l->stopped || !l->timers_open)
		return;
	if (m->policy == POLICY_FEATURE)
		uv_timer_start(&l->feature_timer, lugs_on_feature, 0, 0);
}

void lugs_config_changed(lugs *l)
{
	if (l->eager || l->stopped || !l->timers_open)
		return;
	uv_timer_start(&l->sweep_timer, lugs_on_timer, l->cfg->lugs.sweep_interval_ms,
		       l->cfg->lugs.sweep_interval_ms);
}

int lugs_init(lugs *l, uv_loop_t *loop, const config *cfg, registry *reg, bool eager)
{
	int r;

	memset(l, 0, sizeof(*l));
	l->loop = loop;
	l->cfg = cfg;
	l->reg = reg;
	l->eager = eager;
	r = uv_timer_init(loop, &l->sweep_timer);
	if (r < 0)
		return r;
	r = uv_timer_init(loop, &l->feature_timer);
	if (r < 0) {
		uv_close((uv_handle_t *)&l->sweep_timer, NULL);
		return r;
	}
	l->timers_open = true;
	l->sweep_timer.data = l->feature_timer.data = l;
	/* never keep the loop alive on their own */
	uv_unref((uv_handle_t *)&l->sweep_timer);
	uv_unref((uv_handle_t *)&l->feature_timer);
	lugs_config_changed(l);
	return 0;
}

void lugs_stop(lugs *l)
{
	l->stopped = true;
	if (l->timers_open) {
		uv_timer_stop(&l->sweep_timer);
		uv_timer_stop(&l->feature_timer);
	}
}

void lugs_fini(lugs *l)
{
	if (!l->timers_open)
		return;
	l->timers_open = false;
	uv_close((uv_handle_t *)&l->sweep_timer, NULL);
	uv_close((uv_handle_t *)&l->feature_timer, NULL);
}
