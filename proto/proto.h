/*
 * proto.h - MessagePack-RPC messages, limits and the allocation-free pre-scan.
 *
 * Shared by the daemon and the client library. msgpack-c's unpacker has no
 * size or depth limits of its own (a 5-byte array header can make it reserve
 * gigabytes), so every incoming byte stream goes through proto_scan first: it
 * walks the msgpack encoding without allocating, finds where one message
 * ends, and rejects it if it breaks a limit. Only a message that passed is
 * handed to msgpack_unpack, whose allocations are then bounded by the limits.
 *
 * The scanner is resumable: fed a growing buffer, it never re-reads the bodies
 * of strings it has already stepped over, so a peer trickling a message one
 * byte at a time costs O(message size) in total, not O(size^2).
 */
#ifndef LMMS_PROTO_H
#define LMMS_PROTO_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Message types (first element of the array). */
enum {
	PROTO_REQUEST = 0,
	PROTO_RESPONSE = 1,
	PROTO_NOTIFICATION = 2,
};

/* Stable wire error codes; proto_err_name() gives the string on the wire.
 * Documented in proto/PROTOCOL.md. Append only. */
typedef enum proto_err {
	PROTO_OK = 0,
	PROTO_E_NO_SUCH_MODULE,
	PROTO_E_NO_SUCH_METHOD,
	PROTO_E_BAD_REQUEST,
	PROTO_E_BAD_PARAMS,
	PROTO_E_LOAD_FAILED,
	PROTO_E_MODULE_ERROR,
	PROTO_E_TIMEOUT,
	PROTO_E_DENIED,
	PROTO_E_BUSY,
	PROTO_E_TOO_LARGE,
	PROTO_E_SHUTTING_DOWN,
	PROTO_E_INTERNAL,
	PROTO_E_MODULE_CRASHED, /* the worker of an isolated module died during the call */
	PROTO_E__MAX,
} proto_err;

const char *proto_err_name(proto_err e);
/* Reverse lookup; PROTO_E_INTERNAL for an unknown string. */
proto_err proto_err_from_name(const char *s, size_t n);

typedef struct proto_limits {
	uint32_t max_message_bytes; /* whole message, encoded */
	uint32_t max_depth; /* nesting of arrays/maps; the message array is depth 1 */
	uint32_t max_elements; /* total objects in one message, containers included */
	uint32_t max_str_bytes; /* one str, bin or ext payload */
} proto_limits;

