/*
 * test-pressure.c - the PSI trigger against the running kernel.
 *
 * "test-pressure" (suite pressure): arming on /proc/pressure/memory, the
 * choice of file (systemd's variables, the unit's cgroup, the system file),
 * the kernel's rules as this kernel applies them (limits of a trigger, and,
 * in a child that dropped CAP_SYS_RESOURCE, the unprivileged window rule),
 * errors for files that are not pressure files, restart after stop.
 *
 * "test-pressure cgroup" (suite pressure-cgroup) makes it fire for real:
 * a cgroup v2 child of our own cgroup with a small memory limit, a child
 * process in it that touches anonymous memory and then reads random pages
 * of a file mapping four times the limit until a deadline (page cache is
 * charged to the cgroup; with no swap, anonymous memory alone would only
 * meet the OOM killer, while a file's pages are reclaimed and faulted back
 * in, which PSI counts as memory stall). The limit comes from the cgroup v2
 * memory controller (memory.high / memory.max), or on a hybrid hierarchy,
 * where the memory controller is bound to cgroup v1, from a v1 memory
 * cgroup (memory.limit_in_bytes) the child joins too: PSI accounts stalls
 * to the task's v2 cgroup either way. It also removes a watched cgroup and
 * expects the trigger to report -ENODEV instead of polling ready for ever.
 * It exits 77 (skipped) with the reason when PSI, a writable cgroup2
 * hierarchy or a memory controller is not available.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "pressure.h"
#include "util.h"

#define DEADLINE_MS 60000
#define LIMIT (16ull << 20)
#define DATA_SIZE (4 * LIMIT)
#define ANON_SIZE (4ull << 20)
/* the hog stops earlier once the trigger fired twice */
#define CHILD_SECONDS 30
#define TMPFS_MAGIC_ 0x01021994

static uv_loop_t loop;
static uv_timer_t deadline;
static bool timed_out;

typedef struct seen {
	int calls, errors, last_status;
	bool stop_on_call;
	int end_hog_after; /* calls after which the memory hog has done its job */
} seen;

static pid_t hog_pid;
static bool hog_ended;

static void on_pressure(void *ud, int status)
{
	seen *s = ud;

	if (status == 0)
		s->calls++;
	else
		s->errors++;
	s->last_status = status;
	if (s->stop_on_call)
		uv_stop(&loop);
	if (s->end_hog_after && s->calls == s->end_hog_after && hog_pid > 0) {
		kill(hog_pid, SIGKILL);
		hog_ended = true;
	}
}

static void on_deadline(uv_timer_t *t)
{
	timed_out = true;
	uv_stop(t->loop);
}

static void loop_setup(void)
{
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	uv_timer_init(&loop, &deadline);
	timed_out = false;
}

static void loop_teardown(void)
{
	uv_close((uv_handle_t *)&deadline, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0); /* every handle closed */
}

static bool have_psi(void)
{
	return access(PRESSURE_SYSTEM_FILE, F_OK) == 0;
}

static int kernel_version(void)
{
	struct utsname u;
	int major = 0, minor = 0;

	ck_assert_int_eq(uname(&u), 0);
	sscanf(u.release, "%d.%d", &major, &minor);
	return major * 100 + minor;
}

/* Does this process hold CAP_SYS_RESOURCE (root in a sandbox may not)? */
static bool privileged(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	ck_assert_int_eq(syscall(SYS_capget, &h, d), 0);
	return d[CAP_SYS_RESOURCE / 32].effective & (1u << (CAP_SYS_RESOURCE % 32));
}

/* 50 ms of stall in the shortest window this process may use: a thrashing
 * cgroup stalls far more (15-45% here), a slow disk is not needed. */
static const char *short_trigger(void)
{
	return privileged() ? "some 50000 1000000" : "some 50000 2000000";
}

static int arm_once(const char *path, const char *trigger)
{
	pressure p;
	seen s = { 0 };
	pressure_opts o = { .path = path, .trigger = trigger };
	int r;

	pressure_init(&p, &loop);
	r = pressure_start(&p, &o, on_pressure, &s);
	if (r == 0) {
		ck_assert_int_ge(p.fd, 0);
		ck_assert(p.active);
		pressure_stop(&p);
		uv_run(&loop, UV_RUN_NOWAIT);
		ck_assert_int_eq(p.fd, -1);
	}
	return r;
}

/* --- suite pressure --- */

