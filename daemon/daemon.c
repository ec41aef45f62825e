/*
 * daemon.c - lmmsd's life: compose the units, start (registry, cache, heat,
 * timers, signals, listener), reload, and the graceful stop that finishes
 * in-flight work, finalises every loaded module and removes the socket.
 */
#include "daemon.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmms-build-config.h"
#include "log.h"
#include "util.h"

#define SHUTDOWN_POLL_MS 20

void lmmsd_server_limits(const config *cfg, server_limits *l)
{
	memset(l, 0, sizeof(*l));
	proto_limits_default(&l->proto);
	l->proto.max_message_bytes = cfg->server.max_message_bytes;
	l->proto.max_depth = cfg->server.max_depth;
	l->proto.max_elements = cfg->server.max_elements;
	l->proto.max_str_bytes = cfg->server.max_message_bytes;
	l->max_connections = cfg->server.max_connections;
	l->max_connections_per_uid = cfg->server.max_connections_per_uid;
	l->max_inflight = cfg->server.max_inflight;
	l->max_output_bytes = cfg->server.max_output_bytes;
	l->idle_timeout_ms = cfg->server.idle_timeout_ms;
	l->message_timeout_ms = cfg->server.message_timeout_ms;
	l->write_timeout_ms = cfg->server.write_timeout_ms;
	l->backlog = cfg->server.backlog;
}

/* ---- wiring between units ---- */

static void on_module_unload(void *ud, module *m)
{
	lmmsd *d = ud;

	heat_forget_module(&d->heat, m);
}

static void on_module_released(void *ud, module *m)
{
	lmmsd *d = ud;

	lugs_module_released(&d->lugs, m);
	if (d->lrn_open)
		learn_module_released(&d->lrn, m);
}

/* systemd's STATUS= line follows residency at once, with or without a
 * watchdog (which refreshes it too). */
static void on_residency(void *ud, module *m)
{
	lmmsd *d = ud;

	if (module_resident(m) && d->lrn_open)
		learn_module_loaded(&d->lrn, m);
	notify_status(&d->nt);
}

/* The transport's callbacks: messages to dispatch, closes to every unit that
 * keeps something per connection. */
static int on_message(void *ud, conn *c, const char *msg, size_t len)
{
	lmmsd *d = ud;

	return dispatch_on_message(&d->dp, c, msg, len);
}

static void on_close(void *ud, conn *c)
{
	lmmsd *d = ud;

	dispatch_on_close(&d->dp, c);
	if (d->mon_open) {
		monitor_remove(&d->mon, c);
		if (!d->mon.n)
			d->dp.on_event = NULL;
	}
}

static void on_pending(void *ud, conn *c, int64_t delta)
{
	lmmsd *d = ud;

	/* output a client does not read counts against its uid's budget */
	if (d->sched)
		sched_charge(d->sched, c->uid, delta);
}

/* A uid reached server.max_queued_bytes_per_uid (or fell back to half of
 * it): stop (resume) reading all of its connections. */
static void on_budget(void *ud, uid_t uid, bool over)
{
	lmmsd *d = ud;
	conn *next;

	log_info("uid %u %s server.max_queued_bytes_per_uid: %s reading its connections",
		 (unsigned)uid, over ? "reached" : "is back under", over ? "pausing" : "resuming");
	for (conn *c = d->srv.conns; c; c = next) {
		next = c->next;
		if (c->uid == uid)
			conn_hold(c, over);
	}
}

/* The watchdog pets while the loop runs (its timer fired) and the pool is
 * alive: busy with long calls is alive, only a broken pool is not. */
static bool pool_alive(void *ud)
{
	lmmsd *d = ud;
	sched_health h;

	return !d->sched || sched_probe(d->sched, now_ms(), 2 * d->nt.interval_ms, &h) == 0;
}

int lmmsd_monitor_add(lmmsd *d, conn *c)
{
	int r = d->mon_open ? monitor_add(&d->mon, c) : -ENODEV;

	if (r == 0) {
		d->dp.on_event = monitor_event;
		d->dp.ud_event = &d->mon;
	}
	return r;
}

