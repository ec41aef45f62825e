/*
 * lmmsctl.c - command-line control and inspection tool for lmmsd.
 *
 * A thin layer over liblmms-client: it turns command-line words into calls
 * of the built-in "lmms" interface (or any method, for "call"), and results
 * into human tables or JSON.
 *
 * msgpack -> JSON mapping (what "call" and --json print):
 *   nil/bool/int/float map to their JSON types (NaN and infinities become
 *   null; integers above INT64_MAX become JSON reals); str and bin print as a
 *   JSON string when they are valid UTF-8, otherwise as {"$bin": "<base64>"};
 *   ext prints as {"$ext": type, "data": "<base64>"}; a map key that is not a
 *   string is printed as its own compact JSON text (so {1: "a"} -> {"1": "a"}).
 * JSON -> msgpack (ARGs of "call"): the obvious mapping, and {"$bin": "<base64>"}
 * packs as a msgpack bin, so binary data can be passed too.
 *
 * Exit status: 0 ok, 1 the daemon answered an error, 2 usage, 3 cannot
 * connect or the connection failed (timeout, daemon went away).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <lmms/lmms-client.h>
#include <msgpack.h>

#include "lmms-build-config.h"

enum {
	EXIT_OK = 0,
	EXIT_DAEMON_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_CONNECT = 3,
};

#define JSON_MAX_DEPTH 64

typedef struct ctl {
	const char *socket;
	char socket_buf[128];
	bool json;
	uint32_t timeout_ms;
	lmms_client *client;
} ctl;

static volatile sig_atomic_t interrupted;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: lmmsctl [-s PATH] [--json] [--timeout MS] COMMAND [ARGS]\n"
		"\n"
		"Commands:\n"
		"  ping                      check that the daemon answers\n"
		"  call METHOD [ARG...]      call any method; each ARG is a JSON value\n"
		"                            (quote strings: '\"abc\"'; {\"$bin\": \"<base64>\"} is binary)\n"
		"  modules                   table of modules and their state\n"
		"  ops                       table of operations, heat and latency\n"
		"  stats [--prometheus]      daemon counters\n"
		"  load NAME                 load a module now\n"
		"  unload NAME [--now]       unload a module (--now skips the grace period)\n"
		"  invalidate [WHAT]         drop cached results (all, a module or a method)\n"
		"  reload                    re-read the configuration\n"
		"  top [-n COUNT]            live view of stats and modules, every second\n"
		"\n"
		"Options:\n"
		"  -s, --socket PATH         daemon socket (default: $LMMS_SOCKET, else\n"
		"                            /run/lmms/lmmsd.sock for root, else\n"
		"                            $XDG_RUNTIME_DIR/lmms/lmmsd.sock)\n"
		"  -j, --json                print the raw result as JSON\n"
		"  -t, --timeout MS          per-call timeout in milliseconds (0: none; default 30000)\n"
		"  -h, --help                show this help\n"
		"  -V, --version             show the version\n"
		"\n"
		"Binary strings that are not UTF-8 print as {\"$bin\": \"<base64>\"}.\n"
		"Exit status: 0 ok, 1 the daemon answered an error, 2 usage, 3 cannot connect.\n");
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "lmmsctl: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n\n");
	va_end(ap);
	usage(stderr);
	return EXIT_USAGE;
}

/* ---- base64 ---- */

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const unsigned char *p, size_t n)
{
	char *out, *o;

	if (n > (SIZE_MAX - 1) / 4 * 3 - 3)
		return NULL;
	out = malloc((n + 2) / 3 * 4 + 1);
	if (!out)
		return NULL;
	o = out;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		*o++ = b64_chars[(v >> 18) & 63];
		*o++ = b64_chars[(v >> 12) & 63];
		*o++ = i + 1 < n ? b64_chars[(v >> 6) & 63] : '=';
		*o++ = i + 2 < n ? b64_chars[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

static int b64_value(char ch)
{
	const char *p = ch ? strchr(b64_chars, ch) : NULL;

	return p ? (int)(p - b64_chars) : -1;
}

/* Decode into a malloc'd buffer; -EINVAL on a bad character or length. */
static int b64_decode(const char *s, size_t n, unsigned char **out, size_t *out_len)
{
	unsigned char *buf, *o;
	uint32_t acc = 0;
	int bits = 0;

	while (n > 0 && s[n - 1] == '=')
		n--;
	buf = malloc(n / 4 * 3 + 3);
	if (!buf)
		return -ENOMEM;
	o = buf;
	for (size_t i = 0; i < n; i++) {
		int v = b64_value(s[i]);

		if (v < 0) {
			free(buf);
			return -EINVAL;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			*o++ = (unsigned char)(acc >> bits);
		}
	}
	if (bits >= 6) { /* one stray character cannot encode a byte */
		free(buf);
		return -EINVAL;
	}
	*out = buf;
	*out_len = (size_t)(o - buf);
	return 0;
}

/* ---- msgpack -> JSON ---- */

static json_t *json_bin(const char *tag, const void *p, size_t n)
{
	char *b = b64_encode(p, n);
	json_t *o;

	if (!b)
		return NULL;
	o = json_pack("{s:s}", tag, b);
	free(b);
	return o;
}

static json_t *json_bytes(const char *p, size_t n)
{
	json_t *s = json_stringn(p, n); /* NULL when not valid UTF-8 */

	return s ? s : json_bin("$bin", p, n);
}

static json_t *mp_to_json(const msgpack_object *o, int depth);

static char *mp_key_text(const msgpack_object *k, int depth)
{
	json_t *j;
	char *s;

	if (k->type == MSGPACK_OBJECT_STR) {
		j = json_stringn(k->via.str.ptr, k->via.str.size);
		if (j && !memchr(k->via.str.ptr, '\0', k->via.str.size)) {
			s = strdup(json_string_value(j));
			json_decref(j);
			return s;
		}
		json_decref(j);
	}
	j = mp_to_json(k, depth);
	if (!j)
		return NULL;
	s = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
	json_decref(j);
	return s;
}

static json_t *mp_to_json(const msgpack_object *o, int depth)
{
	json_t *j;

	if (depth > JSON_MAX_DEPTH)
		return NULL;

	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return json_null();
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > (uint64_t)INT64_MAX)
			return json_real((double)o->via.u64);
		return json_integer((json_int_t)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer((json_int_t)o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		if (!isfinite(o->via.f64))
			return json_null();
		return json_real(o->via.f64);
	case MSGPACK_OBJECT_STR:
		return json_bytes(o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_BIN:
		return json_bytes(o->via.bin.ptr, o->via.bin.size);
	case MSGPACK_OBJECT_EXT: {
		json_t *d = json_bin("$ext", o->via.ext.ptr, o->via.ext.size);

		if (!d)
			return NULL;
		/* {"$ext": type, "data": base64} */
		j = json_pack("{s:i,s:O}", "$ext", (int)o->via.ext.type, "data",
			      json_object_get(d, "$ext"));
		json_decref(d);
		return j;
	}
	case MSGPACK_OBJECT_ARRAY:
		j = json_array();
		if (!j)
			return NULL;
		for (uint32_t i = 0; i < o->via.array.size; i++) {
			json_t *e = mp_to_json(&o->via.array.ptr[i], depth + 1);

			if (!e || json_array_append_new(j, e) < 0) {
				json_decref(j);
				return NULL;
			}
		}
		return j;
	case MSGPACK_OBJECT_MAP:
		j = json_object();
		if (!j)
			return NULL;
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];
			char *k = mp_key_text(&kv->key, depth + 1);
			json_t *v = k ? mp_to_json(&kv->val, depth + 1) : NULL;

			if (!v || json_object_set_new(j, k, v) < 0) {
				free(k);
				json_decref(j);
				return NULL;
			}
			free(k);
		}
		return j;
	}
	return NULL;
}

static int json_print(const msgpack_object *o)
{
	json_t *j = mp_to_json(o, 0);
	char *s;

	if (!j) {
		fprintf(stderr, "lmmsctl: cannot convert the result to JSON\n");
		return -EINVAL;
	}
	s = json_dumps(j, JSON_ENCODE_ANY | JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (!s)
		return -ENOMEM;
	puts(s);
	free(s);
	return 0;
}

/* ---- JSON -> msgpack ---- */

static int json_to_mp(msgpack_packer *pk, json_t *j, int depth)
{
	const char *key;
	json_t *v;
	size_t i;

	if (depth > JSON_MAX_DEPTH)
		return -E2BIG;

	switch (json_typeof(j)) {
	case JSON_NULL:
		return msgpack_pack_nil(pk);
	case JSON_TRUE:
		return msgpack_pack_true(pk);
	case JSON_FALSE:
		return msgpack_pack_false(pk);
	case JSON_INTEGER:
		return msgpack_pack_int64(pk, json_integer_value(j));
	case JSON_REAL:
		return msgpack_pack_double(pk, json_real_value(j));
	case JSON_STRING:
		if (msgpack_pack_str(pk, json_string_length(j)) < 0)
			return -ENOMEM;
		return msgpack_pack_str_body(pk, json_string_value(j), json_string_length(j));
	case JSON_ARRAY:
		if (msgpack_pack_array(pk, json_array_size(j)) < 0)
			return -ENOMEM;
		json_array_foreach(j, i, v) {
			int r = json_to_mp(pk, v, depth + 1);

			if (r < 0)
				return r;
		}
		return 0;
	case JSON_OBJECT: {
		json_t *b = json_object_get(j, "$bin");

		if (json_object_size(j) == 1 && json_is_string(b)) {
			unsigned char *data;
			size_t n;
			int r = b64_decode(json_string_value(b), json_string_length(b), &data, &n);

			if (r < 0)
				return r;
			r = msgpack_pack_bin(pk, n);
			if (r == 0)
				r = msgpack_pack_bin_body(pk, data, n);
			free(data);
			return r;
		}
		if (msgpack_pack_map(pk, json_object_size(j)) < 0)
			return -ENOMEM;
		json_object_foreach(j, key, v) {
			size_t kn = strlen(key);
			int r;

			if (msgpack_pack_str(pk, kn) < 0 || msgpack_pack_str_body(pk, key, kn) < 0)
				return -ENOMEM;
			r = json_to_mp(pk, v, depth + 1);
			if (r < 0)
				return r;
		}
		return 0;
	}
	}
	return -EINVAL;
}

/* ---- calls ---- */

/* A decoded reply: the msgpack result object of one call. */
typedef struct result {
	lmms_reply reply; /* the unpacked strings point into reply.result */
	msgpack_unpacked up;
	const msgpack_object *obj;
} result;

static void result_clear(result *res)
{
	if (res->obj) {
		msgpack_unpacked_destroy(&res->up);
		lmms_reply_clear(&res->reply);
	}
	res->obj = NULL;
}

static int ctl_connect(ctl *c)
{
	int r;

	if (c->client)
		return 0;
	if (!c->socket) {
		r = lmms_client_default_socket(c->socket_buf, sizeof(c->socket_buf));
		if (r < 0) {
			fprintf(stderr, "lmmsctl: cannot find the default socket: %s\n",
				lmms_client_strerror(r));
			return EXIT_CONNECT;
		}
		c->socket = c->socket_buf;
	}
	r = lmms_client_connect(c->socket, &c->client);
	if (r < 0) {
		fprintf(stderr, "lmmsctl: cannot connect to %s: %s\n", c->socket,
			lmms_client_strerror(r));
		return EXIT_CONNECT;
	}
	lmms_client_set_timeout(c->client, c->timeout_ms);
	return EXIT_OK;
}

/* Call method with packed params (NULL: []). Returns an exit status; on
 * EXIT_OK res holds the result. */
static int ctl_call(ctl *c, const char *method, const msgpack_sbuffer *params, result *res)
{
	lmms_reply *reply = &res->reply;
	size_t off = 0;
	int r;

	res->obj = NULL;
	r = ctl_connect(c);
	if (r != EXIT_OK)
		return r;

	r = lmms_client_call(c->client, method, params ? params->data : NULL,
			     params ? params->size : 0, reply);
	if (r < 0) {
		fprintf(stderr, "lmmsctl: %s: %s\n", method, lmms_client_strerror(r));
		return EXIT_CONNECT;
	}
	if (reply->error_code) {
		fprintf(stderr, "%s: %s\n", reply->error_code, reply->error_message);
		lmms_reply_clear(reply);
		return EXIT_DAEMON_ERROR;
	}

	msgpack_unpacked_init(&res->up);
	if (msgpack_unpack_next(&res->up, reply->result, reply->result_len, &off) !=
	    MSGPACK_UNPACK_SUCCESS) {
		msgpack_unpacked_destroy(&res->up);
		lmms_reply_clear(reply);
		fprintf(stderr, "lmmsctl: %s: undecodable result\n", method);
		return EXIT_CONNECT;
	}
	res->obj = &res->up.data;
	return EXIT_OK;
}

/* Call method with string params. */
static int ctl_call_strs(ctl *c, const char *method, const char *const *args, size_t n,
			 bool extra_true, result *res)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int r;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, n + (extra_true ? 1 : 0));
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(args[i]);

		msgpack_pack_str(&pk, len);
		msgpack_pack_str_body(&pk, args[i], len);
	}
	if (extra_true)
		msgpack_pack_true(&pk);
	r = ctl_call(c, method, &sb, res);
	msgpack_sbuffer_destroy(&sb);
	return r;
}

