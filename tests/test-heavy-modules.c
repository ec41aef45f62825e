/*
 * test-heavy-modules.c - the http, image and text modules, for real.
 *
 * The same approach as test-modules.c (module-harness.c): the built .so is
 * dlopened the daemon's way and its ops are called through the daemon's own
 * call.c. Each module's tests are compiled in only when meson built it
 * (HAVE_MODULE_HTTP, _IMAGE, _TEXT).
 *
 *  - http talks only to a small HTTP/1.1 server this file runs on 127.0.0.1
 *    in a thread of the test process, with one route per behaviour (echo,
 *    slow, big, close-delimited, redirects, a header flood); every wait in it
 *    is bounded, and it stops with its test.
 *  - image makes its PNG, JPEG and WebP inputs with libvips itself and reads
 *    the outputs back with libvips.
 *  - text checks known answers on real non-ASCII data.
 */
#include <check.h>
/* check.h defines a deprecated fail() macro that would hide lmms_host.fail. */
#undef fail
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef HAVE_MODULE_IMAGE
#include <vips/vips.h>
#endif

#include "module-harness.h"

/* Helpers for more than one module's tests; a build may have only one. */
#define SHARED __attribute__((unused))

/* The value under key in a decoded result map, or NULL. */
static SHARED const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
	ck_assert_int_eq(m->type, MSGPACK_OBJECT_MAP);
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		const msgpack_object *k = &m->via.map.ptr[i].key;

		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(key) &&
		    memcmp(k->via.str.ptr, key, k->via.str.size) == 0)
			return &m->via.map.ptr[i].val;
	}
	return NULL;
}

static SHARED bool obj_is_str(const msgpack_object *o, const char *want)
{
	return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(want) &&
	       memcmp(o->via.str.ptr, want, o->via.str.size) == 0;
}

static SHARED void pack_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

/*
 * BLOCKING ops run on several pool threads at once: op with params p from
 * CONC_THREADS threads together, CONC_CALLS calls each, all of which must
 * succeed (and ASan/UBSan stay quiet). p is consumed.
 */
#define CONC_THREADS 4
#define CONC_CALLS 8

struct conc {
	const module *m;
	const lmms_op *op;
	const params *p;
	int ok; /* calls answered without error */
};

static void *conc_main(void *data)
{
	struct conc *x = data;

	/* No Check asserts off the test's own thread: count, and let it judge. */
	for (int i = 0; i < CONC_CALLS; i++) {
		msgpack_unpacked up;
		const char *msg;
		lmms_call c;

		msgpack_unpacked_init(&up);
		if (msgpack_unpack_next(&up, x->p->sb.data, x->p->sb.size, NULL) ==
		    MSGPACK_UNPACK_SUCCESS) {
			call_init(&c, &up.data, RESULT_MAX, x->m->d->name);
			if (call_finish(&c, x->op->fn(x->m->host, &c, x->m->state), &msg) == PROTO_OK)
				x->ok++;
			call_fini(&c);
		}
		msgpack_unpacked_destroy(&up);
	}
	return NULL;
}

static SHARED void run_concurrently(module *m, const char *op, params *p)
{
	struct conc x[CONC_THREADS];
	pthread_t th[CONC_THREADS];

	for (int i = 0; i < CONC_THREADS; i++) {
		x[i] = (struct conc){ .m = m, .op = op_find(m, op), .p = p };
		ck_assert_int_eq(pthread_create(&th[i], NULL, conc_main, &x[i]), 0);
	}
	for (int i = 0; i < CONC_THREADS; i++) {
		pthread_join(th[i], NULL);
		ck_assert_msg(x[i].ok == CONC_CALLS, "%s: thread %d: %d of %d calls succeeded", op, i,
			      x[i].ok, CONC_CALLS);
	}
	params_free(p);
}

/* ==== http ================================================================ */
#ifdef HAVE_MODULE_HTTP

#define SRV_IO_MS 5000 /* longest the server waits for a client */
#define SRV_REQ_MAX 65536

typedef struct srv {
	int lfd;
	int port;
	int stop[2];
	pthread_t th;
	pthread_mutex_t lock;
	char last[SRV_REQ_MAX]; /* the last request's head and body, for asserts */
	size_t last_len;
} srv;

static void send_all(int fd, const void *p, size_t n)
{
	const char *b = p;

	while (n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);

		if (w <= 0)
			return; /* the client gave up (a cap or a timeout): fine */
		b += w;
		n -= (size_t)w;
	}
}

static void send_str(int fd, const char *s)
{
	send_all(fd, s, strlen(s));
}

/* Reads until the client closes or SRV_IO_MS pass. */
static void wait_for_close(int fd)
{
	char buf[256];
	struct pollfd p = { .fd = fd, .events = POLLIN };

	while (poll(&p, 1, SRV_IO_MS) == 1 && read(fd, buf, sizeof(buf)) > 0)
		;
}

/* Request header value (case-insensitive name), copied into out. */
static void req_header(const char *req, const char *name, char *out, size_t cap)
{
	size_t n = strlen(name);
	const char *p = req;

	out[0] = '\0';
	while ((p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			const char *v = p + n + 1, *e;

			while (*v == ' ')
				v++;
			e = strstr(v, "\r\n");
			if (e && (size_t)(e - v) < cap) {
				memcpy(out, v, (size_t)(e - v));
				out[e - v] = '\0';
			}
			return;
		}
	}
}

