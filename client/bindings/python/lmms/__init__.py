"""lmms - Python client for lmmsd (MessagePack-RPC over a Unix socket).

    import lmms

    with lmms.Client() as c:              # the default socket rule, see default_sockets()
        print(c.ping())                   # "pong"
        print(c.call("hash.sha256", "abc"))
        try:
            c.call("nope.nothing")
        except lmms.NoSuchModule as e:    # one class per error code, all lmms.Error
            print(e.code, e.message)

A Client may be shared by threads: each call waits for its own answer,
matched by msgid, while one of the waiting threads at a time reads the
socket for all of them. A call that times out raises lmms.Timeout and its
late answer, should one come, is dropped. lmms.aio.Client is the asyncio
counterpart.

request()/wait(), notify(), send_raw() and recv_message() give direct access
to the stream (pipelining, notifications, tests feeding malformed input);
recv_message() reads past the msgid matching, so do not mix it with calls
running in other threads.

Needs the msgpack package (Debian: python3-msgpack).
"""

from __future__ import annotations

import collections
import select
import socket
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ._core import (ERRORS, MAX_MESSAGE_BYTES, NOTIFICATION, REQUEST, RESPONSE, SYSTEM_SOCKET,
                    BadParams, BadRequest, Busy, ConnectError, Denied, Error, Internal,
                    LmmsError, LoadFailed, ModuleCrashed, ModuleError, NoSuchMethod,
                    NoSuchModule, ShuttingDown, Timeout, TooLarge, absent, as_notification,
                    as_response, default_socket, default_sockets, error_from_wire,
                    new_unpacker, pack_notification, pack_request)

__all__ = [
    "Client", "Error", "LmmsError", "ConnectError", "Timeout", "NoSuchModule", "NoSuchMethod",
    "BadRequest", "BadParams", "LoadFailed", "ModuleError", "Denied", "Busy", "TooLarge",
    "ShuttingDown", "ModuleCrashed", "Internal", "ERRORS", "default_socket",
    "default_sockets", "connect_socket", "REQUEST", "RESPONSE", "NOTIFICATION",
    "MAX_MESSAGE_BYTES", "SYSTEM_SOCKET",
]

__version__ = "0.1.0"

# Notifications kept while calls wait for their answers (monitor events).
MAX_QUEUED_NOTIFICATIONS = 1024


def connect_socket(path: Optional[str] = None,
                   timeout: Optional[float] = None) -> Tuple[socket.socket, str]:
    """A connected Unix socket and its path: path, or the first default socket
    with a daemon behind it. Raises ConnectError naming the socket(s) tried."""
    paths = [path] if path else default_sockets()
    tried: List[str] = []
    for p in paths:
        tried.append(p)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(timeout)
            s.connect(p)
            return s, p
        except OSError as e:
            s.close()
            if absent(e) and p is not paths[-1]:
                continue
            raise ConnectError(tried, e) from e
    raise AssertionError("unreachable")


class _Slot:
    """Where the answer to one msgid lands."""

    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = False
        self.error: Any = None
        self.result: Any = None


