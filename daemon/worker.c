/*
 * worker.c - the daemon's end of an isolated module's worker process, the
 * message channel both ends share, and the crash accounting the registry
 * uses for quarantine.
 *
 * Life of one run: worker_start makes a socketpair, spawns lmmsd in worker
 * mode with the other end as fd 3 and sends the hello; the worker's answer
 * makes it READY. It ends one of three ways: worker_stop (our write side is
 * shut, the worker runs fini and exits, SIGKILL at the stop deadline), a
 * kill of ours (a call past its deadline, a start past its deadline, a
 * protocol violation), or on its own (a crash, an exit). In every case the
 * run is over only when both the process was reaped *and* the channel was
 * read to its end: answers the worker wrote just before it died are still
 * in the socket when SIGCHLD arrives, and they are real answers. Then the
 * calls still in flight are answered, the handles closed, and on_exit runs.
 */
#include "worker.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "registry.h"
#include "util.h"

#define WCHAN_READ_START (8u * 1024u)
#define WCHAN_READ_MIN (4u * 1024u) /* free space offered to a read */
#define WCHAN_READ_KEEP (64u * 1024u) /* kept across messages */
/* The hello's id: call ids keep their slot (< WORKER_MAX_INFLIGHT) in the
 * low 16 bits, so they never take this value. */
#define WORKER_HELLO_ID UINT32_MAX
/* After the exit: how long answers may still trickle out of the socket. The
 * kernel closed the worker's end before SIGCHLD was sent, so this only
 * matters when the module forked and a child of it holds the channel. */
#define WORKER_DRAIN_MS 200
/* An answer's envelope and error message, on top of the result. */
#define WORKER_ANSWER_SLACK 4096u
#define WORKER_MSG_MAX 512

/* ---- channel ------------------------------------------------------------ */

static void wchan_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	wchan *ch = h->data;
	size_t limit = (size_t)ch->limits.max_message_bytes + WCHAN_READ_MIN;

	(void)suggested;
	/* Small to begin with (most messages are), doubled while a message
	 * needs more, never past one message over the limit. */
	if (ch->icap - ch->ilen < WCHAN_READ_MIN && ch->icap < limit) {
		size_t cap = ch->icap ? ch->icap * 2 : WCHAN_READ_START;
		char *p;

		if (cap > limit)
			cap = limit;
		p = realloc(ch->ibuf, cap);
		if (p) {
			ch->ibuf = p;
			ch->icap = cap;
		}
	}
	/* A full buffer yields a zero-length read: libuv reports UV_ENOBUFS and
	 * the channel ends, which is right for a message over the limit. */
	*buf = uv_buf_init(ch->ibuf ? ch->ibuf + ch->ilen : NULL,
			   (unsigned)(ch->icap - ch->ilen));
}

static void wchan_end(wchan *ch, int status)
{
	if (ch->ended)
		return;
	ch->ended = true;
	if (ch->reading) {
		uv_read_stop((uv_stream_t *)&ch->pipe);
		ch->reading = false;
	}
	ch->on_end(ch, status);
}

static void wchan_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	wchan *ch = s->data;
	size_t pos = 0;

	(void)buf;
	if (n < 0) {
		wchan_end(ch, n == UV_EOF ? 0 : (int)n);
		return;
	}
	ch->ilen += (size_t)n;
	while (ch->reading && pos < ch->ilen) {
		proto_scan_status st = proto_scan_feed(&ch->scan, &ch->limits, ch->ibuf + pos,
						       ch->ilen - pos);
		size_t len;

		if (st == PROTO_SCAN_MORE)
			break;
		if (st == PROTO_SCAN_ERROR) {
			wchan_end(ch, -EPROTO);
			return;
		}
		len = ch->scan.msg_len;
		proto_scan_reset(&ch->scan);
		if (ch->on_msg(ch, ch->ibuf + pos, len) < 0) {
			wchan_end(ch, -EPROTO);
			return;
		}
		pos += len;
	}
	if (pos > 0) {
		/* the scanner's state is relative to the message start, which
		 * moves to the buffer start */
		memmove(ch->ibuf, ch->ibuf + pos, ch->ilen - pos);
		ch->ilen -= pos;
	}
	if (ch->ilen == 0 && ch->icap > WCHAN_READ_KEEP) {
		/* one large answer must not keep its buffer for the worker's life */
		free(ch->ibuf);
		ch->ibuf = NULL;
		ch->icap = 0;
	}
	/* answers produced while reading go out in one write */
	wchan_flush(ch);
}

int wchan_open(wchan *ch, uv_loop_t *loop, int fd, wchan_msg_cb on_msg, wchan_end_cb on_end)
{
	memset(ch, 0, sizeof(*ch)); /* zeroed sbuffers are empty ones */
	proto_limits_default(&ch->limits);
	msgpack_packer_init(&ch->pk, &ch->out, msgpack_sbuffer_write);
	ch->on_msg = on_msg;
	ch->on_end = on_end;
	uv_pipe_init(loop, &ch->pipe, 0);
	ch->pipe.data = ch;
	ch->open = true; /* initialized: must be closed whatever happens next */
	return uv_pipe_open(&ch->pipe, fd);
}

