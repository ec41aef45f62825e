/*
 * log.c - stderr logging with journal-aware priority prefixes.
 *
 * Lines are built in one buffer and written with one write(2) so that lines
 * from worker threads (modules logging from BLOCKING ops) never interleave.
 */
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_level = LOG_LVL_INFO;
static int log_journal;

static const char *const level_names[] = {
	[0] = "emerg", [1] = "alert", [2] = "crit", [3] = "error",
	[4] = "warning", [5] = "notice", [6] = "info", [7] = "debug",
};

void log_init(int level)
{
	log_level = level;
	log_journal = getenv("JOURNAL_STREAM") != NULL;
}

void log_set_level(int level) { log_level = level; }
int log_get_level(void) { return log_level; }

void log_vmsg(int level, const char *prefix, const char *fmt, va_list ap)
{
	char line[1024];
	size_t n = 0;
	int r;

	if (level > log_level)
		return;
	if (level < 0)
		level = 0;
	if (level > 7)
		level = 7;

	if (log_journal) {
		r = snprintf(line, sizeof(line), "<%d>", level);
	} else {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		r = snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld lmmsd %s: ", tm.tm_hour,
			     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_names[level]);
	}
	n = r > 0 ? (size_t)r : 0;
	if (prefix) {
		r = snprintf(line + n, sizeof(line) - n, "%s", prefix);
		if (r > 0)
			n += (size_t)r;
	}
	if (n < sizeof(line)) {
		r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		if (r > 0)
			n += (size_t)r;
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2; /* truncated: keep the newline */
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, NULL, fmt, ap);
	va_end(ap);
}
