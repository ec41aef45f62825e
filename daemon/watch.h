/*
 * watch.h - the module directory watcher, and whether a loaded module's
 * file changed under it.
 *
 * inotify straight on the directory (uv_fs_event reports a bare "change"
 * and drops the detail needed here), its fd polled by libuv. Events only
 * mark a "NAME.so" as touched; once a name has been quiet for the debounce
 * time the file is stat()ed and compared with what the watcher last knew of
 * it, and that comparison, not the order of the events, says what happened:
 *
 *   WATCH_ADDED              a name it did not know now holds a regular file
 *   WATCH_REPLACED           the name holds another inode: renamed over
 *                            (cp + mv), or unlinked and created again (GNU
 *                            install and meson install do that). The old
 *                            inode lives on under any mapping of it: safe.
 *   WATCH_MODIFIED_IN_PLACE  the same inode was written (cp over it, a
 *                            compiler writing to it, ...). A process that
 *                            maps it sees its code change: unsafe.
 *   WATCH_REMOVED            the name is gone
 *   WATCH_LOST               the directory itself went away or was moved;
 *                            the watcher has stopped
 *
 * So a burst (write a temp file, rename it over, chmod, ...) is one event,
 * a file still open for writing after creation is held until it is closed
 * (at most hold_max_ms), names that are not a valid module name plus ".so"
 * (temp files, backups, ".#x.so", "x.so.1") are ignored, and a kernel queue
 * overflow or a full pending table falls back to comparing the whole
 * directory. Every event has been debounced; none is delivered twice for
 * one change.
 *
 * Handles follow libuv: the caller owns the struct; watch_start opens and
 * starts, watch_stop closes, and the struct must stay valid until the loop
 * has run once more (the handles' close callbacks). The handles are unref'd:
 * a watcher never keeps the loop alive on its own. All of it runs on the
 * loop thread.
 */
#ifndef LMMS_WATCH_H
#define LMMS_WATCH_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <uv.h>

#define WATCH_NAME_MAX 63 /* a module name, as config_module_name_valid() */
#define WATCH_MAX_FILES 1024 /* names tracked (REGISTRY_MAX_MODULES) */
#define WATCH_MAX_PENDING 64 /* names touched and not yet settled */

typedef enum watch_kind {
	WATCH_ADDED = 0,
	WATCH_REPLACED,
	WATCH_MODIFIED_IN_PLACE,
	WATCH_REMOVED,
	WATCH_LOST,
} watch_kind;

const char *watch_kind_name(watch_kind k);

/* A file's identity and version, as stat() tells them. ctime is in it
 * because nobody can set it: a rewrite that keeps size and mtime
 * (cp --preserve, touch -r) still moves it. */
typedef struct watch_stamp {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
} watch_stamp;

typedef struct watch_event {
	watch_kind kind;
	const char *name; /* the module name (no ".so"); "" for WATCH_LOST */
	watch_stamp stamp; /* the file now; zeroed for REMOVED and LOST */
} watch_event;

/* May call watch_stop (then no further event of this batch is delivered). */
typedef void (*watch_cb)(void *ud, const watch_event *ev);

typedef struct watch_opts {
	uint64_t debounce_ms; /* quiet time before a name settles; 0 = 100 */
	uint64_t hold_max_ms; /* longest wait for a writer to close; 0 = 5000 */
} watch_opts;

typedef struct watch_file {
	char name[WATCH_NAME_MAX + 1];
	watch_stamp st;
	bool seen; /* rescan bookkeeping */
} watch_file;

typedef struct watch_pending {
	char name[WATCH_NAME_MAX + 1];
	uint64_t first_ms, due_ms;
	uint32_t mask; /* IN_* bits seen since the name was last settled */
	bool writing; /* created or written, not yet closed */
} watch_pending;

typedef struct watch {
	uv_loop_t *loop;
	uv_poll_t poll;
	uv_timer_t timer;
	int fd; /* inotify, -1 when not started */
	int closing; /* handle closes not yet completed */
	bool active;
	bool rescan; /* compare the whole directory once quiet */
	uint64_t rescan_due_ms;
	char dir[PATH_MAX];
	watch_opts opts;
	watch_cb cb;
	void *ud;

	watch_file *files; /* what the watcher knows, WATCH_MAX_FILES slots */
	uint32_t n_files;
	watch_pending pending[WATCH_MAX_PENDING];
	uint32_t n_pending;

	uint64_t raw_events; /* inotify events read for valid names */
	uint64_t delivered;
	uint64_t rescans; /* overflows handled by a full comparison */
} watch;

void watch_init(watch *w, uv_loop_t *loop);

/*
 * Record what dir holds now (no events for it) and start watching. Returns
 * 0, -EBUSY while started or still closing, or the errno of inotify or the
 * directory (-ENOENT, -ENOTDIR, -EMFILE/-ENOSPC past inotify's limits).
 */
int watch_start(watch *w, const char *dir, const watch_opts *opts, watch_cb cb, void *ud);

/* Stop and release (asynchronously, see above). Safe to call twice. */
void watch_stop(watch *w);

/* ---- did a mapped file change under a running module? ---- */

typedef enum watch_file_state {
	WATCH_FILE_SAME = 0, /* the file is the one loaded, unchanged */
	WATCH_FILE_REPLACED, /* the path names another inode; the loaded one is intact */
	WATCH_FILE_GONE, /* the path is gone; the loaded inode is intact */
	WATCH_FILE_MODIFIED, /* the loaded inode was written and is mapped: unsafe */
	WATCH_FILE_MODIFIED_UNMAPPED, /* written, but nothing maps it in that process */
} watch_file_state;

const char *watch_file_state_name(watch_file_state s);

/* stat(path) into *st. */
int watch_stamp_path(const char *path, watch_stamp *st);

typedef struct watch_map {
	dev_t dev;
	ino_t ino;
	bool deleted; /* the kernel marks the mapped file " (deleted)" */
} watch_map;

/*
 * The first mapping of path in pid's address space (pid 0: this process),
 * from /proc/PID/maps: 0 and *m filled, -ENOENT when path is not mapped.
 * path is compared as the kernel prints it: give it canonical (symlinks in
 * it resolved), as dlopen's mapping shows the file it opened.
 */
int watch_maps_lookup(pid_t pid, const char *path, watch_map *m);

/*
 * Compare the file at path with at_load (its stamp right after it was
 * loaded) and, where the inode is the same but changed, with pid's mappings
 * (pid 0: this process; a process-isolated module's worker otherwise).
 * Returns a watch_file_state, or a negative errno when path cannot be
 * examined. On overlay filesystems maps shows the underlying inode, so the
 * mapping is matched by path, never by inode.
 */
int watch_file_check(pid_t pid, const char *path, const watch_stamp *at_load);

#endif
