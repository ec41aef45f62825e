/*
 * worker-main.c - lmmsd in worker mode: one isolated module in a process of
 * its own (`lmmsd --worker FD PPID NAME`, spawned by worker.c).
 *
 * The process first makes itself safe to be a worker: it dies with the
 * daemon (PR_SET_PDEATHSIG, and a check that the daemon did not die before
 * that took effect), cannot gain privileges (PR_SET_NO_NEW_PRIVS), keeps no
 * descriptor it did not ask for (only 0, 1, 2 and the channel survive; fd 0
 * is /dev/null from the spawn) and leaves the daemon's session, so signals
 * from a terminal reach the daemon, which decides. Then it serves the
 * channel: the hello (dlopen, the registry's descriptor check, memory
 * limits, init), then calls: inline ops run on this process's loop, BLOCKING
 * ones (and inline ones above blocking_above) on its own libuv pool, both
 * through the same host API (call.c) the daemon uses for in-process modules.
 * When the daemon closes the channel, the calls in flight finish, fini runs
 * and the process exits. The module is never dlclosed: the process ending
 * is what gives everything back, whatever the module's libraries do.
 */
#include "worker.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "call.h"
#include "hmap.h"
#include "log.h"
#include "registry.h"
#include "util.h"

#if defined(__SANITIZE_ADDRESS__)
#define WORKER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WORKER_ASAN 1
#endif
#endif

/* The daemon's envelope around a client's params: msgid, op name, headers. */
#define CHILD_ENVELOPE_BYTES 1024u
#define CHILD_ENVELOPE_ELEMENTS 8u
#define CHILD_MSG_MAX 512

typedef struct child_setting {
	char *key, *value;
	bool read; /* asked for during init */
} child_setting;

typedef struct child {
	uv_loop_t loop;
	wchan ch;
	char name[MODULE_NAME_MAX + 1];
	char prefix[MODULE_NAME_MAX + 32]; /* "worker NAME[PID]: " */
	bool hello_done, ready, in_init, eof, quitting;
	int status; /* of the process */

	void *handle;
	lmms_module_desc desc;
	void *mstate;
	hmap ops; /* op name (in the module) -> const lmms_op */
	lmms_host host; /* call_host with setting() */

	child_setting *settings;
	uint32_t n_settings;
	uint32_t max_result_bytes, max_inflight, inflight;
	msgpack_zone zone; /* the message being handled */
	uv_work_t warm;
} child;

/* host->setting gets only the call: the one module of this process finds its
 * settings here. */
static child self;

/* One call on the pool; owns a copy of its params. */
typedef struct child_job {
	uv_work_t work;
	child *c;
	const lmms_op *op;
	uint32_t id;
	int rc;
	lmms_call call;
	msgpack_zone zone;
	msgpack_object params;
	char params_bytes[];
} child_job;

static void wlog(child *c, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void wlog(child *c, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, c->prefix, fmt, ap);
	va_end(ap);
}

/* ---- process setup -------------------------------------------------------- */

static int close_inherited(int keep)
{
	int r = 0;

	if (keep > 3)
		r = close_range(3, (unsigned)keep - 1, 0);
	if (r == 0)
		r = close_range((unsigned)keep + 1, ~0u, 0);
	if (r < 0 && errno == ENOSYS) {
		/* kernels before 5.9: the bounded slow way */
		long max = sysconf(_SC_OPEN_MAX);

		if (max < 0 || max > 65536)
			max = 65536;
		for (int fd = 3; fd < max; fd++)
			if (fd != keep)
				close(fd);
		r = 0;
	}
	return r;
}

static int child_setup(int fd, pid_t ppid)
{
	/* Die with the daemon. A daemon that died before this line has already
	 * made us an orphan, which getppid() shows. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != ppid)
		return -ESRCH;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (close_inherited(fd) < 0)
		return -errno;
	(void)setsid();
	/* a daemon that vanished mid-answer is seen as a failed write */
	signal(SIGPIPE, SIG_IGN);
	/* the service's dealings with systemd are the daemon's alone */
	unsetenv("NOTIFY_SOCKET");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDNAMES");
	unsetenv("WATCHDOG_PID");
	unsetenv("WATCHDOG_USEC");
	return 0;
}

