/*
 * test-watch.c - the module directory watcher on real files in a temporary
 * directory, with the real coreutils (cp, mv, install) where they are what
 * users run: a new file, cp + mv (rename over), install (unlink + create),
 * cp over an existing file and writes in place, rm, names that must be
 * ignored, a burst that must be one event, a writer that is still writing,
 * more names than the pending table holds, a callback that stops the
 * watcher, the directory itself removed; then the mapped-file check against
 * this process's own mappings.
 *
 * Nothing asserts on time: every wait ends at an event (a "sentinel" file
 * created last, whose event settles after the ones before it), with a
 * generous deadline only as a failure.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "watch.h"
#include "util.h"

#define MAX_EVS 256
#define DEADLINE_MS 20000

extern char **environ;

typedef struct rec {
	watch_kind kind;
	char name[WATCH_NAME_MAX + 1];
	watch_stamp st;
} rec;

static char dir[PATH_MAX / 2];
static uv_loop_t loop;
static uv_timer_t deadline;
static watch w;
static rec evs[MAX_EVS];
static int n_evs;
static char stop_on[WATCH_NAME_MAX + 1];
static bool timed_out, stop_in_callback;
static int sentinels;

static void on_event(void *ud, const watch_event *ev)
{
	(void)ud;
	ck_assert_int_lt(n_evs, MAX_EVS);
	evs[n_evs].kind = ev->kind;
	snprintf(evs[n_evs].name, sizeof(evs[n_evs].name), "%s", ev->name);
	evs[n_evs].st = ev->stamp;
	n_evs++;
	if (stop_in_callback)
		watch_stop(&w);
	if (strcmp(ev->name, stop_on) == 0 || ev->kind == WATCH_LOST)
		uv_stop(&loop);
}

static void on_deadline(uv_timer_t *t)
{
	timed_out = true;
	uv_stop(t->loop);
}

static void path_of(char *buf, size_t len, const char *file)
{
	snprintf(buf, len, "%s/%s", dir, file);
}

static void put(const char *file, const char *content)
{
	char p[PATH_MAX];
	FILE *f;

	path_of(p, sizeof(p), file);
	f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fputs(content, f), 0);
	ck_assert_int_eq(fclose(f), 0);
}

static void mv(const char *from, const char *to)
{
	char a[PATH_MAX], b[PATH_MAX];

	path_of(a, sizeof(a), from);
	path_of(b, sizeof(b), to);
	ck_assert_int_eq(rename(a, b), 0);
}

static void rm(const char *file)
{
	char p[PATH_MAX];

	path_of(p, sizeof(p), file);
	ck_assert_int_eq(unlink(p), 0);
}

static void stamp(const char *file, watch_stamp *st)
{
	char p[PATH_MAX];

	path_of(p, sizeof(p), file);
	ck_assert_int_eq(watch_stamp_path(p, st), 0);
}

/* Run a coreutils program on files of dir (NULL-terminated argv). */
static void run(const char *const *argv)
{
	pid_t pid;
	int status;

	ck_assert_int_eq(posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)argv, environ), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s failed", argv[0]);
}

