"""Hostile clients (issue 11): no user can starve, stall or exhaust the daemon
for others. Each attack runs as another uid (nobody, via setpriv) against a
real lmmsd, bounded in time, while root is the victim whose service is
measured. Run by meson as the `hostile` test.
"""

import json
import os
import signal
import socket
import subprocess
import time

import msgpack
import pytest

import lmms
from conftest import under_asan, wait_for
from test_access import NOBODY, as_other, shared_daemon  # noqa: F401 (fixture)

DEADLINE = 10.0

# An attacker run as nobody: argv[1] socket, argv[2] JSON settings. It opens
# `conns` connections, pipelines `calls` requests [method, *params] on each
# without reading, then either closes at once ("close") or keeps the
# connections open until killed ("hold"). Every send is bounded by a deadline.
ATTACKER = r"""
import json, os, socket, sys, time, msgpack
path, cfg = sys.argv[1], json.loads(sys.argv[2])
socks = []
deadline = time.monotonic() + cfg.get("seconds", 10)
params = [os.urandom(cfg["blob"]), cfg["level"]] if "blob" in cfg else cfg["params"]
for k in range(cfg["conns"]):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.setblocking(False)
    socks.append(s)
    data = b"".join(msgpack.packb([0, i, cfg["method"], params], use_bin_type=True)
                    for i in range(cfg["calls"]))
    while data and time.monotonic() < deadline:
        try:
            n = s.send(data)
            data = data[n:]
        except BlockingIOError:
            time.sleep(0.005)
print("sent", flush=True)
if cfg["mode"] == "close":
    for s in socks:
        s.close()
elif cfg["mode"] == "read":  # drain replies: only the queued work piles up
    while time.monotonic() < deadline:
        for s in socks:
            try:
                s.recv(1 << 20)
            except BlockingIOError:
                pass
        time.sleep(0.01)
else:
    while time.monotonic() < deadline:
        time.sleep(0.05)
"""


def attack(sock, **cfg):
    """Start an attacker as nobody; returns the Popen once it has sent."""
    cmd = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
           "/usr/bin/python3", "-B", "-c", ATTACKER, sock, json.dumps(cfg)]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd="/")
    line = p.stdout.readline()
    assert line.strip() == "sent", "attacker failed: %s" % p.stderr.read()
    return p


def stop_attacker(p):
    if p.poll() is None:
        os.kill(p.pid, signal.SIGKILL)
    p.wait(10)


def op_calls(c, method):
    for o in c.ops():
        if o["method"] == method:
            return o["calls"]
    return 0


def timed_call(c, method, *params):
    t0 = time.monotonic()
    r = c.call(method, *params)
    return r, time.monotonic() - t0


# ---- 1. the thread pool: fair per uid, cancelled with its connection ----


def test_work_of_a_closed_connection_never_runs(shared_daemon):
    """16 sleeps of 2 s queued by one uid on a connection it closes at once:
    only the ones already running finish, and another uid's BLOCKING call
    waits at most one running call of the attacker's (not 16 x 2 s / 2)."""
    d = shared_daemon("--set", "server.workers=2")
    p = attack(d.socket, conns=1, calls=16, method="echo.sleep", params=[2000], mode="close")
    try:
        time.sleep(0.3)  # the attacker's first two calls run now
        with d.client(timeout=30) as c:
            r, took = timed_call(c, "echo.sleep", 10)
            assert r == 10
            assert took < 2.0 + 1.5, "victim waited %.1fs" % took
            time.sleep(2.5)  # long after every started call finished
            # two of the attacker's ran, and the victim's: nothing else, ever
            assert op_calls(c, "echo.sleep") <= 3, c.ops()
    finally:
        stop_attacker(p)


@pytest.mark.parametrize("workers", [1, 2])
def test_other_uid_waits_one_running_call_at_most(shared_daemon, workers):
    """An attacker keeps 16 sleeps of 1.5 s queued on an open connection; the
    victim's 10 ms call waits for one running call at most."""
    d = shared_daemon("--set", "server.workers=%d" % workers)
    p = attack(d.socket, conns=1, calls=16, method="echo.sleep", params=[1500], mode="hold",
               seconds=20)
    try:
        time.sleep(0.3)
        with d.client(timeout=30) as c:
            for _ in range(2):
                r, took = timed_call(c, "echo.sleep", 10)
                assert r == 10
                assert took < 1.5 + 1.0, "victim waited %.1fs" % took
            # the attacker is still far from done: fairness, not an idle pool
            assert op_calls(c, "echo.sleep") < 2 + 16
    finally:
        stop_attacker(p)


