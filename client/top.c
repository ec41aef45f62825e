/*
 * top.c - lmmsctl top: a live view of lmmsd on ncurses.
 *
 * Every interval it samples lmms.stats, lmms.modules and lmms.ops and turns
 * two successive samples into per-second rates (calls, errors, cache hits,
 * fast-path hits, loads, unloads; calls per op). A frame is plain text built
 * by the same table code as the other commands, so `--once` prints exactly
 * what the screen shows. The screen is the terminal's alternate one; q,
 * Ctrl-C and SIGTERM leave it and restore the terminal. When the daemon goes
 * away (a restart), top says so and reconnects instead of exiting.
 */
#include <errno.h>
#include <libsmartcols.h>
#include <limits.h>
#include <ncursesw/curses.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

#include "lmmsctl.h"

#define TOP_DEFAULT_INTERVAL_MS 1000u
/* A call that takes longer than this is a daemon in trouble: show it. */
#define TOP_CALL_TIMEOUT_MS 5000u
#define TOP_MAX_ROWS 4096u
/* lmms.stats, lmms.modules, lmms.ops: top's own calls, left out of calls/s. */
#define TOP_CALLS_PER_SAMPLE 3

typedef struct sample {
	bool ok;
	int64_t t_ms; /* CLOCK_MONOTONIC */
	result stats, modules, ops;
} sample;

typedef struct top {
	ctl *c;
	sample prev, cur;
	char status[1024]; /* why there is no fresh sample, or "" */
} top;

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sample_clear(sample *s)
{
	result_clear(&s->stats);
	result_clear(&s->modules);
	result_clear(&s->ops);
	s->ok = false;
}

/* Move a sample: a result's obj points into its own msgpack_unpacked. */
static void sample_move(sample *to, sample *from)
{
	result *const parts[3][2] = { { &to->stats, &from->stats },
				      { &to->modules, &from->modules },
				      { &to->ops, &from->ops } };

	*to = *from;
	for (size_t i = 0; i < N_ELEMS(parts); i++)
		if (parts[i][1]->obj)
			parts[i][0]->obj = &parts[i][0]->up.data;
	memset(from, 0, sizeof(*from));
}

/* Take a sample into t->cur, the old one going to t->prev. A connection that
 * failed is dropped so the next sample reconnects. */
static int take_sample(top *t)
{
	sample s = { 0 };
	int r;

	r = ctl_call(t->c, "lmms.stats", NULL, &s.stats);
	if (r == EXIT_OK)
		r = ctl_call(t->c, "lmms.modules", NULL, &s.modules);
	if (r == EXIT_OK)
		r = ctl_call(t->c, "lmms.ops", NULL, &s.ops);
	if (r != EXIT_OK) {
		sample_clear(&s);
		snprintf(t->status, sizeof(t->status), "%s", t->c->last_error);
		if (r != EXIT_DAEMON_ERROR) {
			/* Gone, or hung: start afresh, rates included. */
			ctl_disconnect(t->c);
			sample_clear(&t->prev);
			sample_clear(&t->cur);
		}
		return r;
	}
	s.ok = true;
	s.t_ms = mono_ms();
	t->status[0] = '\0';
	/* A daemon restarted between two samples resets its counters. */
	if (t->cur.ok && map_num(s.stats.obj, "uptime_seconds", 0) <
				 map_num(t->cur.stats.obj, "uptime_seconds", 0))
		sample_clear(&t->cur);
	sample_clear(&t->prev);
	sample_move(&t->prev, &t->cur);
	sample_move(&t->cur, &s);
	return EXIT_OK;
}

/* Per-second rate of a counter between the two samples, less own calls that
 * it counted; < 0: not known. */
static double rate_less(const top *t, const msgpack_object *now, const msgpack_object *before,
			const char *key, double own)
{
	double dt = (double)(t->cur.t_ms - t->prev.t_ms) / 1000.0, a, b;

	if (!t->prev.ok || !before || dt <= 0)
		return -1;
	a = map_num(now, key, -1);
	b = map_num(before, key, -1);
	if (a < 0 || b < 0 || a < b)
		return -1;
	return a - b > own ? (a - b - own) / dt : 0;
}

