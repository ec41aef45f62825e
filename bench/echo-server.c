/*
 * echo-server.c - the floor for any protocol: a bare libuv server on a Unix
 * socket that writes back what it reads, as it reads it, with no parsing.
 * The load client sends it lmmsd's own requests and checks each comes back
 * intact, so it costs what one read and one write per batch cost.
 *
 *   echo-server SOCKET
 */
#include "floor.h"

#define ECHO_BUF (64 * 1024)

typedef struct echo_conn {
	floor_conn base;
	char buf[ECHO_BUF]; /* reads land here and are written from here */
} echo_conn;

static void echo_alloc(floor_conn *c, size_t suggested, uv_buf_t *buf)
{
	*buf = uv_buf_init(((echo_conn *)c)->buf, ECHO_BUF);
}

static void echo_data(floor_conn *c, const char *p, size_t n)
{
	floor_send(c, p, n);
}

int main(int argc, char **argv)
{
	static const floor_ops ops = {
		.name = "echo-server",
		.conn_size = sizeof(echo_conn),
		.alloc = echo_alloc,
		.data = echo_data,
	};

	return floor_main(argc, argv, &ops);
}
