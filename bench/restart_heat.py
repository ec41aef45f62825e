#!/usr/bin/env python3
"""Start with saved heat vs a cold start (issue 12): exec -> first reply of
lmmsd with a state directory holding the heat of a critical echo.ping, and
without one, interleaved, ratios taken inside each repetition; then the
first echo.ping after the restart, which must cost a warm call (its module
was preloaded) rather than a load.

    /usr/bin/python3 bench/restart_heat.py BUILD [--reps N]
"""

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import msgpack


def call(s, u, i, method, *params):
    s.sendall(msgpack.packb([0, i, method, list(params)]))
    while True:
        for m in u:
            assert m[2] is None, m
            return m[3]
        u.feed(s.recv(65536))


def start(exe, mods, sock, state):
    args = [exe, "--socket", sock, "--module-dir", mods, "--set", "lugs.pressure=off",
            "--set", "zafp.decay_interval=1h"]
    if state:
        args += ["--set", "ligs.state_dir=%s" % state]
    t0 = time.perf_counter()
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    while True:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(sock)
            break
        except OSError:
            s.close()
            time.sleep(0.0002)
    u = msgpack.Unpacker(raw=False)
    assert call(s, u, 1, "lmms.ping") == "pong"
    first = time.perf_counter() - t0
    return p, s, u, first


def main():
    build = sys.argv[1]
    reps = int(sys.argv[sys.argv.index("--reps") + 1]) if "--reps" in sys.argv else 15
    exe = os.path.join(build, "daemon", "lmmsd")
    mods = os.path.join(build, "modules")
    tmp = tempfile.mkdtemp(prefix="lmms-heat-")
    state = os.path.join(tmp, "state")
    os.mkdir(state)
    sock = os.path.join(tmp, "s.sock")
    # make echo.ping critical and save it
    p, s, u, _ = start(exe, mods, sock, state)
    for i in range(150):
        call(s, u, 10 + i, "echo.ping", "x")
    s.close()
    p.terminate()
    p.wait(10)
    ratios, cold, warm, first_calls, loads = [], [], [], [], []
    for r in range(reps):
        times = {}
        for with_state in ((False, True) if r % 2 == 0 else (True, False)):
            p, s, u, first = start(exe, mods, sock, state if with_state else None)
            times[with_state] = first
            if with_state:
                # the preload runs after the first answer: wait for it, then time a call
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    m = [x for x in call(s, u, 2, "lmms.modules") if x["name"] == "echo"][0]
                    if m["state"] == "loaded":
                        break
                    time.sleep(0.005)
                t0 = time.perf_counter()
                call(s, u, 3, "echo.ping", "y")
                first_calls.append(time.perf_counter() - t0)
                m = [x for x in call(s, u, 4, "lmms.modules") if x["name"] == "echo"][0]
                loads.append(m["loads"])
            s.close()
            p.terminate()
            p.wait(10)
        cold.append(times[False])
        warm.append(times[True])
        ratios.append(times[True] / times[False])
    med = statistics.median
    print("exec -> first reply, ms: cold %.2f [%.2f-%.2f], with saved heat %.2f [%.2f-%.2f]"
          % (med(cold) * 1e3, min(cold) * 1e3, max(cold) * 1e3,
             med(warm) * 1e3, min(warm) * 1e3, max(warm) * 1e3))
    print("ratio with/without state: %.3f [%.3f-%.3f] (target <= 1.05)"
          % (med(ratios), min(ratios), max(ratios)))
    print("first echo.ping after the restart: %.0f us median [%.0f-%.0f]; echo loads: %s"
          % (med(first_calls) * 1e6, min(first_calls) * 1e6, max(first_calls) * 1e6,
             sorted(set(loads))))


if __name__ == "__main__":
    main()
