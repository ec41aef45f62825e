"""lmms - pure-Python client for lmmsd (MessagePack-RPC over a Unix socket).

    from lmms import Client, LmmsError

    with Client() as c:                  # default socket, see default_socket()
        print(c.ping())                  # "pong"
        print(c.call("hash.sha256", "abc"))
        try:
            c.call("nope.nothing")
        except LmmsError as e:
            print(e.code, e.message)     # no_such_module ...

Several requests may be in flight on one connection: request() sends and
returns the msgid, wait(msgid) returns that call's result (or raises), keeping
answers to other msgids that arrive meanwhile. send_raw() / recv_message() give
tests direct access to the byte stream (malformed input, ordering).

Needs the msgpack package (Debian: python3-msgpack).
"""

import os
import socket
import time

import msgpack

__all__ = ["Client", "LmmsError", "default_socket"]

REQUEST, RESPONSE, NOTIFICATION = 0, 1, 2

# The client's own limit on one incoming message (same as liblmms-client).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def default_socket():
    """$LMMS_SOCKET, else /run/lmms/lmmsd.sock for root, else
    $XDG_RUNTIME_DIR/lmms/lmmsd.sock (/run/user/UID when unset)."""
    env = os.environ.get("LMMS_SOCKET")
    if env:
        return env
    if os.geteuid() == 0:
        return "/run/lmms/lmmsd.sock"
    xdg = os.environ.get("XDG_RUNTIME_DIR") or "/run/user/%d" % os.geteuid()
    return os.path.join(xdg, "lmms", "lmmsd.sock")


class LmmsError(Exception):
    """The daemon answered a call with an error: code is the stable wire code
    ("no_such_method", "bad_params", ...), message the human text."""

    def __init__(self, code, message):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message


class Client:
    """One connection to lmmsd. Not thread-safe."""

    def __init__(self, path=None, timeout=30.0):
        self.path = path or default_socket()
        self.timeout = timeout
        self._next_msgid = 1
        self._pending = {}  # msgid -> (error, result) received early
        self._unpacker = msgpack.Unpacker(raw=False, strict_map_key=False,
                                          unicode_errors="surrogateescape",
                                          max_buffer_size=MAX_MESSAGE_BYTES)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.settimeout(timeout)
            self._sock.connect(self.path)
        except BaseException:
            self._sock.close()
            raise

    # -- lifetime --

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- raw stream --

    def send_raw(self, data):
        """Write bytes to the socket as they are."""
        self._sock.sendall(data)

    def recv_message(self, timeout=None):
        """Next whole message from the daemon, decoded (a list for a valid
        message). Raises TimeoutError, or ConnectionError when the daemon
        closed the connection."""
        deadline = None
        t = self.timeout if timeout is None else timeout
        if t is not None:
            deadline = time.monotonic() + t
        while True:
            try:
                return next(self._unpacker)
            except StopIteration:
                pass
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no message from lmmsd within %.3fs" % t)
                self._sock.settimeout(left)
            else:
                self._sock.settimeout(None)
            try:
                data = self._sock.recv(65536)
            except socket.timeout:
                raise TimeoutError("no message from lmmsd within %.3fs" % t) from None
            if not data:
                raise ConnectionError("lmmsd closed the connection")
            self._unpacker.feed(data)

    # -- calls --

    def request(self, method, *params):
        """Send a request; returns its msgid for wait()."""
        msgid = self._next_msgid
        self._next_msgid = (self._next_msgid + 1) & 0xFFFFFFFF
        self.send_raw(msgpack.packb([REQUEST, msgid, method, list(params)],
                                    use_bin_type=True))
        return msgid

    def notify(self, method, *params):
        """Send a notification (executed, never answered)."""
        self.send_raw(msgpack.packb([NOTIFICATION, method, list(params)],
                                    use_bin_type=True))

    def wait(self, msgid, timeout=None):
        """Result of the request msgid; raises LmmsError on an error reply."""
        if msgid not in self._pending:
            t = self.timeout if timeout is None else timeout
            deadline = None if t is None else time.monotonic() + t
            while msgid not in self._pending:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                msg = self.recv_message(timeout=left)
                if (isinstance(msg, (list, tuple)) and len(msg) == 4
                        and msg[0] == RESPONSE and isinstance(msg[1], int)):
                    self._pending[msg[1]] = (msg[2], msg[3])
                # notifications and anything else are not ours to keep
        error, result = self._pending.pop(msgid)
        if error is not None:
            if isinstance(error, (list, tuple)) and len(error) >= 2:
                raise LmmsError(error[0], error[1])
            raise LmmsError("internal", str(error))
        return result

    def call(self, method, *params):
        return self.wait(self.request(method, *params))

    # -- built-ins --

    def ping(self):
        return self.call("lmms.ping")

    def stats(self):
        return self.call("lmms.stats")

    def modules(self):
        return self.call("lmms.modules")

    def ops(self):
        return self.call("lmms.ops")