/* Run the loop until an event for name (or a LOST) arrives. */
static void run_until(const char *name)
{
	snprintf(stop_on, sizeof(stop_on), "%s", name);
	uv_timer_start(&deadline, on_deadline, DEADLINE_MS, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_timer_stop(&deadline);
	ck_assert_msg(!timed_out, "no event for %s", name);
}

/* Create a new module file and wait for it: every event caused before it
 * has been delivered by then. Returns the events before the sentinel. */
static int sentinel(void)
{
	char name[32], file[40];

	snprintf(name, sizeof(name), "sentinel%d", ++sentinels);
	snprintf(file, sizeof(file), "%s.so", name);
	put(file, "s");
	run_until(name);
	ck_assert_int_ge(n_evs, 1);
	ck_assert_str_eq(evs[n_evs - 1].name, name);
	ck_assert_int_eq(evs[n_evs - 1].kind, WATCH_ADDED);
	return n_evs - 1;
}

static void expect_one(watch_kind kind, const char *name)
{
	int n = sentinel();

	ck_assert_msg(n == 1, "%d events before the sentinel, expected 1 (first: %s %s)", n,
		      n ? watch_kind_name(evs[0].kind) : "-", n ? evs[0].name : "-");
	ck_assert_str_eq(evs[0].name, name);
	ck_assert_msg(evs[0].kind == kind, "%s: %s, expected %s", name,
		      watch_kind_name(evs[0].kind), watch_kind_name(kind));
	n_evs = 0;
}

static void start(uint64_t debounce_ms, uint64_t hold_max_ms)
{
	watch_opts o = { debounce_ms, hold_max_ms };

	ck_assert_int_eq(watch_start(&w, dir, &o, on_event, NULL), 0);
}

static void setup(void)
{
	tu_tmpdir(dir, sizeof(dir), "watch");
	put("a.so", "a version 1");
	put("b.so", "b version 1");
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	uv_timer_init(&loop, &deadline);
	watch_init(&w, &loop);
	n_evs = 0;
	timed_out = stop_in_callback = false;
}

static void teardown(void)
{
	watch_stop(&w);
	uv_close((uv_handle_t *)&deadline, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	/* every handle the watcher opened is closed again */
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	ck_assert_int_eq(w.fd, -1);
	tu_rmtree(dir);
}

START_TEST(new_file)
{
	start(100, 0);
	put("c.so", "c");
	expect_one(WATCH_ADDED, "c");
	ck_assert_int_eq(w.n_files, 4); /* a, b, c, the sentinel */
}
END_TEST

START_TEST(rename_over)
{
	char src[PATH_MAX], tmp[PATH_MAX];
	watch_stamp before;

	stamp("a.so", &before);
	start(100, 0);
	/* cp + mv, as a careful install script does */
	path_of(src, sizeof(src), "b.so");
	path_of(tmp, sizeof(tmp), "a.so.new");
	run((const char *const[]){ "cp", src, tmp, NULL });
	path_of(src, sizeof(src), "a.so");
	run((const char *const[]){ "mv", tmp, src, NULL });
	expect_one(WATCH_REPLACED, "a");
	ck_assert(evs[0].st.ino != before.ino);
	/* and by hand, with a hidden temp name */
	put(".a.so.tmp", "a version 3");
	mv(".a.so.tmp", "a.so");
	expect_one(WATCH_REPLACED, "a");
}
END_TEST

START_TEST(coreutils_install)
{
	char src[PATH_MAX], dst[PATH_MAX];

	start(100, 0);
	/* install(1) unlinks the target and writes a new file in its place */
	snprintf(src, sizeof(src), "%s/../%s-src", dir, strrchr(dir, '/') + 1);
	{
		FILE *f = fopen(src, "w");

		ck_assert_ptr_nonnull(f);
		fputs("a version 2", f);
		ck_assert_int_eq(fclose(f), 0);
	}
	path_of(dst, sizeof(dst), "a.so");
	run((const char *const[]){ "install", "-m", "0644", src, dst, NULL });
	unlink(src);
	expect_one(WATCH_REPLACED, "a");
}
END_TEST

START_TEST(in_place)
{
	char src[PATH_MAX], dst[PATH_MAX];
	watch_stamp before;
	int fd;

	stamp("a.so", &before);
	start(100, 0);
	/* cp onto an existing file truncates and rewrites that inode */
	path_of(src, sizeof(src), "b.so");
	path_of(dst, sizeof(dst), "a.so");
	run((const char *const[]){ "cp", src, dst, NULL });
	expect_one(WATCH_MODIFIED_IN_PLACE, "a");
	/* a write that keeps the size */
	fd = open(dst, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "B", 1, 0), 1);
	ck_assert_int_eq(close(fd), 0);
	expect_one(WATCH_MODIFIED_IN_PLACE, "a");
	ck_assert(evs[0].st.ino == before.ino);
}
END_TEST

START_TEST(away_and_back)
{
	watch_stamp before;

	stamp("a.so", &before);
	start(100, 0);
	/* the same inode leaves the name and comes back: whatever holds the
	 * name now came there by a rename, which never changes a mapped file,
	 * even when the inode number is the old one (as here, or when a
	 * filesystem reuses a freed one for a new file) */
	mv("a.so", "a.so.away");
	mv("a.so.away", "a.so");
	expect_one(WATCH_REPLACED, "a");
	ck_assert(evs[0].st.ino == before.ino);
}
END_TEST

START_TEST(removed)
{
	char p[PATH_MAX];

	start(100, 0);
	path_of(p, sizeof(p), "b.so");
	run((const char *const[]){ "rm", p, NULL });
	expect_one(WATCH_REMOVED, "b");
	/* renamed away is removed too */
	mv("a.so", "a.so.old");
	expect_one(WATCH_REMOVED, "a");
	ck_assert_int_eq(w.n_files, 2); /* the two sentinels */
}
END_TEST

START_TEST(ignored_names)
{
	char p[PATH_MAX];

	start(100, 0);
	put("notes.txt", "x");
	put("a.so.bak", "x");
	put(".hidden.so", "x");
	put(".#a.so", "x");
	put("bad name.so", "x");
	put("a.so~", "x");
	put("a.so.1", "x");
	put(".so", "x");
	path_of(p, sizeof(p), "dir.so");
	ck_assert_int_eq(mkdir(p, 0700), 0); /* not a regular file */
	mv("notes.txt", "notes2.txt");
	rm("a.so.bak");
	ck_assert_int_eq(sentinel(), 0);
	ck_assert_int_eq(w.n_files, 3); /* a, b and the sentinel: nothing else learned */
}
END_TEST

START_TEST(burst_is_one_event)
{
	char p[PATH_MAX];
	int fd;

	start(100, 0);
	/* with the loop not running every event waits in the kernel: they are
	 * read together, so this does not depend on timing */
	for (int i = 0; i < 20; i++) {
		char content[32];

		snprintf(content, sizeof(content), "a version %d", i + 2);
		put("a.so.tmp", content);
		mv("a.so.tmp", "a.so");
	}
	expect_one(WATCH_REPLACED, "a");

	/* meson install's way: unlink, create, write in pieces, chmod */
	rm("b.so");
	path_of(p, sizeof(p), "b.so");
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	for (int i = 0; i < 50; i++)
		ck_assert_int_eq(write(fd, "0123456789abcdef", 16), 16);
	ck_assert_int_eq(fchmod(fd, 0755), 0);
	ck_assert_int_eq(close(fd), 0);
	expect_one(WATCH_REPLACED, "b");
}
END_TEST

START_TEST(debounce_across_reads)
{
	/* a debounce far longer than the gap between the two halves below */
	start(1500, 0);
	put("a.so.tmp", "half one");
	mv("a.so.tmp", "a.so");
	/* the watcher's handles are unref'd: the deadline keeps the loop up */
	uv_timer_start(&deadline, on_deadline, DEADLINE_MS, 0);
	for (int i = 0; i < 1000 && w.raw_events == 0; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	ck_assert_uint_gt(w.raw_events, 0); /* the first half was read */
	ck_assert_int_eq(n_evs, 0); /* and is waiting */
	put("a.so.tmp", "half two");
	mv("a.so.tmp", "a.so");
	expect_one(WATCH_REPLACED, "a");
}
END_TEST

START_TEST(writer_still_open)
{
	char p[PATH_MAX];
	int fd, n;

	start(100, 60000);
	path_of(p, sizeof(p), "c.so");
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "first half", 10), 10);
	/* held while open: the sentinel settles, c does not */
	ck_assert_int_eq(sentinel(), 0);
	n_evs = 0;
	ck_assert_int_eq(write(fd, "second half", 11), 11);
	ck_assert_int_eq(close(fd), 0);
	n = sentinel();
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(evs[0].name, "c");
	ck_assert_int_eq(evs[0].kind, WATCH_ADDED);
	ck_assert_int_eq(evs[0].st.size, 21); /* all of it */
}
END_TEST