/* ---- value formatting ---- */

static const msgpack_object *map_get(const msgpack_object *map, const char *key)
{
	size_t kn = strlen(key);

	if (!map || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;

		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kn &&
		    memcmp(k->via.str.ptr, key, kn) == 0)
			return &map->via.map.ptr[i].val;
	}
	return NULL;
}

static bool mp_number(const msgpack_object *o, double *out)
{
	switch (o ? o->type : MSGPACK_OBJECT_NIL) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		*out = (double)o->via.u64;
		return true;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		*out = (double)o->via.i64;
		return true;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		*out = o->via.f64;
		return true;
	default:
		return false;
	}
}

typedef enum fmt {
	FMT_PLAIN, /* numbers and strings as they are, other values as JSON */
	FMT_BOOL, /* yes/no */
	FMT_BYTES, /* 1.2 MiB */
	FMT_MS, /* 850ms, 3.2s, 4.0m, 1.5h */
} fmt;

static char *fmt_plain(const msgpack_object *o)
{
	char buf[64];
	json_t *j;
	char *s;

	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return strdup("-");
	case MSGPACK_OBJECT_BOOLEAN:
		return strdup(o->via.boolean ? "true" : "false");
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		snprintf(buf, sizeof(buf), "%" PRIu64, o->via.u64);
		return strdup(buf);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		snprintf(buf, sizeof(buf), "%" PRId64, o->via.i64);
		return strdup(buf);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		snprintf(buf, sizeof(buf), "%.6g", o->via.f64);
		return strdup(buf);
	case MSGPACK_OBJECT_STR:
		j = json_stringn(o->via.str.ptr, o->via.str.size);
		if (j && !memchr(o->via.str.ptr, '\0', o->via.str.size)) {
			s = strdup(json_string_value(j));
			json_decref(j);
			return s;
		}
		json_decref(j);
		break;
	default:
		break;
	}
	j = mp_to_json(o, 0);
	s = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
	json_decref(j);
	return s ? s : strdup("?");
}