/* ---- answers ---------------------------------------------------------------- */

/* An answer that cannot be packed is a call the daemon would wait on for
 * ever: end the process instead, which the daemon answers for us. */
static void child_out_of_memory(child *c)
{
	wlog(c, LOG_LVL_ERR, "out of memory for an answer: exiting");
	_exit(1);
}

static void reply_error(child *c, uint32_t id, proto_err e, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void reply_error(child *c, uint32_t id, proto_err e, const char *fmt, ...)
{
	char msg[CHILD_MSG_MAX];
	size_t before = c->ch.out.size;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (proto_pack_response_error(&c->ch.pk, id, e, msg) < 0) {
		c->ch.out.size = before;
		child_out_of_memory(c);
	}
}

static void child_answer(child *c, uint32_t id, lmms_call *call, int rc)
{
	const char *m = NULL;
	proto_err e = call_finish(call, rc, &m);
	size_t before = c->ch.out.size;

	if (e == PROTO_OK) {
		if (proto_pack_response_ok(&c->ch.pk, id) == 0 &&
		    msgpack_sbuffer_write(&c->ch.out, call->out.data, call->out.size) == 0)
			return;
		c->ch.out.size = before;
		e = PROTO_E_INTERNAL;
		m = "the worker ran out of memory for the result";
	}
	reply_error(c, id, e, "%s", m ? m : "operation failed");
}

/* ---- the end ------------------------------------------------------------------ */

static void child_quit(child *c, int status)
{
	if (c->quitting)
		return;
	c->quitting = true;
	c->status = status;
	wchan_flush(&c->ch);
	if (!c->ch.writing && c->ch.out.size == 0)
		wchan_close(&c->ch, NULL);
}

static void child_on_drained(wchan *ch)
{
	child *c = container_of(ch, child, ch);

	if (c->quitting)
		wchan_close(ch, NULL);
}

static void child_finish(child *c)
{
	if (c->quitting)
		return;
	if (c->ready && c->desc.fini)
		c->desc.fini(&c->host, c->mstate);
	c->ready = false;
	child_quit(c, 0);
}

static void child_on_end(wchan *ch, int status)
{
	child *c = container_of(ch, child, ch);

	if (status < 0)
		wlog(c, LOG_LVL_ERR, "channel: %s", status == -EPROTO ? "protocol error" :
			uv_strerror(status));
	c->eof = true;
	if (c->inflight == 0)
		child_finish(c);
}

/* ---- settings --------------------------------------------------------------- */

static const char *child_setting_get(lmms_call *call, const char *key)
{
	child *c = &self;

	(void)call;
	if (!key)
		return NULL;
	for (uint32_t i = 0; i < c->n_settings; i++) {
		if (strcmp(c->settings[i].key, key) == 0) {
			if (c->in_init)
				c->settings[i].read = true;
			return c->settings[i].value;
		}
	}
	return NULL;
}

static int child_settings_copy(child *c, const msgpack_object *m)
{
	if (!m || m->type != MSGPACK_OBJECT_MAP || m->via.map.size > WORKER_MAX_SETTINGS)
		return -EINVAL;
	c->settings = calloc(m->via.map.size + 1, sizeof(*c->settings));
	if (!c->settings)
		return -ENOMEM;
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		const msgpack_object *k = &m->via.map.ptr[i].key, *v = &m->via.map.ptr[i].val;

		if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_STR)
			return -EINVAL;
		c->settings[i].key = strndup(k->via.str.ptr, k->via.str.size);
		c->settings[i].value = strndup(v->via.str.ptr, v->via.str.size);
		c->n_settings = i + 1;
		if (!c->settings[i].key || !c->settings[i].value)
			return -ENOMEM;
	}
	return 0;
}

/* ---- memory_max ------------------------------------------------------------- */

/*
 * memory_max bounds what the module maps on top of the idle worker with the
 * module loaded: address space (RLIMIT_AS) and private writable memory
 * (RLIMIT_DATA, which malloc's brk and mmap both count), both measured now.
 * A module that asks for more gets NULL from malloc; what it does then is
 * its business (most libraries abort, which the daemon answers as a crash).
 */
