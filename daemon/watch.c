/*
 * watch.c - the module directory watcher (inotify + uv_poll, debounced per
 * name, classified by stat) and the mapped-file check. See watch.h.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "config.h"
#include "watch.h"

#define WATCH_MASK                                                                                 \
	(IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |        \
	 IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)
/* the name was unlinked, renamed or created: whatever is there is a new
 * file, even if the filesystem handed it the old inode number */
#define WATCH_RECREATED (IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM)
#define WATCH_DEFAULT_DEBOUNCE_MS 100
#define WATCH_DEFAULT_HOLD_MAX_MS 5000
/* reads per wakeup: a storm of events must not starve the loop (libuv polls
 * level-triggered, so what is left is read on the next turn) */
#define WATCH_READS_PER_WAKE 16
/* directory entries read by one full comparison */
#define WATCH_SCAN_MAX_ENTRIES 65536
#define WATCH_MAPS_MAX_LINES 1000000

const char *watch_kind_name(watch_kind k)
{
	static const char *const names[] = { "added", "replaced", "modified_in_place", "removed",
					     "lost" };

	return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}

const char *watch_file_state_name(watch_file_state s)
{
	static const char *const names[] = { "same", "replaced", "gone", "modified",
					     "modified_unmapped" };

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

static void stamp_from_stat(watch_stamp *w, const struct stat *st)
{
	w->dev = st->st_dev;
	w->ino = st->st_ino;
	w->size = st->st_size;
	w->mtim = st->st_mtim;
	w->ctim = st->st_ctim;
}

int watch_stamp_path(const char *path, watch_stamp *w)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	stamp_from_stat(w, &st);
	return 0;
}

static bool same_inode(const watch_stamp *a, const watch_stamp *b)
{
	return a->dev == b->dev && a->ino == b->ino;
}