void lmmsd_trim(lmmsd *d, const char *trigger, lmmsd_trim_result *t)
{
	t->rss_before = rss_bytes();
	/* the cache first: modules only its entries held may then go too */
	t->cache_bytes_dropped = cache_shrink(&d->cache, d->cache.bytes / 2);
	t->modules_unloaded = lugs_shed(&d->lugs, trigger);
	malloc_trim(0);
	t->rss_after = rss_bytes();
	if (t->rss_before > t->rss_after && t->rss_after >= 0)
		d->lugs.st.trim_reclaimed_bytes += t->rss_before - t->rss_after;
	log_info("%s: %u modules unloaded, %llu cache bytes dropped, RSS %lld -> %lld KiB", trigger,
		 t->modules_unloaded, (unsigned long long)t->cache_bytes_dropped,
		 (long long)t->rss_before / 1024, (long long)t->rss_after / 1024);
	notify_status(&d->nt);
}

static void status_text(void *ud, char *buf, size_t n)
{
	lmmsd *d = ud;

	snprintf(buf, n, "%u modules resident, %llu requests, %u connections", d->reg.n_resident,
		 (unsigned long long)d->dp.st.requests_total, d->srv.n_conns);
}

/* ---- periodic work ---- */

static void lmmsd_on_decay(uv_timer_t *t)
{
	lmmsd *d = t->data;

	for (uint32_t i = 0; i < d->reg.n_mods; i++)
		heat_decay(&d->heat, (op_info *const *)d->reg.mods[i]->ops, d->reg.mods[i]->n_ops);
}

/* Wake at the next expiry, but at least every expire_interval, so expired
 * entries (and the module dependencies they hold) go away on time. */
static void lmmsd_arm_cache_timer(lmmsd *d);

static void lmmsd_on_cache_timer(uv_timer_t *t)
{
	lmmsd *d = t->data;

	cache_expire(&d->cache, now_ms());
	lmmsd_arm_cache_timer(d);
}

static void lmmsd_arm_cache_timer(lmmsd *d)
{
	uint64_t now = now_ms();
	uint64_t next = cache_next_expiry(&d->cache, now);
	uint64_t every = d->cfg.cache.expire_interval_ms;

	if (next > every)
		next = every;
	if (!next)
		next = 1;
	d->cache_timer_due_ms = now + next;
	uv_timer_start(&d->cache_timer, lmmsd_on_cache_timer, next, 0);
}

static void on_cache_stored(void *ud, uint64_t expires_ms)
{
	lmmsd *d = ud;

	/* An entry that expires before the armed wake-up pulls it forward, so
	 * no entry (nor the module dependency it holds) outlives its TTL. */
	if (expires_ms < d->cache_timer_due_ms)
		lmmsd_arm_cache_timer(d);
}

static void lmmsd_start_timers(lmmsd *d)
{
	if (d->cfg.zafp.decay_interval_ms)
		uv_timer_start(&d->decay_timer, lmmsd_on_decay, d->cfg.zafp.decay_interval_ms,
			       d->cfg.zafp.decay_interval_ms);
	else
		uv_timer_stop(&d->decay_timer);
	lmmsd_arm_cache_timer(d);
	lugs_config_changed(&d->lugs);
	dispatch_config_changed(&d->dp);
}

/* ---- signals ---- */

