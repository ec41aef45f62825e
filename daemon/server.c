/*
 * server.c - Unix socket listener, per-connection stream decoding, replies,
 * backpressure and connection deadlines.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"
#include "dispatch.h"
#include "log.h"
#include "util.h"

#define READ_CHUNK (64 * 1024)
#define REAPER_INTERVAL_MS 250

/* ---- byte buffers ---- */

int bbuf_reserve(bbuf *b, size_t extra)
{
	size_t need = b->len + extra, cap;
	char *p;

	if (need < b->len)
		return -ENOMEM;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 4096;
	while (cap < need)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int bbuf_append(bbuf *b, const void *p, size_t n)
{
	int r = bbuf_reserve(b, n);

	if (r < 0)
		return r;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

void bbuf_free(bbuf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

int bbuf_msgpack_write(void *data, const char *buf, size_t len)
{
	return bbuf_append(data, buf, len) < 0 ? -1 : 0;
}

/* ---- connections ---- */

static void conn_process(conn *c);

void conn_ref(conn *c)
{
	c->refs++;
}

static void conn_free(conn *c)
{
	free(c->ibuf);
	bbuf_free(&c->out);
	bbuf_free(&c->wbuf);
	msgpack_zone_destroy(&c->zone);
	free(c);
}

void conn_unref(conn *c)
{
	if (--c->refs == 0)
		conn_free(c);
}

static void conn_on_close(uv_handle_t *h)
{
	conn *c = h->data;

	conn_unref(c);
}

void conn_close(conn *c)
{
	server *s = &c->d->srv;

	if (c->closing)
		return;
	c->closing = true;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->n_conns--;
	log_debug("connection %llu closed", (unsigned long long)c->id);
	uv_close((uv_handle_t *)&c->pipe, conn_on_close);
}

static size_t conn_unsent(const conn *c)
{
	return c->out.len + c->wbuf.len;
}

static void conn_on_write(uv_write_t *req, int status)
{
	conn *c = req->data;

	c->writing = false;
	c->wbuf.len = 0;
	if (status < 0 && !c->closing) {
		log_debug("connection %llu: write failed: %s", (unsigned long long)c->id,
			  uv_strerror(status));
		conn_close(c);
	}
	if (!c->closing)
		conn_process(c); /* output drained: maybe resume, then flush */
	conn_unref(c);
}

void conn_flush(conn *c)
{
	bbuf tmp;
	uv_buf_t b;
	int r;

	if (c->closing || c->writing)
		return;
	if (c->out.len == 0) {
		if (c->fatal || (c->eof && c->inflight == 0 && !c->backlog))
			conn_close(c);
		return;
	}
	tmp = c->wbuf;
	c->wbuf = c->out;
	c->out = tmp;
	c->out.len = 0;
	b = uv_buf_init(c->wbuf.data, (unsigned)c->wbuf.len);
	c->wreq.data = c;
	r = uv_write(&c->wreq, (uv_stream_t *)&c->pipe, &b, 1, conn_on_write);
	if (r < 0) {
		c->wbuf.len = 0;
		conn_close(c);
		return;
	}
	c->writing = true;
	conn_ref(c);
	c->last_activity_ms = now_ms();
}

static void conn_out_fail(conn *c)
{
	log_err("connection %llu: out of memory for output", (unsigned long long)c->id);
	conn_close(c);
}

void conn_reply_raw(conn *c, uint32_t msgid, const char *result, size_t len)
{
	msgpack_packer pk;

	if (c->closing)
		return;
	msgpack_packer_init(&pk, &c->out, bbuf_msgpack_write);
	if (proto_pack_response_ok(&pk, msgid) < 0 || bbuf_append(&c->out, result, len) < 0)
		conn_out_fail(c);
}

void conn_reply_error(conn *c, uint32_t msgid, proto_err code, const char *fmt, ...)
{
	char msg[512];
	msgpack_packer pk;
	va_list ap;

	c->d->st.errors_total++;
	if (c->closing)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	msgpack_packer_init(&pk, &c->out, bbuf_msgpack_write);
	if (proto_pack_response_error(&pk, msgid, code, msg) < 0)
		conn_out_fail(c);
}

msgpack_packer *conn_reply_begin(conn *c, uint32_t msgid, msgpack_packer *pk)
{
	msgpack_packer_init(pk, &c->out, bbuf_msgpack_write);
	proto_pack_response_ok(pk, msgid);
	return pk;
}

void conn_reply_end(conn *c)
{
	(void)c; /* flushed by the caller's processing loop */
}

/* A malformed message: answer if we can, then close after the flush. */
static void conn_fail(conn *c, proto_scan *sc, const char *what)
{
	lmmsd *d = c->d;

	log_info("connection %llu (pid %d uid %u): %s: %s", (unsigned long long)c->id, (int)c->pid,
		 (unsigned)c->uid, what, sc->reason ? sc->reason : "malformed");
	if (sc->have_msgid)
		conn_reply_error(c, sc->msgid, sc->err, "%s", sc->reason ? sc->reason : what);
	else
		d->st.errors_total++;
	c->fatal = true;
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->pipe);
		c->reading = false;
	}
	c->ilen = 0;
	conn_flush(c);
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	conn *c = h->data;
	size_t limit = c->d->limits.max_message_bytes + READ_CHUNK;
	size_t want = READ_CHUNK;

	(void)suggested;
	if (c->icap - c->ilen < want && c->icap < limit) {
		size_t cap = c->icap ? c->icap : READ_CHUNK;
		char *p;

		while (cap - c->ilen < want && cap < limit)
			cap *= 2;
		if (cap > limit)
			cap = limit;
		p = realloc(c->ibuf, cap);
		if (p) {
			c->ibuf = p;
			c->icap = cap;
		}
	}
	if (c->icap - c->ilen < want)
		want = c->icap - c->ilen;
	*buf = uv_buf_init(c->ibuf + c->ilen, (unsigned)want);
}

static void conn_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	conn *c = st->data;

	(void)buf;
	if (n < 0) {
		if (n != UV_EOF)
			log_debug("connection %llu: read: %s", (unsigned long long)c->id,
				  uv_strerror((int)n));
		/* The peer is gone or half-closed: answer what it sent, then close. */
		uv_read_stop(st);
		c->reading = false;
		c->eof = true;
		conn_process(c);
		return;
	}
	if (n == 0)
		return;
	c->ilen += (size_t)n;
	c->last_activity_ms = now_ms();
	if (!c->partial_since_ms)
		c->partial_since_ms = c->last_activity_ms;
	conn_process(c);
}