static double rate_of(const top *t, const msgpack_object *now, const msgpack_object *before,
		      const char *key)
{
	return rate_less(t, now, before, key, 0);
}

static const char *rate_text(double v, char buf[FMT_MAX])
{
	return v < 0 ? "-" : fmt_rate(v, buf);
}

/* ---- panes: derived entries rendered by the shared table code ---- */

static void pack_str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);

	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

static void pack_copy(msgpack_packer *pk, const char *key, const msgpack_object *from)
{
	const msgpack_object *v = map_get(from, key);

	pack_str(pk, key);
	if (v)
		msgpack_pack_object(pk, *v);
	else
		msgpack_pack_nil(pk);
}

static int heat_rank(const char *s, size_t n)
{
	static const char *const levels[] = { "cold", "warm", "hot", "critical" };

	for (int i = 0; i < (int)N_ELEMS(levels); i++)
		if (strlen(levels[i]) == n && memcmp(levels[i], s, n) == 0)
			return i;
	return -1;
}

/* The hottest heat among a module's ops, or NULL. */
static const char *module_heat(const msgpack_object *ops, const char *name, size_t name_n)
{
	static const char *const levels[] = { "cold", "warm", "hot", "critical" };
	int best = -1;

	if (!ops || ops->type != MSGPACK_OBJECT_ARRAY)
		return NULL;
	for (uint32_t i = 0; i < ops->via.array.size; i++) {
		const msgpack_object *o = &ops->via.array.ptr[i];
		const char *m, *h;
		size_t mn, hn;
		int rank;

		if (!map_str(o, "method", &m, &mn) || !map_str(o, "heat", &h, &hn))
			continue;
		if (mn <= name_n || memcmp(m, name, name_n) != 0 || m[name_n] != '.')
			continue;
		rank = heat_rank(h, hn);
		if (rank > best)
			best = rank;
	}
	return best < 0 ? NULL : levels[best];
}

static char *cell_grace(const msgpack_object *m)
{
	char buf[FMT_MAX];

	if (!map_get(m, "grace_ms"))
		return strdup("-");
	return strdup(fmt_ms(map_num(m, "grace_ms", 0), buf));
}

static const column module_pane[] = {
	{ "MODULE", "name", CELL_PLAIN, 0, NULL },
	{ "STATE", "state", CELL_PLAIN, 0, NULL },
	{ "HEAT", "heat", CELL_PLAIN, 0, NULL },
	{ "RESIDENT", "resident_bytes", CELL_BYTES, SCOLS_FL_RIGHT, NULL },
	{ "IDLE", "idle_ms", CELL_MS, SCOLS_FL_RIGHT, cell_module_idle },
	{ "GRACE", "grace_ms", CELL_MS, SCOLS_FL_RIGHT, cell_grace },
	{ "WHY", "why", CELL_PLAIN, SCOLS_FL_TRUNC, NULL },
};

static int pack_modules_pane(const top *t, msgpack_packer *pk)
{
	const msgpack_object *mods = t->cur.modules.obj, *ops = t->cur.ops.obj;

	if (mods->type != MSGPACK_OBJECT_ARRAY)
		return -EINVAL;
	msgpack_pack_array(pk, mods->via.array.size);
	for (uint32_t i = 0; i < mods->via.array.size; i++) {
		const msgpack_object *m = &mods->via.array.ptr[i];
		const char *name = "", *heat;
		size_t name_n = 0;
		char *why = module_why(m);

		if (!why)
			return -ENOMEM;
		map_str(m, "name", &name, &name_n);
		heat = module_heat(ops, name, name_n);
		msgpack_pack_map(pk, 8);
		pack_copy(pk, "name", m);
		pack_copy(pk, "state", m);
		pack_str(pk, "heat");
		pack_str(pk, heat ? heat : "-");
		pack_copy(pk, "resident_bytes", m);
		pack_copy(pk, "idle_ms", m);
		pack_copy(pk, "loads", m);
		pack_str(pk, "why");
		pack_str(pk, why);
		free(why);
		if (map_get(m, "grace_ms"))
			pack_copy(pk, "grace_ms", m);
		else /* keeps the map at 8 entries */
			pack_copy(pk, "no_grace_ms", m);
	}
	return 0;
}

