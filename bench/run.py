#!/usr/bin/python3
"""run.py - lmmsd's benchmark harness: every figure of bench/RESULTS.md in one run.

    /usr/bin/python3 bench/run.py BUILD_DIR [--quick] [--out FILE] [--only SCENARIO,...]
                                            [--reps N]

BUILD_DIR is a meson build of this tree (`meson setup build --buildtype=release
-Dtests=false && ninja -C build` for figures). The harness starts every server
itself, on sockets in a temporary directory, drives them with one load client
(bench-load: the same code and settings for all of them), checks every reply,
and writes FILE (default bench/RESULTS.md; with --quick, BUILD_DIR/bench-quick/
RESULTS.md) with its plots beside it. Scenarios (README.md says what each
measures): throughput, startup, memory, cold, burst, dispatch.

--quick runs each scenario briefly (well under 2 minutes): a smoke check that
asserts nothing about speed but fails (exit 1) when a reply is wrong or a
server does not start. It skips (exit 77) on a sanitized build, as
`meson test --suite bench` runs it.

Noise: the machine is shared. Servers are measured in interleaved
repetitions (A, B, C, D, A, B, C, D, ...), and every ratio is taken inside
one repetition, then the median of those ratios is reported with its min and
max: a disturbance hits neighbours in time alike.
"""

import argparse
import json
import os
import platform
import random
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "client" / "bindings" / "python"))
sys.path.insert(0, str(HERE))

import lmms  # noqa: E402
import synmods  # noqa: E402

PAYLOAD = "bench-payload-16"  # the one small string param; also Redis's value
REDIS_KEY = "bench"
START_TIMEOUT = 30.0  # seconds for any server to answer after exec
STOP_TIMEOUT = 10.0

# lmmsd's per-uid connection cap (64) would refuse the 256-connection runs;
# every throughput run uses the same settings, so all get these.
LMMSD_CONN_SET = ["--set", "server.max_connections=1024",
                  "--set", "server.max_connections_per_uid=1024"]
# memory scenario: short LUGS times so the sweep happens within the run; the
# grace is long enough that touching 1000 modules (32 calls in flight) ends
# before the first of them may go; quick mode touches at most 60
def lugs_fast_set(quick):
    return ["--set", "lugs.grace_period=%s" % ("2s" if quick else "10s"),
            "--set", "lugs.sweep_interval=100ms", "--set", "lugs.min_resident=0"]


# burst trace: "never unloading"
LUGS_NEVER_SET = ["--set", "lugs.grace_period=1h"]
BURST_SEED = 9  # issue 9
BURST_CALLS = 50
ZIPF_S = 1.0


class Failure(Exception):
    """A server failed to start, a reply was wrong, a run did not finish."""


def log(msg):
    print("[bench] " + msg, file=sys.stderr, flush=True)


def median_mm(xs):
    return statistics.median(xs), min(xs), max(xs)


def fmt_mm(xs, fmt="%.1f"):
    """median [min-max] of the repetitions."""
    if not xs:
        return "-"
    m, lo, hi = median_mm(xs)
    if len(xs) == 1:
        return fmt % m
    return (fmt + " [" + fmt + "–" + fmt + "]") % (m, lo, hi)


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