static bool conn_can_take_more(const conn *c)
{
	const config *cfg = &c->d->cfg;

	return !c->closing && !c->fatal && c->inflight < cfg->server.max_inflight &&
	       conn_unsent(c) <= cfg->server.max_output_bytes;
}

/* Decode and dispatch every whole message in the input buffer, as far as the
 * in-flight and output caps allow, then set reading accordingly. */
static void conn_process(conn *c)
{
	size_t pos = 0;

	conn_ref(c);
	while (conn_can_take_more(c) && pos < c->ilen) {
		proto_scan_status st = proto_scan_feed(&c->scan, &c->d->limits, c->ibuf + pos,
						       c->ilen - pos);

		if (st == PROTO_SCAN_MORE)
			break;
		if (st == PROTO_SCAN_ERROR) {
			conn_fail(c, &c->scan, "malformed message");
			pos = c->ilen = 0;
			break;
		}
		size_t len = c->scan.msg_len;

		proto_scan_reset(&c->scan);
		if (dispatch_message(c->d, c, c->ibuf + pos, len) < 0) {
			c->fatal = true;
			pos += len;
			break;
		}
		pos += len;
	}
	if (pos > 0 && !c->closing) {
		memmove(c->ibuf, c->ibuf + pos, c->ilen - pos);
		c->ilen -= pos;
		/* The scanner's offsets are relative to the message start, which
		 * is now the buffer start again. */
	}
	if (!c->closing) {
		/* Whole messages left unprocessed because of the caps. */
		c->backlog = c->ilen > 0 && !conn_can_take_more(c);
		/* The slowloris clock starts at the first byte of the message
		 * still incomplete. */
		if (!c->ilen)
			c->partial_since_ms = 0;
		else if (pos > 0 || !c->partial_since_ms)
			c->partial_since_ms = now_ms();
		if (conn_can_take_more(c) && !c->eof && !c->d->shutting_down) {
			if (!c->reading && c->ilen < c->d->limits.max_message_bytes + READ_CHUNK &&
			    uv_read_start((uv_stream_t *)&c->pipe, conn_alloc, conn_on_read) == 0)
				c->reading = true;
		} else if (c->reading) {
			uv_read_stop((uv_stream_t *)&c->pipe);
			c->reading = false;
		}
		conn_flush(c);
	}
	conn_unref(c);
}

