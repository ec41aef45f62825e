/*
 * persist.h - op heat that survives a restart.
 *
 * The daemon saves one record per op it wants remembered (method, decaying
 * heat count, calls) with the wall-clock time of the save; at start it loads
 * them back with every count halved once per decay interval that passed
 * since, the rule of the ZAFP decay timer (count >> (elapsed / interval)),
 * so a restart after an hour restores what an hour of idling would have
 * left. The level is not stored: it follows from the count and the
 * thresholds in force.
 *
 * File format, version 1, all integers little-endian:
 *
 *   offset  size  field
 *        0     8  magic "LMMSHEAT"
 *        8     4  version (1)
 *       12     4  record count
 *       16     8  saved at, ms since the epoch (CLOCK_REALTIME)
 *       24     8  body size in bytes (the records)
 *       32     4  CRC-32 of the body
 *       36     4  CRC-32 of bytes 0..35
 *       40        records, each: u16 method length, u32 count, u64 calls,
 *                 then the method bytes (no NUL)
 *
 * Magic and version come first and are checked before anything else, so a
 * later version may change the rest. The header has its own checksum so a
 * damaged length is told apart from a short file.
 *
 * Saving is atomic: the records go to "<path>.tmp" in the same directory,
 * which is fsynced, renamed over <path>, and the directory fsynced. A crash
 * at any point leaves either the old file or the new one, plus at worst a
 * stale temp file that loading never reads and the next save replaces.
 *
 * Loading verifies the whole file before it hands out a single record, so a
 * damaged file delivers nothing. Each way a file can be unusable has its own
 * error (persist_strerror names it) so the caller can log one warning and
 * start cold:
 *   -ENOENT   no file (first start, or state was cleared)
 *   -ENODATA  truncated: shorter than its header says
 *   -EFBIG    oversized: beyond PERSIST_MAX_FILE or PERSIST_MAX_RECORDS
 *   -EPROTO   a version this daemon does not know
 *   -EBADMSG  corrupt: magic, checksum, or a record that does not parse
 *   other     the errno of a failed open or read
 *
 * Independent of the registry: records come from and go to callbacks.
 */
#ifndef LMMS_PERSIST_H
#define LMMS_PERSIST_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define PERSIST_VERSION 1
#define PERSIST_HEADER_SIZE 40
#define PERSIST_RECORD_FIXED 14
/* Far above what the registry can hold hot (a method is at most 63 + 1 + 63
 * bytes; ZAFP keeps at most zafp.max_hot_paths hot), low enough that a
 * hostile file costs little to read. */
#define PERSIST_MAX_RECORDS 16384
#define PERSIST_METHOD_MAX 255
#define PERSIST_MAX_FILE                                                                           \
	(PERSIST_HEADER_SIZE +                                                                     \
	 (uint64_t)PERSIST_MAX_RECORDS * (PERSIST_RECORD_FIXED + PERSIST_METHOD_MAX))

typedef struct persist_record {
	const char *method; /* method_len bytes; NUL-terminated when loaded */
	uint32_t method_len; /* 1..PERSIST_METHOD_MAX, no NUL inside */
	uint32_t count; /* ZAFP heat count (decayed on load) */
	uint64_t calls; /* calls counted when saved, as saved */
} persist_record;

typedef struct persist_info {
	uint64_t saved_at_ms; /* wall clock of the save */
	uint64_t elapsed_ms; /* save to load; 0 when the clock went back */
	uint32_t halvings; /* applied to every count */
	uint32_t records;
} persist_info;

/* Saving: fill *rec and return 1, return 0 at the end, or a negative errno
 * to abandon the save (the old file stays). rec->method must stay valid
 * until the next call. */
typedef int (*persist_next_fn)(void *ud, persist_record *rec);

/* Loading: one verified, decayed record; rec and its method are valid for
 * the call only. A negative return stops the load and is returned. */
typedef int (*persist_each_fn)(void *ud, const persist_record *rec);

/*
 * Atomically replace path with the records next yields, stamped with
 * now_wall_ms. Returns the number of records written, -EINVAL for a record
 * out of bounds, -E2BIG past PERSIST_MAX_RECORDS, next's own error, or the
 * errno of a failed write, fsync or rename; on every error path is as it was
 * and no temp file is left.
 */
int persist_save(const char *path, uint64_t now_wall_ms, persist_next_fn next, void *ud);

/*
 * Read path, verify it whole, then call each for every record with its
 * count decayed by (now_wall_ms - saved) / decay_interval_ms halvings
 * (decay_interval_ms 0: no decay). Returns the number of records delivered
 * or a negative errno (see above); info, if given, is filled on success.
 */
int persist_load(const char *path, uint64_t now_wall_ms, uint64_t decay_interval_ms,
		 persist_each_fn each, void *ud, persist_info *info);

/* "truncated", "corrupt", ... for the errors above; strerror otherwise. */
const char *persist_strerror(int err);

/* The format's checksum (CRC-32, IEEE 802.3), chainable from crc = 0. */
uint32_t persist_crc32(uint32_t crc, const void *data, size_t len);

/* Wall-clock ms, the time base of saved_at. */
static inline uint64_t persist_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