static void lmmsd_on_signal(uv_signal_t *s, int signum)
{
	lmmsd *d = s->data;

	if (signum == SIGHUP) {
		char msg[512];

		if (lmmsd_reload(d, msg, sizeof(msg)) < 0)
			log_err("reload refused, old configuration kept: %s", msg);
		return;
	}
	if (d->shutting_down) {
		log_warn("second signal: stopping now, without waiting for calls in flight");
		d->shutdown_deadline_ms = now_ms();
		return;
	}
	log_info("%s: shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
	lmmsd_shutdown(d);
}

/* ---- life ---- */

static int open_timer(lmmsd *d, uv_timer_t *t, uint32_t bit, bool keep_alive)
{
	int r = uv_timer_init(d->loop, t);

	if (r < 0)
		return r;
	d->handles |= bit;
	t->data = d;
	if (!keep_alive)
		uv_unref((uv_handle_t *)t);
	return 0;
}

static int open_signal(lmmsd *d, uv_signal_t *s, uint32_t bit, int signum)
{
	int r = uv_signal_init(d->loop, s);

	if (r < 0)
		return r;
	d->handles |= bit;
	s->data = d;
	return uv_signal_start(s, lmmsd_on_signal, signum);
}

int lmmsd_init(lmmsd *d, uv_loop_t *loop)
{
	server_limits limits;
	const server_callbacks cb = {
		.on_message = on_message,
		.on_close = on_close,
		.on_pending = on_pending,
	};
	const sched_config sc = {
		.workers = d->cfg.server.workers,
		.max_jobs_per_uid = d->cfg.server.max_calls_per_uid,
		.max_bytes_per_uid = d->cfg.server.max_queued_bytes_per_uid,
		.on_budget = on_budget,
		.ud = d,
	};
	int r;

	d->loop = loop;
	d->start_ms = uv_now(loop);
	access_init(&d->acc, &d->cfg);
	notify_init(&d->nt, loop, status_text, pool_alive, d);

	r = registry_init(&d->reg, d->module_dir, &d->cfg);
	d->reg_open = true;
	if (r < 0 && r != -ENOENT)
		return r;
	d->reg.on_unload = on_module_unload;
	d->reg.on_released = on_module_released;
	d->reg.on_residency = on_residency;
	d->reg.loop = loop;
	d->reg.ud = d;
	heat_init(&d->heat, &d->cfg);
	d->heat_open = true;
	r = cache_init(&d->cache, d->cfg.cache.max_bytes, d->cfg.cache.max_entries);
	if (r < 0)
		return r;
	d->cache_open = true;
	builtin_init(&d->bi, d);

	r = sched_create(&d->sched, loop, &sc);
	if (r < 0)
		return r;
	r = dispatch_init(&d->dp, loop, &d->cfg, &d->reg, &d->heat, &d->cache, &d->bi, d->sched);
	d->dp_open = true;
	if (r < 0)
		return r;
	d->dp.on_cache_stored = on_cache_stored;
	d->dp.ud = d;

	r = lugs_init(&d->lugs, loop, &d->cfg, &d->reg, d->eager);
	if (r < 0)
		return r;
	d->lugs_open = true;

	r = monitor_init(&d->mon, loop);
	if (r < 0)
		return r;
	d->mon_open = true;

	learn_init(&d->lrn, d);
	d->lrn_open = true;

	lmmsd_server_limits(&d->cfg, &limits);
	server_init(&d->srv, loop, &limits, &cb, d);
	d->srv_open = true;

	if ((r = open_timer(d, &d->decay_timer, H_DECAY, false)) < 0 ||
	    (r = open_timer(d, &d->cache_timer, H_CACHE, false)) < 0 ||
	    (r = open_timer(d, &d->shutdown_timer, H_SHUTDOWN, true)) < 0 ||
	    (r = open_signal(d, &d->sig_int, H_SIGINT, SIGINT)) < 0 ||
	    (r = open_signal(d, &d->sig_term, H_SIGTERM, SIGTERM)) < 0 ||
	    (r = open_signal(d, &d->sig_hup, H_SIGHUP, SIGHUP)) < 0)
		return r;
	lmmsd_start_timers(d);
	return 0;
}

static void lmmsd_load_at_start(lmmsd *d)
{
	if (d->eager) {
		registry_list(&d->reg);
		for (uint32_t i = 0; i < d->reg.n_mods; i++)
			registry_load(&d->reg, d->reg.mods[i]);
		return;
	}
	for (uint32_t i = 0; i < d->cfg.ligs.n_preload; i++) {
		const char *name = d->cfg.ligs.preload[i];
		module *m = registry_find(&d->reg, name, strlen(name));

		if (!m)
			log_warn("ligs.preload: no module %s", name);
		else
			registry_load(&d->reg, m);
	}
}

int lmmsd_start(lmmsd *d, int listen_fd)
{
	char where[sizeof(d->socket_path)];
	int r;

	lmmsd_load_at_start(d);
	learn_restore(&d->lrn);
	r = server_start(&d->srv, d->socket_path, listen_fd);
	if (r < 0)
		return r;
	notify_watchdog_start(&d->nt);
	if (listen_fd >= 0) {
		/* the path the service manager bound, which may differ from ours */
		server_listen_name(&d->srv, where, sizeof(where));
		if (!where[0])
			snprintf(where, sizeof(where), "fd %d", listen_fd);
		else
			memcpy(d->cfg.server.socket, where, sizeof(d->cfg.server.socket));
		log_info("ready: listening on inherited socket %s, modules in %s, %u loaded%s", where,
			 d->reg.dir, d->reg.n_resident, d->eager ? " (eager)" : "");
	} else {
		log_info("ready: listening on %s, modules in %s, %u loaded%s", d->socket_path,
			 d->reg.dir, d->reg.n_resident, d->eager ? " (eager)" : "");
	}
	notify_ready(&d->nt);
	learn_start(&d->lrn);
	return 0;
}

static uint32_t lmmsd_work_in_flight(const lmmsd *d)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < d->reg.n_mods; i++)
		n += d->reg.mods[i]->refs;
	return n;
}

