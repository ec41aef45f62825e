/*
 * test-worker.c - isolated modules through real workers: the built lmmsd in
 * worker mode ($LMMS_BUILD_ROOT/daemon/lmmsd), the bundled echo module and
 * the fault fixtures of tests/modules. Each fault gets its documented
 * answer while this process (the daemon's stand-in) carries on: its loop
 * keeps turning, it leaks no descriptor, and at the end of every test its
 * loop closes with no handle left. Also: the worker's hardening (inherited
 * descriptors, pdeathsig, no_new_privs, memory_max), the channel's bounds,
 * protocol violations by a fake worker, the crash window, and the isolation
 * declaration read from ELF files.
 *
 * LMMS_TEST_ONLY=WORD runs only the tests whose name contains WORD.
 *
 * `test-worker --bench [CALLS]` measures instead of testing and prints the
 * figures: in-process call vs isolated round trip of echo.ping, spawn to
 * ready and to the first answer, and a worker's RSS. Pin it to one CPU for
 * the same-CPU comparison: taskset -c 0 build/tests/test-worker --bench
 */
#include <check.h>
#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "call.h"
#include "elfnote.h"
#include "log.h"
#include "registry.h"
#include "util.h"
#include "worker.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

#define WAIT_MS 20000 /* for anything that should take milliseconds */

static uv_loop_t loop;
static uv_timer_t tick;
static uint64_t ticks;
static char lmmsd_path[PATH_MAX];
static char tmpdir[256];
static int seq; /* orders events across workers and calls */

/* Spin the loop until cond holds; the tick timer guarantees wakeups. */
#define RUN_UNTIL(cond, ms)                                                  \
	do {                                                                 \
		uint64_t end_ = now_ms() + (ms);                             \
		while (!(cond) && now_ms() < end_)                           \
			uv_run(&loop, UV_RUN_ONCE);                          \
		ck_assert_msg((cond), "timed out waiting for: %s", #cond);  \
	} while (0)

/* ---- fixtures ------------------------------------------------------------ */

static void on_tick(uv_timer_t *t)
{
	(void)t;
	ticks++;
}

static void setup(void)
{
	const char *root = getenv("LMMS_BUILD_ROOT");
	const char *base = getenv("TMPDIR");

	ck_assert_msg(root != NULL, "LMMS_BUILD_ROOT is not set");
	snprintf(lmmsd_path, sizeof(lmmsd_path), "%s/daemon/lmmsd", root);
	ck_assert_msg(access(lmmsd_path, X_OK) == 0, "%s is not built", lmmsd_path);
	snprintf(tmpdir, sizeof(tmpdir), "%s/lmms-test-worker-XXXXXX", base ? base : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	log_init(LOG_LVL_ERR); /* expected crashes would be noise */
	signal(SIGPIPE, SIG_IGN); /* as lmmsd: a dead worker is a failed write */
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	uv_timer_init(&loop, &tick);
	uv_timer_start(&tick, on_tick, 10, 10);
	ticks = 0;
	seq = 0;
}

static void teardown(void)
{
	char cmd[512];

	uv_close((uv_handle_t *)&tick, NULL);
	for (int i = 0; i < 10; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	/* every worker of the test closed all it had */
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
}

/* Entries of /proc/PID/WHAT ("fd", "task"). */
static int count_proc(pid_t pid, const char *what)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
	d = opendir(path);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static int count_fds(pid_t pid)
{
	return count_proc(pid, "fd") - (pid == getpid()); /* opendir's own */
}

/* ---- a worker under test ------------------------------------------------- */

typedef struct tw {
	worker w;
	worker_options o;
	char path[PATH_MAX];
	int ready, failed, exited;
	char failed_msg[1024];
	worker_exit ex;
	char exit_reason[256];
	char version[32];
	char ops[16][64];
	uint32_t op_flags[16], op_ttl[16], op_above[16];
	uint32_t n_ops;
	char unread[8][64];
	uint32_t n_unread;
} tw;

typedef struct tcall {
	worker_req req;
	int done, order;
	proto_err err;
	char msg[1024];
	char *res;
	size_t len;
	uint64_t ns;
} tcall;

static void tw_on_ready(worker *w, const worker_desc *d)
{
	tw *t = w->data;

	t->ready = ++seq;
	snprintf(t->version, sizeof(t->version), "%s", d->version);
	t->n_ops = d->n_ops < 16 ? d->n_ops : 16;
	for (uint32_t i = 0; i < t->n_ops; i++) {
		snprintf(t->ops[i], sizeof(t->ops[i]), "%s", d->ops[i].name);
		t->op_flags[i] = d->ops[i].flags;
		t->op_ttl[i] = d->ops[i].cache_ttl_ms;
		t->op_above[i] = d->ops[i].blocking_above;
	}
	t->n_unread = d->n_unread < 8 ? d->n_unread : 8;
	for (uint32_t i = 0; i < t->n_unread; i++)
		snprintf(t->unread[i], sizeof(t->unread[i]), "%s", d->unread[i]);
}

static void tw_on_failed(worker *w, const char *why)
{
	tw *t = w->data;

	t->failed++;
	snprintf(t->failed_msg, sizeof(t->failed_msg), "%s", why);
}

static void tw_on_exit(worker *w, const worker_exit *e)
{
	tw *t = w->data;

	t->exited++;
	t->ex = *e;
	snprintf(t->exit_reason, sizeof(t->exit_reason), "%s", e->reason);
	t->ex.reason = t->exit_reason;
}

static void module_path(char *buf, size_t n, const char *name)
{
	const char *dirs[] = { getenv("LMMS_MODULE_DIR"), getenv("LMMS_TEST_MODULE_DIR") };

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!dirs[i])
			continue;
		snprintf(buf, n, "%s/%s.so", dirs[i], name);
		if (access(buf, R_OK) == 0)
			return;
	}
	ck_abort_msg("module %s.so not found (LMMS_MODULE_DIR / LMMS_TEST_MODULE_DIR)", name);
}

static void tw_prepare(tw *t, const char *name)
{
	memset(t, 0, sizeof(*t));
	worker_init(&t->w, &loop);
	t->w.data = t;
	worker_options_default(&t->o);
	t->o.exe = lmmsd_path;
	module_path(t->path, sizeof(t->path), name);
	t->o.module_path = t->path;
	t->o.module_name = name;
	t->o.log_level = LOG_LVL_ERR;
	t->o.stop_timeout_ms = 5000;
	t->o.on_ready = tw_on_ready;
	t->o.on_failed = tw_on_failed;
	t->o.on_exit = tw_on_exit;
}

static void tw_start(tw *t)
{
	t->ready = t->failed = t->exited = 0;
	ck_assert_int_eq(worker_start(&t->w, &t->o), 0);
	ck_assert_int_eq(t->failed + t->exited, 0); /* never called back from inside */
}

static void tw_ready(tw *t)
{
	tw_start(t);
	RUN_UNTIL(t->ready || t->exited, WAIT_MS);
	ck_assert_msg(t->ready, "worker not ready: %s", t->failed_msg);
	ck_assert_int_eq(t->w.state, WORKER_READY);
	ck_assert_int_gt(worker_pid(&t->w), 0);
}

static void tw_wait_exit(tw *t)
{
	RUN_UNTIL(t->exited, WAIT_MS);
	ck_assert_int_eq(t->exited, 1);
	ck_assert_int_eq(t->w.state, WORKER_IDLE);
	ck_assert_int_eq(worker_pid(&t->w), 0);
}

static void tw_stop(tw *t)
{
	ck_assert_int_eq(worker_stop(&t->w), 0);
	tw_wait_exit(t);
}

/* Stop, and the worker must have finished on its own: fini, exit 0. */
static void tw_stop_clean(tw *t)
{
	tw_stop(t);
	ck_assert_int_eq(t->ex.end, WORKER_END_STOPPED);
	ck_assert_int_eq(t->ex.term_signal, 0);
	ck_assert_int_eq(t->ex.exit_status, 0);
	ck_assert_uint_eq(t->ex.calls_failed, 0);
}

static bool tw_has_op(const tw *t, const char *name, uint32_t *flags)
{
	for (uint32_t i = 0; i < t->n_ops; i++)
		if (strcmp(t->ops[i], name) == 0) {
			if (flags)
				*flags = t->op_flags[i];
			return true;
		}
	return false;
}

static void tc_on_done(worker_req *r, proto_err e, const char *msg, const char *res, size_t len,
		       uint64_t ns)
{
	tcall *c = container_of(r, tcall, req);

	c->done++;
	c->order = ++seq;
	c->err = e;
	c->ns = ns;
	snprintf(c->msg, sizeof(c->msg), "%s", msg ? msg : "");
	free(c->res);
	c->res = NULL;
	c->len = 0;
	if (res && len) {
		c->res = malloc(len);
		ck_assert_ptr_nonnull(c->res);
		memcpy(c->res, res, len);
		c->len = len;
	}
}

/* Params from fmt: 'i' an int, 's' a C string, 'x' a size_t: that many 'x's. */
static void params_vbuild(msgpack_sbuffer *sb, const char *fmt, va_list ap)
{
	msgpack_packer pk;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, (uint32_t)strlen(fmt));
	for (const char *f = fmt; *f; f++) {
		if (*f == 'i') {
			msgpack_pack_int(&pk, va_arg(ap, int));
		} else if (*f == 's') {
			const char *s = va_arg(ap, const char *);

			msgpack_pack_str(&pk, strlen(s));
			msgpack_pack_str_body(&pk, s, strlen(s));
		} else {
			size_t n = va_arg(ap, size_t);
			char *x = malloc(n);

			ck_assert_ptr_nonnull(x);
			memset(x, 'x', n);
			msgpack_pack_str(&pk, n);
			msgpack_pack_str_body(&pk, x, n);
			free(x);
		}
	}
}

