"""Integration tests of lmmsd itself (issue 2): LIGS lazy loading seen in
/proc/PID/maps, the wire protocol's error handling and limits, concurrency
(BLOCKING ops, out-of-order replies, backpressure), notifications, signals,
the socket file and failing modules.

Every test starts its own daemon on a temporary socket (conftest.daemon), or,
where the socket path itself is under test, spawns lmmsd directly and stops
it by pid. Timing is asserted by order, never by tight durations.
"""

import hashlib
import os
import select
import signal
import stat
import subprocess
import threading
import time

import msgpack
import pytest

from conftest import (START_TIMEOUT, STOP_TIMEOUT, build_root, make_module_dir, mapped_objects,
                      mod, op, sanitizer_report, shared_libs, stop_process, under_asan,
                      wait_for)
import lmms

SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
MIB = 1024 * 1024


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def is_mapped(pid, needle):
    return any(needle in os.path.basename(p) for p in mapped_objects(pid))


def read_until_closed(client, timeout=5.0):
    """Every message the daemon sends until it closes the connection.
    Fails if it is still open after timeout."""
    msgs = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("connection still open after %.1fs (got %r)"
                                 % (timeout, msgs))
        try:
            msgs.append(client.recv_message(timeout=left))
        except ConnectionError:
            return msgs
        except TimeoutError:
            raise AssertionError("connection still open after %.1fs (got %r)"
                                 % (timeout, msgs)) from None


def error_code(client, method, *params):
    with pytest.raises(lmms.LmmsError) as ei:
        client.call(method, *params)
    return ei.value.code, ei.value.message


@pytest.fixture(autouse=True)
def no_sanitizer_reports(request):
    """Daemons started by the conftest fixture are checked there; the ones
    this file spawns directly (socket-path tests) are checked here."""
    yield
    for p in getattr(request.node, "_lmms_spawned", ()):
        log = p.log()
        assert not sanitizer_report(log), \
            "sanitizer report in lmmsd pid %d log:\n%s" % (p.pid, log)


class Spawned:
    """lmmsd started directly, for tests of the socket path itself."""

    def __init__(self, tmp_path, sock, *args):
        self.log_path = tmp_path / ("lmmsd-%d.log" % time.monotonic_ns())
        self.socket = str(sock)
        argv = [str(build_root() / "daemon" / "lmmsd"), "--socket", self.socket,
                "--module-dir", str(build_root() / "modules"), *args]
        env = dict(os.environ)
        env.pop("LMMS_SOCKET", None)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, env=env)
        self.pid = self.proc.pid

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("lmmsd exited with %d:\n%s"
                                     % (self.proc.returncode, self.log()))
            try:
                with lmms.Client(self.socket, timeout=2) as c:
                    return c.ping() == "pong"
            except OSError:
                return False
        wait_for(ready, "lmmsd on %s" % self.socket, timeout=START_TIMEOUT)

    def stop(self, sig=signal.SIGTERM):
        return stop_process(self.proc, sig)


@pytest.fixture
def spawn(request, tmp_path):
    procs = []
    request.node._lmms_spawned = procs

    def start(sock, *args):
        p = Spawned(tmp_path, sock, *args)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.stop()


# ---- LIGS: nothing mapped until first use ----

def test_lazy_load_maps_module_on_first_call(daemon):
    d = daemon()
    assert "ready" in d.log()
    bundled = [p.name for p in (build_root() / "modules").glob("*.so")]
    assert "hash.so" in bundled and "echo.so" in bundled
    maps = mapped_objects(d.pid)
    for so in bundled:
        assert not any(os.path.basename(p) == so for p in maps), "%s mapped at start" % so
    # The library hash wraps (and whatever it pulls in) is hash's alone:
    # nothing of it may be mapped before the first hash call.
    hash_libs = shared_libs(build_root() / "modules" / "hash.so") - \
        shared_libs(build_root() / "daemon" / "lmmsd")
    assert hash_libs, "hash.so links no library of its own"
    for lib in hash_libs:
        assert not is_mapped(d.pid, lib), "%s mapped before any hash call" % lib

    with d.client() as c:
        assert mod(c, "hash")["state"] == "unloaded"
        assert c.call("hash.sha256", "abc") == SHA256_ABC
        assert is_mapped(d.pid, "hash.so")
        for lib in hash_libs:
            assert is_mapped(d.pid, lib), "%s not mapped after a hash call" % lib
        h = mod(c, "hash")
        # With -Dhash_backend=openssl, libcrypto.so.3 is linked -z nodelete:
        # the daemon must see that at load and say hash is pinned by it.
        if any(lib.startswith("libcrypto") for lib in hash_libs):
            assert h["state"] == "pinned", h
            assert h["pinned_by"].startswith("libcrypto"), h
        else:
            assert h["state"] == "loaded", h
        assert h["loads"] == 1
        assert h["resident_bytes"] > 0
        maps = mapped_objects(d.pid)
        for so in bundled:
            if so != "hash.so":
                assert not any(os.path.basename(p) == so for p in maps), \
                    "%s mapped though never called" % so
                assert mod(c, so[:-3])["state"] == "unloaded"


