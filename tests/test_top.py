"""lmmsctl top: --once for scripts, and the live ncurses view driven in a
real terminal (tmux: send-keys, capture-pane) — alternate screen, q and
Ctrl-C restore the terminal, resize, per-second rates, reconnection after
the daemon restarts."""

import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import Daemon, build_root, run_lmmsctl, wait_for

LMMSCTL = str(build_root() / "client" / "lmmsctl")


def hammer(sock, stop, method="echo.ping"):
    """Call method in a loop until stop is set (bounded: at most 60 s)."""
    import lmms
    deadline = time.monotonic() + 60
    with lmms.Client(sock, timeout=10) as c:
        while not stop.is_set() and time.monotonic() < deadline:
            c.call(method, 1)


def test_once_prints_one_plain_frame_with_rates(lmmsd):
    stop = threading.Event()
    t = threading.Thread(target=hammer, args=(lmmsd.socket, stop))
    t.start()
    try:
        r = run_lmmsctl("-s", lmmsd.socket, "top", "--once", "--interval", "500")
    finally:
        stop.set()
        t.join(30)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "\033" not in out  # no terminal control for scripts
    assert out.startswith("lmmsd %s " % lmmsd.socket)
    rate = float(re.search(r"^calls/s (\S+)", out, re.M).group(1).rstrip("k"))
    assert rate > 0, out
    lines = out.split("\n")
    mods = lines.index(next(ln for ln in lines if ln.startswith("MODULE ")))
    assert lines[mods].split() == ["MODULE", "STATE", "HEAT", "RESIDENT", "IDLE", "GRACE",
                                   "WHY"]
    ops = lines.index(next(ln for ln in lines if ln.startswith("OP ")))
    assert lines[ops].split() == ["OP", "CALLS/S", "CALLS", "P99", "HEAT", "FAST"]
    # the busiest op comes first, with a rate of its own
    first = lines[ops + 1].split()
    assert first[0] == "echo.ping" and float(first[1].rstrip("k")) > 0, out
    echo = next(ln for ln in lines[mods:ops] if ln.startswith("echo "))
    assert echo.split()[1] == "loaded"
    # one frame only
    assert out.count("MODULE ") == 1


def test_once_without_daemon_exits_3(tmp_path):
    r = run_lmmsctl("-s", str(tmp_path / "none.sock"), "top", "--once")
    assert r.returncode == 3
    assert "cannot connect" in r.stderr


class Tmux:
    """A tmux server of our own (its own socket name) running one command."""

    def __init__(self, tmp_path, command, width=120, height=40):
        self.tmux = shutil.which("tmux")
        if not self.tmux:
            pytest.fail("tmux not found (Debian: tmux)")
        self.name = "lmms-test-%d-%d" % (os.getpid(), id(self))
        self.status = tmp_path / "status"
        # The shell must outlive a Ctrl-C to record the status: a trap (not
        # an ignore, which the command would inherit) keeps it.
        script = "trap : INT; %s; echo $? > %s; exec sleep 120" % (command, self.status)
        self.run("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height),
                 "env TERM=screen LANG=C.UTF-8 sh -c '%s'" % script)

    def run(self, *args):
        return subprocess.run([self.tmux, "-L", self.name, "-f", "/dev/null", *args],
                              capture_output=True, text=True, timeout=30)

    def screen(self):
        return self.run("capture-pane", "-p", "-t", "t").stdout

    def alternate_on(self):
        return self.run("display-message", "-p", "-t", "t", "#{alternate_on}").stdout.strip()

    def keys(self, *keys):
        self.run("send-keys", "-t", "t", *keys)

    def exit_status(self):
        try:
            return int(self.status.read_text())
        except (OSError, ValueError):
            return None

    def kill(self):
        self.run("kill-server")


@pytest.fixture
def tmux(tmp_path):
    made = []

    def start(command, **kw):
        t = Tmux(tmp_path, command, **kw)
        made.append(t)
        return t
    yield start
    for t in made:
        t.kill()


def test_screen_q_quits_and_restores(lmmsd, tmux):
    assert lmmsd.ctl("call", "echo.ping").returncode == 0  # an op for the ops pane
    t = tmux("%s -s %s top --interval 200" % (LMMSCTL, lmmsd.socket))
    wait_for(lambda: "MODULE" in t.screen(), "the first frame")
    assert t.alternate_on() == "1"  # drawn on the alternate screen
    screen = t.screen()
    assert "(q quits)" in screen and "OP " in screen
    t.keys("q")
    wait_for(lambda: t.exit_status() is not None, "top to exit on q")
    assert t.exit_status() == 0
    assert t.alternate_on() == "0"
    assert "MODULE" not in t.screen()  # the frame went with the alternate screen


def test_screen_ctrl_c_quits_and_restores(lmmsd, tmux):
    t = tmux("%s -s %s top --interval 200" % (LMMSCTL, lmmsd.socket))
    wait_for(lambda: "MODULE" in t.screen(), "the first frame")
    t.keys("C-c")
    wait_for(lambda: t.exit_status() is not None, "top to exit on Ctrl-C")
    assert t.exit_status() == 0
    assert t.alternate_on() == "0"
    # the terminal is back in its normal modes: what is typed is echoed
    t.keys("typed-after-top")
    wait_for(lambda: "typed-after-top" in t.screen(), "the terminal to echo input")


def test_screen_rates_and_resize(lmmsd, tmux):
    stop = threading.Event()
    th = threading.Thread(target=hammer, args=(lmmsd.socket, stop))
    th.start()
    try:
        t = tmux("%s -s %s top --interval 300" % (LMMSCTL, lmmsd.socket))

        def busy():
            m = re.search(r"^calls/s (\S+)", t.screen(), re.M)
            return m and m.group(1) not in ("-", "0")
        wait_for(busy, "a non-zero calls/s", timeout=15)
        assert re.search(r"^echo\.ping +[0-9.]+k? ", t.screen(), re.M), t.screen()

        t.run("resize-window", "-t", "t", "-x", "60", "-y", "20")

        def fits():
            lines = t.screen().rstrip("\n").split("\n")
            return "MODULE" in t.screen() and len(lines) <= 20 and \
                all(len(ln) <= 60 for ln in lines)
        wait_for(fits, "a frame laid out for 60x20")
    finally:
        stop.set()
        th.join(30)
    t.keys("q")
    wait_for(lambda: t.exit_status() == 0, "top to exit")


def test_screen_reconnects_after_restart(daemon, tmux, tmp_path):
    d = daemon()
    t = tmux("%s -s %s top --interval 200" % (LMMSCTL, d.socket))
    wait_for(lambda: "MODULE" in t.screen(), "the first frame")
    assert d.stop() == 0
    wait_for(lambda: "reconnecting" in t.screen(), "top to notice the daemon left")
    assert t.exit_status() is None  # still running
    # the same socket path again, as a restarted service has
    d2 = Daemon(Path(d.socket).parent, [])
    try:
        wait_for(lambda: "MODULE" in t.screen() and "reconnecting" not in t.screen(),
                 "top to show the new daemon")
        assert t.exit_status() is None
        t.keys("q")
        wait_for(lambda: t.exit_status() == 0, "top to exit")
    finally:
        assert d2.stop() == 0