#ifndef WORKER_ASAN
static void warm_run(uv_work_t *w)
{
	(void)w;
}

static void warm_done(uv_work_t *w, int status)
{
	(void)w;
	(void)status;
}
#endif

static int child_limit_memory(child *c, uint64_t max, bool pool)
{
#ifdef WORKER_ASAN
	(void)max;
	(void)pool;
	wlog(c, LOG_LVL_WARNING,
	     "memory_max not enforced: this lmmsd is built with AddressSanitizer, whose "
	     "shadow memory the address-space and data limits would count");
	return 0;
#else
	unsigned long size, resident, shared, text, lib, data;
	long page = sysconf(_SC_PAGESIZE);
	struct rlimit rl;
	FILE *f;
	int n;

	/* glibc gives each thread an arena of its own, reserving 64 MiB of
	 * address space apiece: under a limit those reservations fail and
	 * every allocation of the thread falls back to a bare mmap. */
	mallopt(M_ARENA_MAX, 1);
	/* uv_queue_work starts the pool's threads before it returns: their
	 * stacks belong to the worker's baseline, not to the module's budget. */
	if (pool && uv_queue_work(&c->loop, &c->warm, warm_run, warm_done) < 0)
		return -EAGAIN;
	f = fopen("/proc/self/statm", "re");
	if (!f)
		return -errno;
	n = fscanf(f, "%lu %lu %lu %lu %lu %lu", &size, &resident, &shared, &text, &lib, &data);
	fclose(f);
	if (n != 6)
		return -EIO;
	rl.rlim_cur = rl.rlim_max = (rlim_t)size * (rlim_t)page + max;
	if (setrlimit(RLIMIT_AS, &rl) < 0)
		return -errno;
	rl.rlim_cur = rl.rlim_max = (rlim_t)data * (rlim_t)page + max;
	if (setrlimit(RLIMIT_DATA, &rl) < 0)
		return -errno;
	wlog(c, LOG_LVL_DEBUG, "memory_max %llu bytes on top of %lu KiB mapped",
	     (unsigned long long)max, size * (unsigned long)page / 1024);
	return 0;
#endif
}

/* ---- hello ------------------------------------------------------------------ */

static bool obj_str(const msgpack_object *o, char *buf, size_t n)
{
	if (!o || o->type != MSGPACK_OBJECT_STR || o->via.str.size >= n ||
	    memchr(o->via.str.ptr, '\0', o->via.str.size))
		return false;
	memcpy(buf, o->via.str.ptr, o->via.str.size);
	buf[o->via.str.size] = '\0';
	return true;
}

static uint64_t obj_uint(const msgpack_object *o)
{
	return o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? o->via.u64 : 0;
}

static bool module_needs_pool(const lmms_module_desc *d)
{
	for (uint32_t i = 0; i < d->n_ops; i++) {
		const lmms_op *o = module_desc_op(d, i);

		if ((o->flags & LMMS_OP_BLOCKING) || module_desc_op_blocking_above(d, o))
			return true;
	}
	return false;
}

/* dlopen, check, limit, init: what registry_load does in the daemon. */
static int child_load(child *c, const char *path, uint64_t memory_max, char *err, size_t n)
{
	lmms_call ic;
	int rc;

	dlerror();
	c->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!c->handle) {
		const char *e = dlerror();

		snprintf(err, n, "%.250s", e ? e : "dlopen failed");
		return -EIO;
	}
	rc = module_desc_load(c->handle, c->name, &c->desc, err, n);
	if (rc < 0)
		return rc;
	for (uint32_t i = 0; i < c->desc.n_ops; i++) {
		const lmms_op *o = module_desc_op(&c->desc, i);

		if (hmap_put(&c->ops, o->name, strlen(o->name), (void *)o) < 0) {
			snprintf(err, n, "out of memory");
			return -ENOMEM;
		}
	}
	if (memory_max) {
		rc = child_limit_memory(c, memory_max, module_needs_pool(&c->desc));
		if (rc < 0) {
			snprintf(err, n, "cannot apply memory_max: %s", strerror(-rc));
			return rc;
		}
	}
	if (c->desc.init) {
		call_init(&ic, NULL, 0, c->name);
		c->in_init = true;
		rc = c->desc.init(&c->host, &ic, &c->mstate);
		c->in_init = false;
		if (rc < 0) {
			snprintf(err, n, "init failed: %.200s",
				 ic.failed ? ic.fail_msg : "no reason given");
			call_fini(&ic);
			return -EIO;
		}
		call_fini(&ic);
	}
	c->ready = true;
	return 0;
}

static int pack_str_or_nil(msgpack_packer *pk, const char *s)
{
	return s ? proto_pack_cstr(pk, s) : msgpack_pack_nil(pk);
}

static int child_pack_desc(child *c, uint32_t id)
{
	msgpack_packer *pk = &c->ch.pk;
	uint32_t unread = 0;
	int r = 0;

	for (uint32_t i = 0; i < c->n_settings; i++)
		unread += !c->settings[i].read;
	r |= proto_pack_response_ok(pk, id);
	r |= msgpack_pack_map(pk, 4);
	r |= proto_pack_cstr(pk, "version") | pack_str_or_nil(pk, c->desc.version);
	r |= proto_pack_cstr(pk, "description") | pack_str_or_nil(pk, c->desc.description);
	r |= proto_pack_cstr(pk, "unread") | msgpack_pack_array(pk, unread);
	for (uint32_t i = 0; i < c->n_settings; i++)
		if (!c->settings[i].read)
			r |= proto_pack_cstr(pk, c->settings[i].key);
	r |= proto_pack_cstr(pk, "ops") | msgpack_pack_array(pk, c->desc.n_ops);
	for (uint32_t i = 0; i < c->desc.n_ops; i++) {
		const lmms_op *o = module_desc_op(&c->desc, i);
		const char *doc = module_desc_op_doc(&c->desc, o);

		r |= msgpack_pack_map(pk, 5);
		r |= proto_pack_cstr(pk, "name") | proto_pack_cstr(pk, o->name);
		r |= proto_pack_cstr(pk, "flags") |
		     msgpack_pack_uint32(pk, o->flags & (LMMS_OP_PURE | LMMS_OP_BLOCKING));
		r |= proto_pack_cstr(pk, "cache_ttl_ms") | msgpack_pack_uint32(pk, o->cache_ttl_ms);
		r |= proto_pack_cstr(pk, "blocking_above") |
		     msgpack_pack_uint32(pk, module_desc_op_blocking_above(&c->desc, o));
		r |= proto_pack_cstr(pk, "doc") | proto_pack_cstr(pk, doc ? doc : "");
	}
	return r ? -ENOMEM : 0;
}

