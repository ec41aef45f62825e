/*
 * text.c - Unicode text operations through ICU's C API.
 *
 *   text.normalize     [str, "nfc"|"nfd"|"nfkc"|"nfkd"] -> str
 *   text.casefold      [str]                            -> str (full case folding)
 *   text.sort          [array of str, locale]           -> array of str
 *   text.transliterate [str, id]                        -> str
 *
 * All four are PURE: the answer depends on the params and on the ICU data
 * the module was built against, nothing else. Strings must be valid UTF-8
 * (anything else is bad_params, never silently replaced); each one goes
 * through UTF-16, ICU's own form, and back. Inputs and outputs are bounded:
 * normalization may grow text (NFKD up to 18 times for one character), so
 * the output limit is checked from ICU's preflighted length before anything
 * is allocated for it.
 *
 * normalize and casefold are linear and quick, so they run on the loop
 * unless their params pass TEXT_INLINE_MAX. sort (collation keys of up to
 * TEXT_MAX_ITEMS strings) and transliterate (the first use of an id compiles
 * its rules: about 40 ms for "Any-Latin") are BLOCKING.
 *
 * ICU keeps process-wide caches (collation data, normalizers, compiled
 * transliterators; a few MiB after "Any-Latin"). fini drops them with
 * u_cleanup() so that memory leaves with the module. That is only safe when
 * nothing else in the process is using ICU at that moment, which holds in a
 * worker process of its own and is one reason this module prefers one.
 */
#include <lmms/lmms-module.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unicode/ucol.h>
#include <unicode/uclean.h>
#include <unicode/uloc.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#include <unicode/utrans.h>

#include "args.h"

#ifdef LMMS_MODULE_ISOLATION
LMMS_MODULE_ISOLATION("process");
#endif

#define TEXT_MAX_INPUT (1u << 20) /* bytes of UTF-8 in */
#define TEXT_MAX_OUTPUT (4u << 20) /* UTF-16 code units (and UTF-8 bytes) out */
#define TEXT_MAX_ITEMS 100000 /* strings text.sort takes */
#define TEXT_MAX_LOCALE 157 /* ULOC_FULLNAME_CAPACITY - 1 */
#define TEXT_MAX_ID 512 /* bytes of a transliterator id */
#define TEXT_INLINE_MAX (64u << 10)

/* ---- UTF-8 <-> UTF-16 ----------------------------------------------------- */

/* s (n bytes of UTF-8) as a new UTF-16 buffer of at least cap units (to
 * leave room for in-place growth); *len gets its length. */
static int to_u16(const lmms_host *h, lmms_call *c, const char *op, const char *s, size_t n,
		  int32_t cap, UChar **out, int32_t *len)
{
	UErrorCode e = U_ZERO_ERROR;
	UChar *u;

	*out = NULL;
	if (n > TEXT_MAX_INPUT)
		return h->fail(c, LMMS_FAIL_PARAMS, "%s: string of %zu bytes exceeds %u", op, n,
			       TEXT_MAX_INPUT);
	/* Preflight: the length, and an error for ill-formed UTF-8. */
	u_strFromUTF8(NULL, 0, len, s, (int32_t)n, &e);
	if (e != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(e))
		return h->fail(c, LMMS_FAIL_PARAMS, "%s: string is not valid UTF-8", op);
	if (cap < *len + 1)
		cap = *len + 1;
	u = malloc((size_t)cap * sizeof(*u));
	if (!u)
		return h->fail(c, LMMS_FAIL_MODULE, "%s: out of memory", op);
	e = U_ZERO_ERROR;
	u_strFromUTF8(u, cap, len, s, (int32_t)n, &e);
	if (U_FAILURE(e)) {
		free(u);
		return h->fail(c, LMMS_FAIL_PARAMS, "%s: string is not valid UTF-8", op);
	}
	*out = u;
	return 0;
}

