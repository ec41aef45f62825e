/*
 * notify.c - sd_notify and sd_listen_fds, written out (see notify.h).
 */
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define LISTEN_FDS_START 3

void notify_init(notify *n, uv_loop_t *loop, void (*status)(void *ud, char *buf, size_t len),
		 bool (*alive)(void *ud), void *ud)
{
	const char *e = getenv("NOTIFY_SOCKET");
	size_t len;

	memset(n, 0, sizeof(*n));
	n->loop = loop;
	n->status = status;
	n->alive = alive;
	n->ud = ud;
	if (!e || !*e)
		return;
	len = strlen(e);
	if ((e[0] != '/' && e[0] != '@') || len >= sizeof(n->addr)) {
		log_warn("NOTIFY_SOCKET=%s is not a socket path: not notifying the service manager",
			 e);
		return;
	}
	memcpy(n->addr, e, len);
	if (n->addr[0] == '@')
		n->addr[0] = '\0'; /* abstract namespace */
	n->addr_len = len;
	n->enabled = true;
}

int notify_send(notify *n, const char *text)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t salen;
	ssize_t r;
	int fd, e = 0;

	if (!n->enabled)
		return 0;
	memcpy(sa.sun_path, n->addr, n->addr_len);
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n->addr_len +
			    (n->addr[0] ? 1 : 0));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = sendto(fd, text, strlen(text), MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   salen);
	if (r < 0)
		e = -errno;
	close(fd);
	if (e == 0)
		n->sent++;
	else
		log_debug("notify: %s", strerror(-e));
	return e;
}

static void notify_status_text(notify *n, char *buf, size_t len)
{
	buf[0] = '\0';
	if (n->status)
		n->status(n->ud, buf, len);
}

void notify_ready(notify *n)
{
	char status[256], msg[384];

	if (!n->enabled)
		return;
	notify_status_text(n, status, sizeof(status));
	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s\nMAINPID=%lu", status,
		 (unsigned long)getpid());
	notify_send(n, msg);
}

void notify_status(notify *n)
{
	char status[256], msg[300];

	if (!n->enabled)
		return;
	notify_status_text(n, status, sizeof(status));
	snprintf(msg, sizeof(msg), "STATUS=%s", status);
	notify_send(n, msg);
}

void notify_stopping(notify *n)
{
	notify_send(n, "STOPPING=1\nSTATUS=shutting down");
}

static void watchdog_on_timer(uv_timer_t *t)
{
	notify *n = t->data;

	if (!n->alive || n->alive(n->ud))
		notify_send(n, "WATCHDOG=1");
	else
		log_err("watchdog: the thread pool is stuck: not petting");
	notify_status(n);
}

static int env_u64(const char *name, uint64_t *out)
{
	const char *e = getenv(name);
	char *end;
	unsigned long long v;

	if (!e || !*e)
		return -ENOENT;
	errno = 0;
	v = strtoull(e, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

void notify_watchdog_start(notify *n)
{
	uint64_t usec = 0, pid;

	if (!n->enabled || env_u64("WATCHDOG_USEC", &usec) < 0 || usec < 2000)
		return;
	if (env_u64("WATCHDOG_PID", &pid) == 0 && pid != (uint64_t)getpid())
		return;
	if (uv_timer_init(n->loop, &n->watchdog) < 0)
		return;
	n->watchdog_open = true;
	n->watchdog.data = n;
	n->interval_ms = usec / 2000;
	uv_timer_start(&n->watchdog, watchdog_on_timer, 0, n->interval_ms);
	uv_unref((uv_handle_t *)&n->watchdog);
	log_info("watchdog: petting every %llu ms", (unsigned long long)(usec / 2000));
}

void notify_fini(notify *n)
{
	if (n->watchdog_open) {
		n->watchdog_open = false;
		uv_close((uv_handle_t *)&n->watchdog, NULL);
	}
}

static bool fd_is_listening_unix_stream(int fd)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	int type = 0, listening = 0;
	socklen_t l1 = sizeof(type), l2 = sizeof(listening);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) < 0 || type != SOCK_STREAM)
		return false;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l2) < 0 || !listening)
		return false;
	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0 || sa.sun_family != AF_UNIX)
		return false;
	return true;
}

int notify_listen_fd(void)
{
	uint64_t pid, n;
	int fd = LISTEN_FDS_START;

	if (env_u64("LISTEN_PID", &pid) < 0 || pid != (uint64_t)getpid() ||
	    env_u64("LISTEN_FDS", &n) < 0 || n == 0)
		return -1;
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	for (uint64_t i = 0; i < n && i < 1024; i++)
		(void)fcntl((int)(LISTEN_FDS_START + i), F_SETFD, FD_CLOEXEC);
	if (n > 1)
		log_warn("socket activation passed %llu sockets; using the first",
			 (unsigned long long)n);
	if (!fd_is_listening_unix_stream(fd)) {
		log_err("socket activation: fd %d is not a listening Unix stream socket", fd);
		return -1;
	}
	return fd;
}
