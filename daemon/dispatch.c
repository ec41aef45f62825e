/*
 * dispatch.c - route a request: ZAFP fast path, built-ins, result cache,
 * LIGS registry (loading on first use), then run the op inline or on the
 * thread pool, record heat, store in the cache, stamp last use and reply.
 *
 * Requests are read straight from the wire bytes when they have the common
 * encoding (proto_request_peek): the method is never copied and only the
 * params are unpacked, and only when the op is actually run. Anything else
 * takes the general path through msgpack_unpack and proto_msg_parse, which
 * also produces the error replies.
 */
#include "dispatch.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin.h"
#include "call.h"
#include "log.h"
#include "util.h"

#define EXPIRE_INTERVAL_MS 250

/* A call for the thread pool. Owns a copy of its params. */
typedef struct work_req {
	sched_job job;
	list_node link; /* dispatch.calls */
	uint64_t started_ms;
	bool answered; /* the client already got "timeout" */
	bool loaded; /* its module was loaded for it */
	dispatch *dp;
	conn *c;
	op_info *op;
	lmms_op_fn fn; /* captured on the loop thread while holding a ref */
	void *mstate;
	uint32_t msgid;
	bool notify;
	int rc;
	uint64_t ns;
	lmms_call call; /* set up by work_run, on the pool thread */
	msgpack_zone zone;
	bool zone_open;
	msgpack_object params;
	size_t max_result_bytes;
	uint32_t max_depth;
	size_t params_len;
	char params_bytes[];
} work_req;

const char *dispatch_path_name(dispatch_path p)
{
	static const char *const names[] = {
		[PATH_FAST] = "fast_path", [PATH_CACHE] = "cache_hit", [PATH_INLINE] = "inline",
		[PATH_POOL] = "pool",	   [PATH_WORKER] = "worker",   [PATH_BUILTIN] = "builtin",
	};
	return (unsigned)p < ARRAY_SIZE(names) ? names[p] : "unknown";
}

/* ---- replies shared by every path ---- */

void dispatch_reply_error(dispatch *dp, conn *c, uint32_t msgid, bool notify, proto_err e,
			  const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	dp->st.errors_total++;
	if (notify)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conn_reply_error(c, msgid, e, "%s", msg);
}

static void emit_method(dispatch *dp, const conn *c, const char *method, uint32_t len,
			dispatch_path path, bool loaded, uint64_t ns, size_t bytes, proto_err e)
{
	dispatch_event ev = {
		.c = c,
		.method = method,
		.method_len = len,
		.path = path,
		.loaded = loaded,
		.ns = ns,
		.result_bytes = bytes,
		.error = e,
	};

	dp->on_event(dp->ud_event, &ev);
}

static void emit(dispatch *dp, const conn *c, const op_info *op, dispatch_path path, bool loaded,
		 uint64_t ns, size_t bytes, proto_err e)
{
	emit_method(dp, c, op->method, op->method_len, path, loaded, ns, bytes, e);
}

/* An error answered before any op ran (no such module, a failed load, ...):
 * a finished call too, for lmms.monitor. */
