"""lmmsd as a service: configuration at run time (--check-config, files,
drop-ins, --set, errors naming file:line:key, SIGHUP and lmms.reload) and the
systemd integration (socket activation, READY/STATUS/WATCHDOG/STOPPING on a
test NOTIFY_SOCKET). Run by meson as the `service` test.
"""

import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

import lmms
from conftest import LMMSD, build_root, stop_process

DEADLINE = 10.0


def lmmsd_exe():
    return str(build_root() / LMMSD)


def module_dir():
    return str(build_root() / "modules")


def check_config(*args, env=None):
    e = dict(os.environ)
    e.pop("LMMS_SOCKET", None)
    e.update(env or {})
    return subprocess.run([lmmsd_exe(), "--check-config", *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=30, env=e)


def parse_ini(text):
    """The output of --check-config as {"section.key": "value"}."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            assert line.endswith("]"), line
            section = line[1:-1]
            continue
        k, sep, v = line.partition("=")
        assert sep and section, "not a key = value line: %r" % line
        out["%s.%s" % (section, k.strip())] = v.strip()
    return out


def poll(fn, what, timeout=DEADLINE):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    pytest.fail("%s: not within %.0fs (last: %r)" % (what, timeout, last))


def config_of(d):
    with d.client() as c:
        return c.call("lmms.config")


# ---------------------------------------------------------------- --check-config


def default_config_file():
    """The file lmmsd reads without --config, as its --help names it."""
    r = subprocess.run([lmmsd_exe(), "--help"], capture_output=True, text=True, timeout=30)
    m = re.search(r"--config FILE\s+configuration file \(default: ([^)]+)\)", r.stdout)
    assert m, r.stdout
    return m.group(1)


def test_check_config_without_file_prints_the_embedded_defaults():
    if os.path.exists(default_config_file()):
        pytest.skip("%s exists on this machine" % default_config_file())
    r = check_config()
    assert r.returncode == 0, r.stderr
    cfg = parse_ini(r.stdout)
    assert cfg["server.max_depth"] == "32"
    assert cfg["server.max_connections"] == "256"
    assert cfg["lugs.grace_period"] == "30s"
    assert cfg["zafp.hot"] == "20"
    assert cfg["cache.max_bytes"] == "64MiB"
    assert cfg["access.admin_group"] == ""
    # every section of DESIGN.md §5 is there
    for sec in ("server", "ligs", "lugs", "zafp", "cache", "access"):
        assert any(k.startswith(sec + ".") for k in cfg), sec


def test_check_config_matches_the_template_defaults():
    """The installed template, uncommented, gives exactly the defaults."""
    template = build_root() / "conf" / "lmmsd.conf"
    assert template.exists()
    r_default = check_config("--config", "/dev/null")
    r_template = check_config("--config", str(template))
    assert r_default.returncode == 0 and r_template.returncode == 0, r_template.stderr
    assert parse_ini(r_default.stdout) == parse_ini(r_template.stdout)


def test_check_config_file_dropins_and_set_in_order(tmp_path):
    f = tmp_path / "lmmsd.conf"
    f.write_text("[zafp]\nhot = 30\nwarm = 3\n[cache]\ndefault_ttl = 7m\n"
                 "[module hash]\npolicy = core\n")
    dd = tmp_path / "lmmsd.conf.d"
    dd.mkdir()
    # read in name order: 10 before 20; later wins
    (dd / "20-late.conf").write_text("[zafp]\nhot = 50\n")
    (dd / "10-early.conf").write_text("[zafp]\nhot = 40\ncritical = 400\n")
    (dd / "30-not-a-dropin.conf.bak").write_text("[zafp]\nhot = 99\n")
    (dd / "README").write_text("not ini at all [[[\n")

    r = check_config("--config", str(f))
    assert r.returncode == 0, r.stderr
    cfg = parse_ini(r.stdout)
    assert cfg["zafp.hot"] == "50"
    assert cfg["zafp.warm"] == "3"
    assert cfg["zafp.critical"] == "400"
    assert cfg["cache.default_ttl"] == "420s"  # minutes are printed as seconds
    assert cfg["module hash.policy"] == "core"

    r = check_config("--config", str(f), "--set", "zafp.hot=60", "--set", "zafp.warm=4")
    assert r.returncode == 0, r.stderr
    cfg = parse_ini(r.stdout)
    assert cfg["zafp.hot"] == "60" and cfg["zafp.warm"] == "4"


def test_check_config_units(tmp_path):
    f = tmp_path / "units.conf"
    f.write_text("[server]\nidle_timeout = 2m\nmessage_timeout = 250ms\n"
                 "max_message_bytes = 64KiB\nmax_output_bytes = 2MiB\n"
                 "[lugs]\ngrace_period = 1h\n[cache]\nmax_bytes = 1GiB\n")
    r = check_config("--config", str(f))
    assert r.returncode == 0, r.stderr
    cfg = parse_ini(r.stdout)
    assert cfg["server.idle_timeout"] == "120s"
    assert cfg["server.message_timeout"] == "250ms"
    assert cfg["server.max_message_bytes"] == "64KiB"
    assert cfg["server.max_output_bytes"] == "2MiB"
    assert cfg["lugs.grace_period"] == "1h"
    assert cfg["cache.max_bytes"] == "1GiB"
    # and the same values as lmms.config reports them are what print says:
    # checked end to end in test_sighup_applies_a_live_change


@pytest.mark.parametrize("body, line, key, why", [
    ("[server]\nmax_connections = 8\n\n[zafp]\nbogus = 1\n", 5, "bogus", "unknown key"),
    ("[lugs]\n# comment\ngrace_period = soon\n", 3, "grace_period", "not a duration"),
    ("[cache]\nmax_bytes = lots\n", 2, "max_bytes", ""),
    ("[server]\nmax_depth = 33\n", 2, "max_depth", "out of range"),
    ("[server]\nmax_connections = 0\n", 2, "max_connections", "out of range"),
    ("[lugs]\nkeep_while_cached = perhaps\n", 2, "keep_while_cached", ""),
])
def test_check_config_errors_name_file_line_and_key(tmp_path, body, line, key, why):
    f = tmp_path / "bad.conf"
    f.write_text(body)
    r = check_config("--config", str(f))
    assert r.returncode == 1
    assert r.stdout == ""
    assert "%s:%d:" % (f, line) in r.stderr, r.stderr
    assert key in r.stderr
    assert why in r.stderr


def test_check_config_error_in_a_dropin_names_the_dropin(tmp_path):
    f = tmp_path / "lmmsd.conf"
    f.write_text("[zafp]\nhot = 30\n")
    (tmp_path / "lmmsd.conf.d").mkdir()
    bad = tmp_path / "lmmsd.conf.d" / "50-bad.conf"
    bad.write_text("[zafp]\n\nhot = -1\n")
    r = check_config("--config", str(f))
    assert r.returncode == 1
    assert "%s:3:" % bad in r.stderr and "hot" in r.stderr, r.stderr


def test_check_config_bad_set_and_missing_file(tmp_path):
    r = check_config("--set", "zafp.nope=1")
    assert r.returncode == 1 and "zafp.nope" in r.stderr and "unknown key" in r.stderr
    r = check_config("--set", "server.idle_timeout=fast")
    assert r.returncode == 1 and "idle_timeout" in r.stderr
    r = check_config("--config", str(tmp_path / "absent.conf"))
    assert r.returncode == 1 and "absent.conf" in r.stderr


def test_daemon_refuses_to_start_with_a_bad_file(tmp_path):
    f = tmp_path / "bad.conf"
    f.write_text("[server]\nmax_inflight = many\n")
    r = subprocess.run([lmmsd_exe(), "--socket", str(tmp_path / "s.sock"),
                        "--module-dir", module_dir(), "--config", str(f)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "%s:2:" % f in r.stderr and "max_inflight" in r.stderr
    assert not (tmp_path / "s.sock").exists()


# ---------------------------------------------------------------- reload


def test_sighup_applies_a_live_change(daemon, tmp_path):
    f = tmp_path / "lmmsd.conf"
    f.write_text("[zafp]\nwarm = 5\nhot = 20\n[cache]\ndefault_ttl = 300s\n")
    d = daemon("--config", f)
    cfg = config_of(d)
    assert cfg["zafp.hot"] == "20" and cfg["cache.default_ttl"] == "300s"

    f.write_text("[zafp]\nwarm = 1\nhot = 2\n[cache]\ndefault_ttl = 7s\n")
    os.kill(d.pid, signal.SIGHUP)
    cfg = poll(lambda: (lambda c: c if c["zafp.hot"] == "2" else None)(config_of(d)),
               "zafp.hot=2 after SIGHUP")
    assert cfg["cache.default_ttl"] == "7s"
    assert "configuration reloaded" in d.log()

    # The new threshold is in force, not only displayed: 3 calls make it hot.
    with d.client() as c:
        for i in range(3):  # distinct args: cache hits would not reach the op
            c.call("hash.sha256", "abc%d" % i)
        ops = {o["method"]: o for o in c.ops()}
    assert ops["hash.sha256"]["heat"] in ("hot", "critical"), ops["hash.sha256"]
    assert ops["hash.sha256"]["cache_ttl_ms"] == 7000


def test_sighup_with_a_broken_file_keeps_the_old_config(daemon, tmp_path):
    f = tmp_path / "lmmsd.conf"
    f.write_text("[zafp]\nhot = 25\n")
    d = daemon("--config", f)
    before = config_of(d)
    assert before["zafp.hot"] == "25"

    f.write_text("[zafp]\nhot = 3\n\ncritical = lots\n")
    os.kill(d.pid, signal.SIGHUP)
    poll(lambda: "reload refused" in d.log(), "log says the reload was refused")
    line = [ln for ln in d.log().splitlines() if "reload refused" in ln][0]
    assert "%s:4:" % f in line and "critical" in line, line
    assert config_of(d) == before
    with d.client() as c:
        assert c.ping() == "pong"


def test_lmms_reload_reports_the_error_and_then_applies(daemon, tmp_path):
    f = tmp_path / "lmmsd.conf"
    f.write_text("[cache]\ndefault_ttl = 300s\n")
    d = daemon("--config", f, "--set", "zafp.hot=40")
    before = config_of(d)

    f.write_text("[cache]\ndefault_ttl = 60s\n[server]\nno_such_key = 1\n")
    with d.client() as c:
        with pytest.raises(lmms.LmmsError) as e:
            c.call("lmms.reload")
        assert e.value.code == "bad_params"
        assert "%s:4:" % f in e.value.message and "no_such_key" in e.value.message
        assert "old configuration kept" in e.value.message
        assert c.call("lmms.config") == before

        f.write_text("[cache]\ndefault_ttl = 60s\n[zafp]\nhot = 10\n")
        assert c.call("lmms.reload") is True
        cfg = c.call("lmms.config")
    assert cfg["cache.default_ttl"] == "60s"
    # --set still wins over the file after a reload
    assert cfg["zafp.hot"] == "40"


def test_reload_reports_a_socket_change_and_keeps_the_socket(daemon, tmp_path):
    f = tmp_path / "lmmsd.conf"
    f.write_text("[server]\nmax_inflight = 64\n")
    d = daemon("--config", f)
    before = config_of(d)
    other = tmp_path / "other.sock"
    moddir = tmp_path / "mods"
    moddir.mkdir()
    f.write_text("[server]\nsocket = %s\nmax_inflight = 32\n[ligs]\nmodule_dir = %s\n"
                 % (other, moddir))
    with d.client() as c:
        assert c.call("lmms.reload") is True
        cfg = c.call("lmms.config")
    # the live key changed, the restart-only ones show what is in use
    assert cfg["server.max_inflight"] == "32"
    assert cfg["server.socket"] == before["server.socket"]
    assert cfg["ligs.module_dir"] == before["ligs.module_dir"]
    warn = [ln for ln in d.log().splitlines() if "only take effect on restart" in ln]
    assert warn and "server.socket" in warn[0] and "ligs.module_dir" in warn[0], d.log()
    assert not other.exists()
    with d.client() as c:  # still on the old socket, modules still found
        assert c.call("hash.sha256", "") == \
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# ---------------------------------------------------------------- systemd


class Proc:
    """A process started by a test, stopped with SIGTERM at teardown (must exit 0)."""

    def __init__(self, argv, env, log_path):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, env=env)
        self.pid = self.proc.pid

    def log(self):
        return self.log_path.read_text(errors="replace")

    def stop(self):
        status = stop_process(self.proc)
        self._log.close()
        return status


@pytest.fixture
def spawn(tmp_path):
    procs = []

    def start(argv, env=None):
        e = dict(os.environ)
        e.pop("LMMS_SOCKET", None)
        for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS",
                  "LISTEN_PID", "LISTEN_FDNAMES"):
            e.pop(k, None)
        e.update(env or {})
        p = Proc(argv, e, tmp_path / ("proc%d.log" % len(procs)))
        procs.append(p)
        return p

    yield start
    bad = ["%s exited with %s\n%s" % (p.pid, st, p.log())
           for p in procs for st in [p.stop()] if st != 0]
    if bad:
        pytest.fail("; ".join(bad))


def wait_connect(path, proc):
    def ok():
        if proc.proc.poll() is not None:
            pytest.fail("exited with %s:\n%s" % (proc.proc.returncode, proc.log()))
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return True
        except OSError:
            return False
        finally:
            s.close()
    poll(ok, "connect to %s" % path)


@pytest.mark.parametrize("own_path", ["same", "other"])
def test_socket_activation(spawn, tmp_path, own_path):
    """Under systemd LMMS_SOCKET names the very path of the inherited socket
    ("same"), which the daemon must neither replace nor remove; a different
    --socket ("other") must not be bound either: the inherited socket wins."""
    ssa = "/usr/bin/systemd-socket-activate"
    if not os.path.exists(ssa):
        pytest.fail("systemd-socket-activate not found (Debian package systemd)")
    sock = tmp_path / "s.sock"
    own = sock if own_path == "same" else tmp_path / "unused.sock"
    p = spawn([ssa, "-l", str(sock), lmmsd_exe(), "--socket", str(own),
               "--module-dir", module_dir()])
    wait_connect(str(sock), p)  # systemd-socket-activate binds, then execs on first use
    with lmms.Client(str(sock), timeout=DEADLINE) as c:
        assert c.ping() == "pong"
        assert c.call("hash.sha256", "abc").startswith("ba7816bf")
    poll(lambda: "ready: listening on inherited socket %s" % sock in p.log(),
         "log names the inherited socket")
    # systemd-socket-activate execs lmmsd in its own process
    poll(lambda: open("/proc/%d/comm" % p.pid).read().strip() == "lmmsd", "exec of lmmsd")
    inode = os.stat(sock).st_ino
    assert "stale socket" not in p.log()
    if own_path == "other":
        assert not own.exists()
    assert p.stop() == 0
    # it did not bind the socket, so it must not remove it
    assert sock.exists(), "lmmsd removed a socket it had inherited"
    assert os.stat(sock).st_ino == inode


class NotifySocket:
    """A stand-in for the service manager's notification socket. A thread
    drains it all the time: sd_notify() blocks once the datagram queue of an
    unread socket is full (net.unix.max_dgram_qlen, 10 by default), and a
    test that stops reading must not freeze the daemon it is watching."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self._lines = []
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self._lines += data.decode(errors="replace").splitlines()

    @property
    def lines(self):
        with self._lock:
            return list(self._lines)

    def clear(self):
        with self._lock:
            self._lines.clear()

    def count_within(self, line, seconds):
        """How many times line arrives in the next seconds."""
        self.clear()
        time.sleep(seconds)
        return self.lines.count(line)

    def wait_for(self, pred, what, timeout=DEADLINE):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ln in self.lines:
                if pred(ln):
                    return ln
            time.sleep(0.02)
        pytest.fail("%s: not received within %.0fs; got %r" % (what, timeout, self.lines))

    def close(self):
        self._stop = True
        self._thread.join()
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    n = NotifySocket(tmp_path / "notify.sock")
    yield n
    n.close()


def wrapped(args, env_exports=""):
    """sh, exporting WATCHDOG_PID as its own pid, execs lmmsd in place."""
    return ["/bin/sh", "-c", "export WATCHDOG_PID=$$ %s; exec \"$@\"" % env_exports, "sh",
            lmmsd_exe(), *args]


def test_ready_status_watchdog_stopping(spawn, notify, tmp_path):
    sock = str(tmp_path / "s.sock")
    p = spawn(wrapped(["--socket", sock, "--module-dir", module_dir()]),
              env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000"})
    notify.wait_for(lambda ln: ln == "READY=1", "READY=1")
    status = notify.wait_for(lambda ln: ln.startswith("STATUS="), "STATUS=")
    assert "modules resident" in status and "requests" in status, status
    mainpid = notify.wait_for(lambda ln: ln.startswith("MAINPID="), "MAINPID=")
    assert mainpid == "MAINPID=%d" % p.pid
    # READY only once the socket answers
    with lmms.Client(sock, timeout=DEADLINE) as c:
        assert c.ping() == "pong"
    # petted every 100 ms: several in two seconds, however loaded the machine
    poll(lambda: notify.lines.count("WATCHDOG=1") >= 5, "five WATCHDOG=1")
    assert notify.count_within("WATCHDOG=1", 2.0) >= 3
    assert "watchdog: petting every 100 ms" in p.log()

    os.kill(p.pid, signal.SIGTERM)
    notify.wait_for(lambda ln: ln == "STOPPING=1", "STOPPING=1")
    assert p.stop() == 0


def test_status_follows_residency_without_watchdog(spawn, notify, tmp_path):
    sock = str(tmp_path / "s.sock")
    spawn([lmmsd_exe(), "--socket", sock, "--module-dir", module_dir(),
           "--set", "lugs.sweep_interval=100ms", "--set", "lugs.grace_period=300ms",
           "--set", "lugs.min_resident=0"], env={"NOTIFY_SOCKET": notify.path})
    notify.wait_for(lambda ln: ln.startswith("STATUS=0 modules resident"), "STATUS= at READY")
    with lmms.Client(sock, timeout=DEADLINE) as c:
        c.call("echo.ping")
    # no WATCHDOG_USEC: a load sends STATUS= itself ...
    notify.wait_for(lambda ln: ln.startswith("STATUS=1 modules resident"), "STATUS= after a load")
    mark = len(notify.lines)
    # ... and so does the unload the sweep makes
    deadline = time.monotonic() + DEADLINE
    while not any(ln.startswith("STATUS=0 modules resident") for ln in notify.lines[mark:]):
        assert time.monotonic() < deadline, "no STATUS= after the unload: %r" % notify.lines
        time.sleep(0.02)
    assert "WATCHDOG=1" not in notify.lines


def test_watchdog_is_not_ours_when_watchdog_pid_differs(spawn, notify, tmp_path):
    sock = str(tmp_path / "s.sock")
    p = spawn([lmmsd_exe(), "--socket", sock, "--module-dir", module_dir()],
              env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000",
                   "WATCHDOG_PID": "1"})
    notify.wait_for(lambda ln: ln == "READY=1", "READY=1")
    time.sleep(1.0)
    assert "WATCHDOG=1" not in notify.lines
    assert "watchdog: petting" not in p.log()


def test_watchdog_pets_while_the_pool_is_busy_with_long_calls(spawn, notify, tmp_path):
    """A pool whose only thread runs a long BLOCKING call is busy, not stuck:
    the watchdog keeps petting (issue 11: systemd must not restart a daemon
    for serving slow calls), and the call is answered."""
    sock = str(tmp_path / "s.sock")
    spawn(wrapped(["--socket", sock, "--module-dir", module_dir(),
                   "--set", "server.workers=1"]),
          env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000"})
    notify.wait_for(lambda ln: ln == "READY=1", "READY=1")
    notify.wait_for(lambda ln: ln == "WATCHDOG=1", "first WATCHDOG=1")
    with lmms.Client(sock, timeout=DEADLINE) as c:
        msgid = c.request("echo.sleep", 1500)
        time.sleep(0.3)
        notify.clear()
        # several intervals of 100 ms while the only pool thread sleeps
        assert notify.count_within("WATCHDOG=1", 0.6) >= 3, notify.lines
        assert c.wait(msgid) == 1500
