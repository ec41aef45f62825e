/*
 * bench-load.c - the load client of the benchmark harness (bench/run.py).
 *
 * One client, one epoll loop, the same code and settings for every server it
 * drives: lmmsd and the mini-rpc floor over MessagePack-RPC, the echo floor
 * (which sends lmmsd's requests back), and Redis over RESP. Every reply is
 * checked, its msgid and its content, and the first wrong one ends the run
 * with exit status 1: a figure from a server that answers wrongly is no
 * figure.
 *
 *   bench-load run   --socket PATH REQUEST [--conns N] [--depth D]
 *                    [--seconds T] [--warmup T] [--requests N] [--server-pid PID]
 *   bench-load start --socket PATH REQUEST [--ready WORD] [--timeout T] -- CMD [ARG]...
 *
 * REQUEST is one of
 *   --rpc METHOD [--str S] --expect params|param|str:TEXT|request
 *       params   the result is the request's params array  (lmmsd echo.ping)
 *       param    the result is params[0], nil without one (mini-rpc, synthetic ops)
 *       str:TEXT the result is the string TEXT              (lmms.ping: str:pong)
 *       request  the reply is the request, byte for byte    (echo-server)
 *   --redis ping | --redis get --key K --value V
 *
 * run: N connections, each sending D requests in one write and waiting for
 * all D replies before the next batch (D = 1 is one call at a time). After
 * --warmup seconds (not counted) it counts replies for --seconds, or until
 * --requests replies, and prints one JSON line: replies per second and the
 * latency of each request from its batch's write to its reply (p50, p99,
 * mean), plus the very first reply's latency apart ("first_us": a cold
 * module's load when the server is fresh). CPU time per reply, its own and,
 * with --server-pid, the server's (all its threads, from the kernel's
 * schedstat, in ns): unlike replies per second, it hardly moves when other
 * work shares the machine.
 *
 * start: fork+exec CMD, then poll connect on the socket every 50 us and send
 * the request as soon as it connects; prints how long from exec the server
 * took to print a line holding WORD on stderr (its READY) and to answer, and
 * the CPU time it had used when it answered.
 * Then SIGTERM, and the server must exit 0.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define MAX_DEPTH 256
#define MAX_ARG 4096 /* --str, --key, --value */
#define MAX_REQ (MAX_ARG + 512)
#define IN_CHUNK (64 * 1024)
#define IN_MAX (1024 * 1024) /* a reply larger than this is wrong here */
#define ID_SPAN (1u << 22) /* msgids per connection: conn i uses [i*SPAN, (i+1)*SPAN) */
#define STALL_NS (10 * NS_S) /* no reply for this long: the server is stuck */
#define NS_S 1000000000ull
#define NS_US 1000ull

/* ---- time and latency histogram ---- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_S + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * NS_S + (uint64_t)ts.tv_nsec;
}

/* CPU time pid has run, all its threads, in ns (the first field of each
 * /proc/PID/task/TID/schedstat); -1 if it cannot be read. */
static int64_t proc_cpu_ns(pid_t pid)
{
	char path[64];
	struct dirent *de;
	int64_t sum = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		unsigned long long ns;
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/schedstat", (int)pid, de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue; /* a thread that just ended */
		if (fscanf(f, "%llu", &ns) == 1)
			sum += (int64_t)ns;
		fclose(f);
	}
	closedir(d);
	return sum;
}

/* Log-linear buckets: exact below 128 ns, then 64 per power of two (within
 * 1.6%), up to 2^40 ns; a bounded array however long the run. */
#define H_SUB_BITS 6
#define H_SUB (1u << H_SUB_BITS)
#define H_MAX_EXP 40
#define H_BUCKETS ((H_MAX_EXP - H_SUB_BITS + 1) * H_SUB + H_SUB)

typedef struct hist {
	uint64_t n, sum_ns;
	uint64_t b[H_BUCKETS];
} hist;

static unsigned h_index(uint64_t v)
{
	unsigned e;

	if (v < 2 * H_SUB)
		return (unsigned)v;
	if (v >= (1ull << H_MAX_EXP))
		return H_BUCKETS - 1;
	e = 63u - (unsigned)__builtin_clzll(v);
	return (e - H_SUB_BITS + 1) * H_SUB + (unsigned)((v >> (e - H_SUB_BITS)) - H_SUB);
}