static int child_hello(child *c, const char *msg, size_t len)
{
	const msgpack_object *h;
	char path[4096], err[CHILD_MSG_MAX];
	msgpack_object o;
	const char *reason = NULL;
	size_t off = 0, before;
	proto_msg pm;
	uint64_t v;
	int r;

	if (msgpack_unpack(msg, len, &off, &c->zone, &o) != MSGPACK_UNPACK_SUCCESS ||
	    proto_msg_parse(&o, &pm, &reason) != PROTO_OK || pm.type != PROTO_REQUEST ||
	    pm.method_len != 10 || memcmp(pm.method, "lmms.hello", 10) != 0 ||
	    pm.params->via.array.size != 1) {
		wlog(c, LOG_LVL_ERR, "the first message is not a hello");
		return -EPROTO;
	}
	h = &pm.params->via.array.ptr[0];
	v = obj_uint(mp_map_get(h, "log_level"));
	if (v >= LOG_LVL_ERR && v <= LOG_LVL_DEBUG)
		log_set_level((int)v);
	c->max_result_bytes = (uint32_t)obj_uint(mp_map_get(h, "max_result_bytes"));
	c->max_inflight = (uint32_t)obj_uint(mp_map_get(h, "max_inflight"));
	if (!c->max_inflight)
		c->max_inflight = 256;
	v = obj_uint(mp_map_get(h, "max_message_bytes"));
	if (v && v <= UINT32_MAX - CHILD_ENVELOPE_BYTES) {
		c->ch.limits.max_message_bytes = (uint32_t)v + CHILD_ENVELOPE_BYTES;
		c->ch.limits.max_str_bytes = c->ch.limits.max_message_bytes;
	}
	v = obj_uint(mp_map_get(h, "max_elements"));
	if (v && v <= UINT32_MAX - CHILD_ENVELOPE_ELEMENTS)
		c->ch.limits.max_elements = (uint32_t)v + CHILD_ENVELOPE_ELEMENTS;
	v = obj_uint(mp_map_get(h, "threads"));
	if (v) {
		char n[16];

		/* read by libuv when the pool starts, at the first BLOCKING call */
		snprintf(n, sizeof(n), "%u", (unsigned)(v > 1024 ? 1024 : v));
		setenv("UV_THREADPOOL_SIZE", n, 1);
	}

	before = c->ch.out.size;
	if (!obj_str(mp_map_get(h, "path"), path, sizeof(path)) ||
	    !obj_str(mp_map_get(h, "name"), c->name, sizeof(c->name))) {
		snprintf(err, sizeof(err), "hello without a module path and name");
		r = -EINVAL;
	} else if ((r = child_settings_copy(c, mp_map_get(h, "settings"))) < 0) {
		snprintf(err, sizeof(err), "bad settings in the hello");
	} else {
		r = child_load(c, path, obj_uint(mp_map_get(h, "memory_max")), err, sizeof(err));
	}
	if (r == 0 && child_pack_desc(c, pm.msgid) < 0) {
		c->ch.out.size = before;
		snprintf(err, sizeof(err), "out of memory");
		r = -ENOMEM;
	}
	if (r < 0) {
		wlog(c, LOG_LVL_DEBUG, "load failed: %s", err);
		reply_error(c, pm.msgid, PROTO_E_LOAD_FAILED, "%s", err);
		child_quit(c, 1);
	}
	msgpack_zone_clear(&c->zone);
	return 0;
}

/* ---- calls ---------------------------------------------------------------- */

static void job_run(uv_work_t *w)
{
	child_job *j = container_of(w, child_job, work);

	j->rc = j->op->fn(&j->c->host, &j->call, j->c->mstate);
}

static void job_free(child_job *j)
{
	call_fini(&j->call);
	msgpack_zone_destroy(&j->zone);
	free(j);
}

static void job_done(uv_work_t *w, int status)
{
	child_job *j = container_of(w, child_job, work);
	child *c = j->c;

	(void)status; /* never cancelled */
	child_answer(c, j->id, &j->call, j->rc);
	job_free(j);
	c->inflight--;
	wchan_flush(&c->ch);
	if (c->eof && c->inflight == 0)
		child_finish(c);
}

static void child_queue(child *c, const lmms_op *op, uint32_t id, const char *params, size_t plen)
{
	child_job *j;
	size_t off = 0;

	if (c->inflight >= c->max_inflight) {
		reply_error(c, id, PROTO_E_BUSY, "%s: %u calls in flight", c->name, c->inflight);
		return;
	}
	j = malloc(sizeof(*j) + plen);
	if (!j || !msgpack_zone_init(&j->zone, 1024)) {
		free(j);
		reply_error(c, id, PROTO_E_INTERNAL, "out of memory");
		return;
	}
	memcpy(j->params_bytes, params, plen);
	if (msgpack_unpack(j->params_bytes, plen, &off, &j->zone, &j->params) !=
		    MSGPACK_UNPACK_SUCCESS ||
	    j->params.type != MSGPACK_OBJECT_ARRAY) {
		msgpack_zone_destroy(&j->zone);
		free(j);
		reply_error(c, id, PROTO_E_BAD_REQUEST, "params must be an array");
		return;
	}
	j->c = c;
	j->op = op;
	j->id = id;
	call_init(&j->call, &j->params, c->max_result_bytes, c->name);
	if (uv_queue_work(&c->loop, &j->work, job_run, job_done) < 0) {
		job_free(j);
		reply_error(c, id, PROTO_E_INTERNAL, "cannot queue work");
		return;
	}
	c->inflight++;
}

