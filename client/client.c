/*
 * client.c - liblmms-client: a blocking MessagePack-RPC client for lmmsd.
 *
 * One connection, one call at a time. Incoming bytes go through proto_scan
 * before msgpack_unpack sees them, so a broken or hostile peer can make us
 * allocate at most the client's own limits (64 MiB per response), never what
 * a length header claims. Responses for other msgids (a late answer to a call
 * that timed out) are skipped; notifications that arrive during a call are
 * queued (bounded) for lmms_client_next_notification.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <lmms/lmms-client.h>
#include <msgpack.h>

#include "proto.h"

#define LMMS_EXPORT __attribute__((visibility("default")))

#define CLIENT_MAX_RESPONSE_BYTES (64u * 1024 * 1024)
/* msgpack-c's unpacker stops at 32 levels: deeper could pass the scan and
 * then fail to decode. */
#define CLIENT_MAX_DEPTH 32u
#define CLIENT_MAX_ELEMENTS (16u * 1024 * 1024)
#define CLIENT_DEFAULT_TIMEOUT_MS 30000u
#define CLIENT_READ_CHUNK 65536u

/* Notifications kept while a call waits for its response, for
 * lmms_client_next_notification; past this many the oldest are dropped. */
#define CLIENT_MAX_QUEUED_NOTIFICATIONS 1024u

typedef struct queued_note {
	struct queued_note *next;
	size_t method_len;
	size_t params_len;
	char data[]; /* method (NUL-terminated), then the params' msgpack bytes */
} queued_note;

struct lmms_client {
	int fd;
	int broken; /* 0, or the error that left the stream unusable */
	uint32_t timeout_ms;
	uint32_t next_msgid;
	proto_limits limits;
	proto_scan scan;
	char *buf; /* received, not yet consumed bytes */
	size_t len;
	size_t cap;
	queued_note *notes_head, *notes_tail; /* oldest first */
	uint32_t notes_n;
	uint64_t notes_dropped; /* since the last one handed out */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

#define SYSTEM_SOCKET "/run/lmms/lmmsd.sock"

LMMS_EXPORT int lmms_client_default_socket(char *buf, size_t n)
{
	return lmms_client_default_socket_at(0, buf, n);
}

/*
 * DESIGN.md §6: $LMMS_SOCKET alone when set; else the user's own socket (the
 * daemon's own default, proto_default_socket), then the system one, so that
 * a member of group lmms reaches the system daemon with no flag. For root
 * both are the same path and there is one candidate.
 */
LMMS_EXPORT int lmms_client_default_socket_at(unsigned i, char *buf, size_t n)
{
	const char *env = getenv("LMMS_SOCKET");
	int r;

	if (!buf || n == 0)
		return -EINVAL;
	if (i == 0)
		return proto_default_socket(buf, n);
	if (i > 1 || (env && *env))
		return -ENOENT;
	/* The own socket decides whether the system one is another path. */
	r = proto_default_socket(buf, n);
	if (r < 0)
		return r;
	if (strcmp(buf, SYSTEM_SOCKET) == 0)
		return -ENOENT;
	r = snprintf(buf, n, "%s", SYSTEM_SOCKET);
	return r < 0 || (size_t)r >= n ? -ENAMETOOLONG : 0;
}

static int fd_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	int fd, r;

