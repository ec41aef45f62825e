/*
 * client.c - liblmms-client: a blocking MessagePack-RPC client for lmmsd.
 *
 * One connection, one call at a time. Incoming bytes go through proto_scan
 * before msgpack_unpack sees them, so a broken or hostile peer can make us
 * allocate at most the client's own limits (64 MiB per response), never what
 * a length header claims. Responses for other msgids (a late answer to a call
 * that timed out) and notifications are skipped.
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
};

LMMS_EXPORT int lmms_client_default_socket(char *buf, size_t n)
{
	return proto_default_socket(buf, n);
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

LMMS_EXPORT int lmms_client_connect(const char *path, lmms_client **out)
{
	char def[sizeof(((struct sockaddr_un *)0)->sun_path)];
	lmms_client *c;
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;

	if (!path) {
		r = lmms_client_default_socket(def, sizeof(def));
		if (r < 0)
			return r;
		path = def;
	}

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
	free(c->buf);
	free(c);
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

/*
 * Consume whole messages from c->buf until the response to msgid is found.
 * Returns 1 with reply filled, 0 if more bytes are needed, or an error
 * (after which the byte stream cannot be trusted any more).
 */
static int process_buffer(lmms_client *c, uint32_t msgid, lmms_reply *reply)
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
		} else if (m.type == PROTO_RESPONSE && m.msgid == msgid) {
			r = reply_fill(reply, &m);
			if (r == 0)
				r = 1;
		}
		/* Anything else (a notification, a late answer to a call that
		 * timed out, a request from the server) is skipped. */
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
		r = process_buffer(c, msgid, reply);
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