def proc_status(pid):
    """VmRSS, RssAnon, RssFile of pid in KiB."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0])
    return out


def mib(kib):
    return kib / 1024.0


class Harness:
    def __init__(self, build, quick, out):
        self.build = build
        self.quick = quick
        self.out = out
        self.tmp = Path(tempfile.mkdtemp(prefix="lmms-bench-"))
        self.procs = []  # every server started, stopped on every way out
        self.commands = []  # distinct command lines, for RESULTS.md
        self.lmmsd = build / "daemon" / "lmmsd"
        self.load = build / "bench" / "bench-load"
        self.bundled = build / "modules"
        self.cpu = (os.cpu_count() or 1) - 1  # the CPU of "one CPU" runs
        self.reps = 1 if quick else 5
        self.sets = {}  # N -> module dir
        self.summary = {}  # figures for the targets table

    # -- bookkeeping --

    def record(self, argv, symbolic=()):
        """Keeps argv for the Commands section; the values of the options in
        symbolic are shown as $OPTION, so one line stands for every mode."""
        argv = [str(a) for a in argv]
        for i in range(1, len(argv)):
            if argv[i - 1] in symbolic:
                argv[i] = "$" + argv[i - 1].lstrip("-").upper()
        s = " ".join(a if a.startswith("$") else shlex.quote(a) for a in argv)
        s = s.replace(str(self.tmp), "$TMP").replace(str(ROOT) + "/", "")
        if s not in self.commands:
            self.commands.append(s)

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        subprocess.run(["rm", "-rf", str(self.tmp)])

    # -- servers --

    def spawn(self, name, argv, cpu=None):
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu)] + [str(a) for a in argv]
        self.record(argv)
        logf = open(self.tmp / (name + ".log"), "ab")
        p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL,
                             stdout=logf, stderr=logf)
        logf.close()
        p.bench_name = name
        self.procs.append(p)
        return p

    def wait_connect(self, p, sock):
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if p.poll() is not None:
                raise Failure("%s exited with %d during start-up; its log: %s"
                              % (p.bench_name, p.returncode, self.log_tail(p.bench_name)))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(str(sock))
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise Failure("%s did not listen on %s within %.0f s"
                                  % (p.bench_name, sock, START_TIMEOUT))
                time.sleep(0.005)
            finally:
                s.close()

    def log_tail(self, name):
        try:
            return (self.tmp / (name + ".log")).read_text(errors="replace")[-2000:]
        except OSError:
            return "(none)"

    def stop(self, p):
        """SIGTERM; a server must exit 0 (a crash at exit is a failure)."""
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise Failure("%s ignored SIGTERM for %.0f s" % (p.bench_name, STOP_TIMEOUT))
        if rc != 0 and p.bench_name.startswith("lmmsd"):
            raise Failure("%s exited with %d; its log: %s"
                          % (p.bench_name, rc, self.log_tail(p.bench_name)))

    # The machine's own memory pressure (other work on a shared host) must not
    # make a daemon shed in the middle of a measurement: PSI shedding is
    # measured by the tests, not here. Every lmmsd the harness starts has it.
    PRESSURE_OFF = ("--set", "lugs.pressure=off")

    def lmmsd_argv(self, sock, module_dir, extra=()):
        return [self.lmmsd, "--socket", sock, "--module-dir", module_dir, *self.PRESSURE_OFF,
                *extra]

    def start_lmmsd(self, name, module_dir, extra=(), cpu=None):
        sock = self.tmp / (name + ".sock")
        p = self.spawn(name, self.lmmsd_argv(sock, module_dir, extra), cpu)
        self.wait_connect(p, sock)
        p.sock = sock
        return p

    def start_floor(self, name, prog, cpu=None):
        sock = self.tmp / (name + ".sock")
        p = self.spawn(name, [self.build / "bench" / prog, sock], cpu)
        self.wait_connect(p, sock)
        p.sock = sock
        return p

    def start_redis(self, cpu=None):
        sock = self.tmp / "redis.sock"
        p = self.spawn("redis", ["redis-server", "--port", "0", "--unixsocket", sock,
                                 "--unixsocketperm", "700", "--save", "", "--appendonly",
                                 "no", "--dir", self.tmp], cpu)
        self.wait_connect(p, sock)
        p.sock = sock
        # the key GET reads, set over RESP like any client would
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(sock))
            s.sendall(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                      % (len(REDIS_KEY), REDIS_KEY.encode(), len(PAYLOAD), PAYLOAD.encode()))
            if s.recv(64) != b"+OK\r\n":
                raise Failure("redis did not store the key")
        return p

    # -- the load client --

    def run_load(self, sock, request, conns=1, depth=1, seconds=None, warmup=None,
                 requests=None, cpu=None, symbolic=(), server=None):
        argv = [self.load, "run", "--socket", sock, *request, "--conns", conns,
                "--depth", depth]
        if server:
            argv += ["--server-pid", server.pid]
            symbolic = tuple(symbolic) + ("--server-pid",)
        if requests:
            argv += ["--requests", requests, "--warmup", 0]
        else:
            argv += ["--seconds", seconds, "--warmup", warmup]
        if cpu is not None:
            argv = ["taskset", "-c", cpu] + argv
        argv = [str(a) for a in argv]
        self.record(argv, symbolic)
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=120)
        if r.returncode != 0:
            raise Failure("bench-load failed (%d): %s\n%s"
                          % (r.returncode, " ".join(argv), r.stderr.strip()))
        return json.loads(r.stdout)

    def run_start(self, sock, request, server_argv):
        argv = [str(a) for a in [self.load, "start", "--socket", sock, *request, "--ready",
                                 "ready:", "--timeout", START_TIMEOUT, "--", *server_argv]]
        self.record(argv)
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=START_TIMEOUT * 3)
        if r.returncode != 0:
            raise Failure("start-up measurement failed (%d): %s\n%s"
                          % (r.returncode, " ".join(argv), r.stderr.strip()))
        return json.loads(r.stdout)

    # -- module sets --

    def module_set(self, n):
        if n not in self.sets:
            t = time.monotonic()
            self.sets[n] = synmods.make_set(n, self.tmp / ("mods%d" % n),
                                            self.build / "bench-modules")
            log("%d synthetic modules ready in %.1f s" % (n, time.monotonic() - t))
        return self.sets[n]

    def set_sizes(self):
        d = self.module_set(max(self.sets))
        n = min(len(list(d.glob("*.so"))), synmods.WEIGHT_VARIANTS)
        return [synmods.weight_kib(d / (synmods.name(i) + ".so")) for i in range(n)]

    def set_counts(self):
        return (6, 60) if self.quick else (6, 60, 1000)


RPC_ECHO = ["--rpc", "echo.ping", "--str", PAYLOAD]
TARGETS = [
    # name, server, request
    ("lmmsd echo.ping", "lmmsd", RPC_ECHO + ["--expect", "params"]),
    ("lmmsd lmms.ping", "lmmsd", ["--rpc", "lmms.ping", "--expect", "str:pong"]),
    ("mini-rpc", "mini", RPC_ECHO + ["--expect", "param"]),
    ("echo floor", "echo", RPC_ECHO + ["--expect", "request"]),
    ("redis PING", "redis", ["--redis", "ping"]),
    ("redis GET", "redis", ["--redis", "get", "--key", REDIS_KEY, "--value", PAYLOAD]),
]
MODES = [
    # name, conns, depth
    ("1 conn", 1, 1),
    ("16 conns", 16, 1),
    ("256 conns", 256, 1),
    ("1 conn, depth 32", 1, 32),
]


def ratio_rows(res, modes, pairs, key="rps", fmt="%.2f×"):
    """Per repetition a/b, then median [min-max] of those ratios."""
    rows = []
    for label, a, b in pairs:
        cells = [label]
        for m in modes:
            ra, rb = res[(a, m)], res[(b, m)]
            cells.append(fmt_mm([x[key] / y[key] for x, y in zip(ra, rb) if y[key]], fmt))
        rows.append(cells)
    return rows


def scenario_throughput(h):
    """Requests per second and latency, every server, every mode, both placements."""
    secs, warm = (0.1, 0.05) if h.quick else (1.0, 0.2)
    out = ["## Throughput and latency: lmmsd beside the floors and Redis",
           "",
           "Each run: `bench-load run` for %.1f s after %.2f s of warm-up on fresh"
           " connections; %d interleaved repetitions (every target once per repetition, in"
           " the order of the rows); cells are median [min–max] of the repetitions. Before"
           " the repetitions every target had 0.5 s of depth-32 calls (so lmmsd's"
           " `echo.ping` is hot, in fact critical, when measured). Request: `echo.ping`"
           " with one %d-byte string for lmmsd (result: the params array), mini-rpc"
           " (result: the string) and the echo floor (the request comes back); Redis:"
           " `PING`, and `GET` of a key holding the same %d-byte string."
           % (secs, warm, h.reps, len(PAYLOAD), len(PAYLOAD)),
           "",
           "lmmsd runs with `%s` (the 256-connection runs need them; every mode uses the"
           " same settings) and the build's bundled modules."
           % " ".join(LMMSD_CONN_SET),
           ""]
    modes = [m[0] for m in MODES]
    for placement, cpu in (("unpinned", None), ("one CPU", h.cpu)):
        log("throughput, %s" % placement)
        servers = {
            "lmmsd": h.start_lmmsd("lmmsd-tp", h.bundled, LMMSD_CONN_SET, cpu),
            "mini": h.start_floor("mini-rpc", "mini-rpc", cpu),
            "echo": h.start_floor("echo-server", "echo-server", cpu),
            "redis": h.start_redis(cpu),
        }
        try:
            for name, srv, rq in TARGETS:
                h.run_load(servers[srv].sock, rq, 1, 32, 0.05 if h.quick else 0.5, 0, cpu=cpu,
                           symbolic=("--seconds",))
            res = {}
            for mname, conns, depth in MODES:
                for rep in range(h.reps):
                    for name, srv, rq in TARGETS:
                        r = h.run_load(servers[srv].sock, rq, conns, depth, secs, warm, cpu=cpu,
                                       symbolic=("--conns", "--depth", "--seconds", "--warmup"),
                                       server=servers[srv])
                        res.setdefault((name, mname), []).append(r)
        finally:
            for p in servers.values():
                h.stop(p)
        where = ("client and server pinned to CPU %d (`taskset -c %d`)" % (cpu, cpu)
                 if cpu is not None else "client and server unpinned (%d CPUs)"
                 % (os.cpu_count() or 1))
        out += ["### %s: %s" % (placement, where), "",
                "Throughput, thousands of replies per second:", ""]
        out.append(table(["target"] + modes,
                         [[n] + [fmt_mm([x["rps"] / 1000 for x in res[(n, m)]]) for m in modes]
                          for n, _, _ in TARGETS]))
        out += ["", "Latency p50 / p99, µs (for depth 32: from the batch's write to each"
                " reply):", ""]
        out.append(table(["target"] + modes,
                         [[n] + ["%s / %s" % (fmt_mm([x["p50_us"] for x in res[(n, m)]]),
                                              fmt_mm([x["p99_us"] for x in res[(n, m)]]))
                                 for m in modes] for n, _, _ in TARGETS]))
        out += ["", "CPU per reply, µs: the server's (all its threads, from"
                " /proc/PID/task/*/schedstat, over the whole run, warm-up included) / the"
                " client's. Unlike replies per second, it hardly moves when other work shares"
                " the machine:", ""]
        out.append(table(["target"] + modes,
                         [[n] + ["%s / %s" % (fmt_mm([x["server_cpu_us"] for x in res[(n, m)]],
                                                     "%.2f"),
                                              fmt_mm([x["client_cpu_us"] for x in res[(n, m)]],
                                                     "%.2f"))
                                 for m in modes] for n, _, _ in TARGETS]))
        out += ["", "Ratios inside each repetition (throughput; p50 latency and server CPU per"
                " reply where said; for those two, lower is better for the first):", ""]
        pairs = [("lmmsd echo.ping / echo floor", "lmmsd echo.ping", "echo floor"),
                 ("lmmsd echo.ping / redis GET", "lmmsd echo.ping", "redis GET"),
                 ("lmmsd echo.ping / mini-rpc", "lmmsd echo.ping", "mini-rpc"),
                 ("lmmsd lmms.ping / echo floor", "lmmsd lmms.ping", "echo floor"),
                 ("mini-rpc / echo floor", "mini-rpc", "echo floor")]
        rows = ratio_rows(res, modes, pairs)
        rows += ratio_rows(res, modes, [("p50: lmmsd echo.ping / echo floor",
                                         "lmmsd echo.ping", "echo floor")], "p50_us")
        rows += ratio_rows(res, modes, [
            ("server CPU: lmmsd echo.ping / echo floor", "lmmsd echo.ping", "echo floor"),
            ("server CPU: lmmsd echo.ping / mini-rpc", "lmmsd echo.ping", "mini-rpc"),
            ("server CPU: lmmsd echo.ping / redis GET", "lmmsd echo.ping", "redis GET"),
            ("server CPU: lmmsd lmms.ping / echo floor", "lmmsd lmms.ping", "echo floor")],
            "server_cpu_us")
        out.append(table(["ratio"] + modes, rows))
        out.append("")

        def per_rep(a, b, mode, key="rps"):
            return [x[key] / y[key] for x, y in zip(res[(a, mode)], res[(b, mode)])]
        s = h.summary
        s[("16 conns vs echo", placement)] = per_rep("lmmsd echo.ping", "echo floor", "16 conns")
        s[("16 conns vs GET", placement)] = per_rep("lmmsd echo.ping", "redis GET", "16 conns")
        s[("lmms.ping 16 vs echo", placement)] = per_rep("lmmsd lmms.ping", "echo floor",
                                                         "16 conns")
        s[("d32 vs echo", placement)] = per_rep("lmmsd echo.ping", "echo floor",
                                                "1 conn, depth 32")
        s[("d32 vs GET", placement)] = per_rep("lmmsd echo.ping", "redis GET",
                                               "1 conn, depth 32")
        s[("p50 vs echo", placement)] = per_rep("lmmsd echo.ping", "echo floor", "1 conn",
                                                "p50_us")
        for mode in ("16 conns", "1 conn, depth 32"):
            for floor in ("echo floor", "mini-rpc", "redis GET"):
                s[("cpu", placement, mode, floor)] = per_rep("lmmsd echo.ping", floor, mode,
                                                             "server_cpu_us")
        s[("cpu us", placement)] = [x["server_cpu_us"]
                                    for x in res[("lmmsd echo.ping", "1 conn, depth 32")]]
        s[("cpu us mini", placement)] = [x["server_cpu_us"]
                                         for x in res[("mini-rpc", "1 conn, depth 32")]]
    return out


def scenario_startup(h):
    """exec -> READY and exec -> first reply, lazy and eager, 6/60/1000 modules."""
    log("startup")
    configs = [("mini-rpc", None, "mini", [])]
    for n in h.set_counts():
        configs.append(("lmmsd, %d modules, lazy" % n, n, "lmmsd", []))
    for n in h.set_counts():
        configs.append(("lmmsd, %d modules, --eager" % n, n, "lmmsd", ["--eager"]))
    configs.append(("lmmsd, bundled modules, first call `echo.ping`", "bundled",
                    "lmmsd-echo", []))
    res = {}
    sock = h.tmp / "start.sock"
    for rep in range(-1, h.reps):  # -1: warm-up pass (page cache, dentries), not kept
        for name, n, kind, extra in configs:
            if kind == "mini":
                argv = [h.build / "bench" / "mini-rpc", sock]
                rq = ["--rpc", "lmms.ping", "--expect", "param"]
            else:
                d = h.bundled if n == "bundled" else h.module_set(n)
                argv = h.lmmsd_argv(sock, d, extra)
                rq = (RPC_ECHO + ["--expect", "params"] if kind == "lmmsd-echo"
                      else ["--rpc", "lmms.ping", "--expect", "str:pong"])
            r = h.run_start(sock, rq, argv)
            if rep >= 0:
                res.setdefault(name, []).append(r)
    out = ["## Start: exec → READY and exec → first reply", "",
           "`bench-load start` forks and execs the server, reads its stderr for the"
           " `ready:` line (READY) and polls connect every 50 µs, sending `lmms.ping` (to"
           " mini-rpc the same request) the moment it connects (first reply); the CPU"
           " column is the time the server had run (all threads, schedstat) when it"
           " answered, which other work on the machine hardly moves. Then SIGTERM, and the"
           " server must exit 0. Modules: the synthetic sets (bench/synmods.py); `--eager`"
           " loads them all before READY. One warm-up pass, then %d interleaved"
           " repetitions; ms, median [min–max]." % h.reps, ""]
    rows = []
    for name, _, _, _ in configs:
        rows.append([name, fmt_mm([x["ready_us"] / 1000 for x in res[name]], "%.2f"),
                     fmt_mm([x["reply_us"] / 1000 for x in res[name]], "%.2f"),
                     fmt_mm([x["cpu_us"] / 1000 for x in res[name]], "%.2f")])
    out.append(table(["server", "exec → READY (ms)", "exec → first reply (ms)",
                      "CPU by the first reply (ms)"], rows))
    lazy6, lazyN = "lmmsd, 6 modules, lazy", "lmmsd, %d modules, lazy" % h.set_counts()[-1]

    def per_rep(key, a, b, f):
        return [f(x[key], y[key]) for x, y in zip(res[a], res[b])]
    vs_mini = per_rep("reply_us", lazy6, "mini-rpc", lambda a, b: a / b)
    delta = per_rep("reply_us", lazyN, lazy6, lambda a, b: (a - b) / 1000)
    delta_pct = per_rep("reply_us", lazyN, lazy6, lambda a, b: 100.0 * (a / b - 1))
    cpu_vs_mini = per_rep("cpu_us", lazy6, "mini-rpc", lambda a, b: a / b)
    cpu_delta = per_rep("cpu_us", lazyN, lazy6, lambda a, b: (a - b) / 1000)
    cpu_delta_pct = per_rep("cpu_us", lazyN, lazy6, lambda a, b: 100.0 * (a / b - 1))
    n = h.set_counts()[-1]
    out += ["", "Inside each repetition:", ""]
    out.append(table(["figure", "wall clock", "CPU"], [
        ["exec → first reply, lmmsd (6 modules, lazy) / mini-rpc", fmt_mm(vs_mini, "%.2f×"),
         fmt_mm(cpu_vs_mini, "%.2f×")],
        ["exec → first reply, %d modules − 6 modules (lazy)" % n,
         fmt_mm(delta, "%+.2f ms") + " (" + fmt_mm(delta_pct, "%+.0f%%") + ")",
         fmt_mm(cpu_delta, "%+.2f ms") + " (" + fmt_mm(cpu_delta_pct, "%+.0f%%") + ")"],
    ]))
    out.append("")
    h.summary["start cpu vs mini"] = cpu_vs_mini
    h.summary["start cpu ms"] = [x["cpu_us"] / 1000 for x in res[lazy6]]
    h.summary["start cpu delta"] = (cpu_delta, cpu_delta_pct, n)
    h.summary["start vs mini"] = vs_mini
    h.summary["start ms"] = [x["reply_us"] / 1000 for x in res[lazy6]]
    h.summary["start delta"] = (delta, delta_pct, n)
    return out


def touch_all(c, n):
    """One op0 call of every module, 32 in flight (under lmmsd's per-connection
    cap of 64), so touching 1000 modules ends well within the grace."""
    for first in range(0, n, 32):
        names = [synmods.name(i) for i in range(first, min(first + 32, n))]
        ids = [(m, c.request(m + ".op0", PAYLOAD)) for m in names]
        for m, msgid in ids:
            got = c.wait(msgid)
            if got != PAYLOAD:
                raise Failure("%s.op0 answered %r" % (m, got))


def wait_stat(c, key, want, timeout):
    deadline = time.monotonic() + timeout
    while True:
        v = c.stats()[key]
        if v == want:
            return
        if time.monotonic() > deadline:
            raise Failure("%s stayed %s (wanted %s) for %.0f s" % (key, v, want, timeout))
        time.sleep(0.05)


def scenario_memory(h):
    """VmRSS idle, after touching every module, after the sweep; eager."""
    log("memory")
    res = {}
    for rep in range(h.reps):
        for n in h.set_counts():
            d = h.module_set(n)
            p = h.start_lmmsd("lmmsd-mem", d, lugs_fast_set(h.quick))
            try:
                with lmms.Client(str(p.sock), timeout=30) as c:
                    time.sleep(0.5)
                    idle = proc_status(p.pid)
                    touch_all(c, n)
                    touched = proc_status(p.pid)
                    resident = c.stats()["modules_resident"]
                    wait_stat(c, "modules_resident", 0, 60)
                    time.sleep(0.5)  # a few more sweeps: the rate-limited malloc_trim
                    swept = proc_status(p.pid)
            finally:
                h.stop(p)
            p = h.start_lmmsd("lmmsd-mem-eager", d, ["--eager"])
            try:
                with lmms.Client(str(p.sock), timeout=30) as c:
                    time.sleep(0.5)
                    eager = proc_status(p.pid)
                    eager_resident = c.stats()["modules_resident"]
            finally:
                h.stop(p)
            res.setdefault(n, []).append(dict(idle=idle, touched=touched, resident=resident,
                                              swept=swept, eager=eager,
                                              eager_resident=eager_resident))
    out = ["## Memory: VmRSS idle, after touching every module, after the sweep, eager", "",
           "lmmsd on a synthetic set with `%s` (a grace long enough for touching every"
           " module first, a sweep every 100 ms, nothing kept resident by count). Idle:"
           " 0.5 s after the first reply; touched: right after one `op0` call of every"
           " module, in order; after the sweep: once `modules_resident` is 0, plus 0.5 s for"
           " the rate-limited malloc_trim; eager: `--eager`, 0.5 s after the first reply."
           " VmRSS from /proc/PID/status, MiB, median [min–max] of %d repetitions."
           % (" ".join(lugs_fast_set(h.quick)), h.reps), ""]
    rows, ratio_rows_ = [], []
    for n in h.set_counts():
        rs = res[n]
        rows.append(["%d" % n,
                     fmt_mm([mib(r["idle"]["VmRSS"]) for r in rs], "%.2f"),
                     fmt_mm([mib(r["touched"]["VmRSS"]) for r in rs], "%.1f")
                     + " (resident: " + fmt_mm([r["resident"] for r in rs], "%d") + ")",
                     fmt_mm([mib(r["swept"]["VmRSS"]) for r in rs], "%.2f"),
                     fmt_mm([mib(r["eager"]["VmRSS"]) for r in rs], "%.1f")
                     + " (resident: " + fmt_mm([r["eager_resident"] for r in rs], "%d") + ")"])
        ratio_rows_.append(["%d" % n,
                            fmt_mm([r["swept"]["VmRSS"] / r["idle"]["VmRSS"] for r in rs],
                                   "%.2f×"),
                            fmt_mm([r["eager"]["VmRSS"] / r["idle"]["VmRSS"] for r in rs],
                                   "%.1f×")])
    out.append(table(["modules", "idle", "touched", "after the sweep", "eager"], rows))
    out += ["", "Anonymous / file-backed part of VmRSS (RssAnon / RssFile, MiB, medians):", ""]
    out.append(table(["modules", "idle", "touched", "after the sweep", "eager"], [
        ["%d" % n] + ["%.2f / %.2f" % (statistics.median(mib(r[k]["RssAnon"]) for r in res[n]),
                                      statistics.median(mib(r[k]["RssFile"]) for r in res[n]))
                      for k in ("idle", "touched", "swept", "eager")]
        for n in h.set_counts()]))
    out += ["", "Inside each repetition:", ""]
    out.append(table(["modules", "after the sweep / idle", "eager / idle"], ratio_rows_))
    out.append("")
    h.summary["idle rss"] = [mib(r["idle"]["VmRSS"]) for r in res[6]]
    h.summary["swept/idle 60"] = [r["swept"]["VmRSS"] / r["idle"]["VmRSS"] for r in res[60]]
    return out


def scenario_cold(h):
    """First call of a cold module on a fresh daemon, after a forced unload, warm."""
    log("cold and warm calls")
    n_warm = 200 if h.quick else 5000
    cases = [("synthetic syn0001.op0 (60 modules)", lambda: h.module_set(60), "syn0001",
              ["--rpc", "syn0001.op0", "--str", PAYLOAD, "--expect", "param"]),
             ("bundled echo.ping", lambda: h.bundled, "echo", RPC_ECHO + ["--expect", "params"])]
    res = {}
    for rep in range(h.reps):
        for name, mdir, mod, rq in cases:
            p = h.start_lmmsd("lmmsd-cold", mdir())
            try:
                fresh = h.run_load(p.sock, rq, requests=1, symbolic=("--requests",))["first_us"]
                with lmms.Client(str(p.sock), timeout=30) as c:
                    if c.call("lmms.unload", mod, True) is not True:
                        raise Failure("lmms.unload %s did not answer true" % mod)
                unloaded = h.run_load(p.sock, rq, requests=1,
                                      symbolic=("--requests",))["first_us"]
                warm = h.run_load(p.sock, rq, requests=n_warm,
                                  symbolic=("--requests",))["p50_us"]
            finally:
                h.stop(p)
            res.setdefault(name, []).append((fresh, unloaded, warm))
    out = ["## Cold module: first call on a fresh daemon, after a forced unload, warm", "",
           "A fresh lmmsd (defaults) per repetition; one call on a new connection (its"
           " latency: load, init, call); `lmms.unload [name, true]`; one call again; then"
           " %d calls on one connection, one at a time (p50). µs, median [min–max] of %d"
           " repetitions; ratios inside each repetition." % (n_warm, h.reps), ""]
    rows = []
    for name, _, _, _ in cases:
        rs = res[name]
        rows.append([name, fmt_mm([r[0] for r in rs], "%.0f"), fmt_mm([r[1] for r in rs], "%.0f"),
                     fmt_mm([r[2] for r in rs], "%.1f"),
                     fmt_mm([r[0] / r[2] for r in rs], "%.0f×")])
    out.append(table(["call", "cold, fresh daemon", "cold, after unload", "warm p50",
                      "fresh cold / warm"], rows))
    out.append("")
    return out


def zipf_trace(methods, n_calls, span, seed):
    """n_calls (time, method) over [0, span): uniform times, Zipf-ranked methods."""
    rng = random.Random(seed)
    ranked = list(methods)
    rng.shuffle(ranked)
    weights = [1.0 / (k + 1) ** ZIPF_S for k in range(len(ranked))]
    times = sorted(rng.uniform(0, span) for _ in range(n_calls))
    return [(t, rng.choices(ranked, weights)[0]) for t in times]


def scenario_burst(h):
    """The seed's burst trace: RSS over time, MB*s, lazy (LUGS) vs never vs eager."""
    n = 60
    burst, total = (3.0, 5.0) if h.quick else (30.0, 90.0)
    log("burst trace (%.0f s)" % total)
    d = h.module_set(n)
    methods = ["%s.%s" % (synmods.name(i), op) for i in range(n) for op in synmods.OPS]
    trace = zipf_trace(methods, BURST_CALLS, burst, BURST_SEED)
    configs = [("lazy, LUGS defaults", []), ("lazy, never unloading", LUGS_NEVER_SET),
               ("--eager", ["--eager"])]
    procs, clients, samples = [], [], []
    try:
        for i, (name, extra) in enumerate(configs):
            procs.append(h.start_lmmsd("lmmsd-burst%d" % i, d, extra))
        for p in procs:
            clients.append(lmms.Client(str(p.sock), timeout=30))
            clients[-1].ping()
        t0 = time.monotonic()
        next_sample, k = 0.0, 0
        while True:
            now = time.monotonic() - t0
            if now >= total:
                break
            if now >= next_sample:
                samples.append((now, [proc_status(p.pid)["VmRSS"] for p in procs]))
                next_sample += 0.1
            if k < len(trace) and now >= trace[k][0]:
                for c in clients:
                    got = c.call(trace[k][1], PAYLOAD)
                    if got != PAYLOAD:
                        raise Failure("%s answered %r" % (trace[k][1], got))
                k += 1
                continue
            wake = min(next_sample, trace[k][0] if k < len(trace) else total)
            time.sleep(max(0.0, min(wake, total) - (time.monotonic() - t0)))
        samples.append((time.monotonic() - t0, [proc_status(p.pid)["VmRSS"] for p in procs]))
        end_stats = [c.stats() for c in clients]
    finally:
        for c in clients:
            c.close()
        for p in procs:
            h.stop(p)
    # MiB*s: trapezoids over the samples' real times
    area = [0.0] * len(configs)
    for (ta, ra), (tb, rb) in zip(samples, samples[1:]):
        for i in range(len(configs)):
            area[i] += (tb - ta) * (mib(ra[i]) + mib(rb[i])) / 2
    distinct = len({m for _, m in trace})
    modules_used = len({m.split(".")[0] for _, m in trace})
    png = h.out.parent / ("burst-rss%s.png" % ("-quick" if h.quick else ""))
    dat = png.with_suffix(".dat")
    with open(dat, "w") as f:
        f.write("# seconds, then VmRSS in MiB of: %s\n" % "; ".join(c[0] for c in configs))
        for t, rs in samples:
            f.write("%.3f %s\n" % (t, " ".join("%.3f" % mib(r) for r in rs)))
    plot(h, dat, png, [c[0] for c in configs], burst, total)
    eager = area[-1]
    rows = []
    for i, (name, extra) in enumerate(configs):
        st = end_stats[i]
        rows.append([name, " ".join(extra) or "(none)", "%.0f" % area[i],
                     "%+.0f%%" % (100 * (area[i] / eager - 1)) if i < len(configs) - 1 else "—",
                     "%.1f" % max(mib(rs[i]) for _, rs in samples),
                     "%.1f" % mib(samples[-1][1][i]),
                     "%d / %d" % (st["modules_resident"], st["ligs_loads"])])
    out = ["## The burst trace: memory over time", "",
           "%d calls at uniformly random times over the first %.0f s, each to one of the %d"
           " ops of %d synthetic modules drawn by a Zipf law (s = %.1f, ranks shuffled;"
           " `random.Random(%d)`): %d distinct ops of %d modules; then idle until %.0f s."
           " Three daemons run the same trace side by side (the same call goes to each in"
           " turn); VmRSS is sampled every 100 ms and integrated (trapezoids, MiB·s) from the"
           " trace's start. The ops are neither PURE nor BLOCKING, so no cache entry holds a"
           " module."
           % (BURST_CALLS, burst, len(methods), n, ZIPF_S, BURST_SEED, distinct, modules_used,
              total), "",
           "![RSS over the burst trace](%s) (samples: [%s](%s))" % (png.name, dat.name, dat.name),
           ""]
    out.append(table(["daemon", "--set", "MiB·s", "vs --eager", "peak MiB", "end MiB",
                      "resident at end / loads"], rows))
    out.append("")
    h.summary["burst"] = 100 * (area[0] / eager - 1)
    h.summary["burst never"] = 100 * (area[1] / eager - 1)
    return out


