/*
 * monitor.c - the lmms.monitor event stream (see monitor.h).
 */
#include "monitor.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "reply.h"
#include "util.h"

int monitor_init(monitor *mo, uv_loop_t *loop)
{
	int r;

	memset(mo, 0, sizeof(*mo));
	mo->loop = loop;
	r = uv_idle_init(loop, &mo->flush);
	if (r < 0)
		return r;
	mo->flush.data = mo;
	mo->flush_open = true;
	return 0;
}

void monitor_fini(monitor *mo)
{
	if (mo->flush_open) {
		mo->flush_open = false;
		uv_close((uv_handle_t *)&mo->flush, NULL);
	}
	mo->n = 0;
}

int monitor_add(monitor *mo, conn *c)
{
	for (uint32_t i = 0; i < mo->n; i++)
		if (mo->w[i].c == c)
			return 0;
	if (mo->n == MONITOR_MAX)
		return -EBUSY;
	mo->w[mo->n].c = c;
	mo->w[mo->n].dropped = 0;
	mo->n++;
	return 0;
}

void monitor_remove(monitor *mo, conn *c)
{
	for (uint32_t i = 0; i < mo->n; i++)
		if (mo->w[i].c == c) {
			mo->w[i] = mo->w[--mo->n];
			return;
		}
}

static void monitor_on_flush(uv_idle_t *h)
{
	monitor *mo = h->data;

	for (uint32_t i = 0; i < mo->n; i++)
		conn_flush(mo->w[i].c);
	uv_idle_stop(h);
	mo->flush_armed = false;
}

static void pack_event(reply *out, const dispatch_event *ev, uint64_t dropped)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	/* [2, "lmms.monitor", [event]] */
	reply_array_begin(out);
	reply_u64(out, 2);
	reply_str(out, "lmms.monitor");
	reply_array_begin(out);
	reply_map_begin(out);
	reply_str(out, "time");
	reply_f64(out, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
	reply_kv_u64(out, "uid", ev->c ? ev->c->uid : 0);
	reply_kv_i64(out, "pid", ev->c ? ev->c->pid : 0);
	reply_str(out, "method");
	reply_strn(out, ev->method, ev->method_len);
	reply_kv_str(out, "path", dispatch_path_name(ev->path));
	reply_kv_bool(out, "loaded", ev->loaded);
	reply_kv_u64(out, "us", ev->ns / 1000);
	reply_kv_u64(out, "bytes", ev->result_bytes);
	reply_str(out, "error");
	if (ev->error == PROTO_OK)
		reply_nil(out);
	else
		reply_str(out, proto_err_name(ev->error));
	reply_kv_u64(out, "dropped", dropped);
	reply_map_end(out);
	reply_array_end(out);
	reply_array_end(out);
}

void monitor_event(void *ud, const dispatch_event *ev)
{
	monitor *mo = ud;

	mo->events++;
	for (uint32_t i = 0; i < mo->n; i++) {
		monitor_watcher *w = &mo->w[i];
		reply out;

		if (w->c->closing)
			continue;
		if (conn_unsent(w->c) > MONITOR_MAX_PENDING) {
			w->dropped++;
			mo->dropped++;
			continue;
		}
		reply_init(&out);
		pack_event(&out, ev, w->dropped);
		if (reply_finish(&out) == 0 && conn_send(w->c, out.buf.data, out.buf.len) == 0)
			w->dropped = 0;
		else
			w->dropped++;
		reply_fini(&out);
	}
	if (!mo->flush_armed && mo->flush_open && mo->n) {
		uv_idle_start(&mo->flush, monitor_on_flush);
		mo->flush_armed = true;
	}
}
