/*
 * scheduler.h - fair scheduling of BLOCKING calls onto a thread pool of our own.
 *
 * Jobs are submitted on the loop thread with an owner (uid), an opaque group
 * (the connection, for cancellation) and a byte weight (what the job holds
 * in memory until its done callback runs). Each uid has a FIFO; uids with
 * queued work take turns, one job per uid per round. A uid that had nothing
 * queued gets the next thread to come free, however much another uid has
 * queued: its call waits for one running call at most. Each uid is capped in jobs and has a byte budget; the transport is
 * told when a uid goes over or back under it so it can pause reading.
 *
 * The pool is `workers` threads owned by this unit rather than libuv's pool:
 * libuv's is process-global, sized once at first use, shared with uv_fs and
 * getaddrinfo work, and its threads are joined by a destructor at exit(), so
 * one hung job makes the process unable to exit. Owning the threads means we
 * know exactly what runs where and since when, and can abandon a hung one at
 * shutdown.
 *
 * Threading: every function here is called on the loop thread only. `run`
 * runs on a pool thread; `done` and the budget callback run on the loop
 * thread, never from inside the sched_* call that caused them, except as
 * documented for sched_submit/sched_charge (budget) and sched_stop (done).
 * A done callback may submit, cancel or charge, but not call sched_stop.
 */
#ifndef LMMS_SCHEDULER_H
#define LMMS_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "list.h"

/* Bounds independent of the configuration. */
#define SCHED_MAX_WORKERS 256
#define SCHED_MAX_UIDS 4096

typedef struct sched sched;
typedef struct sched_job sched_job;

/* On a pool thread. */
typedef void (*sched_run_fn)(sched_job *job);
/* On the loop thread, once per submitted job: status 0 after run returned,
 * -ECANCELED when the job was cancelled before it started (run never ran).
 * The job is the caller's again: free it here. */
typedef void (*sched_done_fn)(sched_job *job, int status);
/* On the loop thread: uid's bytes reached the budget (over) or fell back to
 * half of it (!over). Pause or resume reading that uid's connections. */
typedef void (*sched_budget_fn)(void *ud, uid_t uid, bool over);

/*
 * Embed in the caller's request and get back with container_of, as with
 * uv_work_t. Fields are the scheduler's from sched_submit until done runs.
 */
struct sched_job {
	sched_run_fn run;
	sched_done_fn done;
	list_node link; /* its uid's queue, or the finished list */
	list_node order; /* every queued job, oldest last */
	struct sched_user *user;
	const void *group;
	size_t weight;
	uint64_t queued_ms;
	uint64_t started_ms; /* 0 while queued */
	int status;
};

typedef struct sched_config {
	uint32_t workers; /* pool threads, 1..SCHED_MAX_WORKERS */
	uint32_t max_jobs_per_uid; /* submitted and not yet done; 0 = no cap */
	uint64_t max_bytes_per_uid; /* budget; 0 = none */
	sched_budget_fn on_budget; /* may be NULL */
	void *ud;
} sched_config;

typedef struct sched_uid_stat {
	uid_t uid;
	uint32_t queued;
	uint32_t running;
	uint64_t bytes; /* job weights + charges */
	bool over;
} sched_uid_stat;

typedef struct sched_stats {
	uint32_t workers;
	uint32_t running;
	uint32_t queued;
	uint32_t uids; /* with jobs or bytes */
	uint64_t bytes;
	uint64_t submitted;
	uint64_t completed; /* run returned */
	uint64_t cancelled;
	uint64_t refused_busy; /* -EBUSY: job cap or too many uids */
	uint64_t refused_bytes; /* -ENOBUFS: over the byte budget */
} sched_stats;

typedef struct sched_health {
	uint32_t workers;
	uint32_t running; /* threads inside a job's run */
	uint32_t queued;
	uint64_t oldest_start_ms; /* start of the longest-running job; 0 if none */
	uint64_t oldest_queued_ms; /* submission of the oldest queued job; 0 if none */
	uint64_t last_progress_ms; /* a thread last took up or finished a job */
} sched_health;

