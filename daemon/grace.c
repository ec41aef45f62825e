/*
 * grace.c - adaptive grace (see grace.h for the rules and why).
 */
#include "grace.h"

uint64_t grace_current(const grace *g, uint64_t base, uint64_t max)
{
	uint64_t v = g->grace_ms;

	if (v > max)
		v = max;
	return v > base ? v : base;
}

void grace_on_unload(grace *g, uint64_t now)
{
	g->out = true;
	g->unloaded_at_ms = now;
	g->drift_at_ms = now;
}

void grace_drift(grace *g, uint64_t now, uint64_t base)
{
	if (!g->out)
		return;
	/* Each step halves the excess, so 64 steps exhaust any uint64_t. The
	 * first step comes a full grace after the unload, never inside the
	 * window grace_on_load judges a reload premature by. */
	for (int i = 0; i < 64 && g->grace_ms > base; i++) {
		if (now < g->drift_at_ms || now - g->drift_at_ms < g->grace_ms)
			break;
		g->drift_at_ms += g->grace_ms;
		g->grace_ms = base + (g->grace_ms - base) / 2;
	}
	/* at (or below a raised) base: follow the configured base from now on */
	if (g->grace_ms <= base)
		g->grace_ms = 0;
}

bool grace_on_load(grace *g, uint64_t now, uint64_t base, uint64_t max)
{
	uint64_t cur;

	if (!g->out)
		return false;
	grace_drift(g, now, base);
	g->out = false;
	cur = grace_current(g, base, max);
	if (now < g->unloaded_at_ms || now - g->unloaded_at_ms >= cur)
		return false;
	g->premature++;
	g->grace_ms = cur > max / 2 ? max : cur * 2;
	g->grace_ms = grace_current(g, base, max);
	return true;
}
