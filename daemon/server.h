/*
 * server.h - the listening socket and client connections.
 *
 * Each connection decodes its byte stream with the proto pre-scan, so no
 * message is unpacked before it is known to be whole and within limits.
 * Backpressure: a connection stops reading while it has max_inflight requests
 * in flight or more than max_output_bytes of unsent output, and resumes when
 * they drain; buffered requests wait in its input buffer meanwhile, so
 * neither buffer grows without bound whatever the peer does.
 */
#ifndef LMMS_SERVER_H
#define LMMS_SERVER_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "proto.h"

struct lmmsd;

typedef struct bbuf {
	char *data;
	size_t len, cap;
} bbuf;

int bbuf_reserve(bbuf *b, size_t extra);
int bbuf_append(bbuf *b, const void *p, size_t n);
void bbuf_free(bbuf *b);
/* msgpack_packer write callback appending to a bbuf */
int bbuf_msgpack_write(void *data, const char *buf, size_t len);

typedef struct conn {
	struct lmmsd *d;
	uv_pipe_t pipe;
	struct conn *prev, *next; /* server's list */
	uint64_t id;
	uint32_t refs; /* 1 while open + 1 per request on the thread pool */
	bool closing;
	bool reading;
	bool fatal; /* a malformed message: close once output is flushed */
	bool eof; /* the peer stopped sending: close once everything is answered */
	bool backlog; /* whole requests wait in ibuf for the caps to clear */

	/* input */
	char *ibuf;
	size_t ilen, icap;
	proto_scan scan;
	msgpack_zone zone; /* params of inline calls, cleared per request */
	uint64_t partial_since_ms; /* first byte of an incomplete message */

	/* output: `out` collects, `wbuf` is being written */
	bbuf out, wbuf;
	uv_write_t wreq;
	bool writing;

	uint32_t inflight;
	uint64_t last_activity_ms;

	/* peer credentials (SO_PEERCRED) */
	pid_t pid;
	uid_t uid;
	gid_t gid;
	gid_t groups[64];
	uint32_t n_groups;
} conn;

typedef struct server {
	struct lmmsd *d;
	uv_pipe_t listener;
	bool listening;
	bool own_socket; /* we bound it, so we unlink it at exit */
	conn *conns;
	uint32_t n_conns;
	uint64_t next_id;
	uv_timer_t reaper; /* idle and partial-message deadlines */
} server;

/* Listen on path (or on fd >= 0, inherited from systemd). */
int server_start(server *s, struct lmmsd *d, const char *path, int fd);
void server_stop_listening(server *s);
void server_close_all(server *s);
/* Unsent output of all connections plus requests in flight. */
bool server_idle(const server *s);

/* A connection on an already connected fd (tests, benchmark); not reading. */
conn *server_conn_open(server *s, struct lmmsd *d, int fd);

/* Replies. A notification (notify=true) is never answered. */
void conn_reply_raw(conn *c, uint32_t msgid, const char *result, size_t len);
void conn_reply_error(conn *c, uint32_t msgid, proto_err code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Start a success reply and return a packer for its result value. */
msgpack_packer *conn_reply_begin(conn *c, uint32_t msgid, msgpack_packer *pk);
void conn_reply_end(conn *c);

/* Start writing queued output (replies are otherwise flushed when the
 * connection's processing loop ends). */
void conn_flush(conn *c);

void conn_ref(conn *c);
void conn_unref(conn *c);
/* A request finished on the thread pool: maybe resume reading. */
void conn_request_done(conn *c);
void conn_close(conn *c);

#endif