/* worker_call with params packed from fmt (see params_vbuild). */
static int tc_try(tw *t, tcall *c, const char *op, const char *fmt, ...)
{
	msgpack_sbuffer sb;
	va_list ap;
	int r;

	memset(c, 0, sizeof(*c));
	va_start(ap, fmt);
	params_vbuild(&sb, fmt, ap);
	va_end(ap);
	r = worker_call(&t->w, &c->req, op, strlen(op), sb.data, sb.size, tc_on_done);
	msgpack_sbuffer_destroy(&sb);
	return r;
}

static void tc_sent(const char *op, int r)
{
	ck_assert_msg(r == 0, "worker_call %s: %s", op, strerror(-r));
}

#define tc_send(t, c, op, ...) tc_sent((op), tc_try((t), (c), (op), __VA_ARGS__))

/* One call, waited for. */
#define call_sync(t, c, op, ...)                  \
	do {                                      \
		tc_send((t), (c), (op), __VA_ARGS__); \
		tc_wait(c);                       \
	} while (0)

static void tc_wait(tcall *c)
{
	RUN_UNTIL(c->done, WAIT_MS);
	ck_assert_int_eq(c->done, 1);
}

static void tc_free(tcall *c)
{
	free(c->res);
	c->res = NULL;
}

static void expect_err(tcall *c, proto_err e, const char *needle)
{
	ck_assert_msg(c->err == e, "expected %s, got %s: %s", proto_err_name(e),
		      proto_err_name(c->err), c->msg);
	ck_assert_msg(strstr(c->msg, needle), "\"%s\" not in \"%s\"", needle, c->msg);
	ck_assert_ptr_null(c->res);
	tc_free(c);
}

static msgpack_object expect_ok(tcall *c, msgpack_unpacked *u)
{
	size_t off = 0;

	ck_assert_msg(c->err == PROTO_OK, "expected a result, got %s: %s", proto_err_name(c->err),
		      c->msg);
	msgpack_unpacked_init(u);
	ck_assert_int_eq(msgpack_unpack_next(u, c->res, c->len, &off), MSGPACK_UNPACK_SUCCESS);
	ck_assert_uint_eq(off, c->len);
	return u->data;
}

static void expect_str(tcall *c, const char *s)
{
	msgpack_unpacked u;
	msgpack_object o = expect_ok(c, &u);

	ck_assert_int_eq(o.type, MSGPACK_OBJECT_STR);
	ck_assert_int_eq(o.via.str.size, strlen(s));
	ck_assert(memcmp(o.via.str.ptr, s, o.via.str.size) == 0);
	msgpack_unpacked_destroy(&u);
	tc_free(c);
}

static int64_t expect_int(tcall *c)
{
	msgpack_unpacked u;
	msgpack_object o = expect_ok(c, &u);
	int64_t v;

	ck_assert(o.type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
		  o.type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
	v = o.type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)o.via.u64 : o.via.i64;
	msgpack_unpacked_destroy(&u);
	tc_free(c);
	return v;
}

static void expect_bool(tcall *c, bool b)
{
	msgpack_unpacked u;
	msgpack_object o = expect_ok(c, &u);

	ck_assert_int_eq(o.type, MSGPACK_OBJECT_BOOLEAN);
	ck_assert_int_eq(o.via.boolean, b);
	msgpack_unpacked_destroy(&u);
	tc_free(c);
}

/* ---- the ordinary path -------------------------------------------------- */

/* echo.ping answers its params: the bytes must come back unchanged. */
static void ping_returns_params(tw *t, msgpack_sbuffer *params)
{
	tcall c;

	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(worker_call(&t->w, &c.req, "ping", 4, params->data, params->size,
				     tc_on_done),
			 0);
	tc_wait(&c);
	ck_assert_int_eq(c.err, PROTO_OK);
	ck_assert_uint_eq(c.len, params->size);
	ck_assert(memcmp(c.res, params->data, params->size) == 0);
	ck_assert_uint_gt(c.ns, 0);
	tc_free(&c);
	msgpack_sbuffer_destroy(params);
}

START_TEST(echo_serves_calls_and_stops_clean)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	uint32_t flags;
	tcall c;
	tw t;
	int fds;

	tw_prepare(&t, "echo");
	tw_ready(&t);
	fds = count_fds(getpid()); /* libuv's signal pipe exists from the first spawn */
	ck_assert(tw_has_op(&t, "ping", &flags));
	ck_assert_uint_eq(flags, 0);
	ck_assert(tw_has_op(&t, "sleep", &flags));
	ck_assert_uint_eq(flags, LMMS_OP_BLOCKING);
	ck_assert(tw_has_op(&t, "upper", &flags));
	ck_assert(flags & LMMS_OP_PURE);
	ck_assert_str_ne(t.version, "");
	ck_assert_uint_eq(t.n_unread, 0);
	ck_assert_int_gt(worker_rss_bytes(&t.w), 0);

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_str(&pk, 2);
	msgpack_pack_str_body(&pk, "hi", 2);
	msgpack_pack_int(&pk, -7);
	msgpack_pack_map(&pk, 0);
	ping_returns_params(&t, &sb);

	/* 600 KiB each way: buffers grow, writes go out in pieces */
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_bin(&pk, 600 * 1024);
	for (int i = 0; i < 600; i++) {
		char kib[1024];

		memset(kib, 'a' + i % 26, sizeof(kib));
		msgpack_pack_bin_body(&pk, kib, sizeof(kib));
	}
	ping_returns_params(&t, &sb);
	ck_assert_uint_le(t.w.ch.icap, 64 * 1024); /* and the big buffer went back */

	call_sync(&t, &c, "sleep", "i", 20); /* on the worker's pool */
	ck_assert_int_eq(expect_int(&c), 20);
	call_sync(&t, &c, "upper", "s", "abc");
	expect_str(&c, "ABC");
	call_sync(&t, &c, "fail", "s", "as asked");
	expect_err(&c, PROTO_E_MODULE_ERROR, "as asked");
	call_sync(&t, &c, "upper", "i", 1);
	expect_err(&c, PROTO_E_BAD_PARAMS, "");
	call_sync(&t, &c, "nosuch", "");
	expect_err(&c, PROTO_E_NO_SUCH_METHOD, "nosuch");

	tw_stop_clean(&t);
	ck_assert_int_eq(t.failed, 0);
	ck_assert_int_eq(count_fds(getpid()), fds - 1); /* the channel is closed */
	ck_assert_int_eq(worker_call(&t.w, &c.req, "ping", 4, "\x90", 1, tc_on_done), -ENOTCONN);
}
END_TEST

