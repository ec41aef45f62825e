/*
 * lmms-client.h - blocking C client for lmmsd (liblmms-client).
 *
 * One lmms_client is one connection; it is not thread-safe (use one per
 * thread). Calls are synchronous: lmms_client_call sends a request and waits
 * for the response with the same msgid. Params and results travel as raw
 * MessagePack bytes, so the library imposes no object model of its own; the
 * lmms_client_call_str helper covers the common "string in" case.
 *
 * All functions returning int give 0 on success or a negative errno:
 *   -ENOENT / -ECONNREFUSED  no daemon at the path
 *   -ETIMEDOUT               no answer within the timeout
 *   -EPROTO                  the daemon sent something that is not a valid response
 *   -EMSGSIZE                a response over the client's size limit
 *   -EPIPE / -ECONNRESET     the daemon closed the connection
 * A call the daemon answered with an error still returns 0: look at
 * reply->error_code ("no_such_method", ...; see proto/PROTOCOL.md).
 */
#ifndef LMMS_CLIENT_H
#define LMMS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lmms_client lmms_client;

typedef struct lmms_reply {
	char *error_code; /* NULL on success, else the wire code (NUL-terminated) */
	char *error_message; /* NULL on success */
	void *result; /* msgpack bytes of the result (nil on error) */
	size_t result_len;
} lmms_reply;

/* The socket path a client uses when given none: $LMMS_SOCKET, else
 * /run/lmms/lmmsd.sock for root, else $XDG_RUNTIME_DIR/lmms/lmmsd.sock.
 * Writes at most n bytes including the NUL; -ENAMETOOLONG if it does not fit. */
int lmms_client_default_socket(char *buf, size_t n);

/* Connect to path (NULL: the default). */
int lmms_client_connect(const char *path, lmms_client **out);
void lmms_client_close(lmms_client *c);

/* Timeout for each call in milliseconds; 0 waits forever. Default 30000. */
void lmms_client_set_timeout(lmms_client *c, uint32_t ms);

/* Call method with params given as one msgpack array (NULL/0 means []). */
int lmms_client_call(lmms_client *c, const char *method, const void *params, size_t params_len,
		     lmms_reply *reply);

/* Call method with n string arguments. */
int lmms_client_call_str(lmms_client *c, const char *method, const char *const *args, size_t n,
			 lmms_reply *reply);

/* Release what a reply holds and zero it. */
void lmms_reply_clear(lmms_reply *reply);

/* Human text for a negative return of this library. */
const char *lmms_client_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif
