"""The Python package lmms (client/bindings/python) against a real lmmsd.

The package is first installed offline with Debian's pip and setuptools into
a temporary prefix, and every test here uses that installed copy (not the
source tree conftest.py puts on sys.path): what a user gets from
`pip install --no-index --no-build-isolation client/bindings/python`.
"""

import asyncio
import errno
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgpack
import pytest

from conftest import SOURCE_ROOT, Daemon, build_root

SHA_ABC = hashlib.sha256(b"abc").hexdigest()
ERROR_CLASSES = {
    "no_such_module": "NoSuchModule", "no_such_method": "NoSuchMethod",
    "bad_request": "BadRequest", "bad_params": "BadParams", "load_failed": "LoadFailed",
    "module_error": "ModuleError", "timeout": "Timeout", "denied": "Denied", "busy": "Busy",
    "too_large": "TooLarge", "shutting_down": "ShuttingDown",
    "module_crashed": "ModuleCrashed", "internal": "Internal",
}


def pip_install(prefix, tmp):
    """pip-install the package from a copy of its source (pip builds in
    place, and the source tree must stay clean); the site dir it went to."""
    src = tmp / "src"
    shutil.copytree(SOURCE_ROOT / "client" / "bindings" / "python", src,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    r = subprocess.run(["/usr/bin/python3", "-m", "pip", "install", "--no-index",
                        "--no-build-isolation", "--no-cache-dir", "--disable-pip-version-check",
                        "--quiet", "--prefix", str(prefix), str(src)],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PIP_ROOT_USER_ACTION="ignore"))
    assert r.returncode == 0, r.stdout + r.stderr
    found = list(prefix.rglob("lmms/__init__.py"))
    assert len(found) == 1, found
    return found[0].parent.parent


