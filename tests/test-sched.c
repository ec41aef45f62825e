/*
 * test-sched.c - the fair scheduler (daemon/scheduler.c) with its real threads and a real loop:
 * round-robin order across uids while one floods (one and two workers), no
 * queue jumping by a uid that keeps one job queued, per-uid caps, the byte
 * budget and its callbacks, cancellation of a group's queued jobs, the
 * liveness probe while every thread runs a long job, drain, and stop with a
 * hung job returning by its deadline. A stress run gives ASan and TSan
 * something to look at.
 *
 * Jobs that "hold" block on a gate the test opens one permit at a time, so
 * each step's outcome is decided by the scheduler alone, whatever the
 * machine's timing. Every wait is bounded by a generous deadline.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scheduler.h"
#include "util.h"

#define MAX_JOBS 64
#define WAIT_MS 20000
#define HOLD_MS 30000

enum { UID_A = 1000, UID_B = 1001, UID_C = 1002, UID_D = 1003 };

typedef struct tjob {
	sched_job job;
	char name[8];
	bool hold;
	/* written by the pool thread under tm */
	bool ran, returned, gate_timeout;
	/* loop thread */
	int done_calls;
	int status;
} tjob;

static uv_loop_t loop;
static sched *s;
static tjob jobs[MAX_JOBS];
static unsigned n_jobs;
static unsigned n_done; /* loop thread */

static pthread_mutex_t tm = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tc;
static tjob *started[MAX_JOBS];
static unsigned n_started;
static unsigned permits;
static bool gate_open;

typedef struct budget_event {
	uid_t uid;
	bool over;
} budget_event;
static budget_event events[16];
static unsigned n_events;

/* ---- harness ---- */

static void t_run(sched_job *j)
{
	tjob *t = container_of(j, tjob, job);
	uint64_t deadline = now_ms() + HOLD_MS;

	pthread_mutex_lock(&tm);
	t->ran = true;
	if (n_started < MAX_JOBS)
		started[n_started] = t;
	n_started++;
	pthread_cond_broadcast(&tc);
	while (t->hold && !gate_open && !permits) {
		struct timespec ts = { .tv_sec = (time_t)(deadline / 1000),
				       .tv_nsec = (long)(deadline % 1000) * 1000000 };

		if (pthread_cond_timedwait(&tc, &tm, &ts) == ETIMEDOUT) {
			t->gate_timeout = true;
			break;
		}
	}
	if (t->hold && !gate_open && permits)
		permits--;
	t->returned = true;
	pthread_cond_broadcast(&tc);
	pthread_mutex_unlock(&tm);
}

static void t_done(sched_job *j, int status)
{
	tjob *t = container_of(j, tjob, job);

	t->done_calls++;
	t->status = status;
	n_done++;
}

/* Records the first events and checks them all: per uid, over and under
 * alternate, starting with over. */
static void on_budget(void *ud, uid_t uid, bool over)
{
	static bool is_over[8];

	ck_assert_ptr_eq(ud, &events);
	ck_assert_uint_ge(uid, UID_A);
	ck_assert_uint_lt(uid - UID_A, 8);
	if (n_events == 0)
		memset(is_over, 0, sizeof(is_over));
	ck_assert_msg(is_over[uid - UID_A] != over, "uid %u: budget state repeated", uid);
	is_over[uid - UID_A] = over;
	if (n_events < sizeof(events) / sizeof(events[0]))
		events[n_events] = (budget_event){ uid, over };
	n_events++;
}

static void start(uint32_t workers, uint32_t max_jobs, uint64_t max_bytes)
{
	sched_config cfg = { .workers = workers, .max_jobs_per_uid = max_jobs,
			     .max_bytes_per_uid = max_bytes, .on_budget = on_budget,
			     .ud = &events };

	ck_assert_int_eq(sched_create(&s, &loop, &cfg), 0);
}

static tjob *submit_rc(int *rc, const char *name, uid_t uid, const void *group, size_t weight,
		       bool hold)
{
	tjob *t;

	ck_assert_uint_lt(n_jobs, MAX_JOBS);
	t = &jobs[n_jobs];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->hold = hold;
	*rc = sched_submit(s, &t->job, uid, group, weight, t_run, t_done);
	if (*rc == 0)
		n_jobs++;
	return *rc == 0 ? t : NULL;
}

