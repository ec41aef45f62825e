"""Access control: admin methods only for admins (root, own uid, admin_uids,
admin_group via the primary gid or SO_PEERGROUPS), module files that others
could write are refused, and the connection caps and deadlines (total and per
uid, idle timeout, slowloris). Run by meson as the `access` test.

Clients of another uid run under setpriv as nobody (65534). They must be able
to reach the socket the way a member of the socket's group does in production
(lmmsd.socket: SocketGroup=lmms, SocketMode=0660): the daemon runs in a
directory anyone may traverse, and the test hands the 0660 socket to the
group nogroup (65534), which the nobody client has as its gid. The socket's
mode is never widened.
"""

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import msgpack
import pytest

import lmms
from conftest import Daemon, make_module_dir

DEADLINE = 10.0
NOBODY = 65534
OTHER_GROUP = "users"  # a group nobody is not in unless setpriv puts it there

# A self-contained client for setpriv'ed runs (it must not need to read the
# source tree): argv[1] the socket, argv[2] a JSON list of [method, params...];
# prints a JSON list of {"ok": result} or {"error": [code, message]}.
CLIENT = r"""
import json, socket, sys, msgpack
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
u = msgpack.Unpacker(raw=False, strict_map_key=False)
out = []
for i, (method, *params) in enumerate(json.loads(sys.argv[2]), 1):
    s.sendall(msgpack.packb([0, i, method, params], use_bin_type=True))
    while True:
        try:
            m = next(u)
            break
        except StopIteration:
            data = s.recv(65536)
            if not data:
                sys.exit("lmmsd closed the connection")
            u.feed(data)
    assert m[0] == 1 and m[1] == i, m
    out.append({"error": list(m[2])} if m[2] is not None else {"ok": m[3]})
print(json.dumps(out))
"""


def gid_of(name):
    import grp
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        pytest.skip("no group %s on this machine" % name)


def as_other(sock, calls, uid=NOBODY, gid=NOBODY, groups=None):
    """Run calls on the daemon as uid/gid with the given supplementary groups."""
    cmd = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid]
    cmd += ["--groups=" + ",".join(str(g) for g in groups)] if groups else ["--clear-groups"]
    cmd += ["/usr/bin/python3", "-B", "-c", CLIENT, sock, json.dumps(calls)]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=30, cwd="/")
    assert r.returncode == 0, "client as uid %d failed: %s" % (uid, r.stderr)
    return json.loads(r.stdout)


