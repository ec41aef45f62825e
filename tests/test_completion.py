"""bash completion for lmmsctl (client/completion/lmmsctl.bash): sourced in a
real bash, driven through COMP_WORDS/COMP_CWORD like bash's own completion,
with module and method names asked of a running lmmsd."""

import os
import subprocess

from conftest import SOURCE_ROOT, build_root

SCRIPT = SOURCE_ROOT / "client" / "completion" / "lmmsctl.bash"


def complete(*words):
    """COMPREPLY for the command line words (the last one being completed)."""
    prog = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
            '_lmmsctl; printf "%s\\n" "${COMPREPLY[@]}"; complete -p lmmsctl >&2')
    env = dict(os.environ, PATH="%s:%s" % (build_root() / "client", os.environ["PATH"]))
    env.pop("LMMS_SOCKET", None)
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", prog, "bash", str(SCRIPT),
                        *words], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "complete -F _lmmsctl lmmsctl" in r.stderr  # registered for the command
    return sorted(w for w in r.stdout.split("\n") if w)


def test_commands_and_options():
    assert complete("lmmsctl", "") == sorted(
        "ping call modules ops stats config load unload invalidate reload trim top "
        "monitor".split())
    assert complete("lmmsctl", "mo") == ["modules", "monitor"]
    assert complete("lmmsctl", "--j") == ["--json"]
    assert complete("lmmsctl", "stats", "--p") == ["--prometheus"]
    assert complete("lmmsctl", "unload", "x", "--n") == ["--now"]
    assert complete("lmmsctl", "top", "--o") == ["--once"]


def test_names_from_the_running_daemon(lmmsd):
    # An op the daemon has seen: hash.sha256 once hash was loaded.
    assert lmmsd.ctl("call", "hash.sha256", '"abc"').returncode == 0
    s = lmmsd.socket
    assert complete("lmmsctl", "-s", s, "call", "hash.sha2") == ["hash.sha256"]
    assert "echo." in complete("lmmsctl", "-s", s, "call", "ec")  # a module, to go on
    assert "lmms.ping" in complete("lmmsctl", "-s", s, "call", "lmms.p")
    assert complete("lmmsctl", "--socket=" + s, "load", "zs") == ["zstd"]
    mods = complete("lmmsctl", "-s", s, "unload", "")
    assert {"echo", "hash", "json", "zstd"} <= set(mods)
    assert "hash.sha256" in complete("lmmsctl", "-s", s, "invalidate", "hash")
    # arguments after the method are JSON: nothing to offer
    assert complete("lmmsctl", "-s", s, "call", "hash.sha256", "") == []


def test_no_daemon_offers_no_names(tmp_path):
    s = str(tmp_path / "none.sock")
    assert complete("lmmsctl", "-s", s, "load", "") == []
    assert "lmms.ping" in complete("lmmsctl", "-s", s, "call", "lmms.")