static tjob *submit(const char *name, uid_t uid, const void *group, size_t weight, bool hold)
{
	int rc;
	tjob *t = submit_rc(&rc, name, uid, group, weight, hold);

	ck_assert_msg(rc == 0, "submit %s: %s", name, strerror(-rc));
	return t;
}

/* n held jobs of uid's, named prefix1..prefixN */
static void flood(const char *prefix, uid_t uid, int n)
{
	for (int i = 1; i <= n; i++) {
		char name[8];

		snprintf(name, sizeof(name), "%s%d", prefix, i);
		submit(name, uid, NULL, 0, true);
	}
}

static bool started_at_least(uintptr_t n)
{
	return n_started >= n;
}

static bool done_at_least(uintptr_t n)
{
	return n_done >= n;
}

static bool has_returned(uintptr_t t)
{
	return ((tjob *)t)->returned;
}

/* Run the loop until pred holds; fail after a generous deadline. */
static void wait_until(bool (*pred)(uintptr_t), uintptr_t arg, const char *what)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	for (;;) {
		bool ok;

		uv_run(&loop, UV_RUN_NOWAIT);
		pthread_mutex_lock(&tm);
		ok = pred(arg);
		pthread_mutex_unlock(&tm);
		if (ok)
			return;
		ck_assert_msg(now_ms() < deadline, "timed out waiting for %s", what);
		usleep(1000);
	}
}

/* Wait for the pool threads alone, without running the loop, so nothing is
 * delivered meanwhile. */
static void wait_pool(bool (*pred)(uintptr_t), uintptr_t arg, const char *what)
{
	uint64_t deadline = now_ms() + WAIT_MS;
	struct timespec ts = { .tv_sec = (time_t)(deadline / 1000),
			       .tv_nsec = (long)(deadline % 1000) * 1000000 };
	bool ok;

	pthread_mutex_lock(&tm);
	while (!(ok = pred(arg)) && pthread_cond_timedwait(&tc, &tm, &ts) != ETIMEDOUT)
		;
	ok = ok || pred(arg);
	pthread_mutex_unlock(&tm);
	ck_assert_msg(ok, "timed out waiting for %s", what);
}

static void release(unsigned n)
{
	pthread_mutex_lock(&tm);
	permits += n;
	pthread_cond_broadcast(&tc);
	pthread_mutex_unlock(&tm);
}

static void open_gate(void)
{
	pthread_mutex_lock(&tm);
	gate_open = true;
	pthread_cond_broadcast(&tc);
	pthread_mutex_unlock(&tm);
}

/* Names of the jobs in the order they started. */
static void start_order(char *buf, size_t n)
{
	size_t len = 0;

	buf[0] = '\0';
	pthread_mutex_lock(&tm);
	for (unsigned i = 0; i < n_started && i < MAX_JOBS && len < n; i++)
		len += (size_t)snprintf(buf + len, n - len, "%s%s", i ? " " : "",
					started[i]->name);
	pthread_mutex_unlock(&tm);
}

/* Let one held job finish and check which job the freed thread takes. */
static void step(const char *expect)
{
	unsigned n;

	pthread_mutex_lock(&tm);
	n = n_started;
	pthread_mutex_unlock(&tm);
	release(1);
	wait_until(started_at_least, n + 1, expect);
	pthread_mutex_lock(&tm);
	ck_assert_msg(strcmp(started[n]->name, expect) == 0, "start %u: %s, expected %s", n,
		      started[n]->name, expect);
	pthread_mutex_unlock(&tm);
}

/* step() for each space-separated name in turn */
static void steps(const char *names)
{
	char buf[128], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", names);
	for (char *n = strtok_r(buf, " ", &save); n; n = strtok_r(NULL, " ", &save))
		step(n);
}

static void finish_all(void)
{
	open_gate();
	wait_until(done_at_least, n_jobs, "every job done");
	for (unsigned i = 0; i < n_jobs; i++) {
		ck_assert_int_eq(jobs[i].done_calls, 1);
		ck_assert(!jobs[i].gate_timeout);
	}
}

