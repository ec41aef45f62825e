/*
 * call.c - the host API modules see: params in, one result value out.
 *
 * Every function here touches only the lmms_call it is given (plus stderr for
 * log), so a BLOCKING op may use the table from a worker thread while the loop
 * runs other calls. Results are encoded straight into a daemon-owned buffer,
 * with container bookkeeping that guarantees exactly one complete top-level
 * value, and a byte budget enforced at every write so a module can never make
 * the daemon hold more than max_result_bytes for one call.
 */
#include "call.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

/* Used when the caller passes max_result_bytes == 0: same as the default
 * message limit, since a bigger result could not be sent anyway. */
#define CALL_DEFAULT_MAX_RESULT (1u << 20)
#define CALL_LOG_LINE_MAX 1024

/*
 * Containers a result may nest, empty ones included. The response wraps the
 * result in one more array, and the whole message must fit the default
 * max_depth (32) that proto_scan and msgpack-c's fixed 32-slot unpacker stack
 * allow, so a result gets one level less than CALL_MAX_RESULT_DEPTH.
 */
#define CALL_RESULT_LEVELS (CALL_MAX_RESULT_DEPTH - 1)

/* ---- logging ---------------------------------------------------------- */

/* Module lines go through the daemon's log: timestamp or journald priority,
 * the level the module gave, and the log_level filter, like every other line. */
static void call_log_write(int level, const char *module, const char *msg)
{
	log_msg(level < LMMS_LOG_ERR ? LMMS_LOG_ERR : level > LMMS_LOG_DEBUG ? LMMS_LOG_DEBUG : level,
		"module %s: %s", module ? module : "?", msg);
}

/* ---- params ------------------------------------------------------------ */

static const msgpack_object *arg_get(const lmms_call *c, size_t i)
{
	if (!c || !c->args || i >= c->n_args)
		return NULL;
	return &c->args[i];
}

static size_t host_arg_count(const lmms_call *c)
{
	return c ? c->n_args : 0;
}

static lmms_type host_arg_type(const lmms_call *c, size_t i)
{
	const msgpack_object *o = arg_get(c, i);

	if (!o)
		return LMMS_T_NONE;
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return LMMS_T_NIL;
	case MSGPACK_OBJECT_BOOLEAN:
		return LMMS_T_BOOL;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return o->via.u64 > INT64_MAX ? LMMS_T_UINT : LMMS_T_INT;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return LMMS_T_INT;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return LMMS_T_FLOAT;
	case MSGPACK_OBJECT_STR:
		return LMMS_T_STR;
	case MSGPACK_OBJECT_BIN:
		return LMMS_T_BIN;
	case MSGPACK_OBJECT_ARRAY:
		return LMMS_T_ARRAY;
	case MSGPACK_OBJECT_MAP:
		return LMMS_T_MAP;
	case MSGPACK_OBJECT_EXT:
		return LMMS_T_EXT;
	}
	return LMMS_T_NONE;
}

static int host_arg_bool(const lmms_call *c, size_t i, int *out)
{
	const msgpack_object *o = arg_get(c, i);

	if (!o)
		return -ERANGE;
	if (o->type != MSGPACK_OBJECT_BOOLEAN)
		return -EINVAL;
	if (out)
		*out = o->via.boolean ? 1 : 0;
	return 0;
}

/* A uint above INT64_MAX is the right type but does not fit: -EOVERFLOW keeps
 * it apart from both "wrong type" and "missing". */
static int host_arg_int(const lmms_call *c, size_t i, int64_t *out)
{
	const msgpack_object *o = arg_get(c, i);

	if (!o)
		return -ERANGE;
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		if (o->via.u64 > INT64_MAX)
			return -EOVERFLOW;
		if (out)
			*out = (int64_t)o->via.u64;
		return 0;
	}
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		if (out)
			*out = o->via.i64;
		return 0;
	}
	return -EINVAL;
}

static int host_arg_double(const lmms_call *c, size_t i, double *out)
{
	const msgpack_object *o = arg_get(c, i);
	double v;

	if (!o)
		return -ERANGE;
	switch (o->type) {
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		v = o->via.f64;
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		v = (double)o->via.u64;
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		v = (double)o->via.i64;
		break;
	default:
		return -EINVAL;
	}
	if (out)
		*out = v;
	return 0;
}

