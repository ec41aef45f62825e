"""lmmsctl against a real lmmsd: output formats and exit statuses."""

import hashlib
import json
import re

from conftest import run_lmmsctl

SHA256_ABC = hashlib.sha256(b"abc").hexdigest()


def test_ping(lmmsd):
    r = lmmsd.ctl("ping")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "pong\n"


def test_ping_json(lmmsd):
    r = lmmsd.ctl("--json", "ping")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == "pong"


def test_call_hash(lmmsd):
    r = lmmsd.ctl("call", "hash.sha256", '"abc"')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == SHA256_ABC


def test_call_json_args_round_trip(lmmsd):
    args = [1, -2, 2.5, True, None, "x", [1, [2]], {"k": {"n": 1}}]
    r = lmmsd.ctl("call", "echo.ping", *[json.dumps(a) for a in args])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == args


def test_call_binary_as_bin_object(lmmsd):
    # {"$bin": base64} packs as msgpack bin; non-UTF-8 bytes come back the same way.
    r = lmmsd.ctl("call", "echo.ping", '{"$bin": "/wA="}', '{"$bin": "YWJj"}')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"$bin": "/wA="}, "abc"]


def test_call_bin_hash(lmmsd):
    r = lmmsd.ctl("call", "hash.sha256", '{"$bin": "YWJj"}')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == SHA256_ABC


def test_call_bare_word_is_usage_error(lmmsd):
    r = lmmsd.ctl("call", "hash.sha256", "abc")
    assert r.returncode == 2
    assert "'\"abc\"'" in r.stderr
    assert r.stdout == ""


def test_call_unknown_method(lmmsd):
    r = lmmsd.ctl("call", "echo.no_such_op")
    assert r.returncode == 1
    assert r.stderr.startswith("no_such_method: ")
    assert r.stdout == ""


def test_call_unknown_module(lmmsd):
    r = lmmsd.ctl("call", "nosuchmodule.op")
    assert r.returncode == 1
    assert r.stderr.startswith("no_such_module: ")


def test_call_bad_params(lmmsd):
    r = lmmsd.ctl("call", "echo.sleep", '"soon"')
    assert r.returncode == 1
    assert r.stderr.startswith("bad_params: ")


def test_usage_errors(lmmsd):
    for args in (["-s", lmmsd.socket],
                 ["-s", lmmsd.socket, "frobnicate"],
                 ["-s", lmmsd.socket, "call"],
                 ["-s", lmmsd.socket, "ping", "extra"],
                 ["-s", lmmsd.socket, "unload"],
                 ["-s", lmmsd.socket, "stats", "--bogus"],
                 ["-s", lmmsd.socket, "--timeout", "soon", "ping"],
                 ["--no-such-option", "ping"]):
        r = run_lmmsctl(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "Usage: lmmsctl" in r.stderr, args
        assert r.stdout == "", args


def test_help_and_version():
    r = run_lmmsctl("--help")
    assert r.returncode == 0
    assert "Usage: lmmsctl" in r.stdout
    r = run_lmmsctl("--version")
    assert r.returncode == 0
    assert re.fullmatch(r"lmmsctl \d+\.\d+\.\d+\n", r.stdout)


def test_no_daemon(tmp_path):
    path = str(tmp_path / "nothing.sock")
    r = run_lmmsctl("-s", path, "ping")
    assert r.returncode == 3
    assert r.stderr.startswith("lmmsctl: cannot connect to %s: " % path)


def test_no_daemon_after_stop(daemon):
    d = daemon()
    assert d.stop() == 0
    r = d.ctl("ping")
    assert r.returncode == 3
    assert "cannot connect to %s" % d.socket in r.stderr


def test_socket_from_env(lmmsd, monkeypatch):
    monkeypatch.setenv("LMMS_SOCKET", lmmsd.socket)
    r = run_lmmsctl("ping")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "pong\n"


def table(text):
    lines = text.rstrip("\n").split("\n")
    return lines[0].split(), [ln.split() for ln in lines[1:]]


def test_modules_table(lmmsd):
    assert lmmsd.ctl("call", "echo.ping").returncode == 0
    r = lmmsd.ctl("modules")
    assert r.returncode == 0, r.stderr
    header, rows = table(r.stdout)
    assert header == ["NAME", "STATE", "POLICY", "PROT", "REFS", "IDLE", "CACHE",
                      "RESIDENT", "LOADS", "UNLOADS"]
    names = [row[0] for row in rows]
    assert "echo" in names and "hash" in names
    # Columns are left-aligned: every header starts where its values start.
    lines = r.stdout.split("\n")
    col = lines[0].index("STATE")
    for ln in lines[1:]:
        if ln:
            assert ln[col - 1] == " " and ln[col] != " ", ln


def test_modules_json(lmmsd):
    r = lmmsd.ctl("modules", "--json")
    assert r.returncode == 0, r.stderr
    mods = json.loads(r.stdout)
    assert isinstance(mods, list)
    assert {"name", "state"} <= set(mods[0])
    assert "echo" in [m["name"] for m in mods]


def test_ops_table_and_json(lmmsd):
    assert lmmsd.ctl("call", "hash.sha256", '"abc"').returncode == 0
    r = lmmsd.ctl("ops")
    assert r.returncode == 0, r.stderr
    header, rows = table(r.stdout)
    assert header == ["METHOD", "CALLS", "HEAT", "FAST", "AVG_US", "P99_US", "TTL",
                      "BLOCKING"]
    assert "hash.sha256" in [row[0] for row in rows]

    r = lmmsd.ctl("--json", "ops")
    assert r.returncode == 0, r.stderr
    ops = {o["method"]: o for o in json.loads(r.stdout)}
    assert ops["hash.sha256"]["calls"] >= 1


def test_stats_table_and_json(lmmsd):
    r = lmmsd.ctl("stats")
    assert r.returncode == 0, r.stderr
    header, rows = table(r.stdout)
    assert header == ["KEY", "VALUE"]
    keys = [row[0] for row in rows]
    assert "requests_total" in keys and "uptime_seconds" in keys

    r = lmmsd.ctl("stats", "--json")
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout)
    assert isinstance(stats, dict)
    assert stats["requests_total"] >= 1  # this very call counts, or the previous one
    assert "rss_bytes" in stats