def test_eager_maps_everything_at_start(daemon):
    d = daemon("--eager")
    maps = {os.path.basename(p) for p in mapped_objects(d.pid)}
    with d.client() as c:
        # isolated modules (http, image, text ask for it) load in their own
        # worker, started at once; the rest are mapped here before READY
        wait_for(lambda: all(m["state"] in ("loaded", "pinned") for m in c.modules()),
                 "every module loaded")
        isolated = {m["name"] for m in c.modules() if m["isolation"] == "process"}
        assert all(m["pid"] > 0 for m in c.modules() if m["name"] in isolated)
    for so in (build_root() / "modules").glob("*.so"):
        if so.stem not in isolated:
            assert so.name in maps, "%s not mapped with --eager" % so.name


def test_sha256_known_digest(lmmsd):
    with lmmsd.client() as c:
        assert c.call("hash.sha256", "abc") == SHA256_ABC
        assert c.call("hash.sha256", b"abc") == SHA256_ABC


# ---- well-formed but bad requests: error reply, connection stays ----

def test_unknown_module_and_method(lmmsd):
    with lmmsd.client() as c:
        assert error_code(c, "nosuchmod.op")[0] == "no_such_module"
        assert c.ping() == "pong"
        assert error_code(c, "hash.nosuchop")[0] == "no_such_method"
        assert c.ping() == "pong"
        assert error_code(c, "lmms.nosuchop")[0] == "no_such_method"
        assert c.ping() == "pong"


def test_bad_params(lmmsd):
    with lmmsd.client() as c:
        assert error_code(c, "hash.sha256", 42)[0] == "bad_params"
        assert error_code(c, "hash.sha256")[0] == "bad_params"
        assert error_code(c, "echo.sleep", "long")[0] == "bad_params"
        assert c.call("hash.sha256", "abc") == SHA256_ABC


@pytest.mark.parametrize("method", ["a/b.c", "../x.y", "x..y", "noDot", "hash\0x.sha256",
                                    "hash.sha\0256", ".x", "x.", ""])
def test_invalid_method_names(lmmsd, method):
    with lmmsd.client() as c:
        code, _ = error_code(c, method, "abc")
        assert code in ("bad_request", "no_such_module", "no_such_method")
        assert c.ping() == "pong"
    assert not any("/.." in p or "a/b" in p for p in mapped_objects(lmmsd.pid))


def test_method_as_bin_is_accepted(lmmsd):
    with lmmsd.client() as c:
        c.send_raw(pack([0, 5, b"hash.sha256", ["abc"]]))
        assert c.recv_message() == [1, 5, None, SHA256_ABC]


# ---- malformed messages: error (when msgid known), close; others unaffected ----

def assert_closed_with(client, msgid=None, code=None):
    msgs = read_until_closed(client)
    for m in msgs:
        assert m[0] == 1 and m[3] is None, "unexpected message %r" % (m,)
        assert m[2] is not None, "malformed input got a success reply %r" % (m,)
    if msgid is not None:
        assert len(msgs) == 1 and msgs[0][1] == msgid, msgs
        if code is not None:
            assert msgs[0][2][0] == code, msgs
    return msgs


@pytest.mark.parametrize("raw", [
    b"\xc1",                                  # never-used msgpack byte
    pack({"a": 1}),                           # map at top level
    pack([0, 1]),                             # array of 2
    pack("hello"),                            # str at top level
    pack([7, 1, "lmms.ping", []]),            # unknown message type
    pack([0, 1, "lmms.ping", "notarray"]),   # params not an array
    pack([0, -1, "lmms.ping", []]),           # msgid not uint32
], ids=["c1", "map", "array2", "str", "type7", "params", "msgid"])
def test_malformed_closes_only_that_connection(lmmsd, raw):
    with lmmsd.client() as bystander, lmmsd.client() as bad:
        assert bystander.ping() == "pong"
        bad.send_raw(raw)
        assert_closed_with(bad)
        assert bystander.ping() == "pong"
        assert bystander.call("hash.sha256", "abc") == SHA256_ABC


