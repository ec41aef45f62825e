/*
 * bench-sched.c - how long one uid's short BLOCKING call waits while another
 * uid floods the pool: libuv's FIFO pool (what dispatch used, 4 threads)
 * against daemon/scheduler.c with 1 and 4 workers, and with the flooder's
 * connection closed (its queued calls cancelled).
 *
 * The flooder queues N calls of ATTACK_MS; VICTIM_DELAY_MS later the victim
 * submits one call of VICTIM_MS. Printed: the victim's wait (submitted to
 * started) and response (submitted to done), next to the bound:
 * its own duration plus one call of the flooder's; and how many of the
 * flooder's calls ran at all.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <uv.h>

#include "scheduler.h"
#include "util.h"

#define ATTACK_MS 300
#define VICTIM_MS 10
#define VICTIM_DELAY_MS 50

typedef struct call {
	sched_job job;
	uv_work_t work;
	unsigned ms;
	uint64_t submitted, started, finished;
} call;

static uv_loop_t loop;
static sched *pool;
static call attack[16], victim;
static int flooder_group, victim_group;
static bool cancel_flooder;

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void run_call(call *c)
{
	c->started = now_ms();
	if (c->ms)
		sleep_ms(c->ms);
}

static void sched_run(sched_job *j)
{
	run_call(container_of(j, call, job));
}

static void sched_done(sched_job *j, int status)
{
	(void)status;
	container_of(j, call, job)->finished = now_ms();
}

static void uv_run_cb(uv_work_t *w)
{
	run_call(container_of(w, call, work));
}

static void uv_done_cb(uv_work_t *w, int status)
{
	(void)status;
	container_of(w, call, work)->finished = now_ms();
}

static void submit(call *c, uid_t uid, const void *group)
{
	int r;

	c->submitted = now_ms();
	if (pool)
		r = sched_submit(pool, &c->job, uid, group, 0, sched_run, sched_done);
	else
		r = uv_queue_work(&loop, &c->work, uv_run_cb, uv_done_cb);
	if (r < 0) {
		fprintf(stderr, "submit: %s\n", r > -4096 ? uv_strerror(r) : "error");
		exit(1);
	}
}

/* A loop with the scheduler of that many workers, or libuv's pool for 0. */
static void pool_open(uint32_t workers)
{
	uv_loop_init(&loop);
	pool = NULL;
	if (workers) {
		sched_config cfg = { .workers = workers };

		if (sched_create(&pool, &loop, &cfg) < 0)
			exit(1);
	}
}

static void pool_close(void)
{
	if (pool) {
		sched_stop(pool, now_ms() + 10000);
		uv_run(&loop, UV_RUN_DEFAULT);
	}
	uv_loop_close(&loop);
}

static void on_victim(uv_timer_t *t)
{
	if (cancel_flooder)
		sched_cancel_group(pool, &flooder_group);
	submit(&victim, 2000, &victim_group);
	uv_close((uv_handle_t *)t, NULL);
}

static void scenario(const char *name, uint32_t workers, unsigned n_attack, bool cancel)
{
	unsigned ran = 0;
	uv_timer_t t;

	pool_open(workers);
	cancel_flooder = cancel;
	for (unsigned i = 0; i < n_attack; i++) {
		attack[i] = (call){ .ms = ATTACK_MS };
		submit(&attack[i], 1000, &flooder_group);
	}
	victim = (call){ .ms = VICTIM_MS };
	uv_timer_init(&loop, &t);
	uv_timer_start(&t, on_victim, VICTIM_DELAY_MS, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	pool_close();
	for (unsigned i = 0; i < n_attack; i++)
		ran += attack[i].started != 0;
	printf("%-32s flood %2u x %u ms, %2u ran | victim wait %5llu ms, response %5llu ms"
	       " (bound %u ms)\n",
	       name, n_attack, ATTACK_MS, ran,
	       (unsigned long long)(victim.started - victim.submitted),
	       (unsigned long long)(victim.finished - victim.submitted), VICTIM_MS + ATTACK_MS);
}

/* Per-call cost of the pool itself: empty calls, submitted all at once. */
#define N_EMPTY 100000

static call *empty;

static void overhead(const char *name, uint32_t workers)
{
	uint64_t t0;

	pool_open(workers);
	t0 = now_ns();
	for (unsigned i = 0; i < N_EMPTY; i++) {
		empty[i] = (call){ .ms = 0 };
		submit(&empty[i], 1000 + i % 4, NULL);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	printf("%-32s %u empty calls from 4 uids: %.2f us per call\n", name, N_EMPTY,
	       (double)(now_ns() - t0) / 1000.0 / N_EMPTY);
	pool_close();
}

int main(void)
{
	/* libuv's pool: its default 4 threads, FIFO across everyone */
	scenario("libuv pool (4 threads, FIFO)", 0, 16, false);
	scenario("scheduler, workers = 4", 4, 16, false);
	scenario("scheduler, workers = 1", 1, 8, false);
	scenario("scheduler, workers = 4, closed", 4, 16, true);
	empty = calloc(N_EMPTY, sizeof(*empty));
	if (!empty)
		return 1;
	overhead("libuv pool (4 threads, FIFO)", 0);
	overhead("scheduler, workers = 4", 4);
	free(empty);
	return 0;
}
