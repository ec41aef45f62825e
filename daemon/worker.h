/*
 * worker.h - isolated modules: one worker process per `isolation = process`
 * module, spoken to in MessagePack-RPC over a socketpair.
 *
 * The worker is lmmsd itself, re-executed in worker mode
 * (`lmmsd --worker FD PPID NAME`, see worker_main): there is no second
 * executable to install or configure, it is the same file in the build tree,
 * the test tree and an install, and daemon and worker can never disagree
 * about the channel protocol because they are the same binary. The daemon
 * passes "/proc/self/exe", which names the running image even after a
 * package upgrade replaced the file on disk; tests pass the built lmmsd.
 *
 * Channel protocol (both directions MessagePack-RPC, proto/ framing and
 * limits):
 *   daemon -> worker  [0, id, "lmms.hello", [{path, name, settings, log_level,
 *                      threads, memory_max, max_message_bytes, max_elements,
 *                      max_result_bytes, max_inflight}]]          first, once
 *   worker -> daemon  [1, id, nil, {version, description, unread, ops: [{name,
 *                      flags, cache_ttl_ms, blocking_above, doc}]}]
 *                     or [1, id, ["load_failed", text], nil] and the worker exits
 *   daemon -> worker  [0, id, "OP", params]  params forwarded byte for byte
 *   worker -> daemon  [1, id, nil, result] or [1, id, [code, message], nil]
 * Closing the daemon's end asks the worker to finish its calls, run the
 * module's fini and exit.
 *
 * The daemon side is libuv style: a caller-allocated handle driven by the
 * caller's loop, requests the caller allocates, and callbacks. Everything
 * runs on the loop thread; no callback is ever made from inside the call
 * that caused it (worker_start, worker_call, worker_stop never call back).
 * The process must ignore SIGPIPE (lmmsd does): a worker that dies with
 * data still queued to it is seen as a failed write.
 */
#ifndef LMMS_WORKER_H
#define LMMS_WORKER_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "list.h"
#include "proto.h"

#define WORKER_MAX_OPS 256 /* = MODULE_MAX_OPS */
#define WORKER_MAX_SETTINGS 256
#define WORKER_MAX_INFLIGHT 4096 /* slot numbers live in the low 16 bits of an id */
#define WORKER_HELLO_ANSWER_MAX (256u * 1024u)

/* ---- the channel, shared by both ends ------------------------------------ */

typedef struct wchan wchan;

/* One whole message (checked by proto_scan_feed against ch->limits), valid
 * until the callback returns. A negative return stops reading: the peer
 * broke the protocol. */
typedef int (*wchan_msg_cb)(wchan *ch, const char *msg, size_t len);
/* The peer closed its end (0), a read failed (negative uv error), or a
 * message broke a limit (-EPROTO). Reading has stopped. */
typedef void (*wchan_end_cb)(wchan *ch, int status);

struct wchan {
	uv_pipe_t pipe;
	proto_limits limits;
	proto_scan scan;
	char *ibuf;
	size_t ilen, icap;
	msgpack_sbuffer out; /* messages waiting for the current write to finish */
	msgpack_sbuffer wbuf; /* being written */
	msgpack_packer pk; /* packs into out */
	uv_write_t wreq;
	bool open, reading, writing, ended;
	wchan_msg_cb on_msg;
	wchan_end_cb on_end;
	void (*on_drained)(wchan *ch); /* optional: a queued write finished, nothing left */
};

/* Take over the connected socket fd (0 or a negative uv error). */
int wchan_open(wchan *ch, uv_loop_t *loop, int fd, wchan_msg_cb on_msg, wchan_end_cb on_end);
int wchan_read_start(wchan *ch);
/* Write what was packed into ch->out (batched behind a write in progress). */
int wchan_flush(wchan *ch);
static inline size_t wchan_unsent(const wchan *ch)
{
	return ch->out.size + ch->wbuf.size;
}
/* Close the pipe (pending writes are dropped); cb as for uv_close. */
void wchan_close(wchan *ch, uv_close_cb cb);
void wchan_free(wchan *ch); /* buffers; after the close callback */

/* The value of key in a msgpack map with str keys, or NULL. */
const msgpack_object *mp_map_get(const msgpack_object *map, const char *key);

/* ---- daemon side -------------------------------------------------------- */

typedef struct worker worker;
typedef struct worker_req worker_req;

