/*
 * test-grace.c - adaptive grace: the rules step by step from tables, then a
 * simulated hour of a module called every (grace + a little) under the LUGS
 * sweep, fixed grace against adaptive, and the drift back to the base once
 * the module is left alone. Time is simulated: nothing here sleeps.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "grace.h"

#define S 1000ull /* ms */
#define BASE (30 * S)
#define MAX (240 * S)

enum { LOAD, UNLOAD, DRIFT };

typedef struct step {
	int op;
	uint64_t t;
	uint64_t base, max;
	int premature; /* LOAD: expected result; else ignored */
	uint64_t grace; /* grace_current() after the step */
} step;

static void run_table(const char *name, const step *steps, size_t n)
{
	grace g = { 0 };

	for (size_t i = 0; i < n; i++) {
		const step *s = &steps[i];

		switch (s->op) {
		case LOAD:
			ck_assert_msg(grace_on_load(&g, s->t, s->base, s->max) == (s->premature != 0),
				      "%s step %zu: premature expected %d", name, i, s->premature);
			break;
		case UNLOAD:
			grace_on_unload(&g, s->t);
			break;
		case DRIFT:
			grace_drift(&g, s->t, s->base);
			break;
		}
		ck_assert_msg(grace_current(&g, s->base, s->max) == s->grace,
			      "%s step %zu: grace %llu, expected %llu", name, i,
			      (unsigned long long)grace_current(&g, s->base, s->max),
			      (unsigned long long)s->grace);
	}
}

#define RUN(tbl) run_table(#tbl, tbl, sizeof(tbl) / sizeof(tbl[0]))

START_TEST(rules)
{
	/* a first load is never premature; a reload inside the grace doubles
	 * it, one at or past it does not */
	static const step doubling[] = {
		{ LOAD, 0, BASE, MAX, 0, BASE },
		{ UNLOAD, 100 * S, BASE, MAX, 0, BASE },
		{ LOAD, 110 * S, BASE, MAX, 1, 60 * S },
		{ UNLOAD, 200 * S, BASE, MAX, 0, 60 * S },
		{ LOAD, 259 * S, BASE, MAX, 1, 120 * S },
		{ UNLOAD, 300 * S, BASE, MAX, 0, 120 * S },
		/* exactly one grace out: not premature, and the first drift
		 * step (excess 90 s halved) happened on the way */
		{ LOAD, 420 * S, BASE, MAX, 0, 75 * S },
	};
	/* growth stops at max */
	static const step capped[] = {
		{ UNLOAD, 0, BASE, MAX, 0, BASE },
		{ LOAD, 1 * S, BASE, MAX, 1, 60 * S },
		{ UNLOAD, 100 * S, BASE, MAX, 0, 60 * S },
		{ LOAD, 101 * S, BASE, MAX, 1, 120 * S },
		{ UNLOAD, 200 * S, BASE, MAX, 0, 120 * S },
		{ LOAD, 201 * S, BASE, MAX, 1, 240 * S },
		{ UNLOAD, 300 * S, BASE, MAX, 0, 240 * S },
		{ LOAD, 301 * S, BASE, MAX, 1, 240 * S },
		/* max lowered by a reload: the learned grace is clamped */
		{ LOAD, 302 * S, BASE, 100 * S, 0, 100 * S },
		/* max below base: no adaptation at all, base wins */
		{ UNLOAD, 400 * S, BASE, 10 * S, 0, BASE },
		{ LOAD, 401 * S, BASE, 10 * S, 1, BASE },
	};
	/* drift: one step per full grace spent out, halving the excess */
	static const step drift[] = {
		{ UNLOAD, 0, BASE, MAX, 0, BASE },
		{ LOAD, 1 * S, BASE, MAX, 1, 60 * S },
		{ UNLOAD, 1000 * S, BASE, MAX, 0, 60 * S },
		{ DRIFT, 1059 * S, BASE, MAX, 0, 60 * S },
		{ DRIFT, 1060 * S, BASE, MAX, 0, 45 * S },
		{ DRIFT, 1060 * S, BASE, MAX, 0, 45 * S }, /* idempotent */
		{ DRIFT, 1104 * S, BASE, MAX, 0, 45 * S },
		{ DRIFT, 1105 * S, BASE, MAX, 0, 37500 },
		/* a reload after drifting is judged by the drifted grace */
		{ LOAD, 1106 * S, BASE, MAX, 0, 37500 },
		/* loaded: no drift however long */
		{ DRIFT, 9000 * S, BASE, MAX, 0, 37500 },
		{ UNLOAD, 9000 * S, BASE, MAX, 0, 37500 },
		/* ten hours out: back at base */
		{ DRIFT, 45000 * S, BASE, MAX, 0, BASE },
		/* and it follows the base if the configuration changes */
		{ DRIFT, 45001 * S, 20 * S, MAX, 0, 20 * S },
		{ LOAD, 90000 * S, 20 * S, MAX, 0, 20 * S },
	};
	/* a base raised above what was learned wins at once */
	static const step raised[] = {
		{ UNLOAD, 0, BASE, MAX, 0, BASE },
		{ LOAD, 1 * S, BASE, MAX, 1, 60 * S },
		{ LOAD, 2 * S, 90 * S, MAX, 0, 90 * S },
		{ UNLOAD, 3 * S, 90 * S, MAX, 0, 90 * S },
		{ DRIFT, 4 * S, 90 * S, MAX, 0, 90 * S },
		{ LOAD, 5 * S, 90 * S, MAX, 1, 180 * S },
	};

	RUN(doubling);
	RUN(capped);
	RUN(drift);
	RUN(raised);
}
END_TEST

