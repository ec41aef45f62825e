"""Process isolation (issue 10) through a real lmmsd: a module that crashes,
exits, hangs or takes its time costs its callers an error or a wait, never
the daemon nor other clients; workers start on the first call and end on
unload; repeated crashes quarantine a module until an administrator loads
it. Run by meson as the `isolation` test.
"""

import os
import signal
import threading
import time

import pytest

import lmms
from conftest import make_module_dir, mapped, mod, under_asan, wait_for

# A worker is lmmsd itself: under ASan a segfault would become an ASan report
# and an abort, and a worker the daemon kills has no leak check to pass.
WORKER_ENV = {"ASAN_OPTIONS": "handle_segv=0:detect_leaks=0:abort_on_error=1"}


def isolated(daemon, tmp_path, *names, args=()):
    mods = make_module_dir(tmp_path, *names)
    return daemon("--module-dir", str(mods), "--set", "ligs.isolation=process",
                  "--set", "ligs.retry_backoff=100ms", *args, env=WORKER_ENV)


def error_of(c, method, *params):
    with pytest.raises(lmms.LmmsError) as e:
        c.call(method, *params)
    return e.value.code, e.value.message


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


class Pinger:
    """Another client pinging the daemon the whole time; keeps latencies."""

    def __init__(self, sock):
        self.sock, self.lat, self.stop = sock, [], threading.Event()
        self.t = threading.Thread(target=self.run)
        self.t.start()

    def run(self):
        with lmms.Client(self.sock, timeout=10) as c:
            while not self.stop.is_set():
                t0 = time.monotonic()
                assert c.ping() == "pong"
                self.lat.append(time.monotonic() - t0)
                time.sleep(0.005)

    def p99_ms(self):
        self.stop.set()
        self.t.join(20)
        lat = sorted(self.lat)
        assert len(lat) > 20
        p99 = lat[int(len(lat) * 0.99)] * 1000
        print("other client: %d pings, p50 %.2f ms, p99 %.2f ms"
              % (len(lat), lat[len(lat) // 2] * 1000, p99))
        return p99


def test_crashes_cost_an_error_never_the_daemon(daemon, tmp_path):
    d = isolated(daemon, tmp_path, "fault-crash", "echo")
    p = Pinger(d.socket)
    with d.client() as c:
        assert c.call("fault-crash.ping") == "pong"
        m = mod(c, "fault-crash")
        assert m["isolation"] == "process" and m["pid"] > 0 and m["pid"] != d.pid
        assert not mapped(d.pid, "fault-crash")
        for method, want in (("fault-crash.segv", "SIGSEGV"),
                             ("fault-crash.segv_blocking", "SIGSEGV"),
                             ("fault-crash.abort", "SIGABRT")):
            code, msg = error_of(c, method)
            assert code == "module_crashed" and want in msg, (method, msg)
            # respawned on the next call, after the backoff
            wait_for(lambda: call_ok(c, "fault-crash.ping"), "a new worker")
            c.call("lmms.load", "fault-crash")  # an admin forgives the crashes
        code, msg = error_of(c, "fault-crash.exit", 0)
        assert code == "module_crashed" and "status 0" in msg, msg
        c.call("lmms.load", "fault-crash")
        wait_for(lambda: call_ok(c, "fault-crash.ping"), "a new worker")
        code, msg = error_of(c, "fault-crash.exit", 3)
        assert code == "module_crashed" and "status 3" in msg, msg
        st = c.stats()
        assert st["module_crashes"] >= 5 and st["worker_spawns"] >= 5, st
        assert c.call("echo.ping", "still") == ["still"]
    assert p.p99_ms() < p99_bound(d)


def p99_bound(d):
    """A stall detector, not a speed target: a daemon that froze, even for a
    fraction of a second, fails it; the issue's 10 ms p99 is a figure to
    measure on a quiet machine (printed here, reported in the note), not to
    assert on a shared CI host where two suites run side by side."""
    return 200.0 if under_asan(d.pid) else 100.0


def call_ok(c, method, *params):
    try:
        c.call(method, *params)
        return True
    except lmms.LmmsError:
        return False


def test_repeated_crashes_quarantine_until_an_admin_loads(daemon, tmp_path):
    d = isolated(daemon, tmp_path, "fault-crash", args=("--set", "ligs.crash_limit=3",
                                                        "--set", "ligs.retry_backoff=10ms"))
    with d.client() as c:
        for _ in range(3):
            wait_for(lambda: call_ok(c, "fault-crash.ping"), "a worker")
            assert error_of(c, "fault-crash.segv")[0] == "module_crashed"
        m = mod(c, "fault-crash")
        assert m["state"] == "failed" and m["crashes"] == 3
        code, msg = error_of(c, "fault-crash.ping")
        assert code == "load_failed" and "crashed 3 times" in msg, msg
        c.call("lmms.load", "fault-crash")
        wait_for(lambda: call_ok(c, "fault-crash.ping"), "the module back")


def test_a_hung_call_costs_one_worker(daemon, tmp_path):
    d = isolated(daemon, tmp_path, "fault-hang", args=("--set", "server.call_timeout=500ms"))
    p = Pinger(d.socket)
    with d.client() as c:
        assert c.call("fault-hang.ping") == "pong"
        pid = mod(c, "fault-hang")["pid"]
        t0 = time.monotonic()
        assert error_of(c, "fault-hang.hang")[0] == "timeout"
        assert time.monotonic() - t0 < 5
        wait_for(lambda: not alive(pid), "the hung worker killed")
        assert error_of(c, "fault-hang.hang_blocking")[0] in ("timeout", "load_failed")
        wait_for(lambda: call_ok(c, "fault-hang.ping"), "a new worker")
    assert p.p99_ms() < p99_bound(d)


def test_a_slow_init_stalls_nobody(daemon, tmp_path):
    d = isolated(daemon, tmp_path, "fault-slowinit")
    with d.client() as c, d.client() as other:
        msgid = c.request("fault-slowinit.ping")
        t0 = time.monotonic()
        for _ in range(20):
            assert other.ping() == "pong"
        assert time.monotonic() - t0 < 1.0, "pings waited for the init"
        assert c.wait(msgid, timeout=30) == "pong"


def test_unload_ends_the_worker_and_all_its_memory(daemon, tmp_path):
    d = isolated(daemon, tmp_path, "echo", "hash")
    with d.client() as c:
        assert c.call("hash.sha256", "abc").startswith("ba7816bf")
        pid = mod(c, "hash")["pid"]
        assert mod(c, "hash")["resident_bytes"] > 0
        assert not mapped(d.pid, "hash")
        c.call("lmms.invalidate")
        assert c.call("lmms.unload", "hash", True) is True
        wait_for(lambda: not alive(pid), "the worker to end")
        assert mod(c, "hash")["state"] == "unloaded" and mod(c, "hash")["pid"] == 0
        assert c.call("hash.sha256", "abc").startswith("ba7816bf")  # a new worker


def test_heavy_modules_ask_for_their_own_process(daemon):
    d = daemon()
    with d.client() as c:
        names = {m["name"] for m in c.modules()}
        if "text" not in names:
            pytest.skip("text (ICU) was not built")
        assert c.call("text.casefold", "Straße") == "strasse"
        m = mod(c, "text")
        assert m["isolation"] == "process" and m["pid"] > 0
        assert not mapped(d.pid, "text")
        assert mod(c, "echo")["isolation"] == "inproc"


# ---- in process: the safety net ----


@pytest.mark.parametrize("name, call, why", [
    ("fault-thread", ("fault-thread.start",), "starts threads"),
    ("fault-tls", ("fault-tls.set",), "destructors"),
    ("fault-unique", ("fault-unique.count",), "unique symbols"),
])
def test_inproc_modules_unsafe_to_unload_stay_pinned(daemon, tmp_path, name, call, why):
    """In process, a module that starts a thread, registers a TLS destructor
    or defines GNU unique symbols would crash the daemon after a dlclose (or
    never be unmapped): it is kept loaded, pinned with the reason, and the
    daemon stops cleanly."""
    src = os.environ.get("LMMS_TEST_MODULE_DIR", "")
    if not os.path.exists(os.path.join(src, name + ".so")):
        pytest.skip("%s was not built (no C++ compiler?)" % name)
    mods = make_module_dir(tmp_path, name)
    d = daemon("--module-dir", str(mods), "--set", "lugs.grace_period=0",
               "--set", "lugs.sweep_interval=50ms", "--set", "module.%s.isolation=inproc" % name)
    with d.client() as c:
        c.call(*call)
        m = mod(c, name)
        assert m["isolation"] == "inproc"
        assert m["state"] == "pinned" and why in m["pinned_by"], m
        code, msg = error_of(c, "lmms.unload", name, True)
        assert code == "busy" and why in msg, msg
        time.sleep(0.3)  # several sweeps: none touches it
        c.call(*call)
        assert mod(c, name)["state"] == "pinned"
    assert d.stop() == 0