static int host_arg_str(const lmms_call *c, size_t i, const char **p, size_t *n)
{
	const msgpack_object *o = arg_get(c, i);

	if (!o)
		return -ERANGE;
	if (o->type != MSGPACK_OBJECT_STR)
		return -EINVAL;
	if (p)
		*p = o->via.str.size ? o->via.str.ptr : "";
	if (n)
		*n = o->via.str.size;
	return 0;
}

static int host_arg_bytes(const lmms_call *c, size_t i, const void **p, size_t *n)
{
	const msgpack_object *o = arg_get(c, i);
	const char *ptr;
	size_t len;

	if (!o)
		return -ERANGE;
	if (o->type == MSGPACK_OBJECT_STR) {
		ptr = o->via.str.ptr;
		len = o->via.str.size;
	} else if (o->type == MSGPACK_OBJECT_BIN) {
		ptr = o->via.bin.ptr;
		len = o->via.bin.size;
	} else {
		return -EINVAL;
	}
	if (p)
		*p = len ? ptr : "";
	if (n)
		*n = len;
	return 0;
}

/*
 * All args are encoded once, on first use, into one scratch buffer laid out
 * as [offsets: (n_args + 1) size_t][arg 0][arg 1]...; the buffer is never
 * touched again until call_fini, so every pointer handed out stays valid
 * until the op returns, however many args the op asks for.
 */
/* Offsets of each argument in c->wire, past the array header: a walk with
 * the scanner, no copy. scratch holds n_args + 1 offsets, relative to wire. */
static int scratch_fill_wire(lmms_call *c, size_t hdr)
{
	const unsigned char *w = (const unsigned char *)c->wire;
	size_t off, len;
	int r;

	/* the array header: fixarray, array16 or array32 */
	off = (w[0] & 0xf0) == 0x90 ? 1 : w[0] == 0xdc ? 3 : 5;
	for (uint32_t k = 0; k < c->n_args; k++) {
		memcpy(c->scratch.data + (size_t)k * sizeof(size_t), &off, sizeof(off));
		if (off >= c->wire_len)
			return -EBADMSG;
		r = proto_value_len(w + off, c->wire_len - off, c->wire_levels + 1, &len);
		if (r < 0)
			return r;
		off += len;
	}
	memcpy(c->scratch.data + (size_t)c->n_args * sizeof(size_t), &off, sizeof(off));
	c->scratch.size = hdr;
	return 0;
}

static int scratch_fill(lmms_call *c)
{
	size_t hdr = ((size_t)c->n_args + 1) * sizeof(size_t);
	msgpack_packer pk;
	size_t off;
	int r;

	c->scratch.data = malloc(hdr);
	if (!c->scratch.data)
		return -ENOMEM;
	c->scratch.alloc = hdr;
	c->scratch.size = hdr;
	if (c->wire) {
		r = scratch_fill_wire(c, hdr);
		if (r == 0)
			return 0;
		/* not what the pre-scan passed: re-encode instead */
		c->wire = NULL;
	}
	msgpack_packer_init(&pk, &c->scratch, msgpack_sbuffer_write);
	for (uint32_t k = 0; k < c->n_args; k++) {
		off = c->scratch.size;
		memcpy(c->scratch.data + (size_t)k * sizeof(size_t), &off, sizeof(off));
		r = msgpack_pack_object(&pk, c->args[k]);
		if (r < 0)
			goto fail;
	}
	off = c->scratch.size;
	memcpy(c->scratch.data + (size_t)c->n_args * sizeof(size_t), &off, sizeof(off));
	return 0;

fail:
	msgpack_sbuffer_destroy(&c->scratch);
	memset(&c->scratch, 0, sizeof(c->scratch));
	return -ENOMEM;
}

static int host_arg_msgpack(lmms_call *c, size_t i, const void **p, size_t *n)
{
	size_t start, end;
	int r;

	if (!arg_get(c, i))
		return -ERANGE;
	if (!c->scratch.data) {
		r = scratch_fill(c);
		if (r < 0)
			return r;
	}
	memcpy(&start, c->scratch.data + i * sizeof(size_t), sizeof(start));
	memcpy(&end, c->scratch.data + (i + 1) * sizeof(size_t), sizeof(end));
	if (c->wire) {
		c->slice = c->wire + start;
		c->slice_len = end - start;
	}
	if (p)
		*p = (c->wire ? c->wire : c->scratch.data) + start;
	if (n)
		*n = end - start;
	return 0;
}

