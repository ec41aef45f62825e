/*
 * call.h - one operation call: the daemon side of the module host API.
 *
 * An lmms_call carries the params of one request (a msgpack array the daemon
 * decoded) and collects the op's result into a daemon-owned msgpack buffer.
 * The lmms_host table (call_host) is what modules see; every function in it
 * touches only the call it is given, so a BLOCKING op may use it from a worker
 * thread while the loop serves other calls.
 */
#ifndef LMMS_CALL_H
#define LMMS_CALL_H

#include <lmms/lmms-module.h>
#include <msgpack.h>
#include <stdbool.h>

#include "proto.h"

#define CALL_MAX_RESULT_DEPTH 32
#define CALL_FAIL_MSG_MAX 256

/* A module's own settings as ops see them (lmms_host.setting). Owned copies,
 * so a reload of the configuration never pulls a string from under an op. */
typedef struct call_setting {
	char *key, *value;
	bool read; /* the module asked for it (unread keys are warned about) */
} call_setting;

typedef struct call_settings {
	call_setting *v;
	uint32_t n;
} call_settings;

int call_settings_add(call_settings *s, const char *key, const char *value);
void call_settings_free(call_settings *s);

struct lmms_call {
	/* params */
	const msgpack_object *args; /* array elements */
	uint32_t n_args;

	/* result */
	msgpack_sbuffer out; /* encoded result value, daemon memory */
	msgpack_packer pk;
	size_t max_result_bytes;
	uint32_t depth; /* open containers */
	uint32_t pending[CALL_MAX_RESULT_DEPTH]; /* values still owed per container */
	uint32_t values; /* top-level values written (must end as 1) */
	int write_error; /* first error from a ret_* call, sticky */

	/* failure reported by fail() */
	bool failed;
	lmms_fail_class fail_class;
	char fail_msg[CALL_FAIL_MSG_MAX];

	/* scratch for arg_msgpack */
	msgpack_sbuffer scratch;
	/* The params array exactly as it came off the wire, when the caller has
	 * it (dispatch does): arg_msgpack then hands out slices of it instead of
	 * re-encoding, and ret_msgpack of such a slice skips the check the
	 * pre-scan already made. wire_levels bounds the nesting of any argument
	 * (server.max_depth minus the message and params arrays). */
	const char *wire;
	size_t wire_len;
	uint32_t wire_levels;
	const void *slice; /* the last slice arg_msgpack handed out */
	size_t slice_len;

	const char *module_name; /* for log prefixes */
	call_settings *settings; /* the module's own settings, or NULL */
};

extern const lmms_host call_host;

/* Prepare c for params (an array object; NULL means no params). */
void call_init(lmms_call *c, const msgpack_object *params, size_t max_result_bytes,
	       const char *module_name);
/* The params' wire bytes (an array that passed the pre-scan with
 * max_depth), valid for the whole call. */
static inline void call_set_wire(lmms_call *c, const char *wire, size_t len, uint32_t max_depth)
{
	c->wire = wire;
	c->wire_len = len;
	c->wire_levels = max_depth > 2 ? max_depth - 2 : 0;
}

/* Release buffers. Safe on a zeroed or already-released call. */
void call_fini(lmms_call *c);

/*
 * After the op returned rc: decide the outcome. Returns PROTO_OK when the
 * result is one complete value (then c->out holds it), else the error code
 * with *msg pointing at a message valid until call_fini:
 *   fail(PARAMS)          -> PROTO_E_BAD_PARAMS
 *   fail(MODULE), rc < 0  -> PROTO_E_MODULE_ERROR
 *   incomplete result, write errors, rc >= 0 with no value -> PROTO_E_MODULE_ERROR
 *   result over max_result_bytes -> PROTO_E_TOO_LARGE
 */
proto_err call_finish(lmms_call *c, int rc, const char **msg);

/* Take ownership of the result bytes (malloc'd); c->out is left empty. */
char *call_take_result(lmms_call *c, size_t *len);

#endif