class Client:
    """One connection to lmmsd, safe to share between threads."""

    def __init__(self, path: Optional[str] = None, timeout: Optional[float] = 30.0) -> None:
        self.timeout = timeout
        sock, self.path = connect_socket(path, timeout)
        sock.settimeout(None)  # reads wait in poll(), see _read_message
        self._sock: Optional[socket.socket] = sock
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._next_msgid = 1
        self._pending: Dict[int, _Slot] = {}  # msgid -> slot of a call still waiting
        self._reading = False  # one waiting thread reads for all
        self._broken: Optional[BaseException] = None
        self._unpacker = new_unpacker()
        # notifications met while waiting for answers, for monitor()
        self._notes: "collections.deque[Any]" = collections.deque(maxlen=MAX_QUEUED_NOTIFICATIONS)
        self.notifications_dropped = 0

    # -- lifetime --

    def close(self) -> None:
        s, self._sock = self._sock, None
        if s is not None:
            s.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> bool:
        self.close()
        return False

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # -- raw stream --

    def send_raw(self, data: bytes) -> None:
        """Write bytes to the socket as they are."""
        if self._sock is None:
            raise ConnectionError("client is closed")
        with self._send_lock:
            self._sock.sendall(data)

    def _read_message(self, timeout: Optional[float]) -> Any:
        """The next whole message; socket.timeout when none came in time,
        ConnectionError when the daemon closed the connection. The socket
        stays blocking and the wait is a poll, so a reader's deadline never
        cuts short another thread's send."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                return next(self._unpacker)
            except StopIteration:
                pass
            sock = self._sock
            if sock is None:
                raise ConnectionError("client is closed")
            p = select.poll()
            p.register(sock, select.POLLIN)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise socket.timeout()
            if not p.poll(None if left is None else max(1, int(left * 1000))):
                raise socket.timeout()
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("lmmsd closed the connection")
            self._unpacker.feed(data)

    def recv_message(self, timeout: Optional[float] = None) -> Any:
        """Next whole message from the daemon, decoded (a list for a valid
        message), bypassing msgid matching. Raises lmms.Timeout (a
        TimeoutError), or ConnectionError when the daemon closed the
        connection."""
        t = self.timeout if timeout is None else timeout
        try:
            return self._read_message(t)
        except socket.timeout:
            raise Timeout("timeout", "no message from lmmsd within %.3fs" % t) from None

    # -- calls --

    def request(self, method: str, *params: Any) -> int:
        """Send a request; returns its msgid for wait()."""
        with self._cond:
            if self._broken is not None:
                raise ConnectionError(str(self._broken))
            msgid = self._next_msgid
            self._next_msgid = (self._next_msgid + 1) & 0xFFFFFFFF
            self._pending[msgid] = _Slot()
        try:
            self.send_raw(pack_request(msgid, method, params))
        except BaseException:
            with self._cond:
                self._pending.pop(msgid, None)
            raise
        return msgid

    def notify(self, method: str, *params: Any) -> None:
        """Send a notification (executed, never answered)."""
        self.send_raw(pack_notification(method, params))

    def _dispatch(self, msg: Any) -> None:
        """Hand a message to the slot waiting for it (lock held). An answer
        nobody waits for (its call timed out) is dropped."""
        r = as_response(msg)
        if r is not None:
            slot = self._pending.get(r[0])
            if slot is not None:
                slot.done, slot.error, slot.result = True, r[1], r[2]
        elif as_notification(msg) is not None:
            if len(self._notes) == self._notes.maxlen:
                self.notifications_dropped += 1  # the oldest goes
            self._notes.append(as_notification(msg))

    def _fail_all(self, exc: BaseException) -> None:
        self._broken = exc
        for slot in self._pending.values():
            if not slot.done:
                slot.done, slot.error = True, exc

    def wait(self, msgid: int, timeout: Optional[float] = None) -> Any:
        """Result of the request msgid; raises the lmms.Error of an error
        answer, lmms.Timeout after timeout seconds (self.timeout by default),
        ConnectionError when the connection is gone."""
        t = self.timeout if timeout is None else timeout
        deadline = None if t is None else time.monotonic() + t
        with self._cond:
            slot = self._pending.get(msgid)
            if slot is None:
                raise KeyError("no request %d is waiting" % msgid)
            while not slot.done:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    del self._pending[msgid]  # so a late answer is dropped
                    raise Timeout("timeout", "no answer from lmmsd within %.3fs" % t)
                if self._reading:
                    self._cond.wait(left)  # woken by each message the reader hands out
                    continue
                self._reading = True
                try:
                    self._cond.release()
                    try:
                        msg = self._read_message(left)
                        err: Optional[BaseException] = None
                    except socket.timeout:
                        msg, err = None, None
                    except Exception as e:  # the stream is unusable from here
                        msg, err = None, e
                    finally:
                        self._cond.acquire()
                    if err is not None:
                        self._fail_all(err if isinstance(err, ConnectionError)
                                       else ConnectionError(str(err)))
                    elif msg is not None:
                        self._dispatch(msg)
                finally:
                    self._reading = False
                    self._cond.notify_all()
            del self._pending[msgid]
        if isinstance(slot.error, BaseException):
            raise slot.error
        if slot.error is not None:
            raise error_from_wire(slot.error)
        return slot.result

    def call(self, method: str, *params: Any, timeout: Optional[float] = None) -> Any:
        """Call method with positional params and return its result."""
        return self.wait(self.request(method, *params), timeout)

    # -- built-ins --

    def ping(self) -> str:
        return self.call("lmms.ping")

    def stats(self) -> Dict[str, Any]:
        return self.call("lmms.stats")

    def modules(self) -> List[Dict[str, Any]]:
        return self.call("lmms.modules")

    def ops(self) -> List[Dict[str, Any]]:
        return self.call("lmms.ops")

    def config(self) -> Dict[str, str]:
        return self.call("lmms.config")

    def metrics(self) -> str:
        return self.call("lmms.metrics")

    def monitor(self, timeout: Optional[float] = None) -> Iterator[Dict[str, Any]]:
        """lmms.monitor (admin), subscribed before this returns: an iterator
        of one event map per call the daemon finishes, for ever (lmms.Timeout
        when none came within timeout). Give it a Client of its own."""
        if self.call("lmms.monitor") is not True:
            raise Internal("internal", "lmms.monitor did not answer true")
        return self._events(timeout)

    def _events(self, timeout: Optional[float]) -> Iterator[Dict[str, Any]]:
        while True:
            with self._cond:
                note = self._notes.popleft() if self._notes else None
            if note is None:
                note = as_notification(self.recv_message(timeout))
            if note and note[0] == "lmms.monitor" and note[1]:
                yield note[1][0]

