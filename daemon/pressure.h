/*
 * pressure.h - a PSI memory-pressure trigger on the event loop.
 *
 * The kernel's pressure stall information (Documentation/accounting/psi.rst)
 * lets a process write "some|full <threshold us> <window us>" into a
 * pressure file and then poll that fd for POLLPRI: it becomes ready when
 * tasks stalled on memory for at least threshold within any window. This
 * unit arms such a trigger, polls it with libuv (UV_PRIORITIZED) and calls
 * back at most once per min_interval_ms, however often the kernel fires.
 *
 * Which file (pressure_target):
 *  1. $MEMORY_PRESSURE_WATCH, systemd's memory pressure protocol (v254+,
 *     MemoryPressureWatch=): the path to watch, normally the unit's own
 *     cgroup memory.pressure, with the trigger base64-encoded in
 *     $MEMORY_PRESSURE_WRITE. "/dev/null" means the service manager turned
 *     it off (-ECANCELED).
 *  2. Under systemd without that ($INVOCATION_ID set): the service's own
 *     cgroup v2 "memory.pressure", found from the "0::" line of
 *     /proc/self/cgroup under the cgroup2 mount. It counts stalls of the
 *     daemon's own tasks, which is what its MemoryHigh=/MemoryMax= cause.
 *  3. Otherwise the whole system's /proc/pressure/memory.
 *
 * The kernel's rules (kernel/sched/psi.c):
 *  - 4.20+: PSI files exist when CONFIG_PSI=y and PSI is not disabled
 *    (psi=0, or CONFIG_PSI_DEFAULT_DISABLED without psi=1): otherwise
 *    /proc/pressure is absent (-ENOENT) and cgroup pressure files refuse
 *    triggers (-EOPNOTSUPP). A cgroup with cgroup.pressure set to 0 refuses
 *    them too.
 *  - 5.2+: triggers; window 500 ms .. 10 s, 0 < threshold <= window; one
 *    trigger per open file. Up to 6.4, opening a /proc/pressure file for writing
 *    needs CAP_SYS_RESOURCE (-EPERM), while a cgroup's pressure files need
 *    only write permission on the file (a delegated cgroup is enough).
 *  - 6.5+ (commit d82caa2 "sched/psi: Allow unprivileged polling of N*2s
 *    period"): the check moved into the write: a writer without
 *    CAP_SYS_RESOURCE (in the opener's credentials) may create triggers on
 *    any pressure file, /proc/pressure included, but only with a window
 *    that is a multiple of 2 s (-EINVAL otherwise); those are evaluated by
 *    the 2 s averaging work, so they fire up to ~2 s late. Privileged
 *    triggers get the realtime "psimon" poller and, since 519fabc, no
 *    500 ms lower bound. (6.5.0-6.5.x before the fix 8b39d20 wrongly
 *    refused unprivileged opens of cgroup pressure files.)
 *  - The kernel itself notifies at most once per window.
 * Hence the default trigger, the one systemd uses: "some 200000 2000000"
 * (200 ms of stall in 2 s), valid for privileged and unprivileged writers
 * on every kernel that has triggers.
 *
 * Handles follow libuv: the caller owns the struct; pressure_start opens
 * and starts, pressure_stop closes, and the struct must stay valid until
 * the loop has run once more. The poll handle is unref'd. Loop thread only.
 */
#ifndef LMMS_PRESSURE_H
#define LMMS_PRESSURE_H

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define PRESSURE_DEFAULT_TRIGGER "some 200000 2000000"
#define PRESSURE_DEFAULT_INTERVAL_MS 5000
#define PRESSURE_TRIGGER_MAX 64
#define PRESSURE_SYSTEM_FILE "/proc/pressure/memory"

/*
 * status 0: memory pressure crossed the trigger (rate-limited). Negative:
 * the trigger broke (-ENODEV: its cgroup was removed; -EBADF: the kernel
 * reported an error on the fd); the watcher has stopped itself and the
 * callback may restart it.
 */
typedef void (*pressure_cb)(void *ud, int status);

typedef struct pressure_opts {
	const char *path; /* NULL: pressure_target() decides */
	const char *trigger; /* NULL: the target's (env) or PRESSURE_DEFAULT_TRIGGER */
	uint64_t min_interval_ms; /* between callbacks; 0 = PRESSURE_DEFAULT_INTERVAL_MS */
} pressure_opts;

typedef struct pressure {
	uv_loop_t *loop;
	uv_poll_t poll;
	int fd; /* the armed pressure file, -1 when not started */
	int closing; /* handle close not yet completed */
	bool active;
	char path[PATH_MAX];
	char trigger[PRESSURE_TRIGGER_MAX];
	uint64_t min_interval_ms;
	uint64_t last_fired_ms; /* loop time of the last callback */
	pressure_cb cb;
	void *ud;

	uint64_t events; /* notifications from the kernel */
	uint64_t fired; /* callbacks with status 0 */
	uint64_t suppressed; /* notifications inside min_interval_ms */
	char last[128]; /* the file's "some avg10=..." line at the last notification */
} pressure;

/*
 * The file to watch and the trigger to write, by the rules above: path
 * (PATH_MAX bytes) and trigger (PRESSURE_TRIGGER_MAX bytes) are filled, and
 * *source, if given, names the rule ("systemd", "cgroup", "system").
 * Returns 0, -ECANCELED when the service manager disabled it, -EINVAL for
 * an unusable $MEMORY_PRESSURE_WRITE. The file is not checked here.
 */
int pressure_target(char *path, char *trigger, const char **source);

/* The process's own cgroup v2 directory (PATH_MAX bytes), or -ENOENT. */
int pressure_cgroup_dir(char *dir);

void pressure_init(pressure *p, uv_loop_t *loop);

/*
 * Open the file, write the trigger, poll. Returns 0, -EBUSY while started
 * or closing, or why not, each meaning "run without" to the daemon:
 *   -ENOENT      no such pressure file: no PSI on this kernel (or disabled)
 *   -EOPNOTSUPP  PSI present but disabled, or the path is not a pressure file
 *   -EPERM/-EACCES  not allowed to arm a trigger there (before 6.5:
 *                CAP_SYS_RESOURCE for /proc/pressure)
 *   -EINVAL      trigger refused (malformed, out of range, or a window not
 *                a multiple of 2 s without CAP_SYS_RESOURCE)
 *   -ECANCELED   disabled by the service manager
 */
int pressure_start(pressure *p, const pressure_opts *opts, pressure_cb cb, void *ud);

/* Stop and release (asynchronously, see above). Safe to call twice. */
void pressure_stop(pressure *p);

/* A line for the log, for the errors above. */
const char *pressure_strerror(int err);

/* Errors that say PSI is simply not there (log once at info and go on). */
static inline bool pressure_absent(int err)
{
	return err == -ENOENT || err == -EOPNOTSUPP || err == -ECANCELED;
}

#endif
