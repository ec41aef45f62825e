/*
 * scheduler.c - per-uid fair queueing in front of a pool of our own threads.
 *
 * Fairness is start-time fair queueing with unit cost per call: each uid
 * carries the round in which its next job may start, and a thread always
 * takes the uid whose turn is earliest. Since a uid served in round r next
 * competes in round r + 1 and a uid that had nothing queued joins the
 * current round, every uid with queued work is in round `round` or
 * `round + 1`, so two FIFO lists of uids suffice: this_round is served
 * first, and when it runs dry next_round becomes it. A uid that arrives
 * while a flooder holds the pool is therefore next in line, and a uid cannot
 * jump the queue by letting its queue run empty: its round is kept until
 * the round has moved past it (the idle list), so it rejoins behind those
 * who waited.
 *
 * Everything shared is under one mutex; callbacks run with it released.
 */
#include "scheduler.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "util.h"

typedef struct sched_user {
	uid_t uid;
	list_node queue; /* sched_job.link, oldest last */
	/* In this_round or next_round while it has queued jobs; in the idle
	 * list while it holds nothing but its place in the rotation; else
	 * linked to itself. */
	list_node turn;
	list_node all; /* sched.users */
	uint64_t round; /* its next job may start in this round */
	uint32_t queued, running;
	uint32_t jobs; /* submitted, done not yet run */
	uint64_t bytes; /* job weights + charged */
	uint64_t charged;
	bool over;
} sched_user;

typedef struct sched_worker {
	struct sched *s;
	pthread_t thread;
	sched_job *job; /* being run */
	bool exited;
} sched_worker;

struct sched {
	pthread_mutex_t lock;
	pthread_cond_t work_cond; /* a job was queued, or stopping */
	pthread_cond_t exit_cond; /* a thread left (CLOCK_MONOTONIC) */
	uv_async_t async; /* finished jobs to deliver */

	uint32_t max_jobs;
	uint64_t max_bytes;
	sched_budget_fn on_budget;
	void *ud;

	hmap uids; /* uid -> sched_user, keyed by &user->uid */
	list_node users;
	uint32_t n_users;
	list_node this_round, next_round, idle;
	uint64_t round;
	list_node order; /* queued jobs (sched_job.order), oldest last */
	list_node finished; /* jobs awaiting done (sched_job.link), oldest last */

	uint32_t n_queued, n_running;
	uint64_t bytes;
	uint64_t last_progress_ms;
	sched_stats st;

	uint32_t pending; /* loop thread only: jobs whose done has not run */
	bool draining; /* refuse new jobs */
	bool stopping; /* threads leave */
	bool closed; /* the async handle is closing: threads deliver nothing */
	bool released; /* its close callback ran: the loop holds no reference */
	uint32_t alive; /* threads started and not yet left */

	uint32_t n_workers;
	sched_worker workers[];
};

/* ---- lists ---- */

static list_node *list_oldest(list_node *head)
{
	return list_empty(head) ? NULL : head->prev;
}

/* Move every node of from into the empty list to, keeping their order. */
static void list_take_all(list_node *to, list_node *from)
{
	if (list_empty(from))
		return;
	to->next = from->next;
	to->prev = from->prev;
	to->next->prev = to;
	to->prev->next = to;
	list_init(from);
}

/* ---- users (under the lock) ---- */

static sched_user *user_find(sched *s, uid_t uid)
{
	return hmap_get(&s->uids, &uid, sizeof(uid));
}

static void user_free(sched *s, sched_user *u)
{
	hmap_del(&s->uids, &u->uid, sizeof(u->uid));
	list_unlink(&u->turn);
	list_unlink(&u->all);
	s->n_users--;
	free(u);
}

/* The user about to hold something: found or created, off the idle list. */
static int user_get(sched *s, uid_t uid, sched_user **out)
{
	sched_user *u = user_find(s, uid);
	int r;

	if (u) {
		if (!u->queued)
			list_unlink(&u->turn);
		*out = u;
		return 0;
	}
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->uid = uid;
	list_init(&u->queue);
	list_init(&u->turn);
	r = hmap_put(&s->uids, (const char *)&u->uid, sizeof(u->uid), u);
	if (r < 0) {
		free(u);
		return r == -ENOSPC ? -EBUSY : r;
	}
	list_push_front(&s->users, &u->all);
	s->n_users++;
	*out = u;
	return 0;
}