int wchan_read_start(wchan *ch)
{
	int r;

	if (ch->reading || ch->ended)
		return 0;
	r = uv_read_start((uv_stream_t *)&ch->pipe, wchan_alloc, wchan_on_read);
	if (r == 0)
		ch->reading = true;
	return r;
}

static void wchan_on_write(uv_write_t *req, int status)
{
	wchan *ch = req->data;

	ch->writing = false;
	ch->wbuf.size = 0;
	if (status == UV_ECANCELED)
		return; /* closing */
	if (status < 0)
		ch->out.size = 0; /* the peer is gone; the read side reports how */
	if (ch->out.size)
		wchan_flush(ch);
	else if (ch->on_drained)
		ch->on_drained(ch);
}

int wchan_flush(wchan *ch)
{
	msgpack_sbuffer tmp;
	uv_buf_t b;
	int r;

	if (!ch->open || ch->writing || ch->out.size == 0)
		return 0;
	/* Nearly every message fits the socket at once: written here, it needs
	 * no write request, whose callback would cost another loop turn (one
	 * more epoll_wait) on each side of every call. */
	b = uv_buf_init(ch->out.data, (unsigned)ch->out.size);
	r = uv_try_write((uv_stream_t *)&ch->pipe, &b, 1);
	if (r == (int)ch->out.size) {
		ch->out.size = 0;
		return 0;
	}
	if (r < 0 && r != UV_EAGAIN)
		return r; /* the read side reports the broken channel */
	if (r > 0) {
		memmove(ch->out.data, ch->out.data + r, ch->out.size - (size_t)r);
		ch->out.size -= (size_t)r;
	}
	tmp = ch->wbuf;
	ch->wbuf = ch->out;
	ch->out = tmp;
	ch->out.size = 0;
	b = uv_buf_init(ch->wbuf.data, (unsigned)ch->wbuf.size);
	ch->wreq.data = ch;
	r = uv_write(&ch->wreq, (uv_stream_t *)&ch->pipe, &b, 1, wchan_on_write);
	if (r < 0) {
		ch->wbuf.size = 0;
		return r;
	}
	ch->writing = true;
	return 0;
}

void wchan_close(wchan *ch, uv_close_cb cb)
{
	if (!ch->open)
		return;
	ch->open = false;
	ch->reading = false;
	uv_close((uv_handle_t *)&ch->pipe, cb);
}

void wchan_free(wchan *ch)
{
	free(ch->ibuf);
	ch->ibuf = NULL;
	ch->ilen = ch->icap = 0;
	msgpack_sbuffer_destroy(&ch->out);
	msgpack_sbuffer_destroy(&ch->wbuf);
	msgpack_sbuffer_init(&ch->out);
	msgpack_sbuffer_init(&ch->wbuf);
}

const msgpack_object *mp_map_get(const msgpack_object *map, const char *key)
{
	size_t n = strlen(key);

	if (!map || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;

		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
		    memcmp(k->via.str.ptr, key, n) == 0)
			return &map->via.map.ptr[i].val;
	}
	return NULL;
}

/* ---- daemon side: helpers ----------------------------------------------- */

const char *worker_end_name(worker_end e)
{
	switch (e) {
	case WORKER_END_STOPPED:
		return "stopped";
	case WORKER_END_START_FAILED:
		return "start_failed";
	case WORKER_END_CRASHED:
		return "crashed";
	case WORKER_END_TIMEOUT:
		return "timeout";
	}
	return "unknown";
}

void worker_options_default(worker_options *o)
{
	memset(o, 0, sizeof(*o));
	o->exe = "/proc/self/exe";
	o->log_level = LOG_LVL_INFO;
	o->start_timeout_ms = 30000;
	o->stop_timeout_ms = 2000;
	o->max_inflight = 256;
	o->max_buffered_bytes = 4u << 20;
	o->max_message_bytes = 1u << 20;
	o->max_elements = 65536;
	o->max_result_bytes = 1u << 20;
}

void worker_init(worker *w, uv_loop_t *loop)
{
	memset(w, 0, sizeof(*w));
	w->loop = loop;
	list_init(&w->calls);
}

/* A run gives its buffers back when it ends (worker_closed) or fails to
 * start: nothing outlives it, so an idle handle holds no memory. */
void worker_fini(worker *w)
{
	(void)w;
}

int64_t worker_rss_bytes(const worker *w)
{
	int64_t r;

	if (w->pid <= 0 || w->exited)
		return 0;
	r = rss_bytes_of(w->pid);
	return r > 0 ? r : 0;
}

static worker_req *oldest_call(worker *w)
{
	return list_empty(&w->calls) ? NULL : container_of(w->calls.prev, worker_req, link);
}

static void worker_on_timer(uv_timer_t *t);

/* Keep the timer at the earliest deadline in force. A timer that is due
 * earlier is left alone: it fires, finds nothing to do, and re-arms. */
