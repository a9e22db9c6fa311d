"""File helpers for weights: a memoised full sha256, and the mode a new file should get."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

CHUNK = 1 << 20  # bytes per read when hashing or copying

_hash_cache: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def file_sha256(path: Path) -> str:
    """Full sha256 of a file, remembered per (real path, mtime, size) so repeat checks are free."""
    real = Path(path).resolve()
    st = real.stat()
    key = (str(real), st.st_mtime_ns, st.st_size)
    with _hash_lock:
        if key in _hash_cache:
            return _hash_cache[key]
    h = hashlib.sha256()
    with open(real, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    with _hash_lock:
        _hash_cache[key] = digest
    return digest


def _umask() -> int:
    # Linux shows the umask in /proc; os.umask can only read it by setting it, for an instant, process-wide.
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def new_file_mode() -> int:
    """``0o666 & ~umask``, the mode ``open()`` gives a new file. mkstemp and safetensors make 0600
    files, which would keep a cached model, a checkpoint or a trained model from being shared."""
    return 0o666 & ~_umask()
