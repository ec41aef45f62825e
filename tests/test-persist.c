/*
 * test-persist.c - saved heat on real files in a temporary directory: round
 * trip, the decay rule, every truncation and every flipped byte of a small
 * file, forged files with valid checksums but bad contents (version, count,
 * sizes, methods), bounds on both sides, and atomicity (a stale or hostile
 * temp file, a save abandoned half way).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "persist.h"

#define MAX_GOT 8
#define T0 1700000000000ull /* a wall-clock ms */
#define MIN 60000ull

static char dir[PATH_MAX / 2], path[PATH_MAX], tmp[PATH_MAX];

static void setup(void)
{
	const char *base = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/lmms-persist-XXXXXX", base ? base : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/heat", dir);
	snprintf(tmp, sizeof(tmp), "%s/heat.tmp", dir);
}

static void teardown(void)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* --- records from an array, records into an array --- */

typedef struct src {
	const persist_record *recs;
	size_t n, i;
	int fail_at; /* return -EIO instead of this record; -1 never */
} src;

static int src_next(void *ud, persist_record *rec)
{
	src *s = ud;

	if (s->i == s->n)
		return 0;
	if ((int)s->i == s->fail_at)
		return -EIO;
	*rec = s->recs[s->i++];
	return 1;
}

typedef struct got {
	char method[MAX_GOT][PERSIST_METHOD_MAX + 1];
	uint32_t count[MAX_GOT];
	uint64_t calls[MAX_GOT];
	int n;
} got;

static int got_each(void *ud, const persist_record *rec)
{
	got *g = ud;

	ck_assert_int_lt(g->n, MAX_GOT);
	ck_assert_uint_eq(strlen(rec->method), rec->method_len);
	memcpy(g->method[g->n], rec->method, rec->method_len + 1);
	g->count[g->n] = rec->count;
	g->calls[g->n] = rec->calls;
	g->n++;
	return 0;
}

static char long_method[PERSIST_METHOD_MAX + 2];

static const persist_record three[] = {
	{ "hash.sha256", 11, 150, 9000 },
	{ "json.parse", 10, 20, 20 },
	{ "kv.get", 6, 0xffffffffu, 1ull << 40 },
};

static int save(const persist_record *recs, size_t n, uint64_t now)
{
	src s = { recs, n, 0, -1 };

	return persist_save(path, now, src_next, &s);
}

static int load(uint64_t now, uint64_t interval, got *g)
{
	memset(g, 0, sizeof(*g));
	return persist_load(path, now, interval, got_each, g, NULL);
}

static void write_bytes(const char *p, const void *data, size_t n)
{
	FILE *f = fopen(p, "wb");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
}

static size_t read_bytes(const char *p, unsigned char *buf, size_t cap)
{
	FILE *f = fopen(p, "rb");
	size_t n;

	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, cap, f);
	ck_assert_int_eq(fclose(f), 0);
	return n;
}

/* the saved "three" are what load hands back, undecayed */
static void assert_three(const got *g)
{
	ck_assert_int_eq(g->n, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_str_eq(g->method[i], three[i].method);
		ck_assert_uint_eq(g->count[i], three[i].count);
		ck_assert_uint_eq(g->calls[i], three[i].calls);
	}
}

START_TEST(crc_check_value)
{
	/* the CRC-32 check value every implementation agrees on */
	ck_assert_uint_eq(persist_crc32(0, "123456789", 9), 0xcbf43926u);
	/* chaining equals one pass */
	ck_assert_uint_eq(persist_crc32(persist_crc32(0, "1234", 4), "56789", 5), 0xcbf43926u);
}
END_TEST

START_TEST(round_trip)
{
	persist_record recs[4];
	persist_info info;
	got g;

	memcpy(recs, three, sizeof(three));
	memset(long_method, 'm', PERSIST_METHOD_MAX);
	long_method[3] = '.';
	recs[3] = (persist_record){ long_method, PERSIST_METHOD_MAX, 7, 7 };
	ck_assert_int_eq(save(recs, 4, T0), 4);
	memset(&g, 0, sizeof(g));
	ck_assert_int_eq(persist_load(path, T0 + 1000, MIN, got_each, &g, &info), 4);
	ck_assert_int_eq(g.n, 4);
	for (int i = 0; i < 3; i++) {
		ck_assert_str_eq(g.method[i], three[i].method);
		ck_assert_uint_eq(g.count[i], three[i].count);
		ck_assert_uint_eq(g.calls[i], three[i].calls);
	}
	ck_assert_uint_eq(strlen(g.method[3]), PERSIST_METHOD_MAX);
	ck_assert_uint_eq(info.saved_at_ms, T0);
	ck_assert_uint_eq(info.elapsed_ms, 1000);
	ck_assert_uint_eq(info.halvings, 0);
	ck_assert_uint_eq(info.records, 4);
	/* nothing left beside it */
	ck_assert_int_eq(access(tmp, F_OK), -1);
	ck_assert_int_eq(errno, ENOENT);

	/* an empty state is a valid one */
	ck_assert_int_eq(save(NULL, 0, T0), 0);
	ck_assert_int_eq(load(T0, MIN, &g), 0);
	ck_assert_int_eq(g.n, 0);
}
END_TEST

