/*
 * noentry.c - a shared object without the entry symbol: the daemon must
 * report load_failed (with dlerror's text) and not crash.
 */
#include <lmms/lmms-module.h>

LMMS_EXPORT int noentry_something(void);
int noentry_something(void)
{
	return 42;
}