def test_calls_per_uid_are_capped(shared_daemon):
    d = shared_daemon("--set", "server.max_calls_per_uid=3", "--set", "server.workers=1")
    res = as_other(d.socket, [["echo.sleep", 1]] * 2)  # sequential: never over the cap
    assert all(r == {"ok": 1} for r in res)
    # pipelined from one connection: 3 are taken, the rest answered busy
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(DEADLINE)
    s.connect(d.socket)
    s.sendall(b"".join(msgpack.packb([0, i, "echo.sleep", [200]]) for i in range(6)))
    u = msgpack.Unpacker(raw=False)
    got = {}
    while len(got) < 6:
        u.feed(s.recv(65536))
        for m in u:
            got[m[1]] = m[2]
    s.close()
    busy = [e for e in got.values() if e is not None]
    assert len(busy) == 3, got
    assert all(e[0] == "busy" and "max_calls_per_uid" in e[1] for e in busy), busy


# ---- 2. memory of queued work, 3. non-reading clients ----


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_queued_params_are_bounded_per_uid(shared_daemon):
    """8 connections x 16 slow BLOCKING requests of 512 KiB each (64 MiB
    sent, compressed at level 19, one worker): the daemon holds at most the
    uid's budget plus one call, and per connection one input buffer
    (max_message_bytes + 64 KiB), whatever the attacker sends."""
    budget_mib, conns = 4, 8
    d = shared_daemon("--set", "server.workers=1",
                      "--set", "server.max_queued_bytes_per_uid=%dMiB" % budget_mib)
    if under_asan(d.pid):
        pytest.skip("RSS means nothing under ASan (quarantine)")
    with d.client() as c:  # the op's own working memory is not the queue's
        c.call("zstd.compress", os.urandom(512 * 1024), 19)
    before = rss_kib(d.pid)
    p = attack(d.socket, conns=conns, calls=16, method="zstd.compress", blob=512 * 1024,
               level=19, mode="read", seconds=8)
    try:
        peak = before
        end = time.monotonic() + 2.5
        while time.monotonic() < end:  # the peak, not one sample
            peak = max(peak, rss_kib(d.pid))
            time.sleep(0.02)
        grown_mib = (peak - before) / 1024
        print("RSS grew %.1f MiB at most under the attack" % grown_mib)
        # budget + one call + per connection (1 MiB + 64 KiB of input) + slack
        bound = budget_mib + 0.5 + conns * 1.0625 + 4
        assert grown_mib < bound, "RSS grew %.1f MiB (bound %.1f)" % (grown_mib, bound)
        assert "reached server.max_queued_bytes_per_uid" in d.log()
        with d.client() as c:  # the victim is served meanwhile
            assert c.ping() == "pong"
    finally:
        stop_attacker(p)


def test_a_client_that_stops_reading_is_dropped(lmmsd_factory):
    d = lmmsd_factory("--set", "server.write_timeout=500ms",
                      "--set", "server.max_output_bytes=64KiB")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(d.socket)
    s.setblocking(False)
    data = b"".join(msgpack.packb([0, i, "echo.ping", ["x" * 60000]]) for i in range(40))
    end = time.monotonic() + 2
    while data and time.monotonic() < end:  # it stops reading us, then drops us
        try:
            data = data[s.send(data):]
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            break
    wait_for(lambda: "output made no progress for" in d.log(), "the drop", timeout=DEADLINE)
    with d.client() as c:
        assert c.stats()["connections"] == 1  # only this one
    s.close()


# ---- 4. slowloris with a call in flight ----


def test_message_deadline_applies_with_a_call_in_flight(lmmsd_factory):
    d = lmmsd_factory("--set", "server.message_timeout=500ms")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(d.socket)
    s.sendall(msgpack.packb([0, 1, "echo.sleep", [5000]]))
    s.sendall(msgpack.packb([0, 2, "echo.ping", ["drip"]])[:5])  # half a message
    t0 = time.monotonic()
    wait_for(lambda: "message incomplete after" in d.log(), "the slowloris cut", timeout=DEADLINE)
    assert time.monotonic() - t0 < 3.0
    s.close()