static void worker_arm(worker *w)
{
	uint64_t due = UINT64_MAX, now;
	worker_req *r;

	if (w->exited && !w->eof)
		due = w->drain_deadline_ms;
	if (w->state == WORKER_STARTING && w->start_deadline_ms && w->start_deadline_ms < due)
		due = w->start_deadline_ms;
	if (w->state == WORKER_STOPPING && !w->exited && !w->killed && w->stop_deadline_ms < due)
		due = w->stop_deadline_ms;
	r = oldest_call(w);
	if (w->state == WORKER_READY && r && r->deadline_ms && r->deadline_ms < due)
		due = r->deadline_ms;
	if (due == UINT64_MAX || (w->timer_armed && w->timer_due_ms <= due))
		return;
	/* at least 1 ms: libuv runs a timer re-armed with 0 from its own
	 * callback again in the same pass, before any I/O */
	now = now_ms();
	uv_timer_start(&w->timer, worker_on_timer, due > now + 1 ? due - now : 1, 0);
	w->timer_armed = true;
	w->timer_due_ms = due;
}

static void worker_kill(worker *w)
{
	if (w->pid > 0 && !w->exited && !w->killed)
		w->killed = uv_process_kill(&w->proc, SIGKILL) == 0;
}

static void worker_on_shutdown(uv_shutdown_t *req, int status)
{
	(void)req;
	(void)status; /* a broken channel shows on the read side */
}

/* Close our write side: the worker finishes its calls, runs fini, exits. */
static void worker_shut(worker *w)
{
	w->state = WORKER_STOPPING;
	w->stop_deadline_ms = now_ms() + w->opt.stop_timeout_ms;
	if (w->opt.stop_timeout_ms == 0 || w->eof ||
	    uv_shutdown(&w->shutdown_req, (uv_stream_t *)&w->ch.pipe, worker_on_shutdown) < 0)
		worker_kill(w);
	worker_arm(w);
}

