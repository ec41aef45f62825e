/*
 * learn.h - the lifecycle that learns (DESIGN.md §4 "Learning"), wired to
 * the daemon: heat that survives restarts (persist.c) with a background
 * preload of what was hot, shedding under memory pressure (pressure.c), and
 * modules replaced on disk reloaded without a restart (watch.c). Adaptive
 * grace lives with LUGS itself (grace.c, lifecycle.c).
 *
 * Nothing here runs before the daemon answers: the saved heat is read at
 * start (one small file), but modules are preloaded, and the directory
 * watcher (which lists the directory) armed, only once the first request
 * was answered or the daemon stayed quiet for a while. The pressure trigger
 * is armed after READY (one open and one write).
 */
#ifndef LMMS_LEARN_H
#define LMMS_LEARN_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "hmap.h"
#include "pressure.h"
#include "registry.h"
#include "watch.h"

struct lmmsd;

/* Heat read from the state file, waiting for its module's ops to be known. */
typedef struct saved_heat {
	char *method;
	uint32_t count;
	uint64_t calls;
} saved_heat;

#define LEARN_SAVE_INTERVAL_MS (5 * 60 * 1000)
/* With no request to wait for, preloading starts this long after READY. */
#define LEARN_PRELOAD_QUIET_MS 1000

typedef struct learn {
	struct lmmsd *d;

	/* heat across restarts */
	char heat_path[PATH_MAX]; /* "" = no state directory: nothing saved */
	saved_heat *saved;
	uint32_t n_saved;
	hmap saved_by_method;
	char (*preload)[REGISTRY_NAME_BUF]; /* modules to load again after READY */
	uint32_t n_preload, preload_next;
	uint64_t ready_ms;
	uv_timer_t save_timer, preload_timer, reload_timer;
	bool timers_open;
	uint64_t saves, preloaded;

	pressure psi;
	bool psi_on;
	watch w;
	bool watch_on, watch_started;
} learn;

void learn_init(learn *l, struct lmmsd *d);
/* Before the listener: read the saved heat (a missing or bad file is a cold
 * start with one line in the log). */
void learn_restore(learn *l);
/* After READY: arm the watcher, the pressure trigger, the save timer and
 * the background preload. */
void learn_start(learn *l);
/* A module's ops became known (it loaded): give them their saved heat. */
void learn_module_loaded(learn *l, module *m);
/* A module's last call returned: a reload waiting for that may run now. */
void learn_module_released(learn *l, module *m);
/* At stop: save the heat, disarm everything. */
void learn_stop(learn *l);
/* Close the handles (the loop then runs their callbacks) ... */
void learn_fini(learn *l);
/* ... and after the loop ran dry, free what is left. */
void learn_free(learn *l);

#endif
