/*
 * server.c - Unix socket listener, per-connection stream framing, replies,
 * backpressure and connection deadlines. Includes nothing from the layers
 * above: whole messages leave through server_callbacks.on_message.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

#define READ_CHUNK (64 * 1024)
/* Buffers that grew past this for one big message are given back once they
 * are empty again: an idle connection must not keep a megabyte it used once. */
#define KEEP_BUF_MAX (64 * 1024)

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
	free(c);
}

void conn_unref(conn *c)
{
	if (--c->refs == 0)
		conn_free(c);
}

static void conn_on_close(uv_handle_t *h)
{
	conn_unref(h->data);
}

/* Tell the layer above how much output waits on the peer now. */
static void conn_set_pending(conn *c, size_t bytes)
{
	server *s = c->srv;

	if (bytes != c->pending && s->cb.on_pending)
		s->cb.on_pending(s->ud, c, (int64_t)bytes - (int64_t)c->pending);
	c->pending = bytes;
}

void conn_close(conn *c)
{
	server *s = c->srv;

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
	conn_set_pending(c, 0);
	if (s->cb.on_close)
		s->cb.on_close(s->ud, c);
	uv_close((uv_handle_t *)&c->pipe, conn_on_close);
}

size_t conn_unsent(const conn *c)
{
	return c->out.len + c->wbuf.len;
}

static uint64_t conn_now(const conn *c)
{
	return uv_now(c->srv->loop);
}

static void bbuf_shrink(bbuf *b)
{
	if (b->len == 0 && b->cap > KEEP_BUF_MAX)
		bbuf_free(b);
}

static void conn_on_write(uv_write_t *req, int status)
{
	conn *c = req->data;

	c->writing = false;
	c->wbuf.len = 0;
	bbuf_shrink(&c->wbuf);
	c->write_stalled_since_ms = 0;
	if (!c->closing)
		conn_set_pending(c, 0);
	if (status < 0 && !c->closing) {
		log_debug("connection %llu: write failed: %s", (unsigned long long)c->id,
			  uv_strerror(status));
		conn_close(c);
	}
	if (!c->closing)
		conn_process(c); /* output drained: maybe resume, then flush */
	conn_unref(c);
}

/*
 * Write what is queued. The common case, a reply that fits the socket
 * buffer, goes out through uv_try_write with no write request: that saves
 * libuv starting and stopping write-watching (an epoll_ctl each) on every
 * reply. Only a remainder is handed to uv_write.
 */
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
	b = uv_buf_init(c->out.data, (unsigned)c->out.len);
	r = uv_try_write((uv_stream_t *)&c->pipe, &b, 1);
	if (r == (int)c->out.len) {
		c->out.len = 0;
		bbuf_shrink(&c->out);
		c->last_activity_ms = conn_now(c);
		c->write_stalled_since_ms = 0;
		if (c->fatal || (c->eof && c->inflight == 0 && !c->backlog))
			conn_close(c);
		else if (c->backlog || !c->reading)
			/* The output cap may have stopped reading or processing;
			 * no write callback will come to resume them, so ask for
			 * another pass here. */
			conn_process(c);
		return;
	}
	if (r < 0 && r != UV_EAGAIN) {
		log_debug("connection %llu: write failed: %s", (unsigned long long)c->id,
			  uv_strerror(r));
		conn_close(c);
		return;
	}
	if (r > 0) {
		memmove(c->out.data, c->out.data + r, c->out.len - (size_t)r);
		c->out.len -= (size_t)r;
		c->last_activity_ms = conn_now(c);
		c->write_stalled_since_ms = 0;
	}
	if (!c->write_stalled_since_ms)
		c->write_stalled_since_ms = conn_now(c);
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
	conn_set_pending(c, c->wbuf.len);
}

static void conn_out_fail(conn *c)
{
	log_err("connection %llu: out of memory for output", (unsigned long long)c->id);
	conn_close(c);
}

int conn_send(conn *c, const void *msg, size_t len)
{
	if (c->closing)
		return -EPIPE;
	if (bbuf_append(&c->out, msg, len) < 0) {
		conn_out_fail(c);
		return -ENOMEM;
	}
	return 0;
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

	if (c->closing)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	msgpack_packer_init(&pk, &c->out, bbuf_msgpack_write);
	if (proto_pack_response_error(&pk, msgid, code, msg) < 0)
		conn_out_fail(c);
}

