/*
 * fuzz-config.c - libFuzzer target for lmmsd's configuration parser
 * (daemon/config.c over Debian's libinih): config_load of a file of fuzzed
 * bytes with fuzzed --set overrides, and config_set alone.
 *
 * Input: the file's bytes up to the first NUL; each NUL-separated piece
 * after it is one --set assignment (at most MAX_SETS). The unit tests cover
 * a NUL inside a file.
 * Properties:
 *   1. config_load and config_set return 0 or a negative errno, and an
 *      error always comes with a message (a file error names the file);
 *   2. what loaded prints (--check-config) to a text that loads back to the
 *      same configuration, byte for byte, which prints the same again;
 *   3. the printed configuration differs from the loaded one in no
 *      restart-only key.
 * The file lives in a memfd, reached by its /proc path: no disk I/O, and
 * "<path>.d" (the drop-in directory) does not exist.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "fuzz-common.h"

#define MAX_SETS 8
#define MAX_SET_LEN 512

typedef struct memfile {
	int fd;
	char path[64];
} memfile;

static void memfile_open(memfile *m, const char *name)
{
	m->fd = memfd_create(name, MFD_CLOEXEC);
	FUZZ_ASSERT(m->fd >= 0);
	snprintf(m->path, sizeof(m->path), "/proc/self/fd/%d", m->fd);
}

static void memfile_set(memfile *m, const void *p, size_t n)
{
	FUZZ_ASSERT(ftruncate(m->fd, 0) == 0);
	FUZZ_ASSERT(n == 0 || pwrite(m->fd, p, n, 0) == (ssize_t)n);
}

static char *print_config(const config *c, size_t *n)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, n);

	FUZZ_ASSERT(f);
	config_print(c, f);
	FUZZ_ASSERT(fclose(f) == 0);
	return text;
}

static bool is_errno(int r)
{
	return r == -EINVAL || r == -ERANGE || r == -ENOENT || r == -ENAMETOOLONG ||
	       r == -E2BIG || r == -EIO || r == -ENOMEM;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static memfile in, printed;
	static config *c, *back, *scratch;
	static char sets[MAX_SETS][MAX_SET_LEN];
	const char *ov[MAX_SETS];
	char err[1024], err2[1024], diff[256];
	const uint8_t *nul = memchr(data, '\0', size);
	size_t file_len = nul ? (size_t)(nul - data) : size;
	size_t n_sets = 0, text_len, text2_len;
	char *text, *text2;
	int r;

	if (!c) {
		memfile_open(&in, "fuzz-config");
		memfile_open(&printed, "fuzz-config-printed");
		c = calloc(1, sizeof(*c));
		back = calloc(1, sizeof(*back));
		scratch = calloc(1, sizeof(*scratch));
		FUZZ_ASSERT(c && back && scratch);
	}

	/* the --set pieces: NUL-separated after the file */
	for (const uint8_t *p = nul; p && n_sets < MAX_SETS; n_sets++) {
		const uint8_t *start = p + 1, *end = data + size;
		const uint8_t *next = memchr(start, '\0', (size_t)(end - start));
		size_t len = (size_t)((next ? next : end) - start);

		if (len >= MAX_SET_LEN)
			len = MAX_SET_LEN - 1;
		memcpy(sets[n_sets], start, len);
		sets[n_sets][len] = '\0';
		ov[n_sets] = sets[n_sets];
		p = next;
	}

	/* config_set alone, on the defaults */
	for (size_t i = 0; i < n_sets; i++) {
		config_init_defaults(scratch);
		err[0] = '\0';
		r = config_set(scratch, ov[i], err, sizeof(err));
		FUZZ_ASSERT(r == 0 || is_errno(r));
		FUZZ_ASSERT(r == 0 || err[0]);
	}

	memfile_set(&in, data, file_len);
	err[0] = '\0';
	r = config_load(c, in.path, ov, n_sets, err, sizeof(err));
	FUZZ_ASSERT(r == 0 || is_errno(r));
	if (r < 0) {
		FUZZ_ASSERT(err[0]);
		return 0;
	}

	/* property 2: --check-config output loads back to the same struct */
	text = print_config(c, &text_len);
	memfile_set(&printed, text, text_len);
	r = config_load(back, printed.path, NULL, 0, err2, sizeof(err2));
	if (r != 0) {
		fprintf(stderr, "printed configuration does not load: %s\n%s", err2, text);
		abort();
	}
	if (memcmp(back, c, sizeof(*c)) != 0) {
		text2 = print_config(back, &text2_len);
		fprintf(stderr, "printed configuration loads differently:\n%s\n--- back:\n%s", text,
			text2);
		abort();
	}
	text2 = print_config(back, &text2_len);
	FUZZ_ASSERT(text2_len == text_len && memcmp(text, text2, text_len) == 0);
	FUZZ_ASSERT(config_diff_restart_only(c, back, diff, sizeof(diff)) == 0);
	free(text);
	free(text2);
	return 0;
}
