/*
 * sqlite.c - an in-memory SQLite database per daemon, through libsqlite3.
 *
 * The database lives in the module's state (created in init, closed in fini),
 * so clients can share tables across calls. It is deliberately kept off the
 * file system and bounded: ATTACH is disabled (which also stops VACUUM INTO
 * from writing files as the daemon's user), the database may not grow beyond
 * SQLITE_MOD_MAX_PAGES pages, a statement may run SQLITE_MOD_TIME_LIMIT_MS at
 * most, and a result holds SQLITE_MOD_MAX_ROWS rows and SQLITE_MOD_MAX_BYTES
 * bytes at most. Since unloading would drop the data, can_unload vetoes while
 * the database holds any schema object.
 *
 * Ops are BLOCKING (a query can take a while) and may run concurrently on
 * worker threads: one mutex serialises them so a multi-statement call is
 * never interleaved with another.
 */
#include <lmms/lmms-module.h>

#include <msgpack.h>
#include <pthread.h>
#include <stdbool.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQLITE_MOD_MAX_ROWS 10000
#define SQLITE_MOD_MAX_BYTES (16u << 20)
#define SQLITE_MOD_MAX_PAGES 16384 /* 64 MiB at the default 4 KiB page */
#define SQLITE_MOD_MAX_SQL (1 << 20)
#define SQLITE_MOD_TIME_LIMIT_MS 10000
#define SQLITE_MOD_PROGRESS_STEPS 10000

struct sqlite_state {
	pthread_mutex_t lock;
	sqlite3 *db;
	uint64_t deadline_ms; /* for the progress handler, under lock */
	const lmms_host *host;
	bool on_disk; /* [module sqlite] path: the data outlives the module */
	char reason[64];
};

static int progress_cb(void *data)
{
	struct sqlite_state *s = data;

	/* Nonzero interrupts the statement with SQLITE_INTERRUPT. */
	return s->host->now_ms() > s->deadline_ms;
}

/*
 * SQL must not undo the bounds set in init, nor touch settings that are
 * process-wide (the heap limits would throttle the whole daemon): setting
 * these pragmas is refused, reading them is fine.
 */
static int authorize_cb(void *data, int action, const char *a1, const char *a2, const char *a3,
			const char *a4)
{
	static const char *const locked[] = {
		"max_page_count", "mmap_size", "hard_heap_limit", "soft_heap_limit",
		"temp_store_directory", "data_store_directory", "threads",
	};

	if (action == SQLITE_ATTACH || action == SQLITE_DETACH)
		return SQLITE_DENY;
	if (action == SQLITE_PRAGMA && a1 && a2) {
		for (size_t i = 0; i < sizeof(locked) / sizeof(locked[0]); i++) {
			if (sqlite3_stricmp(a1, locked[i]) == 0)
				return SQLITE_DENY;
		}
	}
	return SQLITE_OK;
}

