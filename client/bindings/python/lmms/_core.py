"""What the sync and asyncio clients share: errors, the default socket rule,
message framing. No I/O here."""

from __future__ import annotations

import errno
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type

import msgpack

REQUEST, RESPONSE, NOTIFICATION = 0, 1, 2

# The client's own limit on one incoming message (as liblmms-client).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

SYSTEM_SOCKET = "/run/lmms/lmmsd.sock"


class Error(Exception):
    """Base of every error of this package. For an error the daemon answered,
    code is the stable wire code ("no_such_method", ...) and message the human
    text; a code this version does not know still arrives as Error."""

    code: str = "internal"

    def __init__(self, code: Optional[str] = None, message: str = "") -> None:
        if code is None:
            code = type(self).code
        super().__init__("%s: %s" % (code, message) if message else code)
        self.code = code
        self.message = message


# Kept for code written against the single-file binding.
LmmsError = Error


def _code_error(code: str, doc: str) -> Type[Error]:
    return type("".join(p.capitalize() for p in code.split("_")), (Error,),
                {"code": code, "__doc__": doc, "__module__": "lmms"})


NoSuchModule = _code_error("no_such_module", "No module of that name in the module directory.")
NoSuchMethod = _code_error("no_such_method", "The module has no such operation.")
BadRequest = _code_error("bad_request", "The request itself is malformed.")
BadParams = _code_error("bad_params", "The params do not fit the operation.")
LoadFailed = _code_error("load_failed", "The module could not be loaded (retried with backoff).")
ModuleError = _code_error("module_error", "The operation ran and failed.")
Denied = _code_error("denied", "An admin method called by a peer that is not an admin.")
Busy = _code_error("busy", "Cannot be served right now (e.g. an unload a check refused).")
TooLarge = _code_error("too_large", "A message or result over a limit.")
ShuttingDown = _code_error("shutting_down", "lmmsd is stopping and takes no new work.")
ModuleCrashed = _code_error("module_crashed",
                            "The worker of an isolated module died during the call; "
                            "the call may be retried.")
Internal = _code_error("internal", "A daemon-side failure.")


class Timeout(Error, TimeoutError):
    """No answer in time: the daemon's own "timeout" (server.call_timeout), or
    this client's timeout. Also a TimeoutError."""

    code = "timeout"

    def __init__(self, code: Optional[str] = None, message: str = "") -> None:
        Error.__init__(self, code, message)

    def __str__(self) -> str:
        return "%s: %s" % (self.code, self.message) if self.message else self.code


class ConnectError(Error, ConnectionError):
    """Cannot connect to lmmsd. path is the socket tried last, paths all of
    them, errno the reason; the message hints at the cure. Also an OSError."""

    code = "connect"

    def __init__(self, paths: Sequence[str], err: OSError) -> None:
        self.paths = list(paths)
        self.path = self.paths[-1] if self.paths else ""
        self.cause = err
        why = err.strerror or str(err)
        if err.errno in (errno.EACCES, errno.EPERM):
            hint = ("the system socket admits root and members of group lmms: "
                    "sudo usermod -aG lmms $USER, then log in again")
        elif err.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTDIR):
            hint = "is lmmsd running? (systemctl start lmmsd.socket)"
        else:
            hint = ""
        msg = "cannot connect to %s: %s" % (self.path, why)
        if len(self.paths) > 1:
            msg += " (nothing at %s either)" % ", ".join(self.paths[:-1])
        if hint:
            msg += "; " + hint
        Error.__init__(self, "connect", msg)
        self.errno = err.errno
        self.strerror = why
        self.filename = self.path

    def __str__(self) -> str:
        return self.message


ERRORS: Dict[str, Type[Error]] = {
    cls.code: cls for cls in (NoSuchModule, NoSuchMethod, BadRequest, BadParams, LoadFailed,
                              ModuleError, Timeout, Denied, Busy, TooLarge, ShuttingDown,
                              ModuleCrashed, Internal)
}


def error_from_wire(error: Any) -> Error:
    """The exception for a response's error object [code, message]."""
    if isinstance(error, (list, tuple)) and len(error) >= 2:
        code, message = str(error[0]), str(error[1])
    else:
        code, message = "internal", "malformed error object: %r" % (error,)
    cls = ERRORS.get(code)
    return cls(code, message) if cls else Error(code, message)


def default_socket() -> str:
    """The first socket of the default rule: $LMMS_SOCKET, else the user's own
    (/run/lmms/lmmsd.sock for root, else $XDG_RUNTIME_DIR/lmms/lmmsd.sock,
    /run/user/UID/lmms/lmmsd.sock when XDG_RUNTIME_DIR is unset)."""
    env = os.environ.get("LMMS_SOCKET")
    if env:
        return env
    if os.geteuid() == 0:
        return SYSTEM_SOCKET
    xdg = os.environ.get("XDG_RUNTIME_DIR") or "/run/user/%d" % os.geteuid()
    return os.path.join(xdg, "lmms", "lmmsd.sock")


def default_sockets() -> List[str]:
    """Every socket of the default rule, in order (DESIGN.md §6): the one of
    default_socket(), then, unless $LMMS_SOCKET is set, the system daemon's
    /run/lmms/lmmsd.sock, so a member of group lmms needs no flag."""
    first = default_socket()
    if os.environ.get("LMMS_SOCKET") or first == SYSTEM_SOCKET:
        return [first]
    return [first, SYSTEM_SOCKET]


def absent(err: OSError) -> bool:
    """No daemon at that path: worth trying the next default socket."""
    return err.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTDIR)


def pack_request(msgid: int, method: str, params: Sequence[Any]) -> bytes:
    return msgpack.packb([REQUEST, msgid, method, list(params)], use_bin_type=True)


def pack_notification(method: str, params: Sequence[Any]) -> bytes:
    return msgpack.packb([NOTIFICATION, method, list(params)], use_bin_type=True)


def new_unpacker() -> msgpack.Unpacker:
    return msgpack.Unpacker(raw=False, strict_map_key=False, unicode_errors="surrogateescape",
                            max_buffer_size=MAX_MESSAGE_BYTES)


def as_response(msg: Any) -> Optional[Tuple[int, Any, Any]]:
    """(msgid, error, result) when msg is a response, else None."""
    if (isinstance(msg, (list, tuple)) and len(msg) == 4 and msg[0] == RESPONSE
            and isinstance(msg[1], int)):
        return msg[1], msg[2], msg[3]
    return None


def as_notification(msg: Any) -> Optional[Tuple[str, List[Any]]]:
    """(method, params) when msg is a notification, else None."""
    if (isinstance(msg, (list, tuple)) and len(msg) == 3 and msg[0] == NOTIFICATION
            and isinstance(msg[1], str) and isinstance(msg[2], (list, tuple))):
        return msg[1], list(msg[2])
    return None
