"""Clients other than lmmsctl, as proto/PROTOCOL.md "Clients" shows them:
Neovim (vim.fn.sockconnect + vim.rpcrequest), pynvim's msgpack-rpc session,
and the default socket rule (own socket, then the system one) followed by
lmmsctl and the Python package for a member of the socket's group."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import SOURCE_ROOT, Daemon, build_root

SHA_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
NOBODY = 65534
SYSTEM_SOCKET = Path("/run/lmms/lmmsd.sock")

# The Neovim example of PROTOCOL.md, with its results written to $OUT.
NVIM_LUA = r"""
local chan = vim.fn.sockconnect('pipe', os.getenv('LMMS_SOCK'), {rpc = true})
local out = {}
table.insert(out, vim.rpcrequest(chan, 'hash.sha256', 'abc'))
table.insert(out, vim.fn.json_encode(vim.rpcrequest(chan, 'echo.ping', 1, {2, 3}, {k = 'v'})))
local ok, err = pcall(vim.rpcrequest, chan, 'hash.nope')
table.insert(out, tostring(ok) .. ' ' .. tostring(err))
table.insert(out, vim.rpcrequest(chan, 'lmms.ping'))
vim.fn.chanclose(chan)
-- the code and message, through lmmsctl
local o = vim.fn.system({os.getenv('LMMSCTL'), '-s', os.getenv('LMMS_SOCK'), 'call', 'hash.nope'})
table.insert(out, vim.v.shell_error .. ' ' .. vim.trim(o))
vim.fn.writefile(out, os.getenv('OUT'))
vim.cmd('qa!')
"""


def test_neovim(lmmsd, tmp_path):
    nvim = shutil.which("nvim")
    assert nvim, "nvim not found (Debian: neovim)"
    script = tmp_path / "lmms.lua"
    script.write_text(NVIM_LUA)
    out = tmp_path / "out.txt"
    r = subprocess.run([nvim, "--headless", "--clean", "-u", "NONE", "-c",
                        "luafile " + str(script)], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, LMMS_SOCK=lmmsd.socket, OUT=str(out),
                                LMMSCTL=str(build_root() / "client" / "lmmsctl")),
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = out.read_text().split("\n")
    assert lines[0] == SHA_ABC
    assert lines[1] == '[1, [2, 3], {"k": "v"}]'
    # Neovim shows only [int, str] errors: an lmms error [code, message]
    # arrives as a failed call without its text (PROTOCOL.md says so).
    assert lines[2] == "false unknown error", lines[2]
    assert lines[3] == "pong"  # the channel carries on after an error
    assert lines[4].startswith("1 no_such_method: "), lines[4]


def test_pynvim_session(lmmsd):
    code = r"""
import json, sys
from pynvim.msgpack_rpc import socket_session
session = socket_session(sys.argv[1])
# pynvim raises session.error_wrapper(error); Nvim's own is not set on a bare
# session, so give it one that keeps lmms' [code, message].
session.error_wrapper = lambda err: RuntimeError(*err)
out = [session.request("hash.sha256", "abc"), session.request("echo.ping", 1, [2], {"k": "v"})]
try:
    session.request("hash.nope")
except RuntimeError as e:
    out.append(list(e.args))
