/*
 * bench-dispatch.c - what one call costs, in one run: in process (a real
 * lmmsd core, a real conn over a socketpair, dispatch_message in a loop on
 * pre-encoded requests) for the normal path, the hot fast path, the critical
 * path and a cache hit; then over the socket (the real lmmsd as a child on a
 * temporary socket) for a cold-module first call, a warm call, a hot call,
 * a critical call and a cache hit. Not a test: it prints a table.
 *
 *   bench-dispatch [-n CALLS] [-m MODULE_DIR] [-d LMMSD] [-u]
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
#include <unistd.h>

#include "call.h"
#include "daemon.h"
#include "dispatch.h"
#include "log.h"
#include "util.h"

#define BENCH_BATCHES 5
#define BENCH_MAX_CALLS 10000000u
#define RT_COLD_SAMPLES 30
#define START_TIMEOUT_MS 10000

typedef struct req {
	char *data;
	size_t len;
} req;

/* A request with params [str_arg] (or [] when NULL), or with flag_name set:
 * [flag_name, flag]. */
static req req_pack(uint32_t msgid, const char *method, const char *str_arg,
		    const char *flag_name, bool flag)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	req r;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	proto_pack_request(&pk, msgid, method, strlen(method), flag_name ? 2 : str_arg ? 1 : 0);
	if (flag_name) {
		proto_pack_cstr(&pk, flag_name);
		if (flag)
			msgpack_pack_true(&pk);
		else
			msgpack_pack_false(&pk);
	} else if (str_arg) {
		proto_pack_cstr(&pk, str_arg);
	}
	r.data = sb.data;
	r.len = sb.size;
	return r;
}

static req req_make(uint32_t msgid, const char *method, const char *str_arg)
{
	return req_pack(msgid, method, str_arg, NULL, false);
}

static req req_make_bool(uint32_t msgid, const char *method, const char *name, bool flag)
{
	return req_pack(msgid, method, NULL, name, flag);
}

/* ---- in process ---- */

typedef struct inproc {
	uv_loop_t loop;
	lmmsd d;
	conn *c;
	int peer; /* the other end of the socketpair, never read */
} inproc;