def test_over_limit_message(daemon):
    d = daemon("--set", "server.max_message_bytes=4KiB")
    with d.client() as bystander:
        assert bystander.ping() == "pong"
        with d.client() as c:   # under the limit: served
            assert c.call("echo.ping", "x" * 1000) == ["x" * 1000]
        with d.client() as c:   # msgid readable before the limit: too_large + close
            c.send_raw(pack([0, 77, "echo.ping", ["x" * 8000]]))
            assert_closed_with(c, msgid=77, code="too_large")
        with d.client() as c:   # no msgid to answer: just closed
            c.send_raw(pack("y" * 8000))
            assert_closed_with(c)
        assert bystander.ping() == "pong"


def test_deep_nesting_rejected(lmmsd):
    params = []
    for _ in range(40):
        params = [params]
    with lmmsd.client() as bystander, lmmsd.client() as c:
        c.send_raw(pack([0, 9, "echo.ping", params]))
        msgs = read_until_closed(c)
        assert len(msgs) == 1 and msgs[0][1] == 9 and msgs[0][2] is not None, msgs
        assert bystander.ping() == "pong"


def test_huge_array_header_rejected_at_once(lmmsd):
    with lmmsd.client() as c:
        base_rss = c.stats()["rss_bytes"]
    with lmmsd.client() as bystander, lmmsd.client() as c:
        t0 = time.monotonic()
        c.send_raw(b"\xdd\xff\xff\xff\xff")   # array32 of 4294967295 elements
        # The default message timeout is 10 s: closing well before it means
        # the header itself was refused, not the incomplete message.
        read_until_closed(c, timeout=5.0)
        assert time.monotonic() - t0 < 5.0
        st = bystander.stats()
        assert st["rss_bytes"] < base_rss + 16 * MIB, (base_rss, st["rss_bytes"])
        assert bystander.ping() == "pong"


def test_huge_array_in_params_rejected(lmmsd):
    with lmmsd.client() as bystander, lmmsd.client() as c:
        c.send_raw(b"\x94\x00\x03\xa9echo.ping\xdd\xff\xff\xff\xff")
        msgs = read_until_closed(c, timeout=5.0)
        assert all(m[1] == 3 and m[2] is not None for m in msgs), msgs
        assert bystander.ping() == "pong"


# ---- concurrency ----

def test_blocking_op_does_not_stall_others(lmmsd):
    with lmmsd.client() as a, lmmsd.client() as b:
        assert b.call("echo.ping") == []          # load echo first
        sleep_id = a.request("echo.sleep", 1500)
        wait_for(lambda: mod(b, "echo")["refs"] == 1, "echo.sleep in flight")
        for i in range(20):
            assert b.call("echo.ping", i) == [i]
        # All 20 answers came back; A's must still be pending.
        r, _, _ = select.select([a._sock], [], [], 0)
        assert not r, "echo.sleep answered before 20 pings on another connection"
        assert a.wait(sleep_id) == 1500


def test_out_of_order_responses(lmmsd):
    with lmmsd.client() as c:
        c.send_raw(pack([0, 100, "echo.sleep", [300]]) + pack([0, 101, "echo.ping", ["p"]]))
        first = c.recv_message()
        second = c.recv_message()
        assert first == [1, 101, None, ["p"]]
        assert second == [1, 100, None, 300]


def test_large_params_move_an_inline_op_to_the_pool(lmmsd):
    # lmms_op.blocking_above: small inputs inline, large ones on the pool
    big = "x" * 10000
    blob = os.urandom(512 * 1024)  # under the 1 MiB message limit
    with lmmsd.client() as c:
        assert c.call("echo.upper", "abc") == "ABC"
        o = op(c, "echo.upper")
        assert o["blocking_above"] == 4096 and not o["blocking"], o
        assert o["pool_calls"] == 0, o
        assert c.call("echo.upper", big) == big.upper()
        assert op(c, "echo.upper")["pool_calls"] == 1
        assert c.call("hash.sha256", blob) == hashlib.sha256(blob).hexdigest()
        assert op(c, "hash.sha256")["pool_calls"] == 1
        assert c.call("hash.sha256", "abc") == SHA256_ABC
        assert op(c, "hash.sha256")["pool_calls"] == 1