START_TEST(decay_rule)
{
	static const struct {
		int64_t elapsed; /* ms after the save; negative: the clock went back */
		uint64_t interval;
		uint32_t count, want;
	} cases[] = {
		{ 0, MIN, 1000, 1000 },
		{ MIN - 1, MIN, 1000, 1000 },
		{ MIN, MIN, 1000, 500 },
		{ 3 * MIN + 5, MIN, 1000, 125 },
		{ 9 * MIN, MIN, 1000, 1 },
		{ 10 * MIN, MIN, 1000, 0 },
		{ 31 * MIN, MIN, 0xffffffffu, 1 },
		{ 32 * MIN, MIN, 0xffffffffu, 0 },
		{ 100000 * MIN, MIN, 0xffffffffu, 0 },
		{ -5 * MIN, MIN, 1000, 1000 },
		{ 50 * MIN, 0, 1000, 1000 }, /* interval 0: no decay */
		{ 2 * 3600000, 15 * MIN, 1000, 3 }, /* 8 halvings */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		persist_record r = { "a.b", 3, cases[i].count, 42 };
		got g;

		ck_assert_int_eq(save(&r, 1, T0), 1);
		ck_assert_int_eq(load(T0 + (uint64_t)cases[i].elapsed, cases[i].interval, &g), 1);
		ck_assert_msg(g.count[0] == cases[i].want, "case %zu: %u, expected %u", i,
			      g.count[0], cases[i].want);
		ck_assert_uint_eq(g.calls[0], 42); /* calls are history, not heat */
	}
}
END_TEST

/* "three" saved, and the file's bytes */
static size_t saved_three(unsigned char *full, size_t cap)
{
	size_t len;

	ck_assert_int_eq(save(three, 3, T0), 3);
	len = read_bytes(path, full, cap);
	ck_assert_uint_eq(len, PERSIST_HEADER_SIZE + 3 * PERSIST_RECORD_FIXED + 11 + 10 + 6);
	return len;
}

START_TEST(truncated_at_every_offset)
{
	unsigned char full[512];
	size_t len = saved_three(full, sizeof(full));
	got g;

	for (size_t k = 0; k < len; k++) {
		write_bytes(path, full, k);
		ck_assert_msg(load(T0, MIN, &g) == -ENODATA, "truncated at %zu", k);
		ck_assert_int_eq(g.n, 0);
	}
	write_bytes(path, full, len);
	ck_assert_int_eq(load(T0, MIN, &g), 3);
	assert_three(&g);
}
END_TEST

START_TEST(flipped_bytes)
{
	unsigned char full[512];
	size_t len = saved_three(full, sizeof(full));
	got g;

	for (size_t k = 0; k < len; k++) {
		for (unsigned bit = 0; bit < 8; bit += 3) {
			/* the version field names itself; anything else is corrupt */
			int want = k >= 8 && k < 12 ? -EPROTO : -EBADMSG;

			full[k] ^= (unsigned char)(1u << bit);
			write_bytes(path, full, len);
			ck_assert_msg(load(T0, MIN, &g) == want, "byte %zu bit %u", k, bit);
			ck_assert_int_eq(g.n, 0);
			full[k] ^= (unsigned char)(1u << bit);
		}
	}
	/* trailing garbage after a valid file */
	full[len] = 0;
	write_bytes(path, full, len + 1);
	ck_assert_int_eq(load(T0, MIN, &g), -EBADMSG);
}
END_TEST

/* --- forged files: every checksum right, something else wrong --- */