static int inproc_init(inproc *ip, const char *module_dir)
{
	int sv[2], r;

	memset(ip, 0, sizeof(*ip));
	uv_loop_init(&ip->loop);
	config_init_defaults(&ip->d.cfg);
	snprintf(ip->d.module_dir, sizeof(ip->d.module_dir), "%s", module_dir);
	r = lmmsd_init(&ip->d, &ip->loop);
	if (r < 0) {
		fprintf(stderr, "lmmsd_init: %s\n", strerror(-r));
		return r;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	ip->peer = sv[1];
	ip->c = server_conn_open(&ip->d.srv, sv[0]);
	return ip->c ? 0 : -ENOMEM;
}

static void inproc_fini(inproc *ip)
{
	lmmsd_shutdown(&ip->d);
	uv_run(&ip->loop, UV_RUN_DEFAULT);
	lmmsd_fini(&ip->d);
	uv_loop_close(&ip->loop);
	close(ip->peer);
}

/* One call, its reply checked for success (a nil error). */
static int inproc_call_checked(inproc *ip, const req *r)
{
	conn *c = ip->c;
	msgpack_unpacked u;
	size_t off = 0;
	int ok;

	c->out.len = 0;
	dispatch_on_message(&ip->d.dp, c, r->data, r->len);
	msgpack_unpacked_init(&u);
	ok = msgpack_unpack_next(&u, c->out.data, c->out.len, &off) == MSGPACK_UNPACK_SUCCESS &&
	     u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size == 4 &&
	     u.data.via.array.ptr[2].type == MSGPACK_OBJECT_NIL;
	msgpack_unpacked_destroy(&u);
	c->out.len = 0;
	return ok ? 0 : -EPROTO;
}

/* Best batch mean in ns per call: the least disturbed by the machine. */
static double inproc_measure(inproc *ip, const req *r, uint32_t calls)
{
	uint32_t per = calls / BENCH_BATCHES ? calls / BENCH_BATCHES : 1;
	double best = 0;

	for (int b = 0; b < BENCH_BATCHES; b++) {
		uint64_t t0 = now_ns();

		for (uint32_t i = 0; i < per; i++) {
			dispatch_on_message(&ip->d.dp, ip->c, r->data, r->len);
			ip->c->out.len = 0;
		}
		double ns = (double)(now_ns() - t0) / per;

		if (b == 0 || ns < best)
			best = ns;
	}
	return best;
}

static op_info *inproc_op(inproc *ip, const char *method)
{
	return registry_find_op(&ip->d.reg, method, strlen(method));
}

/* What the hot path is made of, each part alone, ns per call. */
static void inproc_breakdown(inproc *ip, const req *r, uint32_t calls)
{
	/* the params ["x"] are the last 3 bytes of the request */
	const char *params = r->data + r->len - 3;
	size_t plen = 3;
	op_info *op = inproc_op(ip, "echo.ping");
	msgpack_object obj;
	uint64_t t0;
	double unpack, callio, replyt, record, lookup;

	t0 = now_ns();
	for (uint32_t i = 0; i < calls; i++) {
		size_t off = 0;

		msgpack_unpack(params, plen, &off, &ip->d.dp.zone, &obj);
		msgpack_zone_clear(&ip->d.dp.zone);
	}
	unpack = (double)(now_ns() - t0) / calls;

	{
		size_t off = 0;

		msgpack_unpack(params, plen, &off, &ip->d.dp.zone, &obj);
	}
	t0 = now_ns();
	for (uint32_t i = 0; i < calls; i++) {
		lmms_call call;
		const char *msg;

		call_init(&call, &obj, 0, "echo");
		op->fn(&call_host, &call, NULL);
		call_finish(&call, 0, &msg);
		call_fini(&call);
	}
	callio = (double)(now_ns() - t0) / calls;
	msgpack_zone_clear(&ip->d.dp.zone);

	t0 = now_ns();
	for (uint32_t i = 0; i < calls; i++) {
		conn_reply_raw(ip->c, 7, "\x91\xa1x", 3);
		ip->c->out.len = 0;
	}
	replyt = (double)(now_ns() - t0) / calls;

	t0 = now_ns();
	for (uint32_t i = 0; i < calls; i++)
		heat_record(&ip->d.heat, op, 250, 1);
	record = (double)(now_ns() - t0) / calls;

	t0 = now_ns();
	for (uint32_t i = 0; i < calls; i++)
		heat_lookup(&ip->d.heat, "echo.ping", 9, 1);
	lookup = (double)(now_ns() - t0) / calls;

	printf("\nparts of one echo.ping call, each alone (ns):\n");
	printf("  %-44s %8.1f\n", "params unpack into the conn zone + clear", unpack);
	printf("  %-44s %8.1f\n", "call_init + op + call_finish + call_fini", callio);
	printf("  %-44s %8.1f\n", "reply header + result copy (conn_reply_raw)", replyt);
	printf("  %-44s %8.1f\n", "heat_record (histogram, count, level)", record);
	printf("  %-44s %8.1f\n", "heat_lookup (hash + LRU touch)", lookup);
}

static int bench_inproc(const char *module_dir, uint32_t calls)
{
	req ping = req_make(7, "echo.ping", "x");
	req upper = req_make(8, "echo.upper", "hello world");
	double normal, hot, critical, hit;
	config *cfg;
	inproc ip;
	int r;

	r = inproc_init(&ip, module_dir);
	if (r < 0)
		goto out;
	cfg = &ip.d.cfg;

	/* normal: the op never gets hot */
	cfg->zafp.warm = cfg->zafp.hot = cfg->zafp.critical = 1000000000;
	if (inproc_call_checked(&ip, &ping) < 0 || inproc_call_checked(&ip, &upper) < 0) {
		fprintf(stderr, "echo.ping / echo.upper failed in process (module dir %s?)\n",
			module_dir);
		r = -EPROTO;
		goto fini;
	}
	normal = inproc_measure(&ip, &ping, calls);

	/* hot: the next record promotes it (its count is far past 20) */
	cfg->zafp.warm = 5;
	cfg->zafp.hot = 20;
	inproc_call_checked(&ip, &ping);
	if (!inproc_op(&ip, "echo.ping")->heat.fp ||
	    inproc_op(&ip, "echo.ping")->heat.level != HEAT_HOT) {
		fprintf(stderr, "echo.ping did not get a fast path\n");
		r = -EPROTO;
		goto fini;
	}
	hot = inproc_measure(&ip, &ping, calls);

	cfg->zafp.critical = 100;
	inproc_call_checked(&ip, &ping);
	if (inproc_op(&ip, "echo.ping")->heat.level != HEAT_CRITICAL) {
		fprintf(stderr, "echo.ping did not become critical\n");
		r = -EPROTO;
		goto fini;
	}
	critical = inproc_measure(&ip, &ping, calls);

	/* cache hit: echo.upper's first call stored its result */
	if (inproc_call_checked(&ip, &upper) < 0 || !ip.d.cache.hits) {
		fprintf(stderr, "echo.upper was not answered from the cache\n");
		r = -EPROTO;
		goto fini;
	}
	hit = inproc_measure(&ip, &upper, calls);

	printf("in-process dispatch_message, best of %d batches of %u calls (ns/call):\n",
	       BENCH_BATCHES, calls / BENCH_BATCHES);
	printf("  %-44s %8.1f\n", "normal path (echo.ping, cold/warm)", normal);
	printf("  %-44s %8.1f\n", "hot fast path (echo.ping)", hot);
	printf("  %-44s %8.1f\n", "critical path (echo.ping)", critical);
	printf("  %-44s %8.1f\n", "cache hit (echo.upper)", hit);
	inproc_breakdown(&ip, &ping, calls / BENCH_BATCHES);
fini:
	inproc_fini(&ip);
out:
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
		usleep(10000);
	}
	msgpack_unpacker_init(&ch->up, 4096);
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

/* Send one request, wait for its whole reply; 0 if the reply is a success. */
static int child_call(child *ch, const req *r)
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
			ok = u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size == 4 &&
					     u.data.via.array.ptr[2].type == MSGPACK_OBJECT_NIL
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

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

typedef struct rt_row {
	const char *what;
	uint32_t n;
	double mean_us, p50_us, p99_us;
} rt_row;

static void rt_summarise(rt_row *row, const char *what, uint64_t *ns, uint32_t n)
{
	uint64_t sum = 0;

	qsort(ns, n, sizeof(*ns), cmp_u64);
	for (uint32_t i = 0; i < n; i++)
		sum += ns[i];
	row->what = what;
	row->n = n;
	row->mean_us = (double)sum / n / 1000.0;
	row->p50_us = (double)ns[n / 2] / 1000.0;
	row->p99_us = (double)ns[(uint32_t)((n - 1) * 0.99)] / 1000.0;
}

/* n timed calls of r; -EPROTO at the first failed reply. */
static int rt_time(child *ch, const req *r, uint64_t *ns, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		uint64_t t0 = now_ns();

		if (child_call(ch, r) < 0)
			return -EPROTO;
		ns[i] = now_ns() - t0;
	}
	return 0;
}