#define PROTO_DEPTH_HARD_MAX 64u /* the scanner's own stack; max_depth is clamped to it
				  * (and, in scan.c, to msgpack-c's unpacker stack: 32) */

/* Defaults: 1 MiB, depth 32, 65536 elements, strings up to the message size. */
void proto_limits_default(proto_limits *l);

typedef enum proto_scan_status {
	PROTO_SCAN_MORE = 0, /* need more bytes */
	PROTO_SCAN_DONE = 1, /* one whole message of scan->msg_len bytes */
	PROTO_SCAN_ERROR = -1, /* malformed or over a limit: see err/reason */
} proto_scan_status;

typedef struct proto_scan {
	/* results */
	size_t msg_len; /* on DONE: bytes of the message */
	proto_err err; /* on ERROR: PROTO_E_TOO_LARGE or PROTO_E_BAD_REQUEST */
	const char *reason; /* on ERROR: static text for the error message */
	bool have_msgid; /* a request's msgid was seen before the error */
	uint32_t msgid;

	/* private resumable state */
	bool value_only; /* proto_check_value: any one value, no message shape */
	size_t pos; /* start of the next object to read */
	uint32_t depth; /* containers open */
	uint32_t elements; /* objects seen so far */
	uint32_t top_index; /* index of the next element of the top array */
	uint32_t top_type; /* first element, once read */
	uint64_t remaining[PROTO_DEPTH_HARD_MAX]; /* objects left per open container */
} proto_scan;

void proto_scan_reset(proto_scan *s);

/*
 * Scan buf[0..len) for one message starting at buf[0]. Call again with the
 * same (grown) buffer after MORE; call proto_scan_reset before the next
 * message. Besides msgpack well-formedness it checks the outer shape as far
 * as bytes allow: top level must be an array of 3 or 4 elements whose first
 * element is a positive integer (the type). MORE with len already beyond
 * max_message_bytes is reported as ERROR (too_large).
 */
proto_scan_status proto_scan_feed(proto_scan *s, const proto_limits *l, const void *buf,
				  size_t len);

/*
 * Is p[0..n) exactly one complete msgpack value nesting at most max_depth
 * containers (empty ones count: msgpack-c needs a stack slot for them too)?
 * The same allocation-free walk as proto_scan_feed, without the message
 * shape. 0, -ELOOP when too deep, -EINVAL when malformed, truncated or
 * followed by more bytes, -E2BIG when n does not fit the scanner.
 */
int proto_check_value(const void *p, size_t n, uint32_t max_depth);
/* The same walk, for the first value of p[0..n): its length in *len (more
 * bytes may follow it). */
int proto_value_len(const void *p, size_t n, uint32_t max_depth, size_t *len);

/* A decoded message. Pointers refer into the msgpack_object it came from. */
typedef struct proto_msg {
	int type; /* PROTO_REQUEST / PROTO_RESPONSE / PROTO_NOTIFICATION */
	uint32_t msgid; /* request, response */
	const char *method; /* request, notification; not NUL-terminated */
	uint32_t method_len;
	const msgpack_object *params; /* request, notification: always an array */
	const msgpack_object *error; /* response: nil or [code, message] */
	const msgpack_object *result; /* response */
} proto_msg;

/*
 * Check the shape of an unpacked message and fill *m. Returns PROTO_OK or
 * PROTO_E_BAD_REQUEST with *reason set (static text). If the message is a
 * request whose msgid could be read, m->type and m->msgid are set even on
 * error, so the caller can answer it.
 */
proto_err proto_msg_parse(const msgpack_object *o, proto_msg *m, const char **reason);

/*
 * The common encoding of a request or notification, read straight from the
 * wire bytes of a whole message that passed the pre-scan, without unpacking:
 * a fixarray header, type 0 with a uint msgid (or type 2), a str method and
 * an array of params running to the end of the message. true with *r filled
 * (pointers into msg) when msg has that form; false for anything else
 * (responses, bin methods, other encodings), which the caller then decodes
 * in full with msgpack_unpack and proto_msg_parse.
 */
typedef struct proto_request {
	uint32_t msgid;
	bool notify;
	const char *method;
	uint32_t method_len;
	const char *params; /* the params array's bytes */
	size_t params_len;
} proto_request;

bool proto_request_peek(const char *msg, size_t len, proto_request *r);

/* Split "module.op" at the first dot. Fails (-EINVAL) on an empty part, a
 * missing dot, a NUL byte, '/' or "..", or names longer than 255 bytes. */
int proto_method_split(const char *method, size_t len, const char **mod, size_t *mod_len,
		       const char **op, size_t *op_len);

/* Writers. The packer's buffer receives one complete message each. */
int proto_pack_request(msgpack_packer *pk, uint32_t msgid, const char *method, size_t method_len,
		       uint32_t n_params);
/* ...followed by the caller packing n_params values. */
int proto_pack_notification(msgpack_packer *pk, const char *method, size_t method_len,
			    uint32_t n_params);
/* Response header with nil error; the caller packs the result value next. */
int proto_pack_response_ok(msgpack_packer *pk, uint32_t msgid);
/* Whole error response: [1, msgid, [code, message], nil]. */
int proto_pack_response_error(msgpack_packer *pk, uint32_t msgid, proto_err code,
			      const char *message);
/* Same with the code given as a string (for codes relayed verbatim). */
int proto_pack_response_error_str(msgpack_packer *pk, uint32_t msgid, const char *code,
				  const char *message);

/*
 * The default socket path of DESIGN.md §6, shared by daemon and clients:
 * $LMMS_SOCKET, else /run/lmms/lmmsd.sock for root, else
 * $XDG_RUNTIME_DIR/lmms/lmmsd.sock, else /run/user/UID/lmms/lmmsd.sock
 * (where logind would have put it; never a guessable name in /tmp, which
 * another user could squat). -ENAMETOOLONG if it does not fit in n bytes.
 */
int proto_default_socket(char *buf, size_t n);

/* Pack a str from a NUL-terminated C string. */
int proto_pack_cstr(msgpack_packer *pk, const char *s);

#endif
