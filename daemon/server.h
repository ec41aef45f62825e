/*
 * server.h - the transport: the listening socket and client connections.
 *
 * It accepts, reads, frames each message with the proto pre-scan (so nothing
 * is unpacked before it is known to be whole and within limits), enforces its
 * own limits, writes and closes. Every whole message goes up through the
 * on_message callback with an opaque pointer; the transport knows nothing
 * above it (no dispatch, registry or daemon), the way a libuv stream hands
 * bytes to its read callback.
 *
 * Backpressure: a connection stops reading while it has max_inflight
 * requests in flight or more than max_output_bytes of unsent output, and
 * resumes when they drain; whole requests wait in its bounded input buffer
 * meanwhile, so neither buffer grows without bound whatever the peer does.
 *
 * Deadlines (the reaper, every SERVER_REAPER_MS):
 *  - message_timeout: a message whose first byte arrived must be complete in
 *    this long, whether or not the connection has calls in flight (slowloris);
 *  - write_timeout: pending output that makes no progress for this long
 *    closes the connection (a client that stops reading);
 *  - idle_timeout: nothing in flight, nothing to send, nothing received.
 */
#ifndef LMMS_SERVER_H
#define LMMS_SERVER_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "bbuf.h"
#include "proto.h"

#define SERVER_REAPER_MS 250
#define CONN_MAX_GROUPS 64

typedef struct server server;
typedef struct conn conn;

typedef struct server_limits {
	proto_limits proto;
	uint32_t max_connections;
	uint32_t max_connections_per_uid;
	uint32_t max_inflight; /* requests in flight per connection */
	uint32_t max_output_bytes; /* unsent output per connection before reading stops */
	uint64_t idle_timeout_ms; /* 0 = never */
	uint64_t message_timeout_ms; /* 0 = never */
	uint64_t write_timeout_ms; /* 0 = never */
	uint32_t backlog; /* listen(2) backlog */
} server_limits;

typedef struct server_callbacks {
	/* One whole message that passed the pre-scan. A negative return closes
	 * the connection once the output queued so far is flushed. */
	int (*on_message)(void *ud, conn *c, const char *msg, size_t len);
	/* The connection is closing: the layer above drops what it keeps for
	 * it. The conn stays valid until the last conn_unref. Optional. */
	void (*on_close)(void *ud, conn *c);
	/* Output the socket did not take at once, held until the peer reads
	 * it, grew or shrank by delta bytes (per-uid budgets). Optional. */
	void (*on_pending)(void *ud, conn *c, int64_t delta);
} server_callbacks;

typedef struct server_stats {
	uint64_t connections_total; /* accepted and kept */
	uint64_t connections_refused; /* over a cap, or while draining */
	uint64_t malformed; /* byte streams the pre-scan rejected */
	uint64_t timeouts; /* connections closed by a deadline */
} server_stats;

struct conn {
	server *srv;
	void *data; /* the layer above's own per-connection pointer */
	uv_pipe_t pipe;
	conn *prev, *next; /* server's list */
	uint64_t id;
	uint32_t refs; /* 1 while open + 1 per holder (requests on the pool, ...) */
	bool closing;
	bool reading;
	bool fatal; /* a malformed message: close once output is flushed */
	bool eof; /* the peer stopped sending: close once everything is answered */
	bool backlog; /* whole requests wait in ibuf for the caps to clear */
	bool held; /* the layer above paused reading (conn_hold) */
	bool in_process, again; /* a processing pass runs; another one is wanted */

	/* input */
	char *ibuf;
	size_t ilen, icap;
	proto_scan scan;
	uint64_t partial_since_ms; /* first byte of an incomplete message */

	/* output: `out` collects, `wbuf` is being written by uv_write */
	bbuf out, wbuf;
	uv_write_t wreq;
	bool writing;
	uint64_t write_stalled_since_ms; /* output pending without progress since */
	size_t pending; /* bytes reported through on_pending */

	uint32_t inflight;
	uint64_t last_activity_ms;

	/* peer credentials (SO_PEERCRED, SO_PEERGROUPS) */
	pid_t pid;
	uid_t uid;
	gid_t gid;
	gid_t groups[CONN_MAX_GROUPS];
	uint32_t n_groups;
};

struct server {
	uv_loop_t *loop;
	server_limits limits;
	server_callbacks cb;
	void *ud;
	uv_pipe_t listener;
	bool listener_open; /* uv_pipe_init ran on it */
	bool listening;
	bool draining; /* no reading, no accepting: shutting down */
	bool own_socket; /* we bound it, so we unlink it at exit */
	char path[108];
	conn *conns;
	uint32_t n_conns;
	uint64_t next_id;
	uv_timer_t reaper;
	bool reaper_open;
	uint64_t refused_logged_ms;
	server_stats st;
};

/* Zero state; nothing to undo until server_start succeeded. */
void server_init(server *s, uv_loop_t *loop, const server_limits *l, const server_callbacks *cb,
		 void *ud);
/* Listen on path (or on fd >= 0, inherited from the service manager). */
int server_start(server *s, const char *path, int fd);
/* New limits (a reload): open connections follow them from their next read. */
void server_set_limits(server *s, const server_limits *l);
/* Stop accepting and reading; what is in flight is still answered. */
void server_drain(server *s);
void server_stop_listening(server *s);
/* Close every connection and the server's own handles. */
void server_close(server *s);
/* No unsent output and no request in flight on any connection. */
bool server_idle(const server *s);
/* The bound path of the listener (for an inherited socket), or "". */
void server_listen_name(server *s, char *buf, size_t n);

/* A connection over an fd the caller already has (one end of a socketpair),
 * for tests and the benchmark. It starts reading like an accepted one. */
conn *server_conn_open(server *s, int fd);

/* Replies. Both queue one whole message; the flush comes after the current
 * read is processed, or at once with conn_flush. */
void conn_reply_raw(conn *c, uint32_t msgid, const char *result, size_t len);
void conn_reply_error(conn *c, uint32_t msgid, proto_err code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Queue bytes that already form whole messages (notifications, replies
 * built elsewhere). -ENOMEM closes the connection. */
int conn_send(conn *c, const void *msg, size_t len);
/* Unsent output bytes. */
size_t conn_unsent(const conn *c);
void conn_flush(conn *c);

void conn_ref(conn *c);
void conn_unref(conn *c);
/* A request leaves for elsewhere (the pool, a worker) and comes back with
 * conn_request_done; in between it counts against max_inflight. */
void conn_request_begin(conn *c);
void conn_request_done(conn *c);
/* Pause or resume reading on behalf of the layer above (per-uid budgets). */
void conn_hold(conn *c, bool hold);
void conn_close(conn *c);

#endif