/* Starts the threads. -EINVAL for a bad config, -ENOMEM, -EAGAIN. */
int sched_create(sched **out, uv_loop_t *loop, const sched_config *cfg);

/*
 * Queue job for uid. Returns 0, or (nothing queued, done will not run):
 * -EBUSY      uid has max_jobs_per_uid jobs, or SCHED_MAX_UIDS uids are known;
 * -ENOBUFS    uid is over its byte budget and has jobs of its own to wait
 *             for (a uid with none is let through whatever the weight, so
 *             one large call still runs and the bound stays budget + one job);
 * -ESHUTDOWN  after sched_drain or sched_stop; -ENOMEM.
 * The budget callback may run before it returns (over).
 */
int sched_submit(sched *s, sched_job *job, uid_t uid, const void *group, size_t weight,
		 sched_run_fn run, sched_done_fn done);

/* Cancel group's jobs that have not started; their done runs with
 * -ECANCELED on a later loop iteration. Running ones finish. Returns the
 * number cancelled. */
uint32_t sched_cancel_group(sched *s, const void *group);

/* Cancel one job if it has not started (a call answered "timeout" while
 * still queued): 0, and done runs with -ECANCELED on a later loop
 * iteration; or -EBUSY when it is running or already finishing. */
int sched_cancel(sched *s, sched_job *job);

/* Charge (delta > 0) or release (delta < 0) bytes held for uid outside the
 * jobs, such as output buffers. Releasing more than was charged is clamped.
 * The budget callback may run before it returns. 0, -EBUSY or -ENOMEM. */
int sched_charge(sched *s, uid_t uid, int64_t delta);

uint64_t sched_uid_bytes(sched *s, uid_t uid);
bool sched_uid_over(sched *s, uid_t uid);

/* A new cap and budget (configuration reload). Each uid's budget state is
 * re-evaluated, and its callback run, at its next change: a paused uid
 * holds bytes, and those only go through paths that check. The worker
 * count is fixed at creation. */
void sched_set_limits(sched *s, uint32_t max_jobs_per_uid, uint64_t max_bytes_per_uid);

/* When job started running, 0 while queued. */
uint64_t sched_job_started_ms(sched *s, const sched_job *job);

void sched_get_stats(sched *s, sched_stats *st);
/* Fills up to n entries (uids with jobs or bytes, in no particular order);
 * returns how many such uids there are. */
size_t sched_get_uid_stats(sched *s, sched_uid_stat *out, size_t n);

/*
 * Liveness, read from the threads' own state rather than by queueing a
 * probe job behind the users' work: a pool busy with long calls is alive.
 * Returns 0 (alive: idle, progressing, or every busy thread inside a job),
 * or -EDEADLK (stuck: a job has waited more than grace_ms while a thread
 * was free to take it, which only a defect of this unit can cause).
 */
int sched_probe(sched *s, uint64_t now_ms, uint64_t grace_ms, sched_health *h);

/* Cancel every queued job (done runs with -ECANCELED on a later loop
 * iteration) and refuse new ones; running jobs finish and are delivered as
 * usual. For the first phase of a graceful stop. */
void sched_drain(sched *s);

/*
 * The end: sched_drain, then wait (blocking the loop thread) until the
 * running jobs finish or deadline_ms (CLOCK_MONOTONIC ms, util.h now_ms())
 * passes. Before it returns, done has run for every job except those still
 * running: those threads are detached and abandoned, and their jobs stay
 * the caller's forever (done never runs; do not free them, nor unload the
 * code they run). That is safe only because the process is exiting: the
 * abandoned thread owns nothing of the loop's and touches only its job and
 * this unit's core, which the last thread out frees. Returns the number of
 * jobs abandoned. s must not be used afterwards; its memory goes once the
 * loop has run the close callback of its async handle and every thread has
 * left, so run the loop (uv_run) after it as usual.
 */
uint32_t sched_stop(sched *s, uint64_t deadline_ms);

#endif
