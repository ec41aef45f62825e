/*
 * json.c - JSON checks and conversions through jansson.
 *
 * json.validate answers whether a string is JSON; json.canonical re-encodes
 * it compactly with sorted keys (equal documents give equal bytes, which is
 * what makes them good cache keys and signatures); json.get picks one value
 * out of a document by path and returns it as native msgpack, so callers get
 * maps and arrays instead of a string to parse again.
 *
 * Input is bounded by JSON_MOD_MAX_INPUT and by jansson's own nesting limit;
 * the msgpack we produce is bounded to JSON_MOD_MAX_DEPTH levels.
 */
#include <lmms/lmms-module.h>

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MOD_MAX_INPUT (8u << 20)
/* The daemon allows results 31 containers deep (a response must fit
 * msgpack-c's 32-level unpacker, and the response array is one level). */
#define JSON_MOD_MAX_DEPTH 31
#define JSON_MOD_LOAD_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL)

#if JANSSON_VERSION_HEX < 0x020e00
/* Before 2.14 keys could not hold NUL, so the C-string calls are exact. */
#define json_object_getn(o, k, n) json_object_get((o), (k))
#define json_object_iter_key_len(it) strlen(json_object_iter_key(it))
#endif

/* Parses argument i; on failure it has already called fail() (bad_params,
 * with jansson's own text). */
static json_t *json_arg_load(const lmms_host *h, lmms_call *c, size_t i, const char *op)
{
	json_error_t err;
	const char *s;
	json_t *root;
	size_t n;

	if (h->arg_str(c, i, &s, &n) < 0) {
		h->fail(c, LMMS_FAIL_PARAMS, "json.%s: argument %zu must be a string", op, i + 1);
		return NULL;
	}
	if (n > JSON_MOD_MAX_INPUT) {
		h->fail(c, LMMS_FAIL_PARAMS, "json.%s: document of %zu bytes exceeds %u", op, n,
			JSON_MOD_MAX_INPUT);
		return NULL;
	}
	root = json_loadb(s, n, JSON_MOD_LOAD_FLAGS, &err);
	if (!root)
		h->fail(c, LMMS_FAIL_PARAMS, "json.%s: invalid JSON at line %d column %d: %s", op,
			err.line, err.column, err.text);
	return root;
}

static int op_validate(const lmms_host *h, lmms_call *c, void *state)
{
	json_error_t err;
	json_t *root;
	const char *s;
	size_t n;

	if (h->arg_count(c) != 1 || h->arg_str(c, 0, &s, &n) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "json.validate takes one string");
	if (n > JSON_MOD_MAX_INPUT)
		return h->fail(c, LMMS_FAIL_PARAMS, "json.validate: document of %zu bytes exceeds %u",
			       n, JSON_MOD_MAX_INPUT);
	root = json_loadb(s, n, JSON_MOD_LOAD_FLAGS, &err);
	json_decref(root);
	return h->ret_bool(c, root != NULL);
}

static int op_canonical(const lmms_host *h, lmms_call *c, void *state)
{
	json_t *root;
	char *out;
	int r;

	if (h->arg_count(c) != 1)
		return h->fail(c, LMMS_FAIL_PARAMS, "json.canonical takes one string");
	root = json_arg_load(h, c, 0, "canonical");
	if (!root)
		return -1;
	out = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(root);
	if (!out)
		return h->fail(c, LMMS_FAIL_MODULE, "json.canonical: cannot encode (out of memory?)");
	r = h->ret_str(c, out, strlen(out));
	free(out);
	return r;
}

static int json_put(const lmms_host *h, lmms_call *c, json_t *v, unsigned depth)
{
	int r = 0;

	switch (json_typeof(v)) {
	case JSON_NULL:
		return h->ret_nil(c);
	case JSON_TRUE:
		return h->ret_bool(c, 1);
	case JSON_FALSE:
		return h->ret_bool(c, 0);
	case JSON_INTEGER:
		return h->ret_int(c, (int64_t)json_integer_value(v));
	case JSON_REAL:
		return h->ret_double(c, json_real_value(v));
	case JSON_STRING:
		return h->ret_str(c, json_string_value(v), json_string_length(v));
	case JSON_ARRAY: {
		size_t i;
		json_t *e;

		if (depth >= JSON_MOD_MAX_DEPTH)
			return -ELOOP;
		r = h->ret_array(c, (uint32_t)json_array_size(v));
		json_array_foreach(v, i, e) {
			if (r < 0)
				break;
			r = json_put(h, c, e, depth + 1);
		}
		return r;
	}
	case JSON_OBJECT: {
		const char *k;
		json_t *e;

		if (depth >= JSON_MOD_MAX_DEPTH)
			return -ELOOP;
		r = h->ret_map(c, (uint32_t)json_object_size(v));
		json_object_foreach(v, k, e) {
			if (r < 0)
				break;
			/* Keys may hold NUL (JSON_ALLOW_NUL): take the real length. */
			r = h->ret_str(c, k, json_object_iter_key_len(json_object_key_to_iter(k)));
			if (r == 0)
				r = json_put(h, c, e, depth + 1);
		}
		return r;
	}
	}
	return -EINVAL;
}