/* Idempotent: closes what is open, so it serves a finished stop and a
 * half-done init alike. */
static void lmmsd_close_handles(lmmsd *d)
{
	uv_handle_t *const hs[] = {
		(uv_handle_t *)&d->decay_timer, (uv_handle_t *)&d->cache_timer,
		(uv_handle_t *)&d->shutdown_timer, (uv_handle_t *)&d->sig_int,
		(uv_handle_t *)&d->sig_term, (uv_handle_t *)&d->sig_hup,
	};

	bool stop_signals = d->shutting_down && (d->handles & (H_SIGINT | H_SIGTERM));

	for (size_t i = 0; i < ARRAY_SIZE(hs); i++)
		if (d->handles & (1u << i))
			uv_close(hs[i], NULL);
	d->handles = 0;
	/* isolated modules: each worker finishes, runs fini and exits */
	if (d->reg_open)
		registry_stop_workers(&d->reg);
	/* Closing a signal handle restores the default action (libuv does it
	 * in uv_close), which would kill us with a repeated SIGTERM during the
	 * bounded cleanup that is all a stop has left to do: ignore them. */
	if (stop_signals) {
		signal(SIGINT, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
	}
	if (d->srv_open)
		server_close(&d->srv);
	notify_fini(&d->nt);
	if (d->lugs_open)
		lugs_fini(&d->lugs);
	if (d->dp_open)
		dispatch_fini(&d->dp);
	if (d->mon_open) {
		d->dp.on_event = NULL;
		monitor_fini(&d->mon);
	}
	if (d->lrn_open)
		learn_fini(&d->lrn);
}

/* The pool's end: queued calls were cancelled at the start of the stop;
 * what still runs now is abandoned (see sched_stop), and its modules stay
 * mapped (registry_fini leaves a module with calls in flight alone). */
static void lmmsd_stop_pool(lmmsd *d)
{
	if (!d->sched)
		return;
	d->abandoned = sched_stop(d->sched, now_ms());
	d->sched = d->dp.sched = NULL;
	if (d->abandoned)
		log_warn("stopping with %u calls still running: abandoned", d->abandoned);
}

static void lmmsd_on_shutdown_poll(uv_timer_t *t)
{
	lmmsd *d = t->data;
	uint32_t busy = lmmsd_work_in_flight(d);

	if ((busy || !server_idle(&d->srv)) && now_ms() < d->shutdown_deadline_ms)
		return;
	uv_timer_stop(t);
	lmmsd_stop_pool(d);
	lmmsd_close_handles(d);
	log_info("stopped: %llu requests served", (unsigned long long)d->dp.st.requests_total);
}

void lmmsd_shutdown(lmmsd *d)
{
	if (d->shutting_down)
		return;
	d->shutting_down = true;
	/* calls in flight get what server.call_timeout gives them */
	d->shutdown_deadline_ms = now_ms() + (d->cfg.server.call_timeout_ms
						      ? d->cfg.server.call_timeout_ms
						      : LMMSD_STOP_DEADLINE_MS);
	notify_stopping(&d->nt);
	/* calls already queued are in flight too: they run until the deadline */
	dispatch_stop(&d->dp);
	if (d->lrn_open)
		learn_stop(&d->lrn);
	lugs_stop(&d->lugs);
	server_drain(&d->srv);
	if (d->handles & H_SHUTDOWN)
		uv_timer_start(&d->shutdown_timer, lmmsd_on_shutdown_poll, 0, SHUTDOWN_POLL_MS);
	else
		lmmsd_close_handles(d);
}

void lmmsd_fini(lmmsd *d)
{
	/* After a failed init the handles opened so far are still open: close
	 * them and let their close callbacks run. */
	lmmsd_stop_pool(d);
	lmmsd_close_handles(d);
	uv_run(d->loop, UV_RUN_DEFAULT);
	if (d->lrn_open)
		learn_free(&d->lrn);
	d->lrn_open = false;
	if (d->cache_open)
		cache_fini(&d->cache);
	if (d->heat_open)
		heat_fini(&d->heat);
	if (d->reg_open)
		registry_fini(&d->reg);
	d->cache_open = d->heat_open = d->reg_open = false;
}

int lmmsd_reload(lmmsd *d, char *msg, size_t msglen)
{
	config *nc = malloc(sizeof(*nc));
	server_limits limits;
	char fixed[256];
	int r;

	if (!nc) {
		snprintf(msg, msglen, "out of memory");
		return -ENOMEM;
	}
	r = config_load(nc, d->config_path, d->overrides, d->n_overrides, msg, msglen);
	if (r < 0) {
		free(nc);
		return r;
	}
	/* An empty value means "the default", which is what is in use: only a
	 * new explicit value can differ from it. */
	if (!nc->server.socket[0])
		memcpy(nc->server.socket, d->cfg.server.socket, sizeof(nc->server.socket));
	if (!nc->ligs.module_dir[0])
		memcpy(nc->ligs.module_dir, d->cfg.ligs.module_dir, sizeof(nc->ligs.module_dir));
	if (config_diff_restart_only(&d->cfg, nc, fixed, sizeof(fixed)) > 0)
		log_warn("reload: %s changed but only take effect on restart", fixed);
	/* the values in use stay, so lmms.config tells the truth */
	memcpy(nc->server.socket, d->cfg.server.socket, sizeof(nc->server.socket));
	memcpy(nc->ligs.module_dir, d->cfg.ligs.module_dir, sizeof(nc->ligs.module_dir));
	d->cfg = *nc;
	free(nc);

	log_set_level(d->cfg.server.log_level);
	lmmsd_server_limits(&d->cfg, &limits);
	server_set_limits(&d->srv, &limits);
	if (d->sched)
		sched_set_limits(d->sched, d->cfg.server.max_calls_per_uid,
				 d->cfg.server.max_queued_bytes_per_uid);
	access_reload(&d->acc);
	registry_apply_config(&d->reg);
	cache_set_limits(&d->cache, d->cfg.cache.max_bytes, d->cfg.cache.max_entries);
	heat_trim(&d->heat);
	lmmsd_start_timers(d);
	log_info("configuration reloaded");
	snprintf(msg, msglen, "ok");
	return 0;
}
