/*
 * bbuf.h - a growable byte buffer, and a msgpack_packer sink into one.
 *
 * Fields start at zero, so a zeroed bbuf is an empty one and bbuf_free on it
 * is a no-op.
 */
#ifndef LMMS_BBUF_H
#define LMMS_BBUF_H

#include <stddef.h>

typedef struct bbuf {
	char *data;
	size_t len, cap;
} bbuf;

int bbuf_reserve(bbuf *b, size_t extra);
int bbuf_append(bbuf *b, const void *p, size_t n);
void bbuf_free(bbuf *b);
/* msgpack_packer write callback appending to a bbuf */
int bbuf_msgpack_write(void *data, const char *buf, size_t len);

#endif