static char *cell_op_rate(const msgpack_object *o)
{
	char buf[FMT_MAX];

	return strdup(rate_text(map_num(o, "rate", -1), buf));
}

static const column op_pane[] = {
	{ "OP", "method", CELL_PLAIN, 0, NULL },
	{ "CALLS/S", "rate", CELL_PLAIN, SCOLS_FL_RIGHT, cell_op_rate },
	{ "CALLS", "calls", CELL_PLAIN, SCOLS_FL_RIGHT, NULL },
	{ "P99", "p99_us", CELL_US, SCOLS_FL_RIGHT, cell_op_p99 },
	{ "HEAT", "heat", CELL_PLAIN, 0, NULL },
	{ "FAST", "fast_path", CELL_BOOL, 0, NULL },
};

typedef struct op_row {
	const msgpack_object *o;
	double rate;
	double calls;
} op_row;

static int op_row_cmp(const void *a, const void *b)
{
	const op_row *x = a, *y = b;

	if (x->rate != y->rate)
		return x->rate < y->rate ? 1 : -1;
	if (x->calls != y->calls)
		return x->calls < y->calls ? 1 : -1;
	return 0;
}

static const msgpack_object *find_op(const msgpack_object *ops, const char *m, size_t mn)
{
	if (!ops || ops->type != MSGPACK_OBJECT_ARRAY)
		return NULL;
	for (uint32_t i = 0; i < ops->via.array.size; i++) {
		const char *s;
		size_t n;

		if (map_str(&ops->via.array.ptr[i], "method", &s, &n) && n == mn &&
		    memcmp(s, m, n) == 0)
			return &ops->via.array.ptr[i];
	}
	return NULL;
}

/* The ops, busiest first, at most max_rows of them. */
static int pack_ops_pane(const top *t, msgpack_packer *pk, size_t max_rows)
{
	const msgpack_object *ops = t->cur.ops.obj;
	const msgpack_object *prev = t->prev.ok ? t->prev.ops.obj : NULL;
	uint32_t n = ops->type == MSGPACK_OBJECT_ARRAY ? ops->via.array.size : 0;
	op_row *rows;

	if (ops->type != MSGPACK_OBJECT_ARRAY)
		return -EINVAL;
	if (n > TOP_MAX_ROWS)
		n = TOP_MAX_ROWS;
	rows = calloc(n ? n : 1, sizeof(*rows));
	if (!rows)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		const msgpack_object *o = &ops->via.array.ptr[i];
		const char *m = "";
		size_t mn = 0;

		map_str(o, "method", &m, &mn);
		rows[i].o = o;
		rows[i].calls = map_num(o, "calls", 0);
		rows[i].rate = rate_of(t, o, find_op(prev, m, mn), "calls");
	}
	qsort(rows, n, sizeof(*rows), op_row_cmp);
	if (n > max_rows)
		n = (uint32_t)max_rows;
	msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++) {
		msgpack_pack_map(pk, 6);
		pack_copy(pk, "method", rows[i].o);
		pack_str(pk, "rate");
		msgpack_pack_double(pk, rows[i].rate);
		pack_copy(pk, "calls", rows[i].o);
		pack_copy(pk, "p99_us", rows[i].o);
		pack_copy(pk, "heat", rows[i].o);
		pack_copy(pk, "fast_path", rows[i].o);
	}
	free(rows);
	return 0;
}

