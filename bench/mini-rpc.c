/*
 * mini-rpc.c - the floor for MessagePack-RPC: the least a libuv server using
 * msgpack-c can do per request. Each request [0, msgid, method, params] is
 * answered [1, msgid, nil, params[0]] (nil when params is empty), whatever
 * the method; notifications are ignored; anything else closes the
 * connection. Replies to all requests of one read go out in one write.
 * No limits, no dispatch, no modules: what is left is the protocol itself.
 *
 *   mini-rpc SOCKET
 */
#include <errno.h>
#include <msgpack.h>

#include "floor.h"

#define MINI_READ (64 * 1024)

typedef struct mini_conn {
	floor_conn base;
	bool ready; /* the msgpack objects below are initialised */
	msgpack_unpacker up;
	msgpack_unpacked msg;
	msgpack_sbuffer out;
	msgpack_packer pk;
} mini_conn;

static int mini_open(floor_conn *fc)
{
	mini_conn *c = (mini_conn *)fc;

	if (!msgpack_unpacker_init(&c->up, MINI_READ))
		return -ENOMEM;
	msgpack_unpacked_init(&c->msg);
	msgpack_sbuffer_init(&c->out);
	msgpack_packer_init(&c->pk, &c->out, msgpack_sbuffer_write);
	c->ready = true;
	return 0;
}

static void mini_close(floor_conn *fc)
{
	mini_conn *c = (mini_conn *)fc;

	if (!c->ready)
		return;
	msgpack_unpacked_destroy(&c->msg);
	msgpack_unpacker_destroy(&c->up);
	msgpack_sbuffer_destroy(&c->out);
}

static void mini_alloc(floor_conn *fc, size_t suggested, uv_buf_t *buf)
{
	mini_conn *c = (mini_conn *)fc;

	/* a NULL buffer makes libuv report UV_ENOBUFS, which closes the conn */
	if (!msgpack_unpacker_reserve_buffer(&c->up, MINI_READ))
		*buf = uv_buf_init(NULL, 0);
	else
		*buf = uv_buf_init(msgpack_unpacker_buffer(&c->up),
				   (unsigned)msgpack_unpacker_buffer_capacity(&c->up));
}

/* 0 if o was a request (answered) or a notification (ignored). */
static int mini_handle(mini_conn *c, const msgpack_object *o)
{
	const msgpack_object *a = o->via.array.ptr;

	if (o->type != MSGPACK_OBJECT_ARRAY || !o->via.array.size ||
	    a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return -EPROTO;
	if (a[0].via.u64 == 2 && o->via.array.size == 3)
		return 0;
	if (a[0].via.u64 != 0 || o->via.array.size != 4 ||
	    a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[1].via.u64 > UINT32_MAX ||
	    a[3].type != MSGPACK_OBJECT_ARRAY)
		return -EPROTO;
	msgpack_pack_array(&c->pk, 4);
	msgpack_pack_uint8(&c->pk, 1);
	msgpack_pack_uint32(&c->pk, (uint32_t)a[1].via.u64);
	msgpack_pack_nil(&c->pk);
	if (a[3].via.array.size)
		msgpack_pack_object(&c->pk, a[3].via.array.ptr[0]);
	else
		msgpack_pack_nil(&c->pk);
	return 0;
}

static void mini_data(floor_conn *fc, const char *p, size_t n)
{
	mini_conn *c = (mini_conn *)fc;
	msgpack_unpack_return r;

	msgpack_unpacker_buffer_consumed(&c->up, n);
	while ((r = msgpack_unpacker_next(&c->up, &c->msg)) == MSGPACK_UNPACK_SUCCESS) {
		if (mini_handle(c, &c->msg.data) < 0) {
			floor_close(fc);
			return;
		}
	}
	if (r != MSGPACK_UNPACK_CONTINUE) {
		floor_close(fc);
		return;
	}
	floor_send(fc, c->out.data, c->out.size);
	c->out.size = 0;
}

int main(int argc, char **argv)
{
	static const floor_ops ops = {
		.name = "mini-rpc",
		.conn_size = sizeof(mini_conn),
		.open = mini_open,
		.alloc = mini_alloc,
		.data = mini_data,
		.close = mini_close,
	};

	return floor_main(argc, argv, &ops);
}
