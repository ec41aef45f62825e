/*
 * lifecycle.h - LUGS: the sweep that unloads idle modules through the five
 * checks of DESIGN.md §4, feature-policy unloads, admin unloads, and the
 * memory accounting around them.
 */
#ifndef LMMS_LIFECYCLE_H
#define LMMS_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "registry.h"

typedef struct lugs_stats {
	uint64_t unload_blocked; /* refusals, every check together */
	uint64_t sweeps;
	int64_t trim_reclaimed_bytes; /* measured across malloc_trim */
	uint64_t pressure_events;
} lugs_stats;

typedef struct lugs {
	uv_loop_t *loop;
	const config *cfg;
	registry *reg;
	bool eager; /* --eager: never unload */
	bool stopped; /* shutting down: no more unloads of our own */
	uv_timer_t sweep_timer;
	uv_timer_t feature_timer; /* runs the checks right after a feature module's refs hit 0 */
	bool timers_open;
	uint64_t last_trim_ms;
	bool trim_pending; /* an unload freed heap that malloc_trim has not returned yet */
	lugs_stats st;
} lugs;

int lugs_init(lugs *l, uv_loop_t *loop, const config *cfg, registry *reg, bool eager);
void lugs_fini(lugs *l);
/* Timer intervals follow the configuration (after a reload). */
void lugs_config_changed(lugs *l);
/* No more unloads of our own from now on (shutdown). */
void lugs_stop(lugs *l);
void lugs_sweep(lugs *l);
/*
 * Run the checks for m (force: lmms.unload NAME true, which skips grace and
 * minimum, never refs, protection or cache dependencies). Returns 0
 * unloaded, 1 pinned, -EBUSY with *which the refusing check and *reason
 * possibly a text of the module's.
 */
int lugs_try_unload(lugs *l, module *m, bool force, lugs_check *which, const char **reason);
/* Shed now (lmms.trim, memory pressure): unload every idle module that
 * passes checks 1-3, whatever its grace and min_resident. The number
 * unloaded; the caller trims the heap. */
uint32_t lugs_shed(lugs *l, const char *trigger);
/* registry.on_released: refs dropped to 0. */
void lugs_module_released(lugs *l, module *m);
bool lugs_protected(const lugs *l, const module *m);

#endif