void conn_request_done(conn *c)
{
	c->inflight--;
	if (!c->closing)
		conn_process(c);
}

static void conn_read_creds(conn *c)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);
	uv_os_fd_t fd;

	c->uid = (uid_t)-1;
	c->gid = (gid_t)-1;
	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0) {
		c->pid = uc.pid;
		c->uid = uc.uid;
		c->gid = uc.gid;
	}
#ifdef SO_PEERGROUPS
	len = sizeof(c->groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, c->groups, &len) == 0)
		c->n_groups = len / sizeof(gid_t);
	else if (errno == ERANGE)
		/* the kernel fills all or nothing: say why admin_group may not match */
		log_warn("pid %d uid %u is in %u groups; only its primary gid counts for access.admin_group",
			 (int)c->pid, (unsigned)c->uid, (unsigned)(len / sizeof(gid_t)));
#endif
}

static uint32_t server_conns_of_uid(const server *s, uid_t uid)
{
	uint32_t n = 0;

	for (const conn *c = s->conns; c; c = c->next)
		n += c->uid == uid;
	return n;
}

/* A connection with its pipe initialised but not yet open or listed. */
static conn *conn_new(server *s, lmmsd *d)
{
	conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->d = d;
	c->refs = 1;
	c->id = ++s->next_id;
	msgpack_zone_init(&c->zone, 2048);
	proto_scan_reset(&c->scan);
	uv_pipe_init(d->loop, &c->pipe, 0);
	c->pipe.data = c;
	return c;
}

/* Close a connection that never made it onto the server's list. */
static void conn_discard(conn *c)
{
	c->closing = true;
	uv_close((uv_handle_t *)&c->pipe, conn_on_close);
}

static void conn_link(server *s, conn *c)
{
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	c->last_activity_ms = now_ms();
}

static void server_on_connection(uv_stream_t *l, int status)
{
	server *s = l->data;
	lmmsd *d = s->d;
	conn *c;

	if (status < 0) {
		log_warn("accept: %s", uv_strerror(status));
		return;
	}
	c = conn_new(s, d);
	if (!c)
		return;
	if (uv_accept(l, (uv_stream_t *)&c->pipe) < 0) {
		conn_discard(c);
		return;
	}
	conn_read_creds(c);

	if (s->n_conns >= d->cfg.server.max_connections ||
	    server_conns_of_uid(s, c->uid) >= d->cfg.server.max_connections_per_uid ||
	    d->shutting_down) {
		log_warn("refusing connection from pid %d uid %u: %s", (int)c->pid,
			 (unsigned)c->uid,
			 d->shutting_down ? "shutting down" : "too many connections");
		conn_discard(c);
		return;
	}

	conn_link(s, c);
	d->st.connections_total++;
	log_debug("connection %llu from pid %d uid %u", (unsigned long long)c->id, (int)c->pid,
		  (unsigned)c->uid);
	conn_process(c);
}

/* A connection over an fd the caller already has (one end of a socketpair),
 * for the benchmark and tests that drive dispatch_message directly. It is not
 * read from until conn_process runs, so the caller owns the input side. */
conn *server_conn_open(server *s, struct lmmsd *d, int fd)
{
	conn *c;

	s->d = d;
	c = conn_new(s, d);
	if (!c)
		return NULL;
	if (uv_pipe_open(&c->pipe, fd) < 0) {
		conn_discard(c);
		return NULL;
	}
	conn_read_creds(c);
	conn_link(s, c);
	return c;
}