static char *fmt_value(const msgpack_object *o, fmt f)
{
	char buf[64];
	double v;

	if (!o)
		return strdup("-");
	if (f == FMT_BOOL && o->type == MSGPACK_OBJECT_BOOLEAN)
		return strdup(o->via.boolean ? "yes" : "no");
	if (f == FMT_BYTES && mp_number(o, &v) && v >= 0) {
		static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
		size_t u = 0;

		if (v < 1024) {
			snprintf(buf, sizeof(buf), "%.0f B", v);
			return strdup(buf);
		}
		v /= 1024;
		while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
			v /= 1024;
			u++;
		}
		snprintf(buf, sizeof(buf), "%.1f %s", v, units[u]);
		return strdup(buf);
	}
	if (f == FMT_MS && mp_number(o, &v) && v >= 0) {
		if (v < 1000)
			snprintf(buf, sizeof(buf), "%.0fms", v);
		else if (v < 60000)
			snprintf(buf, sizeof(buf), "%.1fs", v / 1000);
		else if (v < 3600000)
			snprintf(buf, sizeof(buf), "%.1fm", v / 60000);
		else
			snprintf(buf, sizeof(buf), "%.1fh", v / 3600000);
		return strdup(buf);
	}
	return fmt_plain(o);
}

/* ---- tables ---- */