/* A user holding nothing is forgotten, unless it was served in the current
 * round: then it keeps its turn on the idle list until the round moves on,
 * so emptying its queue and submitting again does not put it ahead. */
static void user_settle(sched *s, sched_user *u)
{
	if (u->jobs || u->bytes)
		return;
	if (u->round <= s->round) {
		user_free(s, u);
		return;
	}
	list_unlink(&u->turn);
	list_push_front(&s->idle, &u->turn);
}

/* Budget state after u's bytes changed: +1 went over, -1 back under, 0. The
 * low-water mark at half the budget keeps a uid near it from pausing and
 * resuming its connections on every message. */
static int user_budget(sched *s, sched_user *u)
{
	if (!u->over && s->max_bytes && u->bytes >= s->max_bytes) {
		u->over = true;
		return 1;
	}
	if (u->over && (!s->max_bytes || u->bytes <= s->max_bytes / 2)) {
		u->over = false;
		return -1;
	}
	return 0;
}

static void budget_notify(sched *s, uid_t uid, int change)
{
	if (change && s->on_budget)
		s->on_budget(s->ud, uid, change > 0);
}

/* ---- the queue (under the lock) ---- */

/* u just got its first queued job: take the turn its round gives it. */
static void turn_join(sched *s, sched_user *u)
{
	list_unlink(&u->turn);
	list_push_front(u->round <= s->round ? &s->this_round : &s->next_round, &u->turn);
}

static sched_job *pick(sched *s)
{
	list_node *n;
	sched_user *u;
	sched_job *job;

	if (list_empty(&s->this_round)) {
		if (list_empty(&s->next_round))
			return NULL;
		list_take_all(&s->this_round, &s->next_round);
		s->round++;
		/* everyone parked was served in the round that just ended */
		while ((n = list_oldest(&s->idle)))
			user_free(s, container_of(n, sched_user, turn));
	}
	u = container_of(list_oldest(&s->this_round), sched_user, turn);
	list_unlink(&u->turn);
	job = container_of(list_oldest(&u->queue), sched_job, link);
	list_unlink(&job->link);
	list_unlink(&job->order);
	u->queued--;
	u->running++;
	s->n_queued--;
	s->n_running++;
	u->round = s->round + 1;
	if (u->queued)
		list_push_front(&s->next_round, &u->turn);
	return job;
}

/* A queued job leaves its queue without running; done delivers it. */
static void cancel_one(sched *s, sched_job *job)
{
	sched_user *u = job->user;

	list_unlink(&job->link);
	list_unlink(&job->order);
	if (--u->queued == 0)
		list_unlink(&u->turn);
	s->n_queued--;
	s->st.cancelled++;
	job->status = -ECANCELED;
	list_push_front(&s->finished, &job->link);
}

static uint32_t cancel_all(sched *s)
{
	uint32_t n = 0;
	list_node *o;

	while ((o = list_oldest(&s->order))) {
		cancel_one(s, container_of(o, sched_job, order));
		n++;
	}
	return n;
}

/* ---- threads ---- */

static void core_free(sched *s)
{
	list_node *n;

	while ((n = list_oldest(&s->users)))
		user_free(s, container_of(n, sched_user, all));
	hmap_fini(&s->uids);
	pthread_cond_destroy(&s->exit_cond);
	pthread_cond_destroy(&s->work_cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* The last of the loop and the threads to let go frees the core, so an
 * abandoned thread whose job returns after sched_stop finds it still there. */
static void thread_leave(sched *s, sched_worker *w)
{
	bool last;

	w->exited = true;
	last = --s->alive == 0 && s->released;
	pthread_cond_broadcast(&s->exit_cond);
	pthread_mutex_unlock(&s->lock);
	if (last)
		core_free(s);
}

static void *worker_main(void *arg)
{
	sched_worker *w = arg;
	sched *s = w->s;
	sched_job *job = NULL;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->stopping && !(job = pick(s)))
			pthread_cond_wait(&s->work_cond, &s->lock);
		if (s->stopping)
			break;
		w->job = job;
		job->started_ms = s->last_progress_ms = now_ms();
		pthread_mutex_unlock(&s->lock);

		job->run(job);

		pthread_mutex_lock(&s->lock);
		w->job = NULL;
		job->user->running--;
		s->n_running--;
		s->st.completed++;
		s->last_progress_ms = now_ms();
		if (!s->closed) {
			job->status = 0;
			list_push_front(&s->finished, &job->link);
			uv_async_send(&s->async);
		}
	}
	thread_leave(s, w);
	return NULL;
}

