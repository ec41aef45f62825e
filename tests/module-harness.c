/*
 * module-harness.c - see module-harness.h.
 */
#include "module-harness.h"

#include <check.h>
/* check.h defines a deprecated fail() macro that would hide lmms_host.fail. */
#undef fail
#include <dlfcn.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void module_path(module *m, const char *env, const char *name)
{
	const char *dir = getenv(env);

	ck_assert_msg(dir != NULL, "%s is not set (run through meson test)", env);
	snprintf(m->path, sizeof(m->path), "%s/%s.so", dir, name);
}

const char *desc_check(const lmms_module_desc *d, const char *name)
{
	if (!d)
		return "entry returned NULL";
	if (d->abi_version != LMMS_MODULE_ABI_VERSION)
		return "abi version mismatch";
	if (d->size < offsetof(lmms_module_desc, can_unload) + sizeof(d->can_unload))
		return "descriptor too small";
	if (!d->name || strcmp(d->name, name) != 0)
		return "name does not match the file name";
	if (d->op_size < offsetof(lmms_op, cache_ttl_ms) + sizeof(uint32_t))
		return "op size too small";
	if (d->n_ops == 0 || !d->ops)
		return "no ops";
	return NULL;
}

const lmms_op *op_at(const module *m, uint32_t i)
{
	return (const lmms_op *)((const char *)m->d->ops + (size_t)i * m->d->op_size);
}

const lmms_op *op_find(const module *m, const char *name)
{
	for (uint32_t i = 0; i < m->d->n_ops; i++) {
		if (strcmp(op_at(m, i)->name, name) == 0)
			return op_at(m, i);
	}
	ck_abort_msg("module %s has no op %s", m->d->name, name);
	return NULL;
}

void module_load_host(module *m, const char *env, const char *name, const lmms_host *host)
{
	lmms_module_entry_fn entry;
	const char *why;
	lmms_call c;
	int rc;

	memset(m, 0, sizeof(*m));
	m->host = host;
	module_path(m, env, name);
	m->dl = dlopen(m->path, RTLD_NOW | RTLD_LOCAL);
	ck_assert_msg(m->dl != NULL, "dlopen %s: %s", m->path, dlerror());
	*(void **)&entry = dlsym(m->dl, LMMS_MODULE_ENTRY_NAME);
	ck_assert_msg(entry != NULL, "%s: no entry symbol", name);
	m->d = entry();
	why = desc_check(m->d, name);
	ck_assert_msg(why == NULL, "%s: %s", name, why);
	for (uint32_t i = 0; i < m->d->n_ops; i++) {
		const lmms_op *op = op_at(m, i);

		ck_assert_ptr_nonnull(op->name);
		ck_assert_ptr_nonnull(op->fn);
		ck_assert_ptr_null(strchr(op->name, '.'));
		ck_assert_uint_eq(op->flags & ~(uint32_t)(LMMS_OP_PURE | LMMS_OP_BLOCKING), 0);
	}
	if (m->d->init) {
		call_init(&c, NULL, RESULT_MAX, name);
		rc = m->d->init(m->host, &c, &m->state);
		ck_assert_msg(rc == 0, "%s init: %s", name, c.failed ? c.fail_msg : "(no message)");
		call_fini(&c);
	}
}

void module_load(module *m, const char *env, const char *name)
{
	module_load_host(m, env, name, &call_host);
}

void expect_documented(const module *m)
{
	ck_assert_msg(m->d->description && m->d->description[0], "%s: no description",
		      m->d->name);
	for (uint32_t i = 0; i < m->d->n_ops; i++) {
		const lmms_op *op = op_at(m, i);

		ck_assert_msg(op->doc && op->doc[0], "%s.%s: no doc", m->d->name, op->name);
	}
}

void module_unload(module *m)
{
	if (m->d->fini)
		m->d->fini(m->host, m->state);
	ck_assert_int_eq(dlclose(m->dl), 0);
	memset(m, 0, sizeof(*m));
}

/* ---- calling ops ------------------------------------------------------------ */

msgpack_packer *params_begin(params *p, uint32_t n)
{
	msgpack_sbuffer_init(&p->sb);
	msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
	msgpack_unpacked_init(&p->up);
	msgpack_pack_array(&p->pk, n);
	return &p->pk;
}

void params_free(params *p)
{
	msgpack_unpacked_destroy(&p->up);
	msgpack_sbuffer_destroy(&p->sb);
}

void outcome_free(outcome *o)
{
	if (o->bytes)
		msgpack_unpacked_destroy(&o->up);
	free(o->bytes);
	memset(o, 0, sizeof(*o));
}

