"""Writing files atomically, and naming paths in one-line messages.

The bottom of jtex's file layer: :mod:`jtex.image` and :mod:`jtex.figures`
(and run folders and the weights cache) write every file through
:func:`atomic_write`, so a reader sees either the previous file or the
complete new one, never a half-written file, even if jtex is killed or the
disk fills up part way.

Expected problems (a full disk, an unwritable folder, a name that is a
folder) raise :class:`jtex.errors.JtexError` with a one-line message that
names the path and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from jtex.errors import JtexError

__all__ = ["atomic_write", "atomic_write_text"]

T = TypeVar("T")

# errno values that mean "no room left": a full disk, or a full quota.
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], T], *, mode: int | None = None) -> T:
    """Calls ``write`` on a temp file next to ``path``, then renames it to ``path``.

    Steps: create missing parent folders; create a temp file
    ``.NAME.XXXX.tmp`` in the same folder; call ``write(f)`` on it (opened
    ``w+b``, so ``write`` may also seek and read back what it wrote, e.g. to
    hash it); flush and fsync it; set its permissions; ``os.replace`` it over
    ``path`` (atomic within one folder on POSIX and Windows); fsync the
    folder so the rename itself survives a crash. On any failure, or an
    interrupt, the temp file is removed and an existing file at ``path`` is
    left as it was.

    Args:
        path: The file to write.
        write: Writes the complete content to the binary file it is given.
        mode: Permission bits for the file, e.g. ``0o644``. Default: those of
            the file being replaced, else ``0o666`` less the umask (what
            ``open()`` would give a new file).

    Returns:
        Whatever ``write`` returned.

    Raises:
        JtexError: ``path`` is a folder, its folder cannot be created, or an
            OSError while writing (full disk, permissions). Other exceptions
            from ``write`` propagate unchanged, after the clean-up.
    """
    path = Path(path)
    shown = show(path)
    if path.is_dir():
        raise JtexError(f"cannot write {shown}: it is a directory; give a file name inside it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise JtexError(
            f"cannot create the directory for {shown}: {one_line(e)}; check permissions or choose another output path"
        ) from e
    if mode is None:
        mode = _new_file_mode(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _write_error(shown, e, "check the directory's permissions") from e
    try:
        with os.fdopen(fd, "w+b") as f:
            result = write(f)
            f.flush()
            os.fsync(f.fileno())  # the data must be on disk before the rename is
        os.chmod(tmp, mode)  # mkstemp creates the file private (0600)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise _write_error(shown, e, "check free disk space and permissions") from e
        raise
    _fsync_directory(path.parent)
    return result


def atomic_write_text(path: str | os.PathLike, text: str, *, mode: int | None = None) -> Path:
    """Writes ``text`` as UTF-8 to ``path`` atomically, like :func:`atomic_write`.

    Returns:
        The path written, as a Path.
    """
    data = text.encode("utf-8")
    atomic_write(path, lambda f: f.write(data), mode=mode)
    return Path(path)


def _write_error(shown: str, error: OSError, fix: str) -> JtexError:
    """The one-line JtexError for an OSError while writing ``shown``."""
    if error.errno in _NO_SPACE:
        return JtexError(f"cannot write {shown}: no space left on the disk; free some space and run again")
    return JtexError(f"cannot write {shown}: {one_line(error)}; {fix}")


def _new_file_mode(path: Path) -> int:
    """Permissions for a written file: the old file's, else 0666 less the umask."""
    with contextlib.suppress(OSError):
        return path.stat().st_mode & 0o777
    # The umask can only be read by setting it; set it straight back.
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_directory(folder: Path) -> None:
    """Flushes a folder's entries (the rename) to disk, where the OS allows it.

    The file itself is already complete and in place; some systems (Windows,
    some network file systems) cannot open or fsync a folder, and there is
    nothing more to do about it then, so those errors are ignored.
    """
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def one_line(error: BaseException) -> str:
    """An exception's message on one line (the CLI prints messages as one line)."""
    text = re.sub(r"\s+", " ", str(error)).strip()
    return text or type(error).__name__


def show(path: str | os.PathLike) -> str:
    """A path for a one-line message; quoted if it holds control characters."""
    text = str(path)
    return repr(text) if any(ord(ch) < 32 for ch in text) else text