START_TEST(calls_sent_during_start_run_after_ready)
{
	tcall a, b;
	tw t;

	tw_prepare(&t, "echo");
	tw_start(&t);
	ck_assert_int_eq(t.w.state, WORKER_STARTING);
	tc_send(&t, &a, "upper", "s", "x");
	tc_send(&t, &b, "sleep", "i", 1);
	tc_wait(&a);
	tc_wait(&b);
	ck_assert_int_gt(t.ready, 0);
	ck_assert_int_lt(t.ready, a.order);
	expect_str(&a, "X");
	ck_assert_int_eq(expect_int(&b), 1);
	tw_stop(&t);
}
END_TEST

START_TEST(limits_answer_busy_too_large_and_e2big)
{
	tcall c[3];
	tw t;

	tw_prepare(&t, "echo");
	t.o.max_inflight = 2;
	t.o.max_result_bytes = 1024;
	t.o.max_message_bytes = 8192;
	tw_ready(&t);
	/* the worker's call.c enforces the result limit */
	call_sync(&t, &c[0], "ping", "x", (size_t)4096);
	expect_err(&c[0], PROTO_E_TOO_LARGE, "1024");
	ck_assert_int_eq(tc_try(&t, &c[0], "ping", "x", (size_t)10000), -E2BIG);
	ck_assert_int_eq(tc_try(&t, &c[0], "ping", ""), 0);
	ck_assert_int_eq(tc_try(&t, &c[1], "sleep", "i", 50), 0);
	ck_assert_int_eq(tc_try(&t, &c[2], "ping", ""), -EBUSY);
	ck_assert_uint_eq(worker_inflight(&t.w), 2);
	tc_wait(&c[0]);
	tc_wait(&c[1]);
	tc_free(&c[0]);
	tc_free(&c[1]);
	call_sync(&t, &c[2], "upper", "s", "ok");
	expect_str(&c[2], "OK");
	ck_assert_int_eq(worker_call(&t.w, &c[2].req, "", 0, "\x90", 1, tc_on_done), -EINVAL);
	ck_assert_int_eq(worker_call(&t.w, &c[2].req, "ping", 4, "\xc0", 1, tc_on_done), -EINVAL);
	tw_stop(&t);
}
END_TEST

/* A worker that does not read (its loop is stuck) fills the socket, then
 * the daemon's buffer up to max_buffered_bytes: then -EBUSY, never more. */
START_TEST(buffered_bytes_are_bounded)
{
	static tcall c[200];
	tcall hang;
	size_t sent = 0;
	int r = 0;
	tw t;

	tw_prepare(&t, "fault-hang");
	t.o.max_buffered_bytes = 256 * 1024;
	t.o.stop_timeout_ms = 100;
	tw_ready(&t);
	tc_send(&t, &hang, "hang", "");
	for (sent = 0; sent < 200; sent++) {
		r = tc_try(&t, &c[sent], "ping", "x", (size_t)(64 * 1024));
		if (r < 0)
			break;
		uv_run(&loop, UV_RUN_NOWAIT); /* let writes go */
		ck_assert_uint_le(wchan_unsent(&t.w.ch), t.o.max_buffered_bytes + 65 * 1024);
	}
	ck_assert_int_eq(r, -EBUSY);
	ck_assert_uint_gt(sent, 0);
	tw_stop(&t);
	ck_assert_int_eq(t.ex.end, WORKER_END_STOPPED);
	ck_assert_int_eq(t.ex.term_signal, SIGKILL);
	ck_assert_uint_eq(t.ex.calls_failed, sent + 1);
	expect_err(&hang, PROTO_E_MODULE_CRASHED, "SIGKILL");
	for (size_t i = 0; i < sent; i++)
		expect_err(&c[i], PROTO_E_MODULE_CRASHED, "stopping");
}
END_TEST

START_TEST(settings_reach_the_module_and_unread_ones_are_listed)
{
	worker_setting s[] = {
		{ "init_ms", "0" },
		{ "greeting", "hello" },
		{ "typo", "x" },
	};
	tcall c;
	tw t;

	tw_prepare(&t, "fault-slowinit");
	t.o.settings = s;
	t.o.n_settings = 3;
	tw_ready(&t);
	ck_assert_uint_eq(t.n_unread, 1);
	ck_assert_str_eq(t.unread[0], "typo");
	call_sync(&t, &c, "setting", "s", "greeting");
	expect_str(&c, "hello");
	call_sync(&t, &c, "setting", "s", "typo");
	expect_str(&c, "x");
	call_sync(&t, &c, "setting", "s", "absent");
	ck_assert_int_eq(c.err, PROTO_OK);
	ck_assert_uint_eq(c.len, 1);
	ck_assert_int_eq((unsigned char)c.res[0], 0xc0);
	tc_free(&c);
	tw_stop(&t);
}
END_TEST

/* ---- faults --------------------------------------------------------------- */

/* Run op on a fresh fault-crash worker; the call and the exit must both
 * name how the worker died, and the same handle must serve again after. */
static void crash_and_respawn(const char *op, const char *fmt, int arg, int sig, int status,
			      const char *needle)
{
	tcall c;
	tw t;
	int fds;

	tw_prepare(&t, "fault-crash");
	tw_ready(&t);
	fds = count_fds(getpid()); /* libuv's signal pipe exists from the first spawn */
	if (*fmt)
		call_sync(&t, &c, op, fmt, arg);
	else
		call_sync(&t, &c, op, "");
	expect_err(&c, PROTO_E_MODULE_CRASHED, needle);
	tw_wait_exit(&t);
	ck_assert_int_eq(t.ex.end, WORKER_END_CRASHED);
	ck_assert_int_eq(t.ex.term_signal, sig);
	if (!sig)
		ck_assert_int_eq(t.ex.exit_status, status);
	ck_assert_uint_eq(t.ex.calls_failed, 1);
	ck_assert_ptr_nonnull(strstr(t.ex.reason, needle));
	ck_assert_int_eq(t.failed, 0);
	ck_assert_int_eq(count_fds(getpid()), fds - 1); /* the channel is closed */

	/* respawned: the same handle, a new process, answering again */
	tw_ready(&t);
	call_sync(&t, &c, "ping", "");
	expect_str(&c, "pong");
	tw_stop(&t);
	ck_assert_int_eq(t.ex.end, WORKER_END_STOPPED);
	ck_assert_int_eq(count_fds(getpid()), fds - 1);
}

START_TEST(segv_inline_is_module_crashed)
{
	crash_and_respawn("segv", "", 0, SIGSEGV, 0, "SIGSEGV");
}
END_TEST

START_TEST(segv_blocking_is_module_crashed)
{
	crash_and_respawn("segv_blocking", "", 0, SIGSEGV, 0, "SIGSEGV");
}
END_TEST

START_TEST(abort_is_module_crashed)
{
	crash_and_respawn("abort", "", 0, SIGABRT, 0, "SIGABRT");
}
END_TEST

START_TEST(exit_0_is_a_crash_too)
{
	crash_and_respawn("exit", "i", 0, 0, 0, "exited with status 0");
}
END_TEST

