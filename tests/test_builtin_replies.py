"""Built-in replies stay byte-identical across refactors of builtin.c.

tests/golden/builtin-replies.txt holds the reply bytes of a fixed sequence of
built-in calls, captured from a daemon before a change. Each reply is cut into
msgpack tokens (a container's header bytes, a scalar's whole encoding) and
compared token by token, so map sizes, key order, key spelling and the exact
encoding of every value must match. Values that depend on the clock, the
machine or the build (uptime, RSS, latencies, paths) are the only exceptions:
under the keys in VOLATILE only the value's type family is compared.

Regenerate the golden file, deliberately and in its own commit, with
    LMMS_BUILD_ROOT=build /usr/bin/python3 tests/test_builtin_replies.py --capture
"""

import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgpack

GOLDEN = Path(__file__).resolve().parent / "golden" / "builtin-replies.txt"

VOLATILE = {
    b"uptime_seconds", b"rss_bytes", b"idle_ms", b"resident_bytes", b"reclaimed_bytes",
    b"memory_reclaimed_bytes", b"avg_us", b"p50_us", b"p99_us", b"last_call_ms_ago",
    b"retry_in_ms", b"server.socket", b"ligs.module_dir", b"pid", b"lmms.sock",
}

# (method, params): admin calls run as the daemon's own uid, so they are allowed.
SEQUENCE = [
    ("lmms.ping", []),
    ("lmms.config", []),
    ("lmms.modules", []),
    ("lmms.ops", []),
    ("echo.ping", ["x"]),
    ("echo.upper", ["abc"]),
    ("echo.upper", ["abc"]),
    ("lmms.load", ["kv"]),
    ("lmms.ops", []),
    ("lmms.modules", []),
    ("lmms.stats", []),
    ("lmms.unload", ["echo", True]),
    ("lmms.invalidate", ["echo.upper"]),
    ("lmms.invalidate", ["echo"]),
    ("lmms.invalidate", []),
    ("lmms.unload", ["echo", True]),
    ("lmms.unload", ["kv"]),
    ("lmms.nope", []),
    ("lmms.load", []),
    ("lmms.load", ["zzz"]),
    ("lmms.load", [1]),
    ("lmms.unload", ["echo", 1]),
    ("lmms.unload", []),
    ("lmms.invalidate", [1]),
    ("lmms.invalidate", ["a", "b"]),
    ("lmms.invalidate", ["nomod"]),
    ("lmms.reload", []),
    ("lmms.stats", []),
]

ARGS = ["--set", "lugs.min_resident=0", "--set", "lugs.grace_period=1h",
        "--set", "zafp.decay_interval=1h", "--set", "lugs.sweep_interval=1h",
        "--set", "lugs.pressure=off"]


def tokens(b):
    """Cut one msgpack value into tokens: (kind, bytes). Map keys are kept so
    the value after a volatile key can be masked."""
    out = []

    def value(i, key=None):
        t = b[i]
        if t <= 0x7F or t >= 0xE0 or t in (0xC0, 0xC2, 0xC3):
            n = 1
        elif t in (0xCC, 0xD0):
            n = 2
        elif t in (0xCD, 0xD1):
            n = 3
        elif t in (0xCE, 0xD2, 0xCA):
            n = 5
        elif t in (0xCF, 0xD3, 0xCB):
            n = 9
        elif 0xA0 <= t <= 0xBF or t in (0xD9, 0xDA, 0xDB, 0xC4, 0xC5, 0xC6):
            if 0xA0 <= t <= 0xBF:
                h, ln = 1, t & 0x1F
            elif t in (0xD9, 0xC4):
                h, ln = 2, b[i + 1]
            elif t in (0xDA, 0xC5):
                h, ln = 3, struct.unpack(">H", b[i + 1:i + 3])[0]
            else:
                h, ln = 5, struct.unpack(">I", b[i + 1:i + 5])[0]
            n = h + ln
        elif 0x90 <= t <= 0x9F or t in (0xDC, 0xDD) or 0x80 <= t <= 0x8F or t in (0xDE, 0xDF):
            is_map = 0x80 <= t <= 0x8F or t in (0xDE, 0xDF)
            if t < 0xA0:
                h, cnt = 1, t & 0x0F
            elif t in (0xDC, 0xDE):
                h, cnt = 3, struct.unpack(">H", b[i + 1:i + 3])[0]
            else:
                h, cnt = 5, struct.unpack(">I", b[i + 1:i + 5])[0]
            out.append(("hdr", b[i:i + h]))
            j = i + h
            for _ in range(cnt):
                if is_map:
                    kstart = j
                    j = value(j)
                    k = msgpack.unpackb(b[kstart:j], raw=True)
                    j = value(j, k)
                else:
                    j = value(j)
            return j
        else:
            raise ValueError("unexpected msgpack byte 0x%02x" % t)
        raw = b[i:i + n]
        if key in VOLATILE:
            kind = "int" if (t <= 0x7F or 0xCC <= t <= 0xD3 or t >= 0xE0) else "str" \
                if (0xA0 <= t <= 0xBF or t in (0xD9, 0xDA, 0xDB)) else "other"
            out.append(("volatile", kind.encode()))
        else:
            out.append(("raw", raw))
        return i + n

    end = value(0)
    assert end == len(b), "trailing bytes"
    return out


