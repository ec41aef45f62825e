/*
 * daemon.c - lmmsd's life: start (registry, cache, heat, timers, signals,
 * listener), reload, and the graceful stop that finishes in-flight work,
 * finalises every loaded module and removes the socket.
 */
#include "daemon.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmms-build-config.h"
#include "log.h"
#include "util.h"

#define SHUTDOWN_POLL_MS 20
#define SHUTDOWN_DEADLINE_MS 30000

static void lmmsd_apply_limits(lmmsd *d)
{
	proto_limits_default(&d->limits);
	d->limits.max_message_bytes = d->cfg.server.max_message_bytes;
	d->limits.max_depth = d->cfg.server.max_depth;
	d->limits.max_elements = d->cfg.server.max_elements;
	d->limits.max_str_bytes = d->cfg.server.max_message_bytes;
}

static void lmmsd_resolve_admin_group(lmmsd *d)
{
	struct group *g;

	d->have_admin_gid = false;
	if (!d->cfg.access.admin_group[0])
		return;
	g = getgrnam(d->cfg.access.admin_group);
	if (!g) {
		log_warn("access.admin_group \"%s\" does not exist: nobody is admin through it",
			 d->cfg.access.admin_group);
		return;
	}
	d->admin_gid = g->gr_gid;
	d->have_admin_gid = true;
}

static void lmmsd_on_unload(void *ud, module *m)
{
	lmmsd *d = ud;

	heat_forget_module(&d->heat, m);
}

/* ---- periodic work ---- */

static void lmmsd_on_decay(uv_timer_t *t)
{
	lmmsd *d = t->data;

	for (uint32_t i = 0; i < d->reg.n_mods; i++)
		heat_decay(&d->heat, (op_info *const *)d->reg.mods[i]->ops, d->reg.mods[i]->n_ops);
}

static void lmmsd_arm_cache_timer(lmmsd *d);

void lmmsd_cache_stored(lmmsd *d, uint64_t expires_ms)
{
	/* An entry that expires before the armed wake-up pulls it forward, so
	 * no entry (nor the module dependency it holds) outlives its TTL. */
	if (expires_ms < d->cache_timer_due_ms)
		lmmsd_arm_cache_timer(d);
}

static void lmmsd_on_cache_timer(uv_timer_t *t)
{
	lmmsd *d = t->data;

	cache_expire(&d->cache, now_ms());
	lmmsd_arm_cache_timer(d);
}

/* Wake at the next expiry, but at least every expire_interval, so expired
 * entries (and the module dependencies they hold) go away on time. */
static void lmmsd_arm_cache_timer(lmmsd *d)
{
	uint64_t next = cache_next_expiry(&d->cache, now_ms());
	uint64_t every = d->cfg.cache.expire_interval_ms;

	if (next > every)
		next = every;
	if (!next)
		next = 1;
	d->cache_timer_due_ms = now_ms() + next;
	uv_timer_start(&d->cache_timer, lmmsd_on_cache_timer, next, 0);
}

static void lmmsd_start_timers(lmmsd *d)
{
	if (d->cfg.zafp.decay_interval_ms)
		uv_timer_start(&d->decay_timer, lmmsd_on_decay, d->cfg.zafp.decay_interval_ms,
			       d->cfg.zafp.decay_interval_ms);
	else
		uv_timer_stop(&d->decay_timer);
	lmmsd_arm_cache_timer(d);
	lugs_restart(d);
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
		log_warn("second signal: stopping without waiting for in-flight work");
		d->shutdown_deadline_ms = now_ms();
		return;
	}
	log_info("%s: shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
	lmmsd_shutdown(d);
}

/* ---- life ---- */

int lmmsd_init(lmmsd *d, uv_loop_t *loop)
{
	int r;

	d->loop = loop;
	d->start_ms = now_ms();
	list_init(&d->calls);
	d->uid = geteuid();
	lmmsd_apply_limits(d);
	lmmsd_resolve_admin_group(d);

	r = registry_init(&d->reg, d->module_dir, &d->cfg);
	if (r < 0 && r != -ENOENT)
		return r;
	d->reg.on_unload = lmmsd_on_unload;
	d->reg.ud = d;
	heat_init(&d->heat, &d->cfg);
	cache_init(&d->cache, d->cfg.cache.max_bytes, d->cfg.cache.max_entries);

	uv_timer_init(loop, &d->decay_timer);
	uv_timer_init(loop, &d->cache_timer);
	uv_timer_init(loop, &d->shutdown_timer);
	d->decay_timer.data = d->cache_timer.data = d->shutdown_timer.data = d;
	uv_unref((uv_handle_t *)&d->decay_timer);
	uv_unref((uv_handle_t *)&d->cache_timer);
	lugs_start(d);
	lmmsd_start_timers(d);

	uv_signal_init(loop, &d->sig_int);
	uv_signal_init(loop, &d->sig_term);
	uv_signal_init(loop, &d->sig_hup);
	d->sig_int.data = d->sig_term.data = d->sig_hup.data = d;
	uv_signal_start(&d->sig_int, lmmsd_on_signal, SIGINT);
	uv_signal_start(&d->sig_term, lmmsd_on_signal, SIGTERM);
	uv_signal_start(&d->sig_hup, lmmsd_on_signal, SIGHUP);
	return 0;
}