static void stop_and_close(void)
{
	ck_assert_uint_eq(sched_stop(s, now_ms() + WAIT_MS), 0);
	s = NULL;
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
}

static void setup(void)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&tc, &ca);
	pthread_condattr_destroy(&ca);
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	s = NULL;
	n_jobs = n_done = n_started = permits = n_events = 0;
	gate_open = false;
}

static void teardown(void)
{
	if (s) {
		open_gate();
		stop_and_close();
	}
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	pthread_cond_destroy(&tc);
}

/* ---- fairness ---- */

/*
 * One worker, A floods, B and C arrive while A1 runs: each waits for A1
 * only, then the uids alternate one job each while they all have work.
 */
START_TEST(round_robin_one_worker)
{
	char order[256];

	start(1, 0, 0);
	flood("A", UID_A, 6);
	wait_until(started_at_least, 1, "A1 to start");
	submit("B1", UID_B, NULL, 0, true);
	submit("B2", UID_B, NULL, 0, true);
	submit("C1", UID_C, NULL, 0, true);
	steps("B1 C1 A2 B2 A3");
	finish_all();
	start_order(order, sizeof(order));
	ck_assert_str_eq(order, "A1 B1 C1 A2 B2 A3 A4 A5 A6");
	for (unsigned i = 0; i < n_jobs; i++)
		ck_assert_int_eq(jobs[i].status, 0);
}
END_TEST

/*
 * Two workers, both on A's calls: B's call starts as soon as either
 * finishes, before any further call of A's.
 */
START_TEST(round_robin_two_workers)
{
	start(2, 0, 0);
	flood("A", UID_A, 6);
	wait_until(started_at_least, 2, "A1 and A2 to start");
	submit("B1", UID_B, NULL, 0, true);
	submit("C1", UID_C, NULL, 0, true);
	submit("B2", UID_B, NULL, 0, true);
	steps("B1 C1 A3 B2 A4");
	finish_all();
}
END_TEST

/*
 * A uid that lets its queue run empty and submits again (one job queued at
 * a time) rejoins behind those who waited, instead of taking every turn.
 */
START_TEST(no_queue_jumping)
{
	start(1, 0, 0);
	submit("X1", UID_A, NULL, 0, true);
	wait_until(started_at_least, 1, "X1 to start");
	submit("V1", UID_B, NULL, 0, true);
	submit("V2", UID_B, NULL, 0, true);
	submit("V3", UID_B, NULL, 0, true);
	submit("X2", UID_A, NULL, 0, true);
	steps("V1 X2");
	/* X queues its next one while X2 runs */
	submit("X3", UID_A, NULL, 0, true);
	step("V2");
	submit("X4", UID_A, NULL, 0, true);
	steps("X3 V3 X4");
	finish_all();
}
END_TEST

/*
 * A uid served in this round that finishes, is delivered and submits again
 * keeps its place behind those served before it, although it held nothing
 * for a moment.
 */
START_TEST(no_extra_turn_after_idle)
{
	start(1, 0, 0);
	submit("A1", UID_A, NULL, 0, true);
	submit("A2", UID_A, NULL, 0, true);
	wait_until(started_at_least, 1, "A1 to start");
	submit("X1", UID_C, NULL, 0, false);
	submit("P1", UID_B, NULL, 0, true);
	submit("Q1", UID_D, NULL, 0, true);
	step("X1");
	wait_until(started_at_least, 3, "P1 to start");
	wait_until(done_at_least, 2, "A1 and X1 done");
	submit("X2", UID_C, NULL, 0, true);
	steps("Q1 A2 X2");
	finish_all();
}
END_TEST

/* ---- limits ---- */

START_TEST(per_uid_cap)
{
	sched_uid_stat us[4];
	sched_stats st;
	tjob *a1;
	size_t n;
	int rc;

	start(1, 2, 0);
	a1 = submit("a1", UID_A, NULL, 10, true);
	submit("a2", UID_A, NULL, 20, false);
	ck_assert_ptr_null(submit_rc(&rc, "a3", UID_A, NULL, 0, false));
	ck_assert_int_eq(rc, -EBUSY);
	submit("b1", UID_B, NULL, 5, false);
	wait_until(started_at_least, 1, "a1 to start");

	sched_get_stats(s, &st);
	ck_assert_uint_eq(st.workers, 1);
	ck_assert_uint_eq(st.running, 1);
	ck_assert_uint_eq(st.queued, 2);
	ck_assert_uint_eq(st.uids, 2);
	ck_assert_uint_eq(st.bytes, 35);
	ck_assert_uint_eq(st.submitted, 3);
	ck_assert_uint_eq(st.refused_busy, 1);
	n = sched_get_uid_stats(s, us, 4);
	ck_assert_uint_eq(n, 2);
	for (size_t i = 0; i < n; i++) {
		if (us[i].uid == UID_A) {
			ck_assert_uint_eq(us[i].queued, 1);
			ck_assert_uint_eq(us[i].running, 1);
			ck_assert_uint_eq(us[i].bytes, 30);
		} else {
			ck_assert_uint_eq(us[i].uid, UID_B);
			ck_assert_uint_eq(us[i].queued, 1);
			ck_assert_uint_eq(us[i].running, 0);
			ck_assert_uint_eq(us[i].bytes, 5);
		}
	}
	ck_assert_uint_eq(sched_get_uid_stats(s, us, 1), 2);
	ck_assert_uint_ne(sched_job_started_ms(s, &a1->job), 0);

	/* a1's done frees a slot of A's */
	release(1);
	wait_until(done_at_least, 1, "a1 done");
	ck_assert_int_eq(a1->done_calls, 1);
	submit("a3", UID_A, NULL, 0, false);
	finish_all();
	sched_get_stats(s, &st);
	ck_assert_uint_eq(st.completed, 4);
	ck_assert_uint_eq(st.bytes, 0);
	ck_assert_uint_eq(st.uids, 0);
	ck_assert_uint_eq(sched_get_uid_stats(s, us, 4), 0);
}
END_TEST

START_TEST(byte_budget)
{
	sched_stats st;
	int rc;

	start(1, 0, 1000);
	submit("j1", UID_A, NULL, 400, true);
	submit("j2", UID_A, NULL, 400, true);
	ck_assert_uint_eq(n_events, 0);
	ck_assert(!sched_uid_over(s, UID_A));
	submit("j3", UID_A, NULL, 400, true); /* crosses: let through, then over */
	ck_assert_uint_eq(n_events, 1);
	ck_assert_uint_eq(events[0].uid, UID_A);
	ck_assert(events[0].over);
	ck_assert(sched_uid_over(s, UID_A));
	ck_assert_uint_eq(sched_uid_bytes(s, UID_A), 1200);
	ck_assert_ptr_null(submit_rc(&rc, "j4", UID_A, NULL, 1, false));
	ck_assert_int_eq(rc, -ENOBUFS);

	/* output bytes count against the same budget; releases clamp at zero */
	ck_assert_int_eq(sched_charge(s, UID_B, 999), 0);
	ck_assert_uint_eq(n_events, 1);
	ck_assert_int_eq(sched_charge(s, UID_B, 1), 0);
	ck_assert_uint_eq(n_events, 2);
	ck_assert(events[1].uid == UID_B && events[1].over);
	ck_assert_uint_eq(sched_uid_bytes(s, UID_B), 1000);
	ck_assert_int_eq(sched_charge(s, UID_B, -499), 0);
	ck_assert_uint_eq(n_events, 2); /* 501: above the low-water mark */
	ck_assert_int_eq(sched_charge(s, UID_B, -1), 0);
	ck_assert_uint_eq(n_events, 3);
	ck_assert(events[2].uid == UID_B && !events[2].over);
	ck_assert_int_eq(sched_charge(s, UID_B, -10000), 0);
	ck_assert_uint_eq(sched_uid_bytes(s, UID_B), 0);
	ck_assert_int_eq(sched_charge(s, UID_C, -5), 0);
	ck_assert_uint_eq(sched_uid_bytes(s, UID_C), 0);

	/* a uid with nothing in flight is let through whatever the weight */
	submit("c1", UID_C, NULL, 5000, false);
	ck_assert_uint_eq(n_events, 4);
	ck_assert(events[3].uid == UID_C && events[3].over);
	ck_assert_ptr_null(submit_rc(&rc, "c2", UID_C, NULL, 1, false));
	ck_assert_int_eq(rc, -ENOBUFS);

	/* j1 finishes; C's large job runs next and is gone: C is under again */
	wait_until(started_at_least, 1, "j1 to start");
	step("c1");
	wait_until(done_at_least, 2, "j1 and c1 done");
	ck_assert_uint_eq(n_events, 5);
	ck_assert(events[4].uid == UID_C && !events[4].over);
	/* A comes back under at half the budget, not before */
	ck_assert_uint_eq(sched_uid_bytes(s, UID_A), 800);
	ck_assert(sched_uid_over(s, UID_A));
	release(1);
	wait_until(done_at_least, 3, "j2 done");
	ck_assert_uint_eq(n_events, 6);
	ck_assert(events[5].uid == UID_A && !events[5].over);
	ck_assert(!sched_uid_over(s, UID_A));
	submit("j5", UID_A, NULL, 100, false);
	finish_all();
	sched_get_stats(s, &st);
	ck_assert_uint_eq(st.refused_bytes, 2);
	ck_assert_uint_eq(st.bytes, 0);
	ck_assert_uint_eq(n_events, 6);
}
END_TEST