START_TEST(exit_3_is_module_crashed)
{
	crash_and_respawn("exit", "i", 3, 0, 3, "exited with status 3");
}
END_TEST

/* Every call in flight is answered when the worker dies, not only the one
 * that killed it. */
START_TEST(all_calls_in_flight_are_answered)
{
	tcall parked[3], kill;
	tw t;

	tw_prepare(&t, "fault-crash");
	tw_ready(&t);
	for (int i = 0; i < 3; i++)
		tc_send(&t, &parked[i], "park", "");
	tc_send(&t, &kill, "segv", "");
	tw_wait_exit(&t);
	ck_assert_uint_eq(t.ex.calls_failed, 4);
	for (int i = 0; i < 3; i++)
		expect_err(&parked[i], PROTO_E_MODULE_CRASHED, "SIGSEGV");
	expect_err(&kill, PROTO_E_MODULE_CRASHED, "SIGSEGV");
}
END_TEST

/* A hung call costs its worker and nothing else: this loop keeps turning
 * and another worker answers meanwhile. */
static void hang_times_out(const char *op)
{
	tcall hung, ping, other;
	uint64_t ticks0;
	tw t, e;

	tw_prepare(&t, "fault-hang");
	t.o.call_timeout_ms = 300;
	tw_ready(&t);
	tc_send(&t, &hung, op, "");
	ticks0 = ticks;
	tw_prepare(&e, "echo");
	tw_ready(&e);
	call_sync(&e, &other, "upper", "s", "still here");
	expect_str(&other, "STILL HERE");
	tc_wait(&hung);
	expect_err(&hung, PROTO_E_TIMEOUT, "did not finish within 300 ms");
	ck_assert_uint_gt(ticks, ticks0);
	/* killed: no more calls, and the kill is what ends it */
	ck_assert_int_eq(tc_try(&t, &ping, "ping", ""), -ENOTCONN);
	tw_wait_exit(&t);
	ck_assert_int_eq(t.ex.end, WORKER_END_TIMEOUT);
	ck_assert_int_eq(t.ex.term_signal, SIGKILL);
	ck_assert_uint_eq(t.ex.calls_failed, 0);
	tw_stop(&e);
}

START_TEST(hang_inline_times_out_and_kills_one_worker)
{
	hang_times_out("hang");
}
END_TEST

START_TEST(hang_blocking_times_out_and_kills_one_worker)
{
	hang_times_out("hang_blocking");
}
END_TEST

/* A BLOCKING hang leaves the worker's loop free: inline calls are answered,
 * then the hang's deadline takes the worker and the calls behind it. */
START_TEST(timeout_answers_the_late_call_and_crashes_the_rest)
{
	tcall hung, ping, parked;
	tw t;

	tw_prepare(&t, "fault-hang");
	t.o.call_timeout_ms = 400;
	tw_ready(&t);
	tc_send(&t, &hung, "hang_blocking", "");
	call_sync(&t, &ping, "ping", "");
	expect_str(&ping, "pong");
	ck_assert_int_eq(hung.done, 0);
	tc_send(&t, &parked, "hang_blocking", "");
	tc_wait(&hung);
	expect_err(&hung, PROTO_E_TIMEOUT, "hang_blocking");
	tw_wait_exit(&t);
	ck_assert_int_eq(t.ex.end, WORKER_END_TIMEOUT);
	/* the second hang was not late yet: it is a casualty */
	if (parked.err == PROTO_E_MODULE_CRASHED)
		expect_err(&parked, PROTO_E_MODULE_CRASHED, "call_timeout");
	else
		expect_err(&parked, PROTO_E_TIMEOUT, "hang_blocking");
}
END_TEST

START_TEST(stop_kills_a_worker_that_does_not_exit)
{
	tcall hung;
	tw t;

	tw_prepare(&t, "fault-hang");
	t.o.stop_timeout_ms = 200;
	tw_ready(&t);
	tc_send(&t, &hung, "hang", "");
	tw_stop(&t);
	ck_assert_int_eq(t.ex.end, WORKER_END_STOPPED);
	ck_assert_int_eq(t.ex.term_signal, SIGKILL);
	expect_err(&hung, PROTO_E_MODULE_CRASHED, "stopping");
}
END_TEST

/* The three things that make a module unloadable in process end cleanly
 * with its worker: a thread, a TLS destructor, GNU unique symbols. */
START_TEST(thread_module_ends_with_its_worker)
{
	tcall c;
	tw t;
	int before;

	tw_prepare(&t, "fault-thread");
	tw_ready(&t);
	before = count_proc(worker_pid(&t.w), "task");
	call_sync(&t, &c, "start", "");
	expect_bool(&c, true);
	ck_assert_int_eq(count_proc(worker_pid(&t.w), "task"), before + 1);
	tw_stop_clean(&t);
}
END_TEST

START_TEST(tls_destructor_module_ends_with_its_worker)
{
	tcall c;
	tw t;

	tw_prepare(&t, "fault-tls");
	tw_ready(&t);
	call_sync(&t, &c, "set", "");
	expect_bool(&c, true);
	tw_stop_clean(&t);
}
END_TEST

START_TEST(unique_symbols_module_ends_with_its_worker)
{
#ifndef HAVE_CPP_FIXTURE
	fprintf(stderr, "skipped: no C++ compiler, no fault-unique fixture\n");
#else
	tcall c;
	tw t;

	tw_prepare(&t, "fault-unique");
	tw_ready(&t);
	call_sync(&t, &c, "count", "");
	ck_assert_int_eq(expect_int(&c), 1);
	call_sync(&t, &c, "count", "");
	ck_assert_int_eq(expect_int(&c), 2);
	tw_stop_clean(&t);
#endif
}
END_TEST

/* ---- starts that fail -------------------------------------------------------- */

static void start_fails(const char *name, const char *needle)
{
	tcall c;
	tw t;

	tw_prepare(&t, name);
	tw_start(&t);
	tc_send(&t, &c, "ping", "");
	tw_wait_exit(&t);
	ck_assert_int_eq(t.ready, 0);
	ck_assert_int_eq(t.failed, 1);
	ck_assert_msg(strstr(t.failed_msg, needle), "\"%s\" not in \"%s\"", needle, t.failed_msg);
	ck_assert_int_eq(t.ex.end, WORKER_END_START_FAILED);
	expect_err(&c, PROTO_E_LOAD_FAILED, needle);
}

START_TEST(init_failure_is_load_failed)
{
	start_fails("badinit", "init failed: init refused: test");
}
END_TEST

START_TEST(descriptor_problems_are_load_failed)
{
	start_fails("noentry", "no lmms_module_entry symbol");
	start_fails("badabi", "ABI version 999");
}
END_TEST

/* A module built before lmms_op grew: read with its own stride. */
START_TEST(old_abi_module_is_read_by_its_op_size)
{
	tcall c;
	tw t;

	tw_prepare(&t, "oldabi");
	tw_ready(&t);
	ck_assert_uint_eq(t.n_ops, 2);
	ck_assert_str_eq(t.ops[1], "cached");
	ck_assert_uint_eq(t.op_flags[1], LMMS_OP_PURE);
	ck_assert_uint_eq(t.op_ttl[1], 1234);
	ck_assert_uint_eq(t.op_above[1], 0);
	call_sync(&t, &c, "cached", "");
	expect_str(&c, "pong");
	tw_stop(&t);
}
END_TEST

START_TEST(dlopen_failure_is_load_failed)
{
	char bogus[PATH_MAX];
	int fd;
	tcall c;
	tw t;

	snprintf(bogus, sizeof(bogus), "%s/bogus.so", tmpdir);
	fd = open(bogus, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "not an ELF file", 15), 15);
	close(fd);
	tw_prepare(&t, "echo");
	snprintf(t.path, sizeof(t.path), "%s", bogus);
	t.o.module_name = "bogus";
	tw_start(&t);
	tc_send(&t, &c, "ping", "");
	tw_wait_exit(&t);
	ck_assert_int_eq(t.failed, 1);
	ck_assert_ptr_nonnull(strstr(t.failed_msg, "bogus.so"));
	expect_err(&c, PROTO_E_LOAD_FAILED, "bogus.so");
}
END_TEST

