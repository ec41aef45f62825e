/*
 * monitor.h - lmms.monitor: connections that asked to watch every call.
 *
 * Like redis-cli MONITOR: after lmms.monitor, a connection receives one
 * notification [2, "lmms.monitor", [event]] per finished call of any
 * client. A monitor never slows the daemon: events are packed into its
 * output only while that output is under MONITOR_MAX_PENDING; past it they
 * are dropped and counted, and the count rides on the next event delivered.
 * Output is flushed once per loop iteration, not once per event.
 */
#ifndef LMMS_MONITOR_H
#define LMMS_MONITOR_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "dispatch.h"
#include "server.h"

#define MONITOR_MAX 8
#define MONITOR_MAX_PENDING (256 * 1024)

typedef struct monitor_watcher {
	conn *c;
	uint64_t dropped; /* events not delivered since the last one that was */
} monitor_watcher;

typedef struct monitor {
	uv_loop_t *loop;
	monitor_watcher w[MONITOR_MAX];
	uint32_t n;
	uv_idle_t flush; /* runs while events wait in some watcher's output */
	bool flush_open, flush_armed;
	uint64_t events, dropped;
} monitor;

int monitor_init(monitor *mo, uv_loop_t *loop);
void monitor_fini(monitor *mo);
/* Start sending events to c: -EBUSY when MONITOR_MAX watch already. */
int monitor_add(monitor *mo, conn *c);
/* c is closing (server.on_close). */
void monitor_remove(monitor *mo, conn *c);
/* dispatch.on_event */
void monitor_event(void *mo, const dispatch_event *ev);

#endif
