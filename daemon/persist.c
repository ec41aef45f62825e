/*
 * persist.c - saved op heat: the versioned file, its atomic replacement and
 * its verification (format and rules in persist.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "persist.h"

static const char persist_magic[8] = { 'L', 'M', 'M', 'S', 'H', 'E', 'A', 'T' };

/* Header field offsets (persist.h has the table). */
enum {
	OFF_MAGIC = 0,
	OFF_VERSION = 8,
	OFF_COUNT = 12,
	OFF_SAVED = 16,
	OFF_BODY_SIZE = 24,
	OFF_BODY_CRC = 32,
	OFF_HDR_CRC = 36,
};

uint32_t persist_crc32(uint32_t crc, const void *data, size_t len)
{
	/* reflected polynomial 0xEDB88320, a nibble at a time: small table,
	 * and speed does not matter for a file written every few minutes */
	static const uint32_t t[16] = {
		0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4,
		0x4db26158, 0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
		0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
	};
	const unsigned char *p = data;

	crc = ~crc;
	for (size_t i = 0; i < len; i++) {
		crc ^= p[i];
		crc = (crc >> 4) ^ t[crc & 15];
		crc = (crc >> 4) ^ t[crc & 15];
	}
	return ~crc;
}

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int bytes)
{
	uint64_t v = 0;

	for (int i = bytes - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

const char *persist_strerror(int err)
{
	switch (err) {
	case -ENOENT:
		return "no saved state";
	case -ENODATA:
		return "truncated";
	case -EFBIG:
		return "oversized";
	case -EPROTO:
		return "unsupported version";
	case -EBADMSG:
		return "corrupt";
	case -E2BIG:
		return "too many records";
	default:
		return strerror(-err);
	}
}

/* --- saving --- */

#define WBUF_SIZE (64 * 1024)

typedef struct wfile {
	int fd;
	size_t len; /* bytes in buf */
	uint64_t body_size;
	uint32_t body_crc;
	unsigned char buf[WBUF_SIZE];
} wfile;

static int write_all(int fd, const unsigned char *p, size_t n, off_t *at)
{
	while (n > 0) {
		ssize_t w = at ? pwrite(fd, p, n, *at) : write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
		if (at)
			*at += w;
	}
	return 0;
}

static int wfile_flush(wfile *w)
{
	int r = write_all(w->fd, w->buf, w->len, NULL);

	w->len = 0;
	return r;
}

static int wfile_put(wfile *w, const void *p, size_t n)
{
	int r;

	if (w->len + n > sizeof(w->buf) && (r = wfile_flush(w)) < 0)
		return r;
	memcpy(w->buf + w->len, p, n);
	w->len += n;
	w->body_size += n;
	w->body_crc = persist_crc32(w->body_crc, p, n);
	return 0;
}

static bool method_ok(const char *m, uint32_t len)
{
	return len >= 1 && len <= PERSIST_METHOD_MAX && !memchr(m, '\0', len);
}

static int put_record(wfile *w, const persist_record *rec)
{
	unsigned char fixed[PERSIST_RECORD_FIXED];
	int r;

	if (!rec->method || !method_ok(rec->method, rec->method_len))
		return -EINVAL;
	put_le(fixed, rec->method_len, 2);
	put_le(fixed + 2, rec->count, 4);
	put_le(fixed + 6, rec->calls, 8);
	if ((r = wfile_put(w, fixed, sizeof(fixed))) < 0)
		return r;
	return wfile_put(w, rec->method, rec->method_len);
}

static void header_encode(unsigned char *h, uint32_t count, uint64_t saved, uint64_t body_size,
			  uint32_t body_crc)
{
	memcpy(h + OFF_MAGIC, persist_magic, sizeof(persist_magic));
	put_le(h + OFF_VERSION, PERSIST_VERSION, 4);
	put_le(h + OFF_COUNT, count, 4);
	put_le(h + OFF_SAVED, saved, 8);
	put_le(h + OFF_BODY_SIZE, body_size, 8);
	put_le(h + OFF_BODY_CRC, body_crc, 4);
	put_le(h + OFF_HDR_CRC, persist_crc32(0, h, OFF_HDR_CRC), 4);
}

/* The records into w, after a zeroed header the caller fills in last. */
static int write_records(wfile *w, persist_next_fn next, void *ud, uint32_t *count)
{
	persist_record rec;
	int r;

	memset(w->buf, 0, PERSIST_HEADER_SIZE);
	w->len = PERSIST_HEADER_SIZE;
	*count = 0;
	while ((r = next(ud, &rec)) > 0) {
		if (*count == PERSIST_MAX_RECORDS)
			return -E2BIG;
		if ((r = put_record(w, &rec)) < 0)
			return r;
		(*count)++;
	}
	if (r < 0)
		return r;
	return wfile_flush(w);
}

/* Make the rename itself durable. */
static int fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, r = 0;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* some filesystems cannot sync a directory: nothing more to do there */
	if (fsync(fd) < 0 && errno != EINVAL)
		r = -errno;
	close(fd);
	return r;
}

int persist_save(const char *path, uint64_t now_wall_ms, persist_next_fn next, void *ud)
{
	char tmp[PATH_MAX];
	unsigned char hdr[PERSIST_HEADER_SIZE];
	wfile *w;
	uint32_t count = 0;
	off_t at = 0;
	int fd, r;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	/* A fixed temp name in a directory that is ours: whatever a crash
	 * (or anyone) left there goes first, and the new one is created
	 * fresh, never through a link. */
	if (unlink(tmp) < 0 && errno != ENOENT)
		return -errno;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	w = calloc(1, sizeof(*w));
	if (!w) {
		close(fd);
		unlink(tmp);
		return -ENOMEM;
	}
	w->fd = fd;
	r = write_records(w, next, ud, &count);
	if (r == 0) {
		header_encode(hdr, count, now_wall_ms, w->body_size, w->body_crc);
		r = write_all(w->fd, hdr, sizeof(hdr), &at);
	}
	if (r == 0 && fsync(w->fd) < 0)
		r = -errno;
	if (close(w->fd) < 0 && r == 0)
		r = -errno;
	free(w);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	/* Past the rename the new file is in place; an error here only means
	 * it might not survive a power cut, which the caller may log. */
	r = fsync_parent(path);
	return r < 0 ? r : (int)count;
}

/* --- loading --- */

typedef struct header {
	uint32_t count;
	uint64_t saved;
	uint64_t body_size;
	uint32_t body_crc;
} header;

/* Checks in the order that names each failure for what it is (see the
 * error list in persist.h). */
static int header_check(const unsigned char *buf, size_t n, header *h)
{
	if (n < PERSIST_HEADER_SIZE)
		return -ENODATA;
	if (memcmp(buf + OFF_MAGIC, persist_magic, sizeof(persist_magic)) != 0)
		return -EBADMSG;
	if (get_le(buf + OFF_VERSION, 4) != PERSIST_VERSION)
		return -EPROTO;
	if (get_le(buf + OFF_HDR_CRC, 4) != persist_crc32(0, buf, OFF_HDR_CRC))
		return -EBADMSG;
	h->count = (uint32_t)get_le(buf + OFF_COUNT, 4);
	h->saved = get_le(buf + OFF_SAVED, 8);
	h->body_size = get_le(buf + OFF_BODY_SIZE, 8);
	h->body_crc = (uint32_t)get_le(buf + OFF_BODY_CRC, 4);
	if (h->count > PERSIST_MAX_RECORDS || h->body_size > PERSIST_MAX_FILE - PERSIST_HEADER_SIZE)
		return -EFBIG;
	if (n - PERSIST_HEADER_SIZE < h->body_size)
		return -ENODATA;
	if (n - PERSIST_HEADER_SIZE > h->body_size)
		return -EBADMSG;
	if (persist_crc32(0, buf + PERSIST_HEADER_SIZE, h->body_size) != h->body_crc)
		return -EBADMSG;
	return 0;
}

/* The record at *off in body, advancing *off; -EBADMSG if it does not parse. */
static int record_parse(const unsigned char *body, size_t size, size_t *off, persist_record *rec)
{
	size_t o = *off;

	if (size - o < PERSIST_RECORD_FIXED)
		return -EBADMSG;
	rec->method_len = (uint32_t)get_le(body + o, 2);
	rec->count = (uint32_t)get_le(body + o + 2, 4);
	rec->calls = get_le(body + o + 6, 8);
	o += PERSIST_RECORD_FIXED;
	rec->method = (const char *)body + o;
	if (size - o < rec->method_len || !method_ok(rec->method, rec->method_len))
		return -EBADMSG;
	*off = o + rec->method_len;
	return 0;
}

static int body_check(const unsigned char *body, const header *h)
{
	persist_record rec;
	size_t off = 0;
	int r;

	for (uint32_t i = 0; i < h->count; i++)
		if ((r = record_parse(body, h->body_size, &off, &rec)) < 0)
			return r;
	return off == h->body_size ? 0 : -EBADMSG;
}

static int read_file(const char *path, unsigned char **out, size_t *len)
{
	struct stat st;
	unsigned char *buf = NULL;
	size_t n = 0, cap;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = S_ISDIR(st.st_mode) ? -EISDIR : -EBADMSG;
		goto out;
	}
	if ((uint64_t)st.st_size > PERSIST_MAX_FILE) {
		r = -EFBIG;
		goto out;
	}
	/* one byte more than the size, to see a file that grew meanwhile */
	cap = (size_t)st.st_size + 1;
	buf = malloc(cap);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	while (n < cap) {
		ssize_t got = read(fd, buf + n, cap - n);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			r = -errno;
			goto out;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	if (n > (size_t)st.st_size)
		r = -EBADMSG;
out:
	close(fd);
	if (r < 0) {
		free(buf);
		return r;
	}
	*out = buf;
	*len = n;
	return 0;
}

int persist_load(const char *path, uint64_t now_wall_ms, uint64_t decay_interval_ms,
		 persist_each_fn each, void *ud, persist_info *info)
{
	unsigned char *buf = NULL;
	const unsigned char *body;
	char method[PERSIST_METHOD_MAX + 1];
	size_t len = 0, off = 0;
	uint64_t elapsed, halvings;
	header h;
	int r;

	if ((r = read_file(path, &buf, &len)) < 0)
		return r;
	if ((r = header_check(buf, len, &h)) < 0 ||
	    (r = body_check(buf + PERSIST_HEADER_SIZE, &h)) < 0)
		goto out;

	elapsed = now_wall_ms > h.saved ? now_wall_ms - h.saved : 0;
	halvings = decay_interval_ms ? elapsed / decay_interval_ms : 0;
	if (info) {
		info->saved_at_ms = h.saved;
		info->elapsed_ms = elapsed;
		info->halvings = halvings > UINT32_MAX ? UINT32_MAX : (uint32_t)halvings;
		info->records = h.count;
	}
	body = buf + PERSIST_HEADER_SIZE;
	for (uint32_t i = 0; i < h.count; i++) {
		persist_record rec;

		/* verified above: cannot fail */
		record_parse(body, h.body_size, &off, &rec);
		memcpy(method, rec.method, rec.method_len);
		method[rec.method_len] = '\0';
		rec.method = method;
		rec.count = halvings >= 32 ? 0 : rec.count >> halvings;
		if ((r = each(ud, &rec)) < 0)
			goto out;
	}
	r = (int)h.count;
out:
	free(buf);
	return r;
}
