#!/usr/bin/python3
"""rss_figures.py - LUGS memory figures: what lmmsd holds idle, after
calling every bundled module once, and after the sweep unloaded them; the
same for --eager (everything loaded at start, never unloaded) as baseline.

    /usr/bin/python3 bench/rss_figures.py BUILD_DIR

Starts lmmsd from BUILD_DIR on a temporary socket with shortened LUGS times
(grace 300 ms, sweep 100 ms, min_resident 0, cache TTL 500 ms so cached
results stop holding their modules), reads VmRSS/RssAnon/RssFile from
/proc/PID/status and resident_bytes from lmms.modules, and prints tables.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "client" / "bindings" / "python"))

import lmms  # noqa: E402
from run import proc_status as status  # noqa: E402

FAST = ["--set", "lugs.grace_period=300ms", "--set", "lugs.sweep_interval=100ms",
        "--set", "lugs.min_resident=0", "--set", "cache.default_ttl=500ms"]
MODULES = ("echo", "hash", "zstd", "json", "sqlite", "kv")
DEADLINE = 15.0


def calls(c):
    """One use of every bundled module; kv is left without keys."""
    c.call("echo.ping", "hello")
    c.call("hash.sha256", "abc")
    frame = c.call("zstd.compress", b"lmms " * 1000)
    assert c.call("zstd.decompress", frame) == b"lmms " * 1000
    c.call("json.canonical", '{"b": 1, "a": [1, 2, 3]}')
    c.call("sqlite.exec", "select 1 + 1")
    c.call("kv.set", "k", "v")
    c.call("kv.del", "k")


def mapped_libs(pid):
    """{shared object basename: KiB resident} from /proc/PID/smaps."""
    libs, cur = {}, None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            f0 = line.split()
            if "-" in f0[0] and len(f0) >= 5 and ":" in f0[3]:
                p = f0[5] if len(f0) > 5 else ""
                cur = os.path.basename(p) if (p.endswith(".so") or ".so." in p) else None
                if cur:
                    libs.setdefault(cur, 0)
            elif cur and f0[0] == "Rss:":
                libs[cur] += int(f0[1])
    return libs


class Daemon:
    def __init__(self, build, tmp, args):
        self.sock = os.path.join(tmp, "s.sock")
        self.log = open(os.path.join(tmp, "lmmsd.log"), "wb")
        self.proc = subprocess.Popen(
            [str(build / "daemon" / "lmmsd"), "--socket", self.sock,
             "--module-dir", str(build / "modules"), *args],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                sys.exit("lmmsd exited during start-up, see %s" % self.log.name)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.sock)
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("lmmsd did not start")
                time.sleep(0.02)
            finally:
                s.close()

    def stop(self):
        os.kill(self.pid, signal.SIGTERM)
        rc = self.proc.wait(10)
        self.log.close()
        if rc != 0:
            sys.exit("lmmsd exited with %d" % rc)


def wait_resident(c, want):
    deadline = time.monotonic() + DEADLINE
    while c.stats()["modules_resident"] != want:
        if time.monotonic() > deadline:
            sys.exit("modules_resident did not reach %d" % want)
        time.sleep(0.05)


def run(build, eager):
    with tempfile.TemporaryDirectory(prefix="lmms-rss-") as tmp:
        d = Daemon(build, tmp, FAST + (["--eager"] if eager else []))
        rows, per_module = [], {}
        # stop the daemon on every way out, a failed wait included
        try:
            with lmms.Client(d.sock, timeout=10) as c:
                time.sleep(0.3)
                rows.append(("idle", status(d.pid), c.stats()["modules_resident"]))
                idle_libs = mapped_libs(d.pid)
                calls(c)
                for m in c.modules():
                    per_module[m["name"]] = m["resident_bytes"]
                rows.append(("after one call of each module", status(d.pid),
                             c.stats()["modules_resident"]))
                # pinned modules (a -z nodelete object, e.g. libcrypto under
                # hash's OpenSSL backend) stay resident for good: don't wait for them
                pinned = [m["name"] for m in c.modules() if m["state"] == "pinned"]
                if eager:
                    time.sleep(2.0)  # as long as the lazy run waits, roughly
                else:
                    wait_resident(c, len(pinned))
                    time.sleep(0.3)  # a few more sweeps: the deferred malloc_trim
                st = c.stats()
                rows.append(("after the sweep", status(d.pid), st["modules_resident"]))
                libs = {k: v for k, v in mapped_libs(d.pid).items() if k not in idle_libs}
                reclaimed = st["memory_reclaimed_bytes"]
                pinned_by = {m["name"]: m["pinned_by"] for m in c.modules() if m["state"] == "pinned"}
        finally:
            d.stop()
        return rows, per_module, libs, reclaimed, pinned_by


def kib(v):
    return "%8.1f MiB" % (v / 1024.0)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: %s BUILD_DIR" % sys.argv[0])
    build = Path(sys.argv[1]).resolve()
    print("lmmsd RSS (VmRSS = RssAnon + RssFile), %s, modules: %s"
          % (build, ", ".join(MODULES)))
    print()
    print("%-8s %-31s %12s %12s %12s %9s" % ("mode", "moment", "VmRSS", "RssAnon", "RssFile",
                                             "resident"))
    results = {}
    for eager in (False, True):
        mode = "eager" if eager else "lazy"
        rows, per_module, libs, reclaimed, pinned_by = run(build, eager)
        results[mode] = (per_module, libs, reclaimed, pinned_by)
        for name, s, n in rows:
            print("%-8s %-31s %12s %12s %12s %9d" % (mode, name, kib(s["VmRSS"]),
                                                     kib(s["RssAnon"]), kib(s["RssFile"]), n))
    print()
    print("resident_bytes per module, measured across its load (lmms.modules, lazy run):")
    per_module, libs, reclaimed, pinned_by = results["lazy"]
    for name in MODULES:
        print("  %-8s %10.1f KiB" % (name, per_module.get(name, 0) / 1024.0))
    print()
    print("lazy run: memory_reclaimed_bytes after the sweep = %.1f KiB" % (reclaimed / 1024.0))
    print("lazy run: pinned modules (never unloaded): %s"
          % (", ".join("%s (by %s)" % kv for kv in sorted(pinned_by.items()))
             if pinned_by else "none"))
    print("lazy run: objects mapped after the sweep that were not mapped when idle: %s"
          % (", ".join("%s (%d KiB resident)" % kv for kv in sorted(libs.items()))
             if libs else "none"))


if __name__ == "__main__":
    main()