/* ---- results ------------------------------------------------------------ */

/* Packer callback: the byte budget is enforced here, before any growth. */
static int out_write(void *data, const char *buf, size_t len)
{
	lmms_call *c = data;

	if (len > c->max_result_bytes - c->out.size)
		return -E2BIG;
	if (msgpack_sbuffer_write(&c->out, buf, len) != 0)
		return -ENOMEM;
	return 0;
}

static int write_fail(lmms_call *c, int err)
{
	if (!c->write_error)
		c->write_error = err;
	return err;
}

/* Account for one value about to be written at the current position. */
static int value_begin(lmms_call *c)
{
	if (c->write_error)
		return c->write_error;
	if (c->depth == 0) {
		/* -EEXIST: only this marks "a second top-level value" for
		 * call_finish's message. */
		if (c->values >= 1)
			return write_fail(c, -EEXIST);
		c->values++;
	} else {
		c->pending[c->depth - 1]--;
	}
	return 0;
}

/* Close every container whose last element was just written. */
static void value_end(lmms_call *c)
{
	while (c->depth > 0 && c->pending[c->depth - 1] == 0)
		c->depth--;
}

/* Wraps one packer call: records a failure as sticky, else closes containers. */
static int value_done(lmms_call *c, int r)
{
	if (r != 0)
		return write_fail(c, r < 0 ? r : -ENOMEM);
	value_end(c);
	return 0;
}

/* A scalar result: one slot, one packer call. */
#define RET_SCALAR(c, pack)                    \
	do {                                   \
		int r_;                        \
		if (!(c))                      \
			return -EINVAL;        \
		r_ = value_begin(c);           \
		if (r_ < 0)                    \
			return r_;             \
		return value_done((c), (pack)); \
	} while (0)

static int host_ret_nil(lmms_call *c)
{
	RET_SCALAR(c, msgpack_pack_nil(&c->pk));
}

static int host_ret_bool(lmms_call *c, int v)
{
	RET_SCALAR(c, v ? msgpack_pack_true(&c->pk) : msgpack_pack_false(&c->pk));
}

static int host_ret_int(lmms_call *c, int64_t v)
{
	RET_SCALAR(c, msgpack_pack_int64(&c->pk, v));
}

static int host_ret_uint(lmms_call *c, uint64_t v)
{
	RET_SCALAR(c, msgpack_pack_uint64(&c->pk, v));
}

static int host_ret_double(lmms_call *c, double v)
{
	RET_SCALAR(c, msgpack_pack_double(&c->pk, v));
}

static int ret_raw(lmms_call *c, bool bin, const void *p, size_t n)
{
	int r;

	if (!c)
		return -EINVAL;
	if (!p && n)
		return write_fail(c, -EINVAL);
	if (n > UINT32_MAX)
		return write_fail(c, -E2BIG);
	r = value_begin(c);
	if (r < 0)
		return r;
	r = bin ? msgpack_pack_bin(&c->pk, n) : msgpack_pack_str(&c->pk, n);
	if (r == 0 && n)
		r = bin ? msgpack_pack_bin_body(&c->pk, p, n) : msgpack_pack_str_body(&c->pk, p, n);
	return value_done(c, r);
}

static int host_ret_str(lmms_call *c, const char *p, size_t n)
{
	return ret_raw(c, false, p, n);
}

static int host_ret_bin(lmms_call *c, const void *p, size_t n)
{
	return ret_raw(c, true, p, n);
}

static int ret_container(lmms_call *c, bool map, uint32_t n)
{
	uint64_t owed = map ? 2 * (uint64_t)n : n;
	int r;

	if (!c)
		return -EINVAL;
	if (c->write_error)
		return c->write_error;
	/* Each element takes at least one byte: refuse a count that could
	 * never fit before it confuses the bookkeeping. */
	if (owed > c->max_result_bytes || owed > UINT32_MAX)
		return write_fail(c, -E2BIG);
	if (c->depth >= CALL_RESULT_LEVELS)
		return write_fail(c, -ELOOP);
	r = value_begin(c);
	if (r < 0)
		return r;
	r = map ? msgpack_pack_map(&c->pk, n) : msgpack_pack_array(&c->pk, n);
	if (r != 0)
		return write_fail(c, r < 0 ? r : -ENOMEM);
	if (owed) {
		c->pending[c->depth++] = (uint32_t)owed;
		return 0;
	}
	value_end(c);
	return 0;
}

