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
 *   -EACCES                  not allowed to connect (root and group lmms are)
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

/* A daemon's notification [2, method, params] (lmms.monitor sends them). */
typedef struct lmms_notification {
	char *method; /* NUL-terminated */
	void *params; /* msgpack bytes of the params array */
	size_t params_len;
	uint64_t dropped; /* notifications this client dropped before this one */
} lmms_notification;

/*
 * The sockets a client tries when given none, in order (DESIGN.md §6):
 *   0: $LMMS_SOCKET when set (and then nothing else); else the user's own,
 *      /run/lmms/lmmsd.sock for root, else $XDG_RUNTIME_DIR/lmms/lmmsd.sock
 *      (/run/user/UID/lmms/lmmsd.sock when XDG_RUNTIME_DIR is unset);
 *   1: the system daemon's /run/lmms/lmmsd.sock, when that is another path.
 * Writes at most n bytes including the NUL; -ENOENT past the last one,
 * -ENAMETOOLONG if it does not fit. lmms_client_default_socket is index 0.
 */
int lmms_client_default_socket_at(unsigned i, char *buf, size_t n);
int lmms_client_default_socket(char *buf, size_t n);

/* Connect to path; NULL follows the default rule: each default socket in
 * turn, going on to the next only while there is no daemon at one (ENOENT,
 * ECONNREFUSED, ENOTDIR); any other error (EACCES) is the answer. */
int lmms_client_connect(const char *path, lmms_client **out);
/* The default rule, also telling in tried (if not NULL) the socket it
 * connected to or, on failure, the last one it tried. */
int lmms_client_connect_default(lmms_client **out, char *tried, size_t tried_len);
void lmms_client_close(lmms_client *c);

/* The socket path this client is connected to. */
const char *lmms_client_path(const lmms_client *c);

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

/*
 * The next notification from the daemon: one that arrived while a call
 * waited for its response (up to 1024 are kept, the oldest dropped past
 * that), else the next to arrive within timeout_ms (negative: no limit;
 * -ETIMEDOUT when none came). Release it with lmms_notification_clear.
 */
int lmms_client_next_notification(lmms_client *c, int timeout_ms, lmms_notification *note);
void lmms_notification_clear(lmms_notification *note);

/* Human text for a negative return of this library. */
const char *lmms_client_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif
