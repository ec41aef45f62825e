/*
 * pressure.c - the PSI memory-pressure trigger (rules and choices in
 * pressure.h).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pressure.h"

const char *pressure_strerror(int err)
{
	switch (err) {
	case -ENOENT:
		return "no pressure file: the kernel has no PSI (CONFIG_PSI, psi=1)";
	case -EOPNOTSUPP:
		return "PSI is disabled here, or the path is not a pressure file";
	case -EPERM:
	case -EACCES:
		return "not allowed to arm a trigger there (kernels before 6.5 want "
		       "CAP_SYS_RESOURCE for /proc/pressure)";
	case -EINVAL:
		return "trigger refused (without CAP_SYS_RESOURCE the window must be a "
		       "multiple of 2 s)";
	case -ECANCELED:
		return "turned off by the service manager (MEMORY_PRESSURE_WATCH=/dev/null)";
	case -ENODEV:
		return "the watched cgroup is gone";
	default:
		return strerror(-err);
	}
}

/* --- where --- */

static int b64_value(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Standard base64 into a string of at most cap - 1 bytes. systemd encodes
 * the trigger with its NUL, so the string ends at the first NUL. */
static int b64_decode(const char *src, char *out, size_t cap)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t n = 0;

	for (const char *s = src; *s && *s != '='; s++) {
		int v = b64_value((unsigned char)*s);

		if (v < 0)
			return -EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n + 1 >= cap)
				return -EINVAL;
			out[n++] = (char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	out[n] = '\0';
	return out[0] ? 0 : -EINVAL;
}

/* mountinfo escapes blanks and backslashes as \ooo */
static void unescape_octal(char *s)
{
	char *d = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*d++ = *s;
		}
	}
	*d = '\0';
}

/* Our cgroup v2 path, "/..." as /proc/self/cgroup's "0::" line has it. */
static int own_cgroup(char *rel, size_t len)
{
	char line[PATH_MAX + 8];
	FILE *f = fopen("/proc/self/cgroup", "re");
	int r = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3) != 0)
			continue;
		line[strcspn(line, "\n")] = '\0';
		if ((size_t)snprintf(rel, len, "%s", line + 3) < len)
			r = 0;
		break;
	}
	fclose(f);
	return r;
}

int pressure_cgroup_dir(char *dir)
{
	char rel[PATH_MAX];
	char *line = NULL;
	size_t cap = 0;
	int r;
	FILE *f;

	if ((r = own_cgroup(rel, sizeof(rel))) < 0)
		return r;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	r = -ENOENT;
	while (getline(&line, &cap, f) > 0) {
		/* id parent major:minor root mountpoint options... - fstype source ... */
		char root[PATH_MAX], mnt[PATH_MAX], fstype[32];
		const char *sep = strstr(line, " - ");
		size_t rlen;

		if (!sep || sscanf(sep, " - %31s", fstype) != 1 || strcmp(fstype, "cgroup2") != 0)
			continue;
		if (sscanf(line, "%*s %*s %*s %4095s %4095s", root, mnt) != 2)
			continue;
		unescape_octal(root);
		unescape_octal(mnt);
		/* a mount of a subtree shows only what lies under its root */
		rlen = strcmp(root, "/") == 0 ? 0 : strlen(root);
		if (strncmp(rel, root, rlen) != 0 || (rel[rlen] != '/' && rel[rlen] != '\0'))
			continue;
		if ((size_t)snprintf(dir, PATH_MAX, "%s%s", mnt,
				     strcmp(rel + rlen, "/") == 0 ? "" : rel + rlen) < PATH_MAX)
			r = 0;
		break;
	}
	free(line);
	fclose(f);
	return r;
}

int pressure_target(char *path, char *trigger, const char **source)
{
	const char *watch = getenv("MEMORY_PRESSURE_WATCH");
	const char *write64 = getenv("MEMORY_PRESSURE_WRITE");
	char dir[PATH_MAX];
	const char *src = "system";

	snprintf(trigger, PRESSURE_TRIGGER_MAX, "%s", PRESSURE_DEFAULT_TRIGGER);
	if (watch && *watch) {
		if (strcmp(watch, "/dev/null") == 0)
			return -ECANCELED;
		if (strlen(watch) >= PATH_MAX)
			return -ENAMETOOLONG;
		if (write64 && *write64 && b64_decode(write64, trigger, PRESSURE_TRIGGER_MAX) < 0)
			return -EINVAL;
		snprintf(path, PATH_MAX, "%s", watch);
		src = "systemd";
	} else if (getenv("INVOCATION_ID") && pressure_cgroup_dir(dir) == 0 &&
		   strlen(dir) + sizeof("/memory.pressure") <= PATH_MAX) {
		snprintf(path, PATH_MAX, "%s/memory.pressure", dir);
		src = "cgroup";
		if (access(path, F_OK) < 0) {
			snprintf(path, PATH_MAX, "%s", PRESSURE_SYSTEM_FILE);
			src = "system";
		}
	} else {
		snprintf(path, PATH_MAX, "%s", PRESSURE_SYSTEM_FILE);
	}
	if (source)
		*source = src;
	return 0;
}