static bool same_time(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static bool stamp_equal(const watch_stamp *a, const watch_stamp *b)
{
	return same_inode(a, b) && a->size == b->size && same_time(a->mtim, b->mtim) &&
	       same_time(a->ctim, b->ctim);
}

/* "NAME.so" with a valid module name: NAME into out. */
static bool module_of(const char *file, char out[WATCH_NAME_MAX + 1])
{
	size_t n = strlen(file);

	if (n <= 3 || strcmp(file + n - 3, ".so") != 0 || !config_module_name_valid(file, n - 3))
		return false;
	memcpy(out, file, n - 3);
	out[n - 3] = '\0';
	return true;
}

/* The regular file dir/NAME.so now, or false when there is none. */
static bool stat_module(const watch *w, const char *name, watch_stamp *out)
{
	char path[sizeof(w->dir) + WATCH_NAME_MAX + 8];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s.so", w->dir, name);
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	stamp_from_stat(out, &st);
	return true;
}

/* --- what the watcher knows --- */

static int file_find(const watch *w, const char *name)
{
	for (uint32_t i = 0; i < w->n_files; i++)
		if (strcmp(w->files[i].name, name) == 0)
			return (int)i;
	return -1;
}

static void file_add(watch *w, const char *name, const watch_stamp *st)
{
	watch_file *f;

	/* past the registry's own limit there is nothing to load it into */
	if (w->n_files == WATCH_MAX_FILES)
		return;
	f = &w->files[w->n_files++];
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->st = *st;
	f->seen = true;
}

static void file_remove(watch *w, int i)
{
	w->files[i] = w->files[--w->n_files];
}

/* --- settling a name --- */

/* Hand one event over; false when the callback stopped the watcher. */
static bool deliver(watch *w, watch_kind kind, const char *name, const watch_stamp *st)
{
	char copy[WATCH_NAME_MAX + 1];
	watch_event ev = { .kind = kind, .name = copy };

	/* the callback gets its own copy: nothing it does can move it */
	snprintf(copy, sizeof(copy), "%s", name);
	if (st)
		ev.stamp = *st;
	w->delivered++;
	w->cb(w->ud, &ev);
	return w->active;
}

/* Compare name's file with what is known, deliver what changed. mask: the
 * inotify bits seen for it (0 from a full comparison). */
static bool settle(watch *w, const char *name, uint32_t mask)
{
	watch_stamp now;
	watch_kind kind;
	int i = file_find(w, name);

	if (!stat_module(w, name, &now)) {
		if (i < 0)
			return true; /* came and went, or never a regular file */
		file_remove(w, i);
		return deliver(w, WATCH_REMOVED, name, NULL);
	}
	if (i < 0) {
		file_add(w, name, &now);
		return deliver(w, WATCH_ADDED, name, &now);
	}
	if (!same_inode(&w->files[i].st, &now) || (mask & WATCH_RECREATED))
		kind = WATCH_REPLACED;
	else if (!stamp_equal(&w->files[i].st, &now) || (mask & IN_MODIFY))
		kind = WATCH_MODIFIED_IN_PLACE;
	else
		return true;
	w->files[i].st = now;
	return deliver(w, kind, name, &now);
}

/*
 * Compare the whole directory with what is known (at start with deliver
 * false, to learn it; after an overflow with deliver true). False when the
 * callback stopped the watcher.
 */
static bool scan(watch *w, bool report)
{
	char name[WATCH_NAME_MAX + 1];
	struct dirent *de;
	DIR *d = opendir(w->dir);
	watch_stamp st;
	uint32_t entries = 0;

	if (!d)
		return true; /* gone: inotify says so on its own */
	for (uint32_t i = 0; i < w->n_files; i++)
		w->files[i].seen = false;
	while ((de = readdir(d)) && entries++ < WATCH_SCAN_MAX_ENTRIES) {
		int i;

		if (!module_of(de->d_name, name))
			continue;
		if (!report) {
			if (stat_module(w, name, &st) && file_find(w, name) < 0)
				file_add(w, name, &st);
			continue;
		}
		if (!settle(w, name, 0)) {
			closedir(d);
			return false;
		}
		if ((i = file_find(w, name)) >= 0)
			w->files[i].seen = true;
	}
	closedir(d);
	/* downwards: file_remove moves the last entry, already visited */
	for (uint32_t i = w->n_files; report && i-- > 0;) {
		if (w->files[i].seen)
			continue;
		snprintf(name, sizeof(name), "%s", w->files[i].name);
		if (!settle(w, name, 0))
			return false;
	}
	return true;
}

/* --- pending names and the settle timer --- */

static void mark_rescan(watch *w, uint64_t now)
{
	w->rescan = true;
	w->rescan_due_ms = now + w->opts.debounce_ms;
}

static void on_timer(uv_timer_t *t);

static void arm_timer(watch *w)
{
	uint64_t now = uv_now(w->loop), due = UINT64_MAX;

	if (w->rescan)
		due = w->rescan_due_ms;
	for (uint32_t i = 0; i < w->n_pending; i++)
		if (w->pending[i].due_ms < due)
			due = w->pending[i].due_ms;
	if (due == UINT64_MAX)
		uv_timer_stop(&w->timer);
	else
		uv_timer_start(&w->timer, on_timer, due > now ? due - now : 0, 0);
}

static void on_timer(uv_timer_t *t)
{
	watch *w = t->data;
	uint64_t now = uv_now(w->loop);

	if (w->rescan && w->rescan_due_ms <= now) {
		/* the full comparison covers every pending name too */
		w->rescan = false;
		w->n_pending = 0;
		w->rescans++;
		if (!scan(w, true))
			return;
	}
	for (uint32_t i = 0; i < w->n_pending;) {
		watch_pending *p = &w->pending[i];
		char name[WATCH_NAME_MAX + 1];
		uint32_t mask;

		if (p->due_ms > now) {
			i++;
			continue;
		}
		/* a file still being written: look again later, up to a bound */
		if (p->writing && now - p->first_ms < w->opts.hold_max_ms) {
			p->due_ms = now + w->opts.debounce_ms;
			i++;
			continue;
		}
		snprintf(name, sizeof(name), "%s", p->name);
		mask = p->mask;
		/* keep arrival order for the rest */
		memmove(p, p + 1, (w->n_pending - i - 1) * sizeof(*p));
		w->n_pending--;
		if (!settle(w, name, mask))
			return;
	}
	arm_timer(w);
}

static watch_pending *pending_get(watch *w, const char *name, uint64_t now)
{
	watch_pending *p;

	for (uint32_t i = 0; i < w->n_pending; i++)
		if (strcmp(w->pending[i].name, name) == 0)
			return &w->pending[i];
	if (w->n_pending == WATCH_MAX_PENDING)
		return NULL;
	p = &w->pending[w->n_pending++];
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->first_ms = now;
	return p;
}

/* One inotify event; true when the directory itself is gone. */
static bool on_inotify(watch *w, const struct inotify_event *ie, uint64_t now)
{
	char name[WATCH_NAME_MAX + 1];
	watch_pending *p;

	if (ie->mask & IN_Q_OVERFLOW)
		mark_rescan(w, now);
	if (ie->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))
		return true;
	if (ie->len == 0 || !module_of(ie->name, name))
		return false;
	w->raw_events++;
	p = pending_get(w, name, now);
	if (!p) {
		/* more names in flight than the table holds: compare it all */
		mark_rescan(w, now);
		return false;
	}
	p->mask |= ie->mask;
	p->due_ms = now + w->opts.debounce_ms;
	if (ie->mask & (IN_CREATE | IN_MODIFY))
		p->writing = true;
	if (ie->mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM))
		p->writing = false;
	return false;
}

