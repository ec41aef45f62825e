/*
 * builtin.c - the built-in "lmms" interface (DESIGN.md §2): ping, stats,
 * modules, ops, config, and the admin methods load, unload, invalidate and
 * reload. Part of the daemon; never unloaded, never cached.
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "util.h"

static void pack_kstr(msgpack_packer *pk, const char *k)
{
	proto_pack_cstr(pk, k);
}

static void pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
	pack_kstr(pk, k);
	msgpack_pack_uint64(pk, v);
}

static void pack_kv_i64(msgpack_packer *pk, const char *k, int64_t v)
{
	pack_kstr(pk, k);
	msgpack_pack_int64(pk, v);
}

static void pack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
	pack_kstr(pk, k);
	proto_pack_cstr(pk, v);
}

static void pack_kv_bool(msgpack_packer *pk, const char *k, bool v)
{
	pack_kstr(pk, k);
	if (v)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

bool access_is_admin(const lmmsd *d, const conn *c)
{
	if (c->uid == 0 || c->uid == d->uid)
		return true;
	for (uint32_t i = 0; i < d->cfg.access.n_admin_uids; i++)
		if (d->cfg.access.admin_uids[i] == c->uid)
			return true;
	if (d->have_admin_gid) {
		if (c->gid == d->admin_gid)
			return true;
		for (uint32_t i = 0; i < c->n_groups; i++)
			if (c->groups[i] == d->admin_gid)
				return true;
	}
	return false;
}

static int64_t memory_reclaimed(const lmmsd *d)
{
	return d->reg.reclaimed_bytes + d->st.trim_reclaimed_bytes;
}

static void pack_stats(lmmsd *d, msgpack_packer *pk)
{
	uint64_t now = now_ms();
	int64_t rss = rss_bytes();

	msgpack_pack_map(pk, 21);
	pack_kv_u64(pk, "uptime_seconds", (now - d->start_ms) / 1000);
	pack_kv_u64(pk, "requests_total", d->st.requests_total);
	pack_kv_u64(pk, "errors_total", d->st.errors_total);
	pack_kv_u64(pk, "connections", d->srv.n_conns);
	pack_kv_i64(pk, "rss_bytes", rss < 0 ? 0 : rss);
	pack_kv_u64(pk, "modules_known", d->reg.n_mods);
	pack_kv_u64(pk, "modules_resident", d->reg.n_resident);
	pack_kv_u64(pk, "ligs_loads", d->reg.loads);
	pack_kv_u64(pk, "lugs_unloads", d->reg.unloads);
	pack_kv_u64(pk, "lugs_unload_blocked", d->st.lugs_unload_blocked);
	pack_kv_u64(pk, "zafp_hits", d->heat.hits);
	pack_kv_u64(pk, "hot_paths", d->heat.n_paths);
	pack_kv_u64(pk, "cache_hits", d->cache.hits);
	pack_kv_u64(pk, "cache_misses", d->cache.misses);
	pack_kv_u64(pk, "cache_entries", d->cache.entries);
	pack_kv_u64(pk, "cache_bytes", d->cache.bytes);
	pack_kv_i64(pk, "memory_reclaimed_bytes", memory_reclaimed(d));
	pack_kv_u64(pk, "notifications_total", d->st.notifications_total);
	pack_kv_u64(pk, "connections_total", d->st.connections_total);
	pack_kv_u64(pk, "cache_evictions", d->cache.evictions);
	pack_kv_u64(pk, "zafp_evictions", d->heat.evictions);
}

static void pack_module(lmmsd *d, msgpack_packer *pk, const module *m)
{
	uint64_t now = now_ms();

	msgpack_pack_map(pk, 19);
	pack_kv_str(pk, "name", m->name);
	pack_kv_str(pk, "state", module_state_name(m->state));
	pack_kv_str(pk, "policy", policy_name(config_module_policy(&d->cfg, m->name)));
	pack_kv_bool(pk, "protected", lugs_protected(d, m));
	pack_kv_u64(pk, "refs", m->refs);
	pack_kv_u64(pk, "loads", m->loads);
	pack_kv_u64(pk, "unloads", m->unloads);
	pack_kv_u64(pk, "idle_ms", m->last_used_ms ? now - m->last_used_ms : 0);
	pack_kv_u64(pk, "cache_deps", m->cache_deps);
	pack_kv_i64(pk, "resident_bytes", module_resident(m) ? m->resident_bytes : 0);
	pack_kv_i64(pk, "reclaimed_bytes", m->reclaimed_bytes);
	pack_kv_u64(pk, "ops", m->n_ops);
	pack_kv_u64(pk, "hot_ops", m->hot_ops);
	pack_kv_str(pk, "version", m->desc.version && m->handle ? m->desc.version : "");
	pack_kv_u64(pk, "load_failures", m->load_failures);
	pack_kv_str(pk, "error", m->error);
	pack_kv_str(pk, "pinned_by", m->pinned_by);
	pack_kstr(pk, "blocked");
	msgpack_pack_map(pk, LUGS_CHECK_MAX);
	for (int i = 0; i < LUGS_CHECK_MAX; i++)
		pack_kv_u64(pk, lugs_check_name(i), m->blocked[i]);
	pack_kv_u64(pk, "retry_in_ms",
		    m->state == MOD_FAILED && m->retry_at_ms > now ? m->retry_at_ms - now : 0);
}

static void pack_op(lmmsd *d, msgpack_packer *pk, const op_info *op)
{
	const op_heat *h = &op->heat;

	msgpack_pack_map(pk, 14);
	pack_kv_str(pk, "method", op->method);
	pack_kv_u64(pk, "calls", h->calls);
	pack_kv_str(pk, "heat", heat_level_name(h->level));
	pack_kv_bool(pk, "fast_path", h->fp != NULL);
	pack_kv_u64(pk, "avg_us", h->calls ? h->total_ns / h->calls / 1000 : 0);
	pack_kv_u64(pk, "p50_us", heat_percentile_us(h, 50));
	pack_kv_u64(pk, "p99_us", heat_percentile_us(h, 99));
	pack_kv_u64(pk, "cache_ttl_ms",
		    (op->flags & LMMS_OP_PURE)
			    ? (op->cache_ttl_ms ? op->cache_ttl_ms : d->cfg.cache.default_ttl_ms)
			    : 0);
	pack_kv_bool(pk, "blocking", op->flags & LMMS_OP_BLOCKING);
	pack_kv_u64(pk, "blocking_above", op->blocking_above);
	pack_kv_u64(pk, "pool_calls", h->pool_calls);
	pack_kv_bool(pk, "pure", op->flags & LMMS_OP_PURE);
	pack_kv_u64(pk, "heat_count", h->count);
	pack_kv_u64(pk, "last_call_ms_ago", h->last_call_ms ? now_ms() - h->last_call_ms : 0);
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

static void config_pack_one(void *ud, const char *section, const char *key, const char *value)
{
	msgpack_packer *pk = ud;
	char k[256];

	snprintf(k, sizeof(k), "%s.%s", section, key);
	pack_kv_str(pk, k, value);
}

static void config_count_one(void *ud, const char *section, const char *key, const char *value)
{
	(void)section, (void)key, (void)value;
	(*(size_t *)ud)++;
}

void builtin_call(lmmsd *d, conn *c, uint32_t msgid, bool notify, const char *op, size_t op_len,
		  const msgpack_object *params)
{
	msgpack_packer pkb, *pk;
	const char *name;
	size_t name_len;
	module *m;

#define IS(s) (op_len == sizeof(s) - 1 && memcmp(op, s, op_len) == 0)
#define ERR(code, ...)                                                   \
	do {                                                             \
		if (notify)                                              \
			d->st.errors_total++;                            \
		else                                                     \
			conn_reply_error(c, msgid, code, __VA_ARGS__);   \
		return;                                                  \
	} while (0)
#define ADMIN()                                                                              \
	do {                                                                                 \
		if (!access_is_admin(d, c))                                                  \
			ERR(PROTO_E_DENIED, "lmms.%.*s is for administrators (uid %u is not one)", \
			    (int)op_len, op, (unsigned)c->uid);                              \
	} while (0)

	if (IS("ping")) {
		if (notify)
			return;
		pk = conn_reply_begin(c, msgid, &pkb);
		proto_pack_cstr(pk, "pong");
		return;
	}
	if (IS("stats")) {
		if (notify)
			return;
		pack_stats(d, conn_reply_begin(c, msgid, &pkb));
		return;
	}
	if (IS("modules")) {
		if (notify)
			return;
		pk = conn_reply_begin(c, msgid, &pkb);
		msgpack_pack_array(pk, d->reg.n_mods);
		for (uint32_t i = 0; i < d->reg.n_mods; i++)
			pack_module(d, pk, d->reg.mods[i]);
		return;
	}
	if (IS("ops")) {
		uint32_t n = 0;

		if (notify)
			return;
		for (uint32_t i = 0; i < d->reg.n_mods; i++)
			for (uint32_t j = 0; j < d->reg.mods[i]->n_ops; j++)
				n += !d->reg.mods[i]->ops[j]->gone;
		pk = conn_reply_begin(c, msgid, &pkb);
		msgpack_pack_array(pk, n);
		for (uint32_t i = 0; i < d->reg.n_mods; i++)
			for (uint32_t j = 0; j < d->reg.mods[i]->n_ops; j++)
				if (!d->reg.mods[i]->ops[j]->gone)
					pack_op(d, pk, d->reg.mods[i]->ops[j]);
		return;
	}
	if (IS("config")) {
		size_t n = 0;

		if (notify)
			return;
		config_visit(&d->cfg, config_count_one, &n);
		pk = conn_reply_begin(c, msgid, &pkb);
		msgpack_pack_map(pk, n);
		config_visit(&d->cfg, config_pack_one, pk);
		return;
	}
	if (IS("load")) {
		int r;

		ADMIN();
		if (!arg_str(params, 0, &name, &name_len))
			ERR(PROTO_E_BAD_PARAMS, "lmms.load takes [name]");
		m = registry_find(&d->reg, name, name_len);
		if (!m)
			ERR(PROTO_E_NO_SUCH_MODULE, "no module \"%.*s\"",
			    (int)(name_len > 64 ? 64 : name_len), name);
		r = registry_load(&d->reg, m);
		if (r == -EBUSY)
			ERR(PROTO_E_BUSY, "module %s is being unloaded", m->name);
		if (r < 0)
			ERR(PROTO_E_LOAD_FAILED, "%s: %s", m->name, m->error);
		m->last_used_ms = now_ms();
		if (notify)
			return;
		pack_module(d, conn_reply_begin(c, msgid, &pkb), m);
		return;
	}
	if (IS("unload")) {
		const msgpack_object *f;
		bool force = false;
		lugs_check which = LUGS_REFS;
		const char *reason = NULL;
		int r;

		ADMIN();
		if (!arg_str(params, 0, &name, &name_len) || params->via.array.size > 2)
			ERR(PROTO_E_BAD_PARAMS, "lmms.unload takes [name] or [name, true]");
		if (params->via.array.size == 2) {
			f = &params->via.array.ptr[1];
			if (f->type != MSGPACK_OBJECT_BOOLEAN)
				ERR(PROTO_E_BAD_PARAMS, "lmms.unload: second param must be a bool");
			force = f->via.boolean;
		}
		m = registry_find(&d->reg, name, name_len);
		if (!m)
			ERR(PROTO_E_NO_SUCH_MODULE, "no module \"%.*s\"",
			    (int)(name_len > 64 ? 64 : name_len), name);
		if (d->eager)
			ERR(PROTO_E_BUSY, "eager mode: modules are never unloaded");
		r = lugs_try_unload(d, m, force, &which, &reason);
		if (r == -EBUSY && m->state == MOD_PINNED)
			ERR(PROTO_E_BUSY, "%s: pinned by %s, it stays mapped whatever dlclose does",
			    lugs_check_name(which), m->pinned_by[0] ? m->pinned_by : "glibc");
		if (r == -EBUSY)
			ERR(PROTO_E_BUSY, "%s: %s", lugs_check_name(which),
			    reason ? reason
			    : which == LUGS_REFS	 ? "operations in flight"
			    : which == LUGS_PROTECTED ? "protected (policy core or hot ops)"
			    : which == LUGS_CACHED	 ? "live cache entries depend on it"
			    : which == LUGS_GRACE	 ? "used within the grace period"
						 : "at the minimum of resident modules");
		if (notify)
			return;
		pk = conn_reply_begin(c, msgid, &pkb);
		msgpack_pack_true(pk);
		return;
	}
	if (IS("invalidate")) {
		uint32_t n;

		ADMIN();
		if (params->via.array.size > 1)
			ERR(PROTO_E_BAD_PARAMS, "lmms.invalidate takes [], [module] or [method]");
		if (params->via.array.size == 0) {
			n = cache_invalidate(&d->cache, NULL, NULL);
		} else {
			if (!arg_str(params, 0, &name, &name_len))
				ERR(PROTO_E_BAD_PARAMS, "lmms.invalidate: argument must be a string");
			if (memchr(name, '.', name_len)) {
				op_info *opi = registry_find_op(&d->reg, name, name_len);

				n = opi ? cache_invalidate(&d->cache, NULL, opi) : 0;
			} else {
				m = registry_find(&d->reg, name, name_len);
				if (!m)
					ERR(PROTO_E_NO_SUCH_MODULE, "no module \"%.*s\"",
					    (int)(name_len > 64 ? 64 : name_len), name);
				n = cache_invalidate(&d->cache, m, NULL);
			}
		}
		if (notify)
			return;
		msgpack_pack_uint32(conn_reply_begin(c, msgid, &pkb), n);
		return;
	}
	if (IS("reload")) {
		char msg[512];

		ADMIN();
		if (lmmsd_reload(d, msg, sizeof(msg)) < 0)
			ERR(PROTO_E_BAD_PARAMS, "reload refused, old configuration kept: %s", msg);
		if (notify)
			return;
		msgpack_pack_true(conn_reply_begin(c, msgid, &pkb));
		return;
	}
	ERR(PROTO_E_NO_SUCH_METHOD, "the lmms interface has no \"%.*s\"",
	    (int)(op_len > 64 ? 64 : op_len), op);
#undef IS
#undef ERR
#undef ADMIN
}