/* Argument i as UTF-16 (see to_u16). */
static int arg_u16(const lmms_host *h, lmms_call *c, const char *op, size_t i, UChar **out,
		   int32_t *len)
{
	const char *s;
	size_t n;

	if (h->arg_str(c, i, &s, &n) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "%s: param %zu must be a str", op, i + 1);
	return to_u16(h, c, op, s, n, 0, out, len);
}

static int ret_u16(const lmms_host *h, lmms_call *c, const char *op, const UChar *u, int32_t n)
{
	UErrorCode e = U_ZERO_ERROR;
	int32_t len = 0;
	char *s;
	int r;

	u_strToUTF8(NULL, 0, &len, u, n, &e);
	if (e != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(e))
		return h->fail(c, LMMS_FAIL_MODULE, "%s: result is not valid Unicode", op);
	if ((uint32_t)len > TEXT_MAX_OUTPUT)
		return h->fail(c, LMMS_FAIL_MODULE, "%s: result of %d bytes exceeds %u", op, len,
			       TEXT_MAX_OUTPUT);
	s = malloc((size_t)len + 1);
	if (!s)
		return h->fail(c, LMMS_FAIL_MODULE, "%s: out of memory", op);
	e = U_ZERO_ERROR;
	u_strToUTF8(s, len + 1, &len, u, n, &e);
	r = U_FAILURE(e) ? h->fail(c, LMMS_FAIL_MODULE, "%s: %s", op, u_errorName(e)) :
			   h->ret_str(c, s, (size_t)len);
	free(s);
	return r;
}

/*
 * The common shape of normalize and casefold: fn(dst, cap) writes the
 * transformed text, or with cap 0 only reports its length (ICU's preflight),
 * which is checked against the output bound before the buffer exists.
 */
typedef int32_t (*u16_fn)(const void *ctx, const UChar *src, int32_t n, UChar *dst,
			  int32_t cap, UErrorCode *e);

static int transform(const lmms_host *h, lmms_call *c, const char *op, u16_fn fn,
		     const void *ctx)
{
	UErrorCode e = U_ZERO_ERROR;
	UChar *src = NULL, *dst = NULL;
	int32_t n, len;
	int r;

	if ((r = arg_u16(h, c, op, 0, &src, &n)) < 0)
		return r;
	len = fn(ctx, src, n, NULL, 0, &e);
	if (e != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(e)) {
		r = h->fail(c, LMMS_FAIL_MODULE, "%s: %s", op, u_errorName(e));
		goto out;
	}
	if ((uint32_t)len > TEXT_MAX_OUTPUT) {
		r = h->fail(c, LMMS_FAIL_MODULE, "%s: result of %d UTF-16 units exceeds %u", op,
			    len, TEXT_MAX_OUTPUT);
		goto out;
	}
	dst = malloc(((size_t)len + 1) * sizeof(*dst));
	if (!dst) {
		r = h->fail(c, LMMS_FAIL_MODULE, "%s: out of memory", op);
		goto out;
	}
	e = U_ZERO_ERROR;
	len = fn(ctx, src, n, dst, len + 1, &e);
	if (U_FAILURE(e)) {
		r = h->fail(c, LMMS_FAIL_MODULE, "%s: %s", op, u_errorName(e));
		goto out;
	}
	r = ret_u16(h, c, op, dst, len);
out:
	free(dst);
	free(src);
	return r;
}

/* ---- text.normalize, text.casefold ---------------------------------------- */

static int32_t normalize_fn(const void *ctx, const UChar *src, int32_t n, UChar *dst,
			    int32_t cap, UErrorCode *e)
{
	return unorm2_normalize(ctx, src, n, dst, cap, e);
}