static void reply_error(dispatch *dp, conn *c, const proto_request *r, proto_err e,
			const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void reply_error(dispatch *dp, conn *c, const proto_request *r, proto_err e,
			const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dispatch_reply_error(dp, c, r->msgid, r->notify, e, "%s", msg);
	if (dp->on_event)
		emit_method(dp, c, r->method, r->method_len,
			    r->method_len > 5 && memcmp(r->method, "lmms.", 5) == 0 ? PATH_BUILTIN
										 : PATH_INLINE,
			    false, 0, 0, e);
}

static uint64_t op_ttl_ms(const dispatch *dp, const op_info *op)
{
	return op->cache_ttl_ms ? op->cache_ttl_ms : dp->cfg->cache.default_ttl_ms;
}

/*
 * Whose cached results may answer c: its own uid's unless the op's module is
 * shared (cache.scope, [module NAME] cache_scope). Per uid by default, so the
 * cache cannot tell one user what another computed, through the answer or
 * through its speed.
 */
static uint32_t cache_scope_of(const conn *c, const op_info *op)
{
	return op->mod->cache_scope == CACHE_SCOPE_SHARED ? CACHE_SHARED : (uint32_t)c->uid;
}

static void cache_store(dispatch *dp, const conn *c, op_info *op, const char *params,
			size_t plen, const char *val, size_t vlen, uint64_t ttl, bool negative,
			uint64_t now)
{
	if (!dp->cfg->cache.max_bytes || !ttl)
		return;
	if (cache_put(dp->cache, op, cache_scope_of(c, op), params, plen, val, vlen, ttl, negative,
		      now) == 0 &&
	    dp->on_cache_stored)
		dp->on_cache_stored(dp->ud, now + ttl);
}

/* After an op returned: reply (unless the caller is gone), record heat,
 * cache, stamp last use. */
static proto_err call_complete(dispatch *dp, conn *c, bool gone, op_info *op, uint32_t msgid,
			       bool notify, lmms_call *call, int rc, uint64_t ns, uint32_t weight,
			       const char *params, size_t plen)
{
	uint64_t now = uv_now(dp->loop);
	const char *msg = NULL;
	proto_err e = call_finish(call, rc, &msg);

	module_touch(op->mod, now);
	heat_record_weighted(dp->heat, op, ns, weight, now);
	if (e == PROTO_OK) {
		if (!notify && !gone)
			conn_reply_raw(c, msgid, call->out.data, call->out.size);
		if (op->flags & LMMS_OP_PURE)
			cache_store(dp, c, op, params, plen, call->out.data, call->out.size,
				    op_ttl_ms(dp, op), false, now);
	} else {
		op->heat.errors++;
		if (!gone)
			dispatch_reply_error(dp, c, msgid, notify, e, "%s", msg);
		else
			dp->st.errors_total++;
		if (e == PROTO_E_MODULE_ERROR && (op->flags & LMMS_OP_PURE))
			cache_store(dp, c, op, params, plen, msg, strlen(msg),
				    dp->cfg->cache.negative_ttl_ms, true, now);
	}
	return e;
}

static int params_unpack(msgpack_zone *z, const char *params, size_t plen, msgpack_object *out)
{
	size_t off = 0;

	if (msgpack_unpack(params, plen, &off, z, out) != MSGPACK_UNPACK_SUCCESS ||
	    out->type != MSGPACK_OBJECT_ARRAY)
		return -EBADMSG;
	return 0;
}

/* ---- thread pool ---- */

/*
 * server.call_timeout: answer "timeout" to BLOCKING calls running too long.
 * The op runs on (a worker thread cannot be cancelled safely) and keeps its
 * module ref and its in-flight slot, so a client cannot pile up hung work
 * past max_inflight and the module cannot be unloaded under it; its result
 * is dropped when it finally comes.
 */
static void dispatch_on_expire(uv_timer_t *t)
{
	dispatch *dp = t->data;
	uint64_t limit = dp->cfg->server.call_timeout_ms;
	uint64_t now = uv_now(dp->loop);

	if (!limit)
		return;
	/* oldest first; stop at the first call still within its time */
	for (list_node *n = dp->calls.prev; n != &dp->calls; n = n->prev) {
		work_req *wr = container_of(n, work_req, link);

		if (now - wr->started_ms < limit)
			break;
		if (wr->answered)
			continue;
		wr->answered = true;
		/* not started yet: it never will (its done answers nothing more) */
		if (!sched_job_started_ms(dp->sched, &wr->job))
			sched_cancel(dp->sched, &wr->job);
		if (wr->c->closing)
			continue;
		dispatch_reply_error(dp, wr->c, wr->msgid, wr->notify, PROTO_E_TIMEOUT,
				     "%s did not finish within %llu ms (it runs on; its result will be dropped)",
				     wr->op->method, (unsigned long long)limit);
		conn_flush(wr->c);
	}
}

void dispatch_config_changed(dispatch *dp)
{
	if (!dp->expire_open)
		return;
	if (dp->cfg->server.call_timeout_ms)
		uv_timer_start(&dp->expire_timer, dispatch_on_expire, EXPIRE_INTERVAL_MS,
			       EXPIRE_INTERVAL_MS);
	else
		uv_timer_stop(&dp->expire_timer);
}

/*
 * On a pool thread. The params are unpacked here, not when the call is
 * queued: a queued call then holds only its wire bytes (what the per-uid
 * budget counts), not also their unpacked objects, which take up to 24
 * bytes for each byte of a small element.
 */
static void work_run(sched_job *j)
{
	work_req *wr = container_of(j, work_req, job);
	uint64_t t0 = now_ns();

	msgpack_zone_init(&wr->zone, 1024);
	wr->zone_open = true;
	call_init(&wr->call, NULL, wr->max_result_bytes, wr->op->mod->name);
	wr->call.settings = &wr->op->mod->settings;
	if (params_unpack(&wr->zone, wr->params_bytes, wr->params_len, &wr->params) < 0) {
		wr->rc = call_host.fail(&wr->call, LMMS_FAIL_MODULE, "out of memory for params");
		return;
	}
	call_init(&wr->call, &wr->params, wr->max_result_bytes, wr->op->mod->name);
	wr->call.settings = &wr->op->mod->settings;
	call_set_wire(&wr->call, wr->params_bytes, wr->params_len, wr->max_depth);
	wr->rc = wr->fn(&call_host, &wr->call, wr->mstate);
	wr->ns = now_ns() - t0;
}

static void work_free(work_req *wr)
{
	call_fini(&wr->call);
	if (wr->zone_open)
		msgpack_zone_destroy(&wr->zone);
	module_unref(wr->op->mod);
	free(wr);
}

/* After the scheduler handed the call back (never inside sched_submit), so
 * the connection may resume processing here. */
static void work_finish(work_req *wr)
{
	conn *c = wr->c;

	work_free(wr);
	conn_request_done(c);
}

static void work_done(sched_job *j, int status)
{
	work_req *wr = container_of(j, work_req, job);
	dispatch *dp = wr->dp;
	conn *c = wr->c;
	bool gone = c->closing || wr->answered;
	proto_err e;

	list_unlink(&wr->link);
	if (status == -ECANCELED) {
		/* never ran: its connection closed, its time ran out, or we stop */
		if (!gone)
			dispatch_reply_error(dp, c, wr->msgid, wr->notify, PROTO_E_SHUTTING_DOWN,
					     "lmmsd is shutting down");
		work_finish(wr);
		return;
	}
	e = call_complete(dp, c, gone, wr->op, wr->msgid, wr->notify, &wr->call, wr->rc, wr->ns, 1,
			  wr->params_bytes, wr->params_len);
	if (dp->on_event)
		emit(dp, c, wr->op, PATH_POOL, wr->loaded, wr->ns,
		     e == PROTO_OK ? wr->call.out.size : 0, e);
	work_finish(wr);
}

static void run_blocking(dispatch *dp, conn *c, const proto_request *r, op_info *op, bool loaded)
{
	module *m = op->mod;
	work_req *wr;
	int rc;

	wr = malloc(sizeof(*wr) + r->params_len);
	if (!wr) {
		reply_error(dp, c, r, PROTO_E_INTERNAL, "out of memory");
		return;
	}
	memset(wr, 0, sizeof(*wr));
	memcpy(wr->params_bytes, r->params, r->params_len);
	wr->params_len = r->params_len;
	wr->max_result_bytes = dp->cfg->server.max_result_bytes;
	wr->max_depth = dp->cfg->server.max_depth;
	wr->dp = dp;
	wr->c = c;
	wr->op = op;
	wr->fn = op->fn;
	wr->mstate = m->mstate;
	wr->msgid = r->msgid;
	wr->notify = r->notify;
	wr->loaded = loaded;

	module_ref(m);
	wr->started_ms = uv_now(dp->loop);
	module_touch(m, wr->started_ms);
	rc = sched_submit(dp->sched, &wr->job, c->uid, c, sizeof(*wr) + r->params_len, work_run,
			  work_done);
	if (rc < 0) {
		if (rc == -EBUSY)
			reply_error(dp, c, r, PROTO_E_BUSY,
				    "uid %u has %u calls queued or running (server.max_calls_per_uid)",
				    (unsigned)c->uid, dp->cfg->server.max_calls_per_uid);
		else if (rc == -ENOBUFS)
			reply_error(dp, c, r, PROTO_E_BUSY,
				    "uid %u holds server.max_queued_bytes_per_uid in queued calls",
				    (unsigned)c->uid);
		else if (rc == -ESHUTDOWN)
			reply_error(dp, c, r, PROTO_E_SHUTTING_DOWN, "lmmsd is shutting down");
		else
			reply_error(dp, c, r, PROTO_E_INTERNAL, "cannot queue work: %s",
				    strerror(-rc));
		work_free(wr);
		return;
	}
	conn_request_begin(c);
	op->heat.pool_calls++;
	dp->st.pool_calls++;
	list_push_front(&dp->calls, &wr->link);
}

/*
 * Run an op on the loop thread. ZAFP critical ops skip what measurably
 * costs without deciding anything about the answer (heat.c has the
 * numbers): their result buffer is reused instead of malloc'd and freed per
 * call, and only one call in HEAT_SAMPLE_EVERY is timed. Errors, too_large
 * and caching are the same on both.
 */
static void run_inline(dispatch *dp, conn *c, const proto_request *r, op_info *op,
		       dispatch_path path, bool loaded)
{
	bool critical = op->heat.level == HEAT_CRITICAL && op->heat.fp;
	bool timed = !critical || heat_sample_now(&op->heat) || dp->on_event;
	module *m = op->mod;
	msgpack_object params;
	lmms_call call;
	uint64_t t0 = 0, ns = 0;
	proto_err e;
	int rc;

	if (params_unpack(&dp->zone, r->params, r->params_len, &params) < 0) {
		msgpack_zone_clear(&dp->zone);
		reply_error(dp, c, r, PROTO_E_BAD_REQUEST, "params must be an array");
		return;
	}
	call_init(&call, &params, dp->cfg->server.max_result_bytes, m->name);
	call.settings = &m->settings;
	call_set_wire(&call, r->params, r->params_len, dp->cfg->server.max_depth);
	if (critical)
		heat_result_buf_take(dp->heat, &call.out.data, &call.out.alloc);
	module_ref(m);
	if (timed)
		t0 = now_ns();
	rc = op->fn(&call_host, &call, m->mstate);
	if (timed)
		ns = now_ns() - t0;
	e = call_complete(dp, c, false, op, r->msgid, r->notify, &call, rc, ns,
			  !timed ? 0 : critical ? HEAT_SAMPLE_EVERY : 1, r->params, r->params_len);
	if (dp->on_event)
		emit(dp, c, op, path, loaded, ns, e == PROTO_OK ? call.out.size : 0, e);
	if (critical) {
		heat_result_buf_give(dp->heat, call.out.data, call.out.alloc);
		memset(&call.out, 0, sizeof(call.out));
	}
	call_fini(&call);
	msgpack_zone_clear(&dp->zone);
	module_unref(m);
}

/* ---- isolated modules: the call goes to the module's worker ---- */

/* A call sent to a worker. Keeps the method and params for the cache key. */
typedef struct wcall {
	worker_req req;
	dispatch *dp;
	conn *c;
	module *m;
	uint32_t msgid;
	bool notify, loaded;
	uint32_t method_len;
	size_t params_len;
	char data[]; /* method, then params */
} wcall;

static void wcall_done(worker_req *req, proto_err e, const char *msg, const char *result,
		       size_t len, uint64_t ns)
{
	wcall *wc = container_of(req, wcall, req);
	dispatch *dp = wc->dp;
	conn *c = wc->c;
	const char *params = wc->data + wc->method_len;
	/* learned by now if the worker had to start first */
	op_info *op = registry_find_op(dp->reg, wc->data, wc->method_len);
	uint64_t now = uv_now(dp->loop);

	module_touch(wc->m, now);
	if (e == PROTO_OK) {
		if (!wc->notify && !c->closing)
			conn_reply_raw(c, wc->msgid, result, len);
		if (op && (op->flags & LMMS_OP_PURE))
			cache_store(dp, c, op, params, wc->params_len, result, len, op_ttl_ms(dp, op),
				    false, now);
	} else {
		if (!c->closing)
			dispatch_reply_error(dp, c, wc->msgid, wc->notify, e, "%s", msg);
		else
			dp->st.errors_total++;
		if (op) {
			op->heat.errors++;
			if (e == PROTO_E_MODULE_ERROR && (op->flags & LMMS_OP_PURE))
				cache_store(dp, c, op, params, wc->params_len, msg, strlen(msg),
					    dp->cfg->cache.negative_ttl_ms, true, now);
		}
	}
	if (op)
		heat_record_weighted(dp->heat, op, ns, 1, now);
	if (dp->on_event)
		emit_method(dp, c, wc->data, wc->method_len, PATH_WORKER, wc->loaded, ns,
			    e == PROTO_OK ? len : 0, e);
	module_unref(wc->m);
	free(wc);
	conn_request_done(c);
}

static void run_worker(dispatch *dp, conn *c, const proto_request *r, module *m, bool loaded)
{
	size_t mlen = m->name_len + 1;
	wcall *wc = malloc(sizeof(*wc) + r->method_len + r->params_len);
	int rc;

	if (!wc) {
		reply_error(dp, c, r, PROTO_E_INTERNAL, "out of memory");
		return;
	}
	memset(wc, 0, sizeof(*wc));
	wc->dp = dp;
	wc->c = c;
	wc->m = m;
	wc->msgid = r->msgid;
	wc->notify = r->notify;
	wc->loaded = loaded;
	wc->method_len = r->method_len;
	wc->params_len = r->params_len;
	memcpy(wc->data, r->method, r->method_len);
	memcpy(wc->data + r->method_len, r->params, r->params_len);
	rc = worker_call(m->w, &wc->req, r->method + mlen, r->method_len - mlen, r->params,
			 r->params_len, wcall_done);
	if (rc < 0) {
		free(wc);
		if (rc == -EBUSY)
			reply_error(dp, c, r, PROTO_E_BUSY, "module %s: its worker has too much queued",
				    m->name);
		else if (rc == -E2BIG)
			reply_error(dp, c, r, PROTO_E_TOO_LARGE, "params too large for module %s",
				    m->name);
		else
			reply_error(dp, c, r, PROTO_E_BUSY, "module %s: its worker is stopping (%s)",
				    m->name, strerror(-rc));
		return;
	}
	module_ref(m);
	module_touch(m, uv_now(dp->loop));
	conn_request_begin(c);
}

static void run_op(dispatch *dp, conn *c, const proto_request *r, op_info *op, dispatch_path path,
		   bool loaded)
{
	if (op->mod->isolation == ISOLATION_PROCESS && op->mod->w) {
		run_worker(dp, c, r, op->mod, loaded);
		return;
	}
	if ((op->flags & LMMS_OP_BLOCKING) ||
	    (op->blocking_above && r->params_len > op->blocking_above))
		run_blocking(dp, c, r, op, loaded);
	else
		run_inline(dp, c, r, op, path, loaded);
}

/* ---- routing ---- */

static void dispatch_builtin(dispatch *dp, conn *c, const proto_request *r)
{
	msgpack_object params;

	if (params_unpack(&dp->zone, r->params, r->params_len, &params) < 0)
		reply_error(dp, c, r, PROTO_E_BAD_REQUEST, "params must be an array");
	else
		builtin_call(dp->builtin, c, r, &params);
	msgpack_zone_clear(&dp->zone);
}

/* The op for r's method, loading its module if the ops are not known yet.
 * NULL after an error reply. */
static op_info *dispatch_resolve(dispatch *dp, conn *c, const proto_request *r, bool *loaded,
				 module **starting)
{
	const char *mod, *opn;
	size_t mod_len, op_len;
	op_info *op;
	module *m;

	op = registry_find_op(dp->reg, r->method, r->method_len);
	if (op)
		return op;
	if (proto_method_split(r->method, r->method_len, &mod, &mod_len, &opn, &op_len) < 0) {
		reply_error(dp, c, r, PROTO_E_BAD_REQUEST, "invalid method name \"%.*s\"",
			    (int)(r->method_len > 80 ? 80 : r->method_len), r->method);
		return NULL;
	}
	m = registry_find(dp->reg, mod, mod_len);
	if (!m) {
		reply_error(dp, c, r, PROTO_E_NO_SUCH_MODULE, "no module \"%.*s\" in %s",
			    (int)mod_len, mod, dp->reg->dir);
		return NULL;
	}
	if (!m->ops_known) {
		int rc = registry_load(dp->reg, m);

		if (rc == -EINPROGRESS) {
			/* an isolated module's worker starts: it answers, ops or not */
			*starting = m;
			return NULL;
		}
		if (rc < 0) {
			reply_error(dp, c, r, PROTO_E_LOAD_FAILED, "%s: %s", m->name, m->error);
			return NULL;
		}
		*loaded = true;
		op = registry_find_op(dp->reg, r->method, r->method_len);
	}
	if (!op)
		reply_error(dp, c, r, PROTO_E_NO_SUCH_METHOD, "module %s has no operation \"%.*s\"",
			    m->name, (int)op_len, opn);
	return op;
}

/* Answer r from the cache if it holds a live entry. */
static bool dispatch_cache(dispatch *dp, conn *c, const proto_request *r, op_info *op,
			   uint64_t now)
{
	cache_entry *ce = cache_get(dp->cache, op->method, op->method_len, cache_scope_of(c, op),
				    r->params, r->params_len, now);

	if (!ce)
		return false;
	if (ce->negative)
		dispatch_reply_error(dp, c, r->msgid, r->notify, PROTO_E_MODULE_ERROR, "%.*s",
				     (int)ce->val_len, cache_entry_value(ce));
	else if (!r->notify)
		conn_reply_raw(c, r->msgid, cache_entry_value(ce), ce->val_len);
	if (dp->on_event)
		emit(dp, c, op, PATH_CACHE, false, 0, ce->negative ? 0 : ce->val_len,
		     ce->negative ? PROTO_E_MODULE_ERROR : PROTO_OK);
	return true;
}

static void dispatch_request(dispatch *dp, conn *c, const proto_request *r)
{
	uint64_t now = uv_now(dp->loop);
	module *starting = NULL;
	bool loaded = false;
	fastpath *fp;
	op_info *op;
	module *m;
	int rc;

	if (r->notify)
		dp->st.notifications_total++;
	else
		dp->st.requests_total++;

	if (dp->shutting_down) {
		reply_error(dp, c, r, PROTO_E_SHUTTING_DOWN, "lmmsd is shutting down");
		return;
	}

	/* ZAFP: an entry exists only while its module is callable (entries
	 * are dropped before any unload starts), so no check is needed. A hot
	 * PURE op still answers from the cache first: a hit is cheaper than
	 * any call. */
	fp = heat_lookup(dp->heat, r->method, r->method_len, now);
	if (fp) {
		op = fp->op;
		if ((op->flags & LMMS_OP_PURE) && dispatch_cache(dp, c, r, op, now))
			return;
		run_op(dp, c, r, op, PATH_FAST, false);
		return;
	}

	if (r->method_len > 5 && memcmp(r->method, "lmms.", 5) == 0) {
		dispatch_builtin(dp, c, r);
		return;
	}

	op = dispatch_resolve(dp, c, r, &loaded, &starting);
	if (!op) {
		if (starting)
			run_worker(dp, c, r, starting, true);
		return;
	}
	m = op->mod;
	if (op->gone) {
		reply_error(dp, c, r, PROTO_E_NO_SUCH_METHOD, "module %s no longer has \"%s\"",
			    m->name, op->name);
		return;
	}

	/* The cache comes before the load: a hit never maps the module. */
	if ((op->flags & LMMS_OP_PURE) && dispatch_cache(dp, c, r, op, now))
		return;

	if (!module_callable(m)) {
		rc = registry_load(dp->reg, m);
		if (rc == -EINPROGRESS) {
			run_worker(dp, c, r, m, true);
			return;
		}
		if (rc < 0) {
			if (rc == -EBUSY)
				reply_error(dp, c, r, PROTO_E_BUSY, "module %s is being unloaded",
					    m->name);
			else
				reply_error(dp, c, r, PROTO_E_LOAD_FAILED, "%s: %s", m->name,
					    m->error);
			return;
		}
		loaded = true;
	}
	if (!op->fn && m->isolation != ISOLATION_PROCESS) {
		reply_error(dp, c, r, PROTO_E_NO_SUCH_METHOD, "module %s no longer has \"%s\"",
			    m->name, op->name);
		return;
	}
	run_op(dp, c, r, op, PATH_INLINE, loaded);
}

int dispatch_on_message(void *ud, conn *c, const char *msg, size_t len)
{
	dispatch *dp = ud;
	msgpack_object obj;
	const char *reason = NULL;
	proto_request r;
	proto_msg pm;
	size_t off = 0;
	proto_err e;

	if (proto_request_peek(msg, len, &r)) {
		dispatch_request(dp, c, &r);
		return 0;
	}

	/* General path: unusual encodings, responses, and every malformed shape. */
	if (msgpack_unpack(msg, len, &off, &dp->zone, &obj) != MSGPACK_UNPACK_SUCCESS) {
		msgpack_zone_clear(&dp->zone);
		dp->st.errors_total++;
		return -EBADMSG;
	}
	e = proto_msg_parse(&obj, &pm, &reason);
	if (e != PROTO_OK) {
		msgpack_zone_clear(&dp->zone);
		if (pm.type == PROTO_REQUEST)
			dispatch_reply_error(dp, c, pm.msgid, false, e, "%s",
					     reason ? reason : "bad request");
		else
			dp->st.errors_total++;
		log_info("connection %llu: %s", (unsigned long long)c->id,
			 reason ? reason : "bad request");
		return -EBADMSG;
	}
	if (pm.type == PROTO_RESPONSE) {
		/* Clients have nothing to answer; ignore rather than punish. */
		msgpack_zone_clear(&dp->zone);
		return 0;
	}
	r.msgid = pm.msgid;
	r.notify = pm.type == PROTO_NOTIFICATION;
	r.method = pm.method;
	r.method_len = pm.method_len;
	/* params is the last element: its bytes run to the end of the message */
	if (pm.method < msg || pm.method + pm.method_len > msg + len) {
		msgpack_zone_clear(&dp->zone);
		dispatch_reply_error(dp, c, pm.msgid, false, PROTO_E_INTERNAL,
				     "cannot locate params");
		return -EBADMSG;
	}
	r.params = pm.method + pm.method_len;
	r.params_len = (size_t)(msg + len - r.params);
	msgpack_zone_clear(&dp->zone);
	dispatch_request(dp, c, &r);
	return 0;
}

/* Work a closed connection queued is cancelled before it starts: nobody
 * waits for its answer. */
void dispatch_on_close(void *ud, conn *c)
{
	dispatch *dp = ud;

	if (dp->sched)
		sched_cancel_group(dp->sched, c);
}

int dispatch_init(dispatch *dp, uv_loop_t *loop, const config *cfg, registry *reg, heat *ht,
		  cache *ch, struct builtin *bi, sched *sc)
{
	int r;

	memset(dp, 0, sizeof(*dp));
	list_init(&dp->calls);
	dp->loop = loop;
	dp->cfg = cfg;
	dp->reg = reg;
	dp->heat = ht;
	dp->cache = ch;
	dp->builtin = bi;
	dp->sched = sc;
	if (!msgpack_zone_init(&dp->zone, 2048))
		return -ENOMEM;
	dp->zone_open = true;
	r = uv_timer_init(loop, &dp->expire_timer);
	if (r < 0)
		return r;
	dp->expire_open = true;
	dp->expire_timer.data = dp;
	uv_unref((uv_handle_t *)&dp->expire_timer);
	dispatch_config_changed(dp);
	return 0;
}

void dispatch_stop(dispatch *dp)
{
	dp->shutting_down = true;
}

uint32_t dispatch_pool_in_flight(const dispatch *dp)
{
	uint32_t n = 0;

	for (const list_node *i = dp->calls.next; i != &dp->calls; i = i->next)
		n++;
	return n;
}

void dispatch_fini(dispatch *dp)
{
	if (dp->expire_open) {
		dp->expire_open = false;
		uv_close((uv_handle_t *)&dp->expire_timer, NULL);
	}
	if (dp->zone_open) {
		dp->zone_open = false;
		msgpack_zone_destroy(&dp->zone);
	}
}