START_TEST(spawn_failure_is_reported_from_the_loop)
{
	tw t;

	tw_prepare(&t, "echo");
	t.o.exe = "/nonexistent/lmmsd";
	tw_start(&t); /* asserts nothing was called back from inside */
	tw_wait_exit(&t);
	ck_assert_int_eq(t.failed, 1);
	ck_assert_ptr_nonnull(strstr(t.failed_msg, "/nonexistent/lmmsd"));
	ck_assert_int_eq(t.ex.end, WORKER_END_START_FAILED);
	ck_assert_int_eq(t.ex.exit_status, -1);
	/* and the handle can start for real after */
	t.o.exe = lmmsd_path;
	tw_ready(&t);
	tw_stop(&t);
}
END_TEST

/* A 5 s init stalls only the calls to its own module. */
START_TEST(slow_init_stalls_nobody_else)
{
	tcall queued, other;
	uint64_t ticks0 = ticks;
	tw slow, e;

	tw_prepare(&slow, "fault-slowinit"); /* init_ms defaults to 5000 */
	slow.o.start_timeout_ms = 30000;
	tw_start(&slow);
	tc_send(&slow, &queued, "ping", "");
	tw_prepare(&e, "echo");
	tw_ready(&e);
	call_sync(&e, &other, "upper", "s", "meanwhile");
	expect_str(&other, "MEANWHILE");
	ck_assert_int_eq(slow.ready, 0);
	ck_assert_int_eq(queued.done, 0);
	tw_stop(&e);
	tc_wait(&queued);
	ck_assert_int_gt(slow.ready, 0);
	ck_assert_int_gt(queued.order, slow.ready);
	expect_str(&queued, "pong");
	ck_assert_uint_gt(ticks - ticks0, 10); /* this loop ran the whole time */
	tw_stop(&slow);
}
END_TEST

/* A worker whose init takes 20 s, with a call queued behind it. */
static void start_stuck(tw *t, tcall *c, uint64_t start_timeout_ms, uint64_t stop_timeout_ms)
{
	static const worker_setting s[] = { { "init_ms", "20000" } };

	tw_prepare(t, "fault-slowinit");
	t->o.settings = s;
	t->o.n_settings = 1;
	t->o.start_timeout_ms = start_timeout_ms;
	t->o.stop_timeout_ms = stop_timeout_ms;
	tw_start(t);
	tc_send(t, c, "ping", "");
}

START_TEST(start_past_its_deadline_is_killed)
{
	tcall c;
	tw t;

	start_stuck(&t, &c, 300, 5000);
	tw_wait_exit(&t);
	ck_assert_int_eq(t.failed, 1);
	ck_assert_ptr_nonnull(strstr(t.failed_msg, "not ready within 300 ms"));
	ck_assert_int_eq(t.ex.end, WORKER_END_START_FAILED);
	ck_assert_int_eq(t.ex.term_signal, SIGKILL);
	expect_err(&c, PROTO_E_LOAD_FAILED, "not ready within 300 ms");
}
END_TEST

/* worker_stop during a start: no failure is reported, what was queued is
 * answered, the init that does not end is killed at the stop deadline. */
START_TEST(stop_during_start)
{
	tcall c;
	tw t;

	start_stuck(&t, &c, 30000, 200);
	tw_stop(&t);
	ck_assert_int_eq(t.failed, 0);
	ck_assert_int_eq(t.ex.end, WORKER_END_STOPPED);
	ck_assert_int_eq(t.ex.term_signal, SIGKILL);
	ck_assert_uint_eq(t.ex.calls_failed, 1);
	expect_err(&c, PROTO_E_LOAD_FAILED, "before it was ready (stopping)");
}
END_TEST

/* ---- a worker that breaks the protocol --------------------------------------- */

static void fake_worker(tw *t, const char *script_body)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/fake-worker.sh", tmpdir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "#!/bin/sh\n%s\nexec sleep 20\n", script_body);
	fclose(f);
	ck_assert_int_eq(chmod(path, 0755), 0);
	tw_prepare(t, "echo");
	snprintf(t->path, sizeof(t->path), "%s", path); /* keeps the string alive */
	t->o.exe = t->path;
}

/* A fake worker whose start must fail, saying needle. */
static void fake_start_fails(const char *script_body, const char *needle)
{
	tw t;

	fake_worker(&t, script_body);
	tw_start(&t);
	tw_wait_exit(&t);
	ck_assert_int_eq(t.failed, 1);
	ck_assert_msg(strstr(t.failed_msg, needle), "\"%s\" not in \"%s\"", needle, t.failed_msg);
	ck_assert_int_eq(t.ex.end, WORKER_END_START_FAILED);
	ck_assert_int_eq(t.ex.term_signal, SIGKILL);
}

START_TEST(garbage_from_a_worker_fails_its_start)
{
	fake_start_fails("printf '\\301\\301\\301\\301' >&3", "malformed");
}
END_TEST

START_TEST(bad_descriptor_fails_the_start)
{
	/* [1, 0xffffffff, nil, {"ops": 5}] */
	fake_start_fails("printf '\\224\\001\\316\\377\\377\\377\\377\\300\\201\\243ops\\005' >&3",
			 "protocol");
}
END_TEST

START_TEST(stray_answer_crashes_the_worker)
{
	tw t;

	/* a good hello answer {"ops": [], "unread": []}, then [1, 5, nil, nil] */
	fake_worker(&t, "printf '\\224\\001\\316\\377\\377\\377\\377\\300\\202\\243ops\\220"
			"\\246unread\\220\\224\\001\\005\\300\\300' >&3");
	tw_start(&t);
	tw_wait_exit(&t);
	ck_assert_int_gt(t.ready, 0);
	ck_assert_uint_eq(t.n_ops, 0);
	ck_assert_int_eq(t.ex.end, WORKER_END_CRASHED);
	ck_assert_int_eq(t.ex.term_signal, SIGKILL);
}
END_TEST

/* ---- hardening ----------------------------------------------------------------- */

static void fd_target(pid_t pid, int fd, char *buf, size_t n)
{
	char path[64];
	ssize_t r;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
	r = readlink(path, buf, n - 1);
	buf[r > 0 ? r : 0] = '\0';
}

START_TEST(worker_inherits_no_descriptors)
{
	char leak_path[PATH_MAX], leak_pipe[64], mine[PATH_MAX], target[PATH_MAX];
	struct dirent *de;
	int leak[20], p[2], clean;
	pid_t pid;
	DIR *d;
	tw t;

	/* a worker spawned from a tidy daemon */
	tw_prepare(&t, "echo");
	tw_ready(&t);
	clean = count_fds(worker_pid(&t.w));
	tw_stop(&t);

	/* descriptors a careless module of the daemon left inheritable */
	snprintf(leak_path, sizeof(leak_path), "%s/leaked", tmpdir);
	for (int i = 0; i < 20; i++) {
		leak[i] = open(leak_path, O_RDWR | O_CREAT, 0600);
		ck_assert_int_ge(leak[i], 0);
	}
	ck_assert_int_eq(pipe(p), 0);
	fd_target(getpid(), p[0], leak_pipe, sizeof(leak_pipe));

	tw_ready(&t);
	pid = worker_pid(&t.w);
	ck_assert_int_eq(count_fds(pid), clean);
	fd_target(pid, 0, target, sizeof(target));
	ck_assert_str_eq(target, "/dev/null");
	for (int fd = 1; fd <= 2; fd++) {
		fd_target(getpid(), fd, mine, sizeof(mine));
		fd_target(pid, fd, target, sizeof(target));
		ck_assert_str_eq(target, mine);
	}
	fd_target(pid, 3, target, sizeof(target));
	ck_assert_msg(strncmp(target, "socket:[", 8) == 0, "fd 3 is %s", target);
	snprintf(target, sizeof(target), "/proc/%d/fd", (int)pid);
	d = opendir(target);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		fd_target(pid, atoi(de->d_name), target, sizeof(target));
		ck_assert_str_ne(target, leak_path);
		ck_assert_str_ne(target, leak_pipe);
	}
	closedir(d);
	tw_stop(&t);
	for (int i = 0; i < 20; i++)
		close(leak[i]);
	close(p[0]);
	close(p[1]);
}
END_TEST