/* Decode one path segment: RFC 6901 escapes "~0" -> "~", "~1" -> "/". */
static int segment_decode(const char *s, size_t n, char *out, size_t *out_len)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] != '~') {
			out[o++] = s[i];
			continue;
		}
		if (i + 1 >= n || (s[i + 1] != '0' && s[i + 1] != '1'))
			return -1;
		out[o++] = s[i + 1] == '0' ? '~' : '/';
		i++;
	}
	out[o] = '\0';
	*out_len = o;
	return 0;
}

static int array_index(const char *s, size_t n, size_t *idx)
{
	size_t v = 0;

	if (n == 0 || n > 18 || (n > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (size_t)(s[i] - '0');
	}
	*idx = v;
	return 0;
}

/*
 * Path "a/b/0" (a leading "/" is allowed, so RFC 6901 pointers work too; ""
 * is the whole document). A path that does not match the document is the
 * caller's mistake: bad_params naming the segment, never a silent nil that
 * would look like a JSON null.
 */
static int op_get(const lmms_host *h, lmms_call *c, void *state)
{
	const char *path, *seg;
	json_t *root, *cur;
	size_t plen, pos = 0;
	char *key = NULL;
	int r;

	if (h->arg_count(c) != 2 || h->arg_str(c, 1, &path, &plen) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "json.get takes a JSON string and a path string");
	root = json_arg_load(h, c, 0, "get");
	if (!root)
		return -1;
	key = malloc(plen + 1);
	if (!key) {
		r = h->fail(c, LMMS_FAIL_MODULE, "json.get: out of memory");
		goto out;
	}
	cur = root;
	if (plen > 0 && path[0] == '/')
		pos = 1;
	while (pos < plen || (pos == plen && plen > 0 && path[plen - 1] == '/')) {
		const char *end = memchr(path + pos, '/', plen - pos);
		size_t slen = end ? (size_t)(end - (path + pos)) : plen - pos;
		size_t klen, idx;
		json_t *next = NULL;

		seg = path + pos;
		if (segment_decode(seg, slen, key, &klen) < 0) {
			r = h->fail(c, LMMS_FAIL_PARAMS, "json.get: bad escape in path segment '%.*s'",
				    (int)slen, seg);
			goto out;
		}
		if (json_is_object(cur))
			next = json_object_getn(cur, key, klen);
		else if (json_is_array(cur) && array_index(key, klen, &idx) == 0)
			next = json_array_get(cur, idx);
		if (!next) {
			r = h->fail(c, LMMS_FAIL_PARAMS, "json.get: no value at '%.*s' (segment '%.*s')",
				    (int)(pos + slen), path, (int)slen, seg);
			goto out;
		}
		cur = next;
		pos += slen + 1;
	}
	r = json_put(h, c, cur, 0);
	/* -E2BIG (result over the daemon's limit) is reported by the daemon. */
	if (r == -ELOOP)
		r = h->fail(c, LMMS_FAIL_MODULE, "json.get: value nests deeper than %d levels",
			    JSON_MOD_MAX_DEPTH);
out:
	free(key);
	json_decref(root);
	return r;
}

/* Parsing big documents would stall the loop: past 64 KiB, the pool. */
#define JSON_INLINE_MAX (64 * 1024)

static const lmms_op json_ops[] = {
	{ .name = "validate", .fn = op_validate, .flags = LMMS_OP_PURE,
	  .blocking_above = JSON_INLINE_MAX, .doc = "whether a string is JSON (bool)" },
	{ .name = "canonical", .fn = op_canonical, .flags = LMMS_OP_PURE,
	  .blocking_above = JSON_INLINE_MAX,
	  .doc = "re-encode JSON compactly with sorted keys" },
	{ .name = "get", .fn = op_get, .flags = LMMS_OP_PURE,
	  .blocking_above = JSON_INLINE_MAX,
	  .doc = "the value at path a/b/0 of a JSON document, as msgpack" },
};

LMMS_MODULE(.name = "json", .version = "1.0", LMMS_OPS(json_ops),
	    .description = "JSON validation, canonical form and lookup (jansson)");