START_TEST(more_names_than_pending)
{
	const int n = WATCH_MAX_PENDING + 10;
	bool seen[WATCH_MAX_PENDING + 11] = { false };
	char last[32];

	snprintf(last, sizeof(last), "last%d", n);
	start(100, 0);
	for (int i = 0; i <= n; i++) {
		char file[32];

		snprintf(file, sizeof(file), i < n ? "m%d.so" : "last%d.so", i);
		put(file, "m");
	}
	/* the full comparison delivers in directory order, all in one turn */
	run_until(last);
	ck_assert_int_eq(n_evs, n + 1);
	for (int i = 0; i < n_evs; i++) {
		int k;

		ck_assert_int_eq(evs[i].kind, WATCH_ADDED);
		ck_assert(sscanf(evs[i].name, "m%d", &k) == 1 || sscanf(evs[i].name, "last%d", &k) == 1);
		ck_assert(k >= 0 && k <= n && !seen[k]); /* each exactly once */
		seen[k] = true;
	}
	ck_assert_uint_ge(w.rescans, 1);
	n_evs = 0;
	ck_assert_int_eq(sentinel(), 0);
}
END_TEST

START_TEST(stop_from_callback)
{
	start(100, 0);
	put("c.so", "c");
	put("d.so", "d");
	stop_in_callback = true;
	run_until("c");
	/* c and d settle in the same turn; nothing after the stop */
	ck_assert_int_eq(n_evs, 1);
	ck_assert(!w.active);
	stop_in_callback = false;
	/* it starts again, knowing c and d without events */
	uv_run(&loop, UV_RUN_NOWAIT);
	start(100, 0);
	ck_assert_int_eq(w.n_files, 4);
	n_evs = 0;
	ck_assert_int_eq(sentinel(), 0);
}
END_TEST