void run_max(module *m, const char *op, params *p, size_t max, outcome *o)
{
	const msgpack_object *args = NULL;
	const char *msg = NULL;
	lmms_call c;
	int rc;

	memset(o, 0, sizeof(*o));
	if (p) {
		ck_assert_int_eq(msgpack_unpack_next(&p->up, p->sb.data, p->sb.size, NULL),
				 MSGPACK_UNPACK_SUCCESS);
		args = &p->up.data;
	}
	call_init(&c, args, max, m->d->name);
	rc = op_find(m, op)->fn(m->host, &c, m->state);
	o->err = call_finish(&c, rc, &msg);
	if (o->err == PROTO_OK) {
		size_t off = 0;

		ck_assert_int_eq(rc, 0);
		o->bytes = call_take_result(&c, &o->len);
		msgpack_unpacked_init(&o->up);
		ck_assert_int_eq(msgpack_unpack_next(&o->up, o->bytes, o->len, &off),
				 MSGPACK_UNPACK_SUCCESS);
		ck_assert_uint_eq(off, o->len);
		o->v = &o->up.data;
	} else {
		ck_assert_int_lt(rc, 0); /* our modules return < 0 on every failure */
		snprintf(o->msg, sizeof(o->msg), "%s", msg ? msg : "");
	}
	call_fini(&c);
	if (p)
		params_free(p);
}

void run(module *m, const char *op, params *p, outcome *o)
{
	run_max(m, op, p, RESULT_MAX, o);
}

void expect_str(const outcome *o, const char *want)
{
	ck_assert_msg(o->err == PROTO_OK, "error %s: %s", proto_err_name(o->err), o->msg);
	ck_assert_int_eq(o->v->type, MSGPACK_OBJECT_STR);
	ck_assert_msg(o->v->via.str.size == strlen(want) &&
			      (o->v->via.str.size == 0 ||
			       memcmp(o->v->via.str.ptr, want, strlen(want)) == 0),
		      "got '%.*s', want '%s'", (int)o->v->via.str.size, o->v->via.str.ptr, want);
}

void expect_err(const outcome *o, proto_err want)
{
	ck_assert_msg(o->err == want, "got %s (%s), want %s", proto_err_name(o->err), o->msg,
		      proto_err_name(want));
	ck_assert_msg(strlen(o->msg) > 0, "error without a message");
}

void run_fails(module *m, const char *op, params *p, proto_err want, const char *needle)
{
	outcome o;

	run(m, op, p, &o);
	expect_err(&o, want);
	ck_assert_msg(!needle || strstr(o.msg, needle), "%s: message '%s' lacks '%s'", op, o.msg,
		      needle);
	outcome_free(&o);
}

params *p_str(params *p, const char *s)
{
	msgpack_pack_str_with_body(params_begin(p, 1), s, strlen(s));
	return p;
}

params *p_none(params *p)
{
	params_begin(p, 0);
	return p;
}

params *p_int(params *p, int64_t v)
{
	msgpack_pack_int64(params_begin(p, 1), v);
	return p;
}

params *p_bin(params *p, const void *b, size_t n)
{
	msgpack_pack_bin_with_body(params_begin(p, 1), b, n);
	return p;
}


static void pack_json(msgpack_packer *pk, const json_t *j)
{
	const char *key;
	json_t *v;
	size_t i;

	switch (json_typeof(j)) {
	case JSON_OBJECT:
		msgpack_pack_map(pk, json_object_size(j));
		json_object_foreach((json_t *)j, key, v) {
			msgpack_pack_str_with_body(pk, key, strlen(key));
			pack_json(pk, v);
		}
		break;
	case JSON_ARRAY:
		msgpack_pack_array(pk, json_array_size(j));
		json_array_foreach(j, i, v)
			pack_json(pk, v);
		break;
	case JSON_STRING:
		msgpack_pack_str_with_body(pk, json_string_value(j), json_string_length(j));
		break;
	case JSON_INTEGER:
		msgpack_pack_int64(pk, json_integer_value(j));
		break;
	case JSON_REAL:
		msgpack_pack_double(pk, json_real_value(j));
		break;
	case JSON_TRUE:
		msgpack_pack_true(pk);
		break;
	case JSON_FALSE:
		msgpack_pack_false(pk);
		break;
	default:
		msgpack_pack_nil(pk);
		break;
	}
}

static params *p_json_va(params *p, const void *b, size_t n, const char *fmt, va_list ap)
{
	char text[8192];
	json_error_t err;
	msgpack_packer *pk;
	json_t *j, *v;
	size_t i;
	int len = vsnprintf(text, sizeof(text), fmt, ap);

	ck_assert_msg(len >= 0 && (size_t)len < sizeof(text), "JSON params too long");
	j = json_loads(text, JSON_DECODE_ANY, &err);
	ck_assert_msg(j && json_is_array(j), "params %s: %s", text, j ? "not an array" : err.text);
	pk = params_begin(p, (uint32_t)json_array_size(j) + (b ? 1 : 0));
	if (b)
		msgpack_pack_bin_with_body(pk, b, n);
	json_array_foreach(j, i, v)
		pack_json(pk, v);
	json_decref(j);
	return p;
}

params *p_json(params *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	p_json_va(p, NULL, 0, fmt, ap);
	va_end(ap);
	return p;
}

params *p_bin_json(params *p, const void *b, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	p_json_va(p, b ? b : "", n, fmt, ap);
	va_end(ap);
	return p;
}
