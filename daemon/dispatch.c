/*
 * dispatch.c - route a request: ZAFP fast path, built-ins, result cache,
 * LIGS registry (loading on first use), then run the op inline or on the
 * thread pool, record heat, store in the cache, stamp last use and reply.
 *
 * Requests are read straight from the wire bytes when they have the common
 * encoding ([0, uint msgid, str method, params], fixarray header): the method
 * is never copied and only the params are unpacked, and only when the op is
 * actually run. Anything else takes the general path through msgpack_unpack
 * and proto_msg_parse, which also produces the error replies.
 */
#include "dispatch.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "daemon.h"
#include "log.h"
#include "util.h"

typedef struct request {
	uint32_t msgid;
	bool notify;
	const char *method;
	uint32_t method_len;
	const char *params; /* msgpack array bytes inside the message */
	size_t params_len;
} request;

/* A call running on the thread pool. Owns a copy of its params. */
typedef struct work_req {
	uv_work_t work;
	list_node link; /* lmmsd.calls, oldest last */
	uint64_t started_ms;
	bool answered; /* the client already got "timeout" */
	lmmsd *d;
	conn *c;
	op_info *op;
	lmms_op_fn fn; /* captured on the loop thread while holding a ref */
	void *mstate;
	uint32_t msgid;
	bool notify;
	int rc;
	uint64_t ns;
	lmms_call call;
	msgpack_zone zone;
	msgpack_object params;
	size_t params_len;
	char params_bytes[];
} work_req;

/* ---- wire peeking ---- */

static bool peek_uint32(const unsigned char **pp, const unsigned char *end, uint32_t *out)
{
	const unsigned char *p = *pp;

	if (p >= end)
		return false;
	if (*p <= 0x7f) {
		*out = *p;
		*pp = p + 1;
		return true;
	}
	if (*p == 0xcc && end - p >= 2) {
		*out = p[1];
		*pp = p + 2;
		return true;
	}
	if (*p == 0xcd && end - p >= 3) {
		*out = (uint32_t)p[1] << 8 | p[2];
		*pp = p + 3;
		return true;
	}
	if (*p == 0xce && end - p >= 5) {
		*out = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
		*pp = p + 5;
		return true;
	}
	return false;
}

static bool peek_str(const unsigned char **pp, const unsigned char *end, const char **s,
		     uint32_t *n)
{
	const unsigned char *p = *pp;
	uint32_t len;

	if (p >= end)
		return false;
	if ((*p & 0xe0) == 0xa0) {
		len = *p & 0x1f;
		p += 1;
	} else if (*p == 0xd9 && end - p >= 2) {
		len = p[1];
		p += 2;
	} else if (*p == 0xda && end - p >= 3) {
		len = (uint32_t)p[1] << 8 | p[2];
		p += 3;
	} else {
		return false;
	}
	if ((size_t)(end - p) < len)
		return false;
	*s = (const char *)p;
	*n = len;
	*pp = p + len;
	return true;
}

static bool is_array_header(unsigned char b)
{
	return (b & 0xf0) == 0x90 || b == 0xdc || b == 0xdd;
}

/* The common encoding of a request or notification, without unpacking. */
static bool request_peek(const char *msg, size_t len, request *r)
{
	const unsigned char *p = (const unsigned char *)msg, *end = p + len;

	if (len < 4)
		return false;
	if (p[0] == 0x94 && p[1] == 0x00) {
		p += 2;
		if (!peek_uint32(&p, end, &r->msgid))
			return false;
		r->notify = false;
	} else if (p[0] == 0x93 && p[1] == 0x02) {
		p += 2;
		r->msgid = 0;
		r->notify = true;
	} else {
		return false;
	}
	if (!peek_str(&p, end, &r->method, &r->method_len) || p >= end || !is_array_header(*p))
		return false;
	r->params = (const char *)p;
	r->params_len = (size_t)(end - p);
	return true;
}

/* ---- replies shared by every path ---- */