@pytest.fixture(scope="module")
def installed():
    # Outside pytest's 0700 tmp tree: clients run as nobody import it too.
    tmp = Path(tempfile.mkdtemp(prefix="lmms-pip-"))
    os.chmod(tmp, 0o755)
    try:
        yield pip_install(tmp / "prefix", tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def lmms(installed):
    """The installed package, imported under its own name without disturbing
    the copy conftest.py imported from the source tree."""
    saved = {k: v for k, v in sys.modules.items() if k == "lmms" or k.startswith("lmms.")}
    for k in saved:
        del sys.modules[k]
    sys.path.insert(0, str(installed))
    try:
        pkg = importlib.import_module("lmms")
        importlib.import_module("lmms.aio")
    finally:
        sys.path.remove(str(installed))
        for k in [k for k in sys.modules if k == "lmms" or k.startswith("lmms.")]:
            del sys.modules[k]
        sys.modules.update(saved)
    assert Path(pkg.__file__).is_relative_to(installed)
    return pkg


def test_pip_installs_a_typed_package(installed):
    files = sorted(p.name for p in (installed / "lmms").iterdir() if p.is_file())
    assert files == ["__init__.py", "_core.py", "aio.py", "py.typed"]
    dist = list(installed.glob("lmms-0.1.0*-info"))
    assert dist, list(installed.iterdir())


def test_ping_and_call(lmms, lmmsd):
    with lmms.Client(lmmsd.socket) as c:
        assert c.path == lmmsd.socket
        assert c.ping() == "pong"
        assert c.call("hash.sha256", "abc") == SHA_ABC
        assert c.call("hash.sha256", b"\x00\xff") == hashlib.sha256(b"\x00\xff").hexdigest()
        assert c.call("echo.ping", 1, "two", [3], {"four": 4}) == [1, "two", [3], {"four": 4}]


def test_builtins(lmms, lmmsd):
    with lmms.Client(lmmsd.socket) as c:
        stats = c.stats()
        assert isinstance(stats, dict) and "requests_total" in stats
        assert "echo" in [m["name"] for m in c.modules()]
        c.call("echo.upper", "x")
        assert "echo.upper" in [o["method"] for o in c.ops()]
        assert "lugs.grace_period" in c.config()


def test_error_classes(lmms):
    for code, name in ERROR_CLASSES.items():
        cls = getattr(lmms, name)
        assert issubclass(cls, lmms.Error) and cls.code == code
        assert lmms.ERRORS[code] is cls
        e = cls(code, "text")
        assert e.code == code and e.message == "text" and str(e) == code + ": text"
    assert issubclass(lmms.Timeout, TimeoutError)
    assert issubclass(lmms.ConnectError, ConnectionError)
    assert lmms.LmmsError is lmms.Error


def test_errors(lmms, lmmsd):
    with lmms.Client(lmmsd.socket) as c:
        with pytest.raises(lmms.NoSuchMethod) as e:
            c.call("echo.no_such_op")
        assert e.value.code == "no_such_method"
        assert isinstance(e.value.message, str) and e.value.message

        with pytest.raises(lmms.NoSuchModule):
            c.call("nosuchmodule.op")

        with pytest.raises(lmms.ModuleError) as e:
            c.call("echo.fail", "on purpose")
        assert "on purpose" in e.value.message

        with pytest.raises(lmms.BadParams):
            c.call("echo.sleep", "soon")

        with pytest.raises(lmms.BadRequest):
            c.call("no_dot_here")

        with pytest.raises(lmms.Error):  # every one is an lmms.Error
            c.call("lmms.nothing")

        # A well-formed bad request keeps the connection usable.
        assert c.ping() == "pong"


def test_denied(lmms):
    if os.geteuid() != 0:
        pytest.skip("needs root to run a client as another uid")
    tmp = Path(tempfile.mkdtemp(prefix="lmms-denied-"))
    os.chmod(tmp, 0o755)
    d = Daemon(tmp, [])
    try:
        os.chown(d.socket, -1, 65534)  # nobody's group reaches the 0660 socket
        run_denied(lmms, d)
    finally:
        assert d.stop() == 0
        shutil.rmtree(tmp, ignore_errors=True)


def run_denied(lmms, d):
    installed = Path(lmms.__file__).parent.parent
    code = ("import lmms\n"
            "try:\n"
            "    lmms.Client(%r).call('lmms.reload')\n"
            "except lmms.Denied as e:\n"
            "    print('denied', e.code)\n" % d.socket)
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        "/usr/bin/python3", "-B", "-c", code], capture_output=True, text=True,
                       timeout=30, cwd="/", env=dict(os.environ, PYTHONPATH=str(installed)))
    assert r.stdout == "denied denied\n", r.stderr


def test_out_of_order(lmms, lmmsd):
    with lmms.Client(lmmsd.socket) as c:
        slow = c.request("echo.sleep", 200)
        fast = c.request("echo.ping", "quick")
        assert slow != fast
        first = c.recv_message()
        # The fast answer overtakes the BLOCKING sleep on its worker thread.
        assert first[0] == 1 and first[1] == fast, first
        assert first[2] is None and first[3] == ["quick"]
        second = c.recv_message()
        assert second[0] == 1 and second[1] == slow and second[3] == 200


def test_wait_matches_by_msgid(lmms, lmmsd):
    with lmms.Client(lmmsd.socket) as c:
        slow = c.request("echo.sleep", 200)
        fast = c.request("echo.ping", "quick")
        # Waiting for the slow one first files the fast answer on the way.
        assert c.wait(slow) == 200
        assert c._pending[fast].done
        assert c.wait(fast) == ["quick"]
        assert not c._pending


def test_late_reply_is_dropped(lmms, lmmsd):
    with lmms.Client(lmmsd.socket) as c:
        with pytest.raises(lmms.Timeout):
            c.call("echo.sleep", 300, timeout=0.05)
        assert not c._pending  # nothing waits for the late answer
        time.sleep(0.4)        # it has arrived by now, unread
        assert c.call("echo.ping", "after") == ["after"]
        assert not c._pending  # read past and dropped, never kept


