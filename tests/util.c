/*
 * util.c - helpers the unit tests share (see util.h).
 */
#include "util.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "dispatch.h"
#include "log.h"
#include "proto.h"

#define READ_CHUNK 65536

int tu_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* ---- files ---- */

void tu_tmpdir(char *buf, size_t n, const char *tag)
{
	const char *base = getenv("TMPDIR");
	int len = snprintf(buf, n, "%s/lmms-%s-XXXXXX", base && *base ? base : "/tmp", tag);

	ck_assert_msg(len > 0 && (size_t)len < n, "temporary directory name too long");
	ck_assert_msg(mkdtemp(buf) != NULL, "mkdtemp %s: %s", buf, strerror(errno));
	ck_assert_int_eq(chmod(buf, 0755), 0);
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

void tu_rmtree(const char *path)
{
	if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
		fprintf(stderr, "cannot remove %s: %s\n", path, strerror(errno));
}

const char *tu_write_file(const char *dir, const char *name, const char *content)
{
	static char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	ck_assert_msg(f != NULL, "create %s: %s", path, strerror(errno));
	ck_assert_int_ge(fputs(content, f), 0);
	ck_assert_int_eq(fclose(f), 0);
	return path;
}

void tu_copy_file(const char *src, const char *dst, mode_t mode)
{
	char buf[65536];
	ssize_t n;
	int in, out;

	in = open(src, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(in >= 0, "open %s: %s", src, strerror(errno));
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	ck_assert_msg(out >= 0, "create %s: %s", dst, strerror(errno));
	while ((n = read(in, buf, sizeof(buf))) > 0)
		ck_assert_int_eq(write(out, buf, (size_t)n), n);
	ck_assert_int_eq(n, 0);
	close(in);
	close(out);
	ck_assert_int_eq(chmod(dst, mode), 0);
}

const char *tu_module_path(const char *name)
{
	static char path[PATH_MAX];
	const char *dirs[] = { getenv("LMMS_MODULE_DIR"), getenv("LMMS_TEST_MODULE_DIR") };

	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		if (!dirs[i])
			continue;
		snprintf(path, sizeof(path), "%s/%s.so", dirs[i], name);
		if (access(path, R_OK) == 0)
			return path;
	}
	ck_abort_msg("module %s.so not found (LMMS_MODULE_DIR / LMMS_TEST_MODULE_DIR)", name);
	return NULL;
}

void tu_add_module(const char *dir, const char *name)
{
	char dst[PATH_MAX];

	snprintf(dst, sizeof(dst), "%s/%s.so", dir, name);
	tu_copy_file(tu_module_path(name), dst, 0755);
}

/* ---- sockets ---- */

void tu_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	ck_assert_int_ge(fl, 0);
	ck_assert_int_eq(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

void tu_socketpair(int sv[2])
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	tu_nonblock(sv[1]);
}

int tu_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	ck_assert_int_ge(fd, 0);
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (r < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

/* ---- the loop ---- */

static void tick(uv_timer_t *t)
{
	(void)t;
}

void tu_loop_init(tu_loop *l)
{
	ck_assert_int_eq(uv_loop_init(&l->loop), 0);
	ck_assert_int_eq(uv_timer_init(&l->loop, &l->tick), 0);
}

static void walk_report(uv_handle_t *h, void *arg)
{
	(void)arg;
	fprintf(stderr, "handle left open: %s\n", uv_handle_type_name(uv_handle_get_type(h)));
}

void tu_loop_fini(tu_loop *l)
{
	int r;

	uv_close((uv_handle_t *)&l->tick, NULL);
	uv_run(&l->loop, UV_RUN_DEFAULT);
	r = uv_loop_close(&l->loop);
	if (r != 0)
		uv_walk(&l->loop, walk_report, NULL);
	ck_assert_msg(r == 0, "uv_loop_close: %s", uv_strerror(r));
}

bool tu_pump(tu_loop *l, tu_cond cond, void *ud, uint64_t timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;
	bool ok;

	uv_timer_start(&l->tick, tick, 1, 1);
	while (!(ok = cond(ud)) && now_ms() < deadline)
		uv_run(&l->loop, UV_RUN_ONCE);
	uv_timer_stop(&l->tick);
	return ok;
}

void tu_pump_once(tu_loop *l)
{
	uv_run(&l->loop, UV_RUN_NOWAIT);
}

static bool fd_writable(void *ud)
{
	struct pollfd pfd = { .fd = *(const int *)ud, .events = POLLOUT };

	return poll(&pfd, 1, 0) > 0;
}

void tu_send(tu_loop *l, int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t k = write(fd, c, n);

		if (k < 0 && errno == EAGAIN) {
			ck_assert_msg(tu_pump(l, fd_writable, &fd, TU_TIMEOUT_MS),
				      "the other end stopped reading");
			continue;
		}
		ck_assert_msg(k > 0, "write: %s", strerror(errno));
		c += k;
		n -= (size_t)k;
	}
}

/* ---- messages ---- */

static void pack_params(msgpack_packer *pk, const char *fmt, va_list ap)
{
	for (const char *f = fmt; *f; f++) {
		switch (*f) {
		case 's':
			ck_assert_int_eq(proto_pack_cstr(pk, va_arg(ap, const char *)), 0);
			break;
		case 'i':
			ck_assert_int_eq(msgpack_pack_int(pk, va_arg(ap, int)), 0);
			break;
		case 'b': {
			bool b = va_arg(ap, int);

			ck_assert_int_eq(b ? msgpack_pack_true(pk) : msgpack_pack_false(pk), 0);
			break;
		}
		case 'n':
			ck_assert_int_eq(msgpack_pack_nil(pk), 0);
			break;
		case 'a':
			ck_assert_int_eq(msgpack_pack_array(pk, 0), 0);
			break;
		default:
			ck_abort_msg("tu_pack: unknown param kind '%c'", *f);
		}
	}
}

void tu_pack_va(msgpack_sbuffer *sb, bool notification, uint32_t msgid, const char *method,
		const char *fmt, va_list ap)
{
	uint32_t n = (uint32_t)strlen(fmt);
	msgpack_packer pk;

	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	if (notification)
		ck_assert_int_eq(proto_pack_notification(&pk, method, strlen(method), n), 0);
	else
		ck_assert_int_eq(proto_pack_request(&pk, msgid, method, strlen(method), n), 0);
	pack_params(&pk, fmt, ap);
}

void tu_pack_request(msgpack_sbuffer *sb, uint32_t msgid, const char *method, const char *fmt,
		     ...)
{
	va_list ap;

	va_start(ap, fmt);
	tu_pack_va(sb, false, msgid, method, fmt, ap);
	va_end(ap);
}

void tu_pack_notification(msgpack_sbuffer *sb, const char *method, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tu_pack_va(sb, true, 0, method, fmt, ap);
	va_end(ap);
}

void tu_peer_init(tu_peer *p, tu_loop *l, int fd)
{
	memset(p, 0, sizeof(*p));
	p->l = l;
	p->fd = fd;
}

void tu_peer_fini(tu_peer *p)
{
	if (p->fd >= 0)
		close(p->fd);
	bbuf_free(&p->in);
	p->fd = -1;
}

/* Take what the socket has now; sets eof on end of stream (or reset). */
static void peer_read(tu_peer *p)
{
	while (!p->eof) {
		ssize_t n;

		ck_assert_int_eq(bbuf_reserve(&p->in, READ_CHUNK), 0);
		n = read(p->fd, p->in.data + p->in.len, READ_CHUNK);
		if (n > 0) {
			p->in.len += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0 && errno == EINTR)
			continue;
		p->eof = true;
	}
}

/* Length of the whole msgpack value at the start of p->in, or 0. */
static size_t peer_whole(const tu_peer *p)
{
	proto_scan sc;
	proto_limits lim;

	if (!p->in.len)
		return 0;
	proto_limits_default(&lim);
	lim.max_message_bytes = UINT32_MAX;
	lim.max_str_bytes = UINT32_MAX;
	lim.max_elements = UINT32_MAX;
	proto_scan_reset(&sc);
	switch (proto_scan_feed(&sc, &lim, p->in.data, p->in.len)) {
	case PROTO_SCAN_DONE:
		return sc.msg_len;
	case PROTO_SCAN_ERROR:
		ck_abort_msg("the other end sent a malformed message: %s", sc.reason);
		return 0;
	default:
		return 0;
	}
}

static bool peer_ready(void *ud)
{
	tu_peer *p = ud;

	peer_read(p);
	return peer_whole(p) > 0 || p->eof;
}

static void msg_decode(tu_msg *m, const char *data, size_t len)
{
	const msgpack_object *a, *err;
	size_t off = 0;

	memset(m, 0, sizeof(*m));
	msgpack_unpacked_init(&m->u);
	ck_assert_int_eq(msgpack_unpack_next(&m->u, data, len, &off), MSGPACK_UNPACK_SUCCESS);
	ck_assert_uint_eq(off, len);
	ck_assert_int_eq(m->u.data.type, MSGPACK_OBJECT_ARRAY);
	a = m->u.data.via.array.ptr;
	m->type = (int)a[0].via.u64;
	if (m->type != PROTO_RESPONSE)
		return;
	ck_assert_uint_eq(m->u.data.via.array.size, 4);
	m->msgid = (uint32_t)a[1].via.u64;
	err = &a[2];
	m->result = &a[3];
	m->ok = err->type == MSGPACK_OBJECT_NIL;
	if (m->ok)
		return;
	/* [code, message]: two strings (DESIGN.md §2) */
	ck_assert_int_eq(err->type, MSGPACK_OBJECT_ARRAY);
	ck_assert_uint_eq(err->via.array.size, 2);
	ck_assert_int_eq(err->via.array.ptr[0].type, MSGPACK_OBJECT_STR);
	ck_assert_int_eq(err->via.array.ptr[1].type, MSGPACK_OBJECT_STR);
	snprintf(m->code, sizeof(m->code), "%.*s", (int)err->via.array.ptr[0].via.str.size,
		 err->via.array.ptr[0].via.str.ptr);
	snprintf(m->message, sizeof(m->message), "%.*s", (int)err->via.array.ptr[1].via.str.size,
		 err->via.array.ptr[1].via.str.ptr);
}

bool tu_peer_next(tu_peer *p, tu_msg *m, uint64_t timeout_ms)
{
	size_t len;

	if (!tu_pump(p->l, peer_ready, p, timeout_ms))
		return false;
	len = peer_whole(p);
	if (!len)
		return false; /* end of stream */
	msg_decode(m, p->in.data, len);
	memmove(p->in.data, p->in.data + len, p->in.len - len);
	p->in.len -= len;
	return true;
}

static bool peer_closed(void *ud)
{
	tu_peer *p = ud;

	peer_read(p);
	return p->eof;
}

bool tu_peer_wait_eof(tu_peer *p, uint32_t *n_msgs, uint64_t timeout_ms)
{
	size_t len;

	if (!tu_pump(p->l, peer_closed, p, timeout_ms))
		return false;
	if (n_msgs)
		*n_msgs = 0;
	while ((len = peer_whole(p)) > 0) {
		memmove(p->in.data, p->in.data + len, p->in.len - len);
		p->in.len -= len;
		if (n_msgs)
			(*n_msgs)++;
	}
	ck_assert_msg(p->in.len == 0, "%zu bytes of a partial message before the close",
		      p->in.len);
	return true;
}

void tu_msg_free(tu_msg *m)
{
	msgpack_unpacked_destroy(&m->u);
}

static void expect_response(tu_peer *p, uint32_t msgid, tu_msg *m)
{
	ck_assert_msg(tu_peer_next(p, m, TU_TIMEOUT_MS), "no reply to msgid %u (%s)", msgid,
		      p->eof ? "connection closed" : "timed out");
	ck_assert_int_eq(m->type, PROTO_RESPONSE);
	ck_assert_uint_eq(m->msgid, msgid);
}

void tu_expect_ok(tu_peer *p, uint32_t msgid, tu_msg *m)
{
	tu_msg own;
	tu_msg *r = m ? m : &own;

	expect_response(p, msgid, r);
	ck_assert_msg(r->ok, "msgid %u: error %s: %s", msgid, r->code, r->message);
	if (!m)
		tu_msg_free(&own);
}

void tu_expect_error(tu_peer *p, uint32_t msgid, const char *code, const char *text)
{
	tu_msg m;

	expect_response(p, msgid, &m);
	ck_assert_msg(!m.ok, "msgid %u succeeded, %s expected", msgid, code);
	ck_assert_str_eq(m.code, code);
	ck_assert_msg(!text || strstr(m.message, text), "error \"%s\" lacks \"%s\"", m.message,
		      text);
	ck_assert_int_eq(m.result->type, MSGPACK_OBJECT_NIL);
	tu_msg_free(&m);
}

/* ---- a daemon in process ---- */

void tu_daemon_init(tu_daemon *t, const char *const *modules)
{
	int sv[2];

	memset(t, 0, sizeof(*t));
	log_init(3); /* errors only: the failures tests provoke would be noise */
	tu_loop_init(&t->tl);
	tu_tmpdir(t->dir, sizeof(t->dir), "daemon");
	for (const char *const *m = modules; *m; m++)
		tu_add_module(t->dir, *m);
	config_init_defaults(&t->d.cfg);
	snprintf(t->d.module_dir, sizeof(t->d.module_dir), "%s", t->dir);
	ck_assert_int_eq(lmmsd_init(&t->d, &t->tl.loop), 0);
	tu_socketpair(sv);
	t->c = server_conn_open(&t->d.srv, sv[0]);
	ck_assert_ptr_nonnull(t->c);
	tu_peer_init(&t->peer, &t->tl, sv[1]);
}

void tu_daemon_fini(tu_daemon *t)
{
	lmmsd_shutdown(&t->d);
	uv_run(&t->tl.loop, UV_RUN_DEFAULT);
	lmmsd_fini(&t->d);
	tu_peer_fini(&t->peer);
	tu_loop_fini(&t->tl);
	tu_rmtree(t->dir);
}

int tu_daemon_feed(tu_daemon *t, const void *msg, size_t len)
{
	int r = dispatch_on_message(&t->d.dp, t->c, msg, len);

	conn_flush(t->c);
	return r;
}

static int daemon_feed_va(tu_daemon *t, bool notification, uint32_t msgid, const char *method,
			  const char *fmt, va_list ap)
{
	msgpack_sbuffer sb;
	int r;

	msgpack_sbuffer_init(&sb);
	tu_pack_va(&sb, notification, msgid, method, fmt, ap);
	r = tu_daemon_feed(t, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	return r;
}

int tu_daemon_call(tu_daemon *t, uint32_t msgid, const char *method, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = daemon_feed_va(t, false, msgid, method, fmt, ap);
	va_end(ap);
	return r;
}

int tu_daemon_notify(tu_daemon *t, const char *method, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = daemon_feed_va(t, true, 0, method, fmt, ap);
	va_end(ap);
	return r;
}

module *tu_daemon_module(tu_daemon *t, const char *name)
{
	module *m = registry_find(&t->d.reg, name, strlen(name));

	ck_assert_msg(m != NULL, "no module %s", name);
	return m;
}

op_info *tu_daemon_op(tu_daemon *t, const char *method)
{
	op_info *op = registry_find_op(&t->d.reg, method, strlen(method));

	ck_assert_msg(op != NULL, "no op %s", method);
	return op;
}

/* ---- msgpack objects ---- */

bool tu_obj_is_str(const msgpack_object *o, const char *s)
{
	size_t n = strlen(s);

	return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
	       memcmp(o->via.str.ptr, s, n) == 0;
}

const msgpack_object *tu_map_get(const msgpack_object *o, const char *key)
{
	if (o->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < o->via.map.size; i++)
		if (tu_obj_is_str(&o->via.map.ptr[i].key, key))
			return &o->via.map.ptr[i].val;
	return NULL;
}

uint64_t tu_map_uint(const msgpack_object *o, const char *key)
{
	const msgpack_object *v = tu_map_get(o, key);

	ck_assert_msg(v != NULL, "no key \"%s\"", key);
	ck_assert_msg(v->type == MSGPACK_OBJECT_POSITIVE_INTEGER, "\"%s\" is not a uint", key);
	return v->via.u64;
}
