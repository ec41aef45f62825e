"""The pure-Python binding (client/bindings/python/lmms.py) against a real lmmsd."""

import hashlib
import os
import time

import msgpack
import pytest

import lmms


def test_ping_and_call(lmmsd):
    with lmmsd.client() as c:
        assert c.ping() == "pong"
        assert c.call("hash.sha256", "abc") == hashlib.sha256(b"abc").hexdigest()
        assert c.call("hash.sha256", b"\x00\xff") == hashlib.sha256(b"\x00\xff").hexdigest()
        assert c.call("echo.ping", 1, "two", [3], {"four": 4}) == [1, "two", [3], {"four": 4}]


def test_builtins(lmmsd):
    with lmmsd.client() as c:
        stats = c.stats()
        assert isinstance(stats, dict) and "requests_total" in stats
        mods = c.modules()
        assert "echo" in [m["name"] for m in mods]
        c.call("echo.upper", "x")
        assert "echo.upper" in [o["method"] for o in c.ops()]


def test_errors(lmmsd):
    with lmmsd.client() as c:
        with pytest.raises(lmms.LmmsError) as e:
            c.call("echo.no_such_op")
        assert e.value.code == "no_such_method"
        assert isinstance(e.value.message, str) and e.value.message

        with pytest.raises(lmms.LmmsError) as e:
            c.call("nosuchmodule.op")
        assert e.value.code == "no_such_module"

        with pytest.raises(lmms.LmmsError) as e:
            c.call("echo.fail", "on purpose")
        assert e.value.code == "module_error"
        assert "on purpose" in e.value.message

        # A well-formed bad request keeps the connection usable.
        assert c.ping() == "pong"


def test_out_of_order(lmmsd):
    with lmmsd.client() as c:
        slow = c.request("echo.sleep", 200)
        fast = c.request("echo.ping", "quick")
        assert slow != fast
        t0 = time.monotonic()
        first = c.recv_message()
        took = time.monotonic() - t0
        # The fast answer overtakes the BLOCKING sleep on its worker thread.
        assert first[0] == 1 and first[1] == fast, first
        assert first[2] is None and first[3] == ["quick"]
        assert took < 0.2
        second = c.recv_message()
        assert second[0] == 1 and second[1] == slow and second[3] == 200


def test_wait_matches_by_msgid(lmmsd):
    with lmmsd.client() as c:
        slow = c.request("echo.sleep", 200)
        fast = c.request("echo.ping", "quick")
        # Waiting for the slow one first stores the fast answer on the way.
        assert c.wait(slow) == 200
        assert fast in c._pending
        assert c.wait(fast) == ["quick"]
        assert not c._pending


def test_notification_is_not_answered(lmmsd):
    with lmmsd.client() as c:
        c.notify("echo.ping", 1)
        c.notify("nvim_unknown_notification")
        assert c.ping() == "pong"
        with pytest.raises(TimeoutError):
            c.recv_message(timeout=0.2)


def test_malformed_input_closes_connection(lmmsd):
    with lmmsd.client() as c:
        c.send_raw(b"\xc1")  # never-used msgpack byte
        with pytest.raises(ConnectionError):
            while True:
                c.recv_message(timeout=5)
    # Other clients are unaffected.
    with lmmsd.client() as c:
        assert c.ping() == "pong"


def test_bad_shape_with_msgid_gets_error(lmmsd):
    with lmmsd.client() as c:
        c.send_raw(msgpack.packb([0, 77, 123, []]))  # method is not a string
        msg = c.recv_message(timeout=5)
        assert msg[0] == 1 and msg[1] == 77
        assert msg[2][0] == "bad_request"


def test_timeout(lmmsd):
    with lmmsd.client(timeout=0.1) as c:
        with pytest.raises(TimeoutError):
            c.call("echo.sleep", 1000)


def test_default_socket(monkeypatch):
    monkeypatch.setenv("LMMS_SOCKET", "/x/y.sock")
    assert lmms.default_socket() == "/x/y.sock"
    monkeypatch.delenv("LMMS_SOCKET")
    if os.geteuid() == 0:
        assert lmms.default_socket() == "/run/lmms/lmmsd.sock"
    else:
        monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1234")
        assert lmms.default_socket() == "/run/user/1234/lmms/lmmsd.sock"


def test_connect_failure(tmp_path):
    with pytest.raises(OSError):
        lmms.Client(str(tmp_path / "none.sock"))
