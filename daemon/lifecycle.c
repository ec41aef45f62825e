/*
 * lifecycle.c - LUGS: the sweep that unloads idle modules through the five
 * checks, feature-policy unloads, admin unloads, and the memory accounting
 * around them.
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>

#include "daemon.h"
#include "log.h"
#include "util.h"

bool lugs_protected(const lmmsd *d, const module *m)
{
	return config_module_policy(&d->cfg, m->name) == POLICY_CORE || m->hot_ops > 0;
}

/*
 * Checks 1-4 of DESIGN.md §4, in order. force (admin "now") skips the grace
 * period, never refs, protection or cache dependencies. Feature modules skip
 * the grace period by policy.
 */
static int lugs_check_1_to_4(const lmmsd *d, const module *m, bool force, uint64_t now,
			     lugs_check *which)
{
	if (m->refs > 0)
		*which = LUGS_REFS;
	else if (lugs_protected(d, m))
		*which = LUGS_PROTECTED;
	else if (d->cfg.lugs.keep_while_cached && m->cache_deps > 0)
		*which = LUGS_CACHED;
	else if (!force && config_module_policy(&d->cfg, m->name) != POLICY_FEATURE &&
		 now - m->last_used_ms < config_module_grace_ms(&d->cfg, m->name))
		*which = LUGS_GRACE;
	else
		return 0;
	return -EBUSY;
}

/* Check 5: the resident minimum (not for force or feature modules). */
static int lugs_check_5(const lmmsd *d, const module *m, bool force, lugs_check *which)
{
	if (force || config_module_policy(&d->cfg, m->name) == POLICY_FEATURE ||
	    d->reg.n_resident > d->cfg.lugs.min_resident)
		return 0;
	*which = LUGS_MIN_RESIDENT;
	return -EBUSY;
}

static void lugs_count_blocked(lmmsd *d, module *m, lugs_check which)
{
	m->blocked[which]++;
	d->st.lugs_unload_blocked++;
}

/* Give the heap that unloads freed back to the kernel, at most once per
 * sweep interval, and count what it measurably returned. A trim that the
 * rate limit put off stays pending for the next sweep, so the heap of the
 * last unloads of a burst is not kept until some later unload. */
static void lugs_trim(lmmsd *d)
{
	uint64_t now = now_ms();
	int64_t before, after;

	if (!d->trim_pending)
		return;
	if (d->last_trim_ms && now - d->last_trim_ms < d->cfg.lugs.sweep_interval_ms)
		return;
	d->trim_pending = false;
	d->last_trim_ms = now;
	before = rss_bytes();
	malloc_trim(0);
	after = rss_bytes();
	if (before > after && after >= 0)
		d->st.trim_reclaimed_bytes += before - after;
}

static int lugs_unload(lmmsd *d, module *m, lugs_check *which, const char **reason)
{
	int r = registry_unload(&d->reg, m, reason);

	if (r == -EBUSY) {
		/* registry_unload counted the veto on the module */
		d->st.lugs_unload_blocked++;
		*which = m->refs ? LUGS_REFS : LUGS_VETO;
		return r;
	}
	d->trim_pending = true;
	return r;
}

int lugs_try_unload(lmmsd *d, module *m, bool force, lugs_check *which, const char **reason)
{
	int r;

	*reason = NULL;
	if (!m->handle)
		return m->state == MOD_PINNED ? 1 : 0;
	if (m->state == MOD_PINNED) {
		*which = LUGS_PROTECTED;
		*reason = "pinned: it stays mapped whatever dlclose does";
		return -EBUSY;
	}
	r = lugs_check_1_to_4(d, m, force, now_ms(), which);
	if (r == 0)
		r = lugs_check_5(d, m, force, which);
	if (r < 0) {
		lugs_count_blocked(d, m, *which);
		return r;
	}
	r = lugs_unload(d, m, which, reason);
	lugs_trim(d);
	return r;
}

static int lru_cmp(const void *a, const void *b)
{
	const module *x = *(module *const *)a, *y = *(module *const *)b;

	return x->last_used_ms < y->last_used_ms ? -1 : x->last_used_ms > y->last_used_ms;
}

void lugs_sweep(lmmsd *d)
{
	module *eligible[REGISTRY_MAX_MODULES];
	uint32_t n = 0;
	uint64_t now = now_ms();
	lugs_check which;
	const char *reason;

	d->st.lugs_sweeps++;
	for (uint32_t i = 0; i < d->reg.n_mods; i++) {
		module *m = d->reg.mods[i];

		if (m->state != MOD_LOADED || !m->handle)
			continue;
		/* checks 1-4 here; 5 below, in LRU order, as each unload
		 * lowers the resident count */
		if (lugs_check_1_to_4(d, m, false, now, &which) == 0)
			eligible[n++] = m;
		else
			lugs_count_blocked(d, m, which);
	}
	qsort(eligible, n, sizeof(eligible[0]), lru_cmp);
	for (uint32_t i = 0; i < n; i++) {
		module *m = eligible[i];

		if (lugs_check_5(d, m, false, &which) < 0) {
			lugs_count_blocked(d, m, which);
			continue;
		}
		if (lugs_unload(d, m, &which, &reason) == -EBUSY)
			log_debug("lugs: %s refused: %s", m->name, reason ? reason : "busy");
	}
	/* once, after all of this sweep's unloads */
	lugs_trim(d);
	/* systemd's STATUS= line follows residency even without a watchdog */
	notify_status(d);
}

static void lugs_on_timer(uv_timer_t *t)
{
	lugs_sweep(t->data);
}

/* Feature modules leave as soon as their last call finished. Deferred to a
 * zero timer so the unload never runs inside the call's own completion. */
static void lugs_on_feature(uv_timer_t *t)
{
	lmmsd *d = t->data;
	lugs_check which;
	const char *reason;

	for (uint32_t i = 0; i < d->reg.n_mods; i++) {
		module *m = d->reg.mods[i];

		if (m->state == MOD_LOADED && m->handle && m->refs == 0 &&
		    config_module_policy(&d->cfg, m->name) == POLICY_FEATURE)
			lugs_try_unload(d, m, false, &which, &reason);
	}
}

void lugs_module_released(lmmsd *d, module *m)
{
	if (d->eager || d->shutting_down)
		return;
	if (config_module_policy(&d->cfg, m->name) == POLICY_FEATURE)
		uv_timer_start(&d->feature_timer, lugs_on_feature, 0, 0);
}

void lugs_restart(lmmsd *d)
{
	if (d->eager)
		return;
	uv_timer_start(&d->lugs_timer, lugs_on_timer, d->cfg.lugs.sweep_interval_ms,
		       d->cfg.lugs.sweep_interval_ms);
}

void lugs_start(lmmsd *d)
{
	uv_timer_init(d->loop, &d->lugs_timer);
	uv_timer_init(d->loop, &d->feature_timer);
	d->lugs_timer.data = d->feature_timer.data = d;
	lugs_restart(d);
	/* never keep the loop alive on its own */
	uv_unref((uv_handle_t *)&d->lugs_timer);
	uv_unref((uv_handle_t *)&d->feature_timer);
}

void lugs_stop(lmmsd *d)
{
	uv_close((uv_handle_t *)&d->lugs_timer, NULL);
	uv_close((uv_handle_t *)&d->feature_timer, NULL);
}
