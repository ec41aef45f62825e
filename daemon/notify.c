/*
 * notify.c - systemd integration: readiness, status, stopping, socket
 * activation and a watchdog that only pets when both the event loop and the
 * thread pool answer. Compiles to no-ops without libsystemd.
 */
#include <stdio.h>
#include <stdlib.h>

#include "daemon.h"
#include "lmms-build-config.h"
#include "log.h"
#include "util.h"

#if HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

static void notify_status_line(lmmsd *d, char *buf, size_t n)
{
	snprintf(buf, n, "STATUS=%u of %u modules resident, %llu requests, %u connections",
		 d->reg.n_resident, d->reg.n_mods, (unsigned long long)d->st.requests_total,
		 d->srv.n_conns);
}

void notify_ready(lmmsd *d)
{
	char status[256];

	notify_status_line(d, status, sizeof(status));
	sd_notifyf(0, "READY=1\n%s\nMAINPID=%lu", status, (unsigned long)getpid());
}

void notify_status(lmmsd *d)
{
	char status[256];

	notify_status_line(d, status, sizeof(status));
	sd_notify(0, status);
}

void notify_stopping(lmmsd *d)
{
	(void)d;
	sd_notify(0, "STOPPING=1\nSTATUS=shutting down");
}

int notify_listen_fd(void)
{
	int n = sd_listen_fds(1);

	if (n <= 0)
		return -1;
	if (n > 1)
		log_warn("socket activation passed %d sockets; using the first", n);
	if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0) <= 0) {
		log_err("socket activation: fd %d is not a listening Unix stream socket",
			SD_LISTEN_FDS_START);
		return -1;
	}
	return SD_LISTEN_FDS_START;
}

static void watchdog_noop(uv_work_t *w)
{
	(void)w;
}

static void watchdog_noop_done(uv_work_t *w, int status)
{
	lmmsd *d = w->data;

	(void)status;
	d->watchdog_work_busy = false;
	d->watchdog_pool_ok_ms = now_ms();
}

/* The timer firing proves the loop runs; the no-op job proves the pool
 * does. A pool stuck behind hung BLOCKING ops stops the petting, and
 * systemd restarts us. */
static void watchdog_on_timer(uv_timer_t *t)
{
	lmmsd *d = t->data;
	uint64_t interval = t->repeat;

	if (!d->watchdog_work_busy) {
		d->watchdog_work.data = d;
		if (uv_queue_work(d->loop, &d->watchdog_work, watchdog_noop,
				  watchdog_noop_done) == 0)
			d->watchdog_work_busy = true;
	}
	if (now_ms() - d->watchdog_pool_ok_ms <= 2 * interval)
		sd_notify(0, "WATCHDOG=1");
	else
		log_warn("watchdog: thread pool has not answered for %llu ms",
			 (unsigned long long)(now_ms() - d->watchdog_pool_ok_ms));
	notify_status(d);
}

void notify_watchdog_start(lmmsd *d)
{
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) <= 0 || usec < 2000)
		return;
	uv_timer_init(d->loop, &d->watchdog_timer);
	d->watchdog_timer.data = d;
	d->watchdog_pool_ok_ms = now_ms();
	uv_timer_start(&d->watchdog_timer, watchdog_on_timer, 0, usec / 2000);
	uv_unref((uv_handle_t *)&d->watchdog_timer);
	log_info("watchdog: petting every %llu ms", (unsigned long long)(usec / 2000));
}

#else

void notify_ready(lmmsd *d) { (void)d; }
void notify_status(lmmsd *d) { (void)d; }
void notify_stopping(lmmsd *d) { (void)d; }
int notify_listen_fd(void) { return -1; }
void notify_watchdog_start(lmmsd *d) { (void)d; }

#endif
