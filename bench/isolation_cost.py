#!/usr/bin/env python3
"""What isolation costs (issue 10): warm echo.ping round trips with echo in
process and isolated (client and daemon on one CPU, interleaved batches,
median of the per-batch p50 ratio), and spawn to first reply of an isolated
module (lmms.unload, then one call).

    /usr/bin/python3 bench/isolation_cost.py BUILD [--reps N]
"""

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import msgpack


class Conn:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.u = msgpack.Unpacker(raw=False)
        self.i = 0

    def call(self, method, *params):
        self.i += 1
        self.s.sendall(msgpack.packb([0, self.i, method, list(params)]))
        while True:
            for m in self.u:
                assert m[2] is None, m
                return m[3]
            self.u.feed(self.s.recv(65536))


def daemon(build, tmp, name, *args):
    sock = os.path.join(tmp, name + ".sock")
    p = subprocess.Popen(["taskset", "-c", "1", os.path.join(build, "daemon", "lmmsd"),
                          "--socket", sock, "--module-dir", os.path.join(build, "modules"),
                          "--set", "lugs.pressure=off", *args],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    for _ in range(500):
        try:
            c = Conn(sock)
            c.call("lmms.ping")
            return p, c
        except OSError:
            time.sleep(0.01)
    raise SystemExit("lmmsd did not start")


def p50_us(c, n=2000):
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        c.call("echo.ping", "x")
        lat.append(time.perf_counter() - t0)
    return statistics.median(lat) * 1e6


def main():
    build = sys.argv[1]
    reps = int(sys.argv[sys.argv.index("--reps") + 1]) if "--reps" in sys.argv else 7
    os.sched_setaffinity(0, {1})
    tmp = tempfile.mkdtemp(prefix="lmms-iso-")
    pi, ci = daemon(build, tmp, "inproc")
    pp, cp = daemon(build, tmp, "process", "--set", "module.echo.isolation=process")
    for c in (ci, cp):
        p50_us(c, 500)  # warm-up: loaded, hot, critical
    inproc, isolated, ratios = [], [], []
    for _ in range(reps):
        a, b = p50_us(ci), p50_us(cp)
        inproc.append(a)
        isolated.append(b)
        ratios.append(b / a)
    # the spawn on a daemon where echo never gets hot (a hot module is
    # protected from unloading)
    ps, cs = daemon(build, tmp, "spawn", "--set", "module.echo.isolation=process",
                    "--set", "zafp.warm=1000000", "--set", "zafp.hot=1000000",
                    "--set", "zafp.critical=1000000")
    spawn = []
    for _ in range(reps * 3):
        cs.call("echo.ping", "x")
        cs.call("lmms.unload", "echo", True)
        t0 = time.perf_counter()
        cs.call("echo.ping", "x")
        spawn.append((time.perf_counter() - t0) * 1e3)
        time.sleep(0.05)
    med = statistics.median
    print("warm echo.ping p50, one CPU, us: in process %.1f [%.1f-%.1f], isolated %.1f [%.1f-%.1f]"
          % (med(inproc), min(inproc), max(inproc), med(isolated), min(isolated), max(isolated)))
    print("isolated / in process: %.2fx [%.2f-%.2f] (target <= 2x)"
          % (med(ratios), min(ratios), max(ratios)))
    print("spawn + first call of an isolated echo, ms: %.2f [%.2f-%.2f] (target <= 3 ms)"
          % (med(spawn), min(spawn), max(spawn)))
    for p in (pi, pp, ps):
        p.terminate()
        p.wait(10)


if __name__ == "__main__":
    main()