def plot(h, dat, png, names, burst, total):
    term = "pngcairo size 900,500" if gnuplot_has("pngcairo") else "png size 900,500"
    script = h.tmp / "burst.gp"
    script.write_text("\n".join([
        "set terminal %s" % term,
        "set output '%s'" % png,
        "set title 'lmmsd VmRSS over the burst trace (%d calls in %.0f s, then idle)'"
        % (BURST_CALLS, burst),
        "set xlabel 'seconds'",
        "set ylabel 'VmRSS, MiB'",
        "set xrange [0:%g]" % total,
        "set yrange [0:*]",
        "set key below",
        "set grid",
        # the middle line dashed, so where it runs under another it stays visible
        "plot " + ", ".join("'%s' using 1:%d with lines lw 2 dt %d title '%s'"
                            % (dat, i + 2, 2 if i == 1 else 1, n)
                            for i, n in enumerate(names)),
    ]) + "\n")
    h.record(["gnuplot", script])
    r = subprocess.run(["gnuplot", str(script)], text=True, stderr=subprocess.PIPE)
    if r.returncode != 0 or not png.exists():
        raise Failure("gnuplot failed: %s" % r.stderr)


def gnuplot_has(term):
    r = subprocess.run(["gnuplot", "-e", "set terminal"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    return any(line.split()[:1] == [term] for line in r.stdout.splitlines())


def scenario_bundled(h):
    log("bundled modules (rss_figures.py)")
    argv = [sys.executable, str(HERE / "rss_figures.py"), str(h.build)]
    h.record(argv)
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=300)
    if r.returncode != 0:
        raise Failure("rss_figures.py failed (%d): %s%s" % (r.returncode, r.stdout, r.stderr))
    return ["## The bundled modules: RSS, and what stays mapped (rss_figures.py)", "",
            "lmmsd on the build's own modules with `lugs.grace_period=300ms`,"
            " `lugs.sweep_interval=100ms`, `lugs.min_resident=0`, `cache.default_ttl=500ms`;"
            " one call of each module, then the sweep; the same with `--eager`. Why `hash`"
            " stays (libcrypto is `-z nodelete`):"
            " [README.md](README.md#the-bundled-modules-and-libcrypto).",
            "", "```", r.stdout.rstrip(), "```", ""]


def scenario_dispatch(h):
    log("bench-dispatch")
    argv = [str(h.build / "bench" / "bench-dispatch")] + (["-n", "5000", "-f", "3"]
                                                          if h.quick else [])
    h.record(argv)
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=600)
    if r.returncode != 0:
        raise Failure("bench-dispatch failed (%d): %s" % (r.returncode, r.stderr))
    return ["## In-process dispatch and single-call round trips (bench-dispatch)", "",
            "```", r.stdout.rstrip(), "```", ""]