	if (n == 0)
		return -EINVAL;
	if (n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, n + 1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;

	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (r < 0 && errno == EINTR) {
		/* The connect goes on in the background: wait for its outcome. */
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int err = 0;
		socklen_t el = sizeof(err);

		while ((r = poll(&p, 1, -1)) < 0 && errno == EINTR)
			;
		if (r >= 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0) {
			r = err ? -1 : 0;
			errno = err;
		}
	}
	if (r < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

/* Errors that mean "no daemon here", after which the next default socket is
 * worth trying; anything else (EACCES above all) is the answer. */
static bool absent(int err)
{
	return err == -ENOENT || err == -ECONNREFUSED || err == -ENOTDIR;
}

LMMS_EXPORT int lmms_client_connect_default(lmms_client **out, char *tried, size_t tried_len)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int r = -ENOENT;

	if (!out)
		return -EINVAL;
	*out = NULL;
	for (unsigned i = 0; lmms_client_default_socket_at(i, path, sizeof(path)) == 0; i++) {
		if (tried && tried_len)
			snprintf(tried, tried_len, "%s", path);
		r = lmms_client_connect(path, out);
		if (!absent(r))
			break;
	}
	return r;
}

LMMS_EXPORT int lmms_client_connect(const char *path, lmms_client **out)
{
	lmms_client *c;
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;

	if (!path)
		return lmms_client_connect_default(out, NULL, 0);
	if (strlen(path) >= sizeof(c->path))
		return -ENAMETOOLONG;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->timeout_ms = CLIENT_DEFAULT_TIMEOUT_MS;
	c->next_msgid = 1;
	proto_limits_default(&c->limits);
	c->limits.max_message_bytes = CLIENT_MAX_RESPONSE_BYTES;
	c->limits.max_depth = CLIENT_MAX_DEPTH;
	c->limits.max_elements = CLIENT_MAX_ELEMENTS;
	c->limits.max_str_bytes = CLIENT_MAX_RESPONSE_BYTES;
	proto_scan_reset(&c->scan);
	strcpy(c->path, path);

	r = fd_connect(path);
	if (r < 0)
		goto fail_connect;
	c->fd = r;

	*out = c;
	return 0;

fail_connect:
	free(c);
	return r;
}

LMMS_EXPORT void lmms_client_close(lmms_client *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	while (c->notes_head) {
		queued_note *q = c->notes_head;

		c->notes_head = q->next;
		free(q);
	}
	free(c->buf);
	free(c);
}

LMMS_EXPORT const char *lmms_client_path(const lmms_client *c)
{
	return c ? c->path : NULL;
}

LMMS_EXPORT void lmms_client_set_timeout(lmms_client *c, uint32_t ms)
{
	if (c)
		c->timeout_ms = ms;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Poll fd for events until deadline (-1: forever). 0 when ready. */
static int fd_wait(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	for (;;) {
		int to = -1;

		if (deadline >= 0) {
			int64_t left = deadline - now_ms();

			if (left <= 0)
				return -ETIMEDOUT;
			to = left > 1000000 ? 1000000 : (int)left;
		}
		r = poll(&p, 1, to);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r > 0)
			return 0; /* readiness or POLLHUP/POLLERR: the I/O call tells */
	}
}

static int send_all(lmms_client *c, const char *data, size_t len, int64_t deadline)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = send(c->fd, data + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			int r;

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			r = fd_wait(c->fd, POLLOUT, deadline);
			if (r < 0)
				return r;
			continue;
		}
		off += (size_t)n;
	}
	return 0;
}

/* Read more bytes into c->buf; -EPIPE on orderly close. */
static int recv_some(lmms_client *c, int64_t deadline)
{
	ssize_t n;
	int r;

	if (c->cap - c->len < CLIENT_READ_CHUNK) {
		size_t ncap = c->cap ? c->cap : CLIENT_READ_CHUNK;
		char *nb;

		while (ncap - c->len < CLIENT_READ_CHUNK)
			ncap *= 2;
		nb = realloc(c->buf, ncap);
		if (!nb)
			return -ENOMEM;
		c->buf = nb;
		c->cap = ncap;
	}

	for (;;) {
		n = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
		if (n > 0) {
			c->len += (size_t)n;
			return 0;
		}
		if (n == 0)
			return -EPIPE;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		r = fd_wait(c->fd, POLLIN, deadline);
		if (r < 0)
			return r;
	}
}

