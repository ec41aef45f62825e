#!/usr/bin/python3
"""Write the seed corpora of the fuzz targets (tests/fuzz/corpus/*).

Run from anywhere with Debian's python3 (python3-msgpack); the files are
checked in, so this is only needed to change them. Each seed is small and
stands for one kind of input: valid requests, notifications and responses,
the wire's edge encodings, deep nesting, large headers, pipelined streams,
and configurations touching every section.
"""
import os
import struct
import sys

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def pack(o):
    return msgpack.packb(o, use_bin_type=True)


def nested(depth, leaf):
    o = leaf
    for _ in range(depth):
        o = [o]
    return o


# --- messages -----------------------------------------------------------
MESSAGES = {
    "req-ping": pack([0, 1, "lmms.ping", []]),
    "req-echo-upper": pack([0, 7, "echo.upper", ["hello"]]),
    "req-hash-bin": pack([0, 0xFFFFFFFF, "hash.sha256", [b"\x00\x01bytes"]]),
    "req-method-bin": pack([0, 2, b"echo.ping", []]),
    "req-mixed-params": pack([0, 9, "json.encode",
                              [None, True, False, -1, -129, 2**63, 1.5, "s", b"b",
                               {"k": [1, {"x": None}]}, msgpack.ExtType(5, b"ext")]]),
    "req-float32": b"\x94\x00\x03\xa9echo.ping\x91\xca\x3f\xc0\x00\x00",
    "req-unusual-ints": b"\x94\xd0\x00\xce\x00\x00\x00\x05\xa9lmms.ping\x90",
    "req-array16-header": b"\x94\x00\x04\xa9lmms.ping\xdc\x00\x01\xc0",
    "req-array32-header": b"\x94\x00\x04\xa9lmms.ping\xdd\x00\x00\x00\x01\xc0",
    "req-str32-method": b"\x94\x00\x05\xdb\x00\x00\x00\x09lmms.ping\x90",
    "req-map32-param": b"\x94\x00\x06\xa9lmms.ping\x91\xdf\x00\x00\x00\x01\xa1a\x01",
    "req-fixext": b"\x94\x00\x07\xa9lmms.ping\x92\xd4\x01\x02\xd8\x7f" + bytes(16),
    "req-deep-32": pack([0, 10, "echo.ping", nested(30, 1)]),
    "req-deep-33": pack([0, 11, "echo.ping", nested(31, 1)]),
    "req-empty-containers": pack([0, 12, "echo.ping", [[], {}, "", b""]]),
    "req-big-string": pack([0, 13, "hash.sha256", ["x" * 4000]]),
    "req-many-elements": pack([0, 14, "echo.ping", [list(range(300))]]),
    "req-bad-method": pack([0, 15, "../etc.passwd", []]),
    "req-method-dots": pack([0, 16, "a.b.c", []]),
    "req-method-empty": pack([0, 17, "", []]),
    "req-params-not-array": pack([0, 18, "lmms.ping", {}]),
    "req-builtin-stats": pack([0, 19, "lmms.stats", []]),
    "notify-ping": pack([2, "lmms.ping", []]),
    "notify-echo": pack([2, "echo.upper", ["quiet"]]),
    "resp-ok": pack([1, 3, None, "pong"]),
    "resp-error": pack([1, 4, ["no_such_method", "nope"], None]),
    "bad-type-3": pack([3, 1, "lmms.ping", []]),
    "bad-five": pack([0, 1, "lmms.ping", [], 5]),
    "bad-c1": b"\x94\x00\x01\xc1",
    "bad-not-array": pack({"a": 1}),
    "bad-huge-array-header": b"\x94\x00\x01\xa9lmms.ping\xdd\xff\xff\xff\xff",
    "bad-huge-str-header": b"\x94\x00\x01\xdb\xff\xff\xff\xff",
    "truncated": pack([0, 20, "echo.upper", ["abc"]])[:-2],
}
MESSAGES["pipelined"] = (MESSAGES["req-ping"] + MESSAGES["notify-ping"]
                         + MESSAGES["req-echo-upper"] + MESSAGES["resp-ok"])

# dispatch: calls of every hostcalls op and built-in (tests/modules/hostcalls.c)
MIXED = [None, True, -5, 2**64 - 1, 0.25, "str", b"bin", [1, [2]], {"k": "v"},
         msgpack.ExtType(1, b"x")]