# ---- 5. shutdown with a hung call ----


def test_stop_with_a_hung_call_keeps_its_deadline(lmmsd_factory):
    d = lmmsd_factory("--set", "server.call_timeout=1s")
    with d.client() as c:
        c.request("echo.sleep", 60000)
        wait_for(lambda: op_refs(d, "echo") == 1, "the call to run")
        t0 = time.monotonic()
        assert d.stop() == 0
        assert time.monotonic() - t0 < 4.0
    assert "abandoned" in d.log()


def test_second_signal_stops_at_once(lmmsd_factory):
    d = lmmsd_factory()
    with d.client() as c:
        c.request("echo.sleep", 60000)
        wait_for(lambda: op_refs(d, "echo") == 1, "the call to run")
        os.kill(d.pid, signal.SIGTERM)
        time.sleep(0.3)
        assert d.proc.poll() is None  # waiting for the call (30 s)
        t0 = time.monotonic()
        os.kill(d.pid, signal.SIGTERM)
        d.proc.wait(5)
        assert time.monotonic() - t0 < 3.0
        assert d.proc.returncode == 0
    assert "second signal" in d.log()


def op_refs(d, module):
    with d.client() as c:
        for m in c.modules():
            if m["name"] == module:
                return m["refs"]
    return 0


# ---- 6. accept storm ----


STORM = r"""
import socket, sys, time
path = sys.argv[1]
held, end = [], time.monotonic() + float(sys.argv[2])
n = 0
while time.monotonic() < end:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect(path)
        n += 1
    except (BlockingIOError, OSError):
        pass
    held.append(s)
    if len(held) > 500:
        for x in held[:250]:
            x.close()
        del held[:250]
print(n)
"""


def test_one_uids_accept_storm_does_not_lock_out_others(shared_daemon):
    """The guarantee: connections over a cap are accepted and closed at once
    and the accept loop drains the queue on every wake-up, so a storm of one
    uid fills the backlog only between two loop iterations; another uid's
    connects keep getting through."""
    d = shared_daemon("--set", "server.max_connections_per_uid=8")
    cmd = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
           "/usr/bin/python3", "-B", "-c", STORM, d.socket, "3"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
    try:
        time.sleep(0.3)
        ok, refused = 0, 0
        for _ in range(20):
            # A connect refused (EAGAIN) while the backlog is momentarily
            # full gets in on a retry a few milliseconds later: the daemon
            # drains the whole queue on every wake-up.
            for attempt in range(40):  # 40 x 5 ms: the queue drains long before
                try:
                    with lmms.Client(d.socket, timeout=5) as c:
                        ok += c.ping() == "pong"
                    break
                except OSError:
                    refused += 1
                    time.sleep(0.005)
            time.sleep(0.05)
        assert ok == 20, "root got through %d of 20 times (%d refusals)" % (ok, refused)
    finally:
        out, err = p.communicate(timeout=15)
    assert int(out.strip() or 0) > 100, "the storm was no storm: %s %s" % (out, err)


def test_backlog_matches_the_socket_unit():
    unit = open(os.path.join(os.environ.get("LMMS_SOURCE_ROOT", "."), "systemd",
                             "lmmsd.socket")).read()
    exe = os.path.join(os.environ["LMMS_BUILD_ROOT"], "daemon", "lmmsd")
    cfg = subprocess.run([exe, "--check-config"], capture_output=True, text=True,
                         timeout=10).stdout
    assert "Backlog=256" in unit and "backlog = 256" in cfg


# ---- 7. the cache is not an oracle ----


