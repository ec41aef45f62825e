/*
 * registry.c - LIGS: module directory listing, lazy dlopen, ABI checks,
 * learned op tables, unload with RTLD_NOLOAD verification.
 */
#include "registry.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "call.h"
#include "elfnote.h"
#include "log.h"
#include "util.h"

/* A v1 descriptor must at least reach the end of can_unload. */
#define DESC_MIN_SIZE (offsetof(lmms_module_desc, can_unload) + sizeof(void *))
#define OP_MIN_SIZE (offsetof(lmms_op, cache_ttl_ms) + sizeof(uint32_t))


const char *module_state_name(module_state s)
{
	switch (s) {
	case MOD_UNLOADED:
		return "unloaded";
	case MOD_LOADED:
		return "loaded";
	case MOD_PINNED:
		return "pinned";
	case MOD_FAILED:
		return "failed";
	}
	return "unknown";
}

const char *lugs_check_name(lugs_check c)
{
	static const char *const names[LUGS_CHECK_MAX] = {
		[LUGS_REFS] = "refs",
		[LUGS_PROTECTED] = "protected",
		[LUGS_CACHED] = "cached",
		[LUGS_GRACE] = "grace",
		[LUGS_MIN_RESIDENT] = "min_resident",
		[LUGS_VETO] = "veto",
	};
	return (unsigned)c < LUGS_CHECK_MAX ? names[c] : "unknown";
}

int64_t rss_bytes_of(pid_t pid)
{
	char path[64], buf[128];
	long size = 0, resident = 0;
	ssize_t n;
	int fd;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/statm");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	if (sscanf(buf, "%ld %ld", &size, &resident) != 2)
		return -EIO;
	return (int64_t)resident * sysconf(_SC_PAGESIZE);
}

int64_t rss_bytes(void)
{
	return rss_bytes_of(0);
}

static bool op_name_chars_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.'))
			return false;
	}
	return true;
}

/*
 * The method "<module>.<op>" must pass proto_method_split, which refuses ".."
 * and a trailing dot, and a module name never holds a dot: an op name that
 * starts or ends with a dot, or holds "..", could never be called.
 */
static const char *op_name_dot_problem(const char *s, size_t n)
{
	if (s[0] == '.')
		return "starts with a dot";
	if (s[n - 1] == '.')
		return "ends with a dot";
	if (memmem(s, n, "..", 2))
		return "holds \"..\"";
	return NULL;
}

/* Check op i's name and function of module `name`; on failure err says
 * which and why. */
static int op_check(const char *name, uint32_t i, const lmms_op *o, char *err, size_t errlen)
{
	const char *why;
	size_t n;

	if (!o->name) {
		snprintf(err, errlen, "op %u has no name", i);
		return -ENOEXEC;
	}
	n = strnlen(o->name, OP_NAME_MAX + 1);
	if (n == 0 || n > OP_NAME_MAX) {
		snprintf(err, errlen, "op %u name is empty or longer than %d bytes", i, OP_NAME_MAX);
		return -ENOEXEC;
	}
	/* the name is not printed: it may hold anything */
	if (!op_name_chars_ok(o->name, n)) {
		snprintf(err, errlen, "op %u name has a byte other than A-Z a-z 0-9 _ - .", i);
		return -ENOEXEC;
	}
	why = op_name_dot_problem(o->name, n);
	if (why) {
		snprintf(err, errlen, "op %u name \"%s\" %s: its method \"%s.%s\" could never be called",
			 i, o->name, why, name, o->name);
		return -ENOEXEC;
	}
	if (!o->fn) {
		snprintf(err, errlen, "op %u \"%s\" has no function", i, o->name);
		return -ENOEXEC;
	}
	return 0;
}

bool module_op_name_valid(const char *s)
{
	size_t n = strnlen(s, OP_NAME_MAX + 1);

	return n > 0 && n <= OP_NAME_MAX && op_name_chars_ok(s, n) && !op_name_dot_problem(s, n);
}

static void module_resolve_config(module *m);

static module *module_new(registry *r, const char *name, size_t len)
{
	module *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->reg = r;
	memcpy(m->name, name, len);
	m->name[len] = '\0';
	m->name_len = (uint32_t)len;
	if (asprintf(&m->path, "%s/%s.so", r->dir, m->name) < 0) {
		free(m);
		return NULL;
	}
	module_resolve_config(m);
	return m;
}

static void module_resolve_config(module *m)
{
	m->policy = config_module_policy(m->reg->cfg, m->name);
	m->grace_ms = config_module_grace_ms(m->reg->cfg, m->name);
	m->cache_scope = config_module_cache_scope(m->reg->cfg, m->name);
}

static void module_free(module *m)
{
	for (uint32_t i = 0; i < m->n_ops; i++) {
		free(m->ops[i]->method);
		free(m->ops[i]->doc);
		free(m->ops[i]);
	}
	free(m->ops);
	free(m->path);
	free(m->description);
	free(m->version);
	call_settings_free(&m->settings);
	free(m);
}

void module_set_trigger(module *m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m->unload_trigger, sizeof(m->unload_trigger), fmt, ap);
	va_end(ap);
}

