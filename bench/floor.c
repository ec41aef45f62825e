/*
 * floor.c - listener, connections and writes of the floor servers (floor.h).
 */
#include "floor.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const floor_ops *floor_server;
static const char *floor_path;

static void floor_on_close(uv_handle_t *h)
{
	floor_conn *c = (floor_conn *)h;

	if (floor_server->close)
		floor_server->close(c);
	free(c->wbuf);
	free(c);
}

void floor_close(floor_conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	uv_close((uv_handle_t *)&c->pipe, floor_on_close);
}

static void floor_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	floor_server->alloc((floor_conn *)h, suggested, buf);
}

static void floor_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	floor_conn *c = (floor_conn *)s;

	if (n > 0)
		floor_server->data(c, buf->base, (size_t)n);
	else if (n < 0)
		floor_close(c);
}

static void floor_on_write(uv_write_t *req, int status)
{
	floor_conn *c = req->data;

	free(c->wbuf);
	c->wbuf = NULL;
	if (status < 0 || c->closing) {
		floor_close(c);
		return;
	}
	if (uv_read_start((uv_stream_t *)&c->pipe, floor_on_alloc, floor_on_read) < 0)
		floor_close(c);
}

void floor_send(floor_conn *c, const char *p, size_t n)
{
	uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
	int r;

	if (c->closing || !n)
		return;
	r = uv_try_write((uv_stream_t *)&c->pipe, &b, 1);
	if (r == (int)n)
		return;
	if (r < 0 && r != UV_EAGAIN) {
		floor_close(c);
		return;
	}
	if (r < 0)
		r = 0;
	/* reads stop while this is written (floor_on_write restarts them), so
	 * there is never more than one remainder */
	c->wbuf = malloc(n - (size_t)r);
	if (!c->wbuf) {
		floor_close(c);
		return;
	}
	memcpy(c->wbuf, p + r, n - (size_t)r);
	b = uv_buf_init(c->wbuf, (unsigned)(n - (size_t)r));
	c->wreq.data = c;
	uv_read_stop((uv_stream_t *)&c->pipe);
	if (uv_write(&c->wreq, (uv_stream_t *)&c->pipe, &b, 1, floor_on_write) < 0) {
		free(c->wbuf);
		c->wbuf = NULL;
		floor_close(c);
	}
}

static void floor_on_connection(uv_stream_t *listener, int status)
{
	floor_conn *c;

	if (status < 0)
		return;
	c = calloc(1, floor_server->conn_size);
	if (!c)
		return;
	if (uv_pipe_init(listener->loop, &c->pipe, 0) < 0) {
		free(c);
		return;
	}
	if (uv_accept(listener, (uv_stream_t *)&c->pipe) < 0 ||
	    (floor_server->open && floor_server->open(c) < 0) ||
	    uv_read_start((uv_stream_t *)&c->pipe, floor_on_alloc, floor_on_read) < 0) {
		/* close() must find open's part either done or zeroed */
		floor_close(c);
	}
}

static void floor_on_signal(uv_signal_t *sig, int signum)
{
	/* A benchmark server has nothing to flush: leave at once, sockets and all. */
	unlink(floor_path);
	exit(0);
}

int floor_main(int argc, char **argv, const floor_ops *ops)
{
	uv_loop_t *loop = uv_default_loop();
	uv_signal_t sigterm, sigint;
	uv_pipe_t listener;
	int r;

	if (argc != 2) {
		fprintf(stderr, "usage: %s SOCKET\n", ops->name);
		return 2;
	}
	floor_server = ops;
	floor_path = argv[1];
	signal(SIGPIPE, SIG_IGN);
	unlink(floor_path);
	if ((r = uv_pipe_init(loop, &listener, 0)) < 0 ||
	    (r = uv_pipe_bind(&listener, floor_path)) < 0 ||
	    (r = uv_listen((uv_stream_t *)&listener, 1024, floor_on_connection)) < 0) {
		fprintf(stderr, "%s: %s: %s\n", ops->name, floor_path, uv_strerror(r));
		return 1;
	}
	uv_signal_init(loop, &sigterm);
	uv_signal_start(&sigterm, floor_on_signal, SIGTERM);
	uv_signal_init(loop, &sigint);
	uv_signal_start(&sigint, floor_on_signal, SIGINT);
	fprintf(stderr, "%s ready: listening on %s\n", ops->name, floor_path);
	return uv_run(loop, UV_RUN_DEFAULT) < 0 ? 1 : 0;
}