typedef struct table {
	size_t ncols;
	size_t nrows;
	size_t cap;
	char **cells; /* nrows * ncols, row-major; row 0 is the header */
	bool oom;
} table;

static void table_init(table *t, size_t ncols)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
}

/* Take ownership of ncols malloc'd cells (NULL cells count as OOM). */
static void table_add_row(table *t, char **row)
{
	if (t->nrows == t->cap && !t->oom) {
		size_t ncap = t->cap ? t->cap * 2 : 16;
		char **n = realloc(t->cells, ncap * t->ncols * sizeof(*n));

		if (!n) {
			t->oom = true;
		} else {
			t->cells = n;
			t->cap = ncap;
		}
	}
	for (size_t i = 0; i < t->ncols; i++)
		if (!row[i])
			t->oom = true;
	if (t->oom) {
		for (size_t i = 0; i < t->ncols; i++)
			free(row[i]);
		return;
	}
	memcpy(&t->cells[t->nrows * t->ncols], row, t->ncols * sizeof(*row));
	t->nrows++;
}

/* Display width: count UTF-8 code points, not bytes. */
static size_t text_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

static int table_print(const table *t, FILE *f)
{
	size_t *width;

	if (t->oom) {
		fprintf(stderr, "lmmsctl: out of memory\n");
		return -ENOMEM;
	}
	width = calloc(t->ncols ? t->ncols : 1, sizeof(*width));
	if (!width)
		return -ENOMEM;
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t i = 0; i < t->ncols; i++) {
			size_t w = text_width(t->cells[r * t->ncols + i]);

			if (w > width[i])
				width[i] = w;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t i = 0; i < t->ncols; i++) {
			const char *cell = t->cells[r * t->ncols + i];

			fputs(cell, f);
			if (i + 1 < t->ncols)
				fprintf(f, "%*s", (int)(width[i] - text_width(cell) + 2), "");
		}
		fputc('\n', f);
	}
	free(width);
	return 0;
}