static void lmmsd_load_at_start(lmmsd *d)
{
	if (d->eager) {
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
	int r;

	lmmsd_load_at_start(d);
	r = server_start(&d->srv, d, d->socket_path, listen_fd);
	if (r < 0)
		return r;
	notify_watchdog_start(d);
	if (listen_fd >= 0) {
		/* the path the service manager bound, which may differ from ours */
		char where[sizeof(d->socket_path)];
		size_t n = sizeof(where);

		if (uv_pipe_getsockname(&d->srv.listener, where, &n) < 0 || !n || n >= sizeof(where))
			snprintf(where, sizeof(where), "fd %d", listen_fd);
		else
			where[n] = '\0';
		log_info("ready: listening on inherited socket %s, %u modules known in %s, %u loaded%s",
			 where, d->reg.n_mods, d->reg.dir, d->reg.n_resident,
			 d->eager ? " (eager)" : "");
	} else {
		log_info("ready: listening on %s, %u modules known in %s, %u loaded%s",
			 d->socket_path, d->reg.n_mods, d->reg.dir, d->reg.n_resident,
			 d->eager ? " (eager)" : "");
	}
	notify_ready(d);
	return 0;
}

static uint32_t lmmsd_work_in_flight(const lmmsd *d)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < d->reg.n_mods; i++)
		n += d->reg.mods[i]->refs;
	return n;
}

static void lmmsd_close_handles(lmmsd *d)
{
	uv_close((uv_handle_t *)&d->decay_timer, NULL);
	uv_close((uv_handle_t *)&d->cache_timer, NULL);
	uv_close((uv_handle_t *)&d->shutdown_timer, NULL);
	uv_close((uv_handle_t *)&d->sig_int, NULL);
	uv_close((uv_handle_t *)&d->sig_term, NULL);
	uv_close((uv_handle_t *)&d->sig_hup, NULL);
	if (uv_is_active((uv_handle_t *)&d->watchdog_timer) || d->watchdog_timer.loop)
		uv_close((uv_handle_t *)&d->watchdog_timer, NULL);
	lugs_stop(d);
}

static void lmmsd_on_shutdown_poll(uv_timer_t *t)
{
	lmmsd *d = t->data;
	uint32_t busy = lmmsd_work_in_flight(d);

	if ((busy || !server_idle(&d->srv)) && now_ms() < d->shutdown_deadline_ms)
		return;
	if (busy) {
		/* Work still on the pool cannot be abandoned (it holds module
		 * code); keep polling, but stop waiting for clients. */
		server_close_all(&d->srv);
		return;
	}
	uv_timer_stop(t);
	server_close_all(&d->srv);
	lmmsd_close_handles(d);
	log_info("stopped: %llu requests served", (unsigned long long)d->st.requests_total);
}

void lmmsd_shutdown(lmmsd *d)
{
	if (d->shutting_down)
		return;
	d->shutting_down = true;
	d->shutdown_deadline_ms = now_ms() + SHUTDOWN_DEADLINE_MS;
	notify_stopping(d);
	server_stop_listening(&d->srv);
	for (conn *c = d->srv.conns; c; c = c->next)
		if (c->reading) {
			uv_read_stop((uv_stream_t *)&c->pipe);
			c->reading = false;
		}
	uv_timer_start(&d->shutdown_timer, lmmsd_on_shutdown_poll, 0, SHUTDOWN_POLL_MS);
}

/* After the loop ran dry: finalise modules and free everything. */
void lmmsd_fini(lmmsd *d)
{
	cache_fini(&d->cache);
	heat_fini(&d->heat);
	registry_fini(&d->reg);
}

int lmmsd_reload(lmmsd *d, char *msg, size_t msglen)
{
	config *nc = malloc(sizeof(*nc));
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
	if (config_diff_restart_only(&d->cfg, nc, fixed, sizeof(fixed)) > 0)
		log_warn("reload: %s changed but only take effect on restart", fixed);
	/* the values in use stay, so lmms.config tells the truth */
	memcpy(nc->server.socket, d->cfg.server.socket, sizeof(nc->server.socket));
	memcpy(nc->ligs.module_dir, d->cfg.ligs.module_dir, sizeof(nc->ligs.module_dir));
	d->cfg = *nc;
	free(nc);

	log_set_level(d->cfg.server.log_level);
	lmmsd_apply_limits(d);
	lmmsd_resolve_admin_group(d);
	cache_set_limits(&d->cache, d->cfg.cache.max_bytes, d->cfg.cache.max_entries);
	heat_trim(&d->heat);
	lmmsd_start_timers(d);
	log_info("configuration reloaded");
	snprintf(msg, msglen, "ok");
	return 0;
}