def encode(toks):
    return " ".join("%s:%s" % (k, v.hex() if k != "volatile" else v.decode()) for k, v in toks)


def recv_one(s, unpacker):
    """The raw bytes of the next whole message on s."""
    buf = b""
    while True:
        try:
            # feed what we have to find a boundary
            up = msgpack.Unpacker(raw=True)
            up.feed(buf)
            up.unpack()
            n = up.tell()
            return buf[:n], buf[n:]
        except msgpack.OutOfData:
            pass
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError("daemon closed the connection")
        buf += chunk


# The modules every build has (the heavy ones depend on the machine).
MODULES = ("echo", "hash", "json", "kv", "sqlite", "zstd")


def run_sequence(build_root):
    """Start lmmsd, play SEQUENCE, return one encoded token line per reply."""
    tmp = tempfile.mkdtemp(prefix="lmms-golden-")
    sock = os.path.join(tmp, "s.sock")
    mods = os.path.join(tmp, "mods")
    os.mkdir(mods, 0o755)
    os.chmod(tmp, 0o755)
    for m in MODULES:
        shutil.copyfile(Path(build_root) / "modules" / (m + ".so"), os.path.join(mods, m + ".so"))
        os.chmod(os.path.join(mods, m + ".so"), 0o755)
    exe = Path(build_root) / "daemon" / "lmmsd"
    log = open(os.path.join(tmp, "stderr"), "wb")
    p = subprocess.Popen([str(exe), "--socket", sock, "--module-dir", mods, *ARGS],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + 10
        while True:
            try:
                s.connect(sock)
                break
            except OSError:
                if time.monotonic() > deadline or p.poll() is not None:
                    raise
                time.sleep(0.02)
        s.settimeout(10)
        lines = []
        rest = b""
        for i, (method, params) in enumerate(SEQUENCE):
            s.sendall(msgpack.packb([0, i + 1, method, params]))
            buf = rest
            while True:
                try:
                    up = msgpack.Unpacker(raw=True)
                    up.feed(buf)
                    up.unpack()
                    n = up.tell()
                    break
                except msgpack.OutOfData:
                    chunk = s.recv(65536)
                    if not chunk:
                        raise EOFError("daemon closed the connection")
                    buf += chunk
            msg, rest = buf[:n], buf[n:]
            lines.append("%s %s" % (method, encode(tokens(msg))))
        s.close()
        return lines
    finally:
        p.terminate()
        p.wait(10)
        log.close()


def test_builtin_replies_match_golden():
    root = os.environ.get("LMMS_BUILD_ROOT")
    assert root, "LMMS_BUILD_ROOT is not set"
    want = GOLDEN.read_text().splitlines()
    got = run_sequence(root)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, "reply %d (%s) differs:\n got %s\nwant %s" % (i, SEQUENCE[i], g, w)


if __name__ == "__main__":
    if sys.argv[1:] == ["--capture"]:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text("\n".join(run_sequence(os.environ["LMMS_BUILD_ROOT"])) + "\n")
        print("wrote", GOLDEN)