SCENARIOS = {
    "throughput": scenario_throughput,
    "startup": scenario_startup,
    "memory": scenario_memory,
    "cold": scenario_cold,
    "burst": scenario_burst,
    "bundled": scenario_bundled,
    "dispatch": scenario_dispatch,
}


def targets_table(h):
    s = h.summary
    rows = []

    def add(figure, key, fmt, target, issue):
        if key not in s:
            return
        v = s[key]
        rows.append([figure, issue, fmt_mm(v, fmt) if isinstance(v, list) else fmt % v, target])

    for pl in ("unpinned", "one CPU"):
        add("hot `echo.ping`, 16 conns, vs the echo floor (%s)" % pl,
            ("16 conns vs echo", pl), "%.2f×", "≥ 0.9×", "0.76×")
        add("same, vs Redis GET (%s)" % pl, ("16 conns vs GET", pl), "%.2f×", "≥ 1.25×",
            "0.97×")
        add("`lmms.ping`, 16 conns, vs the echo floor (%s)" % pl,
            ("lmms.ping 16 vs echo", pl), "%.2f×", "—", "0.79×")
    add("depth-32 pipelined, one CPU, vs echo", ("d32 vs echo", "one CPU"), "%.2f×", "≥ 0.6×",
        "0.57×")
    add("depth-32 pipelined, one CPU, vs Redis GET", ("d32 vs GET", "one CPU"), "%.2f×",
        "≥ 1.5×", "0.98×")
    for pl in ("one CPU", "unpinned"):
        add("1 conn p50 vs echo (%s)" % pl, ("p50 vs echo", pl), "%.2f×", "≤ 1.1×", "1.15×")
    if "start vs mini" in s:
        rows.append(["exec → first reply vs mini-rpc (6 modules, lazy)", "1.48× (1.62 ms)",
                     fmt_mm(s["start vs mini"], "%.2f×") + " ("
                     + fmt_mm(s["start ms"], "%.2f ms") + ")", "≤ 1.15×"])
        delta, pct, n = s["start delta"]
        rows.append(["the same with %d installed modules instead of 6" % n, "+0.87 ms",
                     fmt_mm(delta, "%+.2f ms") + " (" + fmt_mm(pct, "%+.0f%%") + ")",
                     "flat (≤ +5%)"])
    add("idle RSS (6 modules), MiB", "idle rss", "%.2f", "≤ 2 MiB", "3.2 MiB")
    add("RSS after the sweep vs idle (60 modules)", "swept/idle 60", "%.2f×", "≤ 1.10×",
        "1.11–1.14×")
    if "burst" in s:
        rows.append(["burst trace, MiB·s vs `--eager`, default settings", "−79%",
                     "%+.0f%%" % s["burst"], "≤ −82%"])
        rows.append(["(same, lazy never unloading)", "", "%+.0f%%" % s["burst never"], ""])
    return table(["figure", "issue 9 said", "this run", "target"], rows)