/* Pool threads take no asynchronous signals: those are the loop's (libuv's
 * signal handling), and a module's blocking syscall should not see EINTR
 * for them. Faults stay deliverable so a crash is still reported. */
static void block_async_signals(sigset_t *old)
{
	static const int sync_sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS };
	sigset_t set;

	sigfillset(&set);
	for (size_t i = 0; i < ARRAY_SIZE(sync_sigs); i++)
		sigdelset(&set, sync_sigs[i]);
	pthread_sigmask(SIG_SETMASK, &set, old);
}

/* Tell the started threads to leave and wait for them (creation failed). */
static void threads_join_all(sched *s, uint32_t started)
{
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_broadcast(&s->work_cond);
	pthread_mutex_unlock(&s->lock);
	for (uint32_t i = 0; i < started; i++)
		pthread_join(s->workers[i].thread, NULL);
}

/* ---- delivery (loop thread) ---- */

static void deliver(sched *s, list_node *batch)
{
	list_node *n;

	while ((n = list_oldest(batch))) {
		sched_job *job = container_of(n, sched_job, link);
		sched_user *u = job->user;
		uid_t uid = u->uid;
		int change;

		list_unlink(n);
		pthread_mutex_lock(&s->lock);
		u->jobs--;
		u->bytes -= job->weight;
		s->bytes -= job->weight;
		change = user_budget(s, u);
		user_settle(s, u);
		pthread_mutex_unlock(&s->lock);
		job->user = NULL;
		if (--s->pending == 0)
			uv_unref((uv_handle_t *)&s->async);
		budget_notify(s, uid, change);
		job->done(job, job->status);
	}
}

static void on_async(uv_async_t *a)
{
	sched *s = a->data;
	list_node batch;

	list_init(&batch);
	pthread_mutex_lock(&s->lock);
	list_take_all(&batch, &s->finished);
	pthread_mutex_unlock(&s->lock);
	deliver(s, &batch);
}

static void on_close(uv_handle_t *h)
{
	sched *s = h->data;
	bool last;

	pthread_mutex_lock(&s->lock);
	s->released = true;
	last = s->alive == 0;
	pthread_mutex_unlock(&s->lock);
	if (last)
		core_free(s);
}

/* ---- API ---- */

int sched_create(sched **out, uv_loop_t *loop, const sched_config *cfg)
{
	pthread_condattr_t ca;
	sigset_t old;
	uint32_t i;
	sched *s;
	int r;

	*out = NULL;
	if (!cfg->workers || cfg->workers > SCHED_MAX_WORKERS)
		return -EINVAL;
	s = calloc(1, sizeof(*s) + cfg->workers * sizeof(s->workers[0]));
	if (!s)
		return -ENOMEM;
	s->max_jobs = cfg->max_jobs_per_uid;
	s->max_bytes = cfg->max_bytes_per_uid;
	s->on_budget = cfg->on_budget;
	s->ud = cfg->ud;
	s->n_workers = cfg->workers;
	s->st.workers = cfg->workers;
	hmap_init(&s->uids, SCHED_MAX_UIDS);
	list_init(&s->users);
	list_init(&s->this_round);
	list_init(&s->next_round);
	list_init(&s->idle);
	list_init(&s->order);
	list_init(&s->finished);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->work_cond, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->exit_cond, &ca);
	pthread_condattr_destroy(&ca);
	s->last_progress_ms = now_ms();

	/* Threads first: they touch the async handle only after a job, and a
	 * failure after uv_async_init would need the loop to run the close. */
	block_async_signals(&old);
	for (i = 0, r = 0; i < s->n_workers; i++) {
		s->workers[i].s = s;
		s->alive++; /* before it runs: nothing else counts threads yet */
		r = -pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]);
		if (r < 0) {
			s->alive--;
			break;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r == 0)
		r = uv_async_init(loop, &s->async, on_async);
	if (r < 0) {
		threads_join_all(s, i);
		core_free(s);
		return r;
	}
	s->async.data = s;
	uv_unref((uv_handle_t *)&s->async); /* referenced while jobs are pending */
	*out = s;
	return 0;
}