START_TEST(arm_system)
{
	printf("kernel %d.%d, %s %s\n", kernel_version() / 100, kernel_version() % 100,
	       PRESSURE_SYSTEM_FILE, have_psi() ? "present" : "absent");
	if (!have_psi()) {
		/* the clear result the daemon logs once and runs without */
		int r = arm_once(PRESSURE_SYSTEM_FILE, NULL);

		ck_assert_int_eq(r, -ENOENT);
		ck_assert(pressure_absent(r));
		return;
	}
	ck_assert_int_eq(arm_once(PRESSURE_SYSTEM_FILE, NULL), 0);
	ck_assert_int_eq(arm_once(PRESSURE_SYSTEM_FILE, "full 100000 2000000"), 0);
	printf("CAP_SYS_RESOURCE: %s\n", privileged() ? "yes" : "no (PSI treats us as unprivileged)");
	/* a 1 s window is the privileged form (realtime psimon poller) */
	ck_assert_int_eq(arm_once(PRESSURE_SYSTEM_FILE, "some 100000 1000000"),
			 privileged() || kernel_version() < 605 ? 0 : -EINVAL);
}
END_TEST

static void clear_env(void)
{
	unsetenv("MEMORY_PRESSURE_WATCH");
	unsetenv("MEMORY_PRESSURE_WRITE");
	unsetenv("INVOCATION_ID");
}

START_TEST(target_rules)
{
	char path[PATH_MAX], trigger[PRESSURE_TRIGGER_MAX], dir[PATH_MAX], want[PATH_MAX + 32];
	const char *source;
	pressure p;
	seen s = { 0 };

	clear_env();
	ck_assert_int_eq(pressure_target(path, trigger, &source), 0);
	ck_assert_str_eq(path, PRESSURE_SYSTEM_FILE);
	ck_assert_str_eq(trigger, PRESSURE_DEFAULT_TRIGGER);
	ck_assert_str_eq(source, "system");

	/* a systemd unit without the protocol: its own cgroup's file */
	setenv("INVOCATION_ID", "0123456789abcdef0123456789abcdef", 1);
	ck_assert_int_eq(pressure_target(path, trigger, &source), 0);
	if (pressure_cgroup_dir(dir) == 0) {
		snprintf(want, sizeof(want), "%s/memory.pressure", dir);
		if (access(want, F_OK) == 0) {
			ck_assert_str_eq(path, want);
			ck_assert_str_eq(source, "cgroup");
		}
		printf("own cgroup v2: %s -> %s\n", dir, path);
	} else {
		ck_assert_str_eq(path, PRESSURE_SYSTEM_FILE);
	}

	/* systemd's memory pressure protocol */
	setenv("MEMORY_PRESSURE_WATCH", "/sys/fs/cgroup/x.service/memory.pressure", 1);
	setenv("MEMORY_PRESSURE_WRITE", "c29tZSAxNTAwMDAgMjAwMDAwMAA=", 1); /* with a NUL */
	ck_assert_int_eq(pressure_target(path, trigger, &source), 0);
	ck_assert_str_eq(path, "/sys/fs/cgroup/x.service/memory.pressure");
	ck_assert_str_eq(trigger, "some 150000 2000000");
	ck_assert_str_eq(source, "systemd");
	setenv("MEMORY_PRESSURE_WRITE", "c29tZSAyMDAwMDAgMjAwMDAwMA==", 1); /* without */
	ck_assert_int_eq(pressure_target(path, trigger, &source), 0);
	ck_assert_str_eq(trigger, "some 200000 2000000");
	unsetenv("MEMORY_PRESSURE_WRITE");
	ck_assert_int_eq(pressure_target(path, trigger, &source), 0);
	ck_assert_str_eq(trigger, PRESSURE_DEFAULT_TRIGGER);
	setenv("MEMORY_PRESSURE_WRITE", "not base64!", 1);
	ck_assert_int_eq(pressure_target(path, trigger, &source), -EINVAL);
	setenv("MEMORY_PRESSURE_WRITE",
	       "eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eA==",
	       1); /* 64 bytes: longer than any trigger */
	ck_assert_int_eq(pressure_target(path, trigger, &source), -EINVAL);
	unsetenv("MEMORY_PRESSURE_WRITE");
	setenv("MEMORY_PRESSURE_WATCH", "/dev/null", 1);
	ck_assert_int_eq(pressure_target(path, trigger, &source), -ECANCELED);
	pressure_init(&p, &loop);
	ck_assert_int_eq(pressure_start(&p, NULL, on_pressure, &s), -ECANCELED);
	ck_assert(pressure_absent(-ECANCELED));
	clear_env();
}
END_TEST

