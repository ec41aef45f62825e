/*
 * util.h - what the unit tests repeat: temporary directories, a private
 * module directory with copies of the built modules, socketpairs, a libuv
 * loop pumped until a condition holds (with a deadline, never a sleep),
 * request packing, and the messages a test reads back from its end of a
 * connection.
 *
 * Every helper asserts with Check, so a failure inside one fails the test
 * that called it (tests run forked, one process each).
 */
#ifndef LMMS_TESTS_UTIL_H
#define LMMS_TESTS_UTIL_H

#include <check.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "bbuf.h"
#include "daemon.h"
/* the daemon's util.h (now_ms, ARRAY_SIZE): a plain "util.h" here is this file */
#include "../daemon/util.h"

/* Generous: a noisy shared 2-core machine under ASan. Only ever a bound on
 * waiting for something that must happen, never a measurement. */
#define TU_TIMEOUT_MS 10000

/* Run every test of s (each forked, Check's default); main's exit status. */
int tu_run(Suite *s);

/* ---- files ---- */

/* mkdtemp under $TMPDIR (or /tmp) as "lmms-TAG-XXXXXX", mode 0755 (the
 * registry refuses module directories others can write). */
void tu_tmpdir(char *buf, size_t n, const char *tag);
/* rm -rf path, without following symlinks. */
void tu_rmtree(const char *path);
/* dir/name with content; returns the path in a static buffer. */
const char *tu_write_file(const char *dir, const char *name, const char *content);
void tu_copy_file(const char *src, const char *dst, mode_t mode);
/* The built NAME.so: $LMMS_MODULE_DIR (bundled) or $LMMS_TEST_MODULE_DIR
 * (fixtures). Static buffer. */
const char *tu_module_path(const char *name);
/* Copy the built NAME.so into dir, mode 0755. */
void tu_add_module(const char *dir, const char *name);

/* ---- sockets ---- */

/* A connected AF_UNIX stream pair; sv[1], the test's end, is non-blocking. */
void tu_socketpair(int sv[2]);
void tu_nonblock(int fd);
/* A non-blocking client socket connected to path (connect on a Unix socket
 * completes at once or fails). Returns the fd or -errno. */
int tu_connect(const char *path);

/* ---- the loop ---- */

/* A private loop and a tick timer that wakes tu_pump's UV_RUN_ONCE so it
 * can re-check its condition and its deadline. */
typedef struct tu_loop {
	uv_loop_t loop;
	uv_timer_t tick;
} tu_loop;

typedef bool (*tu_cond)(void *ud);

void tu_loop_init(tu_loop *l);
/* Close the tick, run the loop dry and assert no handle was left open. */
void tu_loop_fini(tu_loop *l);
/* Run the loop until cond(ud) holds or timeout_ms passed; returns cond. */
bool tu_pump(tu_loop *l, tu_cond cond, void *ud, uint64_t timeout_ms);
/* One non-blocking iteration: whatever is ready now (bytes already in the
 * kernel, due timers) is handled, nothing is waited for. */
void tu_pump_once(tu_loop *l);
/* Write all of p to the non-blocking fd, running the loop whenever the
 * socket is full (the loop's side may be what has to read it). */
void tu_send(tu_loop *l, int fd, const void *p, size_t n);

/* ---- messages ---- */

/*
 * Pack one request (or notification) onto sb; params from fmt, one char per
 * param: 's' const char *, 'i' int, 'b' bool (int), 'n' nil, 'a' an empty
 * array. Several calls on one buffer make a stream of messages.
 */
void tu_pack_request(msgpack_sbuffer *sb, uint32_t msgid, const char *method, const char *fmt,
		     ...);
void tu_pack_notification(msgpack_sbuffer *sb, const char *method, const char *fmt, ...);
/* Either, for helpers that take the params as their own "..." */
void tu_pack_va(msgpack_sbuffer *sb, bool notification, uint32_t msgid, const char *method,
		const char *fmt, va_list ap);

/* The test's end of a connection: bytes read so far, split into messages. */
typedef struct tu_peer {
	tu_loop *l;
	int fd;
	bbuf in;
	bool eof;
} tu_peer;

/* One message read from the peer, decoded. */
typedef struct tu_msg {
	msgpack_unpacked u;
	int type; /* PROTO_RESPONSE, ... */
	uint32_t msgid;
	bool ok; /* a response whose error is nil */
	char code[32]; /* error code of a failed response */
	char message[512];
	const msgpack_object *result;
} tu_msg;

void tu_peer_init(tu_peer *p, tu_loop *l, int fd);
/* Closes the fd. */
void tu_peer_fini(tu_peer *p);
/* Pump until one whole message is there; false on end of stream or timeout. */
bool tu_peer_next(tu_peer *p, tu_msg *m, uint64_t timeout_ms);
/* Pump until the other side closed (true), or timeout. Messages still
 * arriving before the close are counted into *n_msgs (may be NULL). */
bool tu_peer_wait_eof(tu_peer *p, uint32_t *n_msgs, uint64_t timeout_ms);
void tu_msg_free(tu_msg *m);

/* The next message must be a successful response to msgid; m receives it
 * (free with tu_msg_free), or NULL when the result does not matter. */
void tu_expect_ok(tu_peer *p, uint32_t msgid, tu_msg *m);
/* The next message must be an error response to msgid with this code and a
 * message containing text (NULL: any). */
void tu_expect_error(tu_peer *p, uint32_t msgid, const char *code, const char *text);

/* ---- a daemon in process ---- */

/*
 * A real lmmsd composed with lmmsd_init on a private loop (defaults, no
 * listener), its module directory a temporary copy of the named built
 * modules, and one connection over a socketpair whose other end is peer.
 * Messages go straight into dispatch_on_message; replies are read from peer.
 */
typedef struct tu_daemon {
	tu_loop tl;
	lmmsd d;
	char dir[256];
	conn *c;
	tu_peer peer;
} tu_daemon;

/* modules: NULL-terminated names. */
void tu_daemon_init(tu_daemon *t, const char *const *modules);
/* A graceful stop (in-flight calls finish), then everything freed. */
void tu_daemon_fini(tu_daemon *t);
/* dispatch_on_message's result; what it queued is flushed to the peer. */
int tu_daemon_feed(tu_daemon *t, const void *msg, size_t len);
/* Pack and feed a request / a notification (params as tu_pack_request). */
int tu_daemon_call(tu_daemon *t, uint32_t msgid, const char *method, const char *fmt, ...);
int tu_daemon_notify(tu_daemon *t, const char *method, const char *fmt, ...);
module *tu_daemon_module(tu_daemon *t, const char *name);
op_info *tu_daemon_op(tu_daemon *t, const char *method);

/* ---- msgpack objects ---- */

bool tu_obj_is_str(const msgpack_object *o, const char *s);
/* The value of key in map o, or NULL. */
const msgpack_object *tu_map_get(const msgpack_object *o, const char *key);
/* The unsigned value of key in map o; fails the test if absent or not a uint. */
uint64_t tu_map_uint(const msgpack_object *o, const char *key);

#endif