/* Idle connections and messages that never complete (slowloris). */
static void server_on_reaper(uv_timer_t *t)
{
	server *s = t->data;
	const config *cfg = &s->d->cfg;
	uint64_t now = now_ms();
	conn *next;

	dispatch_expire_calls(s->d, now);
	for (conn *c = s->conns; c; c = next) {
		next = c->next;
		if (c->inflight || c->writing)
			continue;
		if (cfg->server.message_timeout_ms && c->partial_since_ms &&
		    now - c->partial_since_ms > cfg->server.message_timeout_ms) {
			log_info("connection %llu (pid %d uid %u): message incomplete after %llu ms, closing",
				 (unsigned long long)c->id, (int)c->pid, (unsigned)c->uid,
				 (unsigned long long)(now - c->partial_since_ms));
			conn_close(c);
		} else if (cfg->server.idle_timeout_ms &&
			   now - c->last_activity_ms > cfg->server.idle_timeout_ms) {
			log_debug("connection %llu idle, closing", (unsigned long long)c->id);
			conn_close(c);
		}
	}
}

/*
 * Refuse to steal a socket a live daemon listens on; remove a stale one.
 */
static int server_prepare_path(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[sizeof(sa.sun_path)];
	struct stat st;
	char *slash;
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_err("socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		/* mkdir -p: each component; an existing one is fine */
		for (char *p = dir + 1; *p; p++) {
			if (*p != '/')
				continue;
			*p = '\0';
			if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
				log_err("cannot create %s: %s", dir, strerror(errno));
				return -errno;
			}
			*p = '/';
		}
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			log_err("cannot create %s: %s", dir, strerror(errno));
			return -errno;
		}
	}

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		log_err("%s exists and is not a socket: refusing to replace it", path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (r == 0) {
		log_err("another lmmsd is listening on %s", path);
		return -EADDRINUSE;
	}
	if (errno != ECONNREFUSED) {
		log_err("cannot probe %s: %s", path, strerror(errno));
		return -errno;
	}
	log_info("removing stale socket %s", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int server_start(server *s, lmmsd *d, const char *path, int fd)
{
	int r;

	memset(s, 0, sizeof(*s));
	s->d = d;
	r = uv_pipe_init(d->loop, &s->listener, 0);
	if (r < 0)
		return r;
	s->listener.data = s;

	if (fd >= 0) {
		r = uv_pipe_open(&s->listener, fd);
		if (r < 0)
			goto fail_close;
	} else {
		r = server_prepare_path(path);
		if (r < 0)
			goto fail_close;
		r = uv_pipe_bind(&s->listener, path);
		if (r < 0) {
			log_err("bind %s: %s", path, uv_strerror(r));
			goto fail_close;
		}
		s->own_socket = true;
		if (chmod(path, 0660) < 0) {
			r = -errno;
			log_err("chmod %s: %s", path, strerror(errno));
			goto fail_unlink;
		}
	}
	r = uv_listen((uv_stream_t *)&s->listener, 128, server_on_connection);
	if (r < 0) {
		log_err("listen: %s", uv_strerror(r));
		goto fail_unlink;
	}
	s->listening = true;

	uv_timer_init(d->loop, &s->reaper);
	s->reaper.data = s;
	uv_timer_start(&s->reaper, server_on_reaper, REAPER_INTERVAL_MS, REAPER_INTERVAL_MS);
	uv_unref((uv_handle_t *)&s->reaper);
	return 0;

fail_unlink:
	if (s->own_socket)
		unlink(path);
fail_close:
	uv_close((uv_handle_t *)&s->listener, NULL);
	return r;
}

void server_stop_listening(server *s)
{
	if (!s->listening)
		return;
	s->listening = false;
	uv_close((uv_handle_t *)&s->listener, NULL);
	if (s->own_socket)
		unlink(s->d->socket_path);
}

void server_close_all(server *s)
{
	conn *next;

	server_stop_listening(s);
	for (conn *c = s->conns; c; c = next) {
		next = c->next;
		conn_close(c);
	}
	if (s->reaper.loop && !uv_is_closing((uv_handle_t *)&s->reaper))
		uv_close((uv_handle_t *)&s->reaper, NULL);
}

bool server_idle(const server *s)
{
	for (const conn *c = s->conns; c; c = c->next)
		if (c->inflight || c->writing || c->out.len)
			return false;
	return true;
}
