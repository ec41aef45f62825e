/*
 * mpjson.c - msgpack <-> JSON for lmmsctl.
 *
 * msgpack -> JSON (what "call" and the --json of single results print):
 *   nil/bool/int/float map to their JSON types (NaN and infinities become
 *   null; integers above INT64_MAX become JSON reals); str and bin print as a
 *   JSON string when they are valid UTF-8, otherwise as {"$bin": "<base64>"};
 *   ext prints as {"$ext": type, "data": "<base64>"}; a map key that is not a
 *   string is printed as its own compact JSON text (so {1: "a"} -> {"1": "a"}).
 * JSON -> msgpack (ARGs of "call"): the obvious mapping, and {"$bin": "<base64>"}
 * packs as a msgpack bin, so binary data can be passed too.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lmmsctl.h"

#define JSON_MAX_DEPTH 64

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

json_t *mp_to_json(const msgpack_object *o, int depth)
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

int json_print(const msgpack_object *o)
{
	return json_print_flags(o, JSON_INDENT(2));
}

int json_print_flags(const msgpack_object *o, size_t flags)
{
	json_t *j = mp_to_json(o, 0);
	char *s;

	if (!j) {
		fprintf(stderr, "lmmsctl: cannot convert the result to JSON\n");
		return -EINVAL;
	}
	s = json_dumps(j, JSON_ENCODE_ANY | JSON_PRESERVE_ORDER | flags);
	json_decref(j);
	if (!s)
		return -ENOMEM;
	puts(s);
	free(s);
	return 0;
}

/* ---- JSON -> msgpack ---- */

int json_to_mp(msgpack_packer *pk, json_t *j, int depth)
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


/* ---- look-ups ---- */

const msgpack_object *map_get(const msgpack_object *map, const char *key)
{
	return map_get_n(map, key, strlen(key));
}

const msgpack_object *map_get_n(const msgpack_object *map, const char *key, size_t kn)
{
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

bool mp_number(const msgpack_object *o, double *out)
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

bool map_str(const msgpack_object *map, const char *key, const char **s, size_t *n)
{
	const msgpack_object *v = map_get(map, key);

	if (!v || v->type != MSGPACK_OBJECT_STR || v->via.str.size == 0)
		return false;
	*s = v->via.str.ptr;
	*n = v->via.str.size;
	return true;
}

double map_num(const msgpack_object *map, const char *key, double fallback)
{
	double v;

	return mp_number(map_get(map, key), &v) ? v : fallback;
}