/* Kill it now, for a reason of ours, and take no more calls. */
static void worker_abort(worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void worker_abort(worker *w, const char *fmt, ...)
{
	va_list ap;

	if (!w->why[0]) {
		va_start(ap, fmt);
		vsnprintf(w->why, sizeof(w->why), fmt, ap);
		va_end(ap);
	}
	if (w->state == WORKER_STARTING || w->state == WORKER_READY)
		w->state = WORKER_STOPPING;
	worker_kill(w);
}

static void req_answer(worker *w, worker_req *r, proto_err e, const char *msg, const char *res,
		       size_t len)
{
	uint16_t slot = (uint16_t)(r->id & 0xffff);

	w->slots[slot] = NULL;
	w->free_slots[w->n_free++] = slot;
	w->inflight--;
	list_unlink(&r->link);
	r->cb(r, e, msg, res, len, now_ns() - r->sent_ns);
}

/* Every call in flight gets e: the process that would answer is gone. */
static uint32_t answer_all(worker *w, proto_err e, const char *msg)
{
	uint32_t n = 0;
	worker_req *r;

	while ((r = oldest_call(w))) {
		req_answer(w, r, e, msg, NULL, 0);
		n++;
	}
	return n;
}

/* The start failed for a reason we know now: say so, fail what was queued
 * behind the hello, and end the process. */
static void worker_start_failed(worker *w, bool kill_now, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void worker_start_failed(worker *w, bool kill_now, const char *fmt, ...)
{
	char msg[sizeof(w->name) + sizeof(w->error) + 8];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->error, sizeof(w->error), fmt, ap);
	va_end(ap);
	w->failed_reported = true;
	if (kill_now) {
		worker_abort(w, "%s", w->error);
	} else if (w->state == WORKER_STARTING) {
		worker_shut(w);
	}
	log_warn("module %s: worker (pid %d) failed to start: %s", w->name, w->pid, w->error);
	snprintf(msg, sizeof(msg), "%s: %s", w->name, w->error);
	answer_all(w, PROTO_E_LOAD_FAILED, msg);
	if (w->opt.on_failed)
		w->opt.on_failed(w, w->error);
	worker_arm(w);
}

/* ---- daemon side: the end of a run -------------------------------------- */

static void worker_closed(worker *w)
{
	char reason[sizeof(w->reason)];
	worker_exit e = w->exit;

	free(w->slots);
	free(w->free_slots);
	w->slots = NULL;
	w->free_slots = NULL;
	msgpack_zone_destroy(&w->zone);
	wchan_free(&w->ch);
	w->pid = 0;
	w->state = WORKER_IDLE;
	/* on_exit may start the next run, which reuses w's buffers */
	memcpy(reason, w->reason, sizeof(reason));
	e.reason = reason;
	w->opt.on_exit(w, &e);
}

static void worker_on_close(uv_handle_t *h)
{
	worker *w = h->data;

	if (--w->handles == 0)
		worker_closed(w);
}

static void worker_on_pipe_close(uv_handle_t *h)
{
	worker *w = container_of(h, worker, ch.pipe);

	if (--w->handles == 0)
		worker_closed(w);
}

static void describe_exit(worker *w)
{
	const char *abbrev;

	if (w->term_signal) {
		abbrev = sigabbrev_np(w->term_signal);
		snprintf(w->reason, sizeof(w->reason), "killed by signal %d (SIG%s)", w->term_signal,
			 abbrev ? abbrev : "?");
	} else if (w->exit_status >= 0) {
		snprintf(w->reason, sizeof(w->reason), "exited with status %lld",
			 (long long)w->exit_status);
	} else {
		snprintf(w->reason, sizeof(w->reason), "never ran");
	}
}

static worker_end worker_end_of(const worker *w)
{
	if (!w->ready_seen)
		return w->stop_requested && !w->failed_reported ? WORKER_END_STOPPED
								 : WORKER_END_START_FAILED;
	if (w->stop_requested)
		return WORKER_END_STOPPED;
	return w->timed_out ? WORKER_END_TIMEOUT : WORKER_END_CRASHED;
}

/* Reaped and read to the end: answer what is left and close the handles. */
static void worker_finish(worker *w)
{
	char msg[sizeof(w->name) + sizeof(w->error) + sizeof(w->reason) + sizeof(w->why) + 64];
	worker_end end;
	uint32_t failed;

	if (w->state == WORKER_CLOSING || w->state == WORKER_IDLE)
		return;
	w->state = WORKER_CLOSING;
	describe_exit(w);
	end = worker_end_of(w);
	if (!w->ready_seen && !w->error[0])
		snprintf(w->error, sizeof(w->error), "worker %s before it was ready%s", w->reason,
			 end == WORKER_END_STOPPED ? " (stopping)" : "");
	if (end == WORKER_END_START_FAILED && !w->failed_reported) {
		w->failed_reported = true;
		log_warn("module %s: %s", w->name, w->error);
		if (w->opt.on_failed)
			w->opt.on_failed(w, w->error);
	}
	if (!w->ready_seen) {
		snprintf(msg, sizeof(msg), "%s: %s", w->name, w->error);
		failed = answer_all(w, PROTO_E_LOAD_FAILED, msg);
	} else {
		snprintf(msg, sizeof(msg), "%s: worker (pid %d) %s%s%s%s", w->name, w->pid,
			 w->reason, w->why[0] ? ": " : "", w->why,
			 w->stop_requested ? " (stopping)" : " while the call ran");
		failed = answer_all(w, PROTO_E_MODULE_CRASHED, msg);
	}
	if (end == WORKER_END_CRASHED || end == WORKER_END_TIMEOUT)
		log_warn("module %s: worker (pid %d) %s%s%s; %u call(s) answered module_crashed",
			 w->name, w->pid, w->reason, w->why[0] ? ": " : "", w->why, failed);
	else if (end == WORKER_END_STOPPED)
		log_debug("module %s: worker (pid %d) stopped: %s", w->name, w->pid, w->reason);

	w->exit.end = end;
	w->exit.exit_status = w->exit_status;
	w->exit.term_signal = w->term_signal;
	w->exit.calls_failed = failed;
	if (w->timer_armed)
		uv_timer_stop(&w->timer);
	uv_close((uv_handle_t *)&w->timer, worker_on_close);
	wchan_close(&w->ch, worker_on_pipe_close);
	if (w->proc_inited)
		uv_close((uv_handle_t *)&w->proc, worker_on_close);
}

static void worker_on_exit(uv_process_t *p, int64_t status, int sig)
{
	worker *w = p->data;

	w->exited = true;
	w->exit_status = status;
	w->term_signal = sig;
	if (w->eof) {
		worker_finish(w);
		return;
	}
	w->drain_deadline_ms = now_ms() + WORKER_DRAIN_MS;
	worker_arm(w);
}

static void worker_on_end(wchan *ch, int status)
{
	worker *w = container_of(ch, worker, ch);
	const char *what = status == 0		 ? "closed its channel"
			   : status == -EPROTO ? "sent a malformed or oversized message"
					       : uv_strerror(status);

	w->eof = true;
	if (w->exited) {
		worker_finish(w);
		return;
	}
	if (status == 0 && w->state == WORKER_STOPPING)
		return; /* it is finishing: the exit follows, or the stop deadline */
	if (w->state == WORKER_STARTING && !w->failed_reported)
		worker_start_failed(w, true, "worker %s before it was ready", what);
	else
		worker_abort(w, "%s", what);
}

static void worker_on_timer(uv_timer_t *t)
{
	worker *w = t->data;
	uint64_t now = now_ms();
	worker_req *r;

	w->timer_armed = false;
	if (w->exited && (w->eof || now >= w->drain_deadline_ms)) {
		w->eof = true;
		worker_finish(w);
		return;
	}
	if (w->state == WORKER_STARTING && w->start_deadline_ms && now >= w->start_deadline_ms) {
		worker_start_failed(w, true, "not ready within %llu ms",
				    (unsigned long long)w->opt.start_timeout_ms);
	} else if (w->state == WORKER_STOPPING && !w->exited && now >= w->stop_deadline_ms) {
		worker_kill(w);
	}
	/* Every call past its deadline is answered timeout; the worker that
	 * holds them is killed, its other calls end module_crashed. */
	while (w->state == WORKER_READY || w->timed_out) {
		char msg[WORKER_MSG_MAX];

		r = oldest_call(w);
		if (!r || !r->deadline_ms || now < r->deadline_ms)
			break;
		if (!w->timed_out) {
			w->timed_out = true;
			worker_abort(w, "%s ran past call_timeout (%llu ms)", r->op,
				     (unsigned long long)w->opt.call_timeout_ms);
		}
		snprintf(msg, sizeof(msg),
			 "%s.%s did not finish within %llu ms; its worker (pid %d) was killed",
			 w->name, r->op, (unsigned long long)w->opt.call_timeout_ms, w->pid);
		req_answer(w, r, PROTO_E_TIMEOUT, msg, NULL, 0);
	}
	if (w->state != WORKER_CLOSING && w->state != WORKER_IDLE)
		worker_arm(w);
}

/* ---- daemon side: answers ----------------------------------------------- */

static int worker_protocol_error(worker *w, const char *what)
{
	log_warn("module %s: worker (pid %d) broke the channel protocol: %s", w->name, w->pid,
		 what);
	if (w->state == WORKER_STARTING && !w->failed_reported)
		worker_start_failed(w, true, "worker broke the channel protocol: %s", what);
	else
		worker_abort(w, "broke the channel protocol: %s", what);
	return -EPROTO;
}

static char *zone_strdup(msgpack_zone *z, const msgpack_object *o)
{
	char *s;

	if (!o || o->type != MSGPACK_OBJECT_STR)
		return NULL;
	s = msgpack_zone_malloc(z, (size_t)o->via.str.size + 1);
	if (s) {
		memcpy(s, o->via.str.ptr, o->via.str.size);
		s[o->via.str.size] = '\0';
	}
	return s;
}

static bool obj_uint32(const msgpack_object *o, uint32_t *out)
{
	if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > UINT32_MAX)
		return false;
	*out = (uint32_t)o->via.u64;
	return true;
}

