/*
 * fmt.c - the one copy of lmmsctl's size, duration and rate formatting,
 * shared by its tables, top and monitor: short, unit-bearing, and always
 * readable at a glance (three significant figures at most).
 */
#include <math.h>
#include <stdio.h>

#include "lmmsctl.h"

const char *fmt_bytes(double v, char buf[FMT_MAX])
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
	size_t u = 0;

	if (!(v >= 0)) /* negative or NaN: nothing sensible to scale */
		v = 0;
	if (v < 1024) {
		snprintf(buf, FMT_MAX, "%.0f B", v);
		return buf;
	}
	v /= 1024;
	while (v >= 1024 && u + 1 < N_ELEMS(units)) {
		v /= 1024;
		u++;
	}
	snprintf(buf, FMT_MAX, "%.1f %s", v, units[u]);
	return buf;
}

const char *fmt_ms(double ms, char buf[FMT_MAX])
{
	if (!(ms >= 0))
		ms = 0;
	if (ms < 1000)
		snprintf(buf, FMT_MAX, "%.0fms", ms);
	else if (ms < 60e3)
		snprintf(buf, FMT_MAX, "%.1fs", ms / 1e3);
	else if (ms < 3600e3)
		snprintf(buf, FMT_MAX, "%.1fm", ms / 60e3);
	else if (ms < 86400e3)
		snprintf(buf, FMT_MAX, "%.1fh", ms / 3600e3);
	else
		snprintf(buf, FMT_MAX, "%.1fd", ms / 86400e3);
	return buf;
}

const char *fmt_us(double us, char buf[FMT_MAX])
{
	if (!(us >= 0))
		us = 0;
	if (us < 1000) {
		snprintf(buf, FMT_MAX, "%.0f\xc2\xb5s", us); /* µs */
		return buf;
	}
	if (us < 10e3) {
		snprintf(buf, FMT_MAX, "%.1fms", us / 1e3);
		return buf;
	}
	return fmt_ms(us / 1e3, buf);
}

const char *fmt_rate(double v, char buf[FMT_MAX])
{
	if (!(v >= 0) || isinf(v))
		v = 0;
	if (v == 0)
		snprintf(buf, FMT_MAX, "0");
	else if (v < 10)
		snprintf(buf, FMT_MAX, "%.1f", v);
	else if (v < 1e4)
		snprintf(buf, FMT_MAX, "%.0f", v);
	else if (v < 1e7)
		snprintf(buf, FMT_MAX, "%.1fk", v / 1e3);
	else
		snprintf(buf, FMT_MAX, "%.1fM", v / 1e6);
	return buf;
}

const char *fmt_uptime(double s, char buf[FMT_MAX])
{
	unsigned long long t = s > 0 ? (unsigned long long)s : 0;

	if (t < 60)
		snprintf(buf, FMT_MAX, "%llus", t);
	else if (t < 3600)
		snprintf(buf, FMT_MAX, "%llum%02llus", t / 60, t % 60);
	else if (t < 86400)
		snprintf(buf, FMT_MAX, "%lluh%02llum", t / 3600, t / 60 % 60);
	else
		snprintf(buf, FMT_MAX, "%llud%02lluh", t / 86400, t / 3600 % 24);
	return buf;
}
