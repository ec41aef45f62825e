/*
 * builtin.c - the built-in "lmms" interface (DESIGN.md §2) as a method
 * table: ping, stats, modules, ops, config, and the admin methods load,
 * unload, invalidate and reload. Part of the daemon; never unloaded, never
 * cached.
 */
#include "builtin.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "stats.h"
#include "util.h"

#define NAME_SHOWN_MAX 64

static proto_err fail(char *err, size_t n, proto_err code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static proto_err fail(char *err, size_t n, proto_err code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
	return code;
}

static bool arg_str(const msgpack_object *params, uint32_t i, const char **s, size_t *n)
{
	const msgpack_object *o;

	if (params->via.array.size <= i)
		return false;
	o = &params->via.array.ptr[i];
	if (o->type != MSGPACK_OBJECT_STR)
		return false;
	*s = o->via.str.ptr;
	*n = o->via.str.size;
	return true;
}

static int shown(size_t len)
{
	return (int)(len > NAME_SHOWN_MAX ? NAME_SHOWN_MAX : len);
}

/* ---- the maps ---- */

static void pack_stats(lmmsd *d, reply *out)
{
	stats_snapshot s;

	registry_list(&d->reg);
	stats_collect(d, &s);
	reply_map_begin(out);
	for (int i = 0; i < STAT_MAX; i++) {
		if (stat_defs[i].is_signed)
			reply_kv_i64(out, stat_defs[i].name, s.v[i]);
		else
			reply_kv_u64(out, stat_defs[i].name, (uint64_t)s.v[i]);
	}
	reply_map_end(out);
}

/* One line saying why m is in its state, for lmms.modules and lmmsctl's WHY. */
static void module_why(const lmmsd *d, const module *m, uint64_t now, char *buf, size_t n)
{
	uint64_t idle = m->last_used_ms && now > m->last_used_ms ? now - m->last_used_ms : 0;

	buf[0] = '\0';
	switch (m->state) {
	case MOD_PINNED:
		snprintf(buf, n, "pinned by %s", m->pinned_by[0] ? m->pinned_by : "glibc");
		return;
	case MOD_FAILED:
		snprintf(buf, n, "failed: %s", m->error);
		return;
	case MOD_UNLOADED:
		if (m->unloads)
			snprintf(buf, n, "unloaded by %s", m->unload_trigger[0] ? m->unload_trigger : "request");
		return;
	case MOD_LOADED:
		break;
	}
	if (d->eager)
		snprintf(buf, n, "eager: never unloaded");
	else if (m->refs)
		snprintf(buf, n, "in use: %u calls running", m->refs);
	else if (m->policy == POLICY_CORE)
		snprintf(buf, n, "policy core: never unloaded");
	else if (m->hot_ops)
		snprintf(buf, n, "hot: %u ops on the fast path", m->hot_ops);
	else if (d->cfg.lugs.keep_while_cached && m->cache_deps)
		snprintf(buf, n, "cached: %u results depend on it", m->cache_deps);
	else if (m->policy != POLICY_FEATURE && idle < module_grace_ms(m))
		snprintf(buf, n, "grace: idle %llus of %llus", (unsigned long long)(idle / 1000),
			 (unsigned long long)(module_grace_ms(m) / 1000));
	else if (d->reg.n_resident <= d->cfg.lugs.min_resident)
		snprintf(buf, n, "min_resident: %u modules kept", d->cfg.lugs.min_resident);
	else
		snprintf(buf, n, "idle: unloaded at the next sweep");
}

static void pack_module(lmmsd *d, reply *out, const module *m)
{
	uint64_t now = uv_now(d->loop);
	char why[320];

	reply_map_begin(out);
	reply_kv_str(out, "name", m->name);
	reply_kv_str(out, "state", module_state_name(m->state));
	reply_kv_str(out, "policy", policy_name(m->policy));
	reply_kv_bool(out, "protected", lugs_protected(&d->lugs, m));
	reply_kv_u64(out, "refs", m->refs);
	reply_kv_u64(out, "loads", m->loads);
	reply_kv_u64(out, "unloads", m->unloads);
	reply_kv_u64(out, "idle_ms",
		     m->last_used_ms && now > m->last_used_ms ? now - m->last_used_ms : 0);
	reply_kv_u64(out, "cache_deps", m->cache_deps);
	/* an isolated module's is its worker's, read now: it grows with use */
	reply_kv_i64(out, "resident_bytes",
		     !module_resident(m) ? 0 : m->w ? worker_rss_bytes(m->w) : m->resident_bytes);
	reply_kv_i64(out, "reclaimed_bytes", m->reclaimed_bytes);
	reply_kv_u64(out, "ops", m->n_ops);
	reply_kv_u64(out, "hot_ops", m->hot_ops);
	reply_kv_str(out, "version", m->version && module_resident(m) ? m->version : "");
	reply_kv_u64(out, "load_failures", m->load_failures);
	reply_kv_str(out, "error", m->error);
	reply_kv_str(out, "pinned_by", m->pinned_by);
	reply_str(out, "blocked");
	reply_map_begin(out);
	for (int i = 0; i < LUGS_CHECK_MAX; i++)
		reply_kv_u64(out, lugs_check_name(i), m->blocked[i]);
	reply_map_end(out);
	reply_kv_u64(out, "retry_in_ms",
		     m->state == MOD_FAILED && m->retry_at_ms > now ? m->retry_at_ms - now : 0);
	reply_kv_str(out, "isolation", m->isolation == ISOLATION_PROCESS ? "process" : "inproc");
	reply_kv_i64(out, "pid", m->pid);
	reply_kv_u64(out, "grace_ms", module_grace_ms(m));
	reply_kv_u64(out, "crashes", m->crashes);
	reply_kv_str(out, "description", m->description ? m->description : "");
	module_why(d, m, now, why, sizeof(why));
	reply_kv_str(out, "why", why);
	reply_map_end(out);
}

static void pack_op(lmmsd *d, reply *out, const op_info *op)
{
	const op_heat *h = &op->heat;

	reply_map_begin(out);
	reply_kv_str(out, "method", op->method);
	reply_kv_u64(out, "calls", h->calls);
	reply_kv_str(out, "heat", heat_level_name(h->level));
	reply_kv_bool(out, "fast_path", h->fp != NULL);
	reply_kv_u64(out, "avg_us", h->calls ? h->total_ns / h->calls / 1000 : 0);
	reply_kv_u64(out, "p50_us", heat_percentile_us(h, 50));
	reply_kv_u64(out, "p99_us", heat_percentile_us(h, 99));
	reply_kv_u64(out, "cache_ttl_ms",
		     (op->flags & LMMS_OP_PURE)
			     ? (op->cache_ttl_ms ? op->cache_ttl_ms : d->cfg.cache.default_ttl_ms)
			     : 0);
	reply_kv_bool(out, "blocking", op->flags & LMMS_OP_BLOCKING);
	reply_kv_u64(out, "blocking_above", op->blocking_above);
	reply_kv_u64(out, "pool_calls", h->pool_calls);
	reply_kv_bool(out, "pure", op->flags & LMMS_OP_PURE);
	reply_kv_u64(out, "heat_count", h->count);
	reply_kv_u64(out, "last_call_ms_ago",
		     h->last_call_ms ? uv_now(d->loop) - h->last_call_ms : 0);
	reply_kv_str(out, "doc", op->doc ? op->doc : "");
	reply_kv_u64(out, "errors", h->errors);
	reply_map_end(out);
}

static void config_pack_one(void *ud, const char *section, const char *key, const char *value)
{
	char k[256];

	snprintf(k, sizeof(k), "%s.%s", section, key);
	reply_kv_str(ud, k, value);
}

/* ---- the methods ---- */

static proto_err m_ping(lmmsd *d, conn *c, const msgpack_object *p, reply *out, char *err,
			size_t n)
{
	reply_str(out, "pong");
	return PROTO_OK;
}

static proto_err m_stats(lmmsd *d, conn *c, const msgpack_object *p, reply *out, char *err,
			 size_t n)
{
	pack_stats(d, out);
	return PROTO_OK;
}

static proto_err m_modules(lmmsd *d, conn *c, const msgpack_object *p, reply *out, char *err,
			   size_t n)
{
	registry_list(&d->reg);
	reply_array_begin(out);
	for (uint32_t i = 0; i < d->reg.n_mods; i++)
		pack_module(d, out, d->reg.mods[i]);
	reply_array_end(out);
	return PROTO_OK;
}

static proto_err m_ops(lmmsd *d, conn *c, const msgpack_object *p, reply *out, char *err,
		       size_t n)
{
	reply_array_begin(out);
	for (uint32_t i = 0; i < d->reg.n_mods; i++)
		for (uint32_t j = 0; j < d->reg.mods[i]->n_ops; j++)
			if (!d->reg.mods[i]->ops[j]->gone)
				pack_op(d, out, d->reg.mods[i]->ops[j]);
	reply_array_end(out);
	return PROTO_OK;
}

static proto_err m_config(lmmsd *d, conn *c, const msgpack_object *p, reply *out, char *err,
			  size_t n)
{
	reply_map_begin(out);
	config_visit(&d->cfg, config_pack_one, out);
	reply_map_end(out);
	return PROTO_OK;
}

static proto_err find_module(lmmsd *d, const msgpack_object *p, module **m, const char *usage,
			     char *err, size_t n)
{
	const char *name;
	size_t len;

	if (!arg_str(p, 0, &name, &len))
		return fail(err, n, PROTO_E_BAD_PARAMS, "%s", usage);
	*m = registry_find(&d->reg, name, len);
	if (!*m)
		return fail(err, n, PROTO_E_NO_SUCH_MODULE, "no module \"%.*s\"", shown(len), name);
	return PROTO_OK;
}

static proto_err m_load(lmmsd *d, conn *c, const msgpack_object *p, reply *out, char *err,
			size_t n)
{
	proto_err e;
	module *m;
	int r;

	e = find_module(d, p, &m, "lmms.load takes [name]", err, n);
	if (e != PROTO_OK)
		return e;
	log_info("admin uid %u (pid %d): lmms.load %s", (unsigned)c->uid, (int)c->pid, m->name);
	/* an administrator's load ends a failed module's backoff, a
	 * quarantine included: it is asked for, so it is tried now */
	registry_forgive(&d->reg, m);
	r = registry_load(&d->reg, m);
	if (r == -EBUSY)
		return fail(err, n, PROTO_E_BUSY, "module %s is being unloaded", m->name);
	if (r < 0 && r != -EINPROGRESS)
		return fail(err, n, PROTO_E_LOAD_FAILED, "%s: %s", m->name, m->error);
	module_touch(m, uv_now(d->loop));
	pack_module(d, out, m);
	return PROTO_OK;
}

static const char *unload_refusal(lugs_check which)
{
	switch (which) {
	case LUGS_REFS:
		return "operations in flight";
	case LUGS_PROTECTED:
		return "protected (policy core or hot ops)";
	case LUGS_CACHED:
		return "live cache entries depend on it";
	case LUGS_GRACE:
		return "used within the grace period";
	default:
		return "at the minimum of resident modules";
	}
}

static proto_err m_unload(lmmsd *d, conn *c, const msgpack_object *p, reply *out, char *err,
			  size_t n)
{
	lugs_check which = LUGS_REFS;
	const char *reason = NULL;
	bool force = false;
	proto_err e;
	module *m;
	int r;

	if (p->via.array.size == 2) {
		const msgpack_object *f = &p->via.array.ptr[1];

		if (p->via.array.ptr[0].type != MSGPACK_OBJECT_STR)
			return fail(err, n, PROTO_E_BAD_PARAMS, "lmms.unload takes [name] or [name, true]");
		if (f->type != MSGPACK_OBJECT_BOOLEAN)
			return fail(err, n, PROTO_E_BAD_PARAMS, "lmms.unload: second param must be a bool");
		force = f->via.boolean;
	}
	e = find_module(d, p, &m, "lmms.unload takes [name] or [name, true]", err, n);
	if (e != PROTO_OK)
		return e;
	if (d->eager)
		return fail(err, n, PROTO_E_BUSY, "eager mode: modules are never unloaded");
	module_set_trigger(m, "admin uid %u%s", (unsigned)c->uid, force ? " (now)" : "");
	r = lugs_try_unload(&d->lugs, m, force, &which, &reason);
	if (r == -EBUSY && m->state == MOD_PINNED)
		return fail(err, n, PROTO_E_BUSY, "%s: pinned by %s, it stays mapped whatever dlclose does",
			    lugs_check_name(which), m->pinned_by[0] ? m->pinned_by : "glibc");
	if (r == -EBUSY)
		return fail(err, n, PROTO_E_BUSY, "%s: %s", lugs_check_name(which),
			    reason ? reason : unload_refusal(which));
	reply_bool(out, true);
	return PROTO_OK;
}

static proto_err m_invalidate(lmmsd *d, conn *c, const msgpack_object *p, reply *out, char *err,
			      size_t n)
{
	const char *name;
	size_t len;
	uint32_t dropped;

	if (p->via.array.size == 0) {
		dropped = cache_invalidate(&d->cache, NULL, NULL);
	} else if (!arg_str(p, 0, &name, &len)) {
		return fail(err, n, PROTO_E_BAD_PARAMS, "lmms.invalidate: argument must be a string");
	} else if (len && memchr(name, '.', len)) {
		op_info *op = registry_find_op(&d->reg, name, len);

		dropped = op ? cache_invalidate(&d->cache, NULL, op) : 0;
	} else {
		module *m = registry_find(&d->reg, name, len);

		if (!m)
			return fail(err, n, PROTO_E_NO_SUCH_MODULE, "no module \"%.*s\"", shown(len),
				    name);
		dropped = cache_invalidate(&d->cache, m, NULL);
	}
	log_info("admin uid %u (pid %d): lmms.invalidate dropped %u cache entries", (unsigned)c->uid,
		 (int)c->pid, dropped);
	reply_u64(out, dropped);
	return PROTO_OK;
}

static proto_err m_reload(lmmsd *d, conn *c, const msgpack_object *p, reply *out, char *err,
			  size_t n)
{
	char msg[512];

	log_info("admin uid %u (pid %d): lmms.reload", (unsigned)c->uid, (int)c->pid);
	if (lmmsd_reload(d, msg, sizeof(msg)) < 0)
		return fail(err, n, PROTO_E_BAD_PARAMS, "reload refused, old configuration kept: %s",
			    msg);
	reply_bool(out, true);
	return PROTO_OK;
}

static proto_err m_metrics(lmmsd *d, conn *c, const msgpack_object *p, reply *out, char *err,
			   size_t n)
{
	bbuf text = { 0 };
	int r = metrics_render(d, &text);

	if (r == 0)
		reply_strn(out, text.data, text.len);
	bbuf_free(&text);
	return r == 0 ? PROTO_OK : fail(err, n, PROTO_E_INTERNAL, "out of memory");
}

static proto_err m_trim(lmmsd *d, conn *c, const msgpack_object *p, reply *out, char *err,
			size_t n)
{
	lmmsd_trim_result t;
	char trigger[64];

	snprintf(trigger, sizeof(trigger), "lmms.trim (admin uid %u)", (unsigned)c->uid);
	lmmsd_trim(d, trigger, &t);
	reply_map_begin(out);
	reply_kv_u64(out, "modules_unloaded", t.modules_unloaded);
	reply_kv_u64(out, "cache_bytes_dropped", t.cache_bytes_dropped);
	reply_kv_i64(out, "rss_before", t.rss_before);
	reply_kv_i64(out, "rss_after", t.rss_after);
	reply_map_end(out);
	return PROTO_OK;
}

static proto_err m_monitor(lmmsd *d, conn *c, const msgpack_object *p, reply *out, char *err,
			   size_t n)
{
	if (lmmsd_monitor_add(d, c) < 0)
		return fail(err, n, PROTO_E_BUSY, "%d monitors watch already", MONITOR_MAX);
	log_info("admin uid %u (pid %d): lmms.monitor started", (unsigned)c->uid, (int)c->pid);
	reply_bool(out, true);
	return PROTO_OK;
}

/* One row per method. usage is the bad_params answer to a wrong arity. */
static const builtin_method methods[] = {
	{ "ping", m_ping, 0, UINT32_MAX, false, NULL },
	{ "stats", m_stats, 0, UINT32_MAX, false, NULL },
	{ "modules", m_modules, 0, UINT32_MAX, false, NULL },
	{ "ops", m_ops, 0, UINT32_MAX, false, NULL },
	{ "config", m_config, 0, UINT32_MAX, false, NULL },
	{ "load", m_load, 1, UINT32_MAX, true, "lmms.load takes [name]" },
	{ "unload", m_unload, 1, 2, true, "lmms.unload takes [name] or [name, true]" },
	{ "invalidate", m_invalidate, 0, 1, true, "lmms.invalidate takes [], [module] or [method]" },
	{ "reload", m_reload, 0, UINT32_MAX, true, NULL },
	{ "metrics", m_metrics, 0, 0, false, "lmms.metrics takes []" },
	{ "trim", m_trim, 0, 0, true, "lmms.trim takes []" },
	{ "monitor", m_monitor, 0, 0, true, "lmms.monitor takes []" },
};

const builtin_method *builtin_find(const char *name, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(methods); i++)
		if (strlen(methods[i].name) == len && memcmp(methods[i].name, name, len) == 0)
			return &methods[i];
	return NULL;
}