static void lost(watch *w)
{
	watch_cb cb = w->cb;
	void *ud = w->ud;
	watch_event ev = { .kind = WATCH_LOST, .name = "" };

	watch_stop(w);
	w->delivered++;
	cb(ud, &ev);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	watch *w = h->data;
	/* aligned for the struct inotify_event records read into it */
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	uint64_t now = uv_now(w->loop);
	bool gone = status < 0;

	(void)events;
	for (int round = 0; !gone && round < WATCH_READS_PER_WAKE; round++) {
		ssize_t n = read(w->fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			gone = true;
			break;
		}
		for (ssize_t off = 0; off < n && !gone;) {
			const struct inotify_event *ie = (const void *)(buf + off);

			gone = on_inotify(w, ie, now);
			off += (ssize_t)(sizeof(*ie) + ie->len);
		}
	}
	if (gone) {
		lost(w);
		return;
	}
	arm_timer(w);
}

/* --- start and stop --- */

void watch_init(watch *w, uv_loop_t *loop)
{
	memset(w, 0, sizeof(*w));
	w->loop = loop;
	w->fd = -1;
}

static void on_closed(uv_handle_t *h)
{
	watch *w = h->data;

	if (h == (uv_handle_t *)&w->poll && w->fd >= 0) {
		close(w->fd);
		w->fd = -1;
	}
	if (--w->closing == 0) {
		free(w->files);
		w->files = NULL;
		w->n_files = 0;
	}
}

int watch_start(watch *w, const char *dir, const watch_opts *opts, watch_cb cb, void *ud)
{
	int r;

	if (w->active || w->closing || w->fd >= 0)
		return -EBUSY;
	/* room for "/NAME.so" after it */
	if (strlen(dir) + 1 + WATCH_NAME_MAX + 3 >= sizeof(w->dir))
		return -ENAMETOOLONG;
	snprintf(w->dir, sizeof(w->dir), "%s", dir);
	w->opts.debounce_ms = opts && opts->debounce_ms ? opts->debounce_ms : WATCH_DEFAULT_DEBOUNCE_MS;
	w->opts.hold_max_ms = opts && opts->hold_max_ms ? opts->hold_max_ms : WATCH_DEFAULT_HOLD_MAX_MS;
	w->cb = cb;
	w->ud = ud;
	w->n_pending = 0;
	w->rescan = false;
	w->files = calloc(WATCH_MAX_FILES, sizeof(*w->files));
	if (!w->files)
		return -ENOMEM;
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		r = -errno;
		goto fail;
	}
	/* watch first, then list: a file added in between is in the listing
	 * and its event then settles to "nothing changed" */
	if (inotify_add_watch(w->fd, dir, WATCH_MASK) < 0) {
		r = -errno;
		goto fail;
	}
	w->n_files = 0;
	scan(w, false);
	r = uv_poll_init(w->loop, &w->poll, w->fd);
	if (r < 0)
		goto fail;
	uv_timer_init(w->loop, &w->timer);
	w->poll.data = w->timer.data = w;
	uv_unref((uv_handle_t *)&w->poll);
	uv_unref((uv_handle_t *)&w->timer);
	w->active = true;
	r = uv_poll_start(&w->poll, UV_READABLE, on_poll);
	if (r < 0)
		watch_stop(w);
	return r;