def test_threads_share_one_client(lmms, lmmsd):
    errors, results = [], {}

    def worker(n, c):
        try:
            for i in range(60):
                arg = "t%d-%d" % (n, i)
                if i % 20 == 0:
                    assert c.call("echo.sleep", 5) == 5
                results[arg] = c.call("echo.ping", arg)
        except BaseException as e:  # reported below, never hangs the test
            errors.append(e)

    with lmms.Client(lmmsd.socket, timeout=20) as c:
        threads = [threading.Thread(target=worker, args=(n, c)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads), "threads hung on a shared client"
        assert not errors, errors
        assert len(results) == 6 * 60
        assert all(v == [k] for k, v in results.items())
        assert not c._pending


def test_thread_timeout_does_not_disturb_others(lmms, lmmsd):
    out = []
    with lmms.Client(lmmsd.socket, timeout=20) as c:
        def slow():
            try:
                c.call("echo.sleep", 800, timeout=0.1)
            except lmms.Timeout as e:
                out.append(e)
        t = threading.Thread(target=slow)
        t.start()
        pings = [c.call("echo.ping", i) for i in range(30)]
        t.join(30)
        assert not t.is_alive()
        assert pings == [[i] for i in range(30)]
        assert len(out) == 1
        time.sleep(0.9)
        assert c.ping() == "pong" and not c._pending


def test_notification_is_not_answered(lmms, lmmsd):
    with lmms.Client(lmmsd.socket) as c:
        c.notify("echo.ping", 1)
        c.notify("nvim_unknown_notification")
        assert c.ping() == "pong"
        with pytest.raises(TimeoutError):
            c.recv_message(timeout=0.2)


def test_malformed_input_closes_connection(lmms, lmmsd):
    with lmms.Client(lmmsd.socket) as c:
        c.send_raw(b"\xc1")  # never-used msgpack byte
        with pytest.raises(ConnectionError):
            for _ in range(10):
                c.recv_message(timeout=5)
    with lmms.Client(lmmsd.socket) as c:
        assert c.ping() == "pong"


class HangUp:
    """A peer that takes one request and closes the connection unanswered,
    as a daemon does when it dies mid-call."""

    def __init__(self, path):
        self.path = str(path)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        self.srv.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.srv.settimeout(20)
        conn, _ = self.srv.accept()
        conn.settimeout(20)
        conn.recv(65536)
        time.sleep(0.2)
        conn.close()
        self.srv.close()


def test_daemon_gone_fails_waiting_calls(lmms, tmp_path):
    peer = HangUp(tmp_path / "hangup.sock")
    with lmms.Client(peer.path) as c:
        mid = c.request("echo.sleep", 3000)
        with pytest.raises(ConnectionError):
            c.wait(mid, timeout=20)
        with pytest.raises(ConnectionError):
            c.call("lmms.ping")
    peer.thread.join(20)


def test_bad_shape_with_msgid_gets_error(lmms, lmmsd):
    with lmms.Client(lmmsd.socket) as c:
        c.send_raw(msgpack.packb([0, 77, 123, []]))  # method is not a string
        msg = c.recv_message(timeout=5)
        assert msg[0] == 1 and msg[1] == 77
        assert msg[2][0] == "bad_request"


def test_timeout(lmms, lmmsd):
    with lmms.Client(lmmsd.socket, timeout=0.1) as c:
        with pytest.raises(TimeoutError):
            c.call("echo.sleep", 1000)


def test_default_sockets(lmms, monkeypatch):
    monkeypatch.setenv("LMMS_SOCKET", "/x/y.sock")
    assert lmms.default_socket() == "/x/y.sock"
    assert lmms.default_sockets() == ["/x/y.sock"]
    monkeypatch.delenv("LMMS_SOCKET")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert lmms.default_sockets() == ["/run/lmms/lmmsd.sock"]
    monkeypatch.setattr(os, "geteuid", lambda: 1234)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1234")
    assert lmms.default_sockets() == ["/run/user/1234/lmms/lmmsd.sock",
                                      "/run/lmms/lmmsd.sock"]
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert lmms.default_socket() == "/run/user/1234/lmms/lmmsd.sock"


def test_connect_error_names_the_socket(lmms, tmp_path):
    path = str(tmp_path / "none.sock")
    with pytest.raises(lmms.ConnectError) as e:
        lmms.Client(path)
    assert isinstance(e.value, OSError) and isinstance(e.value, lmms.Error)
    assert e.value.errno == errno.ENOENT and e.value.path == path
    assert path in str(e.value) and "is lmmsd running?" in str(e.value)


def test_default_rule_falls_back(lmms, lmmsd, tmp_path, monkeypatch):
    # Own socket missing, next one answers: the client goes on to it.
    monkeypatch.delenv("LMMS_SOCKET", raising=False)
    monkeypatch.setattr(lmms._core, "default_sockets",
                        lambda: [str(tmp_path / "own.sock"), lmmsd.socket])
    monkeypatch.setattr(lmms, "default_sockets", lmms._core.default_sockets)
    with lmms.Client() as c:
        assert c.path == lmmsd.socket and c.ping() == "pong"


# ---- asyncio ----

def test_aio_calls(lmms, lmmsd):
    async def main():
        async with lmms.aio.Client(lmmsd.socket) as c:
            assert await c.ping() == "pong"
            digests = await asyncio.gather(*(c.call("hash.sha256", s) for s in ("a", "b", "c")))
            assert digests == [hashlib.sha256(s.encode()).hexdigest() for s in "abc"]
            # out of order: the fast call is answered while the slow one runs
            slow = asyncio.ensure_future(c.call("echo.sleep", 300))
            assert await c.call("echo.ping", "fast") == ["fast"]
            assert not slow.done()
            assert await slow == 300
            with pytest.raises(lmms.NoSuchMethod):
                await c.call("echo.nope")
            with pytest.raises(lmms.ModuleError):
                await c.call("echo.fail", "x")
            assert await c.ping() == "pong"
    asyncio.run(asyncio.wait_for(main(), 30))


def test_aio_timeout_drops_late_reply(lmms, lmmsd):
    async def main():
        c = await lmms.aio.connect(lmmsd.socket, timeout=10)
        try:
            with pytest.raises(lmms.Timeout):
                await c.call("echo.sleep", 300, timeout=0.05)
            assert not c._pending
            await asyncio.sleep(0.4)
            assert await c.call("echo.ping", 1) == [1]
            assert not c._pending
        finally:
            await c.close()
    asyncio.run(asyncio.wait_for(main(), 30))


def test_aio_connect_error(lmms, tmp_path):
    async def main():
        with pytest.raises(lmms.ConnectError) as e:
            await lmms.aio.connect(str(tmp_path / "none.sock"))
        assert "none.sock" in str(e.value)
    asyncio.run(main())


def test_aio_daemon_gone(lmms, tmp_path):
    peer = HangUp(tmp_path / "hangup.sock")

    async def main():
        async with lmms.aio.Client(peer.path) as c:
            with pytest.raises(ConnectionError):
                await asyncio.wait_for(c.call("echo.sleep", 3000), 20)
            with pytest.raises(ConnectionError):
                await c.call("lmms.ping")
    asyncio.run(main())
    peer.thread.join(20)


# ---- meson install ----

def test_meson_installs_where_python_looks():
    r = subprocess.run(["meson", "introspect", str(build_root()), "--installed"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    dests = [v for k, v in json.loads(r.stdout).items() if k.endswith("lmms/__init__.py")]
    assert len(dests) == 1, dests
    site = str(Path(dests[0]).parent.parent)
    prefix = json.loads(subprocess.run(["meson", "introspect", str(build_root()),
                                        "--buildoptions"], capture_output=True, text=True,
                                       timeout=60).stdout)
    prefix = [o["value"] for o in prefix if o["name"] == "prefix"][0]
    if prefix not in ("/usr", "/usr/local"):
        pytest.skip("prefix %s: Debian's python3 looks in neither case" % prefix)
    path = subprocess.run(["/usr/bin/python3", "-c", "import sys; print('\\n'.join(sys.path))"],
                          capture_output=True, text=True, timeout=30, cwd="/").stdout.split()
    assert site in path, (site, path)