/* Render a pane from packed entries and append it to f. */
static int pane_render(FILE *f, const msgpack_sbuffer *sb, const column *cols, size_t ncols,
		       size_t width)
{
	msgpack_unpacked up;
	size_t off = 0;
	char *text = NULL;
	int r = -EINVAL;

	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, sb->data, sb->size, &off) == MSGPACK_UNPACK_SUCCESS)
		r = table_render(&up.data, cols, ncols, width, &text);
	if (r == 0)
		fprintf(f, "%s\n", text);
	free(text);
	msgpack_unpacked_destroy(&up);
	return r;
}

/*
 * One frame as text. width 0: as wide as it needs (scripts); max_lines 0:
 * every op. The ops pane gets what the header and modules leave.
 */
static char *frame_render(const top *t, size_t width, size_t max_lines, bool screen)
{
	const msgpack_object *st = t->cur.stats.obj;
	const msgpack_object *pst = t->prev.ok ? t->prev.stats.obj : NULL;
	char b[8][FMT_MAX], when[16];
	msgpack_sbuffer sb;
	msgpack_packer pk;
	char *text = NULL;
	size_t len = 0, ops_rows = TOP_MAX_ROWS;
	time_t now = time(NULL);
	struct tm tm;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	if (localtime_r(&now, &tm))
		strftime(when, sizeof(when), "%H:%M:%S", &tm);
	else
		snprintf(when, sizeof(when), "?");
	fprintf(f, "lmmsd %s  %s%s\n", t->c->socket ? t->c->socket : "(default socket)", when,
		screen ? "  (q quits)" : "");
	if (!t->cur.ok) {
		fprintf(f, "%s\nreconnecting...\n", t->status[0] ? t->status : "no sample yet");
		goto out;
	}
	fprintf(f, "up %s  rss %s  modules %.0f/%.0f resident  connections %.0f  cache %.0f (%s)\n",
		fmt_uptime(map_num(st, "uptime_seconds", 0), b[0]),
		fmt_bytes(map_num(st, "rss_bytes", 0), b[1]), map_num(st, "modules_resident", 0),
		map_num(st, "modules_known", 0), map_num(st, "connections", 0),
		map_num(st, "cache_entries", 0), fmt_bytes(map_num(st, "cache_bytes", 0), b[2]));
	fprintf(f, "calls/s %s  errors/s %s  cache hits/s %s  fast path/s %s  loads/s %s  unloads/s %s\n",
		rate_text(rate_less(t, st, pst, "requests_total", TOP_CALLS_PER_SAMPLE), b[0]),
		rate_text(rate_of(t, st, pst, "errors_total"), b[1]),
		rate_text(rate_of(t, st, pst, "cache_hits"), b[2]),
		rate_text(rate_of(t, st, pst, "zafp_hits"), b[3]),
		rate_text(rate_of(t, st, pst, "ligs_loads"), b[4]),
		rate_text(rate_of(t, st, pst, "lugs_unloads"), b[5]));
	if (t->status[0])
		fprintf(f, "%s\n", t->status);
	fputc('\n', f);

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (pack_modules_pane(t, &pk) == 0)
		pane_render(f, &sb, module_pane, N_ELEMS(module_pane), width);
	fputc('\n', f);
	if (max_lines) {
		/* header lines + modules + a blank + the ops header */
		size_t used = 5 + (t->cur.modules.obj->type == MSGPACK_OBJECT_ARRAY ?
					   t->cur.modules.obj->via.array.size :
					   0);

		ops_rows = max_lines > used + 1 ? max_lines - used - 1 : 0;
	}
	msgpack_sbuffer_clear(&sb);
	if (pack_ops_pane(t, &pk, ops_rows) == 0)
		pane_render(f, &sb, op_pane, N_ELEMS(op_pane), width);
	msgpack_sbuffer_destroy(&sb);
out:
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* ---- the screen ---- */

/* Draw text clipped to the screen: no line wraps, none runs off the bottom. */
static void draw(const char *text)
{
	int y = 0;

	erase();
	while (text && *text && y < LINES) {
		const char *nl = strchr(text, '\n');
		size_t n = nl ? (size_t)(nl - text) : strlen(text);
		wchar_t wl[1024];
		mbstate_t ms = { 0 };
		const char *p = text;
		size_t wn = 0;
		int w = 0;

		while (p < text + n && wn < N_ELEMS(wl)) {
			wchar_t wc;
			size_t k = mbrtowc(&wc, p, (size_t)(text + n - p), &ms);
			int cw;

			if (k == (size_t)-1 || k == (size_t)-2 || k == 0) {
				wc = L'?';
				k = 1;
				memset(&ms, 0, sizeof(ms));
			}
			cw = wcwidth(wc);
			if (cw < 0)
				cw = 1;
			if (w + cw > COLS)
				break;
			wl[wn++] = wc;
			w += cw;
			p += k;
		}
		mvaddnwstr(y++, 0, wl, (int)wn);
		text += n + (nl ? 1 : 0);
	}
	refresh();
}

static void wait_ms(uint32_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (!ctl_interrupted && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Frames as plain text on stdout: --once, or when stdout is not a terminal. */
static int run_plain(top *t, const top_opts *o, uint32_t interval)
{
	uint32_t frames = o->once ? 1 : o->count;
	int r = EXIT_OK;

	/* Rates need two samples. */
	r = take_sample(t);
	if (r != EXIT_OK)
		return r;
	for (uint32_t i = 0; !ctl_interrupted && (frames == 0 || i < frames); i++) {
		char *text;

		wait_ms(interval);
		if (ctl_interrupted)
			break;
		r = take_sample(t);
		if (r != EXIT_OK)
			return r;
		text = frame_render(t, 0, 0, false);
		if (!text)
			return EXIT_DAEMON_ERROR;
		fputs(text, stdout);
		if (frames != 1)
			fputc('\n', stdout);
		fflush(stdout);
		free(text);
	}
	return EXIT_OK;
}

static int run_screen(top *t, const top_opts *o, uint32_t interval)
{
	uint32_t frames = 0;
	int64_t next = 0;
	char *text = NULL;

	t->c->quiet = true; /* errors belong on the screen, not under it */
	if (!initscr())
		return EXIT_DAEMON_ERROR;
	cbreak();
	noecho();
	keypad(stdscr, TRUE);
	curs_set(0);

	while (!ctl_interrupted) {
		int64_t now = mono_ms();
		int ch;

		if (now >= next) {
			take_sample(t);
			next = now + interval;
			free(text);
			text = frame_render(t, (size_t)COLS, (size_t)LINES, true);
			draw(text);
			if (o->count && ++frames >= o->count)
				break;
			continue;
		}
		timeout((int)(next - now));
		ch = getch();
		if (ch == 'q' || ch == 'Q')
			break;
		if (ch == KEY_RESIZE) {
			/* Lay the same sample out again for the new size. */
			free(text);
			text = t->cur.ok || t->status[0] ? frame_render(t, (size_t)COLS, (size_t)LINES, true) :
							   NULL;
			draw(text);
		}
	}
	free(text);
	endwin();
	return EXIT_OK;
}

int cmd_top_run(ctl *c, const top_opts *o)
{
	uint32_t interval = o->interval_ms ? o->interval_ms : TOP_DEFAULT_INTERVAL_MS;
	top t = { .c = c };
	int r;

	if (c->timeout_ms == 0 || c->timeout_ms > TOP_CALL_TIMEOUT_MS)
		c->timeout_ms = TOP_CALL_TIMEOUT_MS;
	ctl_catch_interrupts();
	if (o->once || !isatty(STDOUT_FILENO) || !isatty(STDIN_FILENO))
		r = run_plain(&t, o, interval);
	else
		r = run_screen(&t, o, interval);
	sample_clear(&t.prev);
	sample_clear(&t.cur);
	return r;
}