void builtin_init(builtin *b, lmmsd *d)
{
	b->d = d;
}

void builtin_call(builtin *b, conn *c, const proto_request *r, const msgpack_object *params)
{
	const char *name = r->method + 5;
	size_t len = r->method_len - 5;
	const builtin_method *bm = builtin_find(name, len);
	lmmsd *d = b->d;
	uint32_t argc = params->via.array.size;
	uint64_t t0 = d->dp.on_event ? now_ns() : 0;
	char err[512];
	proto_err e;
	reply out;

	reply_init(&out);
	if (!bm) {
		e = fail(err, sizeof(err), PROTO_E_NO_SUCH_METHOD, "the lmms interface has no \"%.*s\"",
			 shown(len), name);
	} else if (bm->admin && !access_is_admin(&d->acc, c)) {
		e = fail(err, sizeof(err), PROTO_E_DENIED,
			 "lmms.%s is for administrators (uid %u is not one)", bm->name,
			 (unsigned)c->uid);
	} else if (r->notify && !bm->admin) {
		/* a read-only method asked by notification has nothing to do */
		reply_fini(&out);
		return;
	} else if (argc < bm->min_params || argc > bm->max_params) {
		e = fail(err, sizeof(err), PROTO_E_BAD_PARAMS, "%s",
			 bm->usage ? bm->usage : "wrong number of params");
	} else {
		e = bm->fn(d, c, params, &out, err, sizeof(err));
		if (e == PROTO_OK && reply_finish(&out) < 0) {
			log_err("lmms.%s: reply could not be built: %s", bm->name,
				strerror(-out.err));
			e = fail(err, sizeof(err), PROTO_E_INTERNAL, "lmms.%s: %s", bm->name,
				 out.err == -ENOMEM ? "out of memory building the reply"
						    : "reply malformed");
		}
	}
	if (e != PROTO_OK)
		dispatch_reply_error(&d->dp, c, r->msgid, r->notify, e, "%s", err);
	else if (!r->notify)
		conn_reply_raw(c, r->msgid, out.buf.data, out.buf.len);
	if (d->dp.on_event) {
		dispatch_event ev = {
			.c = c,
			.method = r->method,
			.method_len = r->method_len,
			.path = PATH_BUILTIN,
			.ns = t0 ? now_ns() - t0 : 0,
			.result_bytes = e == PROTO_OK ? out.buf.len : 0,
			.error = e,
		};

		d->dp.on_event(d->dp.ud_event, &ev);
	}
	reply_fini(&out);
}