def cpu_table(h):
    """The same comparisons in CPU time, which a busy machine hardly moves:
    lower is better for lmmsd here."""
    s = h.summary
    rows = []
    for pl in ("unpinned", "one CPU"):
        for mode in ("16 conns", "1 conn, depth 32"):
            for floor in ("echo floor", "mini-rpc", "redis GET"):
                k = ("cpu", pl, mode, floor)
                if k in s:
                    rows.append(["server CPU per reply, %s, %s: lmmsd `echo.ping` / %s"
                                 % (mode, pl, floor), fmt_mm(s[k], "%.2f×")])
    if ("cpu us", "one CPU") in s:
        rows.append(["server CPU per reply, depth 32, one CPU: lmmsd `echo.ping`, mini-rpc"
                     " (issue 9: 0.47 µs, 0.33 µs)",
                     fmt_mm(s[("cpu us", "one CPU")], "%.2f µs") + ", "
                     + fmt_mm(s[("cpu us mini", "one CPU")], "%.2f µs")])
    if "start cpu vs mini" in s:
        rows.append(["CPU by the first reply, lmmsd (6 modules, lazy) / mini-rpc",
                     fmt_mm(s["start cpu vs mini"], "%.2f×") + " ("
                     + fmt_mm(s["start cpu ms"], "%.2f ms") + ")"])
        delta, pct, n = s["start cpu delta"]
        rows.append(["CPU by the first reply, %d modules − 6 modules (lazy)" % n,
                     fmt_mm(delta, "%+.2f ms") + " (" + fmt_mm(pct, "%+.0f%%") + ")"])
    return table(["figure, in CPU time (lower is better for lmmsd)", "this run"], rows)