int sched_submit(sched *s, sched_job *job, uid_t uid, const void *group, size_t weight,
		 sched_run_fn run, sched_done_fn done)
{
	sched_user *u = NULL;
	int change = 0;
	int r;

	pthread_mutex_lock(&s->lock);
	if (s->draining) {
		r = -ESHUTDOWN;
		goto out;
	}
	r = user_get(s, uid, &u);
	if (r < 0) {
		if (r == -EBUSY)
			s->st.refused_busy++;
		goto out;
	}
	if (s->max_jobs && u->jobs >= s->max_jobs) {
		s->st.refused_busy++;
		r = -EBUSY;
	} else if (u->over && u->jobs) {
		s->st.refused_bytes++;
		r = -ENOBUFS;
	}
	if (r < 0) {
		user_settle(s, u); /* it may have been created for this */
		goto out;
	}
	*job = (sched_job){ .run = run, .done = done, .user = u, .group = group,
			    .weight = weight, .queued_ms = now_ms() };
	list_push_front(&u->queue, &job->link);
	list_push_front(&s->order, &job->order);
	u->jobs++;
	u->bytes += weight;
	s->bytes += weight;
	s->n_queued++;
	s->st.submitted++;
	if (++u->queued == 1)
		turn_join(s, u);
	change = user_budget(s, u);
	pthread_cond_signal(&s->work_cond);
out:
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		return r;
	if (s->pending++ == 0)
		uv_ref((uv_handle_t *)&s->async);
	budget_notify(s, uid, change);
	return 0;
}