static void le(unsigned char *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

typedef struct forge {
	uint32_t version, count;
	uint64_t body_size; /* 0: the real one */
	const unsigned char *body;
	size_t body_len;
} forge;

static int load_forged(const forge *f)
{
	unsigned char buf[1024];
	got g;
	int r;

	ck_assert_uint_le(PERSIST_HEADER_SIZE + f->body_len, sizeof(buf));
	memcpy(buf, "LMMSHEAT", 8);
	le(buf + 8, f->version, 4);
	le(buf + 12, f->count, 4);
	le(buf + 16, T0, 8);
	le(buf + 24, f->body_size ? f->body_size : f->body_len, 8);
	le(buf + 32, persist_crc32(0, f->body, f->body_len), 4);
	le(buf + 36, persist_crc32(0, buf, 36), 4);
	memcpy(buf + PERSIST_HEADER_SIZE, f->body, f->body_len);
	write_bytes(path, buf, PERSIST_HEADER_SIZE + f->body_len);
	r = load(T0, MIN, &g);
	if (r < 0)
		ck_assert_int_eq(g.n, 0); /* a bad file delivers nothing */
	return r;
}

/* one record's bytes: method length field, then the method */
static size_t record(unsigned char *p, uint32_t len_field, const char *method, size_t mlen)
{
	le(p, len_field, 2);
	le(p + 2, 5, 4);
	le(p + 6, 5, 8);
	memcpy(p + PERSIST_RECORD_FIXED, method, mlen);
	return PERSIST_RECORD_FIXED + mlen;
}

START_TEST(forged)
{
	unsigned char body[600];
	size_t one = record(body, 3, "a.b", 3);
	size_t two = one + record(body + one, 3, "c.d", 3);
	char big[PERSIST_METHOD_MAX + 1];
	forge f;

	/* the forge itself is right */
	f = (forge){ PERSIST_VERSION, 2, 0, body, two };
	ck_assert_int_eq(load_forged(&f), 2);

	f.version = 2;
	ck_assert_int_eq(load_forged(&f), -EPROTO);
	f.version = 0;
	ck_assert_int_eq(load_forged(&f), -EPROTO);
	f.version = PERSIST_VERSION;

	f.count = 0xffffffffu; /* huge count */
	ck_assert_int_eq(load_forged(&f), -EFBIG);
	f.count = PERSIST_MAX_RECORDS + 1;
	ck_assert_int_eq(load_forged(&f), -EFBIG);
	f.count = 3; /* more records than the body holds */
	ck_assert_int_eq(load_forged(&f), -EBADMSG);
	f.count = 1; /* fewer: the rest is unaccounted for */
	ck_assert_int_eq(load_forged(&f), -EBADMSG);
	f.count = 2;

	f.body_size = 1ull << 40; /* a body size no file may have */
	ck_assert_int_eq(load_forged(&f), -EFBIG);
	f.body_size = two + 10; /* says more than is there: truncated */
	ck_assert_int_eq(load_forged(&f), -ENODATA);
	f.body_size = 0;

	/* records that do not parse */
	record(body + one, 0, "", 0); /* empty method */
	f.body_len = one + PERSIST_RECORD_FIXED;
	ck_assert_int_eq(load_forged(&f), -EBADMSG);
	record(body + one, 3, "c\0d", 3); /* NUL inside */
	f.body_len = two;
	ck_assert_int_eq(load_forged(&f), -EBADMSG);
	record(body + one, 9, "c.d", 3); /* length past the body */
	ck_assert_int_eq(load_forged(&f), -EBADMSG);
	memset(big, 'x', sizeof(big));
	f.body_len = one + record(body + one, sizeof(big), big, sizeof(big)); /* too long */
	ck_assert_int_eq(load_forged(&f), -EBADMSG);
	f.body_len = one + record(body + one, sizeof(big) - 1, big, sizeof(big) - 1);
	ck_assert_int_eq(load_forged(&f), 2); /* the longest allowed */
}
END_TEST

START_TEST(not_a_state_file)
{
	got g;
	int fd;

	ck_assert_int_eq(load(T0, MIN, &g), -ENOENT);
	write_bytes(path, "", 0);
	ck_assert_int_eq(load(T0, MIN, &g), -ENODATA);
	write_bytes(path, "not a heat file at all, but long enough for a header", 52);
	ck_assert_int_eq(load(T0, MIN, &g), -EBADMSG);
	/* oversized: refused from its size, never read */
	fd = open(path, O_WRONLY | O_TRUNC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)PERSIST_MAX_FILE + 1), 0);
	close(fd);
	ck_assert_int_eq(load(T0, MIN, &g), -EFBIG);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	ck_assert_int_eq(load(T0, MIN, &g), -EISDIR);
	ck_assert_int_eq(rmdir(path), 0);

	ck_assert_str_eq(persist_strerror(-ENODATA), "truncated");
	ck_assert_str_eq(persist_strerror(-EBADMSG), "corrupt");
	ck_assert_str_eq(persist_strerror(-EPROTO), "unsupported version");
	ck_assert_str_eq(persist_strerror(-EFBIG), "oversized");
}
END_TEST