void module_unref(module *m)
{
	registry *r = m->reg;

	if (--m->refs == 0 && r->on_released)
		r->on_released(r->ud, m);
}

void registry_apply_config(registry *r)
{
	for (uint32_t i = 0; i < r->n_mods; i++)
		module_resolve_config(r->mods[i]);
}

/*
 * LIGS applied to the registry itself: nothing is listed at start. A called
 * module is resolved by its path (one stat), and the directory is listed
 * only when someone asks for all of it (lmms.modules, lmms.stats, --eager),
 * so starting costs the same with 6 modules installed or 1,000.
 */
int registry_init(registry *r, const char *dir, const config *cfg)
{
	struct stat st;

	memset(r, 0, sizeof(*r));
	if (strlen(dir) >= sizeof(r->dir))
		return -ENAMETOOLONG;
	strcpy(r->dir, dir);
	r->cfg = cfg;
	hmap_init(&r->by_name, REGISTRY_MAX_MODULES);
	hmap_init(&r->ops, REGISTRY_MAX_MODULES * MODULE_MAX_OPS);
	if (stat(dir, &st) < 0) {
		int e = -errno;

		log_warn("module directory %s: %s", dir, strerror(errno));
		return e;
	}
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int module_unload(registry *r, module *m, bool ask, const char **reason);

void registry_fini(registry *r)
{
	bool abandoned = false;

	for (uint32_t i = 0; i < r->n_mods; i++) {
		module *m = r->mods[i];

		/* A call the stop gave up on still runs its code: leave the
		 * module mapped, initialised and allocated for the exit. A
		 * tainted module's fini is not the code it was loaded with. */
		if (m->refs || m->tainted) {
			abandoned = true;
			continue;
		}

		/* The daemon is leaving: a can_unload veto protects data while
		 * the daemon lives, but at exit skipping fini would only leak
		 * it (and whatever else the module holds). */
		if (m->handle) {
			module_set_trigger(m, "shutdown");
			module_unload(r, m, false, NULL);
		}
	}
	if (abandoned) {
		/* the process must _exit: exit() would run these modules'
		 * destructors, under a running call or from changed code */
		r->left_mapped = true;
		return;
	}
	for (uint32_t i = 0; i < r->n_mods; i++)
		module_free(r->mods[i]);
	hmap_fini(&r->by_name);
	hmap_fini(&r->ops);
	memset(r, 0, sizeof(*r));
}

static bool registry_dir_changed(registry *r);

/* A new entry for NAME.so, kept in name order. */
static int registry_add(registry *r, const char *name, size_t len, module **out)
{
	module *m;
	uint32_t at;

	if (r->n_mods >= REGISTRY_MAX_MODULES) {
		log_warn("module directory: more than %d modules, ignoring %.*s",
			 REGISTRY_MAX_MODULES, (int)len, name);
		return -ENOSPC;
	}
	m = module_new(r, name, len);
	if (!m || hmap_put(&r->by_name, m->name, m->name_len, m) < 0) {
		if (m)
			module_free(m);
		return -ENOMEM;
	}
	for (at = r->n_mods; at > 0 && strcmp(r->mods[at - 1]->name, m->name) > 0; at--)
		;
	memmove(&r->mods[at + 1], &r->mods[at], (r->n_mods - at) * sizeof(r->mods[0]));
	r->mods[at] = m;
	r->n_mods++;
	*out = m;
	return 0;
}

int registry_scan(registry *r)
{
	struct stat st;
	struct dirent *de;
	DIR *dir;

	dir = opendir(r->dir);
	if (!dir) {
		int e = -errno;

		log_warn("module directory %s: %s", r->dir, strerror(errno));
		return e;
	}
	if (fstat(dirfd(dir), &st) == 0)
		r->dir_mtime_ns = st.st_mtim.tv_sec * 1000000000L + st.st_mtim.tv_nsec;
	r->last_scan_ms = now_ms();

	while ((de = readdir(dir))) {
		size_t len = strlen(de->d_name);
		module *m;

		if (len < 4 || strcmp(de->d_name + len - 3, ".so") != 0)
			continue;
		len -= 3;
		if (!config_module_name_valid(de->d_name, len)) {
			log_debug("module directory: ignoring %s (not a valid module name)",
				  de->d_name);
			continue;
		}
		if (hmap_get(&r->by_name, de->d_name, len))
			continue;
		if (registry_add(r, de->d_name, len, &m) == -ENOMEM) {
			closedir(dir);
			return -ENOMEM;
		}
	}
	closedir(dir);
	r->listed = true;
	return 0;
}

int registry_list(registry *r)
{
	if (r->listed && !registry_dir_changed(r))
		return 0;
	return registry_scan(r);
}

static bool registry_dir_changed(registry *r)
{
	struct stat st;

	if (stat(r->dir, &st) < 0)
		return false;
	return st.st_mtim.tv_sec * 1000000000L + st.st_mtim.tv_nsec != r->dir_mtime_ns;
}

/* A name not seen yet is resolved by its path: one stat, no listing, so a
 * module dropped in later is found at once. */
module *registry_find(registry *r, const char *name, size_t len)
{
	module *m = hmap_get(&r->by_name, name, len);
	char path[PATH_MAX];
	struct stat st;

	if (m || !config_module_name_valid(name, len))
		return m;
	if (snprintf(path, sizeof(path), "%s/%.*s.so", r->dir, (int)len, name) >=
		    (int)sizeof(path) ||
	    stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return NULL;
	return registry_add(r, name, len, &m) == 0 ? m : NULL;
}

op_info *registry_find_op(registry *r, const char *method, size_t len)
{
	return hmap_get(&r->ops, method, len);
}

/*
 * A module is code that runs inside the daemon: refuse one that anybody but
 * root or our own uid could have replaced.
 */
static int module_check_file(module *m)
{
	struct stat st;
	uid_t me = geteuid();

	if (stat(m->reg->dir, &st) < 0) {
		snprintf(m->error, sizeof(m->error), "module directory %.160s: %s", m->reg->dir,
			 strerror(errno));
		return -EIO;
	}
	if ((st.st_uid != 0 && st.st_uid != me) || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(m->error, sizeof(m->error),
			 "module directory %.160s is writable by others than root or uid %u",
			 m->reg->dir, (unsigned)me);
		return -EPERM;
	}
	if (stat(m->path, &st) < 0) {
		snprintf(m->error, sizeof(m->error), "%.180s: %s", m->path, strerror(errno));
		return -EIO;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(m->error, sizeof(m->error), "%.200s is not a regular file", m->path);
		return -EPERM;
	}
	if ((st.st_uid != 0 && st.st_uid != me) || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(m->error, sizeof(m->error),
			 "%.150s is writable by others than root or uid %u: refusing to load it",
			 m->path, (unsigned)me);
		return -EPERM;
	}
	return 0;
}

static bool object_is_nodelete(const struct link_map *lm)
{
	if (!lm->l_ld)
		return false;
	for (const ElfW(Dyn) *d = lm->l_ld; d->d_tag != DT_NULL; d++)
		if (d->d_tag == DT_FLAGS_1 && (d->d_un.d_val & DF_1_NODELETE))
			return true;
	return false;
}

/*
 * Will glibc keep this module's memory mapped for good? True when the module
 * or a library its dlopen brought in carries DF_1_NODELETE (-z nodelete, as
 * Debian's libcrypto.so.3 does): unloading the module would then give back
 * next to nothing. glibc appends the objects one dlopen maps to its list, so
 * walking forward from the module's own entry, right after dlopen, visits
 * exactly the module and the libraries it pulled in; libraries that were
 * already mapped come earlier and do not pin it.
 */
static bool module_find_nodelete(void *handle, char *who, size_t n)
{
	struct link_map *lm = NULL;

	if (dlinfo(handle, RTLD_DI_LINKMAP, &lm) < 0)
		return false;
	for (; lm; lm = lm->l_next) {
		if (object_is_nodelete(lm)) {
			const char *name = lm->l_name ? strrchr(lm->l_name, '/') : NULL;

			snprintf(who, n, "%s", name ? name + 1 : lm->l_name ? lm->l_name : "?");
			return true;
		}
	}
	return false;
}

/* Does the descriptor, by its own size, reach field f? */
#define DESC_HAS(d, f) \
	((d)->size >= offsetof(lmms_module_desc, f) + sizeof(((lmms_module_desc *)0)->f))

/* Module text is copied (bounded) so nothing we keep points into the module. */
#define DOC_MAX 255

static int strdup_bounded(char **dst, const char *src)
{
	char *p = strndup(src ? src : "", DOC_MAX);

	if (!p)
		return -ENOMEM;
	free(*dst);
	*dst = p;
	return 0;
}

static int op_set_doc(op_info *op, const char *doc)
{
	return strdup_bounded(&op->doc, doc);
}

static void module_setting_one(void *ud, const char *key, const char *value)
{
	module *m = ud;

	if (call_settings_add(&m->settings, key, value) < 0)
		m->settings_oom = true;
}

/* A fresh copy of the module's own keys per load, so a reload of the
 * configuration reaches the module the next time it is loaded. */
static int module_settings_load(module *m)
{
	call_settings_free(&m->settings);
	m->settings_oom = false;
	config_module_settings(m->reg->cfg, m->name, module_setting_one, m);
	return m->settings_oom ? -ENOMEM : 0;
}

int module_desc_load(void *handle, const char *name, lmms_module_desc *out, char *err,
		     size_t errlen)
{
	lmms_module_entry_fn entry;
	const lmms_module_desc *d;

	entry = (lmms_module_entry_fn)dlsym(handle, LMMS_MODULE_ENTRY_NAME);
	if (!entry) {
		snprintf(err, errlen, "no %s symbol: not an lmms module", LMMS_MODULE_ENTRY_NAME);
		return -ENOEXEC;
	}
	d = entry();
	if (!d) {
		snprintf(err, errlen, "%s returned no descriptor", LMMS_MODULE_ENTRY_NAME);
		return -ENOEXEC;
	}
	if (d->abi_version != LMMS_MODULE_ABI_VERSION) {
		snprintf(err, errlen, "ABI version %u, daemon speaks %u", d->abi_version,
			 LMMS_MODULE_ABI_VERSION);
		return -ENOEXEC;
	}
	if (d->size < DESC_MIN_SIZE) {
		snprintf(err, errlen, "descriptor size %u is below the minimum %zu", d->size,
			 (size_t)DESC_MIN_SIZE);
		return -ENOEXEC;
	}
	if (!d->name || strcmp(d->name, name) != 0) {
		snprintf(err, errlen, "descriptor names module \"%.64s\", file is %s.so",
			 d->name ? d->name : "(null)", name);
		return -ENOEXEC;
	}
	if (d->n_ops > MODULE_MAX_OPS) {
		snprintf(err, errlen, "declares %u ops (at most %d)", d->n_ops, MODULE_MAX_OPS);
		return -ENOEXEC;
	}
	if (d->n_ops && (!d->ops || d->op_size < OP_MIN_SIZE)) {
		snprintf(err, errlen, "bad op table (op_size %u)", d->op_size);
		return -ENOEXEC;
	}
	for (uint32_t i = 0; i < d->n_ops; i++) {
		const lmms_op *o = module_desc_op(d, i);

		int rc = op_check(name, i, o, err, errlen);

		if (rc < 0)
			return rc;
		for (uint32_t j = 0; j < i; j++)
			if (!strcmp(module_desc_op(d, j)->name, o->name)) {
				snprintf(err, errlen, "op %s declared twice", o->name);
				return -ENOEXEC;
			}
	}
	/* Read by the module's size: fields it does not know stay zero. */
	memset(out, 0, sizeof(*out));
	memcpy(out, d, d->size < sizeof(*out) ? d->size : sizeof(*out));
	return 0;
}

uint32_t module_desc_op_blocking_above(const lmms_module_desc *d, const lmms_op *o)
{
	/* read by the module's op_size: an older module has no such field */
	return d->op_size >= offsetof(lmms_op, blocking_above) + sizeof(o->blocking_above)
		       ? o->blocking_above
		       : 0;
}

const char *module_desc_op_doc(const lmms_module_desc *d, const lmms_op *o)
{
	return d->op_size >= offsetof(lmms_op, doc) + sizeof(o->doc) ? o->doc : NULL;
}

static op_info *module_op_by_name(module *m, const char *name)
{
	for (uint32_t i = 0; i < m->n_ops; i++)
		if (strcmp(m->ops[i]->name, name) == 0)
			return m->ops[i];
	return NULL;
}

/*
 * Merge the (checked) op table into what we know. Metrics of ops that still
 * exist are kept across reloads; ops the module stopped declaring are marked
 * gone (calls get no_such_method).
 */
static int module_learn_ops(registry *r, module *m, const lmms_module_desc *d)
{
	for (uint32_t i = 0; i < m->n_ops; i++) {
		m->ops[i]->fn = NULL;
		m->ops[i]->gone = true;
	}
	for (uint32_t i = 0; i < d->n_ops; i++) {
		const lmms_op *o = module_desc_op(d, i);
		op_info *op = module_op_by_name(m, o->name);

		if (!op) {
			op_info **ops;

			if (m->n_ops >= MODULE_MAX_OPS)
				return -ENOSPC; /* only a module growing across reloads gets here */
			ops = realloc(m->ops, (m->n_ops + 1) * sizeof(*ops));
			if (!ops)
				return -ENOMEM;
			m->ops = ops;
			op = calloc(1, sizeof(*op));
			if (!op)
				return -ENOMEM;
			if (asprintf(&op->method, "%s.%s", m->name, o->name) < 0) {
				free(op);
				return -ENOMEM;
			}
			op->method_len = (uint32_t)strlen(op->method);
			op->name = op->method + m->name_len + 1;
			op->mod = m;
			if (hmap_put(&r->ops, op->method, op->method_len, op) < 0) {
				free(op->method);
				free(op);
				return -ENOMEM;
			}
			m->ops[m->n_ops++] = op;
		}
		op->gone = false;
		op->flags = o->flags & (LMMS_OP_PURE | LMMS_OP_BLOCKING);
		op->cache_ttl_ms = o->cache_ttl_ms;
		op->blocking_above = module_desc_op_blocking_above(d, o);
		if (op_set_doc(op, module_desc_op_doc(d, o)) < 0)
			return -ENOMEM;
	}
	m->ops_known = true;
	return 0;
}

static void module_set_ops_callable(module *m, bool on)
{
	for (uint32_t i = 0; i < m->n_ops; i++)
		m->ops[i]->fn = NULL;
	if (!on)
		return;
	for (uint32_t i = 0; i < m->desc.n_ops; i++) {
		const lmms_op *o = module_desc_op(&m->desc, i);
		op_info *op = module_op_by_name(m, o->name);

		if (op)
			op->fn = o->fn;
	}
}

static void module_load_failed(registry *r, module *m, int err)
{
	uint64_t base = r->cfg->ligs.retry_backoff_ms;
	uint64_t max = r->cfg->ligs.retry_backoff_max_ms;

	m->state = MOD_FAILED;
	m->load_failures++;
	m->backoff_ms = m->backoff_ms ? m->backoff_ms * 2 : base;
	if (m->backoff_ms > max)
		m->backoff_ms = max;
	m->retry_at_ms = now_ms() + m->backoff_ms;
	log_warn("module %s: load failed: %s (retry in %llu ms)", m->name, m->error,
		 (unsigned long long)m->backoff_ms);
	(void)err;
}

/* ---- process isolation: a worker per module ---- */

/* [module NAME] isolation, else what the module's file declares (read from
 * its ELF section, without loading it), else ligs.isolation. */
static int module_resolve_isolation(registry *r, module *m)
{
	int conf = config_module_isolation(r->cfg, m->name);

	if (!r->loop)
		return ISOLATION_INPROC; /* no loop to run workers on (unit tests) */
	if (conf == MODULE_ISOLATION_PROCESS)
		return ISOLATION_PROCESS;
	if (conf == MODULE_ISOLATION_INPROC)
		return ISOLATION_INPROC;
	switch (elfnote_isolation(m->path)) {
	case ELF_ISOLATION_PROCESS:
		return ISOLATION_PROCESS;
	case ELF_ISOLATION_INPROC:
		return ISOLATION_INPROC;
	default:
		return r->cfg->ligs.isolation == ISOLATION_PROCESS ? ISOLATION_PROCESS
								   : ISOLATION_INPROC;
	}
}

static int module_learn_worker_ops(registry *r, module *m, const worker_desc *d)
{
	for (uint32_t i = 0; i < m->n_ops; i++)
		m->ops[i]->gone = true;
	for (uint32_t i = 0; i < d->n_ops && i < MODULE_MAX_OPS; i++) {
		const worker_op *o = &d->ops[i];
		op_info *op = module_op_by_name(m, o->name);

		if (!op) {
			op_info **ops = realloc(m->ops, (m->n_ops + 1) * sizeof(*ops));

			if (!ops)
				return -ENOMEM;
			m->ops = ops;
			op = calloc(1, sizeof(*op));
			if (!op)
				return -ENOMEM;
			if (asprintf(&op->method, "%s.%s", m->name, o->name) < 0) {
				free(op);
				return -ENOMEM;
			}
			op->method_len = (uint32_t)strlen(op->method);
			op->name = op->method + m->name_len + 1;
			op->mod = m;
			if (hmap_put(&r->ops, op->method, op->method_len, op) < 0) {
				free(op->method);
				free(op);
				return -ENOMEM;
			}
			m->ops[m->n_ops++] = op;
		}
		op->gone = false;
		op->fn = NULL; /* never called here: through the worker */
		op->flags = o->flags & (LMMS_OP_PURE | LMMS_OP_BLOCKING);
		op->cache_ttl_ms = o->cache_ttl_ms;
		op->blocking_above = o->blocking_above;
		if (op_set_doc(op, o->doc) < 0)
			return -ENOMEM;
	}
	m->ops_known = true;
	return 0;
}

static void worker_ready(worker *w, const worker_desc *d)
{
	module *m = w->data;
	registry *r = m->reg;

	if (m->w != w)
		return;
	if (module_learn_worker_ops(r, m, d) < 0 || strdup_bounded(&m->description, d->description) < 0 ||
	    strdup_bounded(&m->version, d->version) < 0) {
		snprintf(m->error, sizeof(m->error), "out of memory learning its ops");
		worker_stop(w);
		return;
	}
	for (uint32_t i = 0; i < d->n_unread; i++)
		log_warn("module %s: setting \"%s\" of [module %s] was never read by the module (a typo?)",
			 m->name, d->unread[i], m->name);
	if (!module_resident(m))
		r->n_resident++;
	m->state = MOD_LOADED;
	m->pid = w->pid;
	m->loads++;
	r->loads++;
	m->loaded_ms = m->last_used_ms = now_ms();
	m->resident_bytes = worker_rss_bytes(w);
	m->backoff_ms = 0;
	m->error[0] = '\0';
	log_info("module %s %s loaded in worker %d (%u ops, %lld KiB resident there, ready in %llu us)",
		 m->name, m->version, w->pid, m->n_ops, (long long)(m->resident_bytes / 1024),
		 (unsigned long long)((w->ready_ns - w->spawned_ns) / 1000));
	if (grace_on_load(&m->adapt, m->loaded_ms, m->grace_ms, r->cfg->lugs.grace_max_ms))
		r->premature_reloads++;
	if (r->on_residency)
		r->on_residency(r->ud, m);
}

static void worker_failed(worker *w, const char *why)
{
	module *m = w->data;

	if (m->w != w)
		return;
	snprintf(m->error, sizeof(m->error), "%.240s", why);
}

static void worker_exited(worker *w, const worker_exit *e)
{
	module *m = w->data;
	registry *r = m->reg;
	bool current = m->w == w;

	worker_fini(w);
	free(w);
	if (!current)
		return; /* an old worker retired by an unload or a reload */
	m->w = NULL;
	m->pid = 0;
	if (r->on_unload)
		r->on_unload(r->ud, m); /* no fast path may point at it any more */
	if (module_resident(m))
		r->n_resident--;
	if (e->end == WORKER_END_START_FAILED) {
		module_load_failed(r, m, -EIO);
	} else if (e->end == WORKER_END_CRASHED || e->end == WORKER_END_TIMEOUT) {
		const worker_crash_policy p = {
			.limit = r->cfg->ligs.crash_limit,
			.window_ms = r->cfg->ligs.crash_window_ms,
			.backoff_ms = r->cfg->ligs.retry_backoff_ms,
			.backoff_max_ms = r->cfg->ligs.retry_backoff_max_ms,
		};
		uint32_t recent = worker_crashes_record(&m->crash, &p, now_ms());

		m->crashes++;
		r->module_crashes++;
		if (recent >= p.limit) {
			m->state = MOD_FAILED;
			m->load_failures++;
			m->retry_at_ms = m->crash.retry_at_ms;
			snprintf(m->error, sizeof(m->error),
				 "quarantined: its worker crashed %u times within %llu s (last: %.120s)",
				 recent, (unsigned long long)(p.window_ms / 1000), e->reason);
			log_err("module %s %s", m->name, m->error);
		} else {
			m->state = MOD_UNLOADED;
			log_warn("module %s: its worker %s (%u calls answered module_crashed); respawned on the next call",
				 m->name, e->reason, e->calls_failed);
		}
	} else {
		m->state = MOD_UNLOADED;
	}
	if (r->on_residency)
		r->on_residency(r->ud, m);
}

static void module_settings_to_worker(const module *m, worker_setting *out, uint32_t *n)
{
	*n = 0;
	for (uint32_t i = 0; i < m->settings.n && i < WORKER_MAX_SETTINGS; i++) {
		out[*n].key = m->settings.v[i].key;
		out[*n].value = m->settings.v[i].value;
		(*n)++;
	}
}

static int module_start_worker(registry *r, module *m)
{
	worker_setting settings[WORKER_MAX_SETTINGS];
	const char *exe = getenv("LMMS_WORKER_EXE");
	worker_options o;
	worker *w;
	int rc;

	if (m->w)
		return m->w->state == WORKER_READY ? 0 : -EINPROGRESS;
	if (!worker_crashes_may_spawn(&m->crash, now_ms())) {
		if (m->state != MOD_FAILED)
			snprintf(m->error, sizeof(m->error), "its worker crashed: respawned after a backoff");
		return -EAGAIN;
	}
	rc = module_check_file(m);
	if (rc == 0)
		rc = module_settings_load(m);
	if (rc < 0) {
		module_load_failed(r, m, rc);
		return rc;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	worker_init(w, r->loop);
	w->data = m;
	worker_options_default(&o);
	if (exe && *exe)
		o.exe = exe; /* tests: the lmmsd under test, not the test binary */
	o.module_path = m->path;
	o.module_name = m->name;
	module_settings_to_worker(m, settings, &o.n_settings);
	o.settings = settings;
	o.log_level = log_get_level();
	o.threads = r->cfg->server.workers;
	o.memory_max = config_module_memory_max(r->cfg, m->name);
	o.call_timeout_ms = r->cfg->server.call_timeout_ms;
	o.max_message_bytes = r->cfg->server.max_message_bytes;
	o.max_elements = r->cfg->server.max_elements;
	o.max_result_bytes = r->cfg->server.max_result_bytes;
	o.max_buffered_bytes = r->cfg->server.max_output_bytes;
	o.max_inflight = r->cfg->server.max_calls_per_uid;
	o.on_ready = worker_ready;
	o.on_failed = worker_failed;
	o.on_exit = worker_exited;
	rc = worker_start(w, &o);
	if (rc < 0) {
		worker_fini(w);
		free(w);
		snprintf(m->error, sizeof(m->error), "cannot start a worker: %s", strerror(-rc));
		module_load_failed(r, m, rc);
		return rc;
	}
	m->w = w;
	r->worker_spawns++;
	return -EINPROGRESS;
}

/* Retire m's worker: it finishes what it runs, runs fini and exits; all of
 * its memory returns with it, whatever its libraries do. */
static int module_stop_worker(registry *r, module *m, bool with_calls)
{
	worker *w = m->w;
	int64_t rss = w ? worker_rss_bytes(w) : 0;

	if (!w)
		return 0;
	/* a replaced module's old worker may retire with calls: it answers
	 * them before it exits, and new ones already go to the new worker */
	if (m->refs > 0 && !with_calls)
		return -EBUSY;
	m->w = NULL;
	m->pid = 0;
	if (r->on_unload)
		r->on_unload(r->ud, m);
	worker_stop(w);
	if (module_resident(m))
		r->n_resident--;
	m->state = MOD_UNLOADED;
	m->unloads++;
	r->unloads++;
	m->reclaimed_bytes = rss;
	r->reclaimed_bytes += rss;
	log_info("module %s unloaded by %s: its worker ends (%lld KiB returned with it)", m->name,
		 m->unload_trigger[0] ? m->unload_trigger : "request", (long long)(rss / 1024));
	if (r->on_residency)
		r->on_residency(r->ud, m);
	return 0;
}

void registry_forgive(registry *r, module *m)
{
	(void)r;
	worker_crashes_forgive(&m->crash);
	m->crash.retry_at_ms = 0;
	m->retry_at_ms = 0;
}

void registry_stop_workers(registry *r)
{
	for (uint32_t i = 0; i < r->n_mods; i++) {
		module *m = r->mods[i];

		/* what it still runs is answered before it exits (or, if it
		 * must be killed, module_crashed) */
		if (m->w)
			worker_stop(m->w);
	}
}

int registry_load(registry *r, module *m)
{
	lmms_call ic;
	int64_t rss_before, rss_after;
	bool was_pinned = m->state == MOD_PINNED;
	void *handle;
	int rc;

	if (m->tainted)
		return -EPERM; /* m->error says why */
	if (module_callable(m))
		return 0;
	if (module_starting(m))
		return -EINPROGRESS;
	if (m->unloading)
		return -EBUSY;
	if (m->state == MOD_FAILED && now_ms() < m->retry_at_ms)
		return -EAGAIN;
	if (!module_resident(m))
		m->isolation = module_resolve_isolation(r, m);
	if (m->isolation == ISOLATION_PROCESS)
		return module_start_worker(r, m);

	rc = module_check_file(m);
	if (rc < 0)
		goto fail;

	rss_before = rss_bytes();
	dlerror();
	handle = dlopen(m->path, RTLD_NOW | RTLD_LOCAL);
	if (!handle) {
		const char *e = dlerror();

		snprintf(m->error, sizeof(m->error), "%.250s", e ? e : "dlopen failed");
		rc = -EIO;
		goto fail;
	}
	if (!was_pinned && module_find_nodelete(handle, m->pinned_by, sizeof(m->pinned_by)))
		was_pinned = true; /* mapped for good from here on, whatever dlclose says */
	rc = module_desc_load(handle, m->name, &m->desc, m->error, sizeof(m->error));
	if (rc < 0)
		goto fail_close;

	rc = module_learn_ops(r, m, &m->desc);
	if (rc == 0)
		rc = strdup_bounded(&m->description,
				    DESC_HAS(&m->desc, description) ? m->desc.description : NULL);
	if (rc == 0)
		rc = strdup_bounded(&m->version, m->desc.version);
	if (rc == 0)
		rc = module_settings_load(m);
	if (rc < 0) {
		if (rc == -ENOMEM)
			snprintf(m->error, sizeof(m->error), "out of memory");
		goto fail_close;
	}

	m->mstate = NULL;
	if (m->desc.init) {
		call_init(&ic, NULL, 0, m->name);
		ic.settings = &m->settings;
		rc = m->desc.init(&call_host, &ic, &m->mstate);
		if (rc < 0) {
			snprintf(m->error, sizeof(m->error), "init failed: %.200s",
				 ic.failed ? ic.fail_msg : "no reason given");
			call_fini(&ic);
			rc = -EIO;
			goto fail_close;
		}
		call_fini(&ic);
	}
	for (uint32_t i = 0; i < m->settings.n; i++)
		if (!m->settings.v[i].read)
			log_warn("module %s: setting \"%s\" of [module %s] was never read by the module (a typo?)",
				 m->name, m->settings.v[i].key, m->name);

	rss_after = rss_bytes();
	m->handle = handle;
	module_set_ops_callable(m, true);
	if (!module_resident(m))
		r->n_resident++;
	m->state = was_pinned ? MOD_PINNED : MOD_LOADED;
	m->loads++;
	r->loads++;
	m->loaded_ms = m->last_used_ms = now_ms();
	if (rss_before >= 0 && rss_after >= 0)
		m->resident_bytes = rss_after > rss_before ? rss_after - rss_before : 0;
	m->backoff_ms = 0;
	m->error[0] = '\0';
	if (grace_on_load(&m->adapt, m->loaded_ms, m->grace_ms, r->cfg->lugs.grace_max_ms)) {
		r->premature_reloads++;
		log_info("module %s was loaded again %llus after LUGS unloaded it: its grace grows to %llus",
			 m->name, (unsigned long long)((m->loaded_ms - m->adapt.unloaded_at_ms) / 1000),
			 (unsigned long long)(module_grace_ms(m) / 1000));
	}
	if (r->on_residency)
		r->on_residency(r->ud, m);
	log_info("module %s %s loaded (%u ops, %lld KiB resident%s%s%s)", m->name,
		 m->desc.version ? m->desc.version : "", m->n_ops,
		 (long long)(m->resident_bytes / 1024), m->state == MOD_PINNED ? ", pinned" : "",
		 m->pinned_by[0] ? ": -z nodelete in " : "", m->pinned_by);
	return 0;

fail_close:
	dlclose(handle);
fail:
	module_load_failed(r, m, rc);
	return rc;
}

/* ask: consult the module's can_unload (everywhere but at exit). */
static int module_unload(registry *r, module *m, bool ask, const char **reason)
{
	const char *why = NULL;
	int64_t rss_before, rss_after;
	void *again;

	if (m->isolation == ISOLATION_PROCESS) {
		int rc = module_stop_worker(r, m, false);

		if (rc == -EBUSY && reason)
			*reason = "operations in flight";
		return rc;
	}

	if (!m->handle)
		return 0;
	if (m->refs > 0) {
		if (reason)
			*reason = "operations in flight";
		return -EBUSY;
	}
	if (ask && m->desc.can_unload && m->desc.can_unload(&call_host, m->mstate, &why) != 0) {
		if (reason)
			*reason = why ? why : "the module refused";
		m->blocked[LUGS_VETO]++;
		return -EBUSY;
	}

	/* From here on nothing may call into the module: the fast path and the
	 * cache drop their references before fini runs. */
	m->unloading = true;
	module_set_ops_callable(m, false);
	if (r->on_unload)
		r->on_unload(r->ud, m);

	rss_before = rss_bytes();
	if (m->desc.fini)
		m->desc.fini(&call_host, m->mstate);
	m->mstate = NULL;
	dlclose(m->handle);
	m->handle = NULL;
	m->unloading = false;
	m->unloads++;

	/* glibc keeps some objects mapped after dlclose (-z nodelete, GNU unique
	 * symbols, TLS destructors): ask it, without loading anything. */
	again = dlopen(m->path, RTLD_NOW | RTLD_NOLOAD | RTLD_LOCAL);
	if (again) {
		bool known = m->state == MOD_PINNED;

		dlclose(again);
		m->state = MOD_PINNED;
		if (!m->pinned_by[0])
			snprintf(m->pinned_by, sizeof(m->pinned_by), "%s",
				 "glibc (still mapped after dlclose)");
		m->reclaimed_bytes = 0;
		if (known)
			log_info("module %s finalised by %s; it stays mapped (pinned by %s)",
				 m->name, m->unload_trigger[0] ? m->unload_trigger : "request",
				 m->pinned_by);
		else
			log_notice("module %s stays mapped after dlclose: pinned", m->name);
		return 1;
	}

	rss_after = rss_bytes();
	m->reclaimed_bytes = (rss_before >= 0 && rss_after >= 0 && rss_before > rss_after)
				     ? rss_before - rss_after
				     : 0;
	r->reclaimed_bytes += m->reclaimed_bytes;
	if (m->state == MOD_PINNED)
		/* the module left, but the -z nodelete library it pulled in did not */
		log_info("module %s unloaded by %s; %s stays mapped (-z nodelete)", m->name,
			 m->unload_trigger[0] ? m->unload_trigger : "request", m->pinned_by);
	else
		log_info("module %s unloaded by %s (%lld KiB returned)", m->name,
			 m->unload_trigger[0] ? m->unload_trigger : "request",
			 (long long)(m->reclaimed_bytes / 1024));
	m->state = MOD_UNLOADED;
	r->n_resident--;
	r->unloads++;
	if (r->on_residency)
		r->on_residency(r->ud, m);
	return 0;
}

int registry_unload(registry *r, module *m, const char **reason)
{
	return module_unload(r, m, true, reason);
}

int registry_reload(registry *r, module *m)
{
	const char *why = NULL;
	int rc;

	m->reload_pending = false;
	if (!module_has_code(m))
		return 0; /* not loaded: its next load takes the new file anyway */
	module_set_trigger(m, "its file being replaced");
	if (m->isolation == ISOLATION_PROCESS) {
		/* Erlang-style: a new worker with the new file takes the new
		 * calls at once, the old one drains and exits */
		module_stop_worker(r, m, true);
		rc = registry_load(r, m);
		if (rc == -EINPROGRESS || rc == 0) {
			r->hot_reloads++;
			log_info("module %s: a new worker runs its new file; the old one drains", m->name);
			return 0;
		}
		return rc;
	}
	rc = module_unload(r, m, true, &why);
	if (rc == -EBUSY) {
		m->reload_pending = true;
		log_info("module %s: replaced on disk; reload waits: %s", m->name,
			 why ? why : "busy");
		return rc;
	}
	if (rc == 1) {
		log_warn("module %s: replaced on disk, but the loaded object is pinned (%s): "
			 "the new file takes effect after a restart, or at once with isolation = process",
			 m->name, m->pinned_by);
		return rc;
	}
	rc = registry_load(r, m);
	if (rc == 0) {
		r->hot_reloads++;
		log_info("module %s reloaded from its new file (version %s)", m->name,
			 m->desc.version ? m->desc.version : "?");
	}
	return rc;
}

void registry_taint(registry *r, module *m)
{
	if (m->tainted)
		return;
	m->tainted = true;
	m->reload_pending = false;
	module_set_ops_callable(m, false);
	if (r->on_unload)
		r->on_unload(r->ud, m);
	if (module_resident(m))
		r->n_resident--;
	m->state = MOD_FAILED;
	snprintf(m->error, sizeof(m->error),
		 "%s.so was overwritten in place while loaded; it is disabled until a restart. "
		 "Install modules by rename (install(1), or copy to a temporary name and mv)",
		 m->name);
	log_err("module %s: %s", m->name, m->error);
}
