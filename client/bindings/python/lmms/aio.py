"""lmms.aio - asyncio client for lmmsd.

    import asyncio, lmms.aio

    async def main():
        async with lmms.aio.Client() as c:     # connects on entry
            print(await c.ping())
            digests = await asyncio.gather(*(c.call("hash.sha256", s) for s in "abc"))

    asyncio.run(main())

Any number of calls may be in flight on one Client: a reader task matches
answers to their futures by msgid. A call that times out raises lmms.Timeout
and its late answer is dropped. Errors are the classes of the lmms package.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Dict, List, Optional

from ._core import (ConnectError, Internal, Timeout, absent, as_notification, as_response,
                    default_sockets, error_from_wire, new_unpacker, pack_notification,
                    pack_request)

__all__ = ["Client", "connect"]


class Client:
    """One connection to lmmsd for asyncio code."""

    def __init__(self, path: Optional[str] = None, timeout: Optional[float] = 30.0,
                 max_notifications: int = 1024) -> None:
        self._want_path = path
        self.path: Optional[str] = None
        self.timeout = timeout
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None
        self._task: Optional["asyncio.Task[None]"] = None
        self._pending: Dict[int, "asyncio.Future[Any]"] = {}
        self._next_msgid = 1
        self._broken: Optional[BaseException] = None
        self._notes: "asyncio.Queue[Any]" = asyncio.Queue(max_notifications)
        self.notifications_dropped = 0

    async def connect(self) -> "Client":
        """Connect: the path given, or the first default socket with a daemon
        behind it. Raises lmms.ConnectError naming the socket(s) tried."""
        if self._writer is not None:
            return self
        paths = [self._want_path] if self._want_path else default_sockets()
        tried: List[str] = []
        for p in paths:
            tried.append(p)
            try:
                conn = asyncio.open_unix_connection(p, limit=2 ** 16)
                self._reader, self._writer = await asyncio.wait_for(conn, self.timeout)
            except OSError as e:
                if absent(e) and p is not paths[-1]:
                    continue
                raise ConnectError(tried, e) from e
            self.path = p
            break
        self._task = asyncio.get_running_loop().create_task(self._read_loop())
        return self

    async def close(self) -> None:
        task, self._task = self._task, None
        writer, self._writer = self._writer, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
        self._fail_all(ConnectionError("client is closed"))

    async def __aenter__(self) -> "Client":
        return await self.connect()

    async def __aexit__(self, *exc: Any) -> bool:
        await self.close()
        return False

    def _fail_all(self, exc: BaseException) -> None:
        if self._broken is None:
            self._broken = exc
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self._pending.clear()

    async def _read_loop(self) -> None:
        unpacker = new_unpacker()
        assert self._reader is not None
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    raise ConnectionError("lmmsd closed the connection")
                unpacker.feed(data)
                for msg in unpacker:
                    r = as_response(msg)
                    if r is not None:
                        # An answer nobody waits for (its call timed out) is dropped.
                        fut = self._pending.pop(r[0], None)
                        if fut is not None and not fut.done():
                            if r[1] is not None:
                                fut.set_exception(error_from_wire(r[1]))
                            else:
                                fut.set_result(r[2])
                    elif as_notification(msg) is not None:
                        try:
                            self._notes.put_nowait(as_notification(msg))
                        except asyncio.QueueFull:
                            self.notifications_dropped += 1
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the stream is unusable from here
            self._fail_all(e if isinstance(e, ConnectionError) else ConnectionError(str(e)))

    async def call(self, method: str, *params: Any, timeout: Optional[float] = None) -> Any:
        """Call method with positional params and return its result."""
        if self._writer is None:
            await self.connect()
        if self._broken is not None:
            raise ConnectionError(str(self._broken))
        assert self._writer is not None
        msgid = self._next_msgid
        self._next_msgid = (self._next_msgid + 1) & 0xFFFFFFFF
        fut: "asyncio.Future[Any]" = asyncio.get_running_loop().create_future()
        self._pending[msgid] = fut
        t = self.timeout if timeout is None else timeout
        try:
            self._writer.write(pack_request(msgid, method, params))
            await self._writer.drain()
            return await asyncio.wait_for(asyncio.shield(fut), t)
        except asyncio.TimeoutError:
            raise Timeout("timeout", "no answer from lmmsd within %.3fs" % t) from None
        finally:
            self._pending.pop(msgid, None)

    async def notify(self, method: str, *params: Any) -> None:
        """Send a notification (executed, never answered)."""
        if self._writer is None:
            await self.connect()
        assert self._writer is not None
        self._writer.write(pack_notification(method, params))
        await self._writer.drain()

    async def next_notification(self, timeout: Optional[float] = None) -> Any:
        """(method, params) of the next notification from the daemon."""
        try:
            return await asyncio.wait_for(self._notes.get(), timeout)
        except asyncio.TimeoutError:
            raise Timeout("timeout", "no notification within %s s" % timeout) from None

    async def monitor(self, timeout: Optional[float] = None) -> AsyncIterator[Dict[str, Any]]:
        """lmms.monitor (admin), subscribed once awaited: an async iterator of
        event maps (lmms.Timeout when none came within timeout)."""
        if await self.call("lmms.monitor") is not True:
            raise Internal("internal", "lmms.monitor did not answer true")
        return self._events(timeout)

    async def _events(self, timeout: Optional[float]) -> AsyncIterator[Dict[str, Any]]:
        while True:
            method, params = await self.next_notification(timeout)
            if method == "lmms.monitor" and params:
                yield params[0]

    # -- built-ins --

    async def ping(self) -> str:
        return await self.call("lmms.ping")

    async def stats(self) -> Dict[str, Any]:
        return await self.call("lmms.stats")

    async def modules(self) -> List[Dict[str, Any]]:
        return await self.call("lmms.modules")

    async def ops(self) -> List[Dict[str, Any]]:
        return await self.call("lmms.ops")

    async def config(self) -> Dict[str, str]:
        return await self.call("lmms.config")

    async def metrics(self) -> str:
        return await self.call("lmms.metrics")


async def connect(path: Optional[str] = None, timeout: Optional[float] = 30.0) -> Client:
    """A connected lmms.aio.Client."""
    return await Client(path, timeout).connect()