/* the middle of bucket i */
static double h_value(unsigned i)
{
	unsigned e, sub;

	if (i < 2 * H_SUB)
		return i;
	e = i / H_SUB + H_SUB_BITS - 1;
	sub = i % H_SUB + H_SUB;
	return (double)((uint64_t)sub << (e - H_SUB_BITS)) +
	       (double)(1ull << (e - H_SUB_BITS)) / 2.0;
}

static void h_add(hist *h, uint64_t ns)
{
	h->b[h_index(ns)]++;
	h->n++;
	h->sum_ns += ns;
}

static double h_quantile_us(const hist *h, double q)
{
	uint64_t want, seen = 0;

	if (!h->n)
		return 0;
	want = (uint64_t)(q * (double)(h->n - 1)) + 1;
	for (unsigned i = 0; i < H_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want)
			return h_value(i) / NS_US;
	}
	return h_value(H_BUCKETS - 1) / NS_US;
}

/* ---- the little of MessagePack the client needs ---- */

static size_t mp_put_str(uint8_t *p, const char *s, size_t n)
{
	size_t h;

	if (n < 32) {
		p[0] = (uint8_t)(0xa0 | n);
		h = 1;
	} else if (n < 256) {
		p[0] = 0xd9;
		p[1] = (uint8_t)n;
		h = 2;
	} else {
		p[0] = 0xda;
		p[1] = (uint8_t)(n >> 8);
		p[2] = (uint8_t)n;
		h = 3;
	}
	memcpy(p + h, s, n);
	return h + n;
}

static uint64_t be(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | *p++;
	return v;
}

/* The header of the value at p: its own length in bytes (0 if p..end is too
 * short to hold it), the payload bytes that follow it, and the number of
 * values it contains (array elements, map keys and values). -1 if invalid. */
static int mp_head(const uint8_t *p, const uint8_t *end, size_t *hlen, uint64_t *payload,
		   uint64_t *children)
{
	uint8_t t;
	unsigned k; /* bytes of the length field */

	*payload = *children = 0;
	*hlen = 0;
	if (p >= end)
		return 0;
	t = *p;
	*hlen = 1;
	if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3)
		return 0; /* fixint, nil, bool */
	if (t <= 0x8f) {
		*children = 2u * (t & 0x0f);
		return 0;
	}
	if (t <= 0x9f) {
		*children = t & 0x0f;
		return 0;
	}
	if (t <= 0xbf) {
		*payload = t & 0x1f;
		return 0;
	}
	if (t == 0xc1)
		return -1;
	if ((t >= 0xca && t <= 0xd3)) { /* numbers: 0xca float32 .. 0xd3 int64 */
		static const uint8_t size[] = { 4, 8, 1, 2, 4, 8, 1, 2, 4, 8 };

		*payload = size[t - 0xca];
		return 0;
	}
	if (t >= 0xd4 && t <= 0xd8) { /* fixext: a type byte and 1..16 bytes */
		*payload = 1 + (1u << (t - 0xd4));
		return 0;
	}
	switch (t) {
	case 0xc4: case 0xc7: case 0xd9: k = 1; break; /* bin8, ext8, str8 */
	case 0xc5: case 0xc8: case 0xda: case 0xdc: case 0xde: k = 2; break;
	default: k = 4; break; /* bin32, ext32, str32, array32, map32 */
	}
	if (end - p < 1 + (ptrdiff_t)k) {
		*hlen = 0;
		return 0;
	}
	*hlen = 1 + k;
	if (t == 0xdc || t == 0xdd)
		*children = be(p + 1, k);
	else if (t == 0xde || t == 0xdf)
		*children = 2 * be(p + 1, k);
	else
		*payload = be(p + 1, k) + (t >= 0xc7 && t <= 0xc9); /* ext: + its type byte */
	return 0;
}

/* Length of the complete value at p: > 0, 0 if incomplete, -1 if invalid.
 * Iterative (a count of values still to skip), so nesting costs no stack. */
static ssize_t mp_skip(const uint8_t *p, const uint8_t *end)
{
	const uint8_t *q = p;
	uint64_t todo = 1;

	while (todo) {
		size_t hlen;
		uint64_t payload, children;

		if (mp_head(q, end, &hlen, &payload, &children) < 0)
			return -1;
		if (!hlen || (uint64_t)(end - q) - hlen < payload)
			return 0;
		q += hlen + payload;
		todo += children - 1;
		if (todo > IN_MAX)
			return -1;
	}
	return q - p;
}

