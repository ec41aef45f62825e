/*
 * builtin.h - the built-in "lmms" interface (DESIGN.md §2), as a method
 * table: one row per method with its handler, its arity and whether it is
 * for administrators. builtin_call checks arity, rights and notifications
 * once for every row, builds the reply with a self-counting builder, and
 * sends either the whole reply or an error, never a truncated value.
 */
#ifndef LMMS_BUILTIN_H
#define LMMS_BUILTIN_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto.h"
#include "reply.h"
#include "server.h"

struct lmmsd;

typedef struct builtin {
	struct lmmsd *d;
} builtin;

/* A handler fills out (one value) and returns PROTO_OK, or returns an error
 * code with the message in err. params is an array within the row's arity. */
typedef proto_err (*builtin_fn)(struct lmmsd *d, conn *c, const msgpack_object *params,
				reply *out, char *err, size_t errlen);

typedef struct builtin_method {
	const char *name; /* after "lmms." */
	builtin_fn fn;
	uint32_t min_params, max_params;
	bool admin;
	const char *usage; /* the bad_params message for a wrong arity */
} builtin_method;

void builtin_init(builtin *b, struct lmmsd *d);
/* Look a method up in the table (NULL if there is none). */
const builtin_method *builtin_find(const char *name, size_t len);
/* r->method starts with "lmms."; params is the decoded params array. */
void builtin_call(builtin *b, conn *c, const proto_request *r, const msgpack_object *params);

#endif
