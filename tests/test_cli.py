"""lmmsctl against a real lmmsd: output formats and exit statuses."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import unicodedata

from conftest import build_root, run_lmmsctl

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
    for args, says in ((["-s", lmmsd.socket], "no COMMAND given"),
                       (["-s", lmmsd.socket, "frobnicate"], "unknown command 'frobnicate'"),
                       (["-s", lmmsd.socket, "call"], "call needs a METHOD"),
                       (["-s", lmmsd.socket, "ping", "extra"], "ping takes no arguments"),
                       (["-s", lmmsd.socket, "unload"], "unload takes one module NAME"),
                       (["-s", lmmsd.socket, "stats", "--bogus"], "stats has no option '--bogus'"),
                       (["-s", lmmsd.socket, "stats", "--output", "x"], "--output goes with"),
                       (["-s", lmmsd.socket, "top", "-n", "0"], "-n needs a positive COUNT"),
                       (["-s", lmmsd.socket, "--timeout", "soon", "ping"], "not 'soon'"),
                       (["--no-such-option", "ping"], "unknown option '--no-such-option'")):
        r = run_lmmsctl(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        # One line naming the mistake and where help is, not the whole help.
        assert r.stderr == "lmmsctl: %s" % r.stderr[len("lmmsctl: "):], args
        assert r.stderr.count("\n") == 1 and says in r.stderr, (args, r.stderr)
        assert r.stderr.endswith(" (see lmmsctl --help)\n"), args
        assert "Usage:" not in r.stderr
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
    assert "hint: is lmmsd running?" in r.stderr


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


MODULE_HEADER = ["NAME", "STATE", "POLICY", "PROT", "REFS", "IDLE", "CACHE", "RESIDENT",
                 "LOADS", "UNLOADS", "WHY"]
OP_HEADER = ["METHOD", "CALLS", "HEAT", "FAST", "AVG", "P99", "TTL", "BLOCKING", "DOC"]


def column(text, header):
    """{first cell: cell under header} for a libsmartcols table."""
    lines = text.rstrip("\n").split("\n")
    start = lines[0].index(header)
    nxt = lines[0].find(" ", start + len(header))
    out = {}
    for ln in lines[1:]:
        # right-aligned columns end where their header ends
        cell = ln[:nxt if nxt > 0 else None].split()[-1] if ln[start:].strip() else ""
        out[ln.split()[0]] = cell
    return out


def test_modules_table(lmmsd):
    assert lmmsd.ctl("call", "echo.ping").returncode == 0
    r = lmmsd.ctl("modules")
    assert r.returncode == 0, r.stderr
    header, rows = table(r.stdout)
    assert header == MODULE_HEADER
    names = [row[0] for row in rows]
    assert "echo" in names and "hash" in names
    # Left-aligned columns: every header starts where its values start.
    lines = r.stdout.split("\n")
    col = lines[0].index("STATE")
    for ln in lines[1:]:
        if ln:
            assert ln[col - 1] == " " and ln[col] != " ", ln
    # A module that never ran has no idle time: "-", not "0ms".
    idle = column(r.stdout, "IDLE")
    assert idle["zstd"] == "-"
    assert idle["echo"] != "-"


def test_modules_why(lmmsd):
    # hash is pinned by libcrypto's -z nodelete (openssl backend) and says so.
    assert lmmsd.ctl("call", "hash.sha256", '"abc"').returncode == 0
    mods = {m["name"]: m for m in json.loads(lmmsd.ctl("modules", "--json").stdout)["modules"]}
    r = lmmsd.ctl("modules")
    lines = {ln.split()[0]: ln for ln in r.stdout.split("\n")[1:] if ln}
    if mods["hash"]["state"] == "pinned":
        assert lines["hash"].rstrip().endswith("pinned by " + mods["hash"]["pinned_by"])
    else:  # nettle backend: unloadable, nothing to explain yet
        assert lines["hash"].split()[1] == "loaded"


def test_modules_why_of_failed_module(daemon, tmp_path):
    moddir = tmp_path / "mods"
    moddir.mkdir(mode=0o755)
    os.chmod(moddir, 0o755)
    bad = moddir / "broken.so"
    bad.write_bytes(b"not an ELF file")
    os.chmod(bad, 0o755)
    d = daemon("--module-dir", moddir)
    r = d.ctl("call", "broken.x")
    assert r.returncode == 1 and r.stderr.startswith("load_failed: "), r.stderr
    r = d.ctl("modules")
    assert r.returncode == 0, r.stderr
    line = [ln for ln in r.stdout.split("\n") if ln.startswith("broken ")][0]
    assert "failed" in line.split()[1]
    assert "failed: " in line, line


def test_modules_json(lmmsd):
    r = lmmsd.ctl("modules", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    # libsmartcols' JSON: {"modules": [...]}, every key of the daemon's entries, typed.
    assert list(doc) == ["modules"]
    mods = doc["modules"]
    assert {"name", "state", "policy", "refs", "resident_bytes", "protected"} <= set(mods[0])
    assert isinstance(mods[0]["refs"], int) and isinstance(mods[0]["protected"], bool)
    assert "echo" in [m["name"] for m in mods]


def test_ops_table_and_json(lmmsd):
    assert lmmsd.ctl("call", "hash.sha256", '"abc"').returncode == 0
    assert lmmsd.ctl("call", "echo.sleep", "1").returncode == 0
    r = lmmsd.ctl("ops")
    assert r.returncode == 0, r.stderr
    header, rows = table(r.stdout)
    assert header == OP_HEADER
    assert "hash.sha256" in [row[0] for row in rows]
    ttl = column(r.stdout, "TTL")
    p99 = column(r.stdout, "P99")
    assert ttl["hash.sha256"] != "-"       # PURE: cached with a TTL
    assert ttl["echo.sleep"] == "-"        # not PURE: no TTL applies
    assert p99["hash.sha512"] == "-"       # never called: no latency

    r = lmmsd.ctl("--json", "ops")
    assert r.returncode == 0, r.stderr
    ops = {o["method"]: o for o in json.loads(r.stdout)["ops"]}
    assert ops["hash.sha256"]["calls"] >= 1
    assert ops["echo.sleep"]["blocking"] is True


def test_ops_doc_column(lmmsd):
    # DOC shows each op's one-line doc (lmms.ops "doc").
    assert lmmsd.ctl("call", "echo.ping").returncode == 0
    ops = {o["method"]: o for o in json.loads(lmmsd.ctl("ops", "--json").stdout)["ops"]}
    assert "doc" in ops["echo.ping"], "daemon without lmms.ops doc"
    r = lmmsd.ctl("ops")
    line = [ln for ln in r.stdout.split("\n") if ln.startswith("echo.ping ")][0]
    if ops["echo.ping"]["doc"]:
        assert line.rstrip().endswith(ops["echo.ping"]["doc"][:20].rstrip()) or \
            ops["echo.ping"]["doc"][:10] in line


def display_width(text):
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def test_table_laid_out_by_display_width(lmmsd):
    # "µs" is two bytes but one column: in a UTF-8 locale the right-aligned
    # latency columns must end at the same display column on every row.
    for _ in range(3):
        assert lmmsd.ctl("call", "echo.ping").returncode == 0
    assert lmmsd.ctl("call", "echo.sleep", "20").returncode == 0
    env = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8")
    r = subprocess.run([str(build_root() / "client/lmmsctl"), "-s", lmmsd.socket, "ops"],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.rstrip("\n").split("\n")
    assert any("\u00b5s" in ln for ln in lines), r.stdout
    head = lines[0]
    end_p99 = head.index("P99") + len("P99")
    for ln in lines[1:]:
        cells = ln.split()
        # the P99 cell is the sixth; it ends where its header ends
        upto = ln.index(" " + cells[5] + " ", ln.index(cells[4]) + len(cells[4]) - 1)
        assert display_width(ln[:upto + 1 + len(cells[5])]) == end_p99, (ln, r.stdout)


def test_stats_table_and_json(lmmsd):
    r = lmmsd.ctl("stats")
    assert r.returncode == 0, r.stderr
    header, rows = table(r.stdout)
    assert header == ["KEY", "VALUE"]
    keys = [row[0] for row in rows]
    assert "requests_total" in keys and "uptime_seconds" in keys
    rss = [ln for ln in r.stdout.split("\n") if ln.startswith("rss_bytes ")][0]
    assert re.search(r"\d(\.\d)? (B|KiB|MiB|GiB)$", rss.rstrip()), rss

    r = lmmsd.ctl("stats", "--json")
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout)
    assert isinstance(stats, dict)
    assert stats["requests_total"] >= 1  # this very call counts, or the previous one
    assert "rss_bytes" in stats


def test_stats_prometheus(lmmsd):
    r = lmmsd.ctl("stats", "--prometheus")
    assert r.returncode == 0, r.stderr
    # exactly the daemon's lmms.metrics text
    with lmmsd.client() as c:
        metrics = c.call("lmms.metrics")
    assert "# HELP lmms_requests_total " in r.stdout
    assert "# TYPE lmms_requests_total counter" in r.stdout
    names = set(re.findall(r"^# TYPE (\S+) ", r.stdout, re.M))
    assert names == set(re.findall(r"^# TYPE (\S+) ", metrics, re.M))
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found (Debian: prometheus)"
    p = subprocess.run([promtool, "check", "metrics"], input=r.stdout, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "" and p.stderr.strip() == "", \
        p.stdout + p.stderr


def test_stats_prometheus_output_file(lmmsd, tmp_path):
    out = tmp_path / "textfile" / "lmms.prom"
    out.parent.mkdir()
    out.write_text("old\n")
    r = lmmsd.ctl("stats", "--prometheus", "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    text = out.read_text()
    assert text.startswith("# HELP ") and "lmms_requests_total" in text
    # written by rename: no temporary file left, readable by the collector
    assert sorted(p.name for p in out.parent.iterdir()) == ["lmms.prom"]
    assert os.stat(out).st_mode & 0o044 == 0o044 or os.umask(0o022) & 0o044

    r = lmmsd.ctl("stats", "--prometheus", "--output", str(tmp_path / "no" / "dir.prom"))
    assert r.returncode == 1
    assert "cannot write" in r.stderr


def test_invalidate_prints_number(lmmsd):
    r = lmmsd.ctl("invalidate")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"\d+\n", r.stdout)


def test_timeout_exits_4(lmmsd):
    r = lmmsd.ctl("--timeout", "100", "call", "echo.sleep", "2000")
    assert r.returncode == 4
    assert "no answer within the timeout" in r.stderr


def test_arguments_from_stdin(lmmsd):
    exe = build_root() / "client/lmmsctl"
    # each "-" reads the next JSON value from stdin
    r = subprocess.run([str(exe), "-s", lmmsd.socket, "call", "echo.ping", "-", "2", "-"],
                       input='"from stdin" {"k": [1, 2]}', capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == ["from stdin", 2, {"k": [1, 2]}]

    big = "x" * 100000
    r = subprocess.run([str(exe), "-s", lmmsd.socket, "call", "hash.sha256", "-"],
                       input=json.dumps(big), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == hashlib.sha256(big.encode()).hexdigest()

    r = subprocess.run([str(exe), "-s", lmmsd.socket, "call", "echo.ping", "-"],
                       input="", capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "stdin holds no JSON value" in r.stderr


def test_config(lmmsd):
    r = lmmsd.ctl("config")
    assert r.returncode == 0, r.stderr
    assert table(r.stdout)[0] == ["KEY", "VALUE"]
    assert "lugs.grace_period" in r.stdout
    assert json.loads(lmmsd.ctl("config", "--json").stdout)["lugs.grace_period"]


def test_trim(lmmsd):
    assert lmmsd.ctl("call", "echo.ping").returncode == 0
    r = lmmsd.ctl("--json", "trim")
    assert r.returncode == 0, r.stderr
    t = json.loads(r.stdout)
    assert {"modules_unloaded", "cache_bytes_dropped", "rss_before", "rss_after"} <= set(t)
    r = lmmsd.ctl("trim")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"unloaded \d+ modules, dropped .+ of cache, RSS .+ -> .+\n", r.stdout)


def test_load_and_unload(lmmsd):
    r = lmmsd.ctl("load", "zstd")
    assert r.returncode == 0, r.stderr
    header, rows = table(r.stdout)
    assert header[0] == "NAME" and rows[0][:2] == ["zstd", "loaded"]

    r = lmmsd.ctl("unload", "zstd", "--now")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "unloaded zstd\n"
    mods = {m["name"]: m
            for m in json.loads(lmmsd.ctl("--json", "modules").stdout)["modules"]}
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