START_TEST(restart_waits_for_close)
{
	start(100, 0);
	watch_stop(&w);
	watch_stop(&w); /* twice is harmless */
	ck_assert_int_eq(watch_start(&w, dir, NULL, on_event, NULL), -EBUSY);
	uv_run(&loop, UV_RUN_NOWAIT); /* the close callbacks */
	ck_assert_int_eq(w.closing, 0);
	ck_assert_int_eq(w.fd, -1);
	start(100, 0);
	put("c.so", "c");
	expect_one(WATCH_ADDED, "c");
}
END_TEST

START_TEST(directory_gone)
{
	start(100, 0);
	tu_rmtree(dir);
	ck_assert_int_eq(access(dir, F_OK), -1);
	run_until("");
	ck_assert_int_ge(n_evs, 1);
	ck_assert_int_eq(evs[n_evs - 1].kind, WATCH_LOST);
	ck_assert(!w.active);
	ck_assert_int_eq(mkdir(dir, 0700), 0); /* for the teardown */
}
END_TEST

START_TEST(start_errors)
{
	char p[PATH_MAX];

	path_of(p, sizeof(p), "nowhere");
	ck_assert_int_eq(watch_start(&w, p, NULL, on_event, NULL), -ENOENT);
	path_of(p, sizeof(p), "a.so");
	ck_assert_int_eq(watch_start(&w, p, NULL, on_event, NULL), -ENOTDIR);
	start(100, 0);
	ck_assert_int_eq(watch_start(&w, dir, NULL, on_event, NULL), -EBUSY);
}
END_TEST

/* --- the mapped-file check --- */

START_TEST(mapped_file_check)
{
	char p[PATH_MAX], canon[PATH_MAX];
	watch_stamp at_load, fresh;
	watch_map m;
	volatile const char *code;
	int fd;

	/* a file of two pages, mapped the way the loader maps a library */
	path_of(p, sizeof(p), "m.so");
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 8192), 0);
	ck_assert_int_eq(pwrite(fd, "old code", 8, 0), 8);
	code = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, fd, 0);
	ck_assert_ptr_ne((void *)code, MAP_FAILED);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(watch_stamp_path(p, &at_load), 0);
	ck_assert_ptr_nonnull(realpath(p, canon));

	ck_assert_int_eq(watch_file_check(0, p, &at_load), WATCH_FILE_SAME);
	ck_assert_int_eq(watch_maps_lookup(0, canon, &m), 0);
	ck_assert(m.ino == at_load.ino && m.dev == at_load.dev && !m.deleted);

	/* written in place: the mapping itself changes, which is the danger */
	fd = open(p, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "new code", 8, 0), 8);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(code[0], 'n');
	ck_assert_int_eq(watch_file_check(0, p, &at_load), WATCH_FILE_MODIFIED);

	/* replaced by rename: the mapping keeps the old inode, now deleted */
	put("m.so.tmp", "replacement");
	mv("m.so.tmp", "m.so");
	ck_assert_int_eq(watch_file_check(0, p, &at_load), WATCH_FILE_REPLACED);
	ck_assert_int_eq(watch_maps_lookup(0, canon, &m), 0);
	ck_assert(m.ino == at_load.ino && m.deleted);
	ck_assert_int_eq(code[0], 'n'); /* untouched by the new file */

	/* the new file, never mapped, written in place: harmless here */
	ck_assert_int_eq(watch_stamp_path(p, &fresh), 0);
	ck_assert_int_eq(munmap((void *)code, 8192), 0);
	ck_assert_int_eq(watch_maps_lookup(0, canon, &m), -ENOENT);
	put("m.so", "rewritten in place, and longer");
	ck_assert_int_eq(watch_file_check(0, p, &fresh), WATCH_FILE_MODIFIED_UNMAPPED);

	rm("m.so");
	ck_assert_int_eq(watch_file_check(0, p, &fresh), WATCH_FILE_GONE);
	ck_assert_str_eq(watch_file_state_name(WATCH_FILE_MODIFIED), "modified");
	ck_assert_str_eq(watch_kind_name(WATCH_MODIFIED_IN_PLACE), "modified_in_place");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("watch");
	TCase *tc = tcase_create("watch");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, new_file);
	tcase_add_test(tc, rename_over);
	tcase_add_test(tc, coreutils_install);
	tcase_add_test(tc, in_place);
	tcase_add_test(tc, away_and_back);
	tcase_add_test(tc, removed);
	tcase_add_test(tc, ignored_names);
	tcase_add_test(tc, burst_is_one_event);
	tcase_add_test(tc, debounce_across_reads);
	tcase_add_test(tc, writer_still_open);
	tcase_add_test(tc, more_names_than_pending);
	tcase_add_test(tc, stop_from_callback);
	tcase_add_test(tc, restart_waits_for_close);
	tcase_add_test(tc, directory_gone);
	tcase_add_test(tc, start_errors);
	tcase_add_test(tc, mapped_file_check);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