def test_stats_prometheus(lmmsd):
    r = lmmsd.ctl("stats", "--prometheus")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.rstrip("\n").split("\n")
    assert len(lines) % 2 == 0 and lines
    types = {}
    for typ, sample in zip(lines[0::2], lines[1::2]):
        m = re.fullmatch(r"# TYPE (lmms_[a-z0-9_]+) (gauge|counter)", typ)
        assert m, typ
        name, value = sample.split(" ")
        assert name == m.group(1)
        float(value)
        types[name] = m.group(2)
    assert types["lmms_requests_total"] == "counter"
    assert types["lmms_cache_hits"] == "counter"
    assert types["lmms_rss_bytes"] == "gauge"
    assert types["lmms_connections"] == "gauge"


def test_invalidate_prints_number(lmmsd):
    r = lmmsd.ctl("invalidate")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"\d+\n", r.stdout)


def test_top_iterations(lmmsd):
    r = lmmsd.ctl("top", "-n", "2")
    assert r.returncode == 0, r.stderr
    # Not a tty: no escape codes, two frames each with both tables.
    assert "\033" not in r.stdout
    assert r.stdout.count("KEY") == 2 and r.stdout.count("NAME") == 2

    r = lmmsd.ctl("--json", "top", "-n", "1")
    assert r.returncode == 0, r.stderr
    frame = json.loads(r.stdout)
    assert set(frame) == {"stats", "modules"}


def test_timeout(lmmsd):
    r = lmmsd.ctl("--timeout", "100", "call", "echo.sleep", "2000")
    assert r.returncode == 3
    assert "timeout" in r.stderr


def test_load_and_unload(lmmsd):
    r = lmmsd.ctl("load", "zstd")
    assert r.returncode == 0, r.stderr
    header, rows = table(r.stdout)
    assert header[0] == "NAME" and rows[0][:2] == ["zstd", "loaded"]

    r = lmmsd.ctl("unload", "zstd", "--now")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "unloaded zstd\n"
    mods = {m["name"]: m for m in json.loads(lmmsd.ctl("--json", "modules").stdout)}
    assert mods["zstd"]["state"] == "unloaded"
    assert mods["zstd"]["unloads"] == 1


def test_unload_refused_is_daemon_error(lmmsd):
    assert lmmsd.ctl("load", "zstd").returncode == 0
    # Without --now the grace period refuses a module that was just used.
    r = lmmsd.ctl("unload", "zstd")
    assert r.returncode == 1
    assert r.stderr.startswith("busy: ")

    r = lmmsd.ctl("unload", "nosuchmodule", "--now")
    assert r.returncode == 1
    assert r.stderr.startswith("no_such_module: ")


def test_invalidate_counts_entries(lmmsd):
    assert lmmsd.ctl("call", "echo.upper", '"a"').returncode == 0
    assert lmmsd.ctl("call", "echo.upper", '"b"').returncode == 0
    r = lmmsd.ctl("invalidate", "echo")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "2\n"
    assert lmmsd.ctl("invalidate").stdout == "0\n"


def test_reload(lmmsd):
    r = lmmsd.ctl("reload")
    assert r.returncode == 0, r.stderr
    r = lmmsd.ctl("--json", "reload")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) is True
