/*
 * bench-dispatch.c - what one call costs, in one run: in process (a real
 * lmmsd core, a real conn over a socketpair, dispatch_message in a loop on
 * pre-encoded requests) for the normal path, the hot fast path, the critical
 * path and a cache hit; then over the socket (the real lmmsd as a child on a
 * temporary socket) for a cold module's first call on a fresh daemon and
 * after a forced unload, a warm call, a hot call, a critical call and a
 * cache hit. Not a test: it prints tables of medians with min and max. In
 * process it counts the thread's CPU time (a call there is pure CPU work);
 * round trips are wall-clock latencies.
 *
 *   bench-dispatch [-n CALLS] [-f FRESH] [-m MODULE_DIR] [-d LMMSD] [-u]
 *
 * It uses as little of the daemon's insides as it can, since they change:
 * lmmsd_init/shutdown/fini, the zafp thresholds of its config,
 * server_conn_open and dispatch_message; what it checks of the daemon's
 * state (an op became hot, a reply came from the cache) it asks through
 * lmms.ops and lmms.stats, like any client.
 *
 * Client and daemon are pinned to one CPU (the daemon inherits it) so a round
 * trip costs two context switches, not a cross-CPU wake-up whose cost swings
 * with what else the machine runs; -u leaves them unpinned.
 *
 * Defaults come from the build tree, so `./build/bench/bench-dispatch` works.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <msgpack.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "dispatch.h"
#include "log.h"
#include "util.h"

#define BENCH_BATCHES 5
#define BENCH_MAX_CALLS 10000000u
#define BENCH_MAX_FRESH 1000u
#define RT_COLD_SAMPLES 30
#define START_TIMEOUT_MS 10000
#define NEVER "1000000000" /* a zafp threshold no run reaches */

typedef struct req {
	char *data;
	size_t len;
} req;

/* A request with params [str_arg] ([] when NULL), or [str_arg, flag] when
 * with_flag. */
static req req_pack(uint32_t msgid, const char *method, const char *str_arg, bool with_flag,
		    bool flag)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	req r;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	proto_pack_request(&pk, msgid, method, strlen(method), str_arg ? 1 + with_flag : 0);
	if (str_arg)
		proto_pack_cstr(&pk, str_arg);
	if (with_flag) {
		if (flag)
			msgpack_pack_true(&pk);
		else
			msgpack_pack_false(&pk);
	}
	r.data = sb.data;
	r.len = sb.size;
	return r;
}

static req req_make(uint32_t msgid, const char *method, const char *str_arg)
{
	return req_pack(msgid, method, str_arg, false, false);
}

/* What a right reply carries: msgid, nil error, this result. */
typedef struct expect {
	uint32_t msgid;
	msgpack_object result; /* points into sb (strings are not copied) */
	msgpack_sbuffer sb;
	msgpack_zone zone;
} expect;

/* result: one str (as_array false) or [str] (as_array true). */
static void expect_init(expect *e, uint32_t msgid, const char *s, bool as_array)
{
	msgpack_packer pk;
	size_t off = 0;

	msgpack_sbuffer_init(&e->sb);
	msgpack_packer_init(&pk, &e->sb, msgpack_sbuffer_write);
	if (as_array)
		msgpack_pack_array(&pk, 1);
	proto_pack_cstr(&pk, s);
	msgpack_zone_init(&e->zone, 256);
	msgpack_unpack(e->sb.data, e->sb.size, &off, &e->zone, &e->result);
	e->msgid = msgid;
}

static void expect_fini(expect *e)
{
	msgpack_zone_destroy(&e->zone);
	msgpack_sbuffer_destroy(&e->sb);
}

static int expect_check(const expect *e, const msgpack_object *msg)
{
	const msgpack_object *a = msg->via.array.ptr;

	if (msg->type != MSGPACK_OBJECT_ARRAY || msg->via.array.size != 4 ||
	    a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[0].via.u64 != 1 ||
	    a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[1].via.u64 != e->msgid ||
	    a[2].type != MSGPACK_OBJECT_NIL || !msgpack_object_equal(a[3], e->result))
		return -EPROTO;
	return 0;
}