static int host_ret_array(lmms_call *c, uint32_t n)
{
	return ret_container(c, false, n);
}

static int host_ret_map(lmms_call *c, uint32_t n)
{
	return ret_container(c, true, n);
}

static int host_ret_msgpack(lmms_call *c, const void *p, size_t n)
{
	int r;

	if (!c)
		return -EINVAL;
	if (c->write_error)
		return c->write_error;
	if (!p || n == 0)
		return write_fail(c, -EINVAL);
	if (n > c->max_result_bytes - c->out.size)
		return write_fail(c, -E2BIG);
	/* Bytes from a module are checked like bytes from the network, unless
	 * they are a slice arg_msgpack gave out of the wire params (checked by
	 * the pre-scan) whose nesting fits what is left of the result's. */
	if (!(c->wire && p == c->slice && n == c->slice_len &&
	      c->wire_levels <= CALL_RESULT_LEVELS - c->depth)) {
		r = proto_check_value(p, n, CALL_RESULT_LEVELS - c->depth);
		if (r < 0)
			return write_fail(c, r == -ELOOP ? -ELOOP : -EBADMSG);
	}
	r = value_begin(c);
	if (r < 0)
		return r;
	return value_done(c, out_write(c, p, n));
}

/* ---- failure, log, time ------------------------------------------------- */

/* Cut at a UTF-8 character boundary so a truncated message is still a valid
 * msgpack str for clients that check. */
static void utf8_trim(char *s, size_t len)
{
	while (len > 0 && ((unsigned char)s[len - 1] & 0xc0) == 0x80)
		len--;
	if (len > 0 && ((unsigned char)s[len - 1] & 0x80))
		len--; /* lead byte whose continuation was cut */
	s[len] = '\0';
}

static void format_bounded(char *buf, size_t size, const char *fmt, va_list ap)
{
	int n = vsnprintf(buf, size, fmt, ap);

	if (n < 0)
		snprintf(buf, size, "(unformattable message)");
	else if ((size_t)n >= size)
		utf8_trim(buf, size - 1);
}

/* The first failure wins: it is the most specific one; callers up the stack
 * that fail again only add a generic wrapper. */
static int host_fail(lmms_call *c, lmms_fail_class cls, const char *fmt, ...)
{
	va_list ap;

	if (!c)
		return -1;
	if (c->failed)
		return -1;
	c->failed = true;
	c->fail_class = cls == LMMS_FAIL_PARAMS ? LMMS_FAIL_PARAMS : LMMS_FAIL_MODULE;
	if (!fmt) {
		snprintf(c->fail_msg, sizeof(c->fail_msg), "operation failed");
		return -1;
	}
	va_start(ap, fmt);
	format_bounded(c->fail_msg, sizeof(c->fail_msg), fmt, ap);
	va_end(ap);
	return -1;
}