static void table_free(table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

typedef struct column {
	const char *header;
	const char *key;
	fmt f;
} column;

#define MAX_COLUMNS 16

/* Print an array of maps as a table, one row per map. */
static int print_map_rows(const msgpack_object *arr, const column *cols, size_t ncols)
{
	char *row[MAX_COLUMNS];
	table t;
	int r;

	if (arr->type != MSGPACK_OBJECT_ARRAY || ncols > MAX_COLUMNS) {
		fprintf(stderr, "lmmsctl: unexpected result shape (not a list)\n");
		return EXIT_CONNECT;
	}
	table_init(&t, ncols);
	for (size_t i = 0; i < ncols; i++)
		row[i] = strdup(cols[i].header);
	table_add_row(&t, row);
	for (uint32_t n = 0; n < arr->via.array.size; n++) {
		for (size_t i = 0; i < ncols; i++)
			row[i] = fmt_value(map_get(&arr->via.array.ptr[n], cols[i].key), cols[i].f);
		table_add_row(&t, row);
	}
	r = table_print(&t, stdout);
	table_free(&t);
	return r < 0 ? EXIT_CONNECT : EXIT_OK;
}

static const column module_columns[] = {
	{ "NAME", "name", FMT_PLAIN },
	{ "STATE", "state", FMT_PLAIN },
	{ "POLICY", "policy", FMT_PLAIN },
	{ "PROT", "protected", FMT_BOOL },
	{ "REFS", "refs", FMT_PLAIN },
	{ "IDLE", "idle_ms", FMT_MS },
	{ "CACHE", "cache_deps", FMT_PLAIN },
	{ "RESIDENT", "resident_bytes", FMT_BYTES },
	{ "LOADS", "loads", FMT_PLAIN },
	{ "UNLOADS", "unloads", FMT_PLAIN },
};

static const column op_columns[] = {
	{ "METHOD", "method", FMT_PLAIN },
	{ "CALLS", "calls", FMT_PLAIN },
	{ "HEAT", "heat", FMT_PLAIN },
	{ "FAST", "fast_path", FMT_BOOL },
	{ "AVG_US", "avg_us", FMT_PLAIN },
	{ "P99_US", "p99_us", FMT_PLAIN },
	{ "TTL", "cache_ttl_ms", FMT_MS },
	{ "BLOCKING", "blocking", FMT_BOOL },
};

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static bool ends_with(const char *s, size_t n, const char *suffix)
{
	size_t sn = strlen(suffix);

	return n >= sn && memcmp(s + n - sn, suffix, sn) == 0;
}

static fmt stat_fmt(const char *key, size_t n)
{
	if (ends_with(key, n, "_bytes"))
		return FMT_BYTES;
	if (ends_with(key, n, "_ms"))
		return FMT_MS;
	return FMT_PLAIN;
}

static char *key_dup(const msgpack_object *k)
{
	if (k->type == MSGPACK_OBJECT_STR)
		return strndup(k->via.str.ptr, k->via.str.size);
	return fmt_plain(k);
}

/* A map as a two-column KEY VALUE table, in the daemon's order. */
static int print_map_kv(const msgpack_object *map)
{
	char *row[2];
	table t;
	int r;

	if (map->type != MSGPACK_OBJECT_MAP) {
		fprintf(stderr, "lmmsctl: unexpected result shape (not a map)\n");
		return EXIT_CONNECT;
	}
	table_init(&t, 2);
	row[0] = strdup("KEY");
	row[1] = strdup("VALUE");
	table_add_row(&t, row);
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];

		row[0] = key_dup(&kv->key);
		row[1] = row[0] ? fmt_value(&kv->val, stat_fmt(row[0], strlen(row[0]))) : NULL;
		table_add_row(&t, row);
	}
	r = table_print(&t, stdout);
	table_free(&t);
	return r < 0 ? EXIT_CONNECT : EXIT_OK;
}