START_TEST(worker_has_no_new_privs_and_its_own_session)
{
	char path[64], line[256];
	bool nnp = false;
	pid_t pid;
	FILE *f;
	tw t;

	tw_prepare(&t, "echo");
	tw_ready(&t);
	pid = worker_pid(&t.w);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "NoNewPrivs:", 11) == 0)
			nnp = atoi(line + 11) == 1;
	fclose(f);
	ck_assert(nnp);
	ck_assert_int_eq(getsid(pid), pid);
	tw_stop(&t);
}
END_TEST

static bool read_pid(int fd, pid_t *pid, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, timeout_ms) == 1 && read(fd, pid, sizeof(*pid)) == sizeof(*pid);
}

/* SIGKILL the process that spawned a worker: the worker must die too, even
 * one stuck in a module that will never read the channel's end. */
START_TEST(worker_dies_with_its_daemon)
{
	pid_t helper, wpid = 0, r = 0;
	int p[2], st = 0;

	/* orphans come to us, so we can see how the worker ended */
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	helper = fork();
	ck_assert_int_ge(helper, 0);
	if (helper == 0) {
		/* the daemon's stand-in; no Check calls in here */
		static tw t;
		static tcall c;

		if (uv_loop_fork(&loop) < 0)
			_exit(3);
		tw_prepare(&t, "fault-hang");
		if (worker_start(&t.w, &t.o) < 0)
			_exit(3);
		for (uint64_t end = now_ms() + WAIT_MS; !t.ready && !t.exited && now_ms() < end;)
			uv_run(&loop, UV_RUN_ONCE);
		/* written before the channel's end, so read before it: the
		 * worker hangs and only the signal can end it */
		wpid = worker_pid(&t.w);
		if (!t.ready || tc_try(&t, &c, "hang", "") < 0)
			_exit(3);
		for (int i = 0; i < 100 && wchan_unsent(&t.w.ch); i++)
			uv_run(&loop, UV_RUN_NOWAIT);
		if (wchan_unsent(&t.w.ch) || write(p[1], &wpid, sizeof(wpid)) != sizeof(wpid))
			_exit(3);
		for (;;)
			pause();
	}
	close(p[1]);
	ck_assert_msg(read_pid(p[0], &wpid, WAIT_MS), "the helper did not start a worker");
	close(p[0]);
	ck_assert_int_gt(wpid, 0);
	ck_assert_int_eq(kill(helper, SIGKILL), 0);
	ck_assert_int_eq(waitpid(helper, &st, 0), helper);
	for (uint64_t end = now_ms() + WAIT_MS; now_ms() < end;) {
		r = waitpid(wpid, &st, WNOHANG);
		if (r != 0)
			break;
		usleep(10000);
	}
	ck_assert_int_eq(r, wpid);
	ck_assert(WIFSIGNALED(st));
	ck_assert_int_eq(WTERMSIG(st), SIGKILL);
}
END_TEST

#ifndef TEST_ASAN
static bool limit_is_set(pid_t pid, const char *what)
{
	char path[64], line[256];
	bool set = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, what, strlen(what)) == 0)
			set = !strstr(line, "unlimited");
	fclose(f);
	return set;
}
#endif

START_TEST(memory_max_is_enforced)
{
#ifdef TEST_ASAN
	/* ASan's shadow memory is terabytes of reserved address space: an
	 * address-space or data limit would refuse its every allocation. The
	 * worker says so in its log and runs without limits. */
	fprintf(stderr, "skipped under AddressSanitizer: memory_max is not enforced there\n");
#else
	tcall c;
	tw t;

	tw_prepare(&t, "fault-hog");
	t.o.memory_max = 64u << 20;
	tw_ready(&t);
	ck_assert(limit_is_set(worker_pid(&t.w), "Max address space"));
	ck_assert(limit_is_set(worker_pid(&t.w), "Max data size"));
	/* room for what fits, on the loop and on the pool */
	call_sync(&t, &c, "alloc_checked", "i", 16);
	ck_assert_int_eq(expect_int(&c), 16);
	call_sync(&t, &c, "alloc_blocking", "i", 16);
	ck_assert_int_eq(expect_int(&c), 16);
	/* a module that copes gets NULL and says so */
	call_sync(&t, &c, "alloc_checked", "i", 128);
	expect_err(&c, PROTO_E_MODULE_ERROR, "out of memory");
	call_sync(&t, &c, "alloc_blocking", "i", 128);
	expect_err(&c, PROTO_E_MODULE_ERROR, "out of memory");
	/* one that aborts, as most libraries do, takes its worker only */
	call_sync(&t, &c, "alloc", "i", 128);
	expect_err(&c, PROTO_E_MODULE_CRASHED, "SIGABRT");
	tw_wait_exit(&t);
	ck_assert_int_eq(t.ex.end, WORKER_END_CRASHED);

	/* the same amount without memory_max is fine */
	t.o.memory_max = 0;
	tw_ready(&t);
	ck_assert(!limit_is_set(worker_pid(&t.w), "Max data size"));
	call_sync(&t, &c, "alloc", "i", 128);
	ck_assert_int_eq(expect_int(&c), 128);
	tw_stop(&t);
#endif
}
END_TEST

/* ---- crash accounting ------------------------------------------------------- */

START_TEST(crash_window_quarantines_and_forgives)
{
	worker_crash_policy p = { .limit = 3, .window_ms = 60000, .backoff_ms = 100,
				  .backoff_max_ms = 1000 };
	worker_crashes c;

	memset(&c, 0, sizeof(c));
	ck_assert(worker_crashes_may_spawn(&c, 0));
	ck_assert_uint_eq(worker_crashes_record(&c, &p, 1000), 1);
	ck_assert_uint_eq(c.backoff_ms, 100);
	ck_assert(!worker_crashes_may_spawn(&c, 1099));
	ck_assert(worker_crashes_may_spawn(&c, 1100));
	ck_assert_uint_eq(worker_crashes_record(&c, &p, 2000), 2);
	ck_assert_uint_eq(c.backoff_ms, 200);
	ck_assert_uint_eq(worker_crashes_record(&c, &p, 3000), 3); /* quarantine */
	ck_assert_uint_eq(c.backoff_ms, 400);
	ck_assert_uint_eq(c.retry_at_ms, 3400);
	for (int i = 0; i < 20; i++)
		worker_crashes_record(&c, &p, 4000 + (uint64_t)i);
	ck_assert_uint_eq(c.backoff_ms, 1000); /* capped */
	/* the ring keeps the latest 16 (4004..4019) */
	ck_assert_uint_eq(worker_crashes_recent(&c, &p, 4100), WORKER_CRASHES_MAX);
	/* the window slides */
	ck_assert_uint_eq(worker_crashes_recent(&c, &p, 63500), 16);
	ck_assert_uint_eq(worker_crashes_recent(&c, &p, 64010), 9);
	ck_assert_uint_eq(worker_crashes_recent(&c, &p, 70000), 0);
	/* after a quiet window a crash starts over */
	ck_assert_uint_eq(worker_crashes_record(&c, &p, 200000), 1);
	ck_assert_uint_eq(c.backoff_ms, 100);
	ck_assert_uint_eq(c.total, 24);
	worker_crashes_record(&c, &p, 200001);
	worker_crashes_forgive(&c);
	ck_assert_uint_eq(worker_crashes_recent(&c, &p, 200002), 0);
	ck_assert(worker_crashes_may_spawn(&c, 200002));
	ck_assert_uint_eq(c.total, 25);
}
END_TEST

