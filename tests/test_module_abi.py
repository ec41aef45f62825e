"""The module ABI authors grow with (issue 8): module settings read through
the host table, unread ones warned about, one-line docs of every op, module
descriptions, all through a real lmmsd. Run by meson as `module-abi`."""

from conftest import mod, wait_for

BUNDLED = ("echo", "hash", "json", "kv", "sqlite", "zstd")


def test_sqlite_file_database_survives_a_restart(daemon, tmp_path):
    db = tmp_path / "app.db"
    d = daemon("--set", "module.sqlite.path=%s" % db)
    with d.client() as c:
        c.call("sqlite.exec", "CREATE TABLE t (x INTEGER)")
        c.call("sqlite.exec", "INSERT INTO t VALUES (42)")
        # a file database vetoes nothing: it unloads and keeps its data
        assert c.call("lmms.unload", "sqlite", True) is True
        assert mod(c, "sqlite")["state"] == "unloaded"
    assert d.stop() == 0
    assert db.exists()
    d2 = daemon("--set", "module.sqlite.path=%s" % db)
    with d2.client() as c:
        res = c.call("sqlite.exec", "SELECT x FROM t")
        assert "42" in repr(res), res
    assert "never read" not in d2.log()


def test_in_memory_by_default(daemon):
    d = daemon()
    with d.client() as c:
        c.call("sqlite.exec", "CREATE TABLE t (x INTEGER)")
        assert "in memory" in mod(c, "sqlite")["description"]


def test_a_setting_the_module_never_reads_is_warned_about(daemon):
    d = daemon("--set", "module.echo.colour=blue")
    with d.client() as c:
        c.call("echo.ping")
        assert c.call("lmms.config")["module echo.colour"] == "blue"
    wait_for(lambda: 'setting "colour" of [module echo] was never read' in d.log(),
             "the warning")


def test_every_bundled_op_has_a_doc_and_every_module_a_description(daemon):
    d = daemon()
    with d.client() as c:
        for name in BUNDLED:
            c.call("lmms.load", name)
        ops = [o for o in c.ops() if o["method"].split(".")[0] in BUNDLED]
        assert len(ops) >= 15
        for o in ops:
            assert o["doc"], "%s has no doc" % o["method"]
        for name in BUNDLED:
            assert mod(c, name)["description"], name
