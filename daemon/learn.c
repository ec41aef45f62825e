/*
 * learn.c - heat across restarts, shedding under pressure, modules replaced
 * on disk (see learn.h).
 */
#include "learn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "persist.h"
#include "util.h"

/* ---- heat across restarts ---- */

static int restore_one(void *ud, const persist_record *rec)
{
	learn *l = ud;
	saved_heat *s, *v;

	if (l->n_saved == PERSIST_MAX_RECORDS)
		return -E2BIG;
	v = realloc(l->saved, (l->n_saved + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	l->saved = v;
	s = &v[l->n_saved];
	s->method = strndup(rec->method, rec->method_len);
	if (!s->method)
		return -ENOMEM;
	s->count = rec->count;
	s->calls = rec->calls;
	l->n_saved++;
	return 0;
}

/* Modules with an op that was hot when saved (after decay), once each. */
static void restore_pick_preload(learn *l)
{
	const config *cfg = &l->d->cfg;

	l->preload = calloc(l->n_saved ? l->n_saved : 1, sizeof(*l->preload));
	if (!l->preload)
		return;
	for (uint32_t i = 0; i < l->n_saved; i++) {
		const char *dot = strchr(l->saved[i].method, '.');
		size_t n = dot ? (size_t)(dot - l->saved[i].method) : 0;
		bool dup = false;

		if (l->saved[i].count < cfg->zafp.hot || !n || n > MODULE_NAME_MAX)
			continue;
		for (uint32_t j = 0; j < l->n_preload; j++)
			dup |= strlen(l->preload[j]) == n &&
			       memcmp(l->preload[j], l->saved[i].method, n) == 0;
		if (!dup) {
			memcpy(l->preload[l->n_preload], l->saved[i].method, n);
			l->preload[l->n_preload++][n] = '\0';
		}
	}
}

void learn_restore(learn *l)
{
	lmmsd *d = l->d;
	const char *dir = d->cfg.ligs.state_dir[0] ? d->cfg.ligs.state_dir : getenv("STATE_DIRECTORY");
	char first[PATH_MAX];
	persist_info info = { 0 };
	int r;

	if (!dir || !*dir)
		return;
	/* StateDirectory= may list several, colon-separated: ours is the first */
	snprintf(first, sizeof(first), "%.*s", (int)strcspn(dir, ":"), dir);
	if (snprintf(l->heat_path, sizeof(l->heat_path), "%s/heat", first) >=
	    (int)sizeof(l->heat_path)) {
		log_warn("state directory path too long: heat is not saved");
		l->heat_path[0] = '\0';
		return;
	}
	r = persist_load(l->heat_path, persist_wall_ms(), d->cfg.zafp.decay_interval_ms,
			 restore_one, l, &info);
	if (r == -ENOENT) {
		log_info("no saved heat in %s: a cold start", l->heat_path);
		return;
	}
	if (r < 0) {
		for (uint32_t i = 0; i < l->n_saved; i++)
			free(l->saved[i].method);
		free(l->saved);
		l->saved = NULL;
		l->n_saved = 0;
		log_warn("saved heat %s: %s; starting cold", l->heat_path, persist_strerror(r));
		return;
	}
	for (uint32_t i = 0; i < l->n_saved; i++)
		(void)hmap_put(&l->saved_by_method, l->saved[i].method,
			       strlen(l->saved[i].method), &l->saved[i]);
	restore_pick_preload(l);
	log_info("restored the heat of %u ops from %s (saved %llus ago, halved %u times); %u modules to preload",
		 l->n_saved, l->heat_path, (unsigned long long)(info.elapsed_ms / 1000), info.halvings,
		 l->n_preload);
}

void learn_module_loaded(learn *l, module *m)
{
	/* what the file was when loaded: a later change is judged against it */
	watch_stamp_path(m->path, &m->stamp);
	if (!l->n_saved)
		return;
	for (uint32_t i = 0; i < m->n_ops; i++) {
		op_info *op = m->ops[i];
		saved_heat *s = hmap_del(&l->saved_by_method, op->method, op->method_len);

		if (!s)
			continue;
		/* the heat an op had: the level follows from the count */
		op->heat.count = s->count;
		op->heat.calls += s->calls;
		op->heat.level = heat_level_for(&l->d->cfg, s->count);
	}
}

typedef struct save_iter {
	learn *l;
	uint32_t mod, op, saved;
} save_iter;

/* Every op with heat, then what was restored for modules not loaded since. */
static int save_next(void *ud, persist_record *rec)
{
	save_iter *it = ud;
	registry *r = &it->l->d->reg;

	for (; it->mod < r->n_mods; it->mod++, it->op = 0) {
		module *m = r->mods[it->mod];

		while (it->op < m->n_ops) {
			op_info *op = m->ops[it->op++];

			if (op->gone || (!op->heat.count && !op->heat.calls))
				continue;
			rec->method = op->method;
			rec->method_len = op->method_len;
			rec->count = op->heat.count;
			rec->calls = op->heat.calls;
			return 1;
		}
	}
	for (; it->saved < it->l->n_saved; it->saved++) {
		saved_heat *s = &it->l->saved[it->saved];

		if (!hmap_get(&it->l->saved_by_method, s->method, strlen(s->method)))
			continue; /* applied to a loaded module, saved above */
		rec->method = s->method;
		rec->method_len = (uint32_t)strlen(s->method);
		rec->count = s->count;
		rec->calls = s->calls;
		it->saved++;
		return 1;
	}
	return 0;
}

static void learn_save(learn *l)
{
	save_iter it = { .l = l };
	int r;

	if (!l->heat_path[0])
		return;
	r = persist_save(l->heat_path, persist_wall_ms(), save_next, &it);
	if (r < 0)
		log_warn("cannot save heat to %s: %s", l->heat_path, persist_strerror(r));
	else
		l->saves++;
}

static void on_save_timer(uv_timer_t *t)
{
	learn_save(t->data);
}

/*
 * One module per loop iteration, and only once the daemon answered its
 * first request or stayed quiet for LEARN_PRELOAD_QUIET_MS: a preload never
 * stands between a client and its first reply.
 */
static void learn_watch_start(learn *l);

static void on_preload_timer(uv_timer_t *t)
{
	learn *l = t->data;
	lmmsd *d = l->d;
	module *m;
	const char *name;

	if (d->shutting_down) {
		uv_timer_stop(t);
		return;
	}
	if (!d->dp.st.requests_total && uv_now(d->loop) - l->ready_ms < LEARN_PRELOAD_QUIET_MS)
		return;
	if (!l->watch_started)
		learn_watch_start(l);
	if (l->preload_next >= l->n_preload || !d->cfg.ligs.preload_hot || d->eager) {
		uv_timer_stop(t);
		return;
	}
	name = l->preload[l->preload_next++];
	m = registry_find(&d->reg, name, strlen(name));
	if (m && !module_callable(m)) {
		module_set_trigger(m, "preload");
		if (registry_load(&d->reg, m) == 0) {
			l->preloaded++;
			log_info("module %s preloaded: its ops were hot before the restart", name);
		}
	}
	uv_timer_start(t, on_preload_timer, 0, 10);
}

/* ---- memory pressure ---- */

static void on_pressure(void *ud, int status)
{
	learn *l = ud;
	lmmsd *d = l->d;
	lmmsd_trim_result t;

	if (status < 0) {
		log_warn("memory pressure trigger on %s stopped: %s", l->psi.path,
			 pressure_strerror(status));
		l->psi_on = false;
		return;
	}
	d->lugs.st.pressure_events++;
	log_info("memory pressure (%s): shedding", l->psi.last);
	lmmsd_trim(d, "memory pressure", &t);
}

/* ---- modules replaced on disk ---- */

static void on_watch(void *ud, const watch_event *ev)
{
	learn *l = ud;
	lmmsd *d = l->d;
	module *m;

	if (ev->kind == WATCH_LOST) {
		log_warn("module directory %s went away: no longer watched", d->reg.dir);
		l->watch_on = false;
		return;
	}
	m = registry_find(&d->reg, ev->name, strlen(ev->name));
	switch (ev->kind) {
	case WATCH_ADDED:
		if (m)
			log_info("module %s installed: callable now", m->name);
		break;
	case WATCH_MODIFIED_IN_PLACE:
		if (m && m->handle && !m->tainted && m->isolation != ISOLATION_PROCESS &&
		    watch_file_check(0, m->path, &m->stamp) == WATCH_FILE_MODIFIED) {
			registry_taint(&d->reg, m);
			break;
		}
		/* not mapped here: as good as a replacement */
		/* fallthrough */
	case WATCH_REPLACED:
		if (!m || !module_has_code(m) || m->tainted)
			break;
		m->reload_pending = true;
		/* an isolated module needs no pause: its old worker drains */
		if (!m->refs || m->isolation == ISOLATION_PROCESS)
			registry_reload(&d->reg, m);
		break;
	case WATCH_REMOVED:
		if (!m) {
			/* a name never loaded: nothing to do */
		} else if (module_has_code(m) && !m->refs) {
			lugs_check which;
			const char *reason;

			module_set_trigger(m, "its file being removed");
			lugs_try_unload(&d->lugs, m, true, &which, &reason);
		}
		break;
	case WATCH_LOST:
		break;
	}
}

/* Deferred to a zero timer, as LUGS does for feature modules, so a reload
 * never runs inside the completion of the call that released the module. */
static void on_reload_timer(uv_timer_t *t)
{
	learn *l = t->data;
	registry *r = &l->d->reg;

	for (uint32_t i = 0; i < r->n_mods; i++)
		if (r->mods[i]->reload_pending && !r->mods[i]->refs && !l->d->shutting_down)
			registry_reload(r, r->mods[i]);
}

void learn_module_released(learn *l, module *m)
{
	if (m->reload_pending && l->timers_open)
		uv_timer_start(&l->reload_timer, on_reload_timer, 0, 0);
}

/* ---- life ---- */

void learn_init(learn *l, lmmsd *d)
{
	memset(l, 0, sizeof(*l));
	l->d = d;
	hmap_init(&l->saved_by_method, PERSIST_MAX_RECORDS);
	pressure_init(&l->psi, d->loop);
	watch_init(&l->w, d->loop);
	if (uv_timer_init(d->loop, &l->save_timer) == 0 &&
	    uv_timer_init(d->loop, &l->preload_timer) == 0 &&
	    uv_timer_init(d->loop, &l->reload_timer) == 0) {
		l->timers_open = true;
		l->save_timer.data = l->preload_timer.data = l->reload_timer.data = l;
		uv_unref((uv_handle_t *)&l->save_timer);
		uv_unref((uv_handle_t *)&l->preload_timer);
		uv_unref((uv_handle_t *)&l->reload_timer);
	}
}

void learn_start(learn *l)
{
	lmmsd *d = l->d;
	int r;

	l->ready_ms = uv_now(d->loop);
	if (l->timers_open) {
		if (l->heat_path[0])
			uv_timer_start(&l->save_timer, on_save_timer, LEARN_SAVE_INTERVAL_MS,
				       LEARN_SAVE_INTERVAL_MS);
	}
	if (d->cfg.lugs.pressure == 0 && !d->eager) {
		r = pressure_start(&l->psi, NULL, on_pressure, l);
		if (r == 0) {
			l->psi_on = true;
			log_info("memory pressure: trigger \"%s\" on %s", l->psi.trigger, l->psi.path);
		} else if (pressure_absent(r)) {
			log_info("memory pressure: not watched (%s)", pressure_strerror(r));
		} else {
			log_warn("memory pressure: not watched: %s", pressure_strerror(r));
		}
	}
	/* the watcher lists the directory: not before the first answer */
	if (l->timers_open)
		uv_timer_start(&l->preload_timer, on_preload_timer, 0, 10);
}

static void learn_watch_start(learn *l)
{
	lmmsd *d = l->d;
	int r;

	l->watch_started = true;
	r = watch_start(&l->w, d->reg.dir, NULL, on_watch, l);
	if (r == 0) {
		l->watch_on = true;
		log_info("watching %s: modules installed, replaced or removed take effect at once",
			 d->reg.dir);
	} else {
		log_warn("module directory %s: not watched for changes: %s", d->reg.dir,
			 strerror(-r));
	}
}

/* Idempotent: the pressure trigger and the directory watcher go. */
static void learn_disarm(learn *l)
{
	if (l->psi_on)
		pressure_stop(&l->psi);
	if (l->watch_on)
		watch_stop(&l->w);
	l->psi_on = l->watch_on = false;
}

void learn_stop(learn *l)
{
	learn_save(l);
	if (l->timers_open) {
		uv_timer_stop(&l->save_timer);
		uv_timer_stop(&l->preload_timer);
		uv_timer_stop(&l->reload_timer);
	}
	learn_disarm(l);
}

void learn_fini(learn *l)
{
	if (l->timers_open) {
		l->timers_open = false;
		uv_close((uv_handle_t *)&l->save_timer, NULL);
		uv_close((uv_handle_t *)&l->preload_timer, NULL);
		uv_close((uv_handle_t *)&l->reload_timer, NULL);
	}
	learn_disarm(l);
}

void learn_free(learn *l)
{
	for (uint32_t i = 0; i < l->n_saved; i++)
		free(l->saved[i].method);
	free(l->saved);
	free(l->preload);
	hmap_fini(&l->saved_by_method);
	l->saved = NULL;
	l->preload = NULL;
	l->n_saved = l->n_preload = 0;
}