DISPATCH = {
    "echo": pack([0, 1, "hostcalls.echo", MIXED]),
    "echo-pure-twice": pack([0, 2, "hostcalls.echo_pure", ["x"]]) * 2,
    "echo-blocking": pack([0, 3, "hostcalls.echo_blocking", MIXED]),
    "echo-deep": pack([0, 4, "hostcalls.echo", nested(29, 0)]),
    # build steps: low nibble what, high nibble how much (hostcalls.c build_step)
    "build-map": pack([0, 5, "hostcalls.build", b"\x28\x05\x11\x09\x9f", "str", [1]]),
    "build-nested": pack([0, 6, "hostcalls.build", b"\x17" * 31 + b"\x00"]),
    "build-incomplete": pack([0, 7, "hostcalls.build", b"\x37\x00"]),
    "build-two-values": pack([0, 8, "hostcalls.build", b"\x00\x01"]),
    "build-raw-msgpack": pack([0, 9, "hostcalls.build", b"\x1a", b"\x92\x01\xc1"]),
    "build-huge-count": pack([0, 10, "hostcalls.build", b"\x0d\x1d"]),
    "build-fail-log-setting": pack([0, 11, "hostcalls.build", b"\x1b\x3c\x1e", "greeting"]),
    "fail": pack([0, 12, "hostcalls.fail", [1, "bad"]]),
    "fail-odd-class": pack([0, 13, "hostcalls.fail", [77, "x" * 300]]),
    "log": pack([0, 14, "hostcalls.log", [99, "line\nbreak"]]),
    "now": pack([0, 15, "hostcalls.now", []]),
    "setting": pack([0, 16, "hostcalls.setting", ["greeting"]]),
    "veto-unload": pack([0, 17, "hostcalls.veto", [True]])
                   + pack([0, 18, "lmms.unload", ["hostcalls", True]])
                   + pack([0, 19, "hostcalls.veto", [False]])
                   + pack([0, 20, "lmms.unload", ["hostcalls", True]]),
    "notify": pack([2, "hostcalls.echo", [1]]) + pack([2, "hostcalls.fail", [0, "n"]]),
    "builtins": b"".join(pack([0, 30 + i, "lmms." + m, a]) for i, (m, a) in enumerate([
        ("ping", []), ("stats", []), ("modules", []), ("ops", []), ("config", []),
        ("load", ["hostcalls"]), ("invalidate", ["hostcalls.echo_pure"]), ("invalidate", []),
        ("metrics", []), ("trim", []), ("reload", []), ("invalidate", [""]),
        ("load", ["nosuch"])])),
    "unknown": pack([0, 50, "hostcalls.nosuch", []]) + pack([0, 51, "nosuch.op", []]),
    "bad-then-more": pack([0, 52, 7, []]) + pack([0, 53, "lmms.ping", []]),
}

# scan: parameter bytes first (fuzz-scan.c): depth, elements, str bytes, seed
SCAN_PARAMS = {
    "": bytes([32, 255, 255, 0]),
    "-tight": bytes([4, 4, 2, 7]),
    "-clamp": bytes([39, 255, 255, 200]),
}

# --- configurations -----------------------------------------------------
EVERY_SECTION = """\
# every section, values off their defaults
[server]
socket = /run/lmms-test/lmmsd.sock
max_connections = 300
max_connections_per_uid = 16
max_message_bytes = 2MiB
max_depth = 16
max_elements = 4096
max_inflight = 8
max_output_bytes = 8MiB
max_result_bytes = 512KiB
idle_timeout = 5m
message_timeout = 2s
call_timeout = 30s
log_level = debug

[ligs]
module_dir = /usr/lib/lmms/modules
preload = hash, json
retry_backoff = 250ms
retry_backoff_max = 1h30m

[lugs]
grace_period = 10s
sweep_interval = 1s
min_resident = 2
keep_while_cached = no

[zafp]
warm = 3
hot = 10
critical = 50
max_hot_paths = 20
decay_interval = 2m

[cache]
default_ttl = 1d
max_bytes = 1GiB
max_entries = 100
expire_interval = 500ms
negative_ttl = 5s

[access]
admin_group = adm
admin_uids = 0, 1000

[module hash]
policy = core

[module kv]
policy = feature
grace_period = 1ms
"""

CONFIGS = {
    "every-section": EVERY_SECTION.encode(),
    "crlf": EVERY_SECTION.replace("\n", "\r\n").encode(),
    "comments": b"; comment\n# comment\n[server] ; inline\nmax_depth = 8 ; inline\n"
                b"socket =;starts-with-semicolon\n  [lugs]\n\tgrace_period=1h30m\n",
    "with-sets": b"[server]\nmax_depth = 8\n\0server.max_depth=9\0module.sqlite.policy=core"
                 b"\0access.admin_uids=1,2,3\0ligs.preload=\0server.socket=;x",
    "sets-only": b"\0lugs.grace_period=0\0cache.max_bytes=0\0zafp.warm=1",
    "cr-in-line": b"[server]\nsocket = x\r" + b"A" * 250 + b"\n",
    "long-line": b"[ligs]\nmodule_dir = /" + b"x" * 196 + b"\n",
    "bom": b"\xef\xbb\xbf[server]\nmax_depth = 4\n",
    "errors": b"[server]\nmax_depth = 99\n[bogus]\nx\n",
}


def write(kind, name, data):
    d = os.path.join(CORPUS, kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    for name, data in MESSAGES.items():
        write("decode", name, data)
        for suffix, params in SCAN_PARAMS.items():
            if suffix and not name.startswith(("req-ping", "req-deep", "req-many", "pipelined")):
                continue
            write("scan", name + suffix, params + data)
    for name, data in DISPATCH.items():
        write("dispatch", name, data)
    for name, data in CONFIGS.items():
        write("config", name, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
