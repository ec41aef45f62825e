/*
 * table.c - lmmsctl's tables through libsmartcols (util-linux): columns laid
 * out by display width, truncation to the terminal, and its JSON writer for
 * --json, so lmmsctl lays out no text by hand.
 *
 * Human tables show chosen columns, formatted (sizes, durations, "-" where a
 * figure does not apply). JSON tables carry every key of the daemon's
 * entries, typed (a nested map is flattened to parent_child members), so a
 * script loses nothing a column leaves out.
 */
#include <errno.h>
#include <inttypes.h>
#include <libsmartcols.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lmmsctl.h"

#define JSON_MAX_KEYS 256u

static char *str_dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* A value as plain text: numbers and strings as they are, nil as "-", other
 * values (arrays, maps, strings with NUL) as compact JSON. */
static char *plain_text(const msgpack_object *o)
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
		if (!memchr(o->via.str.ptr, '\0', o->via.str.size))
			return str_dup_n(o->via.str.ptr, o->via.str.size);
		break;
	default:
		break;
	}
	j = mp_to_json(o, 0);
	s = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
	json_decref(j);
	return s ? s : strdup("?");
}

char *cell_text(const msgpack_object *entry, const column *col)
{
	const msgpack_object *o;
	char buf[FMT_MAX];
	double v;

	if (col->cell)
		return col->cell(entry);
	o = map_get(entry, col->key);
	if (!o)
		return strdup("-");
	if (col->f == CELL_BOOL && o->type == MSGPACK_OBJECT_BOOLEAN)
		return strdup(o->via.boolean ? "yes" : "no");
	if (col->f != CELL_PLAIN && col->f != CELL_BOOL && mp_number(o, &v) && v >= 0) {
		if (col->f == CELL_BYTES)
			return strdup(fmt_bytes(v, buf));
		if (col->f == CELL_MS)
			return strdup(fmt_ms(v, buf));
		return strdup(fmt_us(v, buf));
	}
	return plain_text(o);
}

/* A table of the given columns filled from arr; NULL when out of memory. */
static struct libscols_table *table_build(const msgpack_object *arr, const column *cols,
					  size_t ncols)
{
	struct libscols_table *tb = scols_new_table();

	if (!tb)
		return NULL;
	for (size_t i = 0; i < ncols; i++) {
		struct libscols_column *cl =
			scols_table_new_column(tb, cols[i].header, 0, cols[i].flags);

		if (!cl)
			goto fail;
		/* A truncated column gives way first, but keeps room for a word. */
		if (cols[i].flags & SCOLS_FL_TRUNC)
			scols_column_set_whint(cl, 0.3);
	}
	for (uint32_t n = 0; n < arr->via.array.size; n++) {
		struct libscols_line *ln = scols_table_new_line(tb, NULL);

		if (!ln)
			goto fail;
		for (size_t i = 0; i < ncols; i++) {
			char *s = cell_text(&arr->via.array.ptr[n], &cols[i]);

			/* refer: the line owns s from here, and frees it */
			if (!s || scols_line_refer_data(ln, i, s) < 0) {
				free(s);
				goto fail;
			}
		}
	}
	return tb;

fail:
	scols_unref_table(tb);
	return NULL;
}

static bool is_list(const msgpack_object *arr)
{
	if (arr->type == MSGPACK_OBJECT_ARRAY)
		return true;
	fprintf(stderr, "lmmsctl: unexpected result shape (not a list)\n");
	return false;
}

int table_render(const msgpack_object *arr, const column *cols, size_t ncols, size_t width,
		 char **out)
{
	struct libscols_table *tb;
	int r;

	*out = NULL;
	if (arr->type != MSGPACK_OBJECT_ARRAY)
		return -EINVAL;
	tb = table_build(arr, cols, ncols);
	if (!tb)
		return -ENOMEM;
	if (width > 0) {
		scols_table_set_termforce(tb, SCOLS_TERMFORCE_ALWAYS);
		scols_table_set_termwidth(tb, width);
	}
	r = scols_print_table_to_string(tb, out);
	scols_unref_table(tb);
	return r < 0 ? r : 0;
}

