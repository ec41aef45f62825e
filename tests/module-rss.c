/*
 * module-rss.c - what one module costs a process, and what it leaves behind.
 *
 *   module-rss MODULE.so OP [PARAM...]
 *
 * PARAM is a str, or #N for an integer, or @FILE for the file's bytes (bin).
 * Loads the module the daemon's way (dlopen RTLD_NOW|RTLD_LOCAL, entry,
 * init through call.c's host table), makes one call of OP, then runs fini
 * and dlclose, and prints at each stage the process's resident memory
 * (VmRSS, split into anonymous and file-backed) and its thread count.
 * Finally it lists the shared objects the load mapped that are still mapped
 * after dlclose, each marked when its DT_FLAGS_1 has NODELETE: the memory an
 * in-process daemon can never get back from this module. (An unmarked one
 * is kept by a marked one that depends on it, or by glibc itself, which
 * never unloads an object defining STB_GNU_UNIQUE symbols: libstdc++.)
 *
 * Not a test: a measuring tool for bench/RESULTS.md (modules/README.md says
 * how to run it). Exits 1 if the module cannot be loaded or the call fails.
 */
#include <dlfcn.h>
#include <elf.h>
#include <limits.h>
#include <link.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"

#define MAX_OBJS 512
#define PATH_MAX_LEN 512
#define MAX_FILE (64u << 20)

struct objs {
	char path[MAX_OBJS][PATH_MAX_LEN];
	size_t n;
};

/* The shared objects mapped now, from /proc/self/maps. */
static void mapped(struct objs *o)
{
	char line[1024];
	FILE *f = fopen("/proc/self/maps", "r");

	o->n = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *p = strchr(line, '/');
		size_t i;

		if (!p || !strstr(p, ".so"))
			continue;
		p[strcspn(p, "\n")] = '\0';
		for (i = 0; i < o->n && strcmp(o->path[i], p) != 0; i++)
			;
		if (i == o->n && o->n < MAX_OBJS)
			snprintf(o->path[o->n++], PATH_MAX_LEN, "%s", p);
	}
	fclose(f);
}

static bool has(const struct objs *o, const char *p)
{
	for (size_t i = 0; i < o->n; i++) {
		if (strcmp(o->path[i], p) == 0)
			return true;
	}
	return false;
}

struct nodelete_query {
	const char *path;
	int found; /* -1 not loaded, 0 loaded, 1 loaded with NODELETE */
};

static int check_nodelete(struct dl_phdr_info *info, size_t size, void *data)
{
	struct nodelete_query *q = data;
	char real[PATH_MAX];

	/* The loader's name may go through a symlink (/lib -> /usr/lib). */
	if (!info->dlpi_name || !info->dlpi_name[0] || !realpath(info->dlpi_name, real) ||
	    strcmp(real, q->path) != 0)
		return 0;
	q->found = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Dyn) *d;

		if (info->dlpi_phdr[i].p_type != PT_DYNAMIC)
			continue;
		d = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
		for (; d->d_tag != DT_NULL; d++) {
			if (d->d_tag == DT_FLAGS_1 && (d->d_un.d_val & DF_1_NODELETE))
				q->found = 1;
		}
	}
	return 1;
}

static void stage(const char *name)
{
	char line[256];
	long rss = 0, anon = 0, file = 0, threads = 0;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f)) {
		sscanf(line, "VmRSS: %ld", &rss);
		sscanf(line, "RssAnon: %ld", &anon);
		sscanf(line, "RssFile: %ld", &file);
		sscanf(line, "Threads: %ld", &threads);
	}
	if (f)
		fclose(f);
	printf("%-28s rss %7ld KiB  anon %7ld KiB  file %7ld KiB  threads %ld\n", name, rss, anon,
	       file, threads);
}

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *b = f ? malloc(MAX_FILE) : NULL;

	*n = b ? fread(b, 1, MAX_FILE, f) : 0;
	if (f)
		fclose(f);
	return b;
}