static void conn_stop_reading(conn *c)
{
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->pipe);
		c->reading = false;
	}
}

/* A malformed message: answer if we can, then close after the flush. */
static void conn_fail(conn *c, proto_scan *sc, const char *what)
{
	log_info("connection %llu (pid %d uid %u): %s: %s", (unsigned long long)c->id, (int)c->pid,
		 (unsigned)c->uid, what, sc->reason ? sc->reason : "malformed");
	c->srv->st.malformed++;
	if (sc->have_msgid)
		conn_reply_error(c, sc->msgid, sc->err, "%s", sc->reason ? sc->reason : what);
	c->fatal = true;
	conn_stop_reading(c);
	c->ilen = 0;
	conn_flush(c);
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	conn *c = h->data;
	size_t limit = c->srv->limits.proto.max_message_bytes + READ_CHUNK;
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

/* At EOF: did the peer close for good, or only shut down its sending side?
 * A Unix socket whose peer is gone reports POLLHUP. */
static bool conn_peer_gone(conn *c)
{
	struct pollfd p = { .events = POLLOUT };
	uv_os_fd_t fd;

	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0)
		return true;
	p.fd = fd;
	return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR));
}

static void conn_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	conn *c = st->data;

	(void)buf;
	if (n < 0) {
		if (n != UV_EOF)
			log_debug("connection %llu: read: %s", (unsigned long long)c->id,
				  uv_strerror((int)n));
		conn_stop_reading(c);
		if (n != UV_EOF || conn_peer_gone(c)) {
			/* Nobody can read an answer: drop the connection now, so
			 * what it queued is cancelled before it starts. */
			conn_close(c);
			return;
		}
		/* Half-closed (shutdown(SHUT_WR)): answer what it sent, then close. */
		c->eof = true;
		conn_process(c);
		return;
	}
	if (n == 0)
		return;
	c->ilen += (size_t)n;
	c->last_activity_ms = conn_now(c);
	if (!c->partial_since_ms)
		c->partial_since_ms = c->last_activity_ms;
	conn_process(c);
}

static bool conn_can_take_more(const conn *c)
{
	const server_limits *l = &c->srv->limits;

	return !c->closing && !c->fatal && c->inflight < l->max_inflight &&
	       conn_unsent(c) <= l->max_output_bytes;
}

/* Frame and hand up every whole message in the input buffer, as far as the
 * in-flight and output caps allow, then set reading accordingly. The layer
 * above may call back in while a message is handed up (a hold, a request
 * done at once): such a call only asks for another pass, which runs when
 * the current one is over, so a buffer is never walked by two passes. */
static void conn_process_once(conn *c);

static void conn_process(conn *c)
{
	if (c->in_process) {
		c->again = true;
		return;
	}
	conn_ref(c);
	c->in_process = true;
	do {
		c->again = false;
		conn_process_once(c);
	} while (c->again && !c->closing);
	c->in_process = false;
	conn_unref(c);
}

static void conn_process_once(conn *c)
{
	server *s = c->srv;
	size_t pos = 0;

	while (conn_can_take_more(c) && pos < c->ilen) {
		proto_scan_status st = proto_scan_feed(&c->scan, &s->limits.proto, c->ibuf + pos,
						       c->ilen - pos);
		size_t len;

		if (st == PROTO_SCAN_MORE)
			break;
		if (st == PROTO_SCAN_ERROR) {
			conn_fail(c, &c->scan, "malformed message");
			pos = c->ilen = 0;
			break;
		}
		len = c->scan.msg_len;
		proto_scan_reset(&c->scan);
		pos += len;
		if (s->cb.on_message(s->ud, c, c->ibuf + pos - len, len) < 0) {
			/* the layer above answered and counted it */
			c->fatal = true;
			break;
		}
	}
	if (pos > 0 && !c->closing) {
		/* The scanner's offsets are relative to the message start, which
		 * is the buffer start again after this. */
		memmove(c->ibuf, c->ibuf + pos, c->ilen - pos);
		c->ilen -= pos;
	}
	if (!c->closing) {
		/* Whole messages left unprocessed because of the caps. */
		c->backlog = c->ilen > 0 && !conn_can_take_more(c);
		if (!c->ilen && c->icap > KEEP_BUF_MAX) {
			free(c->ibuf);
			c->ibuf = NULL;
			c->icap = 0;
		}
		/* The slowloris clock starts at the first byte of the message
		 * still incomplete. */
		if (!c->ilen)
			c->partial_since_ms = 0;
		else if (pos > 0 || !c->partial_since_ms)
			c->partial_since_ms = conn_now(c);
		if (conn_can_take_more(c) && !c->eof && !c->held && !s->draining) {
			if (!c->reading &&
			    c->ilen < s->limits.proto.max_message_bytes + READ_CHUNK &&
			    uv_read_start((uv_stream_t *)&c->pipe, conn_alloc, conn_on_read) == 0)
				c->reading = true;
		} else {
			conn_stop_reading(c);
		}
		conn_flush(c);
	}
}