out.append(session.request("lmms.ping"))
session.close()
print(json.dumps(out))
"""
    r = subprocess.run(["/usr/bin/python3", "-c", code, lmmsd.socket], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    import json
    out = json.loads(r.stdout)
    assert out[0] == SHA_ABC
    assert out[1] == [1, [2], {"k": "v"}]
    assert out[2][0] == "no_such_method" and "nope" in out[2][1]
    assert out[3] == "pong"


# ---- the default socket rule, as a member of the system socket's group ----

@pytest.fixture
def system_daemon():
    """A daemon reached at /run/lmms/lmmsd.sock (a symlink to its socket in a
    directory anyone may traverse), 0660 root:root to begin with."""
    if os.geteuid() != 0:
        pytest.skip("needs root: /run/lmms and clients as another uid")
    if SYSTEM_SOCKET.exists() or SYSTEM_SOCKET.is_symlink():
        pytest.skip("%s is in use on this machine" % SYSTEM_SOCKET)
    made_dir = not SYSTEM_SOCKET.parent.exists()
    tmp = Path(tempfile.mkdtemp(prefix="lmms-system-"))
    os.chmod(tmp, 0o755)
    d = Daemon(tmp, [])
    try:
        SYSTEM_SOCKET.parent.mkdir(mode=0o755, exist_ok=True)
        SYSTEM_SOCKET.symlink_to(d.socket)
        yield d, tmp
    finally:
        SYSTEM_SOCKET.unlink(missing_ok=True)
        if made_dir:
            shutil.rmtree(SYSTEM_SOCKET.parent, ignore_errors=True)
        status = d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        assert status == 0


def as_nobody(argv, runtime_dir, **kw):
    env = {"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(runtime_dir),
           "PYTHONPATH": str(SOURCE_ROOT / "client" / "bindings" / "python"),
           "LD_LIBRARY_PATH": os.environ.get("LD_LIBRARY_PATH", "")}
    return subprocess.run(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                           "--clear-groups", *argv], capture_output=True, text=True,
                          timeout=60, cwd="/", env=env, **kw)


PY_PING = r"""
import lmms
try:
    with lmms.Client() as c:
        print("pong" if c.ping() == "pong" else "?", c.path)
except lmms.ConnectError as e:
    print("ConnectError", e.errno, e)
"""


def test_default_rule_reaches_the_system_daemon(system_daemon):
    d, tmp = system_daemon
    runtime = tmp / "runtime"  # the user's own: no daemon there
    runtime.mkdir(mode=0o755)
    lmmsctl = str(build_root() / "client" / "lmmsctl")
    own = runtime / "lmms" / "lmmsd.sock"

    # Not in the socket's group: refused, with the group named.
    r = as_nobody([lmmsctl, "ping"], runtime)
    assert r.returncode == 3, r.stdout + r.stderr
    assert r.stderr.startswith("lmmsctl: cannot connect to %s: permission denied"
                               % SYSTEM_SOCKET), r.stderr
    assert "(nothing at %s either)" % own in r.stderr
    assert "group lmms" in r.stderr and "usermod -aG lmms" in r.stderr
    r = as_nobody(["/usr/bin/python3", "-B", "-c", PY_PING], runtime)
    assert r.stdout.startswith("ConnectError 13 cannot connect to %s" % SYSTEM_SOCKET), \
        r.stdout + r.stderr
    assert "group lmms" in r.stdout

    # In the socket's group (as lmmsd.socket's SocketGroup=lmms makes it):
    # no flag needed, the system daemon answers.
    os.chown(d.socket, -1, NOBODY)
    r = as_nobody([lmmsctl, "ping"], runtime)
    assert (r.returncode, r.stdout) == (0, "pong\n"), r.stderr
    r = as_nobody([lmmsctl, "call", "hash.sha256", '"abc"'], runtime)
    assert r.stdout.strip() == '"%s"' % SHA_ABC, r.stderr
    r = as_nobody(["/usr/bin/python3", "-B", "-c", PY_PING], runtime)
    assert r.stdout.split() == ["pong", str(SYSTEM_SOCKET)], r.stdout + r.stderr

    # $LMMS_SOCKET, when set, is the only socket tried.
    r = as_nobody(["env", "LMMS_SOCKET=%s" % own, lmmsctl, "ping"], runtime)
    assert r.returncode == 3 and "cannot connect to %s:" % own in r.stderr, r.stderr


def test_own_socket_comes_first(system_daemon, daemon):
    d, tmp = system_daemon
    os.chown(d.socket, -1, NOBODY)
    runtime = tmp / "runtime"
    (runtime / "lmms").mkdir(parents=True, mode=0o755)
    own = Daemon(runtime / "lmms", [])
    try:
        os.rename(own.socket, runtime / "lmms" / "lmmsd.sock")
        os.chown(runtime / "lmms" / "lmmsd.sock", -1, NOBODY)
        r = as_nobody(["/usr/bin/python3", "-B", "-c", PY_PING], runtime)
        assert r.stdout.split() == ["pong", str(runtime / "lmms" / "lmmsd.sock")], r.stdout
        # the system daemon saw no call of ours: the own one answered
        with d.client() as c:
            assert c.stats()["requests_total"] <= 2
    finally:
        os.rename(runtime / "lmms" / "lmmsd.sock", own.socket)
        assert own.stop() == 0