static char *dup_bytes(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (!d)
		return NULL;
	if (n)
		memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

static int obj_text(const msgpack_object *o, const char **s, size_t *n)
{
	if (o->type == MSGPACK_OBJECT_STR) {
		*s = o->via.str.ptr;
		*n = o->via.str.size;
		return 0;
	}
	if (o->type == MSGPACK_OBJECT_BIN) {
		*s = o->via.bin.ptr;
		*n = o->via.bin.size;
		return 0;
	}
	return -EINVAL;
}

/* Fill reply from a parsed response; reply is zeroed on entry. */
static int reply_fill(lmms_reply *reply, const proto_msg *m)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	const msgpack_object *e = m->error;
	int r = -ENOMEM;

	if (e && e->type != MSGPACK_OBJECT_NIL) {
		const char *code = "internal", *msg = "";
		size_t code_n = strlen(code), msg_n = 0;

		/* proto_msg_parse has checked the [code, message] shape;
		 * keep the fallbacks anyway rather than trust it blindly. */
		if (e->type == MSGPACK_OBJECT_ARRAY && e->via.array.size >= 1) {
			obj_text(&e->via.array.ptr[0], &code, &code_n);
			if (e->via.array.size >= 2)
				obj_text(&e->via.array.ptr[1], &msg, &msg_n);
		}
		reply->error_code = dup_bytes(code, code_n);
		reply->error_message = dup_bytes(msg, msg_n);
		if (!reply->error_code || !reply->error_message)
			goto fail;
	}

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (msgpack_pack_object(&pk, *m->result) < 0 || sb.size == 0) {
		msgpack_sbuffer_destroy(&sb);
		goto fail;
	}
	reply->result_len = sb.size;
	reply->result = msgpack_sbuffer_release(&sb);
	return 0;

fail:
	lmms_reply_clear(reply);
	return r;
}

/* A notification as one allocation: its method and its params' bytes. */
static queued_note *note_new(const proto_msg *m)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	queued_note *q = NULL;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (msgpack_pack_object(&pk, *m->params) == 0 && sb.size > 0)
		q = malloc(sizeof(*q) + m->method_len + 1 + sb.size);
	if (q) {
		q->next = NULL;
		q->method_len = m->method_len;
		q->params_len = sb.size;
		memcpy(q->data, m->method, m->method_len);
		q->data[m->method_len] = '\0';
		memcpy(q->data + m->method_len + 1, sb.data, sb.size);
	}
	msgpack_sbuffer_destroy(&sb);
	return q;
}

static void note_push(lmms_client *c, queued_note *q)
{
	if (c->notes_n == CLIENT_MAX_QUEUED_NOTIFICATIONS) {
		queued_note *old = c->notes_head;

		c->notes_head = old->next;
		if (!c->notes_head)
			c->notes_tail = NULL;
		free(old);
		c->notes_n--;
		c->notes_dropped++;
	}
	if (c->notes_tail)
		c->notes_tail->next = q;
	else
		c->notes_head = q;
	c->notes_tail = q;
	c->notes_n++;
}

/*
 * Consume whole messages from c->buf until the response to msgid is found
 * (or, with msgid == NOTE_WANTED, until a notification is). Notifications
 * met on the way to a response are queued. Returns 1 with *reply or *note
 * filled, 0 if more bytes are needed, or an error (after which the byte
 * stream cannot be trusted any more).
 */
#define NOTE_WANTED UINT64_MAX

