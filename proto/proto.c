/*
 * proto.c - MessagePack-RPC message shapes: error names, parse, split, pack.
 *
 * The wire format is plain MessagePack-RPC (see proto/PROTOCOL.md). This file
 * is the one place that knows the array layouts, so the daemon and the client
 * library agree on them by construction.
 */
#include "proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const err_names[PROTO_E__MAX] = {
	[PROTO_OK] = "ok",
	[PROTO_E_NO_SUCH_MODULE] = "no_such_module",
	[PROTO_E_NO_SUCH_METHOD] = "no_such_method",
	[PROTO_E_BAD_REQUEST] = "bad_request",
	[PROTO_E_BAD_PARAMS] = "bad_params",
	[PROTO_E_LOAD_FAILED] = "load_failed",
	[PROTO_E_MODULE_ERROR] = "module_error",
	[PROTO_E_TIMEOUT] = "timeout",
	[PROTO_E_DENIED] = "denied",
	[PROTO_E_BUSY] = "busy",
	[PROTO_E_TOO_LARGE] = "too_large",
	[PROTO_E_SHUTTING_DOWN] = "shutting_down",
	[PROTO_E_INTERNAL] = "internal",
	[PROTO_E_MODULE_CRASHED] = "module_crashed",
};

const char *proto_err_name(proto_err e)
{
	if ((unsigned)e >= PROTO_E__MAX || !err_names[e])
		return err_names[PROTO_E_INTERNAL];
	return err_names[e];
}

proto_err proto_err_from_name(const char *s, size_t n)
{
	if (!s)
		return PROTO_E_INTERNAL;
	/* "ok" is not a wire code: an error object always names a failure. */
	for (unsigned i = PROTO_E_NO_SUCH_MODULE; i < PROTO_E__MAX; i++) {
		if (strlen(err_names[i]) == n && memcmp(err_names[i], s, n) == 0)
			return (proto_err)i;
	}
	return PROTO_E_INTERNAL;
}

static bool obj_is_uint32(const msgpack_object *o)
{
	return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= UINT32_MAX;
}

static bool obj_get_name(const msgpack_object *o, const char **p, uint32_t *n)
{
	if (o->type == MSGPACK_OBJECT_STR) {
		*p = o->via.str.ptr;
		*n = o->via.str.size;
		return true;
	}
	if (o->type == MSGPACK_OBJECT_BIN) {
		*p = o->via.bin.ptr;
		*n = o->via.bin.size;
		return true;
	}
	return false;
}

static proto_err parse_fail(proto_msg *m, const char **reason, const char *why)
{
	/* Only a request's msgid is worth keeping: it is what gets answered. */
	if (m->type != PROTO_REQUEST)
		m->type = -1;
	if (reason)
		*reason = why;
	return PROTO_E_BAD_REQUEST;
}

static proto_err parse_error_obj(const msgpack_object *e)
{
	if (e->type == MSGPACK_OBJECT_NIL)
		return PROTO_OK;
	if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2 ||
	    e->via.array.ptr[0].type != MSGPACK_OBJECT_STR ||
	    e->via.array.ptr[1].type != MSGPACK_OBJECT_STR)
		return PROTO_E_BAD_REQUEST;
	return PROTO_OK;
}