static void reply_error(lmmsd *d, conn *c, const request *r, proto_err e, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void reply_error(lmmsd *d, conn *c, const request *r, proto_err e, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (r->notify) {
		d->st.errors_total++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conn_reply_error(c, r->msgid, e, "%s", msg);
}

static uint64_t op_ttl_ms(const lmmsd *d, const op_info *op)
{
	return op->cache_ttl_ms ? op->cache_ttl_ms : d->cfg.cache.default_ttl_ms;
}

/* After an op returned: reply, record heat, cache, stamp last use. */
static void call_complete(lmmsd *d, conn *c, op_info *op, uint32_t msgid, bool notify,
			  lmms_call *call, int rc, uint64_t ns, uint32_t weight, const char *params,
			  size_t plen)
{
	module *m = op->mod;
	uint64_t now = now_ms();
	const char *msg = NULL;
	proto_err e = call_finish(call, rc, &msg);

	m->last_used_ms = now;
	heat_record_weighted(&d->heat, op, ns, weight, now);
	if (e == PROTO_OK) {
		if (!notify && c)
			conn_reply_raw(c, msgid, call->out.data, call->out.size);
		if ((op->flags & LMMS_OP_PURE) && d->cfg.cache.max_bytes &&
		    cache_put(&d->cache, op, params, plen, call->out.data, call->out.size,
			      op_ttl_ms(d, op), false, now) == 0)
			lmmsd_cache_stored(d, now + op_ttl_ms(d, op));
	} else {
		if (!notify && c)
			conn_reply_error(c, msgid, e, "%s", msg);
		else
			d->st.errors_total++;
		if (e == PROTO_E_MODULE_ERROR && (op->flags & LMMS_OP_PURE) &&
		    d->cfg.cache.negative_ttl_ms && d->cfg.cache.max_bytes &&
		    cache_put(&d->cache, op, params, plen, msg, strlen(msg),
			      d->cfg.cache.negative_ttl_ms, true, now) == 0)
			lmmsd_cache_stored(d, now + d->cfg.cache.negative_ttl_ms);
	}
}

static void op_release(lmmsd *d, module *m)
{
	if (--m->refs == 0)
		lugs_module_released(d, m);
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
void dispatch_expire_calls(lmmsd *d, uint64_t now)
{
	uint64_t limit = d->cfg.server.call_timeout_ms;

	if (!limit)
		return;
	/* oldest first; stop at the first call still within its time */
	for (list_node *n = d->calls.prev; n != &d->calls; n = n->prev) {
		work_req *wr = container_of(n, work_req, link);

		if (now - wr->started_ms < limit)
			break;
		if (wr->answered)
			continue;
		wr->answered = true;
		if (wr->notify || wr->c->closing)
			continue;
		conn_reply_error(wr->c, wr->msgid, PROTO_E_TIMEOUT,
				 "%s did not finish within %llu ms (it runs on; its result will be dropped)",
				 wr->op->method, (unsigned long long)limit);
		conn_flush(wr->c);
	}
}

static void work_run(uv_work_t *w)
{
	work_req *wr = container_of(w, work_req, work);
	uint64_t t0 = now_ns();

	wr->rc = wr->fn(&call_host, &wr->call, wr->mstate);
	wr->ns = now_ns() - t0;
}

static void work_done(uv_work_t *w, int status)
{
	work_req *wr = container_of(w, work_req, work);
	lmmsd *d = wr->d;
	conn *c = wr->c;

	(void)status; /* work is never cancelled: shutdown waits for it */
	list_unlink(&wr->link);
	call_complete(d, c->closing || wr->answered ? NULL : c, wr->op, wr->msgid, wr->notify,
		      &wr->call, wr->rc, wr->ns, 1, wr->params_bytes, wr->params_len);
	call_fini(&wr->call);
	msgpack_zone_destroy(&wr->zone);
	op_release(d, wr->op->mod);
	free(wr);
	conn_request_done(c);
	conn_unref(c);
}

static void run_blocking(lmmsd *d, conn *c, const request *r, op_info *op)
{
	module *m = op->mod;
	work_req *wr;

	wr = malloc(sizeof(*wr) + r->params_len);
	if (!wr) {
		reply_error(d, c, r, PROTO_E_INTERNAL, "out of memory");
		return;
	}
	memset(wr, 0, sizeof(*wr));
	memcpy(wr->params_bytes, r->params, r->params_len);
	wr->params_len = r->params_len;
	msgpack_zone_init(&wr->zone, 1024);
	if (params_unpack(&wr->zone, wr->params_bytes, wr->params_len, &wr->params) < 0) {
		msgpack_zone_destroy(&wr->zone);
		free(wr);
		reply_error(d, c, r, PROTO_E_BAD_REQUEST, "params must be an array");
		return;
	}
	wr->d = d;
	wr->c = c;
	wr->op = op;
	wr->fn = op->fn;
	wr->mstate = m->mstate;
	wr->msgid = r->msgid;
	wr->notify = r->notify;
	call_init(&wr->call, &wr->params, d->cfg.server.max_result_bytes, m->name);

	m->refs++;
	m->last_used_ms = wr->started_ms = now_ms();
	op->heat.pool_calls++;
	conn_ref(c);
	c->inflight++;
	list_push_front(&d->calls, &wr->link);
	if (uv_queue_work(d->loop, &wr->work, work_run, work_done) < 0) {
		list_unlink(&wr->link);
		c->inflight--;
		conn_unref(c);
		op_release(d, m);
		call_fini(&wr->call);
		msgpack_zone_destroy(&wr->zone);
		free(wr);
		reply_error(d, c, r, PROTO_E_INTERNAL, "cannot queue work");
	}
}

/*
 * Run an op on the loop thread. ZAFP critical ops skip what measurably
 * costs without deciding anything about the answer (heat.c has the
 * numbers): their result buffer is reused instead of malloc'd and freed per
 * call, and only one call in HEAT_SAMPLE_EVERY is timed. Errors, too_large
 * and caching are the same on both.
 */
static void run_inline(lmmsd *d, conn *c, const request *r, op_info *op, bool critical)
{
	module *m = op->mod;
	bool timed = !critical || heat_sample_now(&op->heat);
	msgpack_object params;
	lmms_call call;
	uint64_t t0 = 0, ns = 0;
	int rc;

	if (params_unpack(&c->zone, r->params, r->params_len, &params) < 0) {
		msgpack_zone_clear(&c->zone);
		reply_error(d, c, r, PROTO_E_BAD_REQUEST, "params must be an array");
		return;
	}
	call_init(&call, &params, d->cfg.server.max_result_bytes, m->name);
	if (critical)
		heat_result_buf_take(&d->heat, &call.out.data, &call.out.alloc);
	m->refs++;
	if (timed)
		t0 = now_ns();
	rc = op->fn(&call_host, &call, m->mstate);
	if (timed)
		ns = now_ns() - t0;
	call_complete(d, c, op, r->msgid, r->notify, &call, rc, ns,
		      !timed ? 0 : critical ? HEAT_SAMPLE_EVERY : 1, r->params, r->params_len);
	if (critical) {
		heat_result_buf_give(&d->heat, call.out.data, call.out.alloc);
		memset(&call.out, 0, sizeof(call.out));
	}
	call_fini(&call);
	msgpack_zone_clear(&c->zone);
	op_release(d, m);
}

static void run_op(lmmsd *d, conn *c, const request *r, op_info *op)
{
	if ((op->flags & LMMS_OP_BLOCKING) ||
	    (op->blocking_above && r->params_len > op->blocking_above))
		run_blocking(d, c, r, op);
	else
		run_inline(d, c, r, op, op->heat.level == HEAT_CRITICAL && op->heat.fp);
}

/* ---- routing ---- */

static void dispatch_builtin(lmmsd *d, conn *c, const request *r)
{
	msgpack_object params;

	if (params_unpack(&c->zone, r->params, r->params_len, &params) < 0) {
		reply_error(d, c, r, PROTO_E_BAD_REQUEST, "params must be an array");
	} else {
		builtin_call(d, c, r->msgid, r->notify, r->method + 5, r->method_len - 5, &params);
	}
	msgpack_zone_clear(&c->zone);
}

/* The op for r's method, loading its module if the ops are not known yet.
 * NULL after an error reply. */
static op_info *dispatch_resolve(lmmsd *d, conn *c, const request *r)
{
	const char *mod, *opn;
	size_t mod_len, op_len;
	op_info *op;
	module *m;
	int rc;

	op = registry_find_op(&d->reg, r->method, r->method_len);
	if (op)
		return op;
	if (proto_method_split(r->method, r->method_len, &mod, &mod_len, &opn, &op_len) < 0) {
		reply_error(d, c, r, PROTO_E_BAD_REQUEST, "invalid method name \"%.*s\"",
			    (int)(r->method_len > 80 ? 80 : r->method_len), r->method);
		return NULL;
	}
	m = registry_find(&d->reg, mod, mod_len);
	if (!m) {
		reply_error(d, c, r, PROTO_E_NO_SUCH_MODULE, "no module \"%.*s\" in %s",
			    (int)mod_len, mod, d->reg.dir);
		return NULL;
	}
	if (!m->ops_known) {
		rc = registry_load(&d->reg, m);
		if (rc < 0) {
			reply_error(d, c, r, PROTO_E_LOAD_FAILED, "%s: %s", m->name, m->error);
			return NULL;
		}
		op = registry_find_op(&d->reg, r->method, r->method_len);
	}
	if (!op)
		reply_error(d, c, r, PROTO_E_NO_SUCH_METHOD, "module %s has no operation \"%.*s\"",
			    m->name, (int)op_len, opn);
	return op;
}

/* Answer r from the cache if it holds a live entry. */
static bool dispatch_cache(lmmsd *d, conn *c, const request *r, op_info *op, uint64_t now)
{
	cache_entry *ce = cache_get(&d->cache, op->method, op->method_len, r->params,
				    r->params_len, now);

	if (!ce)
		return false;
	if (ce->negative)
		reply_error(d, c, r, PROTO_E_MODULE_ERROR, "%.*s", (int)ce->val_len,
			    cache_entry_value(ce));
	else if (!r->notify)
		conn_reply_raw(c, r->msgid, cache_entry_value(ce), ce->val_len);
	return true;
}

static void dispatch_request(lmmsd *d, conn *c, const request *r)
{
	uint64_t now = now_ms();
	fastpath *fp;
	op_info *op;
	module *m;
	int rc;

	if (r->notify)
		d->st.notifications_total++;
	else
		d->st.requests_total++;

	if (d->shutting_down) {
		reply_error(d, c, r, PROTO_E_SHUTTING_DOWN, "lmmsd is shutting down");
		return;
	}

	/* ZAFP: an entry exists only while its module is callable (entries
	 * are dropped before any unload starts), so no check is needed. A hot
	 * PURE op still answers from the cache first: a hit is cheaper than
	 * any call. */
	fp = heat_lookup(&d->heat, r->method, r->method_len, now);
	if (fp) {
		op = fp->op;
		if ((op->flags & LMMS_OP_PURE) && dispatch_cache(d, c, r, op, now))
			return;
		run_op(d, c, r, op);
		return;
	}

	if (r->method_len > 5 && memcmp(r->method, "lmms.", 5) == 0) {
		dispatch_builtin(d, c, r);
		return;
	}

	op = dispatch_resolve(d, c, r);
	if (!op)
		return;
	m = op->mod;
	if (op->gone) {
		reply_error(d, c, r, PROTO_E_NO_SUCH_METHOD, "module %s no longer has \"%s\"",
			    m->name, op->name);
		return;
	}

	/* The cache comes before the load: a hit never maps the module. */
	if ((op->flags & LMMS_OP_PURE) && dispatch_cache(d, c, r, op, now))
		return;

	rc = registry_load(&d->reg, m);
	if (rc < 0) {
		if (rc == -EBUSY)
			reply_error(d, c, r, PROTO_E_BUSY, "module %s is being unloaded", m->name);
		else
			reply_error(d, c, r, PROTO_E_LOAD_FAILED, "%s: %s", m->name, m->error);
		return;
	}
	if (!op->fn) {
		reply_error(d, c, r, PROTO_E_NO_SUCH_METHOD, "module %s no longer has \"%s\"",
			    m->name, op->name);
		return;
	}
	run_op(d, c, r, op);
}

int dispatch_message(lmmsd *d, conn *c, const char *msg, size_t len)
{
	msgpack_object obj;
	const char *reason = NULL;
	proto_msg pm;
	request r;
	size_t off = 0;
	proto_err e;

	if (request_peek(msg, len, &r)) {
		dispatch_request(d, c, &r);
		return 0;
	}

	/* General path: unusual encodings, responses, and every malformed shape. */
	if (msgpack_unpack(msg, len, &off, &c->zone, &obj) != MSGPACK_UNPACK_SUCCESS) {
		msgpack_zone_clear(&c->zone);
		d->st.errors_total++;
		return -EBADMSG;
	}
	e = proto_msg_parse(&obj, &pm, &reason);
	if (e != PROTO_OK) {
		msgpack_zone_clear(&c->zone);
		if (pm.type == PROTO_REQUEST)
			conn_reply_error(c, pm.msgid, e, "%s", reason ? reason : "bad request");
		else
			d->st.errors_total++;
		log_info("connection %llu: %s", (unsigned long long)c->id,
			 reason ? reason : "bad request");
		return -EBADMSG;
	}
	if (pm.type == PROTO_RESPONSE) {
		/* Clients have nothing to answer; ignore rather than punish. */
		msgpack_zone_clear(&c->zone);
		return 0;
	}
	r.msgid = pm.msgid;
	r.notify = pm.type == PROTO_NOTIFICATION;
	r.method = pm.method;
	r.method_len = pm.method_len;
	/* params is the last element: its bytes run to the end of the message */
	if (pm.method < msg || pm.method + pm.method_len > msg + len) {
		msgpack_zone_clear(&c->zone);
		conn_reply_error(c, pm.msgid, PROTO_E_INTERNAL, "cannot locate params");
		return -EBADMSG;
	}
	r.params = pm.method + pm.method_len;
	r.params_len = (size_t)(msg + len - r.params);
	msgpack_zone_clear(&c->zone);
	dispatch_request(d, c, &r);
	return 0;
}
