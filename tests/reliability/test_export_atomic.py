"""EXPORT writes whole files or nothing: a crash or an error mid-write leaves an
existing export intact and nothing partial under the target's name; what was written
is read back and verified; a blob tampered together with its digest is a dbml error."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import dbml
from dbml.errors import IntegrityError, TransferError

O = "epochs = 2, progress = false"


@pytest.fixture
def database(tmp_path):
    """A database file with a model (two versions) and a good export of version 1."""
    path = tmp_path / "db.duckdb"
    with dbml.connect(str(path), user="tester") as con:
        con.sql("CREATE TABLE t AS SELECT i % 10 AS a, (i * 7) % 13 AS b, i % 10 > 4 AS y FROM range(200) r(i)")
        con.sql(f"TRAIN MODEL m FROM t TARGET y WITH ({O}, hidden = [8])")
        con.sql(f"TRAIN MODEL m FROM t TARGET y WITH ({O}, hidden = [512, 512])")  # a few MB of weights
        con.sql(f"EXPORT MODEL m VERSION 1 TO '{tmp_path}/out.onnx'")
    return path, tmp_path / "out.onnx"


def _names(folder) -> list[str]:
    return sorted(p for p in os.listdir(folder) if not p.startswith("db.duckdb"))


def test_sigkill_mid_write_keeps_the_old_export(database):
    db, out = database
    good = out.read_bytes()
    script = textwrap.dedent(
        f"""
        import builtins, sys, time
        import dbml, dbml.registry.transfer as transfer

        class Slow:
            def __init__(self, f): self.f = f
            def __enter__(self): return self
            def __exit__(self, *a): return self.f.__exit__(*a)
            def write(self, data):
                self.f.write(data[: len(data) // 2]); self.f.flush()
                print("HALF", len(data), flush=True)
                time.sleep(60)
            def __getattr__(self, name): return getattr(self.f, name)

        transfer.open = lambda *a, **k: Slow(builtins.open(*a, **k))
        con = dbml.connect({str(db)!r})
        con.sql("EXPORT MODEL m VERSION 2 TO '{out}'")
        print("DONE", flush=True)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.startswith("HALF"), (line, child.stderr.read() if child.poll() is not None else "")
        size = int(line.split()[1])
        assert size > 1_000_000  # the big version really was being written
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert out.read_bytes() == good  # the old export survives, byte for byte
    names = _names(out.parent)
    assert names[-1] == "out.onnx"
    leftovers = names[:-1]  # only a hidden temporary file may stay, never under the target's name
    assert all(n.startswith(".out.onnx.") and n.endswith(".partial") for n in leftovers), names
    with dbml.connect(str(db)) as con:  # the registry is as it was: no EXPORT row from the killed process
        assert con.sql("SELECT count(*) FROM dbml.audit_log WHERE action = 'EXPORT'").fetchall() == [(1,)]
        con.sql(f"IMPORT MODEL back FROM '{out}'")
        assert con.sql("SELECT count(*) FROM dbml.model_versions WHERE model = 'back'").fetchall() == [(1,)]


def test_a_failing_write_leaves_the_old_file_and_no_temporary(database, monkeypatch):
    import builtins

    import dbml.registry.transfer as transfer

    db, out = database
    good = out.read_bytes()

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return self.f.__exit__(*a)

        def write(self, data):
            self.f.write(data[:1000])
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(transfer, "open", lambda *a, **k: Full(builtins.open(*a, **k)), raising=False)
    with dbml.connect(str(db)) as con:
        with pytest.raises(TransferError, match="cannot write .*out.onnx.*No space left on device"):
            con.sql(f"EXPORT MODEL m VERSION 2 TO '{out}'")
        assert con.sql("SELECT count(*) FROM dbml.audit_log WHERE action = 'EXPORT'").fetchall() == [(1,)]
    assert out.read_bytes() == good
    assert _names(out.parent) == ["out.onnx"]


def test_what_was_written_is_verified(database, monkeypatch):
    import dbml.registry.transfer as transfer

    db, out = database
    real = os.replace

    def lossy(src, dst):  # a file system that loses the tail of the file
        real(src, dst)
        with open(dst, "r+b") as f:
            f.truncate(100)

    monkeypatch.setattr(transfer.os, "replace", lossy)
    with dbml.connect(str(db)) as con:
        with pytest.raises(TransferError, match="does not read back as written \\(100 bytes"):
            con.sql(f"EXPORT MODEL m VERSION 1 TO '{out.parent}/again.onnx'")
    monkeypatch.undo()
    with dbml.connect(str(db)) as con:
        row = con.sql(f"EXPORT MODEL m VERSION 1 TO '{out.parent}/again.onnx'").fetchall()[0]
        assert row[4] == hashlib.sha256((out.parent / "again.onnx").read_bytes()).hexdigest()
        memory = con.sql("EXPORT MODEL m VERSION 1 TO 'memory://atomic/m.onnx'").fetchall()[0]
        assert memory[3] == row[3]  # whole-object upload, verified the same way


def test_a_blob_tampered_with_its_digest_is_a_dbml_error_at_export(database):
    db, out = database
    junk = b"\x0a\xff\xff\xff\xff\x0f" + b"not an onnx graph" * 10
    with dbml.connect(str(db)) as con:
        con.duckdb.execute("UPDATE dbml.model_blobs SET onnx = ? WHERE model = 'm' AND version = 1", [junk])
        con.duckdb.execute(
            "UPDATE dbml.model_versions SET onnx_sha256 = ?, onnx_size = ? WHERE model = 'm' AND version = 1",
            [hashlib.sha256(junk).hexdigest(), len(junk)],
        )
        with pytest.raises(IntegrityError, match="model 'm' version 1 matches its recorded size and sha256 but is not"):
            con.sql(f"EXPORT MODEL m VERSION 1 TO '{out.parent}/tampered.onnx'")
    assert not (out.parent / "tampered.onnx").exists()