/* An unsigned integer value: 0, or -1 if the value at p is not one. */
static int mp_uint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	const uint8_t *q = *p;

	if (q < end && *q <= 0x7f) {
		*v = *q;
		*p = q + 1;
		return 0;
	}
	if (q < end && *q >= 0xcc && *q <= 0xcf) {
		unsigned k = 1u << (*q - 0xcc);

		if (end - q < 1 + (ptrdiff_t)k)
			return -1;
		*v = be(q + 1, k);
		*p = q + 1 + k;
		return 0;
	}
	return -1;
}

/* ---- the request, and what a right reply is ---- */

typedef enum { P_RPC, P_RESP } proto;
typedef enum { X_PARAMS, X_PARAM, X_STR, X_REQUEST } expect_kind;

typedef struct request {
	proto proto;
	uint8_t bytes[MAX_REQ]; /* the request; RPC: msgid at ID_OFF, patched per send */
	size_t len;
	uint8_t reply[MAX_REQ]; /* RPC: the expected result value; RESP: the reply */
	size_t reply_len;
	expect_kind expect;
	char what[128]; /* for messages */
} request;

#define ID_OFF 3 /* 0x94 0x00 0xce [4 bytes of msgid] */

static int request_rpc(request *rq, const char *method, const char *str, const char *expect)
{
	size_t ml = strlen(method), sl = str ? strlen(str) : 0;
	uint8_t *p = rq->bytes, *params;

	if (ml > MAX_ARG || sl > MAX_ARG)
		return -EINVAL;
	rq->proto = P_RPC;
	*p++ = 0x94;
	*p++ = 0x00;
	*p++ = 0xce; /* msgid always as uint32: every request has the same length */
	p += 4;
	p += mp_put_str(p, method, ml);
	params = p;
	*p++ = str ? 0x91 : 0x90;
	if (str)
		p += mp_put_str(p, str, sl);
	rq->len = (size_t)(p - rq->bytes);
	snprintf(rq->what, sizeof(rq->what), "%s", method);

	if (!strcmp(expect, "params")) {
		rq->expect = X_PARAMS;
		rq->reply_len = (size_t)(p - params);
		memcpy(rq->reply, params, rq->reply_len);
	} else if (!strcmp(expect, "param")) {
		rq->expect = X_PARAM;
		if (str) {
			rq->reply_len = mp_put_str(rq->reply, str, sl);
		} else {
			rq->reply[0] = 0xc0;
			rq->reply_len = 1;
		}
	} else if (!strncmp(expect, "str:", 4) && strlen(expect + 4) <= MAX_ARG) {
		rq->expect = X_STR;
		rq->reply_len = mp_put_str(rq->reply, expect + 4, strlen(expect + 4));
	} else if (!strcmp(expect, "request")) {
		rq->expect = X_REQUEST;
	} else {
		return -EINVAL;
	}
	return 0;
}

static size_t resp_bulk(uint8_t *p, const char *s)
{
	return (size_t)sprintf((char *)p, "$%zu\r\n%s\r\n", strlen(s), s);
}

static int request_resp(request *rq, const char *cmd, const char *key, const char *value)
{
	rq->proto = P_RESP;
	if (!strcmp(cmd, "ping")) {
		rq->len = (size_t)sprintf((char *)rq->bytes, "*1\r\n$4\r\nPING\r\n");
		rq->reply_len = (size_t)sprintf((char *)rq->reply, "+PONG\r\n");
	} else if (!strcmp(cmd, "get") && key && value && strlen(key) <= MAX_ARG &&
		   strlen(value) <= MAX_ARG) {
		rq->len = (size_t)sprintf((char *)rq->bytes, "*2\r\n$3\r\nGET\r\n");
		rq->len += resp_bulk(rq->bytes + rq->len, key);
		rq->reply_len = resp_bulk(rq->reply, value);
	} else {
		return -EINVAL;
	}
	snprintf(rq->what, sizeof(rq->what), "redis %s", cmd);
	return 0;
}

static void request_set_id(const request *rq, uint8_t *p, uint32_t id)
{
	p[ID_OFF] = (uint8_t)(id >> 24);
	p[ID_OFF + 1] = (uint8_t)(id >> 16);
	p[ID_OFF + 2] = (uint8_t)(id >> 8);
	p[ID_OFF + 3] = (uint8_t)id;
}