START_TEST(not_pressure_files)
{
	char tmp[] = "/tmp/lmms-pressure-XXXXXX";
	int fd = mkstemp(tmp);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "hello world\n", 12), 12);
	close(fd);
	ck_assert_int_eq(arm_once("/nonexistent/memory.pressure", NULL), -ENOENT);
	ck_assert_int_eq(arm_once("/dev/null", NULL), -EOPNOTSUPP);
	ck_assert_int_eq(arm_once(tmp, NULL), -EOPNOTSUPP); /* not written to */
	ck_assert_int_eq(unlink(tmp), 0);
	ck_assert_int_eq(arm_once("/proc/self/comm", NULL), -EOPNOTSUPP);
	ck_assert(pressure_absent(-ENOENT) && pressure_absent(-EOPNOTSUPP));
	ck_assert(!pressure_absent(-EINVAL) && !pressure_absent(-EPERM));
	ck_assert_ptr_nonnull(strstr(pressure_strerror(-EINVAL), "2 s"));
}
END_TEST

START_TEST(trigger_limits)
{
	static const struct {
		const char *trigger;
		int want;
	} cases[] = {
		{ "bogus", -EINVAL },
		{ "some 2000000 1000000", -EINVAL }, /* threshold above the window */
		{ "some 0 1000000", -EINVAL },
		{ "some 100000 20000000", -EINVAL }, /* window above 10 s */
		{ "some 100000 0", -EINVAL },
		{ "some 100000 10000000", 0 },
		{ "full 500000 2000000", 0 },
	};

	if (!have_psi()) {
		printf("skipped: %s\n", pressure_strerror(-ENOENT));
		return;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(arm_once(PRESSURE_SYSTEM_FILE, cases[i].trigger) == cases[i].want,
			      "%s", cases[i].trigger);
}
END_TEST

/* Drop CAP_SYS_RESOURCE from every set: what a non-root daemon has. */
static int drop_sys_resource(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) < 0)
		return -errno;
	d[CAP_SYS_RESOURCE / 32].effective &= ~(1u << (CAP_SYS_RESOURCE % 32));
	d[CAP_SYS_RESOURCE / 32].permitted &= ~(1u << (CAP_SYS_RESOURCE % 32));
	d[CAP_SYS_RESOURCE / 32].inheritable &= ~(1u << (CAP_SYS_RESOURCE % 32));
	return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

START_TEST(unprivileged_window_rule)
{
	/* kernel/sched/psi.c: before 6.5 opening /proc/pressure for writing
	 * wants CAP_SYS_RESOURCE; from 6.5 anyone may, with a window that is a
	 * multiple of 2 s */
	static const struct {
		const char *trigger;
		int want_65, want_old;
	} cases[] = {
		{ "some 150000 1000000", -EINVAL, -EPERM },
		{ "some 150000 3000000", -EINVAL, -EPERM },
		{ "some 150000 2000000", 0, -EPERM },
		{ "some 150000 4000000", 0, -EPERM },
		{ PRESSURE_DEFAULT_TRIGGER, 0, -EPERM },
	};
	int ver = kernel_version(), status;
	pid_t pid;

	if (!have_psi() || ver < 502) {
		printf("skipped: no PSI triggers on this kernel\n");
		return;
	}
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (drop_sys_resource() < 0)
			_exit(100);
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			int want = ver >= 605 ? cases[i].want_65 : cases[i].want_old;

			if (arm_once(PRESSURE_SYSTEM_FILE, cases[i].trigger) != want)
				_exit(1 + (int)i);
		}
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_msg(WEXITSTATUS(status) != 100, "capset failed");
	ck_assert_msg(WEXITSTATUS(status) == 0, "unprivileged case %d: not what kernel %d.%d does",
		      WEXITSTATUS(status) - 1, ver / 100, ver % 100);
	printf("without CAP_SYS_RESOURCE on %d.%d: %s\n", ver / 100, ver % 100,
	       ver >= 605 ? "2 s multiples accepted, other windows -EINVAL"
			  : "every /proc/pressure trigger -EPERM");
}
END_TEST