/* --- the trigger --- */

void pressure_init(pressure *p, uv_loop_t *loop)
{
	memset(p, 0, sizeof(*p));
	p->loop = loop;
	p->fd = -1;
}

static void on_closed(uv_handle_t *h)
{
	pressure *p = h->data;

	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	p->closing = 0;
}

void pressure_stop(pressure *p)
{
	if (!p->active)
		return;
	p->active = false;
	p->closing = 1;
	uv_close((uv_handle_t *)&p->poll, on_closed);
}

static void broke(pressure *p, int err)
{
	pressure_cb cb = p->cb;
	void *ud = p->ud;

	pressure_stop(p);
	cb(ud, err);
}

/* The file's first line ("some avg10=... total=..."), which is also how a
 * dead trigger shows: a removed cgroup's file fails to read (-ENODEV) while
 * its fd polls ready for ever. */
static int read_figures(pressure *p)
{
	char buf[sizeof(p->last)];
	ssize_t n;

	if (lseek(p->fd, 0, SEEK_SET) < 0)
		return -errno;
	n = read(p->fd, buf, sizeof(buf) - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	snprintf(p->last, sizeof(p->last), "%s", buf);
	return 0;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	pressure *p = h->data;
	uint64_t now;
	int r;

	if (status < 0) {
		broke(p, status);
		return;
	}
	if (!(events & UV_PRIORITIZED))
		return;
	p->events++;
	if ((r = read_figures(p)) < 0) {
		broke(p, r);
		return;
	}
	now = uv_now(p->loop);
	if (p->fired && now - p->last_fired_ms < p->min_interval_ms) {
		p->suppressed++;
		return;
	}
	p->last_fired_ms = now;
	p->fired++;
	p->cb(p->ud, 0);
}

/* Open path and write the trigger: the fd, or why not. */
static int arm(pressure *p)
{
	struct stat st;
	char head[5];
	ssize_t n;
	int fd = open(p->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	int r = -EOPNOTSUPP;

	if (fd < 0)
		return -errno;
	/* a pressure file reads "some avg10=..."; anything else would take the
	 * trigger as data (a plain file) or never poll ready */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		goto fail;
	n = read(fd, head, sizeof(head));
	if (n < 0) {
		r = -errno; /* -EOPNOTSUPP from a cgroup file when PSI is off */
		goto fail;
	}
	if (n != (ssize_t)sizeof(head) || memcmp(head, "some ", sizeof(head)) != 0)
		goto fail;
	/* with its NUL, as the kernel documentation writes it */
	if (write(fd, p->trigger, strlen(p->trigger) + 1) < 0) {
		r = -errno;
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return r;
}

int pressure_start(pressure *p, const pressure_opts *opts, pressure_cb cb, void *ud)
{
	int r;

	if (p->active || p->closing || p->fd >= 0)
		return -EBUSY;
	if (opts && opts->path) {
		if ((size_t)snprintf(p->path, sizeof(p->path), "%s", opts->path) >= sizeof(p->path))
			return -ENAMETOOLONG;
		snprintf(p->trigger, sizeof(p->trigger), "%s", PRESSURE_DEFAULT_TRIGGER);
	} else if ((r = pressure_target(p->path, p->trigger, NULL)) < 0) {
		return r;
	}
	if (opts && opts->trigger &&
	    (size_t)snprintf(p->trigger, sizeof(p->trigger), "%s", opts->trigger) >= sizeof(p->trigger))
		return -EINVAL;
	p->min_interval_ms = opts && opts->min_interval_ms ? opts->min_interval_ms
							    : PRESSURE_DEFAULT_INTERVAL_MS;
	p->cb = cb;
	p->ud = ud;
	p->fired = p->events = p->suppressed = 0;
	p->last[0] = '\0';
	if ((r = arm(p)) < 0)
		return r;
	p->fd = r;
	if ((r = uv_poll_init(p->loop, &p->poll, p->fd)) < 0) {
		close(p->fd);
		p->fd = -1;
		return r;
	}
	p->poll.data = p;
	uv_unref((uv_handle_t *)&p->poll);
	p->active = true;
	if ((r = uv_poll_start(&p->poll, UV_PRIORITIZED, on_poll)) < 0)
		pressure_stop(p);
	return r;
}
