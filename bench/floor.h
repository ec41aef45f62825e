/*
 * floor.h - what the two floor servers of the benchmark share: a libuv
 * listener on a Unix socket, connections whose reads go to the server's own
 * handler, and the cheapest libuv write there is (uv_try_write, queueing only
 * what the socket did not take). A floor is the least a libuv server can do
 * per message, so everything here stays that small on purpose: no limits,
 * no timeouts, no logging but the one "ready:" line the harness waits for.
 */
#ifndef LMMS_BENCH_FLOOR_H
#define LMMS_BENCH_FLOOR_H

#include <stddef.h>
#include <uv.h>

typedef struct floor_conn {
	uv_pipe_t pipe; /* first: the handle's address is the conn's */
	char *wbuf; /* the rest of a reply the socket did not take, being written */
	uv_write_t wreq;
	int closing;
} floor_conn;

typedef struct floor_ops {
	const char *name; /* for the usage and ready lines */
	size_t conn_size; /* the server's conn struct, which starts with floor_conn */
	int (*open)(floor_conn *c); /* 0 or a negative errno; the conn is zeroed */
	void (*alloc)(floor_conn *c, size_t suggested, uv_buf_t *buf);
	void (*data)(floor_conn *c, const char *p, size_t n); /* n > 0 bytes were read */
	void (*close)(floor_conn *c); /* free what open allocated */
} floor_ops;

/* floor-server SOCKET: listen, print "ready: listening on SOCKET" on stderr,
 * serve until SIGTERM or SIGINT, then exit 0. */
int floor_main(int argc, char **argv, const floor_ops *ops);

/* Write n bytes back. While a remainder is being written the conn is not
 * read, so a client that does not read its replies stops being served
 * instead of growing a queue. */
void floor_send(floor_conn *c, const char *p, size_t n);

void floor_close(floor_conn *c);

#endif