static int bench_roundtrip(const char *lmmsd_path, const char *module_dir, uint32_t calls)
{
	/* A: no op ever gets hot, so the module can be unloaded between cold calls. */
	const char *never_hot[] = { "--set", "zafp.warm=1000000000", "--set",
				    "zafp.hot=1000000000", "--set", "zafp.critical=1000000000" };
	req ping = req_make(1, "echo.ping", "x");
	req upper = req_make(2, "echo.upper", "hello world");
	req unload = req_make_bool(3, "lmms.unload", "echo", true);
	uint64_t *ns = calloc(calls, sizeof(*ns));
	rt_row rows[5];
	child ch;
	int r = -EPROTO;

	if (!ns)
		return -ENOMEM;

	r = child_start(&ch, lmmsd_path, module_dir, never_hot, 6);
	if (r < 0)
		goto out;
	for (uint32_t i = 0; i < RT_COLD_SAMPLES; i++) {
		uint64_t t0;

		if (child_call(&ch, &unload) < 0)
			goto fail_child;
		t0 = now_ns();
		if (child_call(&ch, &ping) < 0)
			goto fail_child;
		ns[i] = now_ns() - t0;
	}
	rt_summarise(&rows[0], "cold module, first call (load+init+call)", ns, RT_COLD_SAMPLES);
	if (rt_time(&ch, &ping, ns, calls) < 0)
		goto fail_child;
	rt_summarise(&rows[1], "warm call (normal path)", ns, calls);
	if (child_call(&ch, &upper) < 0 || rt_time(&ch, &upper, ns, calls) < 0)
		goto fail_child;
	rt_summarise(&rows[4], "cache hit (echo.upper)", ns, calls);
	if (child_stop(&ch) < 0)
		fprintf(stderr, "warning: lmmsd (never-hot) did not exit 0\n");

	/* B: defaults; 20 calls make echo.ping hot, 100 critical. */
	r = child_start(&ch, lmmsd_path, module_dir, NULL, 0);
	if (r < 0)
		goto out;
	if (rt_time(&ch, &ping, ns, 25) < 0 || rt_time(&ch, &ping, ns, 70) < 0)
		goto fail_child;
	rt_summarise(&rows[2], "hot call (fast path, calls 26..95)", ns, 70);
	if (rt_time(&ch, &ping, ns, 10) < 0 || rt_time(&ch, &ping, ns, calls) < 0)
		goto fail_child;
	rt_summarise(&rows[3], "critical call (fast path)", ns, calls);
	if (child_stop(&ch) < 0)
		fprintf(stderr, "warning: lmmsd (defaults) did not exit 0\n");

	printf("\nround trip over the Unix socket, one client, one call at a time (us):\n");
	printf("  %-44s %6s %8s %8s %8s\n", "", "calls", "mean", "p50", "p99");
	for (int i = 0; i < 5; i++)
		printf("  %-44s %6u %8.1f %8.1f %8.1f\n", rows[i].what, rows[i].n, rows[i].mean_us,
		       rows[i].p50_us, rows[i].p99_us);
	r = 0;
	goto out;

fail_child:
	fprintf(stderr, "a round-trip call failed\n");
	child_stop(&ch);
	r = -EPROTO;
out:
	free(ns);
	free(ping.data);
	free(upper.data);
	free(unload.data);
	return r;
}

int main(int argc, char **argv)
{
	const char *module_dir = getenv("LMMS_MODULE_DIR") ? getenv("LMMS_MODULE_DIR")
							   : BENCH_MODULE_DIR;
	const char *lmmsd_path = BENCH_LMMSD;
	uint32_t calls = 500000;
	bool pin = true;
	int opt;

	while ((opt = getopt(argc, argv, "n:m:d:uh")) != -1) {
		switch (opt) {
		case 'n': {
			unsigned long v = strtoul(optarg, NULL, 10);

			if (v < BENCH_BATCHES || v > BENCH_MAX_CALLS) {
				fprintf(stderr, "-n: %d..%u\n", BENCH_BATCHES, BENCH_MAX_CALLS);
				return 2;
			}
			calls = (uint32_t)v;
			break;
		}
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
			fprintf(stderr, "usage: %s [-n CALLS] [-m MODULE_DIR] [-d LMMSD] [-u]\n",
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
	if (bench_roundtrip(lmmsd_path, module_dir, calls / 50 < 1000 ? 1000 : calls / 50) < 0)
		return 1;
	return 0;
}