/* Monotonic totals are counters; the rest (sizes, current counts) gauges. */
static bool stat_is_counter(const char *k, size_t n)
{
	static const char *const suffixes[] = { "_total", "hits",     "misses",   "loads",
						"unloads", "_blocked", "evictions" };

	for (size_t i = 0; i < N_ELEMS(suffixes); i++)
		if (ends_with(k, n, suffixes[i]))
			return true;
	return memmem(k, n, "reclaimed", strlen("reclaimed")) != NULL;
}

static int print_prometheus(const msgpack_object *map)
{
	if (map->type != MSGPACK_OBJECT_MAP) {
		fprintf(stderr, "lmmsctl: unexpected result shape (not a map)\n");
		return EXIT_CONNECT;
	}
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];
		char name[256];
		size_t n = 0;
		double v;

		if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size == 0 ||
		    kv->key.via.str.size > sizeof(name) - 1)
			continue;
		/* Metric names allow [a-zA-Z0-9_:]; keep them recognisable. */
		for (uint32_t k = 0; k < kv->key.via.str.size; k++) {
			char ch = kv->key.via.str.ptr[k];

			name[n++] = ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
				     (ch >= '0' && ch <= '9') || ch == '_') ?
					    ch :
					    '_';
		}
		name[n] = '\0';

		if (kv->val.type == MSGPACK_OBJECT_BOOLEAN)
			v = kv->val.via.boolean ? 1 : 0;
		else if (!mp_number(&kv->val, &v))
			continue;

		printf("# TYPE lmms_%s %s\n", name, stat_is_counter(name, n) ? "counter" : "gauge");
		if (kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			printf("lmms_%s %" PRIu64 "\n", name, kv->val.via.u64);
		else if (kv->val.type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
			printf("lmms_%s %" PRId64 "\n", name, kv->val.via.i64);
		else
			printf("lmms_%s %.17g\n", name, v);
	}
	return EXIT_OK;
}

/* ---- commands ---- */

typedef struct cmd_args {
	int argc;
	char **argv; /* positional words after the command name */
	bool now;
	bool prometheus;
	long count; /* top -n; 0 = forever */
} cmd_args;

static int cmd_ping(ctl *c, cmd_args *a)
{
	result res;
	int r;

	if (a->argc != 0)
		return usage_error("ping takes no arguments");
	r = ctl_call(c, "lmms.ping", NULL, &res);
	if (r != EXIT_OK)
		return r;
	if (c->json)
		json_print(res.obj);
	else if (res.obj->type == MSGPACK_OBJECT_STR)
		printf("%.*s\n", (int)res.obj->via.str.size, res.obj->via.str.ptr);
	else
		json_print(res.obj);
	result_clear(&res);
	return EXIT_OK;
}