uint32_t sched_cancel_group(sched *s, const void *group)
{
	uint32_t n = 0;

	pthread_mutex_lock(&s->lock);
	/* Bounded by the jobs queued: at most max_jobs_per_uid per uid. */
	for (list_node *o = s->order.prev, *prev; o != &s->order; o = prev) {
		sched_job *job = container_of(o, sched_job, order);

		prev = o->prev;
		if (job->group == group) {
			cancel_one(s, job);
			n++;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (n)
		uv_async_send(&s->async);
	return n;
}

int sched_cancel(sched *s, sched_job *job)
{
	bool queued;

	pthread_mutex_lock(&s->lock);
	/* on the order list exactly while queued */
	queued = job->user && job->order.next != &job->order;
	if (queued)
		cancel_one(s, job);
	pthread_mutex_unlock(&s->lock);
	if (!queued)
		return -EBUSY;
	uv_async_send(&s->async);
	return 0;
}

int sched_charge(sched *s, uid_t uid, int64_t delta)
{
	sched_user *u = NULL;
	int change = 0;
	int r = 0;

	if (!delta)
		return 0;
	pthread_mutex_lock(&s->lock);
	if (delta > 0) {
		r = user_get(s, uid, &u);
		if (r == 0) {
			u->charged += (uint64_t)delta;
			u->bytes += (uint64_t)delta;
			s->bytes += (uint64_t)delta;
		}
	} else if ((u = user_find(s, uid))) {
		uint64_t d = (uint64_t)-(delta + 1) + 1; /* |delta| without overflow */

		if (d > u->charged)
			d = u->charged;
		u->charged -= d;
		u->bytes -= d;
		s->bytes -= d;
	}
	if (r == 0 && u) {
		change = user_budget(s, u);
		user_settle(s, u);
	}
	pthread_mutex_unlock(&s->lock);
	budget_notify(s, uid, change);
	return r;
}

static void uid_state(sched *s, uid_t uid, uint64_t *bytes, bool *over)
{
	sched_user *u;

	pthread_mutex_lock(&s->lock);
	u = user_find(s, uid);
	*bytes = u ? u->bytes : 0;
	*over = u && u->over;
	pthread_mutex_unlock(&s->lock);
}

uint64_t sched_uid_bytes(sched *s, uid_t uid)
{
	uint64_t bytes;
	bool over;

	uid_state(s, uid, &bytes, &over);
	return bytes;
}

bool sched_uid_over(sched *s, uid_t uid)
{
	uint64_t bytes;
	bool over;

	uid_state(s, uid, &bytes, &over);
	return over;
}

void sched_set_limits(sched *s, uint32_t max_jobs_per_uid, uint64_t max_bytes_per_uid)
{
	/* lazily: see the header */
	pthread_mutex_lock(&s->lock);
	s->max_jobs = max_jobs_per_uid;
	s->max_bytes = max_bytes_per_uid;
	pthread_mutex_unlock(&s->lock);
}

uint64_t sched_job_started_ms(sched *s, const sched_job *job)
{
	uint64_t t;

	pthread_mutex_lock(&s->lock);
	t = job->started_ms;
	pthread_mutex_unlock(&s->lock);
	return t;
}

void sched_get_stats(sched *s, sched_stats *st)
{
	pthread_mutex_lock(&s->lock);
	*st = s->st;
	st->running = s->n_running;
	st->queued = s->n_queued;
	st->bytes = s->bytes;
	st->uids = 0;
	for (list_node *n = s->users.next; n != &s->users; n = n->next) {
		sched_user *u = container_of(n, sched_user, all);

		st->uids += u->jobs || u->bytes;
	}
	pthread_mutex_unlock(&s->lock);
}

size_t sched_get_uid_stats(sched *s, sched_uid_stat *out, size_t n)
{
	size_t i = 0;

	pthread_mutex_lock(&s->lock);
	for (list_node *l = s->users.next; l != &s->users; l = l->next) {
		sched_user *u = container_of(l, sched_user, all);

		if (!u->jobs && !u->bytes)
			continue;
		if (i < n)
			out[i] = (sched_uid_stat){ .uid = u->uid, .queued = u->queued,
						   .running = u->running, .bytes = u->bytes,
						   .over = u->over };
		i++;
	}
	pthread_mutex_unlock(&s->lock);
	return i;
}

int sched_probe(sched *s, uint64_t now, uint64_t grace_ms, sched_health *h)
{
	list_node *o;
	int r = 0;

	memset(h, 0, sizeof(*h));
	pthread_mutex_lock(&s->lock);
	h->workers = s->n_workers;
	h->running = s->n_running;
	h->queued = s->n_queued;
	h->last_progress_ms = s->last_progress_ms;
	for (uint32_t i = 0; i < s->n_workers; i++) {
		const sched_job *job = s->workers[i].job;

		if (job && (!h->oldest_start_ms || job->started_ms < h->oldest_start_ms))
			h->oldest_start_ms = job->started_ms;
	}
	if ((o = list_oldest(&s->order)))
		h->oldest_queued_ms = container_of(o, sched_job, order)->queued_ms;
	/* Busy threads are alive whatever they run and however long; only work
	 * left waiting beside a free thread means the pool itself is broken. */
	if (h->queued && h->running < h->workers && now > h->oldest_queued_ms + grace_ms)
		r = -EDEADLK;
	pthread_mutex_unlock(&s->lock);
	return r;
}

void sched_drain(sched *s)
{
	uint32_t n;

	pthread_mutex_lock(&s->lock);
	s->draining = true;
	n = cancel_all(s);
	pthread_mutex_unlock(&s->lock);
	if (n)
		uv_async_send(&s->async);
}

uint32_t sched_stop(sched *s, uint64_t deadline_ms)
{
	uint32_t abandoned = 0;
	list_node batch;

	list_init(&batch);
	pthread_mutex_lock(&s->lock);
	s->draining = s->stopping = true;
	cancel_all(s);
	pthread_cond_broadcast(&s->work_cond);
	while (s->alive) {
		uint64_t now = now_ms();
		struct timespec ts;

		if (now >= deadline_ms)
			break;
		ts.tv_sec = (time_t)(deadline_ms / 1000);
		ts.tv_nsec = (long)(deadline_ms % 1000) * 1000000;
		pthread_cond_timedwait(&s->exit_cond, &s->lock, &ts);
	}
	/* From here a thread finishing its job keeps it: done never runs. */
	s->closed = true;
	for (uint32_t i = 0; i < s->n_workers; i++)
		abandoned += s->workers[i].job != NULL;
	list_take_all(&batch, &s->finished);
	pthread_mutex_unlock(&s->lock);

	for (uint32_t i = 0; i < s->n_workers; i++) {
		sched_worker *w = &s->workers[i];
		bool exited;

		pthread_mutex_lock(&s->lock);
		exited = w->exited;
		pthread_mutex_unlock(&s->lock);
		if (exited)
			pthread_join(w->thread, NULL);
		else
			pthread_detach(w->thread);
	}
	deliver(s, &batch);
	uv_close((uv_handle_t *)&s->async, on_close);
	return abandoned;
}