static void child_call(child *c, const proto_msg *pm, const char *msg, size_t len)
{
	const lmms_op *op = hmap_get(&c->ops, pm->method, pm->method_len);
	const char *params = pm->method + pm->method_len; /* the last element */
	size_t plen = (size_t)(msg + len - params);
	uint32_t above;
	lmms_call call;

	if (!op) {
		reply_error(c, pm->msgid, PROTO_E_NO_SUCH_METHOD, "module %s has no operation \"%.*s\"",
			    c->name, (int)(pm->method_len > 64 ? 64 : pm->method_len), pm->method);
		return;
	}
	above = module_desc_op_blocking_above(&c->desc, op);
	if ((op->flags & LMMS_OP_BLOCKING) || (above && plen > above)) {
		child_queue(c, op, pm->msgid, params, plen);
		return;
	}
	call_init(&call, pm->params, c->max_result_bytes, c->name);
	child_answer(c, pm->msgid, &call, op->fn(&c->host, &call, c->mstate));
	call_fini(&call);
}

static int child_on_msg(wchan *ch, const char *msg, size_t len)
{
	child *c = container_of(ch, child, ch);
	const char *reason = NULL;
	msgpack_object o;
	size_t off = 0;
	proto_msg pm;

	if (c->quitting)
		return 0; /* queued behind a failed hello: the daemon answers them */
	if (!c->hello_done) {
		c->hello_done = true;
		return child_hello(c, msg, len);
	}
	if (msgpack_unpack(msg, len, &off, &c->zone, &o) != MSGPACK_UNPACK_SUCCESS ||
	    proto_msg_parse(&o, &pm, &reason) != PROTO_OK || pm.type != PROTO_REQUEST ||
	    pm.method < msg || pm.method + pm.method_len > msg + len) {
		msgpack_zone_clear(&c->zone);
		wlog(c, LOG_LVL_ERR, "malformed message from the daemon: %s",
		     reason ? reason : "not a request");
		return -EPROTO;
	}
	child_call(c, &pm, msg, len);
	msgpack_zone_clear(&c->zone);
	return 0;
}

/* ---- main ------------------------------------------------------------------ */

static void child_free(child *c)
{
	for (uint32_t i = 0; i < c->n_settings; i++) {
		free(c->settings[i].key);
		free(c->settings[i].value);
	}
	free(c->settings);
	hmap_fini(&c->ops);
	msgpack_zone_destroy(&c->zone);
	wchan_free(&c->ch);
	uv_loop_close(&c->loop);
	/* the module stays mapped: exit is what unloads it */
}

static bool parse_long(const char *s, long min, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min)
		return false;
	*out = v;
	return true;
}

int worker_main(int argc, char **argv)
{
	child *c = &self;
	long fd, ppid;
	int r;

	if (argc != 5 || !parse_long(argv[2], 3, &fd) || fd > INT32_MAX ||
	    !parse_long(argv[3], 1, &ppid) || ppid > INT32_MAX) {
		fprintf(stderr, "lmmsd: --worker is for lmmsd's own use (FD PPID NAME)\n");
		return 2;
	}
	if (child_setup((int)fd, (pid_t)ppid) < 0)
		return 1; /* the daemon is gone, or this is no place to run a module */
	snprintf(c->name, sizeof(c->name), "%s", argv[4]);
	snprintf(c->prefix, sizeof(c->prefix), "worker %.63s[%d]: ", c->name, (int)getpid());
	log_init(LOG_LVL_INFO);
	c->host = call_host;
	c->host.setting = child_setting_get;
	hmap_init(&c->ops, WORKER_MAX_OPS);
	if (uv_loop_init(&c->loop) < 0 || !msgpack_zone_init(&c->zone, 4096)) {
		wlog(c, LOG_LVL_ERR, "cannot set up");
		return 1;
	}
	r = wchan_open(&c->ch, &c->loop, (int)fd, child_on_msg, child_on_end);
	c->ch.on_drained = child_on_drained;
	if (r == 0)
		r = wchan_read_start(&c->ch);
	if (r < 0) {
		wlog(c, LOG_LVL_ERR, "channel: %s", uv_strerror(r));
		return 1;
	}
	uv_run(&c->loop, UV_RUN_DEFAULT);
	r = c->status;
	child_free(c);
	return r;
}
