/*
 * dispatch.h - from a whole message to a reply: the fast path, the cache,
 * the registry, and running the op inline or on the thread pool.
 */
#ifndef LMMS_DISPATCH_H
#define LMMS_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

struct lmmsd;
struct conn;

/* One whole message that passed the pre-scan. Returns -EBADMSG when the
 * connection must be closed (after the error reply already queued). */
int dispatch_message(struct lmmsd *d, struct conn *c, const char *msg, size_t len);

/* Answer "timeout" to BLOCKING calls older than server.call_timeout. */
void dispatch_expire_calls(struct lmmsd *d, uint64_t now_ms);

#endif