START_TEST(restart_after_stop)
{
	pressure p;
	seen s = { 0 };
	pressure_opts o = { .path = PRESSURE_SYSTEM_FILE };

	if (!have_psi())
		return;
	pressure_init(&p, &loop);
	ck_assert_int_eq(pressure_start(&p, &o, on_pressure, &s), 0);
	ck_assert_int_eq(pressure_start(&p, &o, on_pressure, &s), -EBUSY);
	pressure_stop(&p);
	pressure_stop(&p);
	ck_assert_int_eq(pressure_start(&p, &o, on_pressure, &s), -EBUSY); /* closing */
	uv_run(&loop, UV_RUN_NOWAIT);
	ck_assert_int_eq(pressure_start(&p, &o, on_pressure, &s), 0);
	ck_assert_str_eq(p.trigger, PRESSURE_DEFAULT_TRIGGER);
	ck_assert_uint_eq(p.min_interval_ms, PRESSURE_DEFAULT_INTERVAL_MS);
	pressure_stop(&p);
}
END_TEST

/* --- suite pressure-cgroup --- */

typedef struct cgroup {
	char v2[PATH_MAX]; /* our child cgroup (v2) */
	char v1[PATH_MAX]; /* hybrid: its v1 memory twin, else "" */
	char subtree[PATH_MAX + 32]; /* parent's subtree_control we enabled memory in, else "" */
	const char *how;
} cgroup;

static int put_file(const char *dir, const char *file, const char *value)
{
	char p[PATH_MAX + 64];
	int fd, r = 0;

	snprintf(p, sizeof(p), "%s/%s", dir, file);
	fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, value, strlen(value)) < 0)
		r = -errno;
	close(fd);
	return r;
}

static bool file_has_word(const char *path, const char *word)
{
	char buf[512], *save = NULL;
	FILE *f = fopen(path, "re");
	bool found = false;

	if (!f)
		return false;
	if (fgets(buf, sizeof(buf), f))
		for (char *t = strtok_r(buf, " \n", &save); t; t = strtok_r(NULL, " \n", &save))
			found = found || strcmp(t, word) == 0;
	fclose(f);
	return found;
}

/* The v1 memory hierarchy's directory of our own memory cgroup. */
static int v1_memory_dir(char *out, size_t len)
{
	char line[PATH_MAX + 64], rel[PATH_MAX] = "", *ml = NULL;
	size_t cap = 0;
	FILE *f = fopen("/proc/self/cgroup", "re");
	int r = -ENOENT;

	if (!f)
		return -errno;
	/* "N:controller,controller:/path" */
	while (!rel[0] && fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL, *save = NULL;

		if (!c2)
			continue;
		*c2 = '\0';
		for (char *t = strtok_r(c1 + 1, ",", &save); t; t = strtok_r(NULL, ",", &save))
			if (strcmp(t, "memory") == 0) {
				snprintf(rel, sizeof(rel), "%s", c2 + 1);
				rel[strcspn(rel, "\n")] = '\0';
			}
	}
	fclose(f);
	if (!rel[0])
		return -ENOENT;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	while (getline(&ml, &cap, f) > 0) {
		char mnt[PATH_MAX], fstype[32], opts[256];
		const char *sep = strstr(ml, " - ");

		if (!sep || sscanf(sep, " - %31s %*s %255s", fstype, opts) != 2 ||
		    strcmp(fstype, "cgroup") != 0 || !strstr(opts, "memory"))
			continue;
		if (sscanf(ml, "%*s %*s %*s %*s %4095s", mnt) == 1 &&
		    (size_t)snprintf(out, len, "%s%s", mnt, strcmp(rel, "/") ? rel : "") < len)
			r = 0;
		break;
	}
	free(ml);
	fclose(f);
	return r;
}

static void cgroup_remove(cgroup *c)
{
	/* a cgroup whose last task just exited may stay busy a moment */
	for (int i = 0; i < 100; i++) {
		bool left = false;

		if (c->v2[0] && rmdir(c->v2) < 0 && errno != ENOENT)
			left = true;
		if (c->v1[0] && rmdir(c->v1) < 0 && errno != ENOENT)
			left = true;
		if (!left)
			break;
		usleep(20000);
	}
	if (c->subtree[0]) {
		FILE *f = fopen(c->subtree, "we");

		if (f) {
			fputs("-memory", f);
			fclose(f);
		}
	}
	memset(c, 0, sizeof(*c));
}

/* From dir upwards, the nearest cgroup whose children get the v2 memory
 * controller (on a systemd host at least the root's do). */
static bool memory_parent(const char *dir, char *out)
{
	char d[PATH_MAX], ctl[PATH_MAX + 32];

	snprintf(d, sizeof(d), "%s", dir);
	for (int depth = 0; depth < 64; depth++) {
		char *slash;

		snprintf(ctl, sizeof(ctl), "%s/cgroup.subtree_control", d);
		if (access(ctl, F_OK) < 0)
			return false; /* above the cgroup2 mount */
		if (file_has_word(ctl, "memory")) {
			snprintf(out, PATH_MAX, "%s", d);
			return true;
		}
		slash = strrchr(d, '/');
		if (!slash || slash == d)
			return false;
		*slash = '\0';
	}
	return false;
}

/* Make the cgroup; NULL, or why it cannot be made here. */
static const char *cgroup_make(cgroup *c, bool limit)
{
	static char why[PATH_MAX + 128];
	char own[PATH_MAX], parent[PATH_MAX], ctl[PATH_MAX + 32], v1parent[PATH_MAX];
	char value[32];
	bool v2_memory = false;

	memset(c, 0, sizeof(*c));
	if (!have_psi())
		return "PSI is not available (no /proc/pressure/memory)";
	if (pressure_cgroup_dir(own) < 0)
		return "no cgroup v2 hierarchy is mounted";
	snprintf(parent, sizeof(parent), "%s", own);
	snprintf(ctl, sizeof(ctl), "%s/cgroup.controllers", own);
	if (limit && memory_parent(own, parent)) {
		v2_memory = true;
	} else if (limit && file_has_word(ctl, "memory")) {
		/* possible only where no process lives (or at the root) */
		if (put_file(own, "cgroup.subtree_control", "+memory") < 0) {
			snprintf(why, sizeof(why),
				 "the memory controller is not delegated below %s and cannot be "
				 "enabled there (it holds processes)",
				 own);
			return why;
		}
		snprintf(c->subtree, sizeof(c->subtree), "%s/cgroup.subtree_control", own);
		v2_memory = true;
	}
	snprintf(c->v2, sizeof(c->v2), "%.4000s/lmms-psi-test-%d", parent, (int)getpid());
	if (mkdir(c->v2, 0755) < 0 && errno != EEXIST) {
		snprintf(why, sizeof(why), "cannot create a cgroup under %s: %s", parent,
			 strerror(errno));
		c->v2[0] = '\0';
		cgroup_remove(c);
		return why;
	}
	if (!limit)
		return NULL;
	snprintf(value, sizeof(value), "%llu", (unsigned long long)LIMIT);
	if (v2_memory) {
		if (put_file(c->v2, "memory.high", value) < 0 ||
		    put_file(c->v2, "memory.max", "33554432") < 0) {
			cgroup_remove(c);
			return "cannot set memory.high/memory.max on the test cgroup";
		}
		c->how = "cgroup v2 memory.high=16M memory.max=32M";
		return NULL;
	}
	/* hybrid: the memory controller lives in the v1 hierarchy */
	if (v1_memory_dir(v1parent, sizeof(v1parent)) < 0) {
		cgroup_remove(c);
		return "no memory controller: not in cgroup v2 and no v1 memory hierarchy";
	}
	snprintf(c->v1, sizeof(c->v1), "%.4000s/lmms-psi-test-%d", v1parent, (int)getpid());
	if (mkdir(c->v1, 0755) < 0 && errno != EEXIST) {
		snprintf(why, sizeof(why), "cannot create a v1 memory cgroup under %s: %s",
			 v1parent, strerror(errno));
		c->v1[0] = '\0';
		cgroup_remove(c);
		return why;
	}
	if (put_file(c->v1, "memory.limit_in_bytes", value) < 0) {
		cgroup_remove(c);
		return "cannot set memory.limit_in_bytes on the v1 memory cgroup";
	}
	c->how = "cgroup v1 memory.limit_in_bytes=16M (hybrid), PSI from the v2 cgroup";
	return NULL;
}

/* A directory on a disk-backed filesystem for the data file: tmpfs pages
 * cannot be reclaimed without swap. */
static const char *data_dir(void)
{
	static const char *cands[3];
	struct statfs sf;

	cands[0] = getenv("TMPDIR");
	cands[1] = "/tmp";
	cands[2] = getenv("LMMS_BUILD_ROOT");
	for (int i = 0; i < 3; i++)
		if (cands[i] && statfs(cands[i], &sf) == 0 && sf.f_type != TMPFS_MAGIC_ &&
		    access(cands[i], W_OK) == 0)
			return cands[i];
	return NULL;
}

static char data_path[PATH_MAX];

static int make_data_file(void)
{
	static char block[1 << 16];
	const char *d = data_dir();
	int fd;

	if (!d)
		return -ENOENT;
	snprintf(data_path, sizeof(data_path), "%.4000s/lmms-psi-data-%d", d, (int)getpid());
	fd = open(data_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	memset(block, 0x5a, sizeof(block));
	for (uint64_t off = 0; off < DATA_SIZE; off += sizeof(block))
		if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block)) {
			close(fd);
			return -EIO;
		}
	/* out of the page cache, so the child's faults are charged to its
	 * cgroup rather than found cached and charged to ours */
	fdatasync(fd);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
	return 0;
}

static void join(const char *dir)
{
	char pid[24];

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (dir[0] && put_file(dir, "cgroup.procs", pid) < 0)
		_exit(90);
}

/* The child: join the cgroup, touch anonymous memory, then read random
 * pages of the mapping until the deadline. Bounded in time and memory. */