int table_print(const msgpack_object *arr, const column *cols, size_t ncols)
{
	struct libscols_table *tb;
	int r;

	if (!is_list(arr))
		return EXIT_DAEMON_ERROR;
	tb = table_build(arr, cols, ncols);
	if (!tb) {
		fprintf(stderr, "lmmsctl: out of memory\n");
		return EXIT_DAEMON_ERROR;
	}
	r = scols_print_table(tb);
	scols_unref_table(tb);
	return r < 0 ? EXIT_DAEMON_ERROR : EXIT_OK;
}

/* Print a table that was filled (built) or not, and let go of it. */
static int table_finish(struct libscols_table *tb, bool built)
{
	int r = built && scols_print_table(tb) == 0 ? EXIT_OK : EXIT_DAEMON_ERROR;

	if (r != EXIT_OK)
		fprintf(stderr, "lmmsctl: cannot render the result as a table\n");
	scols_unref_table(tb);
	return r;
}

/* ---- JSON ---- */

typedef struct json_col {
	char *name; /* "key" or "parent_child" */
	const char *key, *sub; /* where the value is */
	size_t key_n, sub_n;
	int type; /* SCOLS_JSON_*, or -1 while unknown */
	struct libscols_column *cl;
} json_col;

static const msgpack_object *json_col_value(const json_col *jc, const msgpack_object *entry)
{
	const msgpack_object *v = map_get_n(entry, jc->key, jc->key_n);

	return v && jc->sub ? map_get_n(v, jc->sub, jc->sub_n) : v;
}

static int json_type_of(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return SCOLS_JSON_NUMBER;
	case MSGPACK_OBJECT_BOOLEAN:
		return SCOLS_JSON_BOOLEAN_OPTIONAL;
	default:
		return SCOLS_JSON_STRING;
	}
}

/* Add a column for key (or key.sub) unless it is there; -E2BIG past the cap. */
static int json_col_add(json_col *jc, size_t *n, const msgpack_object *key,
			const msgpack_object *sub, const msgpack_object *val)
{
	size_t kn = key->via.str.size, sn = sub ? sub->via.str.size : 0;
	int type = json_type_of(val);
	size_t i;

	for (i = 0; i < *n; i++)
		if (jc[i].key_n == kn && memcmp(jc[i].key, key->via.str.ptr, kn) == 0 &&
		    (sub ? jc[i].sub && jc[i].sub_n == sn &&
				   memcmp(jc[i].sub, sub->via.str.ptr, sn) == 0 :
			   !jc[i].sub))
			break;
	if (i < *n) {
		if (jc[i].type != type && val->type != MSGPACK_OBJECT_NIL)
			jc[i].type = jc[i].type < 0 ? type : SCOLS_JSON_STRING;
		return 0;
	}
	if (*n == JSON_MAX_KEYS)
		return -E2BIG;
	jc[i] = (json_col){ .key = key->via.str.ptr, .key_n = kn,
			    .type = val->type == MSGPACK_OBJECT_NIL ? -1 : type };
	if (sub) {
		jc[i].sub = sub->via.str.ptr;
		jc[i].sub_n = sn;
	}
	jc[i].name = malloc(kn + sn + 2);
	if (!jc[i].name)
		return -ENOMEM;
	memcpy(jc[i].name, key->via.str.ptr, kn);
	jc[i].name[kn] = '\0';
	if (sub) {
		jc[i].name[kn] = '_';
		memcpy(jc[i].name + kn + 1, sub->via.str.ptr, sn);
		jc[i].name[kn + 1 + sn] = '\0';
	}
	(*n)++;
	return 0;
}

