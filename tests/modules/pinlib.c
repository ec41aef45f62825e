/*
 * pinlib.c - a plain shared library linked with -z nodelete, as Debian's
 * libcrypto.so.3 is. nodeletedep.so links it, so the daemon must report
 * nodeletedep as pinned by this library, not by the module itself.
 */
__attribute__((visibility("default"))) int pinlib_answer(void);

int pinlib_answer(void)
{
	return 42;
}