static void die_bad_reply(const request *rq, int conn, const char *why, const uint8_t *p,
			  size_t n)
{
	fprintf(stderr, "bench-load: %s, connection %d: wrong reply: %s; bytes:", rq->what, conn,
		why);
	for (size_t i = 0; i < n && i < 64; i++)
		fprintf(stderr, " %02x", p[i]);
	fprintf(stderr, "%s\n", n > 64 ? " ..." : "");
	exit(1);
}

/* Checks one complete RPC reply (p, n); returns its msgid. */
static uint32_t rpc_check(const request *rq, int conn, const uint8_t *p, size_t n)
{
	const uint8_t *q = p, *end = p + n;
	uint64_t type, id;
	ssize_t len;

	if (*q != 0x94)
		die_bad_reply(rq, conn, "not an array of 4", p, n);
	q++;
	if (mp_uint(&q, end, &type) < 0 || mp_uint(&q, end, &id) < 0 || id > UINT32_MAX)
		die_bad_reply(rq, conn, "no type and msgid", p, n);
	if (rq->expect == X_REQUEST) {
		uint8_t want[MAX_REQ];

		memcpy(want, rq->bytes, rq->len);
		request_set_id(rq, want, (uint32_t)id);
		if (n != rq->len || memcmp(p, want, n))
			die_bad_reply(rq, conn, "not the request sent", p, n);
		return (uint32_t)id;
	}
	if (type != 1)
		die_bad_reply(rq, conn, "not a response", p, n);
	if (q >= end || *q != 0xc0)
		die_bad_reply(rq, conn, "an error", p, n);
	q++;
	len = mp_skip(q, end);
	if (len <= 0 || q + len != end || (size_t)len != rq->reply_len ||
	    memcmp(q, rq->reply, rq->reply_len))
		die_bad_reply(rq, conn, "not the expected result", p, n);
	return (uint32_t)id;
}

/* ---- connections ---- */

typedef struct lconn {
	int fd;
	int index;
	uint32_t base; /* first msgid of this conn */
	uint32_t next; /* msgid offset of the next batch, within ID_SPAN */
	uint32_t batch_first; /* msgid of the current batch's first request */
	uint32_t inflight; /* of the current batch */
	uint32_t resp_next; /* RESP: which of the batch the next reply answers */
	uint64_t sent_ns; /* when the current batch was written */
	bool answered[MAX_DEPTH];
	uint8_t *in;
	size_t in_len;
	uint8_t *out; /* the batch; out_off: how much of it the socket took */
	size_t out_len, out_off;
	bool watch_out; /* EPOLLOUT is watched */
} lconn;

typedef struct run_cfg {
	const char *socket;
	request rq;
	int conns;
	uint32_t depth;
	double seconds, warmup;
	uint64_t requests; /* 0: run for seconds */
	pid_t server; /* 0: unknown */
} run_cfg;

typedef struct run_state {
	const run_cfg *cfg;
	int ep;
	lconn *c;
	bool sending; /* new batches are still sent */
	uint64_t t_measure, t_end; /* ns */
	uint64_t sent_measured; /* requests sent since t_measure */
	uint64_t first_ns; /* latency of the very first reply */
	bool have_first;
	uint64_t last_reply_ns;
	uint64_t verified;
	hist h;
} run_state;

static int connect_unix(const char *path, bool nonblock)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

/* Writes what the socket takes of c's batch. EPOLLOUT is watched only while
 * some is left, so the usual batch written whole costs no epoll_ctl. */
static void conn_flush(run_state *st, lconn *c)
{
	bool rest;

	while (c->out_off < c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			fprintf(stderr, "bench-load: connection %d: write: %s\n", c->index,
				strerror(errno));
			exit(1);
		}
		c->out_off += (size_t)n;
	}
	rest = c->out_off < c->out_len;
	if (rest != c->watch_out) {
		struct epoll_event ev = { .events = EPOLLIN | (rest ? EPOLLOUT : 0), .data.ptr = c };

		epoll_ctl(st->ep, EPOLL_CTL_MOD, c->fd, &ev);
		c->watch_out = rest;
	}
}

static void conn_send_batch(run_state *st, lconn *c, uint64_t now)
{
	const request *rq = &st->cfg->rq;
	uint32_t d = st->cfg->depth;

	if (c->next + d > ID_SPAN)
		c->next = 0;
	c->batch_first = c->base + c->next;
	c->next += d;
	for (uint32_t i = 0; i < d; i++) {
		uint8_t *p = c->out + (size_t)i * rq->len;

		memcpy(p, rq->bytes, rq->len);
		if (rq->proto == P_RPC)
			request_set_id(rq, p, c->batch_first + i);
		c->answered[i] = false;
	}
	c->out_len = (size_t)d * rq->len;
	c->out_off = 0;
	c->inflight = d;
	c->resp_next = 0;
	c->sent_ns = now;
	if (now >= st->t_measure)
		st->sent_measured += d;
	conn_flush(st, c);
}