def test_call_timeout_answers_and_drops_the_late_result(daemon):
    d = daemon("--set", "server.call_timeout=300ms")
    with d.client() as c, d.client() as watcher:
        c.send_raw(pack([0, 7, "echo.sleep", [2000]]))
        t0 = time.monotonic()
        m = c.recv_message(timeout=10)
        waited = time.monotonic() - t0
        assert m[0:2] == [1, 7] and m[2][0] == "timeout", m
        assert "echo.sleep" in m[2][1], m
        assert waited < 1.9, "timeout came only after the op finished (%.2fs)" % waited
        # the op runs on: it still holds its module
        assert mod(watcher, "echo")["refs"] == 1
        assert c.call("echo.ping", "after") == ["after"]
        wait_for(lambda: mod(watcher, "echo")["refs"] == 0, "echo.sleep to finish")
        # its result was dropped: the next answer on this connection is ours
        c.send_raw(pack([0, 8, "lmms.ping", []]))
        assert c.recv_message(timeout=10) == [1, 8, None, "pong"]
    # inline ops and quick BLOCKING calls are untouched by the limit
    with d.client() as c:
        assert c.call("echo.sleep", 10) == 10


def test_inflight_cap_delays_never_drops(daemon):
    d = daemon("--set", "server.max_inflight=2")
    with d.client() as c:
        ids = [c.request("echo.sleep", 100) for _ in range(10)]
        c.send_raw(pack([0, 999, "echo.ping", ["last"]]))
        got = {}
        while len(got) < 11:
            m = c.recv_message(timeout=20)
            assert m[1] not in got
            got[m[1]] = m
        for i in ids:
            assert got[i] == [1, i, None, 100]
        assert got[999] == [1, 999, None, ["last"]]


