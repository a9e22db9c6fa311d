"""Files written whole or not at all: a temp file beside the target, fsync, rename; and the
clean-up of temp files a killed process left behind."""

from __future__ import annotations

import errno
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from scenestyle._text import exception_line
from scenestyle.errors import OutputError, ScenestyleError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; stale temp files are then removed unconditionally
    fcntl = None  # type: ignore[assignment]

TEMP_SUFFIX = ".tmp"
# tempfile.mkstemp(prefix=f".{name}.", suffix=TEMP_SUFFIX): eight characters of its alphabet in between.
_TEMP_NAME = re.compile(r"\.(.+)\.[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX), re.DOTALL)


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A temp file beside ``path`` to write in the ``with`` body; fsynced and renamed to ``path``
    when the body ends, removed on any failure, so no partial file is ever left.

    Raises ``OutputError`` (one line) for an OSError or any other exception; a
    ``ScenestyleError`` from the body (a streamed computation that failed) keeps its own words.
    """
    folder = path.parent
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=folder)
        if fcntl is not None:  # held until closed or the process dies: marks the temp file as live
            fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(fd, "w+b") as f:  # readable too: the TIFF writer reads its IFD back
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _new_file_mode(path))
        os.replace(tmp, path)
        tmp = None
    except BaseException as exc:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if isinstance(exc, OSError):
            raise OutputError(write_error(path, exc)) from None
        if isinstance(exc, ScenestyleError):
            raise
        if isinstance(exc, Exception):
            raise OutputError(f"cannot write {path}: {exception_line(exc)}") from None
        raise


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """``write(f)`` into an ``atomic_file`` for ``path``."""
    with atomic_file(path) as f:
        write(f)


def remove_stale_temps(folder: Path, names: set[str]) -> list[Path]:
    """Delete the temp files that ``atomic_write`` left in ``folder`` for outputs named ``names``
    when its process was killed (SIGKILL, power loss); returns those removed.

    Only our exact pattern (``.NAME.XXXXXXXX.tmp``, NAME one of ``names``) is touched, and only
    when no process holds its lock, so a temp file another run is still writing is kept.
    """
    removed: list[Path] = []
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(".") and e.name.endswith(TEMP_SUFFIX)]
    except OSError:
        return removed  # an unreadable folder fails later, per output, with its own message
    for entry in entries:
        m = _TEMP_NAME.fullmatch(entry.name)
        if m is None or m.group(1) not in names or not entry.is_file(follow_symlinks=False):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY)
        except OSError:
            continue
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a live writer holds it
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _new_file_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777  # replacing a file keeps its permissions
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_error(path: Path, exc: OSError) -> str:
    """The one-line message for an OSError raised while writing ``path``."""
    folder = path.parent
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: the folder {folder} is not writable"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"cannot write {path}: no space left on the device holding {folder}"
    if isinstance(exc, FileNotFoundError) and not folder.is_dir():
        return f"cannot write {path}: the folder {folder} does not exist"
    if isinstance(exc, IsADirectoryError) or path.is_dir():
        return f"cannot write {path}: a folder of that name is in the way"
    return f"cannot write {path}: {exc.strerror or exception_line(exc)}"


__all__ = ["TEMP_SUFFIX", "atomic_file", "atomic_write", "remove_stale_temps", "write_error"]