static int sqlite_mod_init(const lmms_host *h, lmms_call *c, void **state)
{
	struct sqlite_state *s;
	const char *path;
	char pragma[64];
	int rc;

	s = calloc(1, sizeof(*s));
	if (!s)
		return h->fail(c, LMMS_FAIL_MODULE, "sqlite: out of memory");
	if (pthread_mutex_init(&s->lock, NULL) != 0) {
		free(s);
		return h->fail(c, LMMS_FAIL_MODULE, "sqlite: cannot create lock");
	}
	s->host = h;
	/* [module sqlite] path = FILE keeps the database in FILE, so it survives
	 * an unload and a restart; without it the database lives in memory. */
	path = LMMS_HOST_HAS(h, setting) && h->setting ? h->setting(c, "path") : NULL;
	if (path && path[0] != '/') {
		h->fail(c, LMMS_FAIL_MODULE, "sqlite: [module sqlite] path must be absolute, not \"%s\"",
			path);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return -1;
	}
	s->on_disk = path != NULL;
	rc = sqlite3_open_v2(path ? path : ":memory:", &s->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK) {
		h->fail(c, LMMS_FAIL_MODULE, "sqlite: cannot open %s: %s", path ? path : "database",
			s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		goto fail_open;
	}
	sqlite3_limit(s->db, SQLITE_LIMIT_ATTACHED, 0);
	sqlite3_limit(s->db, SQLITE_LIMIT_SQL_LENGTH, SQLITE_MOD_MAX_SQL);
	sqlite3_limit(s->db, SQLITE_LIMIT_LENGTH, (int)SQLITE_MOD_MAX_BYTES);
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
	sqlite3_progress_handler(s->db, SQLITE_MOD_PROGRESS_STEPS, progress_cb, s);
	snprintf(pragma, sizeof(pragma), "PRAGMA max_page_count=%d", SQLITE_MOD_MAX_PAGES);
	s->deadline_ms = UINT64_MAX;
	if (sqlite3_exec(s->db, pragma, NULL, NULL, NULL) != SQLITE_OK) {
		h->fail(c, LMMS_FAIL_MODULE, "sqlite: %s", sqlite3_errmsg(s->db));
		goto fail_open;
	}
	/* After our own pragma: from here on SQL cannot change the bounds. */
	sqlite3_set_authorizer(s->db, authorize_cb, NULL);
	*state = s;
	return 0;

fail_open:
	sqlite3_close_v2(s->db);
	pthread_mutex_destroy(&s->lock);
	free(s);
	return -1;
}

static void sqlite_mod_fini(const lmms_host *h, void *state)
{
	struct sqlite_state *s = state;

	if (!s)
		return;
	sqlite3_close_v2(s->db);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static int sqlite_mod_can_unload(const lmms_host *h, void *state, const char **reason)
{
	struct sqlite_state *s = state;
	sqlite3_stmt *st = NULL;
	int64_t objects = 0;

	if (!s || s->on_disk)
		return 0; /* a file database loses nothing when the module leaves */
	if (pthread_mutex_trylock(&s->lock) != 0) {
		*reason = "database in use";
		return 1;
	}
	s->deadline_ms = UINT64_MAX;
	if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM sqlite_schema", -1, &st, NULL) ==
		    SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		objects = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (objects > 0)
		snprintf(s->reason, sizeof(s->reason), "database holds %lld schema objects",
			 (long long)objects);
	pthread_mutex_unlock(&s->lock);
	if (objects > 0) {
		*reason = s->reason;
		return 1;
	}
	return 0;
}

/* Bind the elements of a msgpack array (the daemon's re-encoding of arg 1). */
static int bind_params(const lmms_host *h, lmms_call *c, sqlite3_stmt *st,
		       const msgpack_object *arr)
{
	int want = sqlite3_bind_parameter_count(st);

	if (arr->via.array.size != (uint32_t)want)
		return h->fail(c, LMMS_FAIL_PARAMS,
			       "sqlite.exec: statement has %d parameters, got %u", want,
			       arr->via.array.size);
	for (uint32_t i = 0; i < arr->via.array.size; i++) {
		const msgpack_object *o = &arr->via.array.ptr[i];
		int col = (int)i + 1, rc;

		switch (o->type) {
		case MSGPACK_OBJECT_NIL:
			rc = sqlite3_bind_null(st, col);
			break;
		case MSGPACK_OBJECT_BOOLEAN:
			rc = sqlite3_bind_int(st, col, o->via.boolean ? 1 : 0);
			break;
		case MSGPACK_OBJECT_POSITIVE_INTEGER:
			if (o->via.u64 > INT64_MAX)
				return h->fail(c, LMMS_FAIL_PARAMS,
					       "sqlite.exec: parameter %d does not fit a 64-bit integer",
					       col);
			rc = sqlite3_bind_int64(st, col, (sqlite3_int64)o->via.u64);
			break;
		case MSGPACK_OBJECT_NEGATIVE_INTEGER:
			rc = sqlite3_bind_int64(st, col, o->via.i64);
			break;
		case MSGPACK_OBJECT_FLOAT32:
		case MSGPACK_OBJECT_FLOAT64:
			rc = sqlite3_bind_double(st, col, o->via.f64);
			break;
		case MSGPACK_OBJECT_STR:
			rc = sqlite3_bind_text64(st, col, o->via.str.ptr, o->via.str.size,
						 SQLITE_TRANSIENT, SQLITE_UTF8);
			break;
		case MSGPACK_OBJECT_BIN:
			rc = sqlite3_bind_blob64(st, col, o->via.bin.size ? o->via.bin.ptr : "",
						 o->via.bin.size, SQLITE_TRANSIENT);
			break;
		default:
			return h->fail(c, LMMS_FAIL_PARAMS,
				       "sqlite.exec: parameter %d must be nil, bool, number, str or bin",
				       col);
		}
		if (rc != SQLITE_OK)
			return h->fail(c, LMMS_FAIL_PARAMS, "sqlite.exec: parameter %d: %s", col,
				       sqlite3_errstr(rc));
	}
	return 0;
}

static int pack_row(msgpack_packer *pk, sqlite3_stmt *st)
{
	int cols = sqlite3_column_count(st), r;

	r = msgpack_pack_array(pk, (size_t)cols);
	for (int i = 0; r == 0 && i < cols; i++) {
		switch (sqlite3_column_type(st, i)) {
		case SQLITE_INTEGER:
			r = msgpack_pack_int64(pk, sqlite3_column_int64(st, i));
			break;
		case SQLITE_FLOAT:
			r = msgpack_pack_double(pk, sqlite3_column_double(st, i));
			break;
		case SQLITE_TEXT: {
			const unsigned char *t = sqlite3_column_text(st, i);
			size_t n = (size_t)sqlite3_column_bytes(st, i);

			r = msgpack_pack_str_with_body(pk, t ? (const char *)t : "", n);
			break;
		}
		case SQLITE_BLOB: {
			const void *b = sqlite3_column_blob(st, i);
			size_t n = (size_t)sqlite3_column_bytes(st, i);

			r = msgpack_pack_bin_with_body(pk, b ? b : "", n);
			break;
		}
		default:
			r = msgpack_pack_nil(pk);
			break;
		}
	}
	return r;
}

struct rows {
	msgpack_sbuffer buf;
	size_t offs[SQLITE_MOD_MAX_ROWS + 1];
	uint32_t n;
};

/* Runs every statement of sql in order; rows of all of them are collected.
 * Called with the lock held. */
static int run_sql(const lmms_host *h, lmms_call *c, struct sqlite_state *s, const char *sql,
		   size_t len, const msgpack_object *params, struct rows *rows)
{
	const char *tail = sql, *end = sql + len;
	msgpack_packer pk;
	unsigned n_stmts = 0;

	msgpack_packer_init(&pk, &rows->buf, msgpack_sbuffer_write);
	while (tail < end) {
		sqlite3_stmt *st = NULL;
		const char *next = NULL;
		int rc;

		rc = sqlite3_prepare_v2(s->db, tail, (int)(end - tail), &st, &next);
		if (rc != SQLITE_OK)
			return h->fail(c, LMMS_FAIL_PARAMS, "sqlite.exec: %s", sqlite3_errmsg(s->db));
		if (!st) /* only whitespace or comments left */
			break;
		if (params && n_stmts > 0) {
			sqlite3_finalize(st);
			return h->fail(c, LMMS_FAIL_PARAMS,
				       "sqlite.exec: bound parameters need a single statement");
		}
		n_stmts++;
		if (params && bind_params(h, c, st, params) < 0) {
			sqlite3_finalize(st);
			return -1;
		}
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (rows->n >= SQLITE_MOD_MAX_ROWS) {
				sqlite3_finalize(st);
				return h->fail(c, LMMS_FAIL_MODULE,
					       "sqlite.exec: result has more than %d rows (the limit)",
					       SQLITE_MOD_MAX_ROWS);
			}
			rows->offs[rows->n] = rows->buf.size;
			if (pack_row(&pk, st) != 0) {
				sqlite3_finalize(st);
				return h->fail(c, LMMS_FAIL_MODULE, "sqlite.exec: out of memory");
			}
			rows->n++;
			if (rows->buf.size > SQLITE_MOD_MAX_BYTES) {
				sqlite3_finalize(st);
				return h->fail(c, LMMS_FAIL_MODULE,
					       "sqlite.exec: result exceeds %u bytes (the limit)",
					       SQLITE_MOD_MAX_BYTES);
			}
		}
		if (rc != SQLITE_DONE) {
			int code = sqlite3_errcode(s->db);

			sqlite3_finalize(st);
			if (code == SQLITE_INTERRUPT)
				return h->fail(c, LMMS_FAIL_MODULE,
					       "sqlite.exec: statement ran over %d ms (the limit)",
					       SQLITE_MOD_TIME_LIMIT_MS);
			return h->fail(c, LMMS_FAIL_MODULE, "sqlite.exec: %s", sqlite3_errmsg(s->db));
		}
		sqlite3_finalize(st);
		tail = next;
	}
	if (params && n_stmts == 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "sqlite.exec: no statement to bind parameters to");
	rows->offs[rows->n] = rows->buf.size;
	return 0;
}

static int op_exec(const lmms_host *h, lmms_call *c, void *state)
{
	struct sqlite_state *s = state;
	msgpack_unpacked params_obj;
	const msgpack_object *params = NULL;
	struct rows *rows;
	const char *sql;
	size_t len;
	int r;

	if (h->arg_count(c) < 1 || h->arg_count(c) > 2 || h->arg_str(c, 0, &sql, &len) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS,
			       "sqlite.exec takes an SQL string and an optional array of parameters");
	if (len > SQLITE_MOD_MAX_SQL)
		return h->fail(c, LMMS_FAIL_PARAMS, "sqlite.exec: SQL of %zu bytes exceeds %d", len,
			       SQLITE_MOD_MAX_SQL);
	msgpack_unpacked_init(&params_obj);
	if (h->arg_count(c) == 2) {
		const void *p;
		size_t n;

		/* The daemon's own re-encoding of a decoded arg: well-formed and
		 * bounded by the request size, so plain msgpack_unpack is safe. */
		if (h->arg_type(c, 1) != LMMS_T_ARRAY || h->arg_msgpack(c, 1, &p, &n) < 0 ||
		    msgpack_unpack_next(&params_obj, p, n, NULL) != MSGPACK_UNPACK_SUCCESS) {
			msgpack_unpacked_destroy(&params_obj);
			return h->fail(c, LMMS_FAIL_PARAMS,
				       "sqlite.exec: parameters must be an array");
		}
		params = &params_obj.data;
	}
	rows = calloc(1, sizeof(*rows));
	if (!rows) {
		msgpack_unpacked_destroy(&params_obj);
		return h->fail(c, LMMS_FAIL_MODULE, "sqlite.exec: out of memory");
	}
	msgpack_sbuffer_init(&rows->buf);

	pthread_mutex_lock(&s->lock);
	s->deadline_ms = h->now_ms() + SQLITE_MOD_TIME_LIMIT_MS;
	r = run_sql(h, c, s, sql, len, params, rows);
	s->deadline_ms = UINT64_MAX;
	pthread_mutex_unlock(&s->lock);

	if (r == 0)
		r = h->ret_array(c, rows->n);
	for (uint32_t i = 0; r == 0 && i < rows->n; i++)
		r = h->ret_msgpack(c, rows->buf.data + rows->offs[i],
				   rows->offs[i + 1] - rows->offs[i]);
	msgpack_sbuffer_destroy(&rows->buf);
	free(rows);
	msgpack_unpacked_destroy(&params_obj);
	return r;
}

static int op_version(const lmms_host *h, lmms_call *c, void *state)
{
	const char *v = sqlite3_libversion();

	if (h->arg_count(c) != 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "sqlite.version takes no params");
	return h->ret_str(c, v, strlen(v));
}

static const lmms_op sqlite_ops[] = {
	{ .name = "exec", .fn = op_exec, .flags = LMMS_OP_BLOCKING,
	  .doc = "run SQL (with an optional params array), return the rows" },
	{ .name = "version", .fn = op_version, .flags = 0,
	  .doc = "the SQLite library version" },
};

LMMS_MODULE(.name = "sqlite", .version = "1.0", LMMS_OPS(sqlite_ops),
	    .description = "one SQLite database: in memory (kept while it holds tables), or in the file [module sqlite] path names",
	    .init = sqlite_mod_init, .fini = sqlite_mod_fini,
	    .can_unload = sqlite_mod_can_unload);