def test_non_reading_client_is_bounded(daemon):
    d = daemon("--set", "server.max_output_bytes=256KiB")
    n = 20000
    payload = "z" * 10240
    with d.client() as watcher:
        assert watcher.call("echo.ping", "warm") == ["warm"]
        base = watcher.stats()["rss_bytes"]

        hog = d.client(timeout=None)
        sent = [0]
        failure = []

        def writer():
            try:
                for i in range(n):
                    hog.send_raw(pack([0, i, "echo.ping", [payload]]))
                    sent[0] = i + 1
            except Exception as e:  # reported by the main thread
                failure.append(e)

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        # Wait until the daemon stopped reading: the writer is stuck.
        def stalled():
            before = sent[0]
            time.sleep(0.5)
            return sent[0] == before and sent[0] < n
        wait_for(stalled, "the writer to be blocked by backpressure", timeout=30)
        assert not failure, failure
        for _ in range(5):
            rss = watcher.stats()["rss_bytes"]
            assert rss < base + 64 * MIB, "rss grew %d MiB" % ((rss - base) // MIB)
            assert watcher.ping() == "pong"
            time.sleep(0.1)

        # Now read: every request gets its answer, in any order.
        seen = set()
        while len(seen) < n:
            m = hog.recv_message(timeout=30)
            assert m[0] == 1 and m[2] is None and m[3] == [payload]
            assert m[1] not in seen
            seen.add(m[1])
        t.join(30)
        assert not t.is_alive() and not failure
        assert seen == set(range(n))
        hog.close()
        # ASan's quarantine keeps up to 256 MiB of freed memory resident:
        # after 200 MB went through, only an uninstrumented daemon's RSS
        # says anything.
        if not under_asan(d.pid):
            assert watcher.stats()["rss_bytes"] < base + 64 * MIB


# ---- notifications ----

def echo_ping_calls(c):
    for o in c.ops():
        if o["method"] == "echo.ping":
            return o["calls"]
    return 0


def test_notifications_run_and_are_never_answered(lmmsd):
    with lmmsd.client() as c:
        before = c.stats()["notifications_total"]
        c.notify("echo.ping", "n1")
        c.notify("echo.ping", "n2")
        c.notify("nosuch.thing", 1)
        c.notify("nvim_subscribe", "x")
        c.notify("bad/name.x")
        # The next thing on the wire is the answer to this request.
        c.send_raw(pack([0, 42, "lmms.ping", []]))
        assert c.recv_message() == [1, 42, None, "pong"]
        assert c.stats()["notifications_total"] == before + 5
        assert echo_ping_calls(c) == 2
        r, _, _ = select.select([c._sock], [], [], 0.2)
        assert not r, "a notification was answered"
        assert c.call("echo.ping", 1) == [1]


# ---- signals ----

def test_sigterm_finishes_inflight_call(daemon):
    d = daemon()
    with d.client() as c, d.client() as w:
        mid = c.request("echo.sleep", 1000)
        wait_for(lambda: mod(w, "echo")["refs"] == 1, "echo.sleep in flight")
        os.kill(d.pid, signal.SIGTERM)
        # It stops accepting at once, while the sleep is still running.
        wait_for(lambda: not os.path.exists(d.socket), "the socket file to go")
        with pytest.raises(OSError):
            lmms.Client(d.socket, timeout=2).close()
        assert c.wait(mid, timeout=10) == 1000
    assert d.stop() == 0
    assert not os.path.exists(d.socket), "socket file left behind"
    assert "module echo unloaded" in d.log()


def test_sigint_exits_zero(daemon):
    d = daemon()
    with d.client() as c:
        assert c.call("hash.sha256", "abc") == SHA256_ABC
    assert d.stop(signal.SIGINT) == 0
    assert not os.path.exists(d.socket)


# ---- the socket file ----

def test_socket_mode(lmmsd):
    st = os.stat(lmmsd.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660


def test_second_daemon_refuses_live_socket(lmmsd, tmp_path):
    argv = [str(build_root() / "daemon" / "lmmsd"), "--socket", lmmsd.socket,
            "--module-dir", str(build_root() / "modules")]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=20)
    assert r.returncode != 0
    assert "another lmmsd is listening" in r.stderr, r.stderr
    assert os.path.exists(lmmsd.socket)
    with lmmsd.client() as c:
        assert c.ping() == "pong"


def test_stale_socket_is_replaced(spawn, tmp_path):
    sock = tmp_path / "stale.sock"
    first = spawn(sock)
    first.wait_ready()
    os.kill(first.pid, signal.SIGKILL)   # only the daemon this test started
    first.proc.wait(STOP_TIMEOUT)
    assert stat.S_ISSOCK(os.stat(sock).st_mode), "expected a stale socket file"
    second = spawn(sock)
    second.wait_ready()
    assert "stale" in second.log()
    assert second.stop() == 0
    assert not sock.exists()


def test_socket_directory_is_created(spawn, tmp_path):
    sock = tmp_path / "a" / "b" / "lmmsd.sock"
    p = spawn(sock)
    p.wait_ready()
    assert sock.parent.is_dir()
    with lmms.Client(str(sock), timeout=5) as c:
        assert c.call("hash.sha256", "abc") == SHA256_ABC
    assert p.stop() == 0


# ---- modules that fail to load ----

@pytest.mark.parametrize("name,reason", [
    ("badinit", "init refused: test"),
    ("badabi", "ABI version 999"),
    ("noentry", "lmms_module_entry"),
])
def test_failing_module_reports_and_backs_off(daemon, tmp_path, name, reason):
    mods = make_module_dir(tmp_path, "echo", name)
    d = daemon("--module-dir", mods)
    with d.client() as c:
        code, msg = error_code(c, name + ".ping")
        assert code == "load_failed"
        assert reason in msg, msg
        assert c.call("echo.ping", "still") == ["still"]
        code, msg = error_code(c, name + ".ping")
        assert code == "load_failed"
        m = mod(c, name)
        assert m["state"] == "failed"
        assert m["retry_in_ms"] > 0
        assert m["load_failures"] >= 1
        assert reason in m["error"]
        assert not is_mapped(d.pid, name + ".so")
        assert c.ping() == "pong"


def test_group_writable_module_refused(daemon, tmp_path):
    mods = make_module_dir(tmp_path, "echo", "veto")
    os.chmod(mods / "veto.so", 0o775)
    d = daemon("--module-dir", mods)
    with d.client() as c:
        code, msg = error_code(c, "veto.ping")
        assert code == "load_failed"
        assert "writable" in msg, msg
        assert not is_mapped(d.pid, "veto.so")
        assert c.call("echo.ping", 1) == [1]
