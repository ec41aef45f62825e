/*
 * bbuf.c - growable byte buffers (doubling, overflow-checked).
 */
#include "bbuf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int bbuf_reserve(bbuf *b, size_t extra)
{
	size_t need = b->len + extra, cap;
	char *p;

	if (need < b->len)
		return -ENOMEM;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 4096;
	while (cap < need) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int bbuf_append(bbuf *b, const void *p, size_t n)
{
	int r = bbuf_reserve(b, n);

	if (r < 0)
		return r;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

void bbuf_free(bbuf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

int bbuf_msgpack_write(void *data, const char *buf, size_t len)
{
	return bbuf_append(data, buf, len) < 0 ? -1 : 0;
}