static void respond(int fd, const char *req, const char *path, const char *body,
		    size_t body_len)
{
	char head[1024];

	if (strcmp(path, "/hello") == 0) {
		send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Dup: a\r\n"
			     "x-dup: b\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
	} else if (strcmp(path, "/echo") == 0) {
		char type[256], custom[256];

		req_header(req, "Content-Type", type, sizeof(type));
		req_header(req, "X-Custom", custom, sizeof(custom));
		snprintf(head, sizeof(head),
			 "HTTP/1.1 201 Created\r\nX-Got-Type: %s\r\nX-Got-Custom: %s\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			 type, custom, body_len);
		send_str(fd, head);
		send_all(fd, body, body_len);
	} else if (strcmp(path, "/missing") == 0) {
		send_str(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n"
			     "Connection: close\r\n\r\nnope");
	} else if (strcmp(path, "/slow") == 0) {
		wait_for_close(fd); /* never answers: the client must time out */
	} else if (strcmp(path, "/big") == 0 || strcmp(path, "/stream") == 0) {
		static char chunk[10000];
		bool stated = strcmp(path, "/big") == 0;

		memset(chunk, 'x', sizeof(chunk));
		/* /stream is close-delimited: no length to refuse up front. */
		send_str(fd, stated ? "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n"
				      "Connection: close\r\n\r\n" :
				      "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
		for (int i = 0; i < 10; i++)
			send_all(fd, chunk, sizeof(chunk));
	} else if (strcmp(path, "/redirect") == 0) {
		send_str(fd, "HTTP/1.1 302 Found\r\nLocation: /hello\r\nContent-Length: 0\r\n"
			     "Connection: close\r\n\r\n");
	} else if (strcmp(path, "/redirect-file") == 0) {
		send_str(fd, "HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\n"
			     "Content-Length: 0\r\nConnection: close\r\n\r\n");
	} else if (strcmp(path, "/loop") == 0) {
		send_str(fd, "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n"
			     "Connection: close\r\n\r\n");
	} else if (strcmp(path, "/flood") == 0) {
		send_str(fd, "HTTP/1.1 200 OK\r\n");
		for (int i = 0; i < 200; i++) {
			snprintf(head, sizeof(head), "X-N-%d: %d\r\n", i, i);
			send_str(fd, head);
		}
		send_str(fd, "Content-Length: 0\r\nConnection: close\r\n\r\n");
	} else {
		send_str(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
			     "Connection: close\r\n\r\n");
	}
}

/* One connection: read the head and a Content-Length body, answer, close. */
static void serve_one(srv *s, int fd)
{
	char *req = malloc(SRV_REQ_MAX + 1), path[256] = "", *end;
	size_t n = 0, head_len = 0, body_len = 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };

	ck_assert_ptr_nonnull(req);
	for (;;) {
		ssize_t r;

		req[n] = '\0';
		if ((end = strstr(req, "\r\n\r\n")) != NULL) {
			char cl[32];

			head_len = (size_t)(end - req) + 4;
			req_header(req, "Content-Length", cl, sizeof(cl));
			body_len = (size_t)strtoul(cl, NULL, 10);
			if (n >= head_len + body_len || head_len + body_len > SRV_REQ_MAX)
				break;
		}
		if (n == SRV_REQ_MAX || poll(&p, 1, SRV_IO_MS) != 1 ||
		    (r = read(fd, req + n, SRV_REQ_MAX - n)) <= 0)
			goto out;
		n += (size_t)r;
	}
	sscanf(req, "%*s %255s", path);
	pthread_mutex_lock(&s->lock);
	memcpy(s->last, req, n);
	s->last_len = n;
	pthread_mutex_unlock(&s->lock);
	respond(fd, req, path, req + head_len, n - head_len < body_len ? n - head_len : body_len);
out:
	free(req);
}

static void *srv_main(void *data)
{
	srv *s = data;

	for (;;) {
		struct pollfd p[2] = { { .fd = s->lfd, .events = POLLIN },
				       { .fd = s->stop[0], .events = POLLIN } };
		int fd;

		/* Bounded by the test's own timeout; the stop pipe ends it. */
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept(s->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		serve_one(s, fd);
		close(fd);
	}
	return NULL;
}

/* A listening socket on 127.0.0.1 with a port of the kernel's choosing. */
static int listen_loopback(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static void srv_start(srv *s)
{
	memset(s, 0, sizeof(*s));
	s->lfd = listen_loopback(&s->port);
	ck_assert_int_eq(pipe(s->stop), 0);
	pthread_mutex_init(&s->lock, NULL);
	ck_assert_int_eq(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void srv_stop(srv *s)
{
	ck_assert_int_eq(write(s->stop[1], "x", 1), 1);
	pthread_join(s->th, NULL);
	close(s->lfd);
	close(s->stop[0]);
	close(s->stop[1]);
	pthread_mutex_destroy(&s->lock);
}

static bool srv_saw(srv *s, const char *needle)
{
	bool r;

	pthread_mutex_lock(&s->lock);
	s->last[s->last_len < SRV_REQ_MAX ? s->last_len : SRV_REQ_MAX - 1] = '\0';
	r = strstr(s->last, needle) != NULL;
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* http.get [url, {key: int}] for one integer option (or none with key NULL). */
static int srv_port; /* of the running test's server, for U() */

/* The URL of path on the test's server (a static buffer). */
static const char *U(const char *path)
{
	static char buf[256];

	snprintf(buf, sizeof(buf), "http://127.0.0.1:%d%s", srv_port, path);
	return buf;
}

static void expect_response(const outcome *o, int64_t status, const char *body)
{
	const msgpack_object *st, *b;

	ck_assert_msg(o->err == PROTO_OK, "error %s: %s", proto_err_name(o->err), o->msg);
	ck_assert_uint_eq(o->v->via.map.size, 3);
	st = map_get(o->v, "status");
	b = map_get(o->v, "body");
	ck_assert_ptr_nonnull(st);
	ck_assert_int_eq(st->via.i64, status);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(b->type, MSGPACK_OBJECT_BIN);
	if (body) {
		ck_assert_uint_eq(b->via.bin.size, strlen(body));
		ck_assert_int_eq(memcmp(b->via.bin.ptr, body, b->via.bin.size), 0);
	}
}

static const msgpack_object *resp_header(const outcome *o, const char *name)
{
	const msgpack_object *h = map_get(o->v, "headers");

	ck_assert_ptr_nonnull(h);
	return map_get(h, name);
}

/* GET path from the test's server, expecting status and body. */
static void get_ok(module *m, const char *path, int64_t status, const char *body)
{
	params p;
	outcome o;

	run(m, "get", p_json(&p, "[\"%s\"]", U(path)), &o);
	expect_response(&o, status, body);
	outcome_free(&o);
}

/* Loads http with a fresh server; http_end undoes both. */
static void http_begin(module *m, srv *s)
{
	srv_start(s);
	srv_port = s->port;
	module_load(m, "LMMS_MODULE_DIR", "http");
}

static void http_end(module *m, srv *s)
{
	module_unload(m);
	srv_stop(s);
}

START_TEST(test_http_get)
{
	module m;
	params p;
	outcome o;
	srv s;

	http_begin(&m, &s);
	expect_documented(&m);
	ck_assert(op_find(&m, "get")->flags & LMMS_OP_BLOCKING);
	ck_assert(!(op_find(&m, "get")->flags & LMMS_OP_PURE));
	ck_assert(op_find(&m, "post")->flags & LMMS_OP_BLOCKING);

	run(&m, "get", p_json(&p, "[\"%s\"]", U("/hello")), &o);
	expect_response(&o, 200, "hello");
	/* names lower-cased, a repeated one joined in order */
	ck_assert(obj_is_str(resp_header(&o, "content-type"), "text/plain"));
	ck_assert(obj_is_str(resp_header(&o, "x-dup"), "a, b"));
	ck_assert(obj_is_str(resp_header(&o, "content-length"), "5"));
	ck_assert_ptr_null(resp_header(&o, "X-Dup"));
	outcome_free(&o);
	ck_assert(srv_saw(&s, "GET /hello HTTP/1.1\r\n"));
	ck_assert(srv_saw(&s, "User-Agent: lmms-http/1.0\r\n"));

	/* request headers, an empty value included */
	run(&m, "get",
	    p_json(&p, "[\"%s\", {\"headers\": {\"X-Custom\": \"v1\", \"X-Empty\": \"\"}}]",
		   U("/hello")),
	    &o);
	expect_response(&o, 200, "hello");
	outcome_free(&o);
	ck_assert(srv_saw(&s, "\r\nX-Custom: v1\r\n"));
	ck_assert(srv_saw(&s, "\r\nX-Empty:"));

	/* a 404 is an answer, not an error */
	get_ok(&m, "/missing", 404, "nope");
	run_concurrently(&m, "get", p_json(&p, "[\"%s\"]", U("/hello")));
	http_end(&m, &s);
}
END_TEST

START_TEST(test_http_post)
{
	static const char bin[] = { 'b', 0, 1, 2, '\r', '\n', (char)0xff };
	msgpack_packer *pk;
	module m;
	params p;
	outcome o;
	srv s;

	http_begin(&m, &s);
	/* a bin body with a type and a header; JSON has no bin, so by hand */
	pk = params_begin(&p, 3);
	pack_str(pk, U("/echo"));
	msgpack_pack_bin_with_body(pk, bin, sizeof(bin));
	msgpack_pack_map(pk, 2);
	pack_str(pk, "content_type");
	pack_str(pk, "application/x-test");
	pack_str(pk, "headers");
	msgpack_pack_map(pk, 1);
	pack_str(pk, "X-Custom");
	pack_str(pk, "yes");
	run(&m, "post", &p, &o);
	expect_response(&o, 201, NULL);
	{
		const msgpack_object *b = map_get(o.v, "body");

		ck_assert_uint_eq(b->via.bin.size, sizeof(bin));
		ck_assert_int_eq(memcmp(b->via.bin.ptr, bin, sizeof(bin)), 0);
	}
	ck_assert(obj_is_str(resp_header(&o, "x-got-type"), "application/x-test"));
	ck_assert(obj_is_str(resp_header(&o, "x-got-custom"), "yes"));
	outcome_free(&o);
	ck_assert(srv_saw(&s, "POST /echo HTTP/1.1\r\n"));
	ck_assert(!srv_saw(&s, "Expect:"));

	/* a str body, no type given: octet-stream, not curl's form default */
	run(&m, "post", p_json(&p, "[\"%s\", \"plain text\"]", U("/echo")), &o);
	expect_response(&o, 201, "plain text");
	ck_assert(obj_is_str(resp_header(&o, "x-got-type"), "application/octet-stream"));
	outcome_free(&o);

	/* the type as a header works too; both at once is ambiguous */
	run(&m, "post",
	    p_json(&p, "[\"%s\", \"\", {\"headers\": {\"content-type\": \"text/csv\"}}]",
		   U("/echo")),
	    &o);
	expect_response(&o, 201, "");
	ck_assert(obj_is_str(resp_header(&o, "x-got-type"), "text/csv"));
	outcome_free(&o);
	run_fails(&m, "post",
		  p_json(&p, "[\"%s\", \"x\", {\"headers\": {\"Content-Type\": \"a/b\"},"
					    " \"content_type\": \"c/d\"}]", U("/echo")),
		  PROTO_E_BAD_PARAMS, "not both");
	http_end(&m, &s);
}
END_TEST

START_TEST(test_http_timeout)
{
	module m;
	params p;
	srv s;

	http_begin(&m, &s);
	run_fails(&m, "get", p_json(&p, "[\"%s\", {\"timeout_ms\": 200}]", U("/slow")),
		  PROTO_E_MODULE_ERROR, "timed out after 200 ms");
	/* the module is fine afterwards */
	get_ok(&m, "/hello", 200, "hello");
	http_end(&m, &s);
}
END_TEST

START_TEST(test_http_size_cap)
{
	module m;
	params p;
	outcome o;
	srv s;

	http_begin(&m, &s);
	/* refused from Content-Length, before the body arrives */
	run_fails(&m, "get", p_json(&p, "[\"%s\", {\"max_bytes\": 1000}]", U("/big")),
		  PROTO_E_MODULE_ERROR, "exceeds max_bytes (1000)");
	/* no length stated: stopped while receiving */
	run_fails(&m, "get", p_json(&p, "[\"%s\", {\"max_bytes\": 1000}]", U("/stream")),
		  PROTO_E_MODULE_ERROR, "exceeds max_bytes (1000)");
	/* the default cap (1 MiB) lets 100000 bytes through; so does an exact one */
	run(&m, "get", p_json(&p, "[\"%s\"]", U("/stream")), &o);
	expect_response(&o, 200, NULL);
	ck_assert_uint_eq(map_get(o.v, "body")->via.bin.size, 100000);
	outcome_free(&o);
	run(&m, "get", p_json(&p, "[\"%s\", {\"max_bytes\": 100000}]", U("/big")), &o);
	expect_response(&o, 200, NULL);
	ck_assert_uint_eq(map_get(o.v, "body")->via.bin.size, 100000);
	outcome_free(&o);
	/* headers are bounded too */
	run_fails(&m, "get", p_json(&p, "[\"%s\"]", U("/flood")), PROTO_E_MODULE_ERROR,
		  "headers exceed");
	http_end(&m, &s);
}
END_TEST

START_TEST(test_http_refused)
{
	module m;
	params p;
	int fd;

	/* A port that was just ours and is closed now: nothing listens. */
	fd = listen_loopback(&srv_port);
	close(fd);
	module_load(&m, "LMMS_MODULE_DIR", "http");
	run_fails(&m, "get", p_json(&p, "[\"%s\"]", U("/")), PROTO_E_MODULE_ERROR, "connect");
	module_unload(&m);
}
END_TEST

START_TEST(test_http_redirects)
{
	module m;
	params p;
	outcome o;
	srv s;

	http_begin(&m, &s);
	/* not followed unless asked */
	run(&m, "get", p_json(&p, "[\"%s\"]", U("/redirect")), &o);
	expect_response(&o, 302, "");
	ck_assert(obj_is_str(resp_header(&o, "location"), "/hello"));
	outcome_free(&o);
	/* followed: the answer and headers are the last response's */
	run(&m, "get", p_json(&p, "[\"%s\", {\"follow\": true}]", U("/redirect")), &o);
	expect_response(&o, 200, "hello");
	ck_assert_ptr_null(resp_header(&o, "location"));
	ck_assert(obj_is_str(resp_header(&o, "x-dup"), "a, b"));
	outcome_free(&o);
	run_fails(&m, "get", p_json(&p, "[\"%s\", {\"follow\": true}]", U("/redirect-file")),
		  PROTO_E_MODULE_ERROR, "other than http or https");
	run_fails(&m, "get", p_json(&p, "[\"%s\", {\"follow\": true}]", U("/loop")),
		  PROTO_E_MODULE_ERROR, "more than 5 redirects");
	http_end(&m, &s);
}
END_TEST

START_TEST(test_http_bad_params)
{
	static const struct {
		const char *op, *params, *needle;
	} bad[] = {
		{ "get", "[]", "takes" },
		{ "get", "[80]", "URL" },
		{ "get", "[\"\"]", "empty" },
		{ "get", "[\"ftp://127.0.0.1/\"]", "http and https" },
		{ "get", "[\"file:///etc/passwd\"]", "http and https" },
		{ "get", "[\"gopher://x/\"]", "http and https" },
		{ "get", "[\"not a url\"]", "URL" },
		{ "get", "[\"127.0.0.1/no-scheme\"]", "URL" },
		{ "get", "[\"http://127.0.0.1:1/\", 1]", "options must be a map" },
		{ "get", "[\"http://127.0.0.1:1/\", {\"timeout_ms\": 0}]", "timeout_ms" },
		{ "get", "[\"http://127.0.0.1:1/\", {\"max_bytes\": -1}]", "max_bytes" },
		{ "get", "[\"http://127.0.0.1:1/\", {\"max_bytes\": 1099511627776}]", "max_bytes" },
		{ "get", "[\"http://127.0.0.1:1/\", {\"follow\": \"yes\"}]", "follow" },
		{ "get", "[\"http://127.0.0.1:1/\", {\"content_type\": \"a/b\"}]",
		  "unknown option 'content_type'" },
		{ "get", "[\"http://127.0.0.1:1/\", {\"retries\": 3}]", "unknown option 'retries'" },
		{ "get", "[\"http://127.0.0.1:1/\", {\"headers\": []}]", "map of str to str" },
		{ "get", "[\"http://127.0.0.1:1/\", {\"headers\": {\"X\": 1}}]", "map of str to str" },
		{ "get", "[\"http://127.0.0.1:1/\", {\"headers\": {\"X-I\": \"a\\r\\nHost: evil\"}}]",
		  "CR, LF or NUL" },
		{ "get", "[\"http://127.0.0.1:1/\", {\"headers\": {\"Bad Name\": \"v\"}}]",
		  "not an HTTP token" },
		{ "get", "[\"http://127.0.0.1:1/\", {\"headers\": {\"\": \"v\"}}]", "empty" },
		{ "get", "[\"http://127.0.0.1:1/\", {\"headers\": {\"Content-Length\": \"5\"}}]",
		  "set by the module" },
		{ "post", "[\"http://127.0.0.1:1/\"]", "takes" },
		{ "post", "[\"http://127.0.0.1:1/\", 5]", "takes" },
	};
	module m;
	params p;

	/* All refused before any connection: port 1 is never tried. */
	module_load(&m, "LMMS_MODULE_DIR", "http");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		run_fails(&m, bad[i].op, p_json(&p, "%s", bad[i].params), PROTO_E_BAD_PARAMS,
			  bad[i].needle);
	module_unload(&m);
}
END_TEST

#endif /* HAVE_MODULE_HTTP */

/* ==== image =============================================================== */
#ifdef HAVE_MODULE_IMAGE

/*
 * A w x h sRGB gradient (plus a constant alpha when bands is 4), encoded by
 * libvips for suffix (".png", ".jpg", ".webp").
 */
static void *make_image_oriented(const char *suffix, int w, int h, int bands, int orientation,
				 size_t *len)
{
	VipsImage *xyz = NULL, *rgb = NULL, *all = NULL, *u8 = NULL, *out = NULL;
	void *buf = NULL;

	ck_assert_int_eq(VIPS_INIT("test-heavy-modules"), 0);
	ck_assert_int_eq(vips_xyz(&xyz, w, h, NULL), 0);
	ck_assert_int_eq(vips_bandjoin_const1(xyz, &rgb, 128.0, NULL), 0);
	if (bands == 4)
		ck_assert_int_eq(vips_bandjoin_const1(rgb, &all, 200.0, NULL), 0);
	ck_assert_int_eq(vips_cast_uchar(all ? all : rgb, &u8, NULL), 0);
	ck_assert_int_eq(vips_copy(u8, &out, "interpretation", VIPS_INTERPRETATION_sRGB, NULL),
			 0);
	if (orientation) /* EXIF: how a viewer must turn the pixels */
		vips_image_set_int(out, "orientation", orientation);
	ck_assert_int_eq(vips_image_write_to_buffer(out, suffix, &buf, len, NULL), 0);
	g_object_unref(out);
	g_object_unref(u8);
	if (all)
		g_object_unref(all);
	g_object_unref(rgb);
	g_object_unref(xyz);
	return buf;
}

static void *make_image(const char *suffix, int w, int h, int bands, size_t *len)
{
	return make_image_oriented(suffix, w, h, bands, 0, len);
}

static int64_t info_int(const outcome *o, const char *key)
{
	const msgpack_object *v = map_get(o->v, key);

	ck_assert_ptr_nonnull(v);
	ck_assert(v->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
	return v->via.i64;
}

/* image.info of b through the module: its width, height, bands, format. */
static void expect_info(module *m, const void *b, size_t n, int w, int h, int bands,
			const char *format)
{
	params p;
	outcome o;

	run(m, "info", p_bin(&p, b, n), &o);
	ck_assert_msg(o.err == PROTO_OK, "info: %s", o.msg);
	ck_assert_int_eq(info_int(&o, "width"), w);
	ck_assert_int_eq(info_int(&o, "height"), h);
	ck_assert_int_eq(info_int(&o, "bands"), bands);
	ck_assert_msg(obj_is_str(map_get(o.v, "format"), format), "not %s", format);
	outcome_free(&o);
}

/*
 * Runs op and reads the bytes it returned back with libvips itself (and
 * with image.info): w x h, bands, written by the encoder of format.
 */
static void expect_image(module *m, const char *op, params *p, int w, int h, int bands,
			 const char *format)
{
	VipsImage *im;
	const char *l;
	outcome o;

	run(m, op, p, &o);
	ck_assert_msg(o.err == PROTO_OK, "%s: %s: %s", op, proto_err_name(o.err), o.msg);
	ck_assert_int_eq(o.v->type, MSGPACK_OBJECT_BIN);
	im = vips_image_new_from_buffer(o.v->via.bin.ptr, o.v->via.bin.size, "", NULL);
	ck_assert_ptr_nonnull(im);
	ck_assert_int_eq(vips_image_get_width(im), w);
	ck_assert_int_eq(vips_image_get_height(im), h);
	ck_assert_int_eq(vips_image_get_bands(im), bands);
	l = vips_foreign_find_load_buffer(o.v->via.bin.ptr, o.v->via.bin.size);
	ck_assert_msg(l && strcasestr(l, format), "loader %s, want %s",
		      l ? l : "none", format);
	g_object_unref(im);
	expect_info(m, o.v->via.bin.ptr, o.v->via.bin.size, w, h, bands, format);
	outcome_free(&o);
}

static const struct {
	const char *suffix, *name;
} formats[] = {
	{ ".png", "png" },
	{ ".jpg", "jpeg" },
	{ ".webp", "webp" },
};

#define N_FORMATS (sizeof(formats) / sizeof(formats[0]))

START_TEST(test_image_info)
{
	module m;
	params p;
	outcome o;
	size_t n;
	void *b;

	module_load(&m, "LMMS_MODULE_DIR", "image");
	expect_documented(&m);
	for (uint32_t i = 0; i < m.d->n_ops; i++)
		ck_assert_uint_eq(op_at(&m, i)->flags, LMMS_OP_PURE | LMMS_OP_BLOCKING);
	for (size_t i = 0; i < N_FORMATS; i++) {
		b = make_image(formats[i].suffix, 64, 48, 3, &n);
		run(&m, "info", p_bin(&p, b, n), &o);
		ck_assert_msg(o.err == PROTO_OK, "%s: %s", formats[i].name, o.msg);
		ck_assert_uint_eq(o.v->via.map.size, 8);
		ck_assert_int_eq(info_int(&o, "width"), 64);
		ck_assert_int_eq(info_int(&o, "height"), 48);
		ck_assert_int_eq(info_int(&o, "bands"), 3);
		ck_assert_int_eq(info_int(&o, "pages"), 1);
		ck_assert(obj_is_str(map_get(o.v, "format"), formats[i].name));
		ck_assert(obj_is_str(map_get(o.v, "band_format"), "uchar"));
		ck_assert(obj_is_str(map_get(o.v, "interpretation"), "srgb"));
		ck_assert(!map_get(o.v, "has_alpha")->via.boolean);
		outcome_free(&o);
		g_free(b);
	}
	b = make_image(".png", 10, 7, 4, &n);
	run(&m, "info", p_bin(&p, b, n), &o);
	ck_assert_int_eq(o.err, PROTO_OK);
	ck_assert_int_eq(info_int(&o, "bands"), 4);
	ck_assert(map_get(o.v, "has_alpha")->via.boolean);
	outcome_free(&o);
	g_free(b);
	module_unload(&m);
}
END_TEST

START_TEST(test_image_thumbnail)
{
	module m;
	params p;
	size_t n;
	void *b;

	module_load(&m, "LMMS_MODULE_DIR", "image");
	for (size_t i = 0; i < N_FORMATS; i++) {
		const char *f = formats[i].name;

		b = make_image(formats[i].suffix, 64, 48, 3, &n);
		/* width alone: aspect kept, same format as the input */
		expect_image(&m, "thumbnail", p_bin_json(&p, b, n, "[16]"), 16, 12, 3, f);
		/* a box: the tighter side wins; another format */
		expect_image(&m, "thumbnail",
			     p_bin_json(&p, b, n, "[16, {\"height\": 6, \"format\": \"webp\"}]"), 8,
			     6, 3, "webp");
		/* never enlarged */
		expect_image(&m, "thumbnail", p_bin_json(&p, b, n, "[1000]"), 64, 48, 3, f);
		run_concurrently(&m, "thumbnail", p_bin_json(&p, b, n, "[16]"));
		g_free(b);
	}
	/* EXIF orientation 6 (turn 90 degrees): thumbnails come out upright */
	b = make_image_oriented(".jpg", 60, 40, 3, 6, &n);
	expect_image(&m, "thumbnail", p_bin_json(&p, b, n, "[20]"), 20, 30, 3, "jpeg");
	g_free(b);

	b = make_image(".png", 20, 20, 4, &n);
	expect_image(&m, "thumbnail",
		     p_bin_json(&p, b, n, "[10, {\"format\": \"jpeg\", \"quality\": 50}]"), 10, 10,
		     3, "jpeg");
	run_fails(&m, "thumbnail", p_bin_json(&p, b, n, "[10, {\"quality\": 50}]"),
		  PROTO_E_BAD_PARAMS, "quality applies to jpeg and webp");
	run_fails(&m, "thumbnail", p_bin_json(&p, b, n, "[0]"), PROTO_E_BAD_PARAMS, "width");
	run_fails(&m, "thumbnail", p_bin_json(&p, b, n, "[16385]"), PROTO_E_BAD_PARAMS, "width");
	run_fails(&m, "thumbnail", p_bin_json(&p, b, n, "[\"10\"]"), PROTO_E_BAD_PARAMS, "width");
	run_fails(&m, "thumbnail", p_bin_json(&p, b, n, "[10, {\"format\": \"gif\"}]"),
		  PROTO_E_BAD_PARAMS, "format");
	run_fails(&m, "thumbnail", p_bin_json(&p, b, n, "[10, {\"height\": 0}]"),
		  PROTO_E_BAD_PARAMS, "height");
	run_fails(&m, "thumbnail", p_bin_json(&p, b, n, "[10, {\"crop\": true}]"),
		  PROTO_E_BAD_PARAMS, "unknown option 'crop'");
	g_free(b);
	module_unload(&m);
}
END_TEST

START_TEST(test_image_convert)
{
	size_t n, size[2];
	module m;
	params p;
	outcome o;
	void *b;

	module_load(&m, "LMMS_MODULE_DIR", "image");
	/* every format to every format */
	for (size_t i = 0; i < N_FORMATS; i++) {
		b = make_image(formats[i].suffix, 33, 17, 3, &n);
		for (size_t j = 0; j < N_FORMATS; j++)
			expect_image(&m, "convert",
				     p_bin_json(&p, b, n, "[\"%s\"]", formats[j].name), 33, 17, 3,
				     formats[j].name);
		g_free(b);
	}
	/* alpha into JPEG: flattened to three bands; kept in WebP */
	b = make_image(".png", 12, 12, 4, &n);
	expect_image(&m, "convert", p_bin_json(&p, b, n, "[\"jpg\"]"), 12, 12, 3, "jpeg");
	expect_image(&m, "convert", p_bin_json(&p, b, n, "[\"webp\"]"), 12, 12, 4, "webp");
	g_free(b);

	/* quality reaches the encoder */
	b = make_image(".png", 64, 64, 3, &n);
	for (int i = 0; i < 2; i++) {
		run(&m, "convert", p_bin_json(&p, b, n, "[\"jpeg\", {\"quality\": %d}]", i ? 95 : 10),
		    &o);
		ck_assert_int_eq(o.err, PROTO_OK);
		size[i] = o.v->via.bin.size;
		outcome_free(&o);
	}
	ck_assert_uint_lt(size[0], size[1]);
	run_fails(&m, "convert", p_bin_json(&p, b, n, "[\"jpeg\", {\"quality\": 101}]"),
		  PROTO_E_BAD_PARAMS, "quality");
	run_fails(&m, "convert", p_bin_json(&p, b, n, "[\"png\", {\"quality\": 50}]"),
		  PROTO_E_BAD_PARAMS, "quality applies");
	run_fails(&m, "convert", p_bin_json(&p, b, n, "[\"png\", {\"height\": 5}]"),
		  PROTO_E_BAD_PARAMS, "unknown option 'height'");
	run_fails(&m, "convert", p_bin_json(&p, b, n, "[\"tiff\"]"), PROTO_E_BAD_PARAMS,
		  "format");
	run_fails(&m, "convert", p_bin(&p, b, n), PROTO_E_BAD_PARAMS, "takes");
	g_free(b);
	module_unload(&m);
}
END_TEST

START_TEST(test_image_corrupt)
{
	unsigned char *bad;
	module m;
	params p;
	size_t n;
	void *b;

	module_load(&m, "LMMS_MODULE_DIR", "image");
	/* not an image at all, or not one of ours */
	run_fails(&m, "info", p_bin(&p, "hello, world", 12), PROTO_E_BAD_PARAMS,
		  "not a PNG, JPEG or WebP");
	run_fails(&m, "info", p_bin(&p, "", 0), PROTO_E_BAD_PARAMS, "not a PNG");
	run_fails(&m, "info", p_bin(&p, "GIF89a\x01\x00\x01\x00\x00\x00\x00", 13),
		  PROTO_E_BAD_PARAMS, "not a PNG");
	run_fails(&m, "info", p_str(&p, "\x89PNG\r\n\x1a\n"), PROTO_E_BAD_PARAMS, "bin");
	run_fails(&m, "info", p_none(&p), PROTO_E_BAD_PARAMS, "takes");

	for (size_t i = 0; i < N_FORMATS; i++) {
		b = make_image(formats[i].suffix, 64, 48, 3, &n);
		/* the right magic, then garbage: the header cannot be read */
		bad = malloc(n);
		memcpy(bad, b, n);
		memset(bad + 12, 0x5a, n - 12);
		run_fails(&m, "info", p_bin(&p, bad, n), PROTO_E_MODULE_ERROR,
			  "cannot read the image");
		/* a good header and a truncated body: fails on decoding */
		run_fails(&m, "convert", p_bin_json(&p, b, n / 2, "[\"png\"]"),
			  PROTO_E_MODULE_ERROR, "image.convert: cannot");
		free(bad);
		g_free(b);
	}
	module_unload(&m);
}
END_TEST

/* A host whose setting() answers max_pixels with setting_value. */
static const char *setting_value;
static lmms_host setting_host;

static const char *test_setting(lmms_call *c, const char *key)
{
	return strcmp(key, "max_pixels") == 0 ? setting_value : NULL;
}

static const lmms_host *host_with_setting(const char *value)
{
	setting_host = call_host;
	setting_host.setting = test_setting;
	setting_value = value;
	return &setting_host;
}

START_TEST(test_image_max_pixels)
{
	static const char *const bad[] = { "0", "-5", "many", "12abc", "" };
	lmms_call c;
	module m;
	params p;
	size_t n;
	void *b;

	module_load_host(&m, "LMMS_MODULE_DIR", "image", host_with_setting("1000"));
	b = make_image(".png", 64, 48, 3, &n); /* 3072 pixels */
	run_fails(&m, "info", p_bin(&p, b, n), PROTO_E_MODULE_ERROR,
		  "64x48 pixels exceeds the limit of 1000");
	run_fails(&m, "thumbnail", p_bin_json(&p, b, n, "[8]"), PROTO_E_MODULE_ERROR,
		  "exceeds the limit");
	g_free(b);
	b = make_image(".png", 40, 25, 3, &n); /* exactly 1000 */
	expect_image(&m, "convert", p_bin_json(&p, b, n, "[\"webp\"]"), 40, 25, 3, "webp");
	g_free(b);
	module_unload(&m);

	/* a setting that is not a positive integer fails the load, saying why */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		void *state = NULL;

		module_load(&m, "LMMS_MODULE_DIR", "image");
		call_init(&c, NULL, RESULT_MAX, "image");
		ck_assert_int_lt(m.d->init(host_with_setting(bad[i]), &c, &state), 0);
		ck_assert_ptr_null(state);
		ck_assert_ptr_nonnull(strstr(c.fail_msg, "max_pixels"));
		call_fini(&c);
		module_unload(&m);
	}
}
END_TEST

#endif /* HAVE_MODULE_IMAGE */

/* ==== text ================================================================ */
#ifdef HAVE_MODULE_TEXT

static params *p_str2(params *p, const char *a, const char *b)
{
	msgpack_packer *pk = params_begin(p, 2);

	pack_str(pk, a);
	pack_str(pk, b);
	return p;
}

static void expect_call_str(module *m, const char *op, params *p, const char *want)
{
	outcome o;

	run(m, op, p, &o);
	expect_str(&o, want);
	outcome_free(&o);
}

START_TEST(test_text_normalize)
{
	module m;
	params p;

	module_load(&m, "LMMS_MODULE_DIR", "text");
	expect_documented(&m);
	for (uint32_t i = 0; i < m.d->n_ops; i++)
		ck_assert(op_at(&m, i)->flags & LMMS_OP_PURE);
	ck_assert(op_find(&m, "sort")->flags & LMMS_OP_BLOCKING);
	ck_assert(op_find(&m, "transliterate")->flags & LMMS_OP_BLOCKING);

	expect_call_str(&m, "normalize", p_str2(&p, "\xef\xac\x81", "nfkc"), "fi"); /* U+FB01 */
	expect_call_str(&m, "normalize", p_str2(&p, "\xef\xac\x81", "nfc"), "\xef\xac\x81");
	/* e + combining acute <-> U+00E9 */
	expect_call_str(&m, "normalize", p_str2(&p, "Caf" "e\xcc\x81", "nfc"), "Caf\xc3\xa9");
	expect_call_str(&m, "normalize", p_str2(&p, "Caf\xc3\xa9", "nfd"), "Cafe\xcc\x81");
	expect_call_str(&m, "normalize", p_str2(&p, "\xe2\x91\xa0 \xc2\xbd", "NFKD"),
			"1 1\xe2\x81\x84" "2"); /* circled one, one half */
	expect_call_str(&m, "normalize", p_str2(&p, "", "nfc"), "");
	/* Hangul syllable U+D55C decomposes into three jamo */
	expect_call_str(&m, "normalize", p_str2(&p, "\xed\x95\x9c", "nfd"),
			"\xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab");

	run_fails(&m, "normalize", p_str2(&p, "x", "nfx"), PROTO_E_BAD_PARAMS, "nfkd");
	run_fails(&m, "normalize", p_str2(&p, "\xff\xfe", "nfc"), PROTO_E_BAD_PARAMS, "UTF-8");
	/* a surrogate: not a character, so not UTF-8 */
	run_fails(&m, "normalize", p_str2(&p, "\xed\xa0\x80", "nfc"), PROTO_E_BAD_PARAMS, "UTF-8");
	run_fails(&m, "normalize", p_str(&p, "x"), PROTO_E_BAD_PARAMS, NULL);
	{
		size_t big = (1u << 20) + 1;
		char *s = malloc(big + 1);

		memset(s, 'a', big);
		s[big] = '\0';
		run_fails(&m, "normalize", p_str2(&p, s, "nfc"), PROTO_E_BAD_PARAMS, "exceeds");
		free(s);
	}
	module_unload(&m);
}
END_TEST

START_TEST(test_text_casefold)
{
	module m;
	params p;

	module_load(&m, "LMMS_MODULE_DIR", "text");
	expect_call_str(&m, "casefold", p_str(&p, "Stra\xc3\x9f" "e"), "strasse");
	/* final and non-final sigma fold alike */
	expect_call_str(&m, "casefold", p_str(&p, "\xce\xa3\xce\x91\xce\xa3 \xcf\x82"),
			"\xcf\x83\xce\xb1\xcf\x83 \xcf\x83");
	expect_call_str(&m, "casefold", p_str(&p, "HELLO, World"), "hello, world");
	expect_call_str(&m, "casefold", p_str(&p, ""), "");
	run_fails(&m, "casefold", p_int(&p, 1), PROTO_E_BAD_PARAMS, NULL);
	run_fails(&m, "casefold", p_str(&p, "\xc3"), PROTO_E_BAD_PARAMS, "UTF-8");
	module_unload(&m);
}
END_TEST

static params *p_sort(params *p, const char *const *v, size_t n, const char *locale)
{
	msgpack_packer *pk = params_begin(p, 2);

	msgpack_pack_array(pk, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		pack_str(pk, v[i]);
	pack_str(pk, locale);
	return p;
}

static void expect_sorted(module *m, const char *const *in, const char *const *want, size_t n,
			  const char *locale)
{
	params p;
	outcome o;

	run(m, "sort", p_sort(&p, in, n, locale), &o);
	ck_assert_msg(o.err == PROTO_OK, "%s: %s", locale, o.msg);
	ck_assert_int_eq(o.v->type, MSGPACK_OBJECT_ARRAY);
	ck_assert_uint_eq(o.v->via.array.size, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(obj_is_str(&o.v->via.array.ptr[i], want[i]),
			      "%s: position %zu is '%.*s', want '%s'", locale, i,
			      (int)o.v->via.array.ptr[i].via.str.size,
			      o.v->via.array.ptr[i].via.str.ptr, want[i]);
	outcome_free(&o);
}

START_TEST(test_text_sort)
{
	/* a-umlaut: after z in Swedish, beside a in German */
	static const char *const in[] = { "z", "\xc3\xa4", "a" };
	static const char *const sv[] = { "a", "z", "\xc3\xa4" };
	static const char *const de[] = { "a", "\xc3\xa4", "z" };
	/* Swedish: z < a-ring < a-umlaut < o-umlaut */
	static const char *const in2[] = { "\xc3\xb6", "\xc3\xa4", "\xc3\xa5", "z", "o" };
	static const char *const sv2[] = { "o", "z", "\xc3\xa5", "\xc3\xa4", "\xc3\xb6" };
	/* equal keys keep their input order; case is a later level than letters */
	static const char *const in3[] = { "b", "B", "a", "b" };
	static const char *const root3[] = { "a", "b", "b", "B" };
	static const char *const one[] = { "x" };
	msgpack_packer *pk;
	module m;
	params p;

	module_load(&m, "LMMS_MODULE_DIR", "text");
	expect_sorted(&m, in, sv, 3, "sv");
	expect_sorted(&m, in, de, 3, "de");
	expect_sorted(&m, in, de, 3, "de_DE");
	expect_sorted(&m, in, sv, 3, "sv-SE");
	expect_sorted(&m, in2, sv2, 5, "sv");
	expect_sorted(&m, in3, root3, 4, "");
	expect_sorted(&m, in3, root3, 4, "en");
	expect_sorted(&m, one, one, 1, "root");
	expect_sorted(&m, NULL, NULL, 0, "sv");
	run_concurrently(&m, "sort", p_sort(&p, in2, 5, "sv"));

	run_fails(&m, "sort", p_sort(&p, in, 3, "klingon"), PROTO_E_BAD_PARAMS,
		  "unknown locale 'klingon'");
	run_fails(&m, "sort", p_sort(&p, in, 3, "xx"), PROTO_E_BAD_PARAMS, "unknown locale");
	pk = params_begin(&p, 2);
	msgpack_pack_array(pk, 2);
	pack_str(pk, "a");
	msgpack_pack_int(pk, 1);
	pack_str(pk, "sv");
	run_fails(&m, "sort", &p, PROTO_E_BAD_PARAMS, "element 1 is not a str");
	run_fails(&m, "sort", p_str2(&p, "a", "sv"), PROTO_E_BAD_PARAMS, NULL);
	{
		static const char *const invalid[] = { "a", "\x80" };

		run_fails(&m, "sort", p_sort(&p, invalid, 2, "sv"), PROTO_E_BAD_PARAMS, "UTF-8");
	}
	module_unload(&m);
}
END_TEST

START_TEST(test_text_transliterate)
{
	const char *id = "Any-Latin; Latin-ASCII";
	module m;
	params p;
	outcome o;

	module_load(&m, "LMMS_MODULE_DIR", "text");
	expect_call_str(&m, "transliterate",
			p_str2(&p, "\xce\x91\xce\xb8\xce\xae\xce\xbd\xce\xb1", id), "Athena");
	expect_call_str(&m, "transliterate",
			p_str2(&p, "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82", id),
			"Privet");
	expect_call_str(&m, "transliterate", p_str2(&p, "\xe5\x8c\x97\xe4\xba\xac", id),
			"bei jing");
	expect_call_str(&m, "transliterate", p_str2(&p, "\xc3\x86r\xc3\xb8sk\xc3\xb8" "bing",
						    "Latin-ASCII"),
			"AEroskobing");
	expect_call_str(&m, "transliterate", p_str2(&p, "", id), "");
	run_concurrently(&m, "transliterate",
			 p_str2(&p, "\xce\x91\xce\xb8\xce\xae\xce\xbd\xce\xb1", id));
	/*
	 * Output far longer than the input (U+FDFA is 18 letters in NFKD):
	 * the module must regrow its buffer and start over, and agree with
	 * text.normalize.
	 */
	{
		char in[80 * 3 + 1], *want;
		size_t wn;

		for (int i = 0; i < 80; i++)
			memcpy(in + 3 * i, "\xef\xb7\xba", 3);
		in[sizeof(in) - 1] = '\0';
		run(&m, "normalize", p_str2(&p, in, "nfkd"), &o);
		ck_assert_int_eq(o.err, PROTO_OK);
		wn = o.v->via.str.size;
		ck_assert_uint_gt(wn, 80 * 18);
		want = strndup(o.v->via.str.ptr, wn);
		outcome_free(&o);
		expect_call_str(&m, "transliterate", p_str2(&p, in, "Any-NFKD"), want);
		free(want);
	}
	run_fails(&m, "transliterate", p_str2(&p, "x", "Nope-Nothing"), PROTO_E_BAD_PARAMS,
		  "unknown id 'Nope-Nothing'");
	run_fails(&m, "transliterate", p_str2(&p, "x", ""), PROTO_E_BAD_PARAMS, NULL);
	run_fails(&m, "transliterate", p_str(&p, "x"), PROTO_E_BAD_PARAMS, NULL);
	run_fails(&m, "transliterate", p_str2(&p, "\xf5\x80\x80\x80", id), PROTO_E_BAD_PARAMS,
		  "UTF-8");
	module_unload(&m);
}
END_TEST

/* fini drops ICU's caches; loading again must work as the first time. */
START_TEST(test_text_reload)
{
	module m;
	params p;

	for (int i = 0; i < 2; i++) {
		module_load(&m, "LMMS_MODULE_DIR", "text");
		expect_call_str(&m, "transliterate",
				p_str2(&p, "\xd0\xbc\xd0\xb8\xd1\x80", "Any-Latin"), "mir");
		expect_call_str(&m, "normalize", p_str2(&p, "\xef\xac\x81", "nfkc"), "fi");
		module_unload(&m);
	}
}
END_TEST

#endif /* HAVE_MODULE_TEXT */

static Suite *heavy_suite(void)
{
	Suite *s = suite_create("heavy-modules");
	TCase *tc;

#ifdef HAVE_MODULE_HTTP
	tc = tcase_create("http");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_http_get);
	tcase_add_test(tc, test_http_post);
	tcase_add_test(tc, test_http_timeout);
	tcase_add_test(tc, test_http_size_cap);
	tcase_add_test(tc, test_http_refused);
	tcase_add_test(tc, test_http_redirects);
	tcase_add_test(tc, test_http_bad_params);
	suite_add_tcase(s, tc);
#endif
#ifdef HAVE_MODULE_IMAGE
	tc = tcase_create("image");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_image_info);
	tcase_add_test(tc, test_image_thumbnail);
	tcase_add_test(tc, test_image_convert);
	tcase_add_test(tc, test_image_corrupt);
	tcase_add_test(tc, test_image_max_pixels);
	suite_add_tcase(s, tc);
#endif
#ifdef HAVE_MODULE_TEXT
	tc = tcase_create("text");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_text_normalize);
	tcase_add_test(tc, test_text_casefold);
	tcase_add_test(tc, test_text_sort);
	tcase_add_test(tc, test_text_transliterate);
	tcase_add_test(tc, test_text_reload);
	suite_add_tcase(s, tc);
#endif
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(heavy_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