/* The value of key (a str) in map m, or NULL. */
static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
	size_t n = strlen(key);

	if (m->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		const msgpack_object_kv *kv = &m->via.map.ptr[i];

		if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == n &&
		    !memcmp(kv->key.via.str.ptr, key, n))
			return &kv->val;
	}
	return NULL;
}

static bool str_is(const msgpack_object *o, const char *s)
{
	return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
	       !memcmp(o->via.str.ptr, s, o->via.str.size);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* ---- in process ---- */

typedef struct inproc {
	uv_loop_t loop;
	lmmsd d;
	conn *c;
	int peer; /* the other end of the socketpair, never read */
	msgpack_unpacked u; /* the last reply */
} inproc;

static void inproc_fini(inproc *ip)
{
	lmmsd_shutdown(&ip->d);
	uv_run(&ip->loop, UV_RUN_DEFAULT);
	lmmsd_fini(&ip->d);
	uv_loop_close(&ip->loop);
	if (ip->peer >= 0)
		close(ip->peer);
	msgpack_unpacked_destroy(&ip->u);
}

static int inproc_init(inproc *ip, const char *module_dir)
{
	int sv[2], r;

	memset(ip, 0, sizeof(*ip));
	ip->peer = -1;
	msgpack_unpacked_init(&ip->u);
	uv_loop_init(&ip->loop);
	config_init_defaults(&ip->d.cfg);
	snprintf(ip->d.module_dir, sizeof(ip->d.module_dir), "%s", module_dir);
	r = lmmsd_init(&ip->d, &ip->loop);
	if (r < 0) {
		fprintf(stderr, "lmmsd_init: %s\n", strerror(-r));
		uv_loop_close(&ip->loop);
		msgpack_unpacked_destroy(&ip->u);
		return r;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
	} else {
		ip->peer = sv[1];
		ip->c = server_conn_open(&ip->d.srv, sv[0]);
		r = ip->c ? 0 : -ENOMEM;
	}
	if (r < 0)
		inproc_fini(ip);
	return r;
}

/* One call; its reply is left decoded in ip->u. */
static const msgpack_object *inproc_call(inproc *ip, const req *r)
{
	conn *c = ip->c;
	size_t off = 0;
	int ok;

	c->out.len = 0;
	dispatch_on_message(&ip->d.dp, c, r->data, r->len);
	ok = msgpack_unpack_next(&ip->u, c->out.data, c->out.len, &off) == MSGPACK_UNPACK_SUCCESS;
	c->out.len = 0;
	return ok ? &ip->u.data : NULL;
}

static int inproc_call_checked(inproc *ip, const req *r, const expect *e)
{
	const msgpack_object *o = inproc_call(ip, r);

	return o ? expect_check(e, o) : -EPROTO;
}

/* The heat lmms.ops reports for method, or NULL. */
static const msgpack_object *inproc_heat(inproc *ip, const char *method, bool *fast_path)
{
	req ops = req_make(90, "lmms.ops", NULL);
	const msgpack_object *o = inproc_call(ip, &ops);
	const msgpack_object *found = NULL;

	free(ops.data);
	if (!o || o->via.array.size != 4 || o->via.array.ptr[3].type != MSGPACK_OBJECT_ARRAY)
		return NULL;
	o = &o->via.array.ptr[3];
	for (uint32_t i = 0; i < o->via.array.size; i++) {
		const msgpack_object *m = &o->via.array.ptr[i];

		if (str_is(map_get(m, "method"), method)) {
			const msgpack_object *fp = map_get(m, "fast_path");

			*fast_path = fp && fp->type == MSGPACK_OBJECT_BOOLEAN && fp->via.boolean;
			found = map_get(m, "heat");
		}
	}
	return found;
}

static int64_t inproc_stat(inproc *ip, const char *key)
{
	req st = req_make(91, "lmms.stats", NULL);
	const msgpack_object *o = inproc_call(ip, &st), *v;

	free(st.data);
	if (!o || o->via.array.size != 4)
		return -1;
	v = map_get(&o->via.array.ptr[3], key);
	return v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)v->via.u64 : -1;
}

typedef struct spread {
	double median, min, max;
} spread;

