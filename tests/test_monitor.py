"""lmmsctl monitor and the Python clients' monitor(), on lmms.monitor: one
line (or JSON object) per call any client finishes, what path it took, and
the counts of events the daemon dropped for a monitor that reads slowly."""

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import time

import msgpack
import pytest

import lmms
import lmms.aio
from conftest import build_root, wait_for

LMMSCTL = str(build_root() / "client" / "lmmsctl")
PATHS = "fast_path|cache_hit|inline|pool|worker|builtin"
LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{6} uid=\d+ pid=\d+ (\S+) (%s)(\+loaded)? "
                  r"[0-9.]+(\u00b5s|ms|s|m|h|d) (\d+(\.\d)? (B|KiB|MiB|GiB)|error=[a-z_]+)$"
                  % PATHS)
EVENT_KEYS = {"time", "uid", "pid", "method", "path", "loaded", "us", "bytes", "error",
              "dropped"}


def start_monitor(sock, *args, stdout=subprocess.PIPE):
    return subprocess.Popen([LMMSCTL, "-s", sock, "monitor", *args], stdout=stdout,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def drive(sock, proc, calls, timeout=20):
    """Make calls (method, params...) over and over until the monitor process
    exits (it was given -n): it subscribes while we call, so the first rounds
    may come before it listens."""
    deadline = time.monotonic() + timeout
    with lmms.Client(sock, timeout=10) as c:
        while proc.poll() is None and time.monotonic() < deadline:
            for method, *params in calls:
                try:
                    c.call(method, *params)
                except lmms.Error:
                    pass
            time.sleep(0.02)
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail("monitor did not end after its -n events:\n" + out + err)
    return out, err


def test_monitor_lines(lmmsd):
    proc = start_monitor(lmmsd.socket, "-n", "12")
    out, err = drive(lmmsd.socket, proc, [("echo.ping", "x"), ("nosuch.op",),
                                          ("hash.sha256", "abc")])
    assert proc.returncode == 0, err
    lines = out.rstrip("\n").split("\n")
    assert len(lines) == 12, out
    for ln in lines:
        assert LINE.match(ln), ln
    methods = {LINE.match(ln).group(1) for ln in lines}
    assert {"echo.ping", "nosuch.op", "hash.sha256"} <= methods, out
    err_lines = [ln for ln in lines if " nosuch.op " in ln]
    assert all(ln.endswith("error=no_such_module") for ln in err_lines), err_lines
    # a repeated PURE call is answered from the cache
    assert any(" hash.sha256 cache_hit " in ln for ln in lines), out


def test_monitor_json(lmmsd):
    proc = start_monitor(lmmsd.socket, "--json", "-n", "6")
    out, err = drive(lmmsd.socket, proc, [("echo.ping", "x"), ("echo.nope",)])
    assert proc.returncode == 0, err
    events = [json.loads(ln) for ln in out.rstrip("\n").split("\n")]
    assert len(events) == 6
    for ev in events:
        assert set(ev) >= EVENT_KEYS, ev
        assert re.fullmatch(PATHS, ev["path"]) and ev["us"] >= 0
        assert ev["uid"] == os.geteuid() and ev["pid"] > 0
        if ev["method"] == "echo.nope":
            assert ev["error"] == "no_such_method" and ev["bytes"] == 0
        elif ev["method"] == "echo.ping":
            assert ev["error"] is None and ev["bytes"] > 0


def test_monitor_ctrl_c_exits_0(lmmsd):
    proc = start_monitor(lmmsd.socket)
    wait_for(lambda: connected(lmmsd, 2), "monitor to connect")
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err


def pipeline_pings(sock, batches=400, per_batch=50):
    """batches * per_batch echo.ping calls, pipelined, every answer read."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.connect(sock)
        c.settimeout(30)
        batch = b"".join(msgpack.packb([0, i, "echo.ping", []]) for i in range(per_batch))
        up = msgpack.Unpacker(raw=False)
        for _ in range(batches):
            c.sendall(batch)
            got = 0
            while got < per_batch:
                up.feed(c.recv(65536))
                got += sum(1 for _ in up)


def connected(d, n):
    with d.client() as c:
        return c.stats()["connections"] >= n


def test_slow_monitor_is_told_what_it_missed(lmmsd):
    # A monitor that stops reading: the daemon drops its events instead of
    # waiting, and the next event it gets says how many.
    mon = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mon.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    mon.connect(lmmsd.socket)
    mon.sendall(msgpack.packb([0, 1, "lmms.monitor", []]))
    unpacker = msgpack.Unpacker(raw=False)
    mon.settimeout(10)
    while True:
        unpacker.feed(mon.recv(65536))
        msgs = list(unpacker)
        if any(m[0] == 1 and m[1] == 1 for m in msgs):
            assert [m for m in msgs if m[0] == 1][0][3] is True
            break
    pipeline_pings(lmmsd.socket)  # 20000 calls; the monitor reads nothing meanwhile
    dropped, seen = 0, 0
    mon.settimeout(2)
    try:
        while True:
            data = mon.recv(1 << 20)
            if not data:
                break
            unpacker.feed(data)
            for m in unpacker:
                if m[0] == 2 and m[1] == "lmms.monitor":
                    seen += 1
                    dropped += m[2][0]["dropped"]
    except socket.timeout:
        pass
    if dropped == 0:  # the queued events may end exactly at the last call: make one more
        with lmmsd.client() as c:
            c.call("echo.ping")
        unpacker.feed(mon.recv(1 << 20))
        dropped += sum(m[2][0]["dropped"] for m in unpacker if m[0] == 2)
    mon.close()
    assert dropped > 0 and seen + dropped <= 20001 + 2, (seen, dropped)


def test_lmmsctl_shows_dropped_counts(lmmsd, tmp_path):
    # to a file: a pipe nobody drains would stall the monitor on its output
    out_file = open(tmp_path / "monitor.out", "w")
    proc = start_monitor(lmmsd.socket, stdout=out_file)
    wait_for(lambda: connected(lmmsd, 2), "monitor to connect")
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGSTOP)  # a monitor that does not read
    try:
        pipeline_pings(lmmsd.socket)
    finally:
        os.kill(proc.pid, signal.SIGCONT)

    # The count rides on the next event delivered, once the monitor caught
    # up: keep calling until the line shows.
    def told():
        with lmmsd.client() as c:
            c.call("echo.ping", "after")
        return "events dropped" in (tmp_path / "monitor.out").read_text()
    wait_for(told, "the monitor to show the dropped count", interval=0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    out_file.close()
    out = (tmp_path / "monitor.out").read_text()
    assert proc.returncode == 0, err
    assert re.search(r"^-- \d+ events dropped: this monitor read too slowly --$", out, re.M), \
        out[-2000:]
    assert re.search(r"monitor: \d+ events shown, \d+ dropped", err), err


def test_python_monitor(lmmsd):
    with lmmsd.client() as mon:
        events = mon.monitor(timeout=10)
        with lmmsd.client() as c:
            c.call("echo.ping", "py")
        ev = next(events)
        while ev["method"] != "echo.ping":
            ev = next(events)
        assert set(ev) >= EVENT_KEYS and ev["error"] is None


def test_aio_monitor(lmmsd):
    async def main():
        async with lmms.aio.Client(lmmsd.socket) as mon, lmms.aio.Client(lmmsd.socket) as c:
            events = await mon.monitor(timeout=10)
            assert await c.call("echo.ping", "aio") == ["aio"]
            ev = await events.__anext__()
            while ev["method"] != "echo.ping":
                ev = await events.__anext__()
            assert set(ev) >= EVENT_KEYS and ev["error"] is None and ev["bytes"] > 0
    asyncio.run(asyncio.wait_for(main(), 30))