START_TEST(counts_premature)
{
	grace g = { 0 };

	ck_assert(!grace_on_load(&g, 5, BASE, MAX)); /* not out: an admin or first load */
	grace_on_unload(&g, 10 * S);
	ck_assert(grace_on_load(&g, 11 * S, BASE, MAX));
	ck_assert(!grace_on_load(&g, 12 * S, BASE, MAX)); /* only once per unload */
	grace_on_unload(&g, 100 * S);
	ck_assert(grace_on_load(&g, 100 * S, BASE, MAX));
	ck_assert_uint_eq(g.premature, 2);
}
END_TEST

/*
 * A LUGS model: a sweep every sweep_ms unloads the module once it has been
 * idle for its grace; a call loads it when it is out. Calls come every
 * period_ms for calls_for_ms, then stop; the model runs until end_ms.
 * Returns the number of reloads (loads after the first) while called.
 */
typedef struct sim {
	bool adaptive;
	uint64_t sweep_ms, period_ms, calls_for_ms, end_ms;
	grace g;
	uint64_t premature, unloads;
	bool loaded;
} sim;

static uint64_t simulate(sim *m)
{
	uint64_t next_call = 0, next_sweep = m->sweep_ms, last_used = 0, loads = 0;

	m->loaded = false;
	while (next_call < m->calls_for_ms || next_sweep < m->end_ms) {
		bool call = next_call < m->calls_for_ms && next_call <= next_sweep;

		if (call) {
			uint64_t t = next_call;

			if (!m->loaded) {
				loads++;
				m->loaded = true;
				if (m->adaptive && grace_on_load(&m->g, t, BASE, MAX))
					m->premature++;
			}
			last_used = t;
			next_call += m->period_ms;
		} else {
			uint64_t t = next_sweep;
			uint64_t gr = m->adaptive ? grace_current(&m->g, BASE, MAX) : BASE;

			if (m->loaded && t - last_used >= gr) {
				m->loaded = false;
				m->unloads++;
				grace_on_unload(&m->g, t);
			} else if (!m->loaded) {
				grace_drift(&m->g, t, BASE);
			}
			next_sweep += m->sweep_ms;
		}
	}
	return loads - 1;
}

START_TEST(hour_of_grace_plus_a_little)
{
	/* "a little" past the 30 s grace, with the default 5 s sweep */
	static const uint64_t little[] = { 1 * S, 2 * S, 3 * S, 5 * S, 10 * S, 20 * S };

	for (size_t i = 0; i < sizeof(little) / sizeof(little[0]); i++) {
		sim fixed = { .adaptive = false, .sweep_ms = 5 * S, .period_ms = BASE + little[i],
			      .calls_for_ms = 3600 * S, .end_ms = 3600 * S };
		sim adapt = fixed;
		uint64_t rf, ra;

		adapt.adaptive = true;
		rf = simulate(&fixed);
		ra = simulate(&adapt);
		printf("period %llu ms: reloads/hour fixed %llu, adaptive %llu (premature %llu, "
		       "grace now %llu ms)\n",
		       (unsigned long long)fixed.period_ms, (unsigned long long)rf,
		       (unsigned long long)ra, (unsigned long long)adapt.premature,
		       (unsigned long long)grace_current(&adapt.g, BASE, MAX));
		ck_assert_uint_ge(rf, 10);
		ck_assert_uint_ge(rf, 10 * (ra ? ra : 1));
		/* every adaptive reload was a premature one, and it learned */
		ck_assert_uint_eq(ra, adapt.premature);
		ck_assert_uint_gt(grace_current(&adapt.g, BASE, MAX), fixed.period_ms);
	}
}
END_TEST

START_TEST(left_alone_drifts_back)
{
	/* an hour of calls every 40 s, then an hour with none */
	sim m = { .adaptive = true, .sweep_ms = 5 * S, .period_ms = 40 * S,
		  .calls_for_ms = 3600 * S, .end_ms = 2 * 3600 * S };
	sim still = m;

	simulate(&m);
	ck_assert(!m.loaded);
	ck_assert_uint_ge(m.premature, 1);
	ck_assert_uint_eq(grace_current(&m.g, BASE, MAX), BASE);
	ck_assert_uint_eq(m.g.grace_ms, 0);

	/* the same, cut right after the calls stop: it still remembers */
	still.end_ms = 3600 * S + 10 * S;
	simulate(&still);
	ck_assert(still.loaded);
	ck_assert_uint_gt(grace_current(&still.g, BASE, MAX), BASE);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("grace");
	TCase *tc = tcase_create("grace");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, rules);
	tcase_add_test(tc, counts_premature);
	tcase_add_test(tc, hour_of_grace_plus_a_little);
	tcase_add_test(tc, left_alone_drifts_back);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