static spread spread_of(double *v, uint32_t n)
{
	spread s;

	qsort(v, n, sizeof(*v), cmp_double);
	s.min = v[0];
	s.max = v[n - 1];
	s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	return s;
}

/* This thread's CPU time: in process, a call is pure CPU work, and CPU time
 * does not count the time other processes of a busy machine held the CPU. */
static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Mean CPU ns per call of each of BENCH_BATCHES batches: median, min, max. */
static spread inproc_measure(inproc *ip, const req *r, uint32_t calls)
{
	uint32_t per = calls / BENCH_BATCHES ? calls / BENCH_BATCHES : 1;
	double ns[BENCH_BATCHES];

	for (int b = 0; b < BENCH_BATCHES; b++) {
		uint64_t t0 = thread_cpu_ns();

		for (uint32_t i = 0; i < per; i++) {
			dispatch_on_message(&ip->d.dp, ip->c, r->data, r->len);
			ip->c->out.len = 0;
		}
		ns[b] = (double)(thread_cpu_ns() - t0) / per;
	}
	return spread_of(ns, BENCH_BATCHES);
}

static int inproc_expect_heat(inproc *ip, const char *method, const char *level)
{
	bool fp = false;
	const msgpack_object *h = inproc_heat(ip, method, &fp);

	if (!str_is(h, level) || !fp) {
		fprintf(stderr, "%s did not become %s with a fast path\n", method, level);
		return -EPROTO;
	}
	return 0;
}

static void print_spread(const char *what, spread s)
{
	printf("  %-40s %9.1f %9.1f %9.1f\n", what, s.median, s.min, s.max);
}

static int bench_inproc(const char *module_dir, uint32_t calls)
{
	req ping = req_make(7, "echo.ping", "x");
	req upper = req_make(8, "echo.upper", "hello world");
	expect ping_ok, upper_ok;
	spread normal, hot, critical, hit;
	config *cfg;
	int64_t hits;
	inproc ip;
	int r;

	expect_init(&ping_ok, 7, "x", true);
	expect_init(&upper_ok, 8, "HELLO WORLD", false);
	r = inproc_init(&ip, module_dir);
	if (r < 0)
		goto out;
	r = -EPROTO; /* until every phase passed */
	cfg = &ip.d.cfg;

	/* normal: the op never gets hot */
	cfg->zafp.warm = cfg->zafp.hot = cfg->zafp.critical = 1000000000;
	if (inproc_call_checked(&ip, &ping, &ping_ok) < 0 ||
	    inproc_call_checked(&ip, &upper, &upper_ok) < 0) {
		fprintf(stderr, "echo.ping / echo.upper failed in process (module dir %s?)\n",
			module_dir);
		goto fini;
	}
	normal = inproc_measure(&ip, &ping, calls);

	/* hot: the next call promotes it (its count is far past 20) */
	cfg->zafp.warm = 5;
	cfg->zafp.hot = 20;
	if (inproc_call_checked(&ip, &ping, &ping_ok) < 0 ||
	    inproc_expect_heat(&ip, "echo.ping", "hot") < 0)
		goto fini;
	hot = inproc_measure(&ip, &ping, calls);

	cfg->zafp.critical = 100;
	if (inproc_call_checked(&ip, &ping, &ping_ok) < 0 ||
	    inproc_expect_heat(&ip, "echo.ping", "critical") < 0)
		goto fini;
	critical = inproc_measure(&ip, &ping, calls);

	/* cache hit: echo.upper's first call stored its result */
	hits = inproc_stat(&ip, "cache_hits");
	if (inproc_call_checked(&ip, &upper, &upper_ok) < 0 ||
	    inproc_stat(&ip, "cache_hits") != hits + 1) {
		fprintf(stderr, "echo.upper was not answered from the cache\n");
		goto fini;
	}
	hit = inproc_measure(&ip, &upper, calls);
	/* the measured calls must still have been right */
	if (inproc_call_checked(&ip, &ping, &ping_ok) < 0 ||
	    inproc_call_checked(&ip, &upper, &upper_ok) < 0) {
		fprintf(stderr, "a reply went wrong during the in-process batches\n");
		goto fini;
	}

	printf("in-process dispatch_message, %d batches of %u calls, CPU ns/call:\n",
	       BENCH_BATCHES, calls / BENCH_BATCHES);
	printf("  %-40s %9s %9s %9s\n", "", "median", "min", "max");
	print_spread("normal path (echo.ping, cold/warm)", normal);
	print_spread("hot fast path (echo.ping)", hot);
	print_spread("critical path (echo.ping)", critical);
	print_spread("cache hit (echo.upper)", hit);
	r = 0;
fini:
	inproc_fini(&ip);
out:
	expect_fini(&ping_ok);
	expect_fini(&upper_ok);
	free(ping.data);
	free(upper.data);
	return r;
}