static void memory_hog(const cgroup *c)
{
	volatile const unsigned char *map;
	volatile unsigned char sink = 0;
	unsigned char *anon;
	struct timespec now, end;
	uint64_t x = 88172645463325252ull;
	int fd;

	join(c->v2);
	join(c->v1);
	fd = open(data_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		_exit(91);
	map = mmap(NULL, DATA_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		_exit(92);
	anon = malloc(ANON_SIZE);
	if (!anon)
		_exit(93);
	for (uint64_t off = 0; off < ANON_SIZE; off += 4096)
		anon[off] = (unsigned char)off;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += CHILD_SECONDS;
	do {
		for (int i = 0; i < 64; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			sink ^= map[(x % (DATA_SIZE / 4096)) * 4096];
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (now.tv_sec < end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec < end.tv_nsec));
	(void)sink;
	_exit(0);
}

static int hog_status;

static void on_reap(uv_timer_t *t)
{
	if (waitpid(hog_pid, &hog_status, WNOHANG) == hog_pid) {
		hog_pid = 0;
		uv_stop(t->loop);
	}
}

static void read_total(const char *dir, char *out, size_t len)
{
	char p[PATH_MAX + 32];
	FILE *f;

	snprintf(p, sizeof(p), "%s/memory.pressure", dir);
	out[0] = '\0';
	f = fopen(p, "re");
	if (f) {
		if (fgets(out, (int)len, f))
			out[strcspn(out, "\n")] = '\0';
		fclose(f);
	}
}

START_TEST(fires_under_a_memory_limit)
{
	cgroup c;
	const char *why = cgroup_make(&c, true);
	char file[PATH_MAX + 32], figures[256];
	pressure fast, slow;
	seen fs = { .end_hog_after = 2 }, ss = { 0 };
	pressure_opts of = { .path = file, .trigger = short_trigger(), .min_interval_ms = 1 };
	pressure_opts os = { .path = file, .trigger = short_trigger(), .min_interval_ms = 3600000 };
	uv_timer_t reap;
	const char *how;
	uint64_t hog_start = 0, hog_end = 0;
	int r1, r2, data;

	ck_assert_msg(why == NULL, "%s", why);
	snprintf(file, sizeof(file), "%s/memory.pressure", c.v2);
	data = make_data_file();
	pressure_init(&fast, &loop);
	pressure_init(&slow, &loop);
	r1 = pressure_start(&fast, &of, on_pressure, &fs);
	r2 = pressure_start(&slow, &os, on_pressure, &ss);
	hog_pid = -1;
	if (data == 0 && r1 == 0 && r2 == 0) {
		hog_pid = fork();
		if (hog_pid == 0)
			memory_hog(&c);
	}
	if (hog_pid > 0) {
		uv_timer_init(&loop, &reap);
		uv_timer_start(&reap, on_reap, 50, 50);
		uv_timer_start(&deadline, on_deadline, DEADLINE_MS, 0);
		hog_start = uv_now(&loop);
		uv_run(&loop, UV_RUN_DEFAULT);
		hog_end = uv_now(&loop);
		uv_close((uv_handle_t *)&reap, NULL);
		if (hog_pid > 0) {
			kill(hog_pid, SIGKILL);
			waitpid(hog_pid, &hog_status, 0);
		}
	}
	read_total(c.v2, figures, sizeof(figures));
	pressure_stop(&fast);
	pressure_stop(&slow);
	uv_run(&loop, UV_RUN_NOWAIT);
	how = c.how;
	cgroup_remove(&c);
	if (data_path[0])
		unlink(data_path);

	ck_assert_msg(data == 0, "no disk-backed directory for the data file");
	ck_assert_int_eq(r1, 0);
	ck_assert_int_eq(r2, 0);
	ck_assert_int_ge(hog_pid, 0);
	ck_assert(!timed_out);
	/* it ran to its deadline, or we ended it (never the OOM killer) */
	ck_assert_msg(hog_ended ? WIFSIGNALED(hog_status) && WTERMSIG(hog_status) == SIGKILL
				: WIFEXITED(hog_status) && WEXITSTATUS(hog_status) == 0,
		      "memory hog: status 0x%x", hog_status);
	printf("%s, trigger \"%s\", %llu MiB mapped, hog ran %.1f s: cgroup %s; fired %llu (kernel events %llu), "
	       "rate-limited one fired %llu, suppressed %llu; last: %s\n",
	       how, of.trigger, (unsigned long long)(DATA_SIZE >> 20), (double)(hog_end - hog_start) / 1000,
	       figures,
	       (unsigned long long)fast.fired, (unsigned long long)fast.events,
	       (unsigned long long)slow.fired, (unsigned long long)slow.suppressed, fast.last);
	ck_assert_int_ge(fs.calls, 1);
	ck_assert_uint_eq(fast.fired, (uint64_t)fs.calls);
	ck_assert_int_eq(ss.calls, 1);
	ck_assert_uint_eq(slow.fired + slow.suppressed, slow.events);
	ck_assert_int_eq(fs.errors + ss.errors, 0);
	ck_assert_ptr_nonnull(strstr(fast.last, "some avg10="));
}
END_TEST

START_TEST(cgroup_removed)
{
	cgroup c;
	const char *why = cgroup_make(&c, false);
	char file[PATH_MAX + 32];
	pressure p;
	seen s = { .stop_on_call = true };
	pressure_opts o = { .path = file };
	int r;

	ck_assert_msg(why == NULL, "%s", why);
	snprintf(file, sizeof(file), "%s/memory.pressure", c.v2);
	pressure_init(&p, &loop);
	r = pressure_start(&p, &o, on_pressure, &s);
	if (r == 0) {
		ck_assert_int_eq(rmdir(c.v2), 0);
		uv_timer_start(&deadline, on_deadline, DEADLINE_MS, 0);
		uv_run(&loop, UV_RUN_DEFAULT);
	}
	cgroup_remove(&c);
	ck_assert_int_eq(r, 0);
	ck_assert(!timed_out);
	/* reported once, and the watcher stopped itself instead of spinning */
	ck_assert_int_eq(s.errors, 1);
	ck_assert_int_eq(s.calls, 0);
	ck_assert_int_eq(s.last_status, -ENODEV);
	ck_assert(!p.active);
}
END_TEST

int main(int argc, char **argv)
{
	bool cg = argc > 1 && strcmp(argv[1], "cgroup") == 0;
	Suite *s = suite_create(cg ? "pressure-cgroup" : "pressure");
	TCase *tc = tcase_create("pressure");

	if (cg) {
		cgroup c;
		const char *why = cgroup_make(&c, true);

		cgroup_remove(&c);
		if (why) {
			printf("SKIP: %s\n", why);
			return 77;
		}
		if (!data_dir()) {
			printf("SKIP: no disk-backed directory for the page-cache workload\n");
			return 77;
		}
	}
	tcase_add_checked_fixture(tc, loop_setup, loop_teardown);
	tcase_set_timeout(tc, 120);
	if (cg) {
		tcase_add_test(tc, fires_under_a_memory_limit);
		tcase_add_test(tc, cgroup_removed);
	} else {
		tcase_add_test(tc, arm_system);
		tcase_add_test(tc, target_rules);
		tcase_add_test(tc, not_pressure_files);
		tcase_add_test(tc, trigger_limits);
		tcase_add_test(tc, unprivileged_window_rule);
		tcase_add_test(tc, restart_after_stop);
	}
	suite_add_tcase(s, tc);
	return tu_run(s);
}