static int cmd_call(ctl *c, cmd_args *a)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	result res;
	int r = EXIT_USAGE;

	if (a->argc < 1)
		return usage_error("call needs a METHOD");

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, (size_t)a->argc - 1);
	for (int i = 1; i < a->argc; i++) {
		json_error_t jerr;
		json_t *j = json_loads(a->argv[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
		int pr;

		if (!j) {
			fprintf(stderr,
				"lmmsctl: argument %d is not a JSON value: %s: %s\n"
				"hint: quote strings, e.g. '\"%s\"'\n",
				i, a->argv[i], jerr.text, a->argv[i]);
			goto out;
		}
		pr = json_to_mp(&pk, j, 0);
		json_decref(j);
		if (pr < 0) {
			fprintf(stderr, "lmmsctl: argument %d: %s\n", i,
				pr == -EINVAL ? "bad {\"$bin\": ...} base64" : "cannot encode");
			goto out;
		}
	}

	r = ctl_call(c, a->argv[0], &sb, &res);
	if (r == EXIT_OK) {
		if (json_print(res.obj) < 0)
			r = EXIT_CONNECT;
		result_clear(&res);
	}
out:
	msgpack_sbuffer_destroy(&sb);
	return r;
}

static int cmd_table(ctl *c, cmd_args *a, const char *method, const column *cols, size_t ncols)
{
	result res;
	int r;

	if (a->argc != 0)
		return usage_error("unexpected argument: %s", a->argv[0]);
	r = ctl_call(c, method, NULL, &res);
	if (r != EXIT_OK)
		return r;
	if (c->json)
		r = json_print(res.obj) < 0 ? EXIT_CONNECT : EXIT_OK;
	else
		r = print_map_rows(res.obj, cols, ncols);
	result_clear(&res);
	return r;
}

static int cmd_modules(ctl *c, cmd_args *a)
{
	return cmd_table(c, a, "lmms.modules", module_columns, N_ELEMS(module_columns));
}

static int cmd_ops(ctl *c, cmd_args *a)
{
	return cmd_table(c, a, "lmms.ops", op_columns, N_ELEMS(op_columns));
}

static int cmd_stats(ctl *c, cmd_args *a)
{
	result res;
	int r;

	if (a->argc != 0)
		return usage_error("unexpected argument: %s", a->argv[0]);
	if (c->json && a->prometheus)
		return usage_error("--json and --prometheus exclude each other");
	r = ctl_call(c, "lmms.stats", NULL, &res);
	if (r != EXIT_OK)
		return r;
	if (c->json)
		r = json_print(res.obj) < 0 ? EXIT_CONNECT : EXIT_OK;
	else if (a->prometheus)
		r = print_prometheus(res.obj);
	else
		r = print_map_kv(res.obj);
	result_clear(&res);
	return r;
}

static int cmd_load(ctl *c, cmd_args *a)
{
	result res;
	int r;

	if (a->argc != 1)
		return usage_error("load takes one module NAME");
	r = ctl_call_strs(c, "lmms.load", (const char *const *)a->argv, 1, false, &res);
	if (r != EXIT_OK)
		return r;
	if (c->json || res.obj->type != MSGPACK_OBJECT_MAP) {
		r = json_print(res.obj) < 0 ? EXIT_CONNECT : EXIT_OK;
	} else {
		/* One module map: show it as a one-row modules table. */
		msgpack_object arr = { .type = MSGPACK_OBJECT_ARRAY };

		arr.via.array.size = 1;
		arr.via.array.ptr = (msgpack_object *)res.obj;
		r = print_map_rows(&arr, module_columns, N_ELEMS(module_columns));
	}
	result_clear(&res);
	return r;
}

static int cmd_unload(ctl *c, cmd_args *a)
{
	result res;
	int r;

	if (a->argc != 1)
		return usage_error("unload takes one module NAME");
	r = ctl_call_strs(c, "lmms.unload", (const char *const *)a->argv, 1, a->now, &res);
	if (r != EXIT_OK)
		return r;
	if (c->json)
		json_print(res.obj);
	else
		printf("unloaded %s\n", a->argv[0]);
	result_clear(&res);
	return EXIT_OK;
}

static int cmd_invalidate(ctl *c, cmd_args *a)
{
	result res;
	int r;

	if (a->argc > 1)
		return usage_error("invalidate takes at most one argument");
	r = ctl_call_strs(c, "lmms.invalidate", (const char *const *)a->argv, (size_t)a->argc,
			  false, &res);
	if (r != EXIT_OK)
		return r;
	json_print(res.obj); /* a number: the same in both modes */
	result_clear(&res);
	return EXIT_OK;
}

static int cmd_reload(ctl *c, cmd_args *a)
{
	result res;
	int r;

	if (a->argc != 0)
		return usage_error("reload takes no arguments");
	r = ctl_call(c, "lmms.reload", NULL, &res);
	if (r != EXIT_OK)
		return r;
	if (c->json)
		json_print(res.obj);
	else
		printf("configuration reloaded\n");
	result_clear(&res);
	return EXIT_OK;
}

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

static int top_once(ctl *c, bool tty)
{
	result stats, mods;
	int r;

	r = ctl_call(c, "lmms.stats", NULL, &stats);
	if (r != EXIT_OK)
		return r;
	r = ctl_call(c, "lmms.modules", NULL, &mods);
	if (r != EXIT_OK) {
		result_clear(&stats);
		return r;
	}

	if (c->json) {
		json_t *o = json_object();
		char *s;

		json_object_set_new(o, "stats", mp_to_json(stats.obj, 0));
		json_object_set_new(o, "modules", mp_to_json(mods.obj, 0));
		s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(o);
		if (s)
			puts(s);
		free(s);
	} else {
		time_t now = time(NULL);
		char when[64];

		strftime(when, sizeof(when), "%H:%M:%S", localtime(&now));
		if (tty)
			fputs("\033[H\033[2J", stdout);
		printf("lmmsd at %s  %s\n\n", c->socket, when);
		r = print_map_kv(stats.obj);
		if (r == EXIT_OK) {
			putchar('\n');
			r = print_map_rows(mods.obj, module_columns, N_ELEMS(module_columns));
		}
		if (!tty)
			putchar('\n');
	}
	fflush(stdout);
	result_clear(&stats);
	result_clear(&mods);
	return r;
}

static int cmd_top(ctl *c, cmd_args *a)
{
	struct sigaction sa = { .sa_handler = on_interrupt };
	bool tty = isatty(STDOUT_FILENO);
	int r = EXIT_OK;

	if (a->argc != 0)
		return usage_error("unexpected argument: %s", a->argv[0]);

	/* No SA_RESTART: the sleep must end on ^C so we exit cleanly. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	for (long i = 0; !interrupted && (a->count == 0 || i < a->count); i++) {
		struct timespec ts = { .tv_sec = 1 };

		r = top_once(c, tty);
		if (r != EXIT_OK)
			break;
		if (a->count && i + 1 == a->count)
			break;
		while (!interrupted && nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	return r;
}

typedef struct command {
	const char *name;
	int (*fn)(ctl *c, cmd_args *a);
	const char *flags; /* sub-options it accepts: n(ow) p(rometheus) c(ount) */
} command;

static const command commands[] = {
	{ "ping", cmd_ping, "" },
	{ "call", cmd_call, "" },
	{ "modules", cmd_modules, "" },
	{ "ops", cmd_ops, "" },
	{ "stats", cmd_stats, "p" },
	{ "load", cmd_load, "" },
	{ "unload", cmd_unload, "n" },
	{ "invalidate", cmd_invalidate, "" },
	{ "reload", cmd_reload, "" },
	{ "top", cmd_top, "c" },
};

static int parse_u32(const char *s, uint32_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/*
 * Split the words after the command into options and positional args.
 * Global --json is accepted here too ("lmmsctl stats --json"). For "call"
 * every word after METHOD is a JSON value, except exactly "--json", which
 * is not valid JSON anyway.
 */
static int cmd_args_parse(ctl *c, const command *cmd, int argc, char **argv, cmd_args *a)
{
	bool is_call = strcmp(cmd->name, "call") == 0;
	bool only_pos = false;

	a->argc = 0;
	for (int i = 0; i < argc; i++) {
		const char *w = argv[i];

		if (!only_pos && (strcmp(w, "--json") == 0 || strcmp(w, "-j") == 0)) {
			c->json = true;
		} else if (is_call) {
			a->argv[a->argc++] = argv[i];
		} else if (!only_pos && strcmp(w, "--") == 0) {
			only_pos = true;
		} else if (!only_pos && strchr(cmd->flags, 'n') && strcmp(w, "--now") == 0) {
			a->now = true;
		} else if (!only_pos && strchr(cmd->flags, 'p') && strcmp(w, "--prometheus") == 0) {
			a->prometheus = true;
		} else if (!only_pos && strchr(cmd->flags, 'c') && strcmp(w, "-n") == 0) {
			uint32_t v;

			if (i + 1 >= argc || parse_u32(argv[i + 1], &v) < 0 || v == 0)
				return usage_error("-n needs a positive COUNT");
			a->count = v;
			i++;
		} else if (!only_pos && w[0] == '-' && w[1]) {
			return usage_error("unknown option: %s", w);
		} else {
			a->argv[a->argc++] = argv[i];
		}
	}
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{},
	};
	ctl c = { .timeout_ms = 30000 };
	cmd_args a = { 0 };
	const command *cmd = NULL;
	int opt, r;

	/* "+": stop at the command so its own words (e.g. "-1" for call) stay. */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:s:jt:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			c.socket = optarg;
			break;
		case 'j':
			c.json = true;
			break;
		case 't':
			if (parse_u32(optarg, &c.timeout_ms) < 0)
				return usage_error("--timeout needs milliseconds, got %s", optarg);
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("lmmsctl %s\n", LMMS_VERSION);
			return EXIT_OK;
		case ':':
			return usage_error("option %s needs an argument", argv[optind - 1]);
		default:
			return usage_error("unknown option: %s", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage_error("no COMMAND given");

	for (size_t i = 0; i < N_ELEMS(commands); i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			cmd = &commands[i];
	if (!cmd)
		return usage_error("unknown command: %s", argv[optind]);

	a.argv = calloc((size_t)argc, sizeof(*a.argv));
	if (!a.argv) {
		fprintf(stderr, "lmmsctl: out of memory\n");
		return EXIT_CONNECT;
	}
	r = cmd_args_parse(&c, cmd, argc - optind - 1, argv + optind + 1, &a);
	if (r == EXIT_OK)
		r = cmd->fn(&c, &a);

	free(a.argv);
	lmms_client_close(c.client);
	if (fflush(stdout) != 0 && r == EXIT_OK)
		r = EXIT_CONNECT;
	return r;
}
