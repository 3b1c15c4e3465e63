"""jtex.files: atomic writes (old file kept on any failure, full disk, modes) and path display."""

import errno
import hashlib
import os
import stat

import pytest

from jtex import files
from jtex.errors import JtexError


def umask():
    old = os.umask(0o022)
    os.umask(old)
    return old


def test_writes_creates_parents_and_returns_what_write_returns(tmp_path):
    path = tmp_path / "a" / "b" / "out.bin"

    def write(f):
        f.write(b"hello")
        f.seek(0)
        return hashlib.sha256(f.read()).hexdigest()  # the file is w+b: a writer may read back

    assert files.atomic_write(path, write) == hashlib.sha256(b"hello").hexdigest()
    assert path.read_bytes() == b"hello"
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask()
    assert files.atomic_write_text(tmp_path / "t.json", '{"é": 1}\n') == tmp_path / "t.json"
    assert (tmp_path / "t.json").read_text(encoding="utf-8") == '{"é": 1}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "t.json"]  # no temp files left


def test_mode_is_kept_or_given(tmp_path):
    path = tmp_path / "x.txt"
    files.atomic_write_text(path, "1")
    os.chmod(path, 0o600)
    files.atomic_write_text(path, "2")  # replacing a file keeps its permissions
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    files.atomic_write_text(path, "3", mode=0o644)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and path.read_text() == "3"


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_full_disk_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch, where):
    path = tmp_path / "out.txt"
    files.atomic_write_text(path, "old")
    full = OSError(errno.ENOSPC, "No space left on device")

    def write(f):
        f.write(b"new, but half")
        if where == "write":
            raise full

    def fail(*args):
        raise full

    if where != "write":
        monkeypatch.setattr(os, where, fail)
    with pytest.raises(JtexError, match="no space left") as e:
        files.atomic_write(path, write)
    message = str(e.value)
    assert str(path) in message and "free some space" in message and "\n" not in message
    monkeypatch.undo()
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_other_errors(tmp_path):
    path = tmp_path / "out.txt"
    files.atomic_write_text(path, "old")

    def boom(f):
        f.write(b"partial")
        raise ValueError("not an OSError")

    with pytest.raises(ValueError, match="not an OSError"):  # not ours to explain: passed on, after clean-up
        files.atomic_write(path, boom)

    def denied(f):
        raise PermissionError(errno.EACCES, "Permission denied")

    with pytest.raises(JtexError, match="Permission denied; check free disk space and permissions"):
        files.atomic_write(path, denied)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]

    with pytest.raises(JtexError, match="it is a directory") as e:
        files.atomic_write_text(tmp_path, "x")
    assert str(tmp_path) in str(e.value)
    with pytest.raises(JtexError, match="cannot create the directory"):
        files.atomic_write_text(path / "below_a_file.txt", "x")


def test_interrupt_removes_the_temp_file(tmp_path):
    def interrupted(f):
        f.write(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.atomic_write(tmp_path / "out.txt", interrupted)
    assert list(tmp_path.iterdir()) == []


def test_messages_are_one_line():
    assert files.one_line(OSError("two\n  lines")) == "two lines"
    assert files.one_line(KeyError()) == "KeyError"
    assert files.show("a/b.png") == "a/b.png"
    assert files.show("bad\nname.png") == "'bad\\nname.png'"