static int process_buffer(lmms_client *c, uint64_t msgid, lmms_reply *reply, queued_note **note)
{
	while (c->len > 0) {
		msgpack_unpacked up;
		proto_msg m;
		const char *reason = NULL;
		size_t off = 0, msg_len;
		int r = 0;

		switch (proto_scan_feed(&c->scan, &c->limits, c->buf, c->len)) {
		case PROTO_SCAN_MORE:
			return 0;
		case PROTO_SCAN_ERROR:
			return c->scan.err == PROTO_E_TOO_LARGE ? -EMSGSIZE : -EPROTO;
		case PROTO_SCAN_DONE:
			break;
		}
		msg_len = c->scan.msg_len;
		if (msg_len == 0 || msg_len > c->len)
			return -EPROTO;

		msgpack_unpacked_init(&up);
		if (msgpack_unpack_next(&up, c->buf, msg_len, &off) != MSGPACK_UNPACK_SUCCESS ||
		    off != msg_len) {
			r = -EPROTO;
		} else if (proto_msg_parse(&up.data, &m, &reason) != PROTO_OK) {
			r = -EPROTO;
		} else if (m.type == PROTO_RESPONSE && msgid != NOTE_WANTED && m.msgid == msgid) {
			r = reply_fill(reply, &m);
			if (r == 0)
				r = 1;
		} else if (m.type == PROTO_NOTIFICATION) {
			queued_note *q = note_new(&m);

			if (!q)
				c->notes_dropped++; /* out of memory: count it, go on */
			else if (msgid != NOTE_WANTED)
				note_push(c, q);
			else {
				*note = q;
				r = 1;
			}
		}
		/* Anything else (a late answer to a call that timed out, a
		 * request from the server) is skipped. */
		msgpack_unpacked_destroy(&up);

		c->len -= msg_len;
		if (c->len)
			memmove(c->buf, c->buf + msg_len, c->len);
		proto_scan_reset(&c->scan);
		if (r != 0)
			return r;
	}
	return 0;
}

/* Pack [0, msgid, method, <params bytes>]. */
static int request_pack(msgpack_sbuffer *sb, uint32_t msgid, const char *method,
			const void *params, size_t params_len)
{
	msgpack_packer pk;
	size_t mlen = strlen(method);

	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	if (msgpack_pack_array(&pk, 4) < 0 || msgpack_pack_int(&pk, PROTO_REQUEST) < 0 ||
	    msgpack_pack_uint32(&pk, msgid) < 0 || msgpack_pack_str(&pk, mlen) < 0 ||
	    msgpack_pack_str_body(&pk, method, mlen) < 0)
		return -ENOMEM;
	if (!params || params_len == 0)
		return msgpack_pack_array(&pk, 0) < 0 ? -ENOMEM : 0;
	return msgpack_sbuffer_write(sb, params, params_len) < 0 ? -ENOMEM : 0;
}

/* params must be exactly one msgpack array: anything else would desync the
 * stream and make the daemon drop the connection. */
static int params_check(const void *params, size_t params_len)
{
	msgpack_unpacked up;
	size_t off = 0;
	int r = 0;

	if (!params || params_len == 0)
		return 0;
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, params, params_len, &off) != MSGPACK_UNPACK_SUCCESS ||
	    off != params_len || up.data.type != MSGPACK_OBJECT_ARRAY)
		r = -EINVAL;
	msgpack_unpacked_destroy(&up);
	return r;
}

LMMS_EXPORT int lmms_client_call(lmms_client *c, const char *method, const void *params,
				 size_t params_len, lmms_reply *reply)
{
	msgpack_sbuffer sb;
	int64_t deadline;
	uint32_t msgid;
	int r;

	if (!c || !method || !reply)
		return -EINVAL;
	memset(reply, 0, sizeof(*reply));
	if (c->broken)
		return c->broken;
	if (!*method || strlen(method) > UINT32_MAX)
		return -EINVAL;
	r = params_check(params, params_len);
	if (r < 0)
		return r;

	deadline = c->timeout_ms ? now_ms() + c->timeout_ms : -1;
	msgid = c->next_msgid++;

	msgpack_sbuffer_init(&sb);
	r = request_pack(&sb, msgid, method, params, params_len);
	if (r < 0)
		goto out;

	r = send_all(c, sb.data, sb.size, deadline);
	if (r < 0) {
		/* A partly written request leaves the daemon mid-message. */
		c->broken = r == -ETIMEDOUT ? -EPIPE : r;
		goto out;
	}

	for (;;) {
		r = process_buffer(c, msgid, reply, NULL);
		if (r == 1) {
			r = 0;
			break;
		}
		if (r < 0) {
			if (r != -ENOMEM)
				c->broken = r;
			break;
		}
		r = recv_some(c, deadline);
		if (r < 0) {
			/* A timeout leaves the stream intact: the late answer
			 * is skipped by msgid on the next call. */
			if (r != -ETIMEDOUT && r != -ENOMEM)
				c->broken = r;
			break;
		}
	}

out:
	msgpack_sbuffer_destroy(&sb);
	return r;
}