static int op_normalize(const lmms_host *h, lmms_call *c, void *state)
{
	static const struct {
		const char *name;
		const UNormalizer2 *(*get)(UErrorCode *e);
	} forms[] = {
		{ "nfc", unorm2_getNFCInstance },
		{ "nfd", unorm2_getNFDInstance },
		{ "nfkc", unorm2_getNFKCInstance },
		{ "nfkd", unorm2_getNFKDInstance },
	};
	UErrorCode e = U_ZERO_ERROR;
	const UNormalizer2 *norm = NULL;
	const char *f;
	size_t fn;

	if (h->arg_count(c) != 2 || h->arg_type(c, 0) != LMMS_T_STR ||
	    h->arg_str(c, 1, &f, &fn) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS,
			       "text.normalize takes [str, \"nfc\"|\"nfd\"|\"nfkc\"|\"nfkd\"]");
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		if (strlen(forms[i].name) == fn && strncasecmp(f, forms[i].name, fn) == 0)
			norm = forms[i].get(&e);
	}
	if (!norm && U_SUCCESS(e))
		return h->fail(c, LMMS_FAIL_PARAMS,
			       "text.normalize: form must be \"nfc\", \"nfd\", \"nfkc\" or \"nfkd\"");
	if (U_FAILURE(e))
		return h->fail(c, LMMS_FAIL_MODULE, "text.normalize: %s", u_errorName(e));
	return transform(h, c, "text.normalize", normalize_fn, norm);
}

static int32_t casefold_fn(const void *ctx, const UChar *src, int32_t n, UChar *dst,
			   int32_t cap, UErrorCode *e)
{
	return u_strFoldCase(dst, cap, src, n, U_FOLD_CASE_DEFAULT, e);
}

static int op_casefold(const lmms_host *h, lmms_call *c, void *state)
{
	if (h->arg_count(c) != 1 || h->arg_type(c, 0) != LMMS_T_STR)
		return h->fail(c, LMMS_FAIL_PARAMS, "text.casefold takes [str]");
	return transform(h, c, "text.casefold", casefold_fn, NULL);
}

/* ---- text.sort -------------------------------------------------------------- */

/*
 * A collator for locale, refusing names ICU does not know: ucol_open falls
 * back to the root collation for anything, "klingon" included, which would
 * sort without complaint in an order the caller did not ask for. "" and
 * "root" ask for the root collation (Unicode's default order) on purpose.
 */
static UCollator *open_collator(const lmms_host *h, lmms_call *c, const char *loc, size_t n)
{
	char name[TEXT_MAX_LOCALE + 1], lang[ULOC_LANG_CAPACITY];
	UErrorCode e = U_ZERO_ERROR, e2 = U_ZERO_ERROR;
	const char *valid;
	UCollator *col;

	if (n > TEXT_MAX_LOCALE || memchr(loc, '\0', n)) {
		h->fail(c, LMMS_FAIL_PARAMS, "text.sort: locale is over %d bytes or has NUL",
			TEXT_MAX_LOCALE);
		return NULL;
	}
	memcpy(name, loc, n);
	name[n] = '\0';
	col = ucol_open(name, &e);
	if (U_FAILURE(e)) {
		h->fail(c, LMMS_FAIL_PARAMS, "text.sort: locale '%s': %s", name, u_errorName(e));
		return NULL;
	}
	valid = ucol_getLocaleByType(col, ULOC_VALID_LOCALE, &e2);
	uloc_getLanguage(name, lang, sizeof(lang), &e2);
	if (U_FAILURE(e2) ||
	    (valid && strcmp(valid, "root") == 0 && lang[0] && strcmp(lang, "root") != 0)) {
		ucol_close(col);
		h->fail(c, LMMS_FAIL_PARAMS, "text.sort: unknown locale '%s'", name);
		return NULL;
	}
	return col;
}

struct sort_item {
	const char *s;
	uint32_t n;
	uint32_t key; /* offset of its collation key in sort_ctx.keys */
	uint32_t index; /* position in the input: equal keys keep their order */
};