/* ---- the isolation declaration ------------------------------------------------ */

static char *slurp(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static void spit(const char *path, const char *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* The section header of name in a (trusted, test-built) ELF64 image. */
static Elf64_Shdr *find_shdr(char *img, const char *name)
{
	Elf64_Ehdr *eh = (Elf64_Ehdr *)img;
	Elf64_Shdr *sh = (Elf64_Shdr *)(img + eh->e_shoff);
	const char *names = img + sh[eh->e_shstrndx].sh_offset;

	for (int i = 0; i < eh->e_shnum; i++)
		if (strcmp(names + sh[i].sh_name, name) == 0)
			return &sh[i];
	return NULL;
}

START_TEST(isolation_is_read_from_the_file)
{
	char path[PATH_MAX], copy[PATH_MAX], buf[64];
	Elf64_Shdr *sh;
	size_t len;
	char *img;

	module_path(path, sizeof(path), "fault-crash");
	ck_assert_int_eq(elfnote_isolation(path), ELF_ISOLATION_PROCESS);
	ck_assert_int_eq(elfnote_read_section(path, LMMS_ISOLATION_SECTION, buf, sizeof(buf)), 8);
	ck_assert_str_eq(buf, "process");
	ck_assert_int_eq(elfnote_read_section(path, LMMS_ISOLATION_SECTION, buf, 4), -E2BIG);
	ck_assert_int_eq(elfnote_read_section(path, ".no.such", buf, sizeof(buf)), -ENOENT);
	module_path(path, sizeof(path), "fault-thread");
	ck_assert_int_eq(elfnote_isolation(path), ELF_ISOLATION_PROCESS);
	module_path(path, sizeof(path), "echo");
	ck_assert_int_eq(elfnote_isolation(path), ELF_ISOLATION_NONE);
	ck_assert_int_eq(elfnote_isolation("/nonexistent.so"), ELF_ISOLATION_NONE);
	ck_assert_int_eq(elfnote_isolation(tmpdir), ELF_ISOLATION_NONE);
	ck_assert_int_eq(elfnote_read_section("/dev/null", ".x", buf, sizeof(buf)), -ENOEXEC);

	/* the same file saying "inproc", or something else */
	module_path(path, sizeof(path), "fault-crash");
	img = slurp(path, &len);
	sh = find_shdr(img, LMMS_ISOLATION_SECTION);
	ck_assert_ptr_nonnull(sh);
	snprintf(copy, sizeof(copy), "%s/patched.so", tmpdir);
	memcpy(img + sh->sh_offset, "inproc\0\0", 8);
	spit(copy, img, len);
	ck_assert_int_eq(elfnote_isolation(copy), ELF_ISOLATION_INPROC);
	memcpy(img + sh->sh_offset, "\0\0\0\0\0\0\0\0", 8); /* padding only */
	spit(copy, img, len);
	ck_assert_int_eq(elfnote_isolation(copy), ELF_ISOLATION_NONE);
	memcpy(img + sh->sh_offset, "procesS\0", 8);
	spit(copy, img, len);
	ck_assert_int_eq(elfnote_isolation(copy), ELF_ISOLATION_NONE);
	memcpy(img + sh->sh_offset, "processX", 8); /* not terminated */
	spit(copy, img, len);
	ck_assert_int_eq(elfnote_isolation(copy), ELF_ISOLATION_NONE);
	free(img);
}
END_TEST

START_TEST(malformed_files_are_no_preference)
{
	char path[PATH_MAX], copy[PATH_MAX], buf[64];
	Elf64_Ehdr *eh;
	Elf64_Shdr *sh;
	size_t len, cuts[] = { 0, 1, 16, 63, 64, 65, 200 };
	char *img, *work;

	module_path(path, sizeof(path), "fault-crash");
	img = slurp(path, &len);
	work = malloc(len);
	ck_assert_ptr_nonnull(work);
	snprintf(copy, sizeof(copy), "%s/broken.so", tmpdir);

	/* truncated anywhere: the section table sits at the end */
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		spit(copy, img, cuts[i]);
		ck_assert_int_eq(elfnote_isolation(copy), ELF_ISOLATION_NONE);
	}
	spit(copy, img, len / 2);
	ck_assert_int_eq(elfnote_isolation(copy), ELF_ISOLATION_NONE);
	spit(copy, img, len - 1);
	ck_assert_int_eq(elfnote_isolation(copy), ELF_ISOLATION_NONE);

	/* header fields pointing outside the file or past the bounds */
	memcpy(work, img, len);
	eh = (Elf64_Ehdr *)work;
	eh->e_shoff = (Elf64_Off)len + 4096;
	spit(copy, work, len);
	ck_assert_int_eq(elfnote_read_section(copy, LMMS_ISOLATION_SECTION, buf, 64), -ENOEXEC);
	memcpy(work, img, len);
	eh->e_shnum = 60000;
	spit(copy, work, len);
	ck_assert_int_eq(elfnote_read_section(copy, LMMS_ISOLATION_SECTION, buf, 64), -ENOEXEC);
	memcpy(work, img, len);
	eh->e_shstrndx = eh->e_shnum;
	spit(copy, work, len);
	ck_assert_int_eq(elfnote_read_section(copy, LMMS_ISOLATION_SECTION, buf, 64), -ENOEXEC);
	memcpy(work, img, len);
	eh->e_ident[EI_CLASS] = ELFCLASS32;
	spit(copy, work, len);
	ck_assert_int_eq(elfnote_read_section(copy, LMMS_ISOLATION_SECTION, buf, 64), -ENOEXEC);

	/* the section itself pointing outside the file, or too big */
	memcpy(work, img, len);
	sh = find_shdr(work, LMMS_ISOLATION_SECTION);
	sh->sh_offset = (Elf64_Off)len - 2;
	spit(copy, work, len);
	ck_assert_int_eq(elfnote_read_section(copy, LMMS_ISOLATION_SECTION, buf, 64), -ENOEXEC);
	memcpy(work, img, len);
	sh = find_shdr(work, LMMS_ISOLATION_SECTION);
	sh->sh_size = UINT64_MAX;
	spit(copy, work, len);
	ck_assert_int_eq(elfnote_read_section(copy, LMMS_ISOLATION_SECTION, buf, 64), -E2BIG);
	ck_assert_int_eq(elfnote_isolation(copy), ELF_ISOLATION_NONE);

	/* random damage to the header, the section table and the names: any
	 * answer but a crash or an overrun (ASan watches the reads) */
	srand(1);
	eh = (Elf64_Ehdr *)img;
	for (int i = 0; i < 600; i++) {
		size_t regions[3][2] = {
			{ 0, sizeof(Elf64_Ehdr) },
			{ eh->e_shoff, (size_t)eh->e_shnum * sizeof(Elf64_Shdr) },
			{ ((Elf64_Shdr *)(img + eh->e_shoff))[eh->e_shstrndx].sh_offset, 64 },
		};
		size_t *reg = regions[i % 3];
		int r;

		memcpy(work, img, len);
		for (int k = 0; k < 1 + i % 4; k++)
			work[reg[0] + (size_t)rand() % reg[1]] ^= (char)(1 + rand() % 255);
		spit(copy, work, len);
		r = elfnote_read_section(copy, LMMS_ISOLATION_SECTION, buf, sizeof(buf));
		ck_assert_int_le(r, (int)sizeof(buf));
		ck_assert_int_le(elfnote_isolation(copy), ELF_ISOLATION_PROCESS);
	}
	free(work);
	free(img);
}
END_TEST

/* ---- measurements ------------------------------------------------------------ */

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t *v, size_t n, double p)
{
	qsort(v, n, sizeof(*v), u64_cmp);
	return v[(size_t)((double)(n - 1) * p)];
}

