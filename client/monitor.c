/*
 * monitor.c - lmmsctl monitor: every call the daemon finishes, one line
 * each, like redis-cli MONITOR.
 *
 * lmms.monitor turns this connection into a stream of notifications
 * [2, "lmms.monitor", [event]]. The daemon drops events rather than wait
 * for a slow monitor, and says how many in the next event's "dropped";
 * those counts are shown, so a gap in the stream is never silent.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lmmsctl.h"

/* Waiting for events wakes this often to notice ^C. */
#define MONITOR_POLL_MS 200

static void print_event_line(const msgpack_object *ev)
{
	char when[32], took[FMT_MAX], size[FMT_MAX];
	double t = map_num(ev, "time", 0), whole = floor(t);
	const char *method = "?", *path = "?", *err = NULL;
	size_t method_n = 1, path_n = 1, err_n = 0;
	const msgpack_object *loaded = map_get(ev, "loaded");
	time_t secs = (time_t)whole;
	struct tm tm;

	if (localtime_r(&secs, &tm))
		strftime(when, sizeof(when), "%H:%M:%S", &tm);
	else
		snprintf(when, sizeof(when), "?");
	map_str(ev, "method", &method, &method_n);
	map_str(ev, "path", &path, &path_n);
	map_str(ev, "error", &err, &err_n);

	printf("%s.%06ld uid=%.0f pid=%.0f %.*s %.*s%s %s ", when, (long)((t - whole) * 1e6),
	       map_num(ev, "uid", -1), map_num(ev, "pid", 0), (int)method_n, method, (int)path_n,
	       path, loaded && loaded->type == MSGPACK_OBJECT_BOOLEAN && loaded->via.boolean ?
			     "+loaded" :
			     "",
	       fmt_us(map_num(ev, "us", 0), took));
	if (err)
		printf("error=%.*s\n", (int)err_n, err);
	else
		printf("%s\n", fmt_bytes(map_num(ev, "bytes", 0), size));
}

/* One notification: 1 when it was an event, 0 when something else. */
static int show(ctl *c, const lmms_notification *n, uint64_t *dropped)
{
	msgpack_unpacked up;
	const msgpack_object *ev;
	size_t off = 0;
	int r = 0;

	*dropped += n->dropped;
	if (strcmp(n->method, "lmms.monitor") != 0)
		return 0;
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, n->params, n->params_len, &off) != MSGPACK_UNPACK_SUCCESS ||
	    up.data.type != MSGPACK_OBJECT_ARRAY || up.data.via.array.size < 1 ||
	    up.data.via.array.ptr[0].type != MSGPACK_OBJECT_MAP) {
		msgpack_unpacked_destroy(&up);
		return 0;
	}
	ev = &up.data.via.array.ptr[0];
	*dropped += (uint64_t)map_num(ev, "dropped", 0);
	if (c->json) {
		r = json_print_flags(ev, JSON_COMPACT) < 0 ? -ENOMEM : 1;
	} else {
		double d = map_num(ev, "dropped", 0) + (double)n->dropped;

		if (d > 0)
			printf("-- %.0f events dropped: this monitor read too slowly --\n", d);
		print_event_line(ev);
		r = 1;
	}
	msgpack_unpacked_destroy(&up);
	return r;
}

int cmd_monitor_run(ctl *c, const monitor_opts *o)
{
	uint64_t shown = 0, dropped = 0;
	result res;
	int r;

	/* Each line reaches a pipe (grep, a test) as it happens. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	ctl_catch_interrupts();
	r = ctl_call(c, "lmms.monitor", NULL, &res);
	if (r != EXIT_OK)
		return r;
	result_clear(&res);

	while (!ctl_interrupted && (o->count == 0 || shown < o->count)) {
		lmms_notification n;
		int got;

		r = lmms_client_next_notification(c->client, MONITOR_POLL_MS, &n);
		if (r == -ETIMEDOUT)
			continue;
		if (r < 0) {
			fprintf(stderr, "lmmsctl: monitor: %s\n", lmms_client_strerror(r));
			r = EXIT_CONNECT;
			goto out;
		}
		got = show(c, &n, &dropped);
		lmms_notification_clear(&n);
		if (got < 0) {
			fprintf(stderr, "lmmsctl: out of memory\n");
			r = EXIT_DAEMON_ERROR;
			goto out;
		}
		shown += (uint64_t)got;
	}
	r = EXIT_OK;
out:
	if (dropped)
		fprintf(stderr, "lmmsctl: monitor: %" PRIu64 " events shown, %" PRIu64 " dropped\n",
			shown, dropped);
	return r;
}