static int json_cols_collect(const msgpack_object *arr, json_col *jc, size_t *n)
{
	for (uint32_t e = 0; e < arr->via.array.size; e++) {
		const msgpack_object *m = &arr->via.array.ptr[e];

		if (m->type != MSGPACK_OBJECT_MAP)
			return -EINVAL;
		for (uint32_t i = 0; i < m->via.map.size; i++) {
			const msgpack_object_kv *kv = &m->via.map.ptr[i];
			int r = 0;

			if (kv->key.type != MSGPACK_OBJECT_STR)
				continue;
			if (kv->val.type != MSGPACK_OBJECT_MAP) {
				r = json_col_add(jc, n, &kv->key, NULL, &kv->val);
			} else {
				for (uint32_t k = 0; k < kv->val.via.map.size && r == 0; k++) {
					const msgpack_object_kv *s = &kv->val.via.map.ptr[k];

					if (s->key.type == MSGPACK_OBJECT_STR)
						r = json_col_add(jc, n, &kv->key, &s->key,
								 &s->val);
				}
			}
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* The cell of one typed JSON member (malloc'd); "" gives null. */
static char *json_cell(const msgpack_object *o, int type)
{
	char buf[64];

	if (!o || o->type == MSGPACK_OBJECT_NIL)
		return strdup("");
	if (type == SCOLS_JSON_BOOLEAN_OPTIONAL)
		return strdup(o->via.boolean ? "1" : "0");
	if (type == SCOLS_JSON_NUMBER) {
		if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64) {
			if (!isfinite(o->via.f64))
				return strdup("");
			snprintf(buf, sizeof(buf), "%.17g", o->via.f64);
			return strdup(buf);
		}
	}
	return plain_text(o);
}

int table_print_json(const char *name, const msgpack_object *arr)
{
	json_col *jc;
	struct libscols_table *tb = NULL;
	size_t n = 0;
	int r = EXIT_DAEMON_ERROR;

	if (!is_list(arr))
		return EXIT_DAEMON_ERROR;
	jc = calloc(JSON_MAX_KEYS, sizeof(*jc));
	if (!jc || json_cols_collect(arr, jc, &n) < 0)
		goto out;
	tb = scols_new_table();
	if (!tb || scols_table_enable_json(tb, 1) < 0 || scols_table_set_name(tb, name) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		jc[i].cl = scols_table_new_column(tb, jc[i].name, 0, 0);
		if (!jc[i].cl)
			goto out;
		if (jc[i].type < 0) /* nil everywhere */
			jc[i].type = SCOLS_JSON_STRING;
		scols_column_set_json_type(jc[i].cl, jc[i].type);
	}
	for (uint32_t e = 0; e < arr->via.array.size; e++) {
		struct libscols_line *ln = scols_table_new_line(tb, NULL);

		if (!ln)
			goto out;
		for (size_t i = 0; i < n; i++) {
			char *s = json_cell(json_col_value(&jc[i], &arr->via.array.ptr[e]),
					    jc[i].type);

			if (!s || scols_line_refer_data(ln, i, s) < 0) {
				free(s);
				goto out;
			}
		}
	}
	r = EXIT_OK;
out:
	r = table_finish(tb, r == EXIT_OK);
	for (size_t i = 0; jc && i < n; i++)
		free(jc[i].name);
	free(jc);
	return r;
}

/* ---- KEY VALUE ---- */

static bool ends_with(const char *s, size_t n, const char *suffix)
{
	size_t sn = strlen(suffix);

	return n >= sn && memcmp(s + n - sn, suffix, sn) == 0;
}

int table_print_kv(const msgpack_object *map)
{
	struct libscols_table *tb;
	int r = EXIT_DAEMON_ERROR;

	if (map->type != MSGPACK_OBJECT_MAP) {
		fprintf(stderr, "lmmsctl: unexpected result shape (not a map)\n");
		return EXIT_DAEMON_ERROR;
	}
	tb = scols_new_table();
	if (!tb || !scols_table_new_column(tb, "KEY", 0, 0) ||
	    !scols_table_new_column(tb, "VALUE", 0, 0))
		goto out;
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];
		column col = { .f = CELL_PLAIN };
		msgpack_object entry = { .type = MSGPACK_OBJECT_MAP };
		struct libscols_line *ln;
		char *k, *v;

		if (kv->key.type != MSGPACK_OBJECT_STR)
			continue;
		k = str_dup_n(kv->key.via.str.ptr, kv->key.via.str.size);
		if (!k)
			goto out;
		if (ends_with(k, strlen(k), "_bytes"))
			col.f = CELL_BYTES;
		else if (ends_with(k, strlen(k), "_ms"))
			col.f = CELL_MS;
		else if (ends_with(k, strlen(k), "_us"))
			col.f = CELL_US;
		col.key = k;
		entry.via.map.size = 1;
		entry.via.map.ptr = (msgpack_object_kv *)kv;
		v = cell_text(&entry, &col);
		ln = scols_table_new_line(tb, NULL);
		if (!v || !ln || scols_line_refer_data(ln, 0, k) < 0) {
			free(k);
			free(v);
			goto out;
		}
		if (scols_line_refer_data(ln, 1, v) < 0) {
			free(v);
			goto out;
		}
	}
	r = EXIT_OK;
out:
	return table_finish(tb, r == EXIT_OK);
}

/* ---- computed cells ---- */

char *cell_module_idle(const msgpack_object *m)
{
	char buf[FMT_MAX];

	if (map_num(m, "loads", 0) == 0 || !map_get(m, "idle_ms"))
		return strdup("-");
	return strdup(fmt_ms(map_num(m, "idle_ms", 0), buf));
}

char *cell_op_ttl(const msgpack_object *o)
{
	const msgpack_object *pure = map_get(o, "pure");
	double ttl = map_num(o, "cache_ttl_ms", 0);
	char buf[FMT_MAX];

	if ((pure && pure->type == MSGPACK_OBJECT_BOOLEAN && !pure->via.boolean) || ttl <= 0)
		return strdup("-");
	return strdup(fmt_ms(ttl, buf));
}

static char *cell_latency(const msgpack_object *o, const char *key)
{
	char buf[FMT_MAX];

	if (map_num(o, "calls", 0) == 0 || !map_get(o, key))
		return strdup("-");
	return strdup(fmt_us(map_num(o, key, 0), buf));
}

char *cell_op_avg(const msgpack_object *o)
{
	return cell_latency(o, "avg_us");
}

char *cell_op_p99(const msgpack_object *o)
{
	return cell_latency(o, "p99_us");
}

static char *why_join(const char *prefix, const char *s, size_t n)
{
	char *out = NULL;

	if (asprintf(&out, "%s%.*s", prefix, (int)n, s) < 0)
		return NULL;
	return out;
}

char *module_why(const msgpack_object *m)
{
	const msgpack_object *why = map_get(m, "why"), *blocked;
	const char *s, *state = "";
	size_t n, state_n = 0;
	uint64_t most = 0;
	const char *most_name = NULL;
	size_t most_n = 0;

	if (why && why->type == MSGPACK_OBJECT_STR)
		return str_dup_n(why->via.str.ptr, why->via.str.size);

	/* Older daemons: derive it from what they do say. */
	map_str(m, "state", &state, &state_n);
	if (state_n == 6 && memcmp(state, "pinned", 6) == 0)
		return map_str(m, "pinned_by", &s, &n) ? why_join("pinned by ", s, n)
							: strdup("pinned");
	if (state_n == 6 && memcmp(state, "failed", 6) == 0)
		return map_str(m, "error", &s, &n) ? why_join("failed: ", s, n)
						    : strdup("failed");
	if (map_num(m, "hot_ops", 0) > 0 && state_n == 6 && memcmp(state, "loaded", 6) == 0)
		return strdup("hot ops");
	blocked = map_get(m, "blocked");
	if (blocked && blocked->type == MSGPACK_OBJECT_MAP) {
		for (uint32_t i = 0; i < blocked->via.map.size; i++) {
			const msgpack_object_kv *kv = &blocked->via.map.ptr[i];

			if (kv->key.type == MSGPACK_OBJECT_STR &&
			    kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
			    kv->val.via.u64 > most) {
				most = kv->val.via.u64;
				most_name = kv->key.via.str.ptr;
				most_n = kv->key.via.str.size;
			}
		}
	}
	if (most_name && state_n == 6 && memcmp(state, "loaded", 6) == 0)
		return why_join("refused: ", most_name, most_n);
	return strdup("");
}