START_TEST(save_bounds)
{
	persist_record bad[2] = { three[0] };
	got g;
	src s;

	ck_assert_int_eq(save(three, 3, T0), 3);

	bad[1] = (persist_record){ "", 0, 1, 1 };
	ck_assert_int_eq(save(bad, 2, T0 + 1), -EINVAL);
	bad[1] = (persist_record){ "a\0b", 3, 1, 1 };
	ck_assert_int_eq(save(bad, 2, T0 + 1), -EINVAL);
	memset(long_method, 'm', sizeof(long_method) - 1);
	bad[1] = (persist_record){ long_method, PERSIST_METHOD_MAX + 1, 1, 1 };
	ck_assert_int_eq(save(bad, 2, T0 + 1), -EINVAL);
	bad[1] = (persist_record){ NULL, 3, 1, 1 };
	ck_assert_int_eq(save(bad, 2, T0 + 1), -EINVAL);

	/* the caller's own failure half way */
	s = (src){ three, 3, 0, 2 };
	ck_assert_int_eq(persist_save(path, T0 + 1, src_next, &s), -EIO);

	/* none of those touched the file or left a temp one */
	ck_assert_int_eq(load(T0, MIN, &g), 3);
	assert_three(&g);
	ck_assert_int_eq(access(tmp, F_OK), -1);
}
END_TEST

/* yields the same record forever: the bound must stop it */
static int endless(void *ud, persist_record *rec)
{
	(void)ud;
	*rec = three[0];
	return 1;
}

START_TEST(too_many_records)
{
	got g;

	ck_assert_int_eq(save(three, 3, T0), 3);
	ck_assert_int_eq(persist_save(path, T0, endless, NULL), -E2BIG);
	ck_assert_int_eq(load(T0, MIN, &g), 3);
	ck_assert_int_eq(access(tmp, F_OK), -1);
}
END_TEST

START_TEST(atomic_replace)
{
	static const persist_record b[] = { { "new.op", 6, 33, 44 } };
	unsigned char full[512];
	char victim[PATH_MAX];
	size_t len;
	got g;

	/* B's bytes, to leave a half-written copy of them as the temp file */
	ck_assert_int_eq(save(b, 1, T0), 1);
	len = read_bytes(path, full, sizeof(full));

	ck_assert_int_eq(save(three, 3, T0), 3);
	/* a crash after writing part of the next save, before its rename */
	write_bytes(tmp, full, len / 2);
	ck_assert_int_eq(load(T0, MIN, &g), 3);
	assert_three(&g);
	/* a crash after writing all of it, before the rename: still the old */
	write_bytes(tmp, full, len);
	ck_assert_int_eq(load(T0, MIN, &g), 3);
	assert_three(&g);

	/* the next save replaces both */
	ck_assert_int_eq(save(b, 1, T0), 1);
	ck_assert_int_eq(access(tmp, F_OK), -1);
	ck_assert_int_eq(load(T0, MIN, &g), 1);
	ck_assert_str_eq(g.method[0], "new.op");
	ck_assert_uint_eq(g.count[0], 33);

	/* a link planted as the temp file is removed, never written through */
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	write_bytes(victim, "keep", 4);
	ck_assert_int_eq(symlink(victim, tmp), 0);
	ck_assert_int_eq(save(three, 3, T0), 3);
	ck_assert_uint_eq(read_bytes(victim, full, sizeof(full)), 4);
	ck_assert_int_eq(memcmp(full, "keep", 4), 0);
	ck_assert_int_eq(load(T0, MIN, &g), 3);

	/* a directory that does not exist */
	snprintf(path, sizeof(path), "%s/nowhere/heat", dir);
	ck_assert_int_eq(save(three, 3, T0), -ENOENT);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("persist");
	TCase *tc = tcase_create("persist");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, crc_check_value);
	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, decay_rule);
	tcase_add_test(tc, truncated_at_every_offset);
	tcase_add_test(tc, flipped_bytes);
	tcase_add_test(tc, forged);
	tcase_add_test(tc, not_a_state_file);
	tcase_add_test(tc, save_bounds);
	tcase_add_test(tc, too_many_records);
	tcase_add_test(tc, atomic_replace);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
