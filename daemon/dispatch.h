/*
 * dispatch.h - from a whole message to a reply (DESIGN.md §1): the ZAFP fast
 * path, the built-in interface, the result cache, the LIGS registry, then the
 * op, inline on the loop or on the thread pool; heat, cache store, last use
 * and the reply after it returned.
 *
 * The transport hands messages in through dispatch_on_message (its
 * on_message callback); dispatch owns the BLOCKING calls in flight and its
 * own timer that answers "timeout" to the ones past server.call_timeout.
 */
#ifndef LMMS_DISPATCH_H
#define LMMS_DISPATCH_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cache.h"
#include "config.h"
#include "heat.h"
#include "list.h"
#include "proto.h"
#include "registry.h"
#include "scheduler.h"
#include "server.h"

struct builtin;

typedef struct dispatch_stats {
	uint64_t requests_total;
	uint64_t errors_total; /* error replies, and errors of notifications */
	uint64_t notifications_total;
	uint64_t pool_calls; /* calls run on the thread pool */
} dispatch_stats;

/* How a finished call went, for observers (lmms.monitor). */
typedef enum dispatch_path {
	PATH_FAST = 0,
	PATH_CACHE,
	PATH_INLINE,
	PATH_POOL,
	PATH_WORKER,
	PATH_BUILTIN,
} dispatch_path;

const char *dispatch_path_name(dispatch_path p);

typedef struct dispatch_event {
	const conn *c;
	const char *method;
	uint32_t method_len;
	dispatch_path path;
	bool loaded; /* the module was loaded for this call */
	uint64_t ns;
	size_t result_bytes;
	proto_err error;
} dispatch_event;

typedef struct dispatch {
	uv_loop_t *loop;
	const config *cfg;
	registry *reg;
	heat *heat;
	cache *cache;
	struct builtin *builtin;
	sched *sched; /* BLOCKING calls, fair per uid */

	list_node calls; /* BLOCKING calls on the pool, newest first */
	uv_timer_t expire_timer;
	bool expire_open;
	msgpack_zone zone; /* params of inline calls, cleared per request */
	bool zone_open;
	bool shutting_down;
	dispatch_stats st;

	/* A cache entry expiring at expires_ms was stored (the owner of the
	 * expiry timer pulls it forward). Optional. */
	void (*on_cache_stored)(void *ud, uint64_t expires_ms);
	void *ud;
	/* A call finished (only while someone watches: lmms.monitor). */
	void (*on_event)(void *ud, const dispatch_event *ev);
	void *ud_event;
} dispatch;

/* Fields at safe values first, so dispatch_fini undoes a half-done init. */
int dispatch_init(dispatch *dp, uv_loop_t *loop, const config *cfg, registry *reg, heat *ht,
		  cache *ch, struct builtin *bi, sched *sc);
void dispatch_fini(dispatch *dp);
/* server.on_message: one whole message that passed the pre-scan. -EBADMSG
 * when the connection must be closed (after the error reply was queued). */
int dispatch_on_message(void *dp, conn *c, const char *msg, size_t len);
/* server.on_close */
void dispatch_on_close(void *dp, conn *c);
/* (Re)arm the expiry timer after server.call_timeout changed. */
void dispatch_config_changed(dispatch *dp);
/* Refuse new requests from now on (shutting_down). */
void dispatch_stop(dispatch *dp);
/* BLOCKING calls still running. */
uint32_t dispatch_pool_in_flight(const dispatch *dp);

/* For the built-ins: an error reply (or, for a notification, only the count). */
void dispatch_reply_error(dispatch *dp, conn *c, uint32_t msgid, bool notify, proto_err e,
			  const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#endif