/* One reply to request i of c's batch arrived at now. */
static void conn_answered(run_state *st, lconn *c, uint32_t i, uint64_t now)
{
	uint64_t lat = now - c->sent_ns;

	c->answered[i] = true;
	c->inflight--;
	st->verified++;
	st->last_reply_ns = now;
	if (!st->have_first) {
		/* the first reply of the run is its own figure, not in the histogram */
		st->have_first = true;
		st->first_ns = lat;
		return;
	}
	if (now >= st->t_measure && now < st->t_end &&
	    (!st->cfg->requests || st->h.n < st->cfg->requests))
		h_add(&st->h, lat);
}

static void conn_parse(run_state *st, lconn *c, uint64_t now)
{
	const request *rq = &st->cfg->rq;
	size_t off = 0;

	while (off < c->in_len) {
		const uint8_t *p = c->in + off;
		size_t avail = c->in_len - off, n;
		uint32_t i;

		if (rq->proto == P_RESP) {
			n = rq->reply_len;
			if (memcmp(p, rq->reply, avail < n ? avail : n))
				die_bad_reply(rq, c->index, "not the expected reply", p, avail);
			if (avail < n)
				break;
			if (!c->inflight)
				die_bad_reply(rq, c->index, "a reply to nothing", p, n);
			i = c->resp_next++;
		} else {
			ssize_t len = mp_skip(p, p + avail);
			uint32_t id;

			if (len < 0)
				die_bad_reply(rq, c->index, "not MessagePack", p, avail);
			if (len == 0)
				break;
			n = (size_t)len;
			id = rpc_check(rq, c->index, p, n);
			i = id - c->batch_first;
			if (id < c->batch_first || i >= st->cfg->depth || c->answered[i])
				die_bad_reply(rq, c->index, "a msgid that was not asked", p, n);
		}
		conn_answered(st, c, i, now);
		off += n;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
}

static void conn_readable(run_state *st, lconn *c)
{
	ssize_t n;
	uint64_t now;

	if (c->in_len >= IN_MAX) {
		fprintf(stderr, "bench-load: connection %d: a reply over %d bytes\n", c->index,
			IN_MAX);
		exit(1);
	}
	n = read(c->fd, c->in + c->in_len, IN_MAX - c->in_len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		fprintf(stderr, "bench-load: %s, connection %d: the server %s\n", st->cfg->rq.what,
			c->index, n == 0 ? "closed the connection" : strerror(errno));
		exit(1);
	}
	/* one time for every reply of this read: they arrived together */
	now = now_ns();
	c->in_len += (size_t)n;
	conn_parse(st, c, now);
	if (c->inflight)
		return;
	if (st->cfg->requests && st->sent_measured >= st->cfg->requests)
		st->sending = false;
	if (now >= st->t_end)
		st->sending = false;
	if (st->sending)
		conn_send_batch(st, c, now);
}

static int run(const run_cfg *cfg)
{
	run_state st = { .cfg = cfg, .sending = true };
	struct epoll_event evs[64];
	uint64_t t0, done_ns, outstanding, cpu0;
	int64_t srv0 = -1, srv1 = -1;
	double secs;

	st.c = calloc((size_t)cfg->conns, sizeof(*st.c));
	st.ep = epoll_create1(EPOLL_CLOEXEC);
	if (!st.c || st.ep < 0) {
		perror("bench-load");
		return 1;
	}
	for (int i = 0; i < cfg->conns; i++) {
		lconn *c = &st.c[i];
		uint64_t deadline = now_ns() + STALL_NS;
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		int fd;

		/* a full listen backlog says EAGAIN: the server has not accepted yet */
		while ((fd = connect_unix(cfg->socket, true)) == -EAGAIN && now_ns() < deadline)
			usleep(1000);
		if (fd < 0) {
			fprintf(stderr, "bench-load: connect %s: %s\n", cfg->socket, strerror(-fd));
			return 1;
		}
		c->fd = fd;
		c->index = i;
		c->base = (uint32_t)i * ID_SPAN;
		c->in = malloc(IN_MAX);
		c->out = malloc((size_t)cfg->depth * cfg->rq.len);
		if (!c->in || !c->out || epoll_ctl(st.ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			perror("bench-load");
			return 1;
		}
	}

	if (cfg->server)
		srv0 = proc_cpu_ns(cfg->server);
	cpu0 = cpu_ns();
	t0 = now_ns();
	st.t_measure = t0 + (uint64_t)(cfg->warmup * NS_S);
	st.t_end = cfg->requests ? UINT64_MAX : st.t_measure + (uint64_t)(cfg->seconds * NS_S);
	st.last_reply_ns = t0;
	for (int i = 0; i < cfg->conns; i++)
		conn_send_batch(&st, &st.c[i], t0);

	for (;;) {
		uint64_t now;
		int n;

		outstanding = 0;
		for (int i = 0; i < cfg->conns; i++)
			outstanding += st.c[i].inflight;
		if (!st.sending && !outstanding)
			break;
		n = epoll_wait(st.ep, evs, 64, 100);
		if (n < 0 && errno != EINTR) {
			perror("bench-load: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			lconn *c = evs[i].data.ptr;

			if (evs[i].events & EPOLLOUT)
				conn_flush(&st, c);
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				conn_readable(&st, c);
		}
		now = now_ns();
		if (now >= st.t_end)
			st.sending = false;
		if (now - st.last_reply_ns > STALL_NS) {
			fprintf(stderr, "bench-load: %s: no reply for %llu s\n", cfg->rq.what,
				STALL_NS / NS_S);
			return 1;
		}
	}
	cpu0 = cpu_ns() - cpu0;
	if (cfg->server)
		srv1 = proc_cpu_ns(cfg->server);
	done_ns = cfg->requests ? st.last_reply_ns : st.t_end;
	secs = (double)(done_ns - st.t_measure) / NS_S;
	printf("{\"what\": \"%s\", \"conns\": %d, \"depth\": %u, \"seconds\": %.4f, "
	       "\"replies\": %" PRIu64 ", \"rps\": %.1f, \"p50_us\": %.2f, \"p99_us\": %.2f, "
	       "\"mean_us\": %.2f, \"first_us\": %.2f, \"verified\": %" PRIu64 ", "
	       "\"client_cpu_us\": %.3f, \"server_cpu_us\": %.3f}\n",
	       cfg->rq.what, cfg->conns, cfg->depth, secs, st.h.n,
	       secs > 0 ? (double)st.h.n / secs : 0.0, h_quantile_us(&st.h, 0.5),
	       h_quantile_us(&st.h, 0.99), st.h.n ? (double)st.h.sum_ns / st.h.n / NS_US : 0.0,
	       (double)st.first_ns / NS_US, st.verified, (double)cpu0 / NS_US / (double)st.verified,
	       srv0 >= 0 && srv1 >= srv0 ? (double)(srv1 - srv0) / NS_US / (double)st.verified
					  : -1.0);
	for (int i = 0; i < cfg->conns; i++) {
		close(st.c[i].fd);
		free(st.c[i].in);
		free(st.c[i].out);
	}
	free(st.c);
	close(st.ep);
	return st.verified ? 0 : 1;
}

/* ---- start: exec to READY and to the first reply ---- */

typedef struct start_cfg {
	const char *socket;
	request rq;
	const char *ready; /* NULL: do not wait for a line */
	double timeout;
	char **argv;
} start_cfg;

/* Reads what the child wrote to stderr; true once a line held the word. */
static bool start_scan(int fd, const char *word, char *line, size_t *len, size_t cap)
{
	char buf[4096];
	ssize_t n;
	bool seen = false;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				line[*len] = '\0';
				if (word && strstr(line, word))
					seen = true;
				*len = 0;
			} else if (*len < cap - 1) {
				line[(*len)++] = buf[i];
			}
		}
	}
	return seen;
}