def test_cache_is_per_uid(shared_daemon):
    d = shared_daemon()
    with d.client() as c:
        assert c.call("echo.upper", "hunter2") == "HUNTER2"
        hits = c.stats()["cache_hits"]
        assert c.call("echo.upper", "hunter2") == "HUNTER2"
        assert c.stats()["cache_hits"] == hits + 1  # root's own repeat hits
    res = as_other(d.socket, [["lmms.stats"], ["echo.upper", "hunter2"], ["lmms.stats"]])
    assert res[1] == {"ok": "HUNTER2"}
    # nobody's identical call was computed, not answered from root's entry
    assert res[2]["ok"]["cache_hits"] == res[0]["ok"]["cache_hits"]
    assert res[2]["ok"]["cache_misses"] == res[0]["ok"]["cache_misses"] + 1


def test_cache_scope_shared_is_opt_in(shared_daemon):
    d = shared_daemon("--set", "cache.scope=shared")
    with d.client() as c:
        c.call("echo.upper", "x")
    res = as_other(d.socket, [["lmms.stats"], ["echo.upper", "x"], ["lmms.stats"]])
    assert res[2]["ok"]["cache_hits"] == res[0]["ok"]["cache_hits"] + 1


# ---- 8. edge bugs ----


def test_invalidate_of_an_empty_name(lmmsd_factory):
    d = lmmsd_factory()
    with d.client() as c:
        with pytest.raises(lmms.LmmsError) as e:
            c.call("lmms.invalidate", "")
        assert e.value.code == "no_such_module"
        assert c.ping() == "pong"


@pytest.fixture
def lmmsd_factory(daemon):
    return daemon


# ---- all at once: the measured targets ----

SIEGE = r"""
import json, os, socket, sys, time, msgpack
path, seconds = sys.argv[1], float(sys.argv[2])
end = time.monotonic() + seconds
socks = []
def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.setblocking(False)
    socks.append(s)
    return s
def push(s, data):
    while data and time.monotonic() < end:
        try:
            data = data[s.send(data):]
        except BlockingIOError:
            time.sleep(0.002)
idle = [conn() for _ in range(250)]                      # 250 idle connections
q = conn()                                               # queued BLOCKING work
push(q, b"".join(msgpack.packb([0, i, "echo.sleep", [1500]]) for i in range(40)))
nr = conn()                                              # never reads its replies
nr.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
push(nr, b"".join(msgpack.packb([0, i, "echo.ping", ["x" * 50000]]) for i in range(60)))
drip = conn()                                            # a message one byte at a time
msg = msgpack.packb([0, 1, "echo.ping", ["d" * 4000]])
print("sent", flush=True)
i = 0
while time.monotonic() < end and i < len(msg):
    try:
        drip.send(msg[i:i + 1])
        i += 1
    except OSError:
        break
    time.sleep(0.01)
while time.monotonic() < end:
    time.sleep(0.05)
"""


def test_another_uid_is_served_during_a_siege(shared_daemon):
    """One uid attacks with 253 connections, queued BLOCKING work, a client
    that never reads and a drip, all at once; another uid is served the whole
    time (its ping latency is printed) and its BLOCKING call waits for at
    most one running call of the attacker's."""
    d = shared_daemon("--set", "server.max_connections_per_uid=300",
                      "--set", "server.max_connections=600", "--set", "server.workers=2")
    cmd = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
           "/usr/bin/python3", "-B", "-c", SIEGE, d.socket, "12"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
    try:
        assert p.stdout.readline().strip() == "sent", p.stderr.read()
        time.sleep(0.3)
        lat = []
        with d.client(timeout=30) as c:
            end = time.monotonic() + 3
            while time.monotonic() < end:
                t0 = time.monotonic()
                assert c.ping() == "pong"
                lat.append(time.monotonic() - t0)
                time.sleep(0.005)
            r, took = timed_call(c, "echo.sleep", 10)
            assert r == 10
            assert took < 1.5 + 1.0, "the victim's BLOCKING call waited %.1fs" % took
            assert c.stats()["connections"] >= 250
        lat.sort()
        p99 = lat[int(len(lat) * 0.99)] * 1000
        print("victim: %d pings, p50 %.2f ms, p99 %.2f ms, BLOCKING call %.0f ms"
              % (len(lat), lat[len(lat) // 2] * 1000, p99, took * 1000))
        # a stall detector: the 10 ms is the figure printed above,
        # measured, not asserted on a CI host running two suites at once
        assert p99 < (200.0 if under_asan(d.pid) else 100.0), "ping p99 %.1f ms" % p99
    finally:
        stop_attacker(p)