static int item_cmp(const void *a, const void *b, void *data)
{
	const struct sort_item *x = a, *y = b;
	const uint8_t *keys = data;
	int r = strcmp((const char *)keys + x->key, (const char *)keys + y->key);

	if (r)
		return r;
	return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * Sort keys (one ucol_getSortKey per string, then byte comparisons) rather
 * than ucol_strcoll in the comparison function: n key computations instead
 * of n log n collations. Keys end in a NUL and contain none before it.
 */
static int sort_items(const lmms_host *h, lmms_call *c, UCollator *col, struct sort_item *it,
		      uint32_t n, uint8_t **keys_out)
{
	size_t used = 0, cap = 4096;
	uint8_t *keys = malloc(cap);
	int r = 0;

	*keys_out = keys;
	if (!keys)
		return h->fail(c, LMMS_FAIL_MODULE, "text.sort: out of memory");
	for (uint32_t i = 0; i < n; i++) {
		int32_t len, klen;
		UChar *u;

		if ((r = to_u16(h, c, "text.sort", it[i].s, it[i].n, 0, &u, &len)) < 0)
			return r;
		klen = ucol_getSortKey(col, u, len, keys + used, (int32_t)(cap - used));
		if (klen > 0 && (size_t)klen > cap - used) {
			/* Did not fit: grow, then the same call again. */
			while (cap - used < (size_t)klen)
				cap *= 2;
			if (cap > INT32_MAX || !(*keys_out = realloc(keys, cap))) {
				*keys_out = keys;
				free(u);
				return h->fail(c, LMMS_FAIL_MODULE, "text.sort: out of memory");
			}
			keys = *keys_out;
			klen = ucol_getSortKey(col, u, len, keys + used, (int32_t)(cap - used));
		}
		free(u);
		if (klen <= 0 || (size_t)klen > cap - used)
			return h->fail(c, LMMS_FAIL_MODULE, "text.sort: no collation key");
		it[i].key = (uint32_t)used;
		used += (size_t)klen;
	}
	qsort_r(it, n, sizeof(*it), item_cmp, keys);
	return 0;
}

static int op_sort(const lmms_host *h, lmms_call *c, void *state)
{
	const msgpack_object *arr;
	struct sort_item *it = NULL;
	uint8_t *keys = NULL;
	UCollator *col = NULL;
	const char *loc;
	size_t loc_n, total = 0;
	uint32_t n;
	modargs a;
	int r;

	modargs_init(&a);
	if (h->arg_count(c) != 2 || h->arg_str(c, 1, &loc, &loc_n) < 0 ||
	    modargs_get(h, c, 0, LMMS_T_ARRAY, &a, &arr) < 0 || !arr) {
		r = h->fail(c, LMMS_FAIL_PARAMS, "text.sort takes [array of str, locale (str)]");
		goto out;
	}
	n = arr->via.array.size;
	if (n > TEXT_MAX_ITEMS) {
		r = h->fail(c, LMMS_FAIL_PARAMS, "text.sort: more than %d strings", TEXT_MAX_ITEMS);
		goto out;
	}
	it = calloc(n ? n : 1, sizeof(*it));
	if (!it) {
		r = h->fail(c, LMMS_FAIL_MODULE, "text.sort: out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		const msgpack_object *o = &arr->via.array.ptr[i];

		if (o->type != MSGPACK_OBJECT_STR) {
			r = h->fail(c, LMMS_FAIL_PARAMS, "text.sort: element %u is not a str", i);
			goto out;
		}
		total += o->via.str.size;
		it[i] = (struct sort_item){ .s = o->via.str.ptr, .n = o->via.str.size, .index = i };
	}
	if (total > TEXT_MAX_INPUT) {
		r = h->fail(c, LMMS_FAIL_PARAMS, "text.sort: %zu bytes of strings exceed %u", total,
			    TEXT_MAX_INPUT);
		goto out;
	}
	if (!(col = open_collator(h, c, loc, loc_n))) {
		r = -1;
		goto out;
	}
	if ((r = sort_items(h, c, col, it, n, &keys)) < 0)
		goto out;
	r = h->ret_array(c, n);
	for (uint32_t i = 0; r == 0 && i < n; i++)
		r = h->ret_str(c, it[i].s, it[i].n);
out:
	ucol_close(col);
	free(keys);
	free(it);
	modargs_fini(&a);
	return r;
}

/* ---- text.transliterate ----------------------------------------------------- */

static int op_transliterate(const lmms_host *h, lmms_call *c, void *state)
{
	const char *s, *id;
	size_t n, id_n;
	UErrorCode e = U_ZERO_ERROR;
	UTransliterator *t = NULL;
	UParseError pe;
	UChar *uid = NULL, *u = NULL;
	int32_t uid_len, len = 0, limit, cap;
	int r;

	if (h->arg_count(c) != 2 || h->arg_str(c, 0, &s, &n) < 0 ||
	    h->arg_str(c, 1, &id, &id_n) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "text.transliterate takes [str, id (str)]");
	if (id_n == 0 || id_n > TEXT_MAX_ID)
		return h->fail(c, LMMS_FAIL_PARAMS,
			       "text.transliterate: id is empty or over %d bytes", TEXT_MAX_ID);
	if ((r = to_u16(h, c, "text.transliterate", id, id_n, 0, &uid, &uid_len)) < 0)
		return r;
	t = utrans_openU(uid, uid_len, UTRANS_FORWARD, NULL, 0, &pe, &e);
	if (U_FAILURE(e)) {
		r = h->fail(c, LMMS_FAIL_PARAMS, "text.transliterate: unknown id '%.*s' (%s)",
			    (int)(id_n < 128 ? id_n : 128), id, u_errorName(e));
		goto out;
	}
	/*
	 * utrans works in place and reports U_BUFFER_OVERFLOW_ERROR when the
	 * text outgrows the buffer (script changes can triple it), leaving the
	 * buffer unusable: start over from the input with more room, bounded
	 * by the output limit.
	 */
	for (cap = (int32_t)(n < 256 ? 512 : 2 * n);; cap *= 2) {
		if ((uint32_t)cap > TEXT_MAX_OUTPUT)
			cap = TEXT_MAX_OUTPUT;
		free(u);
		if ((r = to_u16(h, c, "text.transliterate", s, n, cap, &u, &len)) < 0)
			goto out;
		limit = len;
		e = U_ZERO_ERROR;
		utrans_transUChars(t, u, &len, cap, 0, &limit, &e);
		if (e != U_BUFFER_OVERFLOW_ERROR)
			break;
		if ((uint32_t)cap >= TEXT_MAX_OUTPUT) {
			r = h->fail(c, LMMS_FAIL_MODULE,
				    "text.transliterate: result exceeds %u UTF-16 units",
				    TEXT_MAX_OUTPUT);
			goto out;
		}
	}
	if (U_FAILURE(e)) {
		r = h->fail(c, LMMS_FAIL_MODULE, "text.transliterate: %s", u_errorName(e));
		goto out;
	}
	r = ret_u16(h, c, "text.transliterate", u, len);
out:
	utrans_close(t);
	free(u);
	free(uid);
	return r;
}

/* ---- module ------------------------------------------------------------------ */

static void text_fini(const lmms_host *h, void *state)
{
	u_cleanup();
}

static const lmms_op text_ops[] = {
	{ .name = "normalize", .fn = op_normalize, .flags = LMMS_OP_PURE,
	  .blocking_above = TEXT_INLINE_MAX,
	  .doc = "Unicode normalization of a str: \"nfc\", \"nfd\", \"nfkc\" or \"nfkd\"" },
	{ .name = "casefold", .fn = op_casefold, .flags = LMMS_OP_PURE,
	  .blocking_above = TEXT_INLINE_MAX,
	  .doc = "full Unicode case folding of a str, for caseless comparison" },
	{ .name = "sort", .fn = op_sort, .flags = LMMS_OP_PURE | LMMS_OP_BLOCKING,
	  .doc = "sort an array of str in a locale's collation order (\"sv\", \"de\", ...)" },
	{ .name = "transliterate", .fn = op_transliterate,
	  .flags = LMMS_OP_PURE | LMMS_OP_BLOCKING,
	  .doc = "transliterate a str by an ICU id, e.g. \"Any-Latin; Latin-ASCII\"" },
};

LMMS_MODULE(.name = "text", .version = "1.0", LMMS_OPS(text_ops),
	    .description = "Unicode normalization, case folding, collation and transliteration (ICU)",
	    .fini = text_fini);