/* The descriptor the worker learned; everything checked, nothing trusted. */
static const char *parse_desc(worker *w, const msgpack_object *o, worker_desc *d)
{
	const msgpack_object *ops = mp_map_get(o, "ops"), *unread = mp_map_get(o, "unread");
	const char *empty = "";
	worker_op *wo;
	const char **names;

	memset(d, 0, sizeof(*d));
	if (o->type != MSGPACK_OBJECT_MAP || !ops || ops->type != MSGPACK_OBJECT_ARRAY ||
	    ops->via.array.size > WORKER_MAX_OPS || !unread ||
	    unread->type != MSGPACK_OBJECT_ARRAY || unread->via.array.size > WORKER_MAX_SETTINGS)
		return "descriptor map lacks ops or unread";
	d->version = zone_strdup(&w->zone, mp_map_get(o, "version"));
	d->description = zone_strdup(&w->zone, mp_map_get(o, "description"));
	d->version = d->version ? d->version : empty;
	d->description = d->description ? d->description : empty;
	wo = msgpack_zone_malloc(&w->zone, sizeof(*wo) * (ops->via.array.size + 1));
	names = msgpack_zone_malloc(&w->zone, sizeof(*names) * (unread->via.array.size + 1));
	if (!wo || !names)
		return "out of memory";
	for (uint32_t i = 0; i < ops->via.array.size; i++) {
		const msgpack_object *op = &ops->via.array.ptr[i];

		memset(&wo[i], 0, sizeof(wo[i]));
		wo[i].name = zone_strdup(&w->zone, mp_map_get(op, "name"));
		wo[i].doc = zone_strdup(&w->zone, mp_map_get(op, "doc"));
		if (!wo[i].name || !module_op_name_valid(wo[i].name) ||
		    !obj_uint32(mp_map_get(op, "flags"), &wo[i].flags) ||
		    !obj_uint32(mp_map_get(op, "cache_ttl_ms"), &wo[i].cache_ttl_ms) ||
		    !obj_uint32(mp_map_get(op, "blocking_above"), &wo[i].blocking_above))
			return "malformed op entry";
		wo[i].doc = wo[i].doc ? wo[i].doc : empty;
	}
	for (uint32_t i = 0; i < unread->via.array.size; i++) {
		names[i] = zone_strdup(&w->zone, &unread->via.array.ptr[i]);
		if (!names[i])
			return "malformed unread setting";
	}
	d->ops = wo;
	d->n_ops = ops->via.array.size;
	d->unread = names;
	d->n_unread = unread->via.array.size;
	return NULL;
}

static int worker_hello_answer(worker *w, proto_err e, const char *msg, const char *res,
			       size_t len)
{
	msgpack_object o;
	worker_desc d;
	const char *bad;
	size_t off = 0;
	uint64_t now;

	if (e != PROTO_OK) {
		worker_start_failed(w, false, "%s", msg);
		return 0;
	}
	if (len > WORKER_HELLO_ANSWER_MAX ||
	    msgpack_unpack(res, len, &off, &w->zone, &o) != MSGPACK_UNPACK_SUCCESS)
		return worker_protocol_error(w, "malformed descriptor");
	bad = parse_desc(w, &o, &d);
	if (bad)
		return worker_protocol_error(w, bad);

	w->state = WORKER_READY;
	w->ready_seen = true;
	w->ready_ns = now_ns();
	/* Calls queued during the start are timed from now on: the start had
	 * its own deadline. */
	now = now_ms();
	if (w->opt.call_timeout_ms)
		for (list_node *n = w->calls.next; n != &w->calls; n = n->next)
			container_of(n, worker_req, link)->deadline_ms = now + w->opt.call_timeout_ms;
	log_debug("module %s: worker (pid %d) ready in %llu us, %u ops", w->name, w->pid,
		 (unsigned long long)((w->ready_ns - w->spawned_ns) / 1000), d.n_ops);
	if (w->opt.on_ready)
		w->opt.on_ready(w, &d);
	if (w->state == WORKER_READY)
		worker_arm(w);
	return 0;
}