/* ---- cancellation ---- */

START_TEST(cancel_group)
{
	static int g1, g2;
	tjob *a1, *a2, *a3, *b1, *a4;
	sched_stats st;
	char order[128];

	start(1, 0, 0);
	a1 = submit("a1", UID_A, &g1, 10, true);
	wait_until(started_at_least, 1, "a1 to start");
	a2 = submit("a2", UID_A, &g1, 10, false);
	a3 = submit("a3", UID_A, &g1, 10, false);
	b1 = submit("b1", UID_B, &g2, 10, false);
	a4 = submit("a4", UID_A, &g2, 10, false);

	ck_assert_uint_eq(sched_cancel_group(s, &g1), 2);
	ck_assert_uint_eq(sched_cancel_group(s, &g1), 0);
	/* done never runs inside the cancel call */
	ck_assert_uint_eq(n_done, 0);
	sched_get_stats(s, &st);
	ck_assert_uint_eq(st.cancelled, 2);
	ck_assert_uint_eq(st.queued, 2);
	ck_assert_uint_eq(st.running, 1);
	wait_until(done_at_least, 2, "the cancelled jobs' done");
	ck_assert_int_eq(a2->status, -ECANCELED);
	ck_assert_int_eq(a3->status, -ECANCELED);
	ck_assert_uint_eq(sched_uid_bytes(s, UID_A), 20); /* a1 and a4 */

	finish_all();
	ck_assert(a1->ran && !a2->ran && !a3->ran && b1->ran && a4->ran);
	ck_assert_int_eq(a1->status, 0); /* running ones finish */
	ck_assert_int_eq(b1->status, 0);
	ck_assert_int_eq(a4->status, 0);
	start_order(order, sizeof(order));
	ck_assert_str_eq(order, "a1 b1 a4");
	sched_get_stats(s, &st);
	ck_assert_uint_eq(st.completed, 3);
	ck_assert_uint_eq(st.cancelled, 2);
}
END_TEST

START_TEST(cancel_one_job)
{
	tjob *a1, *a2, *a3;
	char order[64];

	start(1, 0, 0);
	a1 = submit("a1", UID_A, NULL, 1, true);
	a2 = submit("a2", UID_A, NULL, 2, false);
	a3 = submit("a3", UID_A, NULL, 4, false);
	wait_until(started_at_least, 1, "a1 to start");
	ck_assert_int_eq(sched_cancel(s, &a1->job), -EBUSY); /* running */
	ck_assert_int_eq(sched_cancel(s, &a2->job), 0);
	ck_assert_int_eq(sched_cancel(s, &a2->job), -EBUSY); /* already finishing */
	ck_assert_uint_eq(n_done, 0);
	wait_until(done_at_least, 1, "a2's done");
	ck_assert_int_eq(a2->status, -ECANCELED);
	ck_assert_uint_eq(sched_uid_bytes(s, UID_A), 5);
	finish_all();
	ck_assert(!a2->ran && a3->ran);
	ck_assert_int_eq(a3->status, 0);
	start_order(order, sizeof(order));
	ck_assert_str_eq(order, "a1 a3");
}
END_TEST

