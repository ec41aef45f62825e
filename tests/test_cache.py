"""Result cache (issue 4): hits that never touch the module, misses, expiry
by the timer, LRU under the byte bound, invalidation by each kind (lmmsctl
and lmms.invalidate), negative caching, and a hit answered while the module
is unloaded (checked in /proc/PID/maps).

A hit is told from a call by lmms.stats cache_hits and by lmms.ops calls,
which counts only calls that ran in the module.
"""

import pytest

import lmms
from conftest import mapped, mod, op, wait_for

LUGS_FAST = ("--set", "lugs.grace_period=300ms",
             "--set", "lugs.sweep_interval=100ms",
             "--set", "lugs.min_resident=0")
ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_hit_and_miss(daemon):
    d = daemon()
    with d.client() as c:
        st0 = c.stats()
        assert c.call("hash.sha256", "abc") == ABC
        st1 = c.stats()
        assert st1["cache_misses"] == st0["cache_misses"] + 1
        assert st1["cache_entries"] == 1 and st1["cache_bytes"] > 0, st1
        assert mod(c, "hash")["cache_deps"] == 1
        assert op(c, "hash.sha256")["calls"] == 1
        for _ in range(5):
            assert c.call("hash.sha256", "abc") == ABC
        st2 = c.stats()
        assert st2["cache_hits"] == st1["cache_hits"] + 5
        assert op(c, "hash.sha256")["calls"] == 1, "a hit ran the module"
        # other params: a miss that runs the op
        c.call("hash.sha256", "abd")
        assert c.stats()["cache_misses"] == st2["cache_misses"] + 1
        assert op(c, "hash.sha256")["calls"] == 2
        # not PURE: never cached
        c.call("echo.ping", 1)
        c.call("echo.ping", 1)
        assert op(c, "echo.ping")["calls"] == 2
        assert c.stats()["cache_entries"] == 2


def test_hot_pure_op_still_answers_from_cache(daemon):
    d = daemon()
    with d.client() as c:
        for i in range(25):
            c.call("hash.sha256", "k%d" % i)
        o = op(c, "hash.sha256")
        assert o["fast_path"] and o["calls"] == 25, o
        hits = c.stats()["cache_hits"]
        assert c.call("hash.sha256", "k3") == c.call("hash.sha256", "k3")
        assert c.stats()["cache_hits"] == hits + 2
        assert op(c, "hash.sha256")["calls"] == 25


def test_expiry_by_timer(daemon):
    d = daemon("--set", "cache.default_ttl=300ms", "--set", "cache.expire_interval=100ms")
    with d.client() as c:
        c.call("echo.upper", "a")
        c.call("hash.md5", "a")
        st = c.stats()
        assert st["cache_entries"] == 2, st
        misses, hits = st["cache_misses"], st["cache_hits"]
        # only lmms.stats from here on: no lookup can drop the entries
        wait_for(lambda: c.stats()["cache_entries"] == 0, "entries to expire")
        st = c.stats()
        assert st["cache_bytes"] == 0
        assert (st["cache_misses"], st["cache_hits"]) == (misses, hits)
        assert mod(c, "echo")["cache_deps"] == 0
        assert mod(c, "hash")["cache_deps"] == 0
        # expired means recomputed
        c.call("echo.upper", "a")
        assert op(c, "echo.upper")["calls"] == 2


def test_lru_under_byte_bound(daemon):
    bound = 1000
    d = daemon("--set", "cache.max_bytes=%d" % bound)
    with d.client() as c:
        c.call("hash.sha256", "k0")
        per = c.stats()["cache_bytes"]
        n = bound // per
        assert n >= 3, "entry of %d bytes: bound too small for the test" % per
        for i in range(1, n):
            c.call("hash.sha256", "k%d" % i)
        st = c.stats()
        assert st["cache_entries"] == n and st["cache_evictions"] == 0, st
        hits = st["cache_hits"]
        c.call("hash.sha256", "k0")  # touch: k1 is now the least recently used
        assert c.stats()["cache_hits"] == hits + 1
        c.call("hash.sha256", "k%d" % n)
        st = c.stats()
        assert st["cache_evictions"] == 1 and st["cache_entries"] == n, st
        assert st["cache_bytes"] <= bound
        calls = op(c, "hash.sha256")["calls"]
        c.call("hash.sha256", "k0")
        assert op(c, "hash.sha256")["calls"] == calls, "k0 was evicted, not the LRU"
        c.call("hash.sha256", "k1")
        assert op(c, "hash.sha256")["calls"] == calls + 1, "k1 should have been evicted"
        assert c.stats()["cache_bytes"] <= bound
        assert mod(c, "hash")["cache_deps"] == c.stats()["cache_entries"]