/* Copy an error message out of the channel buffer, cut at a character
 * boundary when it does not fit. */
static void copy_message(char *dst, size_t size, const msgpack_object *o)
{
	size_t n = o->via.str.size;

	if (n >= size) {
		n = size - 1;
		while (n > 0 && ((unsigned char)o->via.str.ptr[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(dst, o->via.str.ptr, n);
	dst[n] = '\0';
}

static int worker_on_msg(wchan *ch, const char *msg, size_t len)
{
	worker *w = container_of(ch, worker, ch);
	msgpack_object id, err;
	char text[WORKER_MSG_MAX];
	proto_err e = PROTO_OK;
	worker_req *r;
	size_t off = 2;
	uint16_t slot;
	int rc = 0;

	text[0] = '\0';
	/* Our worker packs every answer with proto_pack_response_*: a fixarray
	 * of 4 and the type as a positive fixint. */
	if (len < 5 || (unsigned char)msg[0] != 0x94 || msg[1] != PROTO_RESPONSE)
		return worker_protocol_error(w, "not an answer");
	if (msgpack_unpack(msg, len, &off, &w->zone, &id) != MSGPACK_UNPACK_EXTRA_BYTES ||
	    id.type != MSGPACK_OBJECT_POSITIVE_INTEGER || id.via.u64 > UINT32_MAX ||
	    msgpack_unpack(msg, len, &off, &w->zone, &err) != MSGPACK_UNPACK_EXTRA_BYTES)
		return worker_protocol_error(w, "malformed answer");
	if (err.type == MSGPACK_OBJECT_ARRAY && err.via.array.size == 2 &&
	    err.via.array.ptr[0].type == MSGPACK_OBJECT_STR &&
	    err.via.array.ptr[1].type == MSGPACK_OBJECT_STR) {
		e = proto_err_from_name(err.via.array.ptr[0].via.str.ptr,
					err.via.array.ptr[0].via.str.size);
		copy_message(text, sizeof(text), &err.via.array.ptr[1]);
	} else if (err.type != MSGPACK_OBJECT_NIL) {
		return worker_protocol_error(w, "malformed error in an answer");
	}

	if (id.via.u64 == WORKER_HELLO_ID) {
		if (w->hello_answered)
			return worker_protocol_error(w, "a second hello answer");
		w->hello_answered = true;
		/* a start given up meanwhile (stop, deadline) stays given up */
		if (w->state == WORKER_STARTING)
			rc = worker_hello_answer(w, e, text, msg + off, len - off);
		msgpack_zone_clear(&w->zone);
		return rc;
	}
	slot = (uint16_t)(id.via.u64 & 0xffff);
	r = slot < w->opt.max_inflight ? w->slots[slot] : NULL;
	if (!r || r->id != id.via.u64) {
		/* an answer to a call that timed out is expected while the kill
		 * is under way; anything else is a confused worker */
		if (w->timed_out)
			return 0;
		return worker_protocol_error(w, "an answer to no call");
	}
	msgpack_zone_clear(&w->zone);
	req_answer(w, r, e, text, e == PROTO_OK ? msg + off : NULL, e == PROTO_OK ? len - off : 0);
	return 0;
}

/* ---- daemon side: start, call, stop ------------------------------------- */

static int pack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
	return proto_pack_cstr(pk, k) < 0 || proto_pack_cstr(pk, v) < 0 ? -ENOMEM : 0;
}

static int pack_kv_uint(msgpack_packer *pk, const char *k, uint64_t v)
{
	return proto_pack_cstr(pk, k) < 0 || msgpack_pack_uint64(pk, v) != 0 ? -ENOMEM : 0;
}

static int pack_hello(worker *w, const worker_options *o)
{
	msgpack_packer *pk = &w->ch.pk;
	int r = 0;

	if (proto_pack_request(pk, WORKER_HELLO_ID, "lmms.hello", 10, 1) < 0 ||
	    msgpack_pack_map(pk, 10) != 0)
		return -ENOMEM;
	r |= pack_kv_str(pk, "path", o->module_path);
	r |= pack_kv_str(pk, "name", o->module_name);
	r |= proto_pack_cstr(pk, "settings") < 0 || msgpack_pack_map(pk, o->n_settings) != 0;
	for (uint32_t i = 0; i < o->n_settings; i++) {
		if (!o->settings[i].key || !o->settings[i].value)
			return -EINVAL;
		r |= pack_kv_str(pk, o->settings[i].key, o->settings[i].value);
	}
	r |= pack_kv_uint(pk, "log_level", o->log_level > 0 ? (uint64_t)o->log_level : 0);
	r |= pack_kv_uint(pk, "threads", o->threads);
	r |= pack_kv_uint(pk, "memory_max", o->memory_max);
	r |= pack_kv_uint(pk, "max_message_bytes", o->max_message_bytes);
	r |= pack_kv_uint(pk, "max_elements", o->max_elements);
	r |= pack_kv_uint(pk, "max_result_bytes", o->max_result_bytes);
	r |= pack_kv_uint(pk, "max_inflight", o->max_inflight);
	return r ? -ENOMEM : 0;
}

static int worker_spawn(worker *w, const worker_options *o, int fd)
{
	char fd_arg[16], ppid_arg[16], arg0[] = "lmmsd", mode[] = "--worker";
	char *args[] = { arg0, mode, fd_arg, ppid_arg, w->name, NULL };
	uv_stdio_container_t stdio[4];
	uv_process_options_t po;

	/* fd 0 becomes /dev/null (UV_IGNORE), 1 and 2 are the daemon's (the
	 * journal under systemd), the channel is fd 3; the worker closes
	 * everything else it might have inherited itself. */
	snprintf(fd_arg, sizeof(fd_arg), "%d", 3);
	snprintf(ppid_arg, sizeof(ppid_arg), "%d", (int)getpid());
	memset(stdio, 0, sizeof(stdio));
	stdio[0].flags = UV_IGNORE;
	stdio[1].flags = UV_INHERIT_FD;
	stdio[1].data.fd = STDOUT_FILENO;
	stdio[2].flags = UV_INHERIT_FD;
	stdio[2].data.fd = STDERR_FILENO;
	stdio[3].flags = UV_INHERIT_FD;
	stdio[3].data.fd = fd;
	memset(&po, 0, sizeof(po));
	po.exit_cb = worker_on_exit;
	po.file = o->exe;
	po.args = args;
	po.stdio = stdio;
	po.stdio_count = 4;
	w->proc_inited = true; /* uv_spawn initializes the handle even when it fails */
	w->handles++;
	w->proc.data = w;
	return uv_spawn(w->loop, &w->proc, &po);
}

int worker_start(worker *w, const worker_options *opt)
{
	uv_loop_t *loop = w->loop;
	void *data = w->data;
	int sv[2], r;

	if (w->state != WORKER_IDLE)
		return -EBUSY;
	if (!opt || !opt->exe || !opt->module_path || !opt->module_name || !opt->on_exit ||
	    opt->max_inflight == 0 || opt->max_inflight > WORKER_MAX_INFLIGHT ||
	    opt->n_settings > WORKER_MAX_SETTINGS || (opt->n_settings && !opt->settings) ||
	    strlen(opt->module_name) >= sizeof(w->name))
		return -EINVAL;

	worker_init(w, loop);
	w->data = data;
	w->opt = *opt;
	w->opt.settings = NULL; /* packed into the hello below; not kept */
	w->opt.n_settings = 0;
	snprintf(w->name, sizeof(w->name), "%s", opt->module_name);
	w->opt.module_name = w->name;
	w->opt.exe = w->opt.module_path = NULL;
	w->slots = calloc(opt->max_inflight, sizeof(*w->slots));
	w->free_slots = calloc(opt->max_inflight, sizeof(*w->free_slots));
	if (!w->slots || !w->free_slots || !msgpack_zone_init(&w->zone, 2048)) {
		free(w->slots);
		free(w->free_slots);
		worker_init(w, loop);
		w->data = data;
		return -ENOMEM;
	}
	/* popped from the end: slot 0 goes first */
	for (uint32_t i = 0; i < opt->max_inflight; i++)
		w->free_slots[i] = (uint16_t)(opt->max_inflight - 1 - i);
	w->n_free = opt->max_inflight;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		free(w->slots);
		free(w->free_slots);
		msgpack_zone_destroy(&w->zone);
		worker_init(w, loop);
		w->data = data;
		return r;
	}
	/* From here every failure goes through the callbacks: handles exist. */
	w->state = WORKER_STARTING;
	uv_timer_init(loop, &w->timer);
	w->timer.data = w;
	w->handles++;
	r = wchan_open(&w->ch, loop, sv[0], worker_on_msg, worker_on_end);
	w->handles++;
	if (r < 0) {
		close(sv[0]); /* not taken over by the pipe */
	} else {
		w->ch.limits.max_message_bytes = opt->max_result_bytes + WORKER_ANSWER_SLACK;
		/* Results are bounded in bytes by the worker; the daemon never
		 * unpacks them (they go to clients as they are), so elements and
		 * string sizes need no bound of their own here. */
		w->ch.limits.max_elements = w->ch.limits.max_message_bytes;
		w->ch.limits.max_str_bytes = w->ch.limits.max_message_bytes;
		r = pack_hello(w, opt);
	}
	if (r == 0) {
		r = worker_spawn(w, opt, sv[1]);
		if (r < 0)
			snprintf(w->error, sizeof(w->error), "cannot run %s: %s", opt->exe,
				 uv_strerror(r));
	} else {
		snprintf(w->error, sizeof(w->error), "cannot set up the channel: %s",
			 r > -4096 ? uv_strerror(r) : "error");
	}
	close(sv[1]);
	w->spawned_ns = now_ns();
	if (r < 0) {
		/* Nothing ran: report it from the loop, not from inside this call. */
		w->exited = true;
		w->exit_status = -1;
		w->drain_deadline_ms = now_ms();
		worker_arm(w);
		return 0;
	}
	w->pid = w->proc.pid;
	if (opt->start_timeout_ms)
		w->start_deadline_ms = now_ms() + opt->start_timeout_ms;
	r = wchan_read_start(&w->ch);
	if (r == 0)
		r = wchan_flush(&w->ch);
	if (r < 0) {
		snprintf(w->error, sizeof(w->error), "cannot talk to the worker: %s",
			 uv_strerror(r));
		worker_abort(w, "%s", w->error);
	}
	log_debug("module %s: worker (pid %d) spawned", w->name, w->pid);
	worker_arm(w);
	return 0;
}

/* A params array header: its element count and its length in bytes. */
static int params_header(const char *p, size_t len, uint32_t *n, size_t *hdr)
{
	const unsigned char *b = (const unsigned char *)p;

	if (!p || len == 0)
		return -EINVAL;
	if ((b[0] & 0xf0) == 0x90) {
		*n = b[0] & 0x0f;
		*hdr = 1;
	} else if (b[0] == 0xdc && len >= 3) {
		*n = (uint32_t)b[1] << 8 | b[2];
		*hdr = 3;
	} else if (b[0] == 0xdd && len >= 5) {
		*n = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4];
		*hdr = 5;
	} else {
		return -EINVAL;
	}
	return 0;
}

int worker_call(worker *w, worker_req *req, const char *op, size_t op_len, const char *params,
		size_t params_len, worker_call_cb cb)
{
	size_t unsent, before, hdr;
	uint16_t slot;
	uint32_t n;

	if (w->state != WORKER_STARTING && w->state != WORKER_READY)
		return -ENOTCONN;
	if (!req || !cb || !op || op_len == 0 || op_len >= sizeof(req->op) ||
	    params_header(params, params_len, &n, &hdr) < 0)
		return -EINVAL;
	if (params_len > w->opt.max_message_bytes)
		return -E2BIG;
	unsent = wchan_unsent(&w->ch);
	if (w->inflight >= w->opt.max_inflight ||
	    (unsent && unsent + params_len + op_len > w->opt.max_buffered_bytes))
		return -EBUSY;

	slot = w->free_slots[w->n_free - 1];
	req->id = (uint32_t)++w->gen << 16 | slot;
	before = w->ch.out.size;
	if (proto_pack_request(&w->ch.pk, req->id, op, op_len, n) < 0 ||
	    msgpack_sbuffer_write(&w->ch.out, params + hdr, params_len - hdr) != 0) {
		w->ch.out.size = before;
		return -ENOMEM;
	}
	w->n_free--;
	w->slots[slot] = req;
	w->inflight++;
	req->w = w;
	req->cb = cb;
	memcpy(req->op, op, op_len);
	req->op[op_len] = '\0';
	req->sent_ns = now_ns();
	req->deadline_ms = w->state == WORKER_READY && w->opt.call_timeout_ms
				   ? req->sent_ns / 1000000u + w->opt.call_timeout_ms
				   : 0;
	list_push_front(&w->calls, &req->link);
	/* A failed write shows as the channel's end: the call is answered then. */
	(void)wchan_flush(&w->ch);
	if (req->deadline_ms)
		worker_arm(w);
	return 0;
}

int worker_stop(worker *w)
{
	if (w->state == WORKER_STARTING || w->state == WORKER_READY) {
		w->stop_requested = true;
		worker_shut(w);
	} else if (w->state == WORKER_STOPPING) {
		w->stop_requested = true;
	}
	return 0;
}

/* ---- crash accounting --------------------------------------------------- */

uint32_t worker_crashes_recent(const worker_crashes *c, const worker_crash_policy *p,
			       uint64_t now)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < c->n; i++)
		if (now - c->at[i] < p->window_ms)
			n++;
	return n;
}

uint32_t worker_crashes_record(worker_crashes *c, const worker_crash_policy *p, uint64_t now)
{
	bool quiet = worker_crashes_recent(c, p, now) == 0;

	c->at[c->next] = now;
	c->next = (c->next + 1) % WORKER_CRASHES_MAX;
	if (c->n < WORKER_CRASHES_MAX)
		c->n++;
	c->total++;
	if (quiet || !c->backoff_ms)
		c->backoff_ms = p->backoff_ms;
	else if (c->backoff_ms < p->backoff_max_ms / 2)
		c->backoff_ms *= 2;
	else
		c->backoff_ms = p->backoff_max_ms;
	if (c->backoff_ms > p->backoff_max_ms)
		c->backoff_ms = p->backoff_max_ms;
	c->retry_at_ms = now + c->backoff_ms;
	return worker_crashes_recent(c, p, now);
}

void worker_crashes_forgive(worker_crashes *c)
{
	uint64_t total = c->total;

	memset(c, 0, sizeof(*c));
	c->total = total;
}