/* ---- liveness ---- */

START_TEST(probe_busy_is_alive)
{
	sched_health h;
	uint64_t t0 = now_ms();

	start(2, 0, 0);
	ck_assert_int_eq(sched_probe(s, now_ms(), 0, &h), 0);
	ck_assert_uint_eq(h.workers, 2);
	ck_assert_uint_eq(h.running, 0);
	ck_assert_uint_eq(h.oldest_start_ms, 0);

	submit("l1", UID_A, NULL, 0, true);
	submit("l2", UID_A, NULL, 0, true);
	submit("q1", UID_B, NULL, 0, true);
	wait_until(started_at_least, 2, "two long jobs to run");
	/* Ten minutes on: every thread in a long call, work waiting behind
	 * them. That is a busy pool, not a stuck daemon. */
	ck_assert_int_eq(sched_probe(s, now_ms() + 600000, 1000, &h), 0);
	ck_assert_uint_eq(h.running, 2);
	ck_assert_uint_eq(h.queued, 1);
	ck_assert_uint_ge(h.oldest_start_ms, t0);
	ck_assert_uint_le(h.oldest_start_ms, now_ms());
	ck_assert_uint_ge(h.oldest_queued_ms, t0);
	ck_assert_uint_ge(h.last_progress_ms, h.oldest_start_ms);
	finish_all();
	ck_assert_int_eq(sched_probe(s, now_ms(), 0, &h), 0);
	ck_assert_uint_eq(h.running, 0);
	ck_assert_uint_eq(h.queued, 0);
}
END_TEST

/* ---- stopping ---- */

START_TEST(drain_refuses_and_cancels)
{
	tjob *h1, *q1;
	int rc;

	start(1, 0, 0);
	h1 = submit("h1", UID_A, NULL, 0, true);
	q1 = submit("q1", UID_B, NULL, 0, true);
	wait_until(started_at_least, 1, "h1 to start");
	sched_drain(s);
	ck_assert_ptr_null(submit_rc(&rc, "x", UID_C, NULL, 0, false));
	ck_assert_int_eq(rc, -ESHUTDOWN);
	wait_until(done_at_least, 1, "q1 cancelled");
	ck_assert_int_eq(q1->status, -ECANCELED);
	ck_assert_int_eq(h1->done_calls, 0);
	finish_all();
	ck_assert_int_eq(h1->status, 0);
	ck_assert(!q1->ran);
	stop_and_close();
}
END_TEST

START_TEST(stop_abandons_hung_job)
{
	tjob *f1, *h1, *q1;
	uint64_t t0, deadline;

	start(1, 0, 0);
	f1 = submit("f1", UID_A, NULL, 0, false);
	wait_pool(has_returned, (uintptr_t)f1, "f1 to run"); /* its done still pending */
	h1 = submit("h1", UID_A, NULL, 0, true);
	q1 = submit("q1", UID_A, NULL, 0, true); /* behind h1: same uid */
	wait_pool(started_at_least, 2, "h1 to start");
	ck_assert_uint_eq(n_done, 0);

	t0 = now_ms();
	deadline = t0 + 300;
	ck_assert_uint_eq(sched_stop(s, deadline), 1);
	s = NULL;
	ck_assert_uint_ge(now_ms(), deadline);
	ck_assert_uint_lt(now_ms() - t0, WAIT_MS);
	/* before it returned: the finished job delivered, the queued cancelled */
	ck_assert_int_eq(f1->done_calls, 1);
	ck_assert_int_eq(f1->status, 0);
	ck_assert_int_eq(q1->done_calls, 1);
	ck_assert_int_eq(q1->status, -ECANCELED);
	ck_assert(!q1->ran);
	ck_assert_int_eq(h1->done_calls, 0);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);

	/* The hung call returns later, on its abandoned thread: it must find
	 * nothing freed under it, and nothing is delivered. */
	open_gate();
	wait_until(has_returned, (uintptr_t)h1, "h1 to return");
	ck_assert_int_eq(h1->done_calls, 0);
}
END_TEST

/* ---- stress ---- */

#define STRESS_JOBS 3000
#define STRESS_UIDS 4
#define STRESS_GROUPS 8