fail:
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	free(w->files);
	w->files = NULL;
	return r;
}

void watch_stop(watch *w)
{
	if (!w->active)
		return;
	w->active = false;
	w->n_pending = 0;
	w->rescan = false;
	w->closing = 2;
	uv_close((uv_handle_t *)&w->poll, on_closed);
	uv_close((uv_handle_t *)&w->timer, on_closed);
}

/* --- the mapped-file check --- */

/* One maps line's device, inode and path (NULL when it maps no file). */
static const char *maps_parse(char *line, watch_map *m)
{
	unsigned maj, min;
	unsigned long long ino;
	int off = 0;
	size_t n = strlen(line);

	if (n && line[n - 1] == '\n')
		line[--n] = '\0';
	if (sscanf(line, "%*s %*s %*s %x:%x %llu %n", &maj, &min, &ino, &off) != 3 || off == 0 ||
	    line[off] != '/')
		return NULL;
	m->dev = makedev(maj, min);
	m->ino = (ino_t)ino;
	return line + off;
}

int watch_maps_lookup(pid_t pid, const char *path, watch_map *out)
{
	char file[64], line[PATH_MAX + 256];
	static const char deleted[] = " (deleted)";
	size_t plen = strlen(path);
	bool found = false;
	FILE *f;

	if (pid)
		snprintf(file, sizeof(file), "/proc/%d/maps", (int)pid);
	else
		snprintf(file, sizeof(file), "/proc/self/maps");
	f = fopen(file, "re");
	if (!f)
		return -errno;
	for (int lines = 0; lines < WATCH_MAPS_MAX_LINES && fgets(line, sizeof(line), f); lines++) {
		watch_map m;
		const char *p;
		size_t n = strlen(line);

		if (n && line[n - 1] != '\n' && !feof(f)) {
			int c;

			/* longer than any path we look for: skip the rest */
			while ((c = fgetc(f)) != EOF && c != '\n')
				;
			continue;
		}
		if (!(p = maps_parse(line, &m)) || strncmp(p, path, plen) != 0)
			continue;
		if (p[plen] == '\0') {
			/* the file at path itself: the answer */
			m.deleted = false;
			*out = m;
			found = true;
			break;
		}
		if (!found && strcmp(p + plen, deleted) == 0) {
			/* an older file once at path; keep looking for a live one */
			m.deleted = true;
			*out = m;
			found = true;
		}
	}
	fclose(f);
	return found ? 0 : -ENOENT;
}

int watch_file_check(pid_t pid, const char *path, const watch_stamp *at_load)
{
	char canon[PATH_MAX];
	watch_stamp now;
	watch_map m;
	int r = watch_stamp_path(path, &now);

	if (r == -ENOENT)
		return WATCH_FILE_GONE;
	if (r < 0)
		return r;
	if (!same_inode(&now, at_load))
		return WATCH_FILE_REPLACED;
	if (stamp_equal(&now, at_load))
		return WATCH_FILE_SAME;
	if (!realpath(path, canon))
		return errno == ENOENT ? WATCH_FILE_GONE : -errno;
	r = watch_maps_lookup(pid, canon, &m);
	if (r == 0 && !m.deleted)
		return WATCH_FILE_MODIFIED;
	return r == 0 || r == -ENOENT ? WATCH_FILE_MODIFIED_UNMAPPED : r;
}