def fill(c):
    for s in ("a", "b"):
        c.call("echo.upper", s)
        c.call("hash.sha256", s)
    c.call("hash.sha256", "c")
    c.call("hash.md5", "a")
    assert c.stats()["cache_entries"] == 6


def test_invalidate_each_kind(daemon):
    d = daemon()
    with d.client() as c:
        fill(c)
        r = d.ctl("invalidate", "hash.sha256")
        assert r.returncode == 0 and r.stdout.strip() == "3", r
        assert c.call("lmms.invalidate", "echo.upper") == 2
        assert mod(c, "echo")["cache_deps"] == 0
        r = d.ctl("invalidate", "hash")
        assert r.returncode == 0 and r.stdout.strip() == "1", r
        assert c.stats()["cache_entries"] == 0

        fill(c)
        assert c.call("lmms.invalidate", "hash") == 4
        assert mod(c, "hash")["cache_deps"] == 0
        assert c.call("lmms.invalidate", "hash.md5") == 0
        r = d.ctl("invalidate")
        assert r.returncode == 0 and r.stdout.strip() == "2", r

        fill(c)
        assert c.call("lmms.invalidate") == 6
        st = c.stats()
        assert st["cache_entries"] == 0 and st["cache_bytes"] == 0, st
        # invalidated means recomputed
        calls = op(c, "echo.upper")["calls"]
        c.call("echo.upper", "a")
        assert op(c, "echo.upper")["calls"] == calls + 1
        # unknown names
        assert c.call("lmms.invalidate", "nosuch.op") == 0
        with pytest.raises(lmms.LmmsError) as ei:
            c.call("lmms.invalidate", "nosuchmodule")
        assert ei.value.code == "no_such_module"
        r = d.ctl("invalidate", "a", "b")
        assert r.returncode == 2


def test_negative_caching(daemon):
    d = daemon("--set", "cache.negative_ttl=5s")
    with d.client() as c:
        for _ in range(3):
            with pytest.raises(lmms.LmmsError) as ei:
                c.call("echo.fail_pure", "boom")
            assert (ei.value.code, ei.value.message) == ("module_error", "boom")
        assert op(c, "echo.fail_pure")["calls"] == 1
        assert c.stats()["cache_hits"] == 2
        # bad params are never cached
        for _ in range(2):
            with pytest.raises(lmms.LmmsError) as ei:
                c.call("echo.fail_pure", 1)
            assert ei.value.code == "bad_params"
        assert op(c, "echo.fail_pure")["calls"] == 3
        # not PURE: never cached
        for _ in range(2):
            with pytest.raises(lmms.LmmsError):
                c.call("echo.fail", "boom")
        assert op(c, "echo.fail")["calls"] == 2


def test_no_negative_caching_by_default(daemon):
    d = daemon()
    with d.client() as c:
        for _ in range(3):
            with pytest.raises(lmms.LmmsError) as ei:
                c.call("echo.fail_pure", "boom")
            assert ei.value.code == "module_error"
        assert op(c, "echo.fail_pure")["calls"] == 3
        assert c.stats()["cache_entries"] == 0


def test_hit_after_unload_does_not_load(daemon):
    # json, not hash: with the default OpenSSL backend hash is pinned by
    # libcrypto's -z nodelete and never leaves memory.
    doc, canon = '{"b":1,"a":2}', '{"a":2,"b":1}'
    d = daemon(*LUGS_FAST, "--set", "lugs.keep_while_cached=false")
    with d.client() as c:
        assert c.call("json.canonical", doc) == canon
        assert mapped(d.pid, "json")
        m = wait_for(lambda: (lambda m: m if m["state"] == "unloaded" else None)(mod(c, "json")),
                     "json to be unloaded")
        assert m["cache_deps"] == 1, m
        assert not mapped(d.pid, "json")
        hits = c.stats()["cache_hits"]
        for _ in range(3):
            assert c.call("json.canonical", doc) == canon
        assert c.stats()["cache_hits"] == hits + 3
        m = mod(c, "json")
        assert m["state"] == "unloaded" and m["loads"] == 1, m
        assert not mapped(d.pid, "json"), "a cache hit mapped json.so"
        # a miss loads it again
        assert c.call("json.canonical", "[2,1]") == "[2,1]"
        assert mapped(d.pid, "json") and mod(c, "json")["loads"] == 2