static tjob *stress;

static void stress_run(sched_job *j)
{
	tjob *t = container_of(j, tjob, job);

	t->ran = true;
}

static void stress_done(sched_job *j, int status)
{
	tjob *t = container_of(j, tjob, job);

	t->done_calls++;
	t->status = status;
	ck_assert(status == 0 ? t->ran : status == -ECANCELED && !t->ran);
	n_done++;
	/* done may submit: the next job goes in from here half the time */
	if (n_jobs < STRESS_JOBS && (n_jobs & 1)) {
		tjob *n = &stress[n_jobs];

		if (sched_submit(s, &n->job, UID_A, &stress[0], 1, stress_run, stress_done) == 0)
			n_jobs++;
	}
}

static bool all_stress_done(uintptr_t unused)
{
	(void)unused;
	return n_done == n_jobs;
}

START_TEST(stress_submit_cancel)
{
	static char groups[STRESS_GROUPS];
	uint64_t deadline = now_ms() + WAIT_MS;
	uint32_t cancelled = 0;
	sched_stats st;

	stress = calloc(STRESS_JOBS, sizeof(*stress));
	ck_assert_ptr_nonnull(stress);
	start(3, 16, 64);
	while (n_jobs < STRESS_JOBS) {
		tjob *t = &stress[n_jobs];
		int rc = sched_submit(s, &t->job, UID_A + n_jobs % STRESS_UIDS,
				      &groups[n_jobs / 3 % STRESS_GROUPS], n_jobs % 7,
				      stress_run, stress_done);

		if (rc == 0)
			n_jobs++;
		else
			ck_assert_msg(rc == -EBUSY || rc == -ENOBUFS, "%s", strerror(-rc));
		if (rc < 0 || n_jobs % 50 == 0)
			uv_run(&loop, UV_RUN_NOWAIT);
		if (n_jobs % 97 == 0)
			cancelled += sched_cancel_group(s, &groups[n_jobs % STRESS_GROUPS]);
		ck_assert_msg(now_ms() < deadline, "stress submissions timed out");
	}
	wait_until(all_stress_done, 0, "every stress job done");
	sched_get_stats(s, &st);
	ck_assert_uint_eq(st.submitted, STRESS_JOBS);
	ck_assert_uint_eq(st.cancelled, cancelled);
	ck_assert_uint_eq(st.completed + st.cancelled, STRESS_JOBS);
	ck_assert_uint_eq(st.bytes, 0);
	ck_assert_uint_eq(st.uids, 0);
	for (unsigned i = 0; i < STRESS_JOBS; i++)
		ck_assert_int_eq(stress[i].done_calls, 1);
	stop_and_close();
	free(stress);
	n_jobs = 0;
}
END_TEST

START_TEST(create_rejects_bad_config)
{
	static char dummy;
	sched_config cfg = { .workers = 0 };
	sched *x = (sched *)&dummy;

	ck_assert_int_eq(sched_create(&x, &loop, &cfg), -EINVAL);
	ck_assert_ptr_null(x);
	cfg.workers = SCHED_MAX_WORKERS + 1;
	ck_assert_int_eq(sched_create(&x, &loop, &cfg), -EINVAL);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("sched");
	TCase *tc_ = tcase_create("sched");

	tcase_add_checked_fixture(tc_, setup, teardown);
	tcase_set_timeout(tc_, 60);
	tcase_add_test(tc_, round_robin_one_worker);
	tcase_add_test(tc_, round_robin_two_workers);
	tcase_add_test(tc_, no_queue_jumping);
	tcase_add_test(tc_, no_extra_turn_after_idle);
	tcase_add_test(tc_, per_uid_cap);
	tcase_add_test(tc_, byte_budget);
	tcase_add_test(tc_, cancel_group);
	tcase_add_test(tc_, cancel_one_job);
	tcase_add_test(tc_, probe_busy_is_alive);
	tcase_add_test(tc_, drain_refuses_and_cancels);
	tcase_add_test(tc_, stop_abandons_hung_job);
	tcase_add_test(tc_, stress_submit_cancel);
	tcase_add_test(tc_, create_rejects_bad_config);
	suite_add_tcase(su, tc_);
	return tu_run(su);
}