LMMS_EXPORT int lmms_client_next_notification(lmms_client *c, int timeout_ms,
					     lmms_notification *note)
{
	queued_note *q = NULL;
	size_t mlen, plen;
	int64_t deadline;
	int r;

	if (!c || !note)
		return -EINVAL;
	memset(note, 0, sizeof(*note));
	if (c->notes_head) {
		q = c->notes_head;
		c->notes_head = q->next;
		if (!c->notes_head)
			c->notes_tail = NULL;
		c->notes_n--;
	} else {
		if (c->broken)
			return c->broken;
		deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
		for (;;) {
			r = process_buffer(c, NOTE_WANTED, NULL, &q);
			if (r == 1)
				break;
			if (r == 0)
				r = recv_some(c, deadline);
			if (r < 0) {
				if (r != -ETIMEDOUT && r != -ENOMEM)
					c->broken = r;
				return r;
			}
		}
	}
	/* The one allocation is handed over, its header squeezed out: method
	 * first, params right after it, one free() for both. */
	mlen = q->method_len;
	plen = q->params_len;
	memmove(q, q->data, mlen + 1 + plen);
	note->method = (char *)q;
	note->params = (char *)q + mlen + 1;
	note->params_len = plen;
	note->dropped = c->notes_dropped;
	c->notes_dropped = 0;
	return 0;
}

LMMS_EXPORT void lmms_notification_clear(lmms_notification *note)
{
	if (!note)
		return;
	free(note->method);
	memset(note, 0, sizeof(*note));
}

LMMS_EXPORT int lmms_client_call_str(lmms_client *c, const char *method, const char *const *args,
				     size_t n, lmms_reply *reply)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int r = -ENOMEM;

	if (reply)
		memset(reply, 0, sizeof(*reply));
	if (!c || !method || !reply || (n && !args) || n > UINT32_MAX)
		return -EINVAL;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (msgpack_pack_array(&pk, n) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		size_t len;

		if (!args[i]) {
			r = -EINVAL;
			goto out;
		}
		len = strlen(args[i]);
		if (msgpack_pack_str(&pk, len) < 0 || msgpack_pack_str_body(&pk, args[i], len) < 0)
			goto out;
	}
	r = lmms_client_call(c, method, sb.data, sb.size, reply);

out:
	msgpack_sbuffer_destroy(&sb);
	return r;
}

LMMS_EXPORT void lmms_reply_clear(lmms_reply *reply)
{
	if (!reply)
		return;
	free(reply->error_code);
	free(reply->error_message);
	free(reply->result);
	memset(reply, 0, sizeof(*reply));
}

LMMS_EXPORT const char *lmms_client_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case -ENOENT:
		return "no daemon socket at this path";
	case -ECONNREFUSED:
		return "connection refused (daemon not running?)";
	case -EACCES:
		return "permission denied (the socket admits root and group lmms)";
	case -ETIMEDOUT:
		return "no answer within the timeout";
	case -EPROTO:
		return "the daemon sent an invalid response";
	case -EMSGSIZE:
		return "response larger than the client's limit";
	case -EPIPE:
	case -ECONNRESET:
		return "the daemon closed the connection";
	case -ENAMETOOLONG:
		return "socket path too long";
	default:
		return err < 0 ? strerror(-err) : "unknown error";
	}
}