/* ---- round trip over the socket ---- */

typedef struct child {
	pid_t pid;
	int fd;
	char dir[64];
	char sock[108];
	msgpack_unpacker up;
} child;

static int child_start(child *ch, const char *lmmsd_path, const char *module_dir,
		       const char *const *extra, size_t n_extra)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *argv[32];
	size_t argc = 0;
	uint64_t deadline;

	memset(ch, 0, sizeof(*ch));
	ch->fd = -1;
	if (!msgpack_unpacker_init(&ch->up, 4096))
		return -ENOMEM;
	snprintf(ch->dir, sizeof(ch->dir), "/tmp/lmms-bench-XXXXXX");
	if (!mkdtemp(ch->dir))
		return -errno;
	snprintf(ch->sock, sizeof(ch->sock), "%s/s.sock", ch->dir);
	argv[argc++] = lmmsd_path;
	argv[argc++] = "--socket";
	argv[argc++] = ch->sock;
	argv[argc++] = "--module-dir";
	argv[argc++] = module_dir;
	for (size_t i = 0; i < n_extra && argc < 30; i++)
		argv[argc++] = extra[i];
	argv[argc] = NULL;

	ch->pid = fork();
	if (ch->pid < 0)
		return -errno;
	if (ch->pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execv(lmmsd_path, (char *const *)argv);
		_exit(127);
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ch->sock);
	deadline = now_ms() + START_TIMEOUT_MS;
	for (;;) {
		ch->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (ch->fd < 0)
			return -errno;
		if (connect(ch->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		close(ch->fd);
		ch->fd = -1;
		if (now_ms() > deadline || waitpid(ch->pid, NULL, WNOHANG) == ch->pid) {
			fprintf(stderr, "%s did not start on %s\n", lmmsd_path, ch->sock);
			return -ETIMEDOUT;
		}
		usleep(1000);
	}
	return 0;
}

static int child_stop(child *ch)
{
	int status = 0;

	if (ch->fd >= 0)
		close(ch->fd);
	if (ch->pid > 0) {
		kill(ch->pid, SIGTERM);
		waitpid(ch->pid, &status, 0);
	}
	msgpack_unpacker_destroy(&ch->up);
	unlink(ch->sock);
	rmdir(ch->dir);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

/* Send one request, wait for its whole reply; 0 if it is a success, and the
 * one expected when e is given. */
static int child_call(child *ch, const req *r, const expect *e)
{
	msgpack_unpacked u;
	size_t sent = 0;
	int ok = -EPROTO;

	while (sent < r->len) {
		ssize_t n = write(ch->fd, r->data + sent, r->len - sent);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		sent += (size_t)n;
	}
	msgpack_unpacked_init(&u);
	for (;;) {
		msgpack_unpack_return ur = msgpack_unpacker_next(&ch->up, &u);
		ssize_t n;

		if (ur == MSGPACK_UNPACK_SUCCESS) {
			const msgpack_object *o = &u.data;

			if (e)
				ok = expect_check(e, o);
			else
				ok = o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 4 &&
						     o->via.array.ptr[2].type == MSGPACK_OBJECT_NIL
					     ? 0
					     : -EPROTO;
			break;
		}
		if (ur != MSGPACK_UNPACK_CONTINUE)
			break;
		if (!msgpack_unpacker_reserve_buffer(&ch->up, 4096)) {
			ok = -ENOMEM;
			break;
		}
		n = read(ch->fd, msgpack_unpacker_buffer(&ch->up),
			 msgpack_unpacker_buffer_capacity(&ch->up));
		if (n <= 0) {
			ok = n < 0 ? -errno : -ECONNRESET;
			break;
		}
		msgpack_unpacker_buffer_consumed(&ch->up, (size_t)n);
	}
	msgpack_unpacked_destroy(&u);
	return ok;
}

typedef struct rt_row {
	const char *what;
	uint32_t n;
	double median, min, p99, max; /* us */
} rt_row;

static void rt_summarise(rt_row *row, const char *what, double *us, uint32_t n)
{
	spread s = spread_of(us, n); /* sorts */

	row->what = what;
	row->n = n;
	row->median = s.median;
	row->min = s.min;
	row->max = s.max;
	row->p99 = us[(uint32_t)((n - 1) * 0.99)];
}

/* n timed calls of r, each checked against e. */
static int rt_time(child *ch, const req *r, const expect *e, double *us, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		uint64_t t0 = now_ns();

		if (child_call(ch, r, e) < 0)
			return -EPROTO;
		us[i] = (double)(now_ns() - t0) / 1000.0;
	}
	return 0;
}

enum { ROW_FRESH, ROW_UNLOADED, ROW_WARM, ROW_HOT, ROW_CRITICAL, ROW_HIT, N_ROWS };

static int bench_roundtrip(const char *lmmsd_path, const char *module_dir, uint32_t calls,
			   uint32_t fresh)
{
	/* no op ever gets hot, so the module can be unloaded between cold calls */
	const char *never_hot[] = { "--set", "zafp.warm=" NEVER, "--set", "zafp.hot=" NEVER,
				    "--set", "zafp.critical=" NEVER };
	req ping = req_make(1, "echo.ping", "x");
	req upper = req_make(2, "echo.upper", "hello world");
	req unload = req_pack(3, "lmms.unload", "echo", true, true);
	uint32_t n_us = calls > fresh ? calls : fresh;
	double *us = calloc(n_us > RT_COLD_SAMPLES ? n_us : RT_COLD_SAMPLES, sizeof(*us));
	expect ping_ok, upper_ok;
	rt_row rows[N_ROWS];
	child ch;
	int r = -EPROTO;

	expect_init(&ping_ok, 1, "x", true);
	expect_init(&upper_ok, 2, "HELLO WORLD", false);
	if (!us) {
		r = -ENOMEM;
		goto out;
	}

	/* a fresh daemon each time: the first call maps the module for the
	 * first time in the process, as after a start */
	for (uint32_t i = 0; i < fresh; i++) {
		uint64_t t0;

		r = child_start(&ch, lmmsd_path, module_dir, NULL, 0);
		if (r < 0)
			goto out;
		t0 = now_ns();
		if (child_call(&ch, &ping, &ping_ok) < 0)
			goto fail_child;
		us[i] = (double)(now_ns() - t0) / 1000.0;
		if (child_stop(&ch) < 0)
			fprintf(stderr, "warning: lmmsd (fresh) did not exit 0\n");
	}
	rt_summarise(&rows[ROW_FRESH], "cold module, fresh daemon (first call)", us, fresh);

	r = child_start(&ch, lmmsd_path, module_dir, never_hot, 6);
	if (r < 0)
		goto out;
	for (uint32_t i = 0; i < RT_COLD_SAMPLES; i++) {
		uint64_t t0;

		if (child_call(&ch, &unload, NULL) < 0)
			goto fail_child;
		t0 = now_ns();
		if (child_call(&ch, &ping, &ping_ok) < 0)
			goto fail_child;
		us[i] = (double)(now_ns() - t0) / 1000.0;
	}
	rt_summarise(&rows[ROW_UNLOADED], "cold module, after lmms.unload [m, true]", us,
		     RT_COLD_SAMPLES);
	if (rt_time(&ch, &ping, &ping_ok, us, calls) < 0)
		goto fail_child;
	rt_summarise(&rows[ROW_WARM], "warm call (normal path)", us, calls);
	if (child_call(&ch, &upper, &upper_ok) < 0 || rt_time(&ch, &upper, &upper_ok, us, calls) < 0)
		goto fail_child;
	rt_summarise(&rows[ROW_HIT], "cache hit (echo.upper)", us, calls);
	if (child_stop(&ch) < 0)
		fprintf(stderr, "warning: lmmsd (never-hot) did not exit 0\n");

	/* defaults: 20 calls make echo.ping hot, 100 critical */
	r = child_start(&ch, lmmsd_path, module_dir, NULL, 0);
	if (r < 0)
		goto out;
	if (rt_time(&ch, &ping, &ping_ok, us, 25) < 0 || rt_time(&ch, &ping, &ping_ok, us, 70) < 0)
		goto fail_child;
	rt_summarise(&rows[ROW_HOT], "hot call (fast path, calls 26..95)", us, 70);
	if (rt_time(&ch, &ping, &ping_ok, us, 10) < 0 || rt_time(&ch, &ping, &ping_ok, us, calls) < 0)
		goto fail_child;
	rt_summarise(&rows[ROW_CRITICAL], "critical call (fast path)", us, calls);
	if (child_stop(&ch) < 0)
		fprintf(stderr, "warning: lmmsd (defaults) did not exit 0\n");

	printf("\nround trip over the Unix socket, one client, one call at a time (us):\n");
	printf("  %-40s %6s %9s %9s %9s %9s\n", "", "calls", "median", "min", "p99", "max");
	for (int i = 0; i < N_ROWS; i++)
		printf("  %-40s %6u %9.1f %9.1f %9.1f %9.1f\n", rows[i].what, rows[i].n,
		       rows[i].median, rows[i].min, rows[i].p99, rows[i].max);
	r = 0;
	goto out;

fail_child:
	fprintf(stderr, "a round-trip call failed\n");
	child_stop(&ch);
	r = -EPROTO;
out:
	free(us);
	expect_fini(&ping_ok);
	expect_fini(&upper_ok);
	free(ping.data);
	free(upper.data);
	free(unload.data);
	return r;
}

static bool count_arg(const char *s, unsigned long lo, unsigned long hi, uint32_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return false;
	*out = (uint32_t)v;
	return true;
}

int main(int argc, char **argv)
{
	const char *module_dir = getenv("LMMS_MODULE_DIR") ? getenv("LMMS_MODULE_DIR")
							   : BENCH_MODULE_DIR;
	const char *lmmsd_path = BENCH_LMMSD;
	uint32_t calls = 500000, fresh = 20;
	bool pin = true;
	int opt;

	while ((opt = getopt(argc, argv, "n:f:m:d:uh")) != -1) {
		switch (opt) {
		case 'n':
			if (!count_arg(optarg, BENCH_BATCHES, BENCH_MAX_CALLS, &calls)) {
				fprintf(stderr, "-n: %d..%u\n", BENCH_BATCHES, BENCH_MAX_CALLS);
				return 2;
			}
			break;
		case 'f':
			if (!count_arg(optarg, 1, BENCH_MAX_FRESH, &fresh)) {
				fprintf(stderr, "-f: 1..%u\n", BENCH_MAX_FRESH);
				return 2;
			}
			break;
		case 'm':
			module_dir = optarg;
			break;
		case 'd':
			lmmsd_path = optarg;
			break;
		case 'u':
			pin = false;
			break;
		default:
			fprintf(stderr,
				"usage: %s [-n CALLS] [-f FRESH] [-m MODULE_DIR] [-d LMMSD] [-u]\n",
				argv[0]);
			return opt == 'h' ? 0 : 2;
		}
	}
	log_init(LOG_LVL_WARNING);
	signal(SIGPIPE, SIG_IGN);
	if (pin) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(sched_getcpu() > 0 ? sched_getcpu() : 0, &set);
		if (sched_setaffinity(0, sizeof(set), &set) < 0)
			perror("sched_setaffinity (continuing unpinned)");
	}
	printf("lmms bench-dispatch: %s\n", pin ? "client and daemon on one CPU" : "unpinned");
	if (bench_inproc(module_dir, calls) < 0)
		return 1;
	fflush(stdout);
	if (bench_roundtrip(lmmsd_path, module_dir, calls / 50 < 1000 ? 1000 : calls / 50, fresh) < 0)
		return 1;
	return 0;
}