@pytest.fixture
def shared_daemon(request):
    """daemon(*args) with its socket reachable by group nogroup, like lmmsd.socket."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run clients as another uid")
    if not shutil.which("setpriv"):
        pytest.fail("setpriv not found (util-linux)")
    started, dirs = [], []
    request.node._lmms_daemons = started

    def start(*args):
        tmp = Path(tempfile.mkdtemp(prefix="lmms-access-"))
        dirs.append(tmp)
        os.chmod(tmp, 0o755)
        d = Daemon(tmp, [str(a) for a in args])
        started.append(d)
        st = os.stat(d.socket)
        assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
        os.chown(d.socket, -1, NOBODY)
        return d

    yield start
    bad = ["lmmsd (pid %d) exited with %s" % (d.pid, s) for d in started
           for s in [d.stop()] if s != 0]
    for t in dirs:
        shutil.rmtree(t, ignore_errors=True)
    if bad:
        pytest.fail("; ".join(bad))


# json, not hash: hash may be pinned (libcrypto is -z nodelete) and then
# refuses every unload, which is not what these tests are about.
ADMIN_CALLS = [["lmms.load", "json"], ["lmms.invalidate"], ["lmms.unload", "json"],
               ["lmms.reload"]]
ORDINARY_CALLS = [["lmms.ping"], ["hash.sha256", "abc"], ["lmms.stats"], ["lmms.config"]]
SHA_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
UNLOADABLE = ("--set", "lugs.grace_period=0", "--set", "lugs.min_resident=0")


def assert_admin_allowed(res):
    assert "ok" in res[0], res[0]
    assert res[0]["ok"]["name"] == "json" and res[0]["ok"]["state"] == "loaded"
    assert isinstance(res[1]["ok"], int)
    assert res[2] == {"ok": True}, res[2]
    assert res[3] == {"ok": True}, res[3]


def assert_admin_denied(res, uid=NOBODY):
    for call, r in zip(ADMIN_CALLS, res):
        assert "error" in r, (call, r)
        code, message = r["error"]
        assert code == "denied", (call, r)
        assert "uid %d" % uid in message and call[0] in message, message


# ---------------------------------------------------------------- admin methods


def test_other_uid_is_denied_admin_but_served(shared_daemon):
    d = shared_daemon(*UNLOADABLE)
    assert_admin_denied(as_other(d.socket, ADMIN_CALLS))
    with d.client() as c:  # the denied load did not load anything
        mods = {m["name"]: m for m in c.modules()}
        assert mods["json"]["state"] == "unloaded" and mods["json"]["loads"] == 0
    res = as_other(d.socket, ORDINARY_CALLS)
    assert res[0] == {"ok": "pong"}
    assert res[1] == {"ok": SHA_ABC}
    assert res[2]["ok"]["requests_total"] >= 2
    assert res[3]["ok"]["zafp.hot"] == "20"


def test_admin_uids_allows(shared_daemon):
    d = shared_daemon("--set", "access.admin_uids=1000,%d" % NOBODY, *UNLOADABLE)
    assert_admin_allowed(as_other(d.socket, ADMIN_CALLS))
    # another uid not in the list is still refused
    assert_admin_denied(as_other(d.socket, ADMIN_CALLS, uid=4242), uid=4242)


def test_admin_group_through_supplementary_groups(shared_daemon):
    other = gid_of(OTHER_GROUP)
    d = shared_daemon("--set", "access.admin_group=" + OTHER_GROUP, *UNLOADABLE)
    # SO_PEERGROUPS: OTHER_GROUP only as a supplementary group
    assert_admin_allowed(as_other(d.socket, ADMIN_CALLS, groups=[other]))
    # the same uid without the group
    assert_admin_denied(as_other(d.socket, ADMIN_CALLS))
    # through the primary gid (nogroup supplementary, to reach the socket)
    assert_admin_allowed(as_other(d.socket, ADMIN_CALLS, gid=other, groups=[NOBODY]))


def test_admin_group_that_does_not_exist_admits_nobody(shared_daemon):
    d = shared_daemon("--set", "access.admin_group=lmms-no-such-group", *UNLOADABLE)
    assert "does not exist" in d.log()
    assert_admin_denied(as_other(d.socket, ADMIN_CALLS))


def test_root_is_admin(shared_daemon):
    d = shared_daemon(*UNLOADABLE)
    with d.client() as c:
        assert c.call("lmms.load", "json")["state"] == "loaded"
        assert isinstance(c.call("lmms.invalidate"), int)
        assert c.call("lmms.unload", "json") is True
        assert c.call("lmms.reload") is True


def test_admin_uids_change_on_reload(shared_daemon, tmp_path):
    conf = tmp_path / "lmmsd.conf"
    conf.write_text("[access]\nadmin_uids =\n")
    d = shared_daemon("--config", conf, *UNLOADABLE)
    assert_admin_denied(as_other(d.socket, ADMIN_CALLS))
    conf.write_text("[access]\nadmin_uids = %d\n" % NOBODY)
    os.kill(d.pid, signal.SIGHUP)
    deadline = time.monotonic() + DEADLINE
    while "configuration reloaded" not in d.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert_admin_allowed(as_other(d.socket, ADMIN_CALLS))


# ---------------------------------------------------------------- module files


@pytest.fixture
def moddir(tmp_path):
    return make_module_dir(tmp_path, "hash")


def load_error(d):
    with d.client() as c:
        with pytest.raises(lmms.LmmsError) as e:
            c.call("hash.sha256", "abc")
        mod = [m for m in c.modules() if m["name"] == "hash"][0]
    assert e.value.code == "load_failed", e.value
    assert mod["state"] == "failed" and mod["error"], mod
    return e.value.message, mod["error"]


def test_module_with_safe_permissions_loads(daemon, moddir):
    d = daemon("--module-dir", moddir)
    with d.client() as c:
        assert c.call("hash.sha256", "abc") == SHA_ABC


def test_module_file_writable_by_others_is_refused(daemon, moddir):
    os.chmod(moddir / "hash.so", 0o666)
    d = daemon("--module-dir", moddir)
    msg, err = load_error(d)
    assert "hash.so is writable by others than root" in msg and "refusing" in msg, msg
    assert "writable" in err


def test_module_file_writable_by_group_is_refused(daemon, moddir):
    os.chmod(moddir / "hash.so", 0o775)
    d = daemon("--module-dir", moddir)
    msg, _ = load_error(d)
    assert "writable by others" in msg


def test_module_dir_writable_by_others_is_refused(daemon, moddir):
    os.chmod(moddir, 0o777)
    d = daemon("--module-dir", moddir)
    msg, _ = load_error(d)
    assert "module directory %s is writable" % moddir in msg, msg


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")


@needs_root
def test_module_file_of_another_uid_is_refused(daemon, moddir):
    os.chown(moddir / "hash.so", NOBODY, NOBODY)
    os.chmod(moddir / "hash.so", 0o755)
    d = daemon("--module-dir", moddir)
    msg, _ = load_error(d)
    assert "hash.so" in msg and "refusing" in msg, msg


@needs_root
def test_module_dir_of_another_uid_is_refused(daemon, moddir):
    os.chown(moddir, NOBODY, NOBODY)
    d = daemon("--module-dir", moddir)
    msg, _ = load_error(d)
    assert "module directory" in msg, msg


# ---------------------------------------------------------------- caps


def closed_by_daemon(c, timeout=DEADLINE):
    """True when the daemon closes c (EOF) within timeout."""
    try:
        c.recv_message(timeout=timeout)
    except ConnectionError:
        return True
    except TimeoutError:
        return False
    pytest.fail("unexpected message from lmmsd")


def call_refused(c):
    try:
        c.ping()
    except ConnectionError:
        return True
    return False


def client_within_cap(d):
    """A served connection. The start-up probe and other just-closed
    connections count until the daemon has seen them go, so retry a while."""
    deadline = time.monotonic() + DEADLINE
    while True:
        c = d.client()
        try:
            assert c.ping() == "pong"
            return c
        except ConnectionError:
            c.close()
            assert time.monotonic() < deadline, "no connection slot within %.0fs" % DEADLINE
            time.sleep(0.05)


def test_max_connections(daemon):
    d = daemon("--set", "server.max_connections=3")
    first = [client_within_cap(d) for _ in range(3)]
    with d.client() as fourth:
        assert call_refused(fourth)
    assert "too many connections" in d.log()
    for c in first:  # the first three keep working
        assert c.ping() == "pong"
    # a slot freed is a slot available again, and then the cap holds again
    first.pop().close()
    first.append(client_within_cap(d))
    with d.client() as c:
        assert call_refused(c)
    for c in first:
        c.close()


def test_max_connections_per_uid(shared_daemon):
    d = shared_daemon("--set", "server.max_connections_per_uid=2",
                      "--set", "server.max_connections=10")
    mine = [client_within_cap(d) for _ in range(2)]
    with d.client() as third:
        assert call_refused(third)
    # another uid has its own allowance
    assert as_other(d.socket, [["lmms.ping"]]) == [{"ok": "pong"}]
    for c in mine:
        assert c.ping() == "pong"
        c.close()


def test_idle_timeout(daemon):
    d = daemon("--set", "server.idle_timeout=300ms")
    with d.client() as idle, d.client() as busy:
        assert idle.ping() == "pong" and busy.ping() == "pong"
        msgid = busy.request("echo.sleep", 1500)
        assert closed_by_daemon(idle), "an idle connection was kept"
        # a call in flight for 5x the timeout is not idleness
        assert busy.wait(msgid) == 1500
    with d.client() as c:  # the daemon itself is fine
        assert c.ping() == "pong"


def test_no_idle_timeout_by_default(daemon):
    d = daemon()
    with d.client() as c:
        assert c.ping() == "pong"
        assert not closed_by_daemon(c, timeout=1.0)
        assert c.ping() == "pong"


def test_message_timeout_closes_a_stalled_message(daemon):
    d = daemon("--set", "server.message_timeout=300ms")
    msg = msgpack.packb([0, 1, "hash.sha256", ["x" * 200]], use_bin_type=True)
    with d.client() as slow, d.client() as other:
        slow.send_raw(msg[:len(msg) // 2])
        t0 = time.monotonic()
        served = 0
        # others are served while the slow one stalls
        while time.monotonic() - t0 < 0.5:
            assert other.ping() == "pong"
            served += 1
        assert served > 0
        assert closed_by_daemon(slow), "a half message was waited on forever"
        assert other.ping() == "pong"
    assert "message incomplete after" in d.log()


def test_message_timeout_closes_a_drip(daemon):
    """One byte at a time still has to finish within the deadline."""
    d = daemon("--set", "server.message_timeout=300ms")
    msg = msgpack.packb([0, 1, "hash.sha256", ["x" * 200]], use_bin_type=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(d.socket)
    closed = False
    try:
        for i in range(len(msg)):
            if i * 0.1 > DEADLINE:
                break
            s.sendall(msg[i:i + 1])
            time.sleep(0.1)
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    if not closed:  # maybe the last send got in before the close took effect
        s.settimeout(DEADLINE)
        try:
            closed = s.recv(1) == b""
        except ConnectionResetError:
            closed = True
    s.close()
    assert closed, "a message dripping in one byte per 100 ms was not cut off"
    assert "message incomplete after" in d.log()


def test_message_timeout_leaves_quiet_connections_alone(daemon):
    d = daemon("--set", "server.message_timeout=300ms")
    with d.client() as c:
        assert not closed_by_daemon(c, timeout=1.0)
        assert c.ping() == "pong"


def test_peer_with_more_groups_than_kept(shared_daemon):
    """SO_PEERGROUPS is all or nothing: a peer in many groups is still
    served, its primary gid still counts, and the log says why the others do not."""
    other = gid_of(OTHER_GROUP)
    d = shared_daemon("--set", "access.admin_group=" + OTHER_GROUP, *UNLOADABLE)
    many = [NOBODY] + list(range(20000, 20100))
    assert as_other(d.socket, [["lmms.ping"]], groups=many) == [{"ok": "pong"}]
    assert "only its primary gid counts" in d.log()
    assert_admin_allowed(as_other(d.socket, ADMIN_CALLS, gid=other, groups=many))