def machine(h):
    def sh(*argv):
        try:
            return subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, timeout=30).stdout.strip()
        except OSError:
            return "?"
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = f.readline().split()[1]
    opts = {o["name"]: o["value"] for o in
            json.loads((h.build / "meson-info" / "intro-buildoptions.json").read_text())}
    rev = sh("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
    # what this harness writes does not make the tree dirty
    if sh("git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--", ".",
          ":!bench/RESULTS.md", ":!bench/burst-rss.*"):
        rev += " (with uncommitted changes)"
    return [
        "- date: %s" % time.strftime("%Y-%m-%d %H:%M %Z"),
        "- git: %s" % rev,
        "- machine: %s, %d CPUs, %.1f GiB RAM, Linux %s, %s"
        % (cpu, os.cpu_count() or 0, int(mem) / 1048576, platform.release(),
           sh("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME")),
        "- build: %s, buildtype %s, b_sanitize %s, %s"
        % (h.build.name, opts.get("buildtype"), opts.get("b_sanitize"),
           sh("cc", "--version").splitlines()[0]),
        "- %s; %s; libuv %s; msgpack-c %s"
        % (sh(str(h.lmmsd), "--version"), sh("redis-server", "--version"),
           sh("pkg-config", "--modversion", "libuv"),
           sh("sh", "-c", "pkg-config --modversion msgpack-c 2>/dev/null"
              " || pkg-config --modversion msgpack")),
        "- load average at the start: %s" % " ".join(open("/proc/loadavg").read().split()[:3]),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build", type=Path)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--only", help="comma-separated scenarios: " + ",".join(SCENARIOS))
    ap.add_argument("--reps", type=int, help="repetitions (default 5; 1 with --quick)")
    ap.add_argument("--sanitize", default=None,
                    help="the build's b_sanitize (meson passes it); quick mode skips if set")
    a = ap.parse_args()
    build = a.build.resolve()
    if a.sanitize is None:
        try:
            opts = json.loads((build / "meson-info" / "intro-buildoptions.json").read_text())
            a.sanitize = next(o["value"] for o in opts if o["name"] == "b_sanitize")
        except (OSError, StopIteration, ValueError):
            a.sanitize = "none"
    if a.sanitize not in ("", "none"):
        print("bench: %s is a sanitized build (b_sanitize=%s): its figures mean nothing, skipped"
              % (build, a.sanitize))
        return 77 if a.quick else 2
    out = (a.out or (build / "bench-quick" / "RESULTS.md" if a.quick
                     else HERE / "RESULTS.md")).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    only = a.only.split(",") if a.only else list(SCENARIOS)
    for s in only:
        if s not in SCENARIOS:
            ap.error("no scenario %s" % s)
    for prog in ("redis-server", "gnuplot", "taskset", "cc", "size"):
        if subprocess.run(["sh", "-c", "command -v " + prog], stdout=subprocess.DEVNULL).returncode:
            print("bench: %s is not installed (bash .ci/deps installs it)" % prog)
            return 1

    # SIGTERM, and SIGINT even where a shell started us with it ignored, end
    # the run through its finally blocks, which stop every server it started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    h = Harness(build, a.quick, out)
    if a.reps:
        if not 1 <= a.reps <= 100:
            ap.error("--reps: 1..100")
        h.reps = a.reps
    t_start = time.monotonic()
    sections = []
    try:
        env = machine(h)
        for s in only:
            sections += SCENARIOS[s](h)
        sizes = h.set_sizes() if h.sets else []
    except Failure as e:
        print("bench: FAILED: %s" % e)
        return 1
    finally:
        h.cleanup()
    took = time.monotonic() - t_start
    env.append("- load average at the end: %s" % " ".join(open("/proc/loadavg").read().split()[:3]))

    cmd = "/usr/bin/python3 bench/run.py %s%s%s%s" % (
        os.path.relpath(build, ROOT) if build.is_relative_to(ROOT) else build,
        " --quick" if a.quick else "", " --only " + a.only if a.only else "",
        " --reps %d" % a.reps if a.reps else "")
    doc = ["# Benchmark results%s" % (" (quick mode: a smoke run, not figures)" if a.quick
                                       else ""), "",
           "Written by `%s` in %.0f s. How to read and reproduce it: [README.md](README.md)."
           % (cmd, took), ""] + env + [""]
    if sizes:
        doc += ["Synthetic modules (bench/synmods.py): code + rodata of the %d weight variants"
                " %s KiB; init allocates and touches 1 MiB; every third links libz." %
                (len(sizes), ", ".join("%.0f" % x for x in sizes)), ""]
    doc += ["## Issue 9's targets", "", targets_table(h), "",
            "The same comparisons in CPU time: the time the server ran (all its threads,"
            " from schedstat) per reply, or until its first reply. A busy machine stretches"
            " wall-clock figures but hardly moves these, so they are the ones to compare"
            " across runs:", "", cpu_table(h), ""]
    doc += sections
    doc += ["## Commands", "",
            "Every distinct command the run executed. `$TMP` is its temporary directory;"
            " `$CONNS $DEPTH` are the modes of the throughput tables (1 1, 16 1, 256 1, 1 32),"
            " `$SECONDS $WARMUP` their durations, `$REQUESTS` the counts the cold-call"
            " section gives.", "", "```"] + h.commands + ["```", ""]
    out.write_text("\n".join(doc))
    print("bench: %s written in %.0f s" % (out, took))
    return 0


if __name__ == "__main__":
    sys.exit(main())