void conn_request_begin(conn *c)
{
	c->inflight++;
	conn_ref(c);
}

void conn_request_done(conn *c)
{
	c->inflight--;
	if (!c->closing)
		conn_process(c);
	conn_unref(c);
}

void conn_hold(conn *c, bool hold)
{
	if (c->held == hold || c->closing)
		return;
	c->held = hold;
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
static conn *conn_new(server *s)
{
	conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->srv = s;
	c->refs = 1;
	c->id = ++s->next_id;
	proto_scan_reset(&c->scan);
	if (uv_pipe_init(s->loop, &c->pipe, 0) < 0) {
		free(c);
		return NULL;
	}
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
	c->last_activity_ms = uv_now(s->loop);
}

/*
 * libuv calls this once per connection it finds pending and keeps accepting
 * until the queue is empty, as long as each call accepts. So a connection
 * over a cap is accepted and closed at once rather than left in the queue:
 * one uid's storm fills the backlog only for as long as the loop takes to
 * drain it, and other uids' connects keep getting through.
 */
static void server_on_connection(uv_stream_t *l, int status)
{
	server *s = l->data;
	const char *why = NULL;
	conn *c;

	if (status < 0) {
		log_warn("accept: %s", uv_strerror(status));
		return;
	}
	c = conn_new(s);
	if (!c) {
		/* Take it off the queue even so: libuv stops watching the
		 * listener until the pending connection is accepted. */
		uv_pipe_t *tmp = malloc(sizeof(*tmp));

		log_err("accept: out of memory");
		if (tmp && uv_pipe_init(s->loop, tmp, 0) == 0) {
			(void)uv_accept(l, (uv_stream_t *)tmp);
			uv_close((uv_handle_t *)tmp, (uv_close_cb)free);
		} else {
			free(tmp);
		}
		return;
	}
	if (uv_accept(l, (uv_stream_t *)&c->pipe) < 0) {
		conn_discard(c);
		return;
	}
	conn_read_creds(c);

	if (s->draining)
		why = "shutting down";
	else if (s->n_conns >= s->limits.max_connections)
		why = "too many connections";
	else if (server_conns_of_uid(s, c->uid) >= s->limits.max_connections_per_uid)
		why = "too many connections of this uid";
	if (why) {
		uint64_t now = uv_now(s->loop);

		s->st.connections_refused++;
		/* one line a second at most: a storm must not become a log storm */
		if (now - s->refused_logged_ms >= 1000) {
			log_warn("refusing connection from pid %d uid %u: %s (%llu refused in all)",
				 (int)c->pid, (unsigned)c->uid, why,
				 (unsigned long long)s->st.connections_refused);
			s->refused_logged_ms = now;
		}
		conn_discard(c);
		return;
	}
	conn_link(s, c);
	s->st.connections_total++;
	log_debug("connection %llu from pid %d uid %u", (unsigned long long)c->id, (int)c->pid,
		  (unsigned)c->uid);
	conn_process(c);
}

conn *server_conn_open(server *s, int fd)
{
	conn *c = conn_new(s);

	if (!c)
		return NULL;
	if (uv_pipe_open(&c->pipe, fd) < 0) {
		conn_discard(c);
		return NULL;
	}
	conn_read_creds(c);
	conn_link(s, c);
	s->st.connections_total++;
	conn_process(c);
	return c;
}

static void server_timeout(server *s, conn *c, const char *what, uint64_t ms)
{
	log_info("connection %llu (pid %d uid %u): %s %llu ms, closing",
		 (unsigned long long)c->id, (int)c->pid, (unsigned)c->uid, what,
		 (unsigned long long)ms);
	s->st.timeouts++;
	conn_close(c);
}

/* Deadlines: see server.h. */
static void server_on_reaper(uv_timer_t *t)
{
	server *s = t->data;
	const server_limits *l = &s->limits;
	uint64_t now = uv_now(s->loop);
	conn *next;

	for (conn *c = s->conns; c; c = next) {
		next = c->next;
		if (l->write_timeout_ms && c->write_stalled_since_ms &&
		    now - c->write_stalled_since_ms > l->write_timeout_ms)
			server_timeout(s, c, "output made no progress for", now - c->write_stalled_since_ms);
		else if (l->message_timeout_ms && c->partial_since_ms && !c->backlog &&
			 now - c->partial_since_ms > l->message_timeout_ms)
			server_timeout(s, c, "message incomplete after", now - c->partial_since_ms);
		else if (l->idle_timeout_ms && !c->inflight && !conn_unsent(c) &&
			 now - c->last_activity_ms > l->idle_timeout_ms)
			server_timeout(s, c, "idle for", now - c->last_activity_ms);
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

void server_init(server *s, uv_loop_t *loop, const server_limits *l, const server_callbacks *cb,
		 void *ud)
{
	memset(s, 0, sizeof(*s));
	s->loop = loop;
	s->limits = *l;
	s->cb = *cb;
	s->ud = ud;
}

void server_set_limits(server *s, const server_limits *l)
{
	s->limits = *l;
}

int server_start(server *s, const char *path, int fd)
{
	int r;

	r = uv_timer_init(s->loop, &s->reaper);
	if (r < 0)
		return r;
	s->reaper_open = true;
	s->reaper.data = s;
	r = uv_pipe_init(s->loop, &s->listener, 0);
	if (r < 0)
		return r;
	s->listener_open = true;
	s->listener.data = s;

	if (fd >= 0) {
		r = uv_pipe_open(&s->listener, fd);
		if (r < 0)
			return r;
	} else {
		if (snprintf(s->path, sizeof(s->path), "%s", path) >= (int)sizeof(s->path))
			return -ENAMETOOLONG;
		r = server_prepare_path(path);
		if (r < 0)
			return r;
		r = uv_pipe_bind(&s->listener, path);
		if (r < 0) {
			log_err("bind %s: %s", path, uv_strerror(r));
			return r;
		}
		s->own_socket = true;
		if (chmod(path, 0660) < 0) {
			r = -errno;
			log_err("chmod %s: %s", path, strerror(errno));
			return r;
		}
	}
	r = uv_listen((uv_stream_t *)&s->listener, (int)s->limits.backlog, server_on_connection);
	if (r < 0) {
		log_err("listen: %s", uv_strerror(r));
		return r;
	}
	s->listening = true;
	uv_timer_start(&s->reaper, server_on_reaper, SERVER_REAPER_MS, SERVER_REAPER_MS);
	uv_unref((uv_handle_t *)&s->reaper);
	return 0;
}

void server_listen_name(server *s, char *buf, size_t n)
{
	size_t len = n;

	if (!n)
		return;
	if (!s->listener_open || uv_pipe_getsockname(&s->listener, buf, &len) < 0 || len >= n)
		len = 0;
	buf[len] = '\0';
}

void server_stop_listening(server *s)
{
	if (s->listening) {
		s->listening = false;
		if (s->own_socket)
			unlink(s->path);
	}
	if (s->listener_open) {
		s->listener_open = false;
		uv_close((uv_handle_t *)&s->listener, NULL);
	}
}

void server_drain(server *s)
{
	s->draining = true;
	server_stop_listening(s);
	for (conn *c = s->conns; c; c = c->next)
		conn_stop_reading(c);
}

void server_close(server *s)
{
	conn *next;

	server_stop_listening(s);
	for (conn *c = s->conns; c; c = next) {
		next = c->next;
		conn_close(c);
	}
	if (s->reaper_open) {
		s->reaper_open = false;
		uv_close((uv_handle_t *)&s->reaper, NULL);
	}
}

bool server_idle(const server *s)
{
	for (const conn *c = s->conns; c; c = c->next)
		if (c->inflight || conn_unsent(c))
			return false;
	return true;
}