typedef enum worker_state {
	WORKER_IDLE = 0, /* no process: worker_start may be called */
	WORKER_STARTING, /* spawned, hello sent, waiting for the descriptor */
	WORKER_READY,
	WORKER_STOPPING, /* channel closed (worker_stop, or a failed start), waiting for the exit */
	WORKER_CLOSING, /* the process is gone: answering calls, closing handles */
} worker_state;

typedef enum worker_end {
	WORKER_END_STOPPED = 0, /* worker_stop asked for it */
	WORKER_END_START_FAILED, /* never became ready; on_failed said why */
	WORKER_END_CRASHED, /* died, exited or broke the protocol while ready */
	WORKER_END_TIMEOUT, /* killed because a call ran past call_timeout_ms */
} worker_end;

const char *worker_end_name(worker_end e);

typedef struct worker_exit {
	worker_end end;
	int64_t exit_status; /* when it exited; -1 when it never ran */
	int term_signal; /* the signal that ended it, or 0 */
	uint32_t calls_failed; /* in-flight calls answered module_crashed / load_failed */
	const char *reason; /* one line: "killed by signal 11 (SIGSEGV)", ... */
} worker_exit;

typedef struct worker_op {
	const char *name;
	uint32_t flags; /* LMMS_OP_PURE | LMMS_OP_BLOCKING */
	uint32_t cache_ttl_ms;
	uint32_t blocking_above;
	const char *doc; /* "" when the module has none */
} worker_op;

/* What the worker learned from the module; valid during on_ready only. */
typedef struct worker_desc {
	const char *version; /* "" when none */
	const char *description; /* "" when none */
	const worker_op *ops;
	uint32_t n_ops;
	const char *const *unread; /* settings init never asked for: warn about them */
	uint32_t n_unread;
} worker_desc;

typedef void (*worker_ready_cb)(worker *w, const worker_desc *d);
/* The start failed (spawn, dlopen, descriptor, init, crash or deadline
 * during init); why is valid during the call. on_exit follows. */
typedef void (*worker_failed_cb)(worker *w, const char *why);
/* The process is gone and every handle closed: the worker is IDLE again and
 * may be started again (from inside this callback too) or freed. */
typedef void (*worker_exit_cb)(worker *w, const worker_exit *e);
/*
 * A call's answer: err PROTO_OK with the result's msgpack bytes, or an error
 * code and message. result and msg are valid during the callback only. ns is
 * the round trip measured by the daemon, queueing in the worker included.
 */
typedef void (*worker_call_cb)(worker_req *req, proto_err err, const char *msg,
			       const char *result, size_t len, uint64_t ns);

/* The module's own settings ([module NAME] keys), for host->setting. */
typedef struct worker_setting {
	const char *key, *value;
} worker_setting;

typedef struct worker_options {
	const char *exe; /* "/proc/self/exe" in the daemon */
	const char *module_path; /* the checked .so to dlopen */
	const char *module_name;
	const worker_setting *settings;
	uint32_t n_settings;
	int log_level; /* of the worker's own log lines (LOG_LVL_*) */
	uint32_t threads; /* the worker's thread pool for BLOCKING ops; 0: libuv's default */
	uint64_t memory_max; /* bytes the module may map on top of the idle worker; 0: no limit */
	uint64_t start_timeout_ms; /* spawn to ready (init included); 0: none */
	uint64_t call_timeout_ms; /* per call, from its send (or ready); 0: none */
	uint64_t stop_timeout_ms; /* worker_stop: SIGKILL after this; 0: at once */
	uint32_t max_inflight; /* calls in flight; worker_call says -EBUSY beyond */
	size_t max_buffered_bytes; /* unsent bytes to the worker; -EBUSY beyond */
	uint32_t max_message_bytes; /* of a client request: bounds the params */
	uint32_t max_elements; /* of a client request */
	uint32_t max_result_bytes; /* one op's result, enforced in the worker */
	worker_ready_cb on_ready;
	worker_failed_cb on_failed;
	worker_exit_cb on_exit;
} worker_options;

/* Fills the defaults below; callers set exe, module and callbacks. */
void worker_options_default(worker_options *o);

struct worker_req {
	void *data; /* the caller's */
	/* private */
	worker *w;
	list_node link; /* w->calls, oldest first */
	worker_call_cb cb;
	uint32_t id;
	uint64_t sent_ns;
	uint64_t deadline_ms; /* 0 while the worker is starting */
	char op[64]; /* for the timeout message */
};

struct worker {
	void *data; /* the caller's */

	/* read-only for callers */
	worker_state state;
	int pid; /* 0 without a process */
	uint64_t spawned_ns, ready_ns; /* now_ns() at spawn and at ready */