/* SIGTERM, and the child must exit 0 within 5 s. Its stderr is drained
 * meanwhile: a daemon logging its shutdown must not block on a full pipe. */
static int start_stop(pid_t pid, int errfd)
{
	int status;
	uint64_t deadline = now_ns() + 5 * NS_S;
	char buf[4096];

	kill(pid, SIGTERM);
	while (waitpid(pid, &status, WNOHANG) == 0) {
		while (read(errfd, buf, sizeof(buf)) > 0)
			;
		if (now_ns() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			fprintf(stderr, "bench-load: the server ignored SIGTERM for 5 s\n");
			return -1;
		}
		usleep(1000);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "bench-load: the server exited with status %d\n", status);
		return -1;
	}
	return 0;
}

static int start(const start_cfg *cfg)
{
	int errp[2], fd = -1, rc = 1;
	uint64_t t0, deadline, ready_ns = 0, reply_ns = 0;
	int64_t reply_cpu = -1;
	uint8_t rbuf[IN_CHUNK];
	size_t rlen = 0, line_len = 0;
	char line[4096];
	pid_t pid;

	unlink(cfg->socket);
	if (pipe2(errp, O_CLOEXEC) < 0) {
		perror("bench-load: pipe");
		return 1;
	}
	t0 = now_ns();
	pid = fork();
	if (pid < 0) {
		perror("bench-load: fork");
		return 1;
	}
	if (pid == 0) {
		dup2(errp[1], STDERR_FILENO);
		execvp(cfg->argv[0], cfg->argv);
		fprintf(stderr, "exec %s: %s\n", cfg->argv[0], strerror(errno));
		_exit(127);
	}
	close(errp[1]);
	fcntl(errp[0], F_SETFL, O_NONBLOCK);
	deadline = t0 + (uint64_t)(cfg->timeout * NS_S);

	while ((cfg->ready && !ready_ns) || !reply_ns) {
		struct pollfd pf[2] = { { .fd = errp[0], .events = POLLIN },
					{ .fd = fd, .events = POLLIN } };
		/* not connected yet: poll connect every 50 us */
		struct timespec tmo = { 0, fd < 0 && !reply_ns ? 50000 : 1000000 };
		uint64_t now;

		if (!reply_ns && fd < 0) {
			fd = connect_unix(cfg->socket, false);
			if (fd >= 0) {
				uint8_t req[MAX_REQ];

				memcpy(req, cfg->rq.bytes, cfg->rq.len);
				if (cfg->rq.proto == P_RPC)
					request_set_id(&cfg->rq, req, 1);
				if (write(fd, req, cfg->rq.len) != (ssize_t)cfg->rq.len) {
					perror("bench-load: write");
					goto out;
				}
				pf[1].fd = fd;
			}
		}
		if (ppoll(pf, fd >= 0 && !reply_ns ? 2 : 1, &tmo, NULL) < 0 && errno != EINTR) {
			perror("bench-load: ppoll");
			goto out;
		}
		now = now_ns();
		if ((pf[0].revents & (POLLIN | POLLHUP)) &&
		    start_scan(errp[0], cfg->ready, line, &line_len, sizeof(line)) && !ready_ns)
			ready_ns = now - t0;
		if (fd >= 0 && !reply_ns && (pf[1].revents & (POLLIN | POLLHUP))) {
			ssize_t n = read(fd, rbuf + rlen, sizeof(rbuf) - rlen);
			size_t want;

			if (n <= 0) {
				fprintf(stderr, "bench-load: %s: the server closed the connection\n",
					cfg->rq.what);
				goto out;
			}
			rlen += (size_t)n;
			if (cfg->rq.proto == P_RESP) {
				want = cfg->rq.reply_len;
				if (memcmp(rbuf, cfg->rq.reply, rlen < want ? rlen : want))
					die_bad_reply(&cfg->rq, 0, "not the expected reply", rbuf, rlen);
			} else {
				ssize_t len = mp_skip(rbuf, rbuf + rlen);

				if (len < 0)
					die_bad_reply(&cfg->rq, 0, "not MessagePack", rbuf, rlen);
				want = len ? (size_t)len : SIZE_MAX;
			}
			if (rlen >= want) {
				if (cfg->rq.proto == P_RPC && rpc_check(&cfg->rq, 0, rbuf, want) != 1)
					die_bad_reply(&cfg->rq, 0, "another msgid", rbuf, want);
				reply_ns = now - t0;
				reply_cpu = proc_cpu_ns(pid);
			}
		}
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			fprintf(stderr, "bench-load: %s exited during start-up\n", cfg->argv[0]);
			pid = -1;
			goto out;
		}
		if (now > deadline) {
			fprintf(stderr, "bench-load: %s: no %s in %.1f s\n", cfg->argv[0],
				reply_ns ? "ready line" : "reply", cfg->timeout);
			goto out;
		}
	}
	printf("{\"ready_us\": %.1f, \"reply_us\": %.1f, \"cpu_us\": %.1f}\n",
	       (double)ready_ns / NS_US, (double)reply_ns / NS_US,
	       reply_cpu >= 0 ? (double)reply_cpu / NS_US : -1.0);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (pid > 0 && start_stop(pid, errp[0]) < 0)
		rc = 1;
	close(errp[0]);
	return rc;
}

/* ---- command line ---- */

static void usage(FILE *f)
{
	fprintf(f, "usage: bench-load run --socket PATH REQUEST [--conns N] [--depth D]\n"
		   "                      [--seconds T] [--warmup T] [--requests N] [--server-pid PID]\n"
		   "       bench-load start --socket PATH REQUEST [--ready WORD] [--timeout T]"
		   " -- CMD [ARG]...\n"
		   "REQUEST: --rpc METHOD [--str S] --expect params|param|str:TEXT|request\n"
		   "       | --redis ping | --redis get --key K --value V\n");
}

static bool num_arg(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	enum { O_SOCKET = 256, O_RPC, O_STR, O_EXPECT, O_REDIS, O_KEY, O_VALUE, O_CONNS, O_DEPTH,
	       O_SECONDS, O_WARMUP, O_REQUESTS, O_READY, O_TIMEOUT, O_SERVER_PID };
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, O_SOCKET },
		{ "rpc", required_argument, NULL, O_RPC },
		{ "str", required_argument, NULL, O_STR },
		{ "expect", required_argument, NULL, O_EXPECT },
		{ "redis", required_argument, NULL, O_REDIS },
		{ "key", required_argument, NULL, O_KEY },
		{ "value", required_argument, NULL, O_VALUE },
		{ "conns", required_argument, NULL, O_CONNS },
		{ "depth", required_argument, NULL, O_DEPTH },
		{ "seconds", required_argument, NULL, O_SECONDS },
		{ "warmup", required_argument, NULL, O_WARMUP },
		{ "requests", required_argument, NULL, O_REQUESTS },
		{ "ready", required_argument, NULL, O_READY },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "server-pid", required_argument, NULL, O_SERVER_PID },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *rpc = NULL, *str = NULL, *expect = NULL, *redis = NULL, *key = NULL,
		   *value = NULL;
	static run_cfg rc = { .conns = 1, .depth = 1, .seconds = 1.0, .warmup = 0.2 };
	static start_cfg sc = { .timeout = 30.0 };
	double v;
	bool is_run;
	int opt;

	if (argc < 2 || (strcmp(argv[1], "run") && strcmp(argv[1], "start"))) {
		usage(stderr);
		return 2;
	}
	is_run = !strcmp(argv[1], "run");
	optind = 2;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case O_SOCKET: rc.socket = sc.socket = optarg; break;
		case O_RPC: rpc = optarg; break;
		case O_STR: str = optarg; break;
		case O_EXPECT: expect = optarg; break;
		case O_REDIS: redis = optarg; break;
		case O_KEY: key = optarg; break;
		case O_VALUE: value = optarg; break;
		case O_READY: sc.ready = optarg; break;
		case O_CONNS:
			if (!num_arg(optarg, 1, MAX_CONNS, &v))
				goto bad;
			rc.conns = (int)v;
			break;
		case O_DEPTH:
			if (!num_arg(optarg, 1, MAX_DEPTH, &v))
				goto bad;
			rc.depth = (uint32_t)v;
			break;
		case O_SECONDS:
			if (!num_arg(optarg, 0.001, 3600, &rc.seconds))
				goto bad;
			break;
		case O_WARMUP:
			if (!num_arg(optarg, 0, 3600, &rc.warmup))
				goto bad;
			break;
		case O_REQUESTS:
			if (!num_arg(optarg, 1, 1e9, &v))
				goto bad;
			rc.requests = (uint64_t)v;
			break;
		case O_SERVER_PID:
			if (!num_arg(optarg, 1, INT_MAX, &v))
				goto bad;
			rc.server = (pid_t)v;
			break;
		case O_TIMEOUT:
			if (!num_arg(optarg, 0.01, 3600, &sc.timeout))
				goto bad;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (!rc.socket || !!rpc == !!redis)
		goto bad;
	if (rpc ? !expect || request_rpc(&rc.rq, rpc, str, expect) < 0
		: request_resp(&rc.rq, redis, key, value) < 0)
		goto bad;
	signal(SIGPIPE, SIG_IGN);
	if (is_run)
		return optind == argc ? run(&rc) : (usage(stderr), 2);
	if (optind >= argc)
		goto bad;
	sc.rq = rc.rq;
	sc.argv = argv + optind;
	return start(&sc);
bad:
	usage(stderr);
	return 2;
}