static void host_log(lmms_call *c, int level, const char *fmt, ...)
{
	char line[CALL_LOG_LINE_MAX];
	va_list ap;

	if (!fmt)
		return;
	va_start(ap, fmt);
	format_bounded(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One module line must stay one log line. */
	for (char *s = line; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
	}
	call_log_write(level, c ? c->module_name : NULL, line);
}

static uint64_t host_now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Settings are read on any thread; `read` only ever goes false -> true, and
 * the loop thread looks at it after init returned on that same thread. */
static const char *host_setting(lmms_call *c, const char *key)
{
	if (!c || !c->settings || !key)
		return NULL;
	for (uint32_t i = 0; i < c->settings->n; i++) {
		call_setting *s = &c->settings->v[i];

		if (strcmp(s->key, key) == 0) {
			__atomic_store_n(&s->read, true, __ATOMIC_RELAXED);
			return s->value;
		}
	}
	return NULL;
}

const lmms_host call_host = {
	.abi_version = LMMS_MODULE_ABI_VERSION,
	.size = sizeof(lmms_host),
	.arg_count = host_arg_count,
	.arg_type = host_arg_type,
	.arg_bool = host_arg_bool,
	.arg_int = host_arg_int,
	.arg_double = host_arg_double,
	.arg_str = host_arg_str,
	.arg_bytes = host_arg_bytes,
	.arg_msgpack = host_arg_msgpack,
	.ret_nil = host_ret_nil,
	.ret_bool = host_ret_bool,
	.ret_int = host_ret_int,
	.ret_uint = host_ret_uint,
	.ret_double = host_ret_double,
	.ret_str = host_ret_str,
	.ret_bin = host_ret_bin,
	.ret_array = host_ret_array,
	.ret_map = host_ret_map,
	.ret_msgpack = host_ret_msgpack,
	.fail = host_fail,
	.log = host_log,
	.now_ms = host_now_ms,
	.setting = host_setting,
};

int call_settings_add(call_settings *s, const char *key, const char *value)
{
	call_setting *v;

	if (s->n == UINT32_MAX)
		return -E2BIG;
	v = realloc(s->v, (s->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->v = v;
	v += s->n;
	v->key = strdup(key);
	v->value = strdup(value);
	v->read = false;
	if (!v->key || !v->value) {
		free(v->key);
		free(v->value);
		return -ENOMEM;
	}
	s->n++;
	return 0;
}

void call_settings_free(call_settings *s)
{
	for (uint32_t i = 0; i < s->n; i++) {
		free(s->v[i].key);
		free(s->v[i].value);
	}
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

/* ---- daemon side -------------------------------------------------------- */

void call_init(lmms_call *c, const msgpack_object *params, size_t max_result_bytes,
	       const char *module_name)
{
	memset(c, 0, sizeof(*c));
	if (params && params->type == MSGPACK_OBJECT_ARRAY && params->via.array.size) {
		c->args = params->via.array.ptr;
		c->n_args = params->via.array.size;
	}
	c->max_result_bytes = max_result_bytes ? max_result_bytes : CALL_DEFAULT_MAX_RESULT;
	msgpack_sbuffer_init(&c->out);
	msgpack_packer_init(&c->pk, c, out_write);
	msgpack_sbuffer_init(&c->scratch);
	c->module_name = module_name;
}

void call_fini(lmms_call *c)
{
	if (!c)
		return;
	free(c->out.data);
	memset(&c->out, 0, sizeof(c->out));
	free(c->scratch.data);
	memset(&c->scratch, 0, sizeof(c->scratch));
	c->args = NULL;
	c->n_args = 0;
}

static const char *write_error_text(int err)
{
	switch (err) {
	case -EEXIST:
		return "operation wrote more than one result value";
	case -ELOOP:
		return "result nests too deeply";
	case -EBADMSG:
		return "operation returned malformed msgpack";
	case -EINVAL:
		return "operation passed an invalid result value";
	case -ENOMEM:
		return "out of memory writing the result";
	default:
		return "operation failed writing its result";
	}
}

proto_err call_finish(lmms_call *c, int rc, const char **msg)
{
	const char *m = NULL;
	proto_err e = PROTO_OK;

	if (c->write_error == -E2BIG) {
		snprintf(c->fail_msg, sizeof(c->fail_msg), "result exceeds the limit of %zu bytes",
			 c->max_result_bytes);
		m = c->fail_msg;
		e = PROTO_E_TOO_LARGE;
	} else if (c->failed) {
		m = c->fail_msg;
		e = c->fail_class == LMMS_FAIL_PARAMS ? PROTO_E_BAD_PARAMS : PROTO_E_MODULE_ERROR;
	} else if (rc < 0) {
		snprintf(c->fail_msg, sizeof(c->fail_msg), "operation failed (%d) without a message",
			 rc);
		m = c->fail_msg;
		e = PROTO_E_MODULE_ERROR;
	} else if (c->write_error) {
		m = write_error_text(c->write_error);
		e = PROTO_E_MODULE_ERROR;
	} else if (c->values == 0) {
		m = "operation returned no result";
		e = PROTO_E_MODULE_ERROR;
	} else if (c->depth > 0) {
		snprintf(c->fail_msg, sizeof(c->fail_msg),
			 "operation left its result incomplete (%u values missing)",
			 c->pending[c->depth - 1]);
		m = c->fail_msg;
		e = PROTO_E_MODULE_ERROR;
	}
	if (msg)
		*msg = m;
	return e;
}

char *call_take_result(lmms_call *c, size_t *len)
{
	char *p = c->out.data;

	if (len)
		*len = p ? c->out.size : 0;
	memset(&c->out, 0, sizeof(c->out));
	return p;
}
