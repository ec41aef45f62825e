/*
 * test-modules.c - the real module .so files, driven through the host API.
 *
 * Loads the built bundled modules (LMMS_MODULE_DIR) and test modules
 * (LMMS_TEST_MODULE_DIR) the way the daemon does: dlopen(RTLD_NOW |
 * RTLD_LOCAL), the one entry symbol, descriptor checks, init, ops through
 * call_host and call_finish, can_unload, fini and dlclose.
 */
#include <check.h>
/* check.h defines a deprecated fail() macro that would hide lmms_host.fail. */
#undef fail
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "module-harness.h"

/* ---- echo ------------------------------------------------------------------- */

START_TEST(test_echo)
{
	module m;
	params p;
	outcome o;
	msgpack_packer *pk;

	module_load(&m, "LMMS_MODULE_DIR", "echo");
	ck_assert(op_find(&m, "sleep")->flags & LMMS_OP_BLOCKING);
	ck_assert(op_find(&m, "upper")->flags & LMMS_OP_PURE);
	/* Only the entry is exported. */
	ck_assert_ptr_null(dlsym(m.dl, "op_ping"));

	pk = params_begin(&p, 3);
	msgpack_pack_int(pk, 1);
	msgpack_pack_str_with_body(pk, "a", 1);
	msgpack_pack_array(pk, 1);
	msgpack_pack_true(pk);
	{
		/* Expected result: the params array, byte for byte. */
		char *want = malloc(p.sb.size);
		size_t wn = p.sb.size;

		memcpy(want, p.sb.data, wn);
		run(&m, "ping", &p, &o);
		ck_assert_int_eq(o.err, PROTO_OK);
		ck_assert_uint_eq(o.len, wn);
		ck_assert_int_eq(memcmp(o.bytes, want, wn), 0);
		free(want);
		outcome_free(&o);
	}
	run(&m, "ping", p_none(&p), &o);
	ck_assert_int_eq(o.err, PROTO_OK);
	ck_assert_int_eq(o.v->type, MSGPACK_OBJECT_ARRAY);
	ck_assert_uint_eq(o.v->via.array.size, 0);
	outcome_free(&o);

	uint64_t t0 = call_host.now_ms();
	run(&m, "sleep", p_int(&p, 50), &o);
	ck_assert_int_eq(o.err, PROTO_OK);
	ck_assert_int_eq(o.v->via.i64, 50);
	ck_assert_uint_ge(call_host.now_ms() - t0, 50);
	outcome_free(&o);
	run(&m, "sleep", p_int(&p, -1), &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	outcome_free(&o);
	run(&m, "sleep", p_int(&p, 60001), &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	outcome_free(&o);
	run(&m, "sleep", p_str(&p, "10"), &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	outcome_free(&o);

	run(&m, "fail", p_str(&p, "boom"), &o);
	expect_err(&o, PROTO_E_MODULE_ERROR);
	ck_assert_str_eq(o.msg, "boom");
	outcome_free(&o);
	run(&m, "fail", p_none(&p), &o);
	expect_err(&o, PROTO_E_MODULE_ERROR);
	outcome_free(&o);
	run(&m, "fail", p_int(&p, 3), &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	outcome_free(&o);

	run(&m, "upper", p_str(&p, "abc-xyz é"), &o);
	expect_str(&o, "ABC-XYZ é");
	outcome_free(&o);
	run(&m, "upper", p_str(&p, ""), &o);
	expect_str(&o, "");
	outcome_free(&o);
	run(&m, "upper", p_int(&p, 1), &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	outcome_free(&o);

	module_unload(&m);
}
END_TEST

/* ---- hash ------------------------------------------------------------------- */

START_TEST(test_hash)
{
	static const struct {
		const char *op, *digest;
	} abc[] = {
		{ "sha256", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
		{ "sha1", "a9993e364706816aba3e25717850c26c9cd0d89d" },
		{ "md5", "900150983cd24fb0d6963f7d28e17f72" },
		{ "sha512", "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
			    "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f" },
	};
	module m;
	params p;
	outcome o;

	module_load(&m, "LMMS_MODULE_DIR", "hash");
	for (size_t i = 0; i < sizeof(abc) / sizeof(abc[0]); i++) {
		const lmms_op *op = op_find(&m, abc[i].op);

		ck_assert(op->flags & LMMS_OP_PURE);
		ck_assert_uint_eq(op->cache_ttl_ms, 0);
		run(&m, abc[i].op, p_str(&p, "abc"), &o);
		expect_str(&o, abc[i].digest);
		outcome_free(&o);
		/* bin input hashes the same bytes */
		msgpack_pack_bin_with_body(params_begin(&p, 1), "abc", 3);
		run(&m, abc[i].op, &p, &o);
		expect_str(&o, abc[i].digest);
		outcome_free(&o);
	}
	run(&m, "sha256", p_str(&p, ""), &o);
	expect_str(&o, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	outcome_free(&o);
	run(&m, "sha256", p_int(&p, 1), &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	outcome_free(&o);
	run(&m, "md5", p_none(&p), &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	outcome_free(&o);
	module_unload(&m);
}
END_TEST

/* ---- zstd ------------------------------------------------------------------- */

START_TEST(test_zstd)
{
	const size_t n = 1u << 20;
	unsigned char *data = malloc(n), *frame;
	size_t frame_len;
	uint32_t x = 12345;
	module m;
	params p;
	outcome o;

	/* Half text-like, half pseudo-random: compresses, but not to nothing. */
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		data[i] = i < n / 2 ? (unsigned char)("lmms zstd test "[i % 15]) :
				      (unsigned char)(x >> 24);
	}
	module_load(&m, "LMMS_MODULE_DIR", "zstd");
	ck_assert(op_find(&m, "compress")->flags & LMMS_OP_BLOCKING);
	ck_assert(op_find(&m, "decompress")->flags & LMMS_OP_PURE);

	run(&m, "compress", p_bin(&p, data, n), &o);
	ck_assert_int_eq(o.err, PROTO_OK);
	ck_assert_int_eq(o.v->type, MSGPACK_OBJECT_BIN);
	ck_assert_uint_lt(o.v->via.bin.size, n);
	frame_len = o.v->via.bin.size;
	frame = malloc(frame_len);
	memcpy(frame, o.v->via.bin.ptr, frame_len);
	outcome_free(&o);

	run(&m, "decompress", p_bin(&p, frame, frame_len), &o);
	ck_assert_int_eq(o.err, PROTO_OK);
	ck_assert_int_eq(o.v->type, MSGPACK_OBJECT_BIN);
	ck_assert_uint_eq(o.v->via.bin.size, n);
	ck_assert_int_eq(memcmp(o.v->via.bin.ptr, data, n), 0);
	outcome_free(&o);

	/* The daemon's result limit applies: too_large, not a crash. */
	run_max(&m, "decompress", p_bin(&p, frame, frame_len), 64 * 1024, &o);
	expect_err(&o, PROTO_E_TOO_LARGE);
	outcome_free(&o);

	/* Corrupt the compressed body (past the frame header). */
	for (size_t i = frame_len / 2; i < frame_len / 2 + 64 && i < frame_len; i++)
		frame[i] ^= 0x5a;
	run(&m, "decompress", p_bin(&p, frame, frame_len), &o);
	expect_err(&o, PROTO_E_MODULE_ERROR);
	outcome_free(&o);
	/* Truncated frame. */
	run(&m, "decompress", p_bin(&p, frame, frame_len / 3), &o);
	expect_err(&o, PROTO_E_MODULE_ERROR);
	outcome_free(&o);
	run(&m, "decompress", p_str(&p, "hello, not zstd"), &o);
	expect_err(&o, PROTO_E_MODULE_ERROR);
	outcome_free(&o);
	free(frame);

	/* A frame that does not say how big it is: refused, not guessed. */
	{
		ZSTD_CCtx *cc = ZSTD_createCCtx();
		unsigned char out[256];
		size_t len;

		ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
		len = ZSTD_compress2(cc, out, sizeof(out), "abcabcabc", 9);
		ck_assert(!ZSTD_isError(len));
		ZSTD_freeCCtx(cc);
		run(&m, "decompress", p_bin(&p, out, len), &o);
		expect_err(&o, PROTO_E_MODULE_ERROR);
		ck_assert_ptr_nonnull(strstr(o.msg, "size"));
		outcome_free(&o);
	}
	/* A bomb: 17 MiB of zeros is a tiny frame; its stated size is refused. */
	{
		size_t big = 17u << 20, cap = ZSTD_compressBound(big), len;
		void *zeros = calloc(1, big), *out = malloc(cap);

		len = ZSTD_compress(out, cap, zeros, big, 1);
		ck_assert(!ZSTD_isError(len));
		ck_assert_uint_lt(len, 4096);
		run(&m, "decompress", p_bin(&p, out, len), &o);
		expect_err(&o, PROTO_E_MODULE_ERROR);
		ck_assert_ptr_nonnull(strstr(o.msg, "limit"));
		outcome_free(&o);
		free(zeros);
		free(out);
	}

	/* Levels. */
	msgpack_packer *pk = params_begin(&p, 2);
	msgpack_pack_str_with_body(pk, "aaaaaaaaaa", 10);
	msgpack_pack_int(pk, 19);
	run(&m, "compress", &p, &o);
	ck_assert_int_eq(o.err, PROTO_OK);
	outcome_free(&o);
	pk = params_begin(&p, 2);
	msgpack_pack_str_with_body(pk, "aaaaaaaaaa", 10);
	msgpack_pack_int(pk, 0);
	run(&m, "compress", &p, &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	outcome_free(&o);
	pk = params_begin(&p, 2);
	msgpack_pack_str_with_body(pk, "aaaaaaaaaa", 10);
	msgpack_pack_int(pk, 20);
	run(&m, "compress", &p, &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	outcome_free(&o);
	run(&m, "compress", p_int(&p, 7), &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	outcome_free(&o);

	/* Empty input round trips. */
	run(&m, "compress", p_bin(&p, "", 0), &o);
	ck_assert_int_eq(o.err, PROTO_OK);
	{
		size_t fl = o.v->via.bin.size;
		void *f = malloc(fl);

		memcpy(f, o.v->via.bin.ptr, fl);
		outcome_free(&o);
		run(&m, "decompress", p_bin(&p, f, fl), &o);
		ck_assert_int_eq(o.err, PROTO_OK);
		ck_assert_uint_eq(o.v->via.bin.size, 0);
		outcome_free(&o);
		free(f);
	}

	run(&m, "version", p_none(&p), &o);
	expect_str(&o, ZSTD_versionString());
	outcome_free(&o);
	module_unload(&m);
	free(data);
}
END_TEST

/* ---- json ------------------------------------------------------------------- */

static params *p_str2(params *p, const char *a, const char *b)
{
	msgpack_packer *pk = params_begin(p, 2);

	msgpack_pack_str_with_body(pk, a, strlen(a));
	msgpack_pack_str_with_body(pk, b, strlen(b));
	return p;
}

static char *nested(int depth)
{
	char *s = malloc(2 * (size_t)depth + 1);

	memset(s, '[', (size_t)depth);
	memset(s + depth, ']', (size_t)depth);
	s[2 * depth] = '\0';
	return s;
}

START_TEST(test_json)
{
	static const char doc[] =
		"{ \"b\": [1, 2.5, null, \"s\"], \"a\": {\"d\": true, \"c\": \"x\"}, \"k/~\": -3 }";
	module m;
	params p;
	outcome o;
	char *deep;

	module_load(&m, "LMMS_MODULE_DIR", "json");

	run(&m, "validate", p_str(&p, doc), &o);
	ck_assert_int_eq(o.err, PROTO_OK);
	ck_assert_int_eq(o.v->type, MSGPACK_OBJECT_BOOLEAN);
	ck_assert(o.v->via.boolean);
	outcome_free(&o);
	run(&m, "validate", p_str(&p, "{\"a\": }"), &o);
	ck_assert_int_eq(o.err, PROTO_OK);
	ck_assert(!o.v->via.boolean);
	outcome_free(&o);
	run(&m, "validate", p_str(&p, "42"), &o);
	ck_assert(o.v->via.boolean);
	outcome_free(&o);
	run(&m, "validate", p_int(&p, 42), &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	outcome_free(&o);

	run(&m, "canonical", p_str(&p, doc), &o);
	expect_str(&o, "{\"a\":{\"c\":\"x\",\"d\":true},\"b\":[1,2.5,null,\"s\"],\"k/~\":-3}");
	outcome_free(&o);
	run(&m, "canonical", p_str(&p, "{\"a\": "), &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	ck_assert_ptr_nonnull(strstr(o.msg, "line 1"));
	outcome_free(&o);

	run(&m, "get", p_str2(&p, doc, "b/1"), &o);
	ck_assert_int_eq(o.err, PROTO_OK);
	ck_assert_int_eq(o.v->type, MSGPACK_OBJECT_FLOAT64);
	ck_assert(o.v->via.f64 == 2.5);
	outcome_free(&o);
	run(&m, "get", p_str2(&p, doc, "/b/0"), &o);
	ck_assert_int_eq(o.v->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	ck_assert_uint_eq(o.v->via.u64, 1);
	outcome_free(&o);
	run(&m, "get", p_str2(&p, doc, "b/2"), &o);
	ck_assert_int_eq(o.v->type, MSGPACK_OBJECT_NIL);
	outcome_free(&o);
	run(&m, "get", p_str2(&p, doc, "b/3"), &o);
	expect_str(&o, "s");
	outcome_free(&o);
	run(&m, "get", p_str2(&p, doc, "k~1~0"), &o);
	ck_assert_int_eq(o.err, PROTO_OK);
	ck_assert_int_eq(o.v->via.i64, -3);
	outcome_free(&o);
	run(&m, "get", p_str2(&p, doc, "a"), &o);
	ck_assert_int_eq(o.err, PROTO_OK);
	ck_assert_int_eq(o.v->type, MSGPACK_OBJECT_MAP);
	ck_assert_uint_eq(o.v->via.map.size, 2);
	for (uint32_t i = 0; i < 2; i++) {
		const msgpack_object_kv *kv = &o.v->via.map.ptr[i];

		ck_assert_int_eq(kv->key.type, MSGPACK_OBJECT_STR);
		if (kv->key.via.str.ptr[0] == 'd')
			ck_assert_int_eq(kv->val.type, MSGPACK_OBJECT_BOOLEAN);
		else
			ck_assert_int_eq(kv->val.type, MSGPACK_OBJECT_STR);
	}
	outcome_free(&o);
	run(&m, "get", p_str2(&p, doc, ""), &o);
	ck_assert_int_eq(o.v->type, MSGPACK_OBJECT_MAP);
	ck_assert_uint_eq(o.v->via.map.size, 3);
	outcome_free(&o);

	static const char *const missing[] = { "b/9", "b/x", "b/01", "z", "a/c/0", "k~2" };
	for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
		run(&m, "get", p_str2(&p, doc, missing[i]), &o);
		expect_err(&o, PROTO_E_BAD_PARAMS);
		outcome_free(&o);
	}
	run(&m, "get", p_str(&p, doc), &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	outcome_free(&o);

	/* Deeper than the module returns: module_error naming the limit. */
	deep = nested(40);
	run(&m, "get", p_str2(&p, deep, ""), &o);
	expect_err(&o, PROTO_E_MODULE_ERROR);
	ck_assert_ptr_nonnull(strstr(o.msg, "deeper"));
	outcome_free(&o);
	free(deep);
	/* Deeper than jansson parses: bad_params with jansson's text. */
	deep = nested(5000);
	run(&m, "canonical", p_str(&p, deep), &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	ck_assert_ptr_nonnull(strstr(o.msg, "depth"));
	outcome_free(&o);
	free(deep);
	module_unload(&m);
}
END_TEST

/* ---- sqlite ----------------------------------------------------------------- */

static params *p_sql(params *p, const char *sql)
{
	return p_str(p, sql);
}

START_TEST(test_sqlite)
{
	const msgpack_object *row;
	const char *reason = NULL;
	msgpack_packer *pk;
	module m;
	params p;
	outcome o;

	module_load(&m, "LMMS_MODULE_DIR", "sqlite");
	ck_assert(op_find(&m, "exec")->flags & LMMS_OP_BLOCKING);
	ck_assert(!(op_find(&m, "exec")->flags & LMMS_OP_PURE));
	ck_assert_int_eq(m.d->can_unload(&call_host, m.state, &reason), 0);

	run(&m, "exec", p_sql(&p, "CREATE TABLE t(a INTEGER, b TEXT, c BLOB, d REAL)"), &o);
	ck_assert_msg(o.err == PROTO_OK, "%s", o.msg);
	ck_assert_uint_eq(o.v->via.array.size, 0);
	outcome_free(&o);

	pk = params_begin(&p, 2);
	msgpack_pack_str_with_body(pk, "INSERT INTO t VALUES (?, ?, ?, ?)", 33);
	msgpack_pack_array(pk, 4);
	msgpack_pack_int(pk, 1);
	msgpack_pack_str_with_body(pk, "x", 1);
	msgpack_pack_bin_with_body(pk, "\0\1", 2);
	msgpack_pack_double(pk, 1.5);
	run(&m, "exec", &p, &o);
	ck_assert_msg(o.err == PROTO_OK, "%s", o.msg);
	outcome_free(&o);
	run(&m, "exec", p_sql(&p, "INSERT INTO t VALUES (2, NULL, NULL, NULL); "
				  "INSERT INTO t(a) VALUES (-3)"),
	    &o);
	ck_assert_msg(o.err == PROTO_OK, "%s", o.msg);
	outcome_free(&o);

	run(&m, "exec", p_sql(&p, "SELECT a, b, c, d FROM t ORDER BY a"), &o);
	ck_assert_msg(o.err == PROTO_OK, "%s", o.msg);
	ck_assert_int_eq(o.v->type, MSGPACK_OBJECT_ARRAY);
	ck_assert_uint_eq(o.v->via.array.size, 3);
	row = &o.v->via.array.ptr[0];
	ck_assert_uint_eq(row->via.array.size, 4);
	ck_assert_int_eq(row->via.array.ptr[0].via.i64, -3);
	ck_assert_int_eq(row->via.array.ptr[1].type, MSGPACK_OBJECT_NIL);
	row = &o.v->via.array.ptr[1];
	ck_assert_uint_eq(row->via.array.ptr[0].via.u64, 1);
	ck_assert_int_eq(row->via.array.ptr[1].type, MSGPACK_OBJECT_STR);
	ck_assert_int_eq(row->via.array.ptr[1].via.str.ptr[0], 'x');
	ck_assert_int_eq(row->via.array.ptr[2].type, MSGPACK_OBJECT_BIN);
	ck_assert_uint_eq(row->via.array.ptr[2].via.bin.size, 2);
	ck_assert(row->via.array.ptr[3].via.f64 == 1.5);
	outcome_free(&o);

	/* The database vetoes unloading while it holds data. */
	reason = NULL;
	ck_assert_int_ne(m.d->can_unload(&call_host, m.state, &reason), 0);
	ck_assert_ptr_nonnull(reason);

	/* Bad params. */
	pk = params_begin(&p, 2);
	msgpack_pack_str_with_body(pk, "SELECT ?", 8);
	msgpack_pack_array(pk, 0);
	run(&m, "exec", &p, &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	ck_assert_ptr_nonnull(strstr(o.msg, "1 parameters"));
	outcome_free(&o);
	pk = params_begin(&p, 2);
	msgpack_pack_str_with_body(pk, "SELECT ?", 8);
	msgpack_pack_int(pk, 1);
	run(&m, "exec", &p, &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	outcome_free(&o);
	pk = params_begin(&p, 2);
	msgpack_pack_str_with_body(pk, "SELECT ?", 8);
	msgpack_pack_array(pk, 1);
	msgpack_pack_map(pk, 0);
	run(&m, "exec", &p, &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	outcome_free(&o);
	run(&m, "exec", p_sql(&p, "SELEKT 1"), &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	ck_assert_ptr_nonnull(strstr(o.msg, "syntax"));
	outcome_free(&o);
	run(&m, "exec", p_int(&p, 1), &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	outcome_free(&o);
	run(&m, "exec", p_sql(&p, "INSERT INTO t(a) VALUES ('not unique'); SELECT * FROM nope"),
	    &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	outcome_free(&o);

	/* Row limit. */
	run(&m, "exec",
	    p_sql(&p, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
		      "WHERE i < 10001) SELECT i FROM n"),
	    &o);
	expect_err(&o, PROTO_E_MODULE_ERROR);
	ck_assert_ptr_nonnull(strstr(o.msg, "10000"));
	outcome_free(&o);
	run(&m, "exec",
	    p_sql(&p, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
		      "WHERE i < 10000) SELECT i FROM n"),
	    &o);
	ck_assert_msg(o.err == PROTO_OK, "%s", o.msg);
	ck_assert_uint_eq(o.v->via.array.size, 10000);
	outcome_free(&o);

	/* No way out to the file system. */
	char path[64];

	snprintf(path, sizeof(path), "/tmp/lmms-test-sqlite-%d.db", (int)getpid());
	{
		char sql[128];

		snprintf(sql, sizeof(sql), "ATTACH '%s' AS x", path);
		run(&m, "exec", p_sql(&p, sql), &o);
		ck_assert_int_ne(o.err, PROTO_OK);
		outcome_free(&o);
		snprintf(sql, sizeof(sql), "VACUUM INTO '%s'", path);
		run(&m, "exec", p_sql(&p, sql), &o);
		ck_assert_int_ne(o.err, PROTO_OK);
		outcome_free(&o);
		ck_assert_int_ne(access(path, F_OK), 0);
	}

	/* The database cannot outgrow its page budget (64 MiB). */
	run(&m, "exec",
	    p_sql(&p, "CREATE TABLE big(x); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
		      "SELECT i + 1 FROM n WHERE i < 80) INSERT INTO big SELECT zeroblob(1000000) "
		      "FROM n"),
	    &o);
	expect_err(&o, PROTO_E_MODULE_ERROR);
	ck_assert_ptr_nonnull(strstr(o.msg, "full"));
	outcome_free(&o);
	run(&m, "exec", p_sql(&p, "DROP TABLE big"), &o);
	ck_assert_int_eq(o.err, PROTO_OK);
	outcome_free(&o);

	/* The bounds cannot be lifted from SQL, but can be read. */
	run(&m, "exec", p_sql(&p, "PRAGMA max_page_count = 100000000"), &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	outcome_free(&o);
	run(&m, "exec", p_sql(&p, "PRAGMA hard_heap_limit = 1"), &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	outcome_free(&o);
	run(&m, "exec", p_sql(&p, "PRAGMA max_page_count"), &o);
	ck_assert_msg(o.err == PROTO_OK, "%s", o.msg);
	ck_assert_uint_eq(o.v->via.array.ptr[0].via.array.ptr[0].via.u64, 16384);
	outcome_free(&o);
	run(&m, "exec", p_sql(&p, "PRAGMA table_info(t)"), &o);
	ck_assert_msg(o.err == PROTO_OK, "%s", o.msg);
	ck_assert_uint_eq(o.v->via.array.size, 4);
	outcome_free(&o);

	run(&m, "exec", p_sql(&p, "DROP TABLE t"), &o);
	ck_assert_int_eq(o.err, PROTO_OK);
	outcome_free(&o);
	ck_assert_int_eq(m.d->can_unload(&call_host, m.state, &reason), 0);

	run(&m, "version", p_none(&p), &o);
	ck_assert_int_eq(o.err, PROTO_OK);
	ck_assert_int_eq(o.v->via.str.ptr[0], '3');
	outcome_free(&o);
	module_unload(&m);
}
END_TEST

/* ---- kv --------------------------------------------------------------------- */

START_TEST(test_kv)
{
	const char *reason = NULL;
	msgpack_packer *pk;
	char key[32];
	module m;
	params p;
	outcome o;

	module_load(&m, "LMMS_MODULE_DIR", "kv");
	ck_assert_int_eq(m.d->can_unload(&call_host, m.state, &reason), 0);

	pk = params_begin(&p, 2);
	msgpack_pack_str_with_body(pk, "a", 1);
	msgpack_pack_map(pk, 1);
	msgpack_pack_str_with_body(pk, "x", 1);
	msgpack_pack_array(pk, 2);
	msgpack_pack_int(pk, 1);
	msgpack_pack_double(pk, 2.5);
	run(&m, "set", &p, &o);
	ck_assert_int_eq(o.err, PROTO_OK);
	ck_assert(o.v->type == MSGPACK_OBJECT_BOOLEAN && o.v->via.boolean);
	outcome_free(&o);

	run(&m, "get", p_str(&p, "a"), &o);
	ck_assert_int_eq(o.err, PROTO_OK);
	ck_assert_int_eq(o.v->type, MSGPACK_OBJECT_MAP);
	ck_assert_uint_eq(o.v->via.map.size, 1);
	ck_assert(o.v->via.map.ptr[0].val.via.array.ptr[1].via.f64 == 2.5);
	outcome_free(&o);
	run(&m, "get", p_str(&p, "nope"), &o);
	ck_assert_int_eq(o.v->type, MSGPACK_OBJECT_NIL);
	outcome_free(&o);
	run(&m, "count", p_none(&p), &o);
	ck_assert_uint_eq(o.v->via.u64, 1);
	outcome_free(&o);

	/* Holding keys vetoes unloading, with the count in the reason. */
	ck_assert_int_ne(m.d->can_unload(&call_host, m.state, &reason), 0);
	ck_assert_str_eq(reason, "holds 1 keys");

	/* Overwrite keeps one key. */
	pk = params_begin(&p, 2);
	msgpack_pack_str_with_body(pk, "a", 1);
	msgpack_pack_str_with_body(pk, "v2", 2);
	run(&m, "set", &p, &o);
	outcome_free(&o);
	run(&m, "get", p_str(&p, "a"), &o);
	expect_str(&o, "v2");
	outcome_free(&o);

	/* Many keys: growth keeps every one reachable. */
	for (int i = 0; i < 3000; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		pk = params_begin(&p, 2);
		msgpack_pack_str_with_body(pk, key, strlen(key));
		msgpack_pack_int(pk, i);
		run(&m, "set", &p, &o);
		ck_assert_int_eq(o.err, PROTO_OK);
		outcome_free(&o);
	}
	for (int i = 0; i < 3000; i += 7) {
		snprintf(key, sizeof(key), "key-%d", i);
		run(&m, "get", p_str(&p, key), &o);
		ck_assert_int_eq(o.v->via.i64, i);
		outcome_free(&o);
	}
	run(&m, "count", p_none(&p), &o);
	ck_assert_uint_eq(o.v->via.u64, 3001);
	outcome_free(&o);
	ck_assert_int_ne(m.d->can_unload(&call_host, m.state, &reason), 0);
	ck_assert_str_eq(reason, "holds 3001 keys");

	for (int i = 0; i < 3000; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		run(&m, "del", p_str(&p, key), &o);
		ck_assert(o.v->via.boolean);
		outcome_free(&o);
	}
	run(&m, "del", p_str(&p, "a"), &o);
	ck_assert(o.v->via.boolean);
	outcome_free(&o);
	run(&m, "del", p_str(&p, "a"), &o);
	ck_assert_int_eq(o.err, PROTO_OK);
	ck_assert(!o.v->via.boolean);
	outcome_free(&o);
	ck_assert_int_eq(m.d->can_unload(&call_host, m.state, &reason), 0);

	/* Bad params. */
	pk = params_begin(&p, 2);
	msgpack_pack_int(pk, 1);
	msgpack_pack_int(pk, 2);
	run(&m, "set", &p, &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	outcome_free(&o);
	run(&m, "set", p_str(&p, "k"), &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	outcome_free(&o);
	run(&m, "get", p_none(&p), &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	outcome_free(&o);
	run(&m, "count", p_str(&p, "x"), &o);
	expect_err(&o, PROTO_E_BAD_PARAMS);
	outcome_free(&o);
	{
		size_t big = (1u << 20) + 1;
		char *v = calloc(1, big);

		pk = params_begin(&p, 2);
		msgpack_pack_str_with_body(pk, "big", 3);
		msgpack_pack_bin_with_body(pk, v, big);
		run(&m, "set", &p, &o);
		expect_err(&o, PROTO_E_BAD_PARAMS);
		ck_assert_ptr_nonnull(strstr(o.msg, "exceeds"));
		outcome_free(&o);
		free(v);
	}
	/* fini with keys still held frees them (LSan checks). */
	pk = params_begin(&p, 2);
	msgpack_pack_str_with_body(pk, "left", 4);
	msgpack_pack_nil(pk);
	run(&m, "set", &p, &o);
	outcome_free(&o);
	module_unload(&m);
}
END_TEST

/* ---- test modules: the failure cases the daemon must survive -------------- */

START_TEST(test_bigtable)
{
	uint64_t want = 0;
	module m;
	params p;
	outcome o;

	for (size_t i = 0; i < (16u << 20) / 4; i++)
		want += (uint32_t)((uint32_t)i * 2654435761u + 1u);
	module_load(&m, "LMMS_TEST_MODULE_DIR", "bigtable");
	ck_assert_ptr_nonnull(m.state);
	run(&m, "sum", p_none(&p), &o);
	ck_assert_int_eq(o.err, PROTO_OK);
	ck_assert(o.v->via.u64 == want);
	outcome_free(&o);
	module_unload(&m);
}
END_TEST

START_TEST(test_nodelete_pinned)
{
	module m;
	params p;
	outcome o;
	void *again;

	module_load(&m, "LMMS_TEST_MODULE_DIR", "nodelete");
	run(&m, "ping", p_none(&p), &o);
	expect_str(&o, "pong");
	outcome_free(&o);
	{
		char path[sizeof(m.path)];

		memcpy(path, m.path, sizeof(path));
		module_unload(&m);
		/* Still mapped after dlclose: what the daemon reports as pinned. */
		again = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
		ck_assert_ptr_nonnull(again);
		dlclose(again);
	}

	/* A normal module is really gone after dlclose. */
	module_load(&m, "LMMS_TEST_MODULE_DIR", "veto");
	{
		char path[sizeof(m.path)];

		memcpy(path, m.path, sizeof(path));
		module_unload(&m);
		again = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
		ck_assert_ptr_null(again);
	}
}
END_TEST

START_TEST(test_veto)
{
	const char *reason = NULL;
	module m;
	params p;
	outcome o;

	module_load(&m, "LMMS_TEST_MODULE_DIR", "veto");
	ck_assert_ptr_nonnull(m.d->can_unload);
	ck_assert_int_ne(m.d->can_unload(&call_host, m.state, &reason), 0);
	ck_assert_str_eq(reason, "test veto");
	run(&m, "ping", p_none(&p), &o);
	expect_str(&o, "pong");
	outcome_free(&o);
	module_unload(&m);
}
END_TEST

START_TEST(test_badabi)
{
	lmms_module_entry_fn entry;
	const lmms_module_desc *d;
	module m;

	module_path(&m, "LMMS_TEST_MODULE_DIR", "badabi");
	m.dl = dlopen(m.path, RTLD_NOW | RTLD_LOCAL);
	ck_assert_ptr_nonnull(m.dl);
	*(void **)&entry = dlsym(m.dl, LMMS_MODULE_ENTRY_NAME);
	ck_assert_ptr_nonnull(entry);
	d = entry();
	ck_assert_uint_eq(d->abi_version, 999);
	ck_assert_str_eq(desc_check(d, "badabi"), "abi version mismatch");
	dlclose(m.dl);
}
END_TEST

START_TEST(test_badinit)
{
	lmms_module_entry_fn entry;
	const lmms_module_desc *d;
	void *state = NULL;
	lmms_call c;
	module m;
	int rc;

	module_path(&m, "LMMS_TEST_MODULE_DIR", "badinit");
	m.dl = dlopen(m.path, RTLD_NOW | RTLD_LOCAL);
	ck_assert_ptr_nonnull(m.dl);
	*(void **)&entry = dlsym(m.dl, LMMS_MODULE_ENTRY_NAME);
	d = entry();
	ck_assert_ptr_null(desc_check(d, "badinit"));
	ck_assert_ptr_nonnull(d->init);
	call_init(&c, NULL, 0, "badinit");
	rc = d->init(&call_host, &c, &state);
	ck_assert_int_lt(rc, 0);
	ck_assert(c.failed);
	ck_assert_str_eq(c.fail_msg, "init refused: test");
	call_fini(&c);
	dlclose(m.dl);
}
END_TEST

START_TEST(test_noentry)
{
	module m;
	void *sym;

	module_path(&m, "LMMS_TEST_MODULE_DIR", "noentry");
	m.dl = dlopen(m.path, RTLD_NOW | RTLD_LOCAL);
	ck_assert_ptr_nonnull(m.dl);
	dlerror();
	sym = dlsym(m.dl, LMMS_MODULE_ENTRY_NAME);
	ck_assert_ptr_null(sym);
	ck_assert_ptr_nonnull(dlerror());
	dlclose(m.dl);
}
END_TEST

/* Every bundled module loads, names itself after its file, documents itself
 * and unloads. */
START_TEST(test_bundled_descriptors)
{
	static const char *const names[] = { "echo", "hash", "zstd", "json", "sqlite", "kv" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		module m;

		module_load(&m, "LMMS_MODULE_DIR", names[i]);
		ck_assert_uint_eq(m.d->size, sizeof(lmms_module_desc));
		ck_assert_uint_eq(m.d->op_size, sizeof(lmms_op));
		ck_assert_ptr_nonnull(m.d->version);
		ck_assert_uint_eq(m.d->flags, 0);
		expect_documented(&m);
		module_unload(&m);
	}
}
END_TEST

static Suite *modules_suite(void)
{
	Suite *s = suite_create("modules");
	TCase *tc = tcase_create("bundled");
	TCase *tt = tcase_create("test-modules");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_bundled_descriptors);
	tcase_add_test(tc, test_echo);
	tcase_add_test(tc, test_hash);
	tcase_add_test(tc, test_zstd);
	tcase_add_test(tc, test_json);
	tcase_add_test(tc, test_sqlite);
	tcase_add_test(tc, test_kv);
	suite_add_tcase(s, tc);

	tcase_add_test(tt, test_bigtable);
	tcase_add_test(tt, test_nodelete_pinned);
	tcase_add_test(tt, test_veto);
	tcase_add_test(tt, test_badabi);
	tcase_add_test(tt, test_badinit);
	tcase_add_test(tt, test_noentry);
	suite_add_tcase(s, tt);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(modules_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
