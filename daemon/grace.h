/*
 * grace.h - adaptive grace: each module learns how long LUGS should wait.
 *
 * A module that is loaded again while the grace that got it unloaded would
 * still have been running was unloaded too early: the unload cost a load and
 * gained nothing. Its own grace then doubles (up to lugs.grace_max), so a
 * module called every (grace + a little) stops being unloaded after one such
 * miss. While it stays out of memory, the grace it learned drifts back
 * toward lugs.grace_period: every full grace spent unloaded halves the
 * excess over the base, so a module that went quiet for good ends where a
 * new one starts, and one that went quiet for a while keeps part of what it
 * learned.
 *
 * Pure state with no clock of its own: every function takes the caller's
 * monotonic now (ms). A zeroed struct is a module that has learned nothing
 * (its grace is the base). Everything runs on the loop thread.
 */
#ifndef LMMS_GRACE_H
#define LMMS_GRACE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct grace {
	uint64_t grace_ms; /* learned grace; 0 = the base */
	uint64_t unloaded_at_ms; /* when LUGS last unloaded it (valid while out) */
	uint64_t drift_at_ms; /* drift is counted from here while out */
	uint64_t premature; /* premature reloads seen (lugs_premature_reloads) */
	bool out; /* unloaded by LUGS and not loaded since */
} grace;

/*
 * The grace in force, clamped to [base, max]: base and max come from the
 * configuration, which a reload may have changed since the module learned.
 * max < base means no adaptation (base wins).
 */
uint64_t grace_current(const grace *g, uint64_t base, uint64_t max);

/* LUGS unloaded the module because its grace ran out (the sweep, not an
 * admin, pressure or feature-policy unload: those say nothing about grace). */
void grace_on_unload(grace *g, uint64_t now);

/*
 * The module was loaded again. Returns true when this load is premature
 * (within the grace since the LUGS unload); the module's grace then
 * doubles, up to max. Any pending drift is applied first.
 */
bool grace_on_load(grace *g, uint64_t now, uint64_t base, uint64_t max);

/*
 * While the module stays out: for each full grace spent unloaded since the
 * last step, halve the excess over base. Cheap and idempotent for the same
 * now; call it from the sweep for unloaded modules (and grace_on_load
 * calls it itself). No-op for a module that is not out by LUGS.
 */
void grace_drift(grace *g, uint64_t now, uint64_t base);

#endif