	/* private */
	uv_loop_t *loop;
	worker_options opt; /* strings below are copies */
	char name[64];
	uv_process_t proc;
	uv_timer_t timer;
	uv_shutdown_t shutdown_req;
	wchan ch;
	unsigned handles; /* open libuv handles of this run */
	bool proc_inited, exited, eof, stop_requested, timed_out, ready_seen, failed_reported;
	bool hello_answered;
	bool timer_armed, killed;
	int64_t exit_status;
	int term_signal;
	uint64_t timer_due_ms, stop_deadline_ms, drain_deadline_ms, start_deadline_ms;
	char error[512]; /* start failure */
	char why[256]; /* what made the daemon kill it */
	char reason[160]; /* how it ended, for worker_exit */
	worker_exit exit;

	worker_req **slots;
	uint16_t *free_slots;
	uint32_t n_free;
	uint32_t inflight;
	uint16_t gen;
	list_node calls; /* in send order, oldest first */
	msgpack_zone zone; /* unpacking answers */
};

/* Safe values; the handle can then be started, and freed while IDLE. */
void worker_init(worker *w, uv_loop_t *loop);
/* Release memory kept between runs; only while IDLE. */
void worker_fini(worker *w);

/*
 * Spawn the worker and send the hello (calls may be queued at once: they
 * run after init). 0, -EINVAL for missing options, -EBUSY unless IDLE,
 * -ENOMEM. A spawn that fails is reported through on_failed and on_exit.
 * pdeathsig follows the thread that forks: call this from the loop thread,
 * which must live as long as the workers.
 */
int worker_start(worker *w, const worker_options *opt);

/*
 * Send one call: op is the op name (without "module."), params the request's
 * params array as it came on the wire. cb runs exactly once. 0, -ENOTCONN
 * unless STARTING or READY, -EBUSY over max_inflight or max_buffered_bytes,
 * -E2BIG for params over max_message_bytes, -EINVAL for a bad op name or
 * params that are not an array, -ENOMEM.
 */
int worker_call(worker *w, worker_req *req, const char *op, size_t op_len, const char *params,
		size_t params_len, worker_call_cb cb);

/*
 * Close the channel: the worker finishes its calls, runs fini and exits; it
 * is killed if it has not after stop_timeout_ms. Calls still in flight when
 * it ends are answered module_crashed. Idempotent; 0.
 */
int worker_stop(worker *w);

static inline int worker_pid(const worker *w)
{
	return w->pid;
}
static inline uint32_t worker_inflight(const worker *w)
{
	return w->inflight;
}
/* The worker's RSS from /proc/PID/statm (its resident_bytes), 0 without one. */
int64_t worker_rss_bytes(const worker *w);

/* ---- crash accounting, for the registry's quarantine -------------------- */

#define WORKER_CRASHES_MAX 16

typedef struct worker_crash_policy {
	uint32_t limit; /* crashes within window_ms that quarantine the module */
	uint64_t window_ms;
	uint64_t backoff_ms; /* respawn delay after the first crash, doubling */
	uint64_t backoff_max_ms;
} worker_crash_policy;

typedef struct worker_crashes {
	uint64_t at[WORKER_CRASHES_MAX]; /* ring of the latest crash times */
	uint32_t n, next;
	uint64_t total;
	uint64_t backoff_ms; /* in force; 0 after a quiet window */
	uint64_t retry_at_ms; /* no respawn before */
} worker_crashes;

/*
 * Count a crash at now: sets the respawn backoff (doubling from
 * p->backoff_ms, reset once a whole window passed without a crash) and
 * returns the crashes within the last window_ms, this one included. At
 * p->limit or more the module is to be quarantined until retry_at_ms.
 */
uint32_t worker_crashes_record(worker_crashes *c, const worker_crash_policy *p, uint64_t now);
/* Crashes within the window ending at now. */
uint32_t worker_crashes_recent(const worker_crashes *c, const worker_crash_policy *p,
			       uint64_t now);
static inline bool worker_crashes_may_spawn(const worker_crashes *c, uint64_t now)
{
	return now >= c->retry_at_ms;
}
/* An admin loaded the module: forget the recent crashes (total stays). */
void worker_crashes_forgive(worker_crashes *c);

/* ---- worker side -------------------------------------------------------- */

/* main() of `lmmsd --worker FD PPID NAME` (worker-main.c). */
int worker_main(int argc, char **argv);

#endif