static uint64_t bench_inproc(const char *path, uint32_t n, uint64_t *ns)
{
	lmms_module_desc d;
	const lmms_op *ping = NULL;
	msgpack_unpacked u;
	size_t off = 0;
	char err[256];
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);

	if (!h || module_desc_load(h, "echo", &d, err, sizeof(err)) < 0)
		return 0;
	for (uint32_t i = 0; i < d.n_ops; i++)
		if (!strcmp(module_desc_op(&d, i)->name, "ping"))
			ping = module_desc_op(&d, i);
	msgpack_unpacked_init(&u);
	msgpack_unpack_next(&u, "\x91\xa2hi", 4, &off);
	/* what dispatch does for an inline op: call, finish, take the bytes */
	for (uint32_t i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		lmms_call c;
		const char *m;

		call_init(&c, &u.data, 0, "echo");
		ping->fn(&call_host, &c, NULL);
		call_finish(&c, 0, &m);
		call_fini(&c);
		ns[i] = now_ns() - t0;
	}
	msgpack_unpacked_destroy(&u);
	return pct(ns, n, 0.5);
}

static uint32_t bench_calls = 20000;

/* Run as a Check test (`--bench`), so the helpers' assertions work. */
START_TEST(bench_figures)
{
	static tcall c;
	uint32_t n = bench_calls;
	uint64_t *ns = calloc(n, sizeof(*ns)), spawn[50], first[50];
	char path[PATH_MAX];
	int64_t rss = 0;
	tw t;

	ck_assert_ptr_nonnull(ns);
	log_init(LOG_LVL_WARNING);
	module_path(path, sizeof(path), "echo");
	printf("in-process echo.ping (call_init..call_finish): p50 %llu ns\n",
	       (unsigned long long)bench_inproc(path, n, ns));

	tw_prepare(&t, "echo");
	/* spawn to ready, and to the answer of a call sent right away */
	for (int i = 0; i < 50; i++) {
		uint64_t t0 = now_ns();

		tw_start(&t);
		tc_send(&t, &c, "ping", "s", "hi");
		while (!t.ready)
			uv_run(&loop, UV_RUN_ONCE);
		spawn[i] = t.w.ready_ns - t0;
		while (!c.done)
			uv_run(&loop, UV_RUN_ONCE);
		first[i] = now_ns() - t0;
		tc_free(&c);
		if (i == 49)
			break;
		tw_stop(&t);
	}
	printf("spawn to ready: p50 %llu us, p90 %llu us; spawn to first answer: p50 %llu us, "
	       "p90 %llu us (50 runs)\n",
	       (unsigned long long)pct(spawn, 50, 0.5) / 1000,
	       (unsigned long long)pct(spawn, 50, 0.9) / 1000,
	       (unsigned long long)pct(first, 50, 0.5) / 1000,
	       (unsigned long long)pct(first, 50, 0.9) / 1000);
	rss = worker_rss_bytes(&t.w);
	for (uint32_t i = 0; i < n; i++) {
		tc_send(&t, &c, "ping", "s", "hi");
		while (!c.done)
			uv_run(&loop, UV_RUN_ONCE);
		ns[i] = c.ns;
		tc_free(&c);
	}
	printf("isolated echo.ping round trip (worker_call to callback, %u calls): p50 %llu ns, "
	       "p99 %llu ns\n",
	       n, (unsigned long long)pct(ns, n, 0.5), (unsigned long long)pct(ns, n, 0.99));
	printf("echo worker RSS: %lld KiB after start, %lld KiB after %u calls\n",
	       (long long)rss / 1024, (long long)worker_rss_bytes(&t.w) / 1024, n);
	tw_stop(&t);
	free(ns);
}
END_TEST

/* ---- runner -------------------------------------------------------------------- */

/* LMMS_TEST_ONLY=word runs only the tests whose name contains it. */
#define ADD(tc, fn)                                                   \
	do {                                                          \
		const char *only_ = getenv("LMMS_TEST_ONLY");         \
		if (!only_ || strstr(#fn, only_))                     \
			tcase_add_test((tc), fn);                     \
	} while (0)

static Suite *worker_suite(bool bench)
{
	Suite *s = suite_create("worker");
	TCase *tc = tcase_create("worker");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, bench ? 600 : 60);
	if (bench) {
		tcase_add_test(tc, bench_figures);
		suite_add_tcase(s, tc);
		return s;
	}
	ADD(tc, echo_serves_calls_and_stops_clean);
	ADD(tc, calls_sent_during_start_run_after_ready);
	ADD(tc, limits_answer_busy_too_large_and_e2big);
	ADD(tc, buffered_bytes_are_bounded);
	ADD(tc, settings_reach_the_module_and_unread_ones_are_listed);
	ADD(tc, segv_inline_is_module_crashed);
	ADD(tc, segv_blocking_is_module_crashed);
	ADD(tc, abort_is_module_crashed);
	ADD(tc, exit_0_is_a_crash_too);
	ADD(tc, exit_3_is_module_crashed);
	ADD(tc, all_calls_in_flight_are_answered);
	ADD(tc, hang_inline_times_out_and_kills_one_worker);
	ADD(tc, hang_blocking_times_out_and_kills_one_worker);
	ADD(tc, timeout_answers_the_late_call_and_crashes_the_rest);
	ADD(tc, stop_kills_a_worker_that_does_not_exit);
	ADD(tc, thread_module_ends_with_its_worker);
	ADD(tc, tls_destructor_module_ends_with_its_worker);
	ADD(tc, unique_symbols_module_ends_with_its_worker);
	ADD(tc, init_failure_is_load_failed);
	ADD(tc, descriptor_problems_are_load_failed);
	ADD(tc, old_abi_module_is_read_by_its_op_size);
	ADD(tc, dlopen_failure_is_load_failed);
	ADD(tc, spawn_failure_is_reported_from_the_loop);
	ADD(tc, slow_init_stalls_nobody_else);
	ADD(tc, start_past_its_deadline_is_killed);
	ADD(tc, stop_during_start);
	ADD(tc, garbage_from_a_worker_fails_its_start);
	ADD(tc, bad_descriptor_fails_the_start);
	ADD(tc, stray_answer_crashes_the_worker);
	ADD(tc, worker_inherits_no_descriptors);
	ADD(tc, worker_has_no_new_privs_and_its_own_session);
	ADD(tc, worker_dies_with_its_daemon);
	ADD(tc, memory_max_is_enforced);
	ADD(tc, crash_window_quarantines_and_forgives);
	ADD(tc, isolation_is_read_from_the_file);
	ADD(tc, malformed_files_are_no_preference);
	suite_add_tcase(s, tc);
	return s;
}

int main(int argc, char **argv)
{
	SRunner *sr;
	bool bench;
	int failed;

#ifdef TEST_ASAN
	{
		/* Workers are this build's lmmsd: let a fixture's SIGSEGV kill
		 * its worker as it would without ASan, instead of ASan turning
		 * it into a report and an abort. */
		const char *old = getenv("ASAN_OPTIONS");
		char opts[1024];

		snprintf(opts, sizeof(opts), "%s%shandle_segv=0", old ? old : "",
			 old && *old ? ":" : "");
		setenv("ASAN_OPTIONS", opts, 1);
	}
#endif
	bench = argc > 1 && strcmp(argv[1], "--bench") == 0;
	if (bench && argc > 2)
		bench_calls = (uint32_t)strtoul(argv[2], NULL, 10);
	if (bench_calls == 0)
		bench_calls = 1;
	sr = srunner_create(worker_suite(bench));
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