static int call_op(const lmms_module_desc *d, void *state, const char *op, int argc,
		   char **argv)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked up;
	const char *msg = NULL;
	const lmms_op *o = NULL;
	lmms_call c;
	proto_err err;
	int rc = -1;

	for (uint32_t i = 0; i < d->n_ops; i++) {
		const lmms_op *x = (const lmms_op *)((const char *)d->ops + (size_t)i * d->op_size);

		if (strcmp(x->name, op) == 0)
			o = x;
	}
	if (!o) {
		fprintf(stderr, "module-rss: %s has no op %s\n", d->name, op);
		return -1;
	}
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, (size_t)argc);
	for (int i = 0; i < argc; i++) {
		if (argv[i][0] == '@') {
			size_t n;
			char *b = slurp(argv[i] + 1, &n);

			if (!b) {
				fprintf(stderr, "module-rss: cannot read %s\n", argv[i] + 1);
				goto out;
			}
			msgpack_pack_bin_with_body(&pk, b, n);
			free(b);
		} else if (argv[i][0] == '#') {
			msgpack_pack_int64(&pk, strtoll(argv[i] + 1, NULL, 10));
		} else {
			msgpack_pack_str_with_body(&pk, argv[i], strlen(argv[i]));
		}
	}
	msgpack_unpacked_init(&up);
	msgpack_unpack_next(&up, sb.data, sb.size, NULL);
	call_init(&c, &up.data, 64u << 20, d->name);
	err = call_finish(&c, o->fn(&call_host, &c, state), &msg);
	if (err != PROTO_OK)
		fprintf(stderr, "module-rss: %s.%s: %s: %s\n", d->name, op, proto_err_name(err),
			msg ? msg : "");
	else
		rc = 0;
	call_fini(&c);
	msgpack_unpacked_destroy(&up);
out:
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

int main(int argc, char **argv)
{
	static struct objs before, loaded, after;
	lmms_module_entry_fn entry;
	const lmms_module_desc *d;
	void *dl, *state = NULL;
	size_t n_new;
	lmms_call c;
	int rc;

	if (argc < 3) {
		fprintf(stderr, "usage: module-rss MODULE.so OP [str | #int | @file]...\n");
		return 2;
	}
	mapped(&before);
	stage("before dlopen");
	dl = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		fprintf(stderr, "module-rss: %s\n", dlerror());
		return 1;
	}
	*(void **)&entry = dlsym(dl, LMMS_MODULE_ENTRY_NAME);
	if (!entry || !(d = entry())) {
		fprintf(stderr, "module-rss: %s has no module entry\n", argv[1]);
		return 1;
	}
	stage("after dlopen");
	if (d->init) {
		call_init(&c, NULL, 0, d->name);
		rc = d->init(&call_host, &c, &state);
		if (rc < 0)
			fprintf(stderr, "module-rss: init: %s\n", c.fail_msg);
		call_fini(&c);
		if (rc < 0)
			return 1;
	}
	stage("after init");
	if (call_op(d, state, argv[2], argc - 3, argv + 3) < 0)
		return 1;
	stage("after one call");
	mapped(&loaded);
	if (d->fini)
		d->fini(&call_host, state);
	dlclose(dl);
	stage("after fini + dlclose");
	malloc_trim(0);
	stage("after malloc_trim");
	mapped(&after);
	n_new = 0;
	for (size_t i = 0; i < loaded.n; i++)
		n_new += !has(&before, loaded.path[i]);
	printf("mapped by the load: %zu objects; still mapped after dlclose:\n", n_new);
	for (size_t i = 0; i < after.n; i++) {
		struct nodelete_query q = { .path = after.path[i], .found = -1 };

		if (has(&before, after.path[i]))
			continue;
		dl_iterate_phdr(check_nodelete, &q);
		printf("  %s%s\n", after.path[i],
		       q.found == 1 ? "  (NODELETE)" : q.found == 0 ? "" : "  (not in the link map)");
	}
	return 0;
}
