"""Shared pytest fixtures for the integration tests: a real lmmsd on a
temporary socket, lmmsctl, and the Python binding.

    def test_x(daemon):
        d = daemon("--set", "lugs.grace_period=200ms")   # started and ready
        with d.client() as c:                              # lmms.Client
            assert c.ping() == "pong"
        r = d.ctl("stats", "--json")                       # CompletedProcess

Every daemon a test started is stopped at teardown with SIGTERM and must exit
with status 0; its stderr is kept in a file and printed when the test fails.
LMMS_BUILD_ROOT (set by meson) points at the build tree. The small helpers
the test files share (lmms.ops/lmms.modules look-ups, polling, /proc/PID/maps,
module directories) are at the end: `from conftest import wait_for, mod`.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SOURCE_ROOT = Path(os.environ.get("LMMS_SOURCE_ROOT", Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(SOURCE_ROOT / "client" / "bindings" / "python"))

import lmms  # noqa: E402


def build_root():
    root = os.environ.get("LMMS_BUILD_ROOT")
    if not root:
        pytest.fail("LMMS_BUILD_ROOT is not set (run the tests through meson test)")
    return Path(root)


# Any of these in a daemon's log means the (ASan/UBSan-instrumented) daemon
# found a bug: the test fails even if every assertion held.
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "ERROR: UndefinedBehaviorSanitizer")


def sanitizer_report(log):
    """The first sanitizer mark found in log, or None."""
    return next((m for m in SANITIZER_MARKS if m in log), None)


LMMSCTL = "client/lmmsctl"
LMMSD = "daemon/lmmsd"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


class Daemon:
    def __init__(self, tmpdir, args, env=None):
        root = build_root()
        self.root = root
        self.socket = str(tmpdir / "s.sock")
        self.log_path = tmpdir / "lmmsd.stderr"
        exe = root / LMMSD
        if not exe.exists():
            pytest.fail("%s was not built" % exe)
        # Memory pressure of the machine running the tests must not make a
        # daemon shed in the middle of one (the pressure tests turn it on).
        self.argv = [str(exe), "--socket", self.socket,
                     "--module-dir", str(root / "modules"), "--set", "lugs.pressure=off", *args]
        e = dict(os.environ)
        e.pop("LMMS_SOCKET", None)
        e.update(env or {})
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log, env=e)
        self.pid = self.proc.pid
        self.returncode = None
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("lmmsd exited with %d during start-up:\n%s"
                            % (self.proc.returncode, self.log()))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.socket)
                return
            except OSError:
                time.sleep(0.02)
            finally:
                s.close()
        pytest.fail("lmmsd did not accept on %s within %.0fs:\n%s"
                    % (self.socket, START_TIMEOUT, self.log()))

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def client(self, timeout=10.0):
        return lmms.Client(self.socket, timeout=timeout)

    def ctl(self, *args, timeout=30):
        """Run lmmsctl -s <socket> ARGS; returns the CompletedProcess. Calls
        time out after 10s (a later --timeout in ARGS wins), so a daemon
        that stops answering fails one test instead of the whole run."""
        return run_lmmsctl("-s", self.socket, "--timeout", "10000", *args, timeout=timeout)

    def stop(self, sig=signal.SIGTERM):
        """Stop the daemon (by pid) and return its exit status."""
        if self.returncode is None:
            self.returncode = stop_process(self.proc, sig)
            self._log.close()
        return self.returncode


def run_lmmsctl(*args, timeout=30):
    exe = build_root() / LMMSCTL
    return subprocess.run([str(exe), *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Attach each daemon's stderr to the report of a failed phase.
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for d in getattr(item, "_lmms_daemons", ()):
            rep.sections.append(("lmmsd pid %d stderr (%s)" % (d.pid, " ".join(d.argv[1:])),
                                 d.log()))


@pytest.fixture
def daemon(request, tmp_path_factory):
    """Factory: daemon(*extra_args, env=None) -> Daemon, started and ready."""
    started = []
    request.node._lmms_daemons = started

    def start(*args, env=None):
        d = Daemon(tmp_path_factory.mktemp("lmmsd"), [str(a) for a in args], env)
        started.append(d)
        return d

    yield start

    bad = []
    for d in started:
        status = d.stop()  # LSan's exit-time leak check runs in here
        if status != 0:
            bad.append("lmmsd (pid %d) exited with %s" % (d.pid, status))
        if sanitizer_report(d.log()):
            bad.append("lmmsd (pid %d) logged a sanitizer report:\n%s"
                       % (d.pid, d.log()[-8000:]))
    if bad:
        pytest.fail("; ".join(bad))


@pytest.fixture
def lmmsd(daemon):
    """One daemon with default settings."""
    return daemon()


# ---- helpers shared by the test files (from conftest import ...) ----

def op(c, method):
    """The lmms.ops entry of method."""
    for o in c.ops():
        if o["method"] == method:
            return o
    raise AssertionError("no op %s in lmms.ops" % method)


def mod(c, name):
    """The lmms.modules entry of module name."""
    for m in c.modules():
        if m["name"] == name:
            return m
    raise AssertionError("no module %s in lmms.modules" % name)


def wait_for(pred, what, timeout=10.0, interval=0.02):
    """pred()'s first true value, polled every interval; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def mapped(pid, name):
    """Is NAME.so mapped into process pid?"""
    suffix = "/%s.so" % name
    with open("/proc/%d/maps" % pid) as f:
        return any(line.rstrip("\n").endswith(suffix) for line in f)


def mapped_objects(pid, shared_only=False):
    """Paths of the files mapped into process pid (with shared_only, the .so ones)."""
    out = set()
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/"):
                path = parts[5].strip()
                if not shared_only or ".so" in path:
                    out.add(path)
    return out


def shared_libs(path):
    """Basenames of the shared libraries path needs (ldd, transitive)."""
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True,
                         timeout=30).stdout
    libs = set()
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith("lib") and ".so" in name:
            libs.add(name)
    return libs


def under_asan(pid):
    """Is process pid ASan-instrumented? (RSS figures mean nothing there.)"""
    with open("/proc/%d/maps" % pid) as f:
        return any("libasan" in line for line in f)


def stop_process(proc, sig=signal.SIGTERM):
    """Send sig to proc (by pid) if it runs and reap it: its exit status, or a
    "hung" string when it had to be SIGKILLed after STOP_TIMEOUT."""
    if proc.poll() is None:
        os.kill(proc.pid, sig)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return "hung on stop (SIGKILLed)"
    return proc.returncode


def make_module_dir(tmp_path, *names):
    """tmp_path/mods (0755) holding 0755 copies of the named bundled or test modules."""
    d = tmp_path / "mods"
    d.mkdir(mode=0o755, exist_ok=True)
    os.chmod(d, 0o755)
    test_dir = Path(os.environ.get("LMMS_TEST_MODULE_DIR", build_root() / "tests" / "modules"))
    for n in names:
        for src in (build_root() / "modules" / (n + ".so"), test_dir / (n + ".so")):
            if src.exists():
                shutil.copyfile(src, d / (n + ".so"))
                os.chmod(d / (n + ".so"), 0o755)
                break
        else:
            pytest.fail("module %s.so was not built" % n)
    return d