proto_err proto_msg_parse(const msgpack_object *o, proto_msg *m, const char **reason)
{
	const msgpack_object *el;
	uint32_t n;

	memset(m, 0, sizeof(*m));
	m->type = -1;
	if (reason)
		*reason = NULL;

	if (!o || o->type != MSGPACK_OBJECT_ARRAY)
		return parse_fail(m, reason, "message is not an array");
	n = o->via.array.size;
	el = o->via.array.ptr;
	if (n != 3 && n != 4)
		return parse_fail(m, reason, "message array must have 3 or 4 elements");
	if (el[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || el[0].via.u64 > PROTO_NOTIFICATION)
		return parse_fail(m, reason, "message type must be 0, 1 or 2");

	switch (el[0].via.u64) {
	case PROTO_REQUEST:
		if (n != 4)
			return parse_fail(m, reason, "request and response must have 4 elements");
		if (!obj_is_uint32(&el[1]))
			return parse_fail(m, reason, "msgid must be a uint32");
		m->type = PROTO_REQUEST;
		m->msgid = (uint32_t)el[1].via.u64;
		if (!obj_get_name(&el[2], &m->method, &m->method_len))
			return parse_fail(m, reason, "method must be a string");
		if (el[3].type != MSGPACK_OBJECT_ARRAY)
			return parse_fail(m, reason, "params must be an array");
		m->params = &el[3];
		return PROTO_OK;

	case PROTO_RESPONSE:
		if (n != 4)
			return parse_fail(m, reason, "request and response must have 4 elements");
		if (!obj_is_uint32(&el[1]))
			return parse_fail(m, reason, "msgid must be a uint32");
		if (parse_error_obj(&el[2]) != PROTO_OK)
			return parse_fail(m, reason, "error must be nil or [code, message]");
		m->type = PROTO_RESPONSE;
		m->msgid = (uint32_t)el[1].via.u64;
		m->error = &el[2];
		m->result = &el[3];
		return PROTO_OK;

	default: /* PROTO_NOTIFICATION */
		if (n != 3)
			return parse_fail(m, reason, "notification must have 3 elements");
		if (!obj_get_name(&el[1], &m->method, &m->method_len))
			return parse_fail(m, reason, "method must be a string");
		if (el[2].type != MSGPACK_OBJECT_ARRAY)
			return parse_fail(m, reason, "params must be an array");
		m->type = PROTO_NOTIFICATION;
		m->params = &el[2];
		return PROTO_OK;
	}
}

int proto_method_split(const char *method, size_t len, const char **mod, size_t *mod_len,
		       const char **op, size_t *op_len)
{
	const char *dot;

	if (!method || len == 0 || len > 255)
		return -EINVAL;
	/* Module names become file names: no NUL, no path, no parent. */
	if (memchr(method, '\0', len) || memchr(method, '/', len) || memmem(method, len, "..", 2))
		return -EINVAL;
	dot = memchr(method, '.', len);
	if (!dot || dot == method || dot == method + len - 1)
		return -EINVAL;

	if (mod)
		*mod = method;
	if (mod_len)
		*mod_len = (size_t)(dot - method);
	if (op)
		*op = dot + 1;
	if (op_len)
		*op_len = len - (size_t)(dot - method) - 1;
	return 0;
}

/* msgpack-c's pack functions return the write callback's result; the sbuffer
 * and our connection buffers fail only when out of memory. */
#define PACK(expr)                     \
	do {                           \
		if ((expr) != 0)       \
			return -ENOMEM; \
	} while (0)

#define TRY(expr)                    \
	do {                         \
		int r_ = (expr);     \
		if (r_ < 0)          \
			return r_;   \
	} while (0)

static int pack_name(msgpack_packer *pk, const char *s, size_t n)
{
	if ((!s && n > 0) || n > UINT32_MAX)
		return -EINVAL;
	PACK(msgpack_pack_str(pk, n));
	if (n > 0)
		PACK(msgpack_pack_str_body(pk, s, n));
	return 0;
}

int proto_pack_request(msgpack_packer *pk, uint32_t msgid, const char *method, size_t method_len,
		       uint32_t n_params)
{
	if (!pk || (!method && method_len > 0) || method_len > UINT32_MAX)
		return -EINVAL;
	PACK(msgpack_pack_array(pk, 4));
	PACK(msgpack_pack_uint8(pk, PROTO_REQUEST));
	PACK(msgpack_pack_uint32(pk, msgid));
	TRY(pack_name(pk, method, method_len));
	PACK(msgpack_pack_array(pk, n_params));
	return 0;
}

int proto_pack_notification(msgpack_packer *pk, const char *method, size_t method_len,
			    uint32_t n_params)
{
	if (!pk || (!method && method_len > 0) || method_len > UINT32_MAX)
		return -EINVAL;
	PACK(msgpack_pack_array(pk, 3));
	PACK(msgpack_pack_uint8(pk, PROTO_NOTIFICATION));
	TRY(pack_name(pk, method, method_len));
	PACK(msgpack_pack_array(pk, n_params));
	return 0;
}

int proto_pack_response_ok(msgpack_packer *pk, uint32_t msgid)
{
	if (!pk)
		return -EINVAL;
	PACK(msgpack_pack_array(pk, 4));
	PACK(msgpack_pack_uint8(pk, PROTO_RESPONSE));
	PACK(msgpack_pack_uint32(pk, msgid));
	PACK(msgpack_pack_nil(pk));
	return 0;
}

int proto_pack_response_error_str(msgpack_packer *pk, uint32_t msgid, const char *code,
				  const char *message)
{
	if (!pk || !code)
		return -EINVAL;
	if (!message)
		message = "";
	PACK(msgpack_pack_array(pk, 4));
	PACK(msgpack_pack_uint8(pk, PROTO_RESPONSE));
	PACK(msgpack_pack_uint32(pk, msgid));
	PACK(msgpack_pack_array(pk, 2));
	TRY(pack_name(pk, code, strlen(code)));
	TRY(pack_name(pk, message, strlen(message)));
	PACK(msgpack_pack_nil(pk));
	return 0;
}

int proto_pack_response_error(msgpack_packer *pk, uint32_t msgid, proto_err code,
			      const char *message)
{
	if (code == PROTO_OK)
		code = PROTO_E_INTERNAL; /* an error reply must name a failure */
	return proto_pack_response_error_str(pk, msgid, proto_err_name(code), message);
}

int proto_pack_cstr(msgpack_packer *pk, const char *s)
{
	if (!pk || !s)
		return -EINVAL;
	return pack_name(pk, s, strlen(s));
}

int proto_default_socket(char *buf, size_t n)
{
	const char *env = getenv("LMMS_SOCKET");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int r;

	if (!buf || n == 0)
		return -EINVAL;
	if (env && *env)
		r = snprintf(buf, n, "%s", env);
	else if (geteuid() == 0)
		r = snprintf(buf, n, "%s", "/run/lmms/lmmsd.sock");
	else if (xdg && *xdg)
		r = snprintf(buf, n, "%s/lmms/lmmsd.sock", xdg);
	else
		r = snprintf(buf, n, "/run/user/%u/lmms/lmmsd.sock", (unsigned)geteuid());
	if (r < 0)
		return -EINVAL;
	return (size_t)r >= n ? -ENAMETOOLONG : 0;
}
