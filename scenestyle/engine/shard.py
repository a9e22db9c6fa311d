"""One planned batch split over several processes: who does which photo, and their manifest parts.

Pure bookkeeping, no process group (that is :mod:`scenestyle.engine.ranks`):

* ``--shard I/N`` parsing;
* weights: a photo's pixel count from its header (``PIL.Image.open`` reads no pixel data), plus a
  fixed per-file cost, so shards balance work rather than file counts;
* ``assign``: heaviest photo first to the least-loaded shard (ties: fewer photos, then the lower
  index): deterministic, so processes that cannot talk to each other compute the same split;
* manifest parts: each process appends to ``STEM.part-I-of-N.jsonl`` beside the manifest, holding
  an advisory lock (``flock``, as ``imaging.atomic`` does for temp files) for as long as it writes;
  a part whose lock is free is finished or orphaned, and the process that owns the manifest
  absorbs it (appends its lines to the manifest, deletes it).
"""

from __future__ import annotations

import heapq
import json
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from scenestyle.errors import OutputError, UsageError
from scenestyle.imaging.atomic import write_error
from scenestyle.imaging.read import _PILLOW_LIMIT_LOCK  # guards Pillow's global pixel limit, as read_picture does

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a part then counts as finished when it lists all its photos
    fcntl = None  # type: ignore[assignment]

# A photo's fixed cost (decode, hash, model calls, encode) in pixels of compute, for balancing: it
# keeps a folder of tiny or unreadable files from landing on one shard.
FILE_COST_PIXELS = 100_000
# Threads reading headers: the work is waiting on the disk or a network file system.
HEADER_THREADS = 8
_PART = re.compile(r"\.part-(\d+)-of-(\d+)$")


def parse_shard(value: str) -> tuple[int, int]:
    """``--shard I/N`` → (I, N): this process's share I (0 to N-1) of N."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value or "")
    if m is None:
        raise UsageError(f"--shard must be I/N, share I (numbered from 0) of N (e.g. 0/4), not {value!r}")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1:
        raise UsageError(f"--shard {value}: N must be at least 1")
    if i >= n:
        raise UsageError(f"--shard {value}: I must be 0 to {n - 1} (shares are numbered from 0), not {i}")
    return i, n


def pixel_count(path: Path) -> int:
    """Width × height from the file's header; 0 when it cannot be read (it will fail fast)."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            return w * h
    except Exception:  # any decoder's complaint: the reader reports it properly later
        return 0


def weights(paths: Sequence[Path]) -> list[int]:
    """Each photo's balancing weight: ``FILE_COST_PIXELS`` + its pixel count (headers read in threads)."""
    if not paths:
        return []
    with _PILLOW_LIMIT_LOCK, ThreadPoolExecutor(max_workers=min(HEADER_THREADS, len(paths))) as pool:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # a 300 MP photo weighs 300 MP (--max-pixels is checked when it is read)
        try:
            return [FILE_COST_PIXELS + n for n in pool.map(pixel_count, paths)]
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def assign(weights: Sequence[int], count: int) -> list[int]:
    """The shard (0 to ``count``-1) of each item: heaviest first to the least-loaded shard."""
    owner = [0] * len(weights)
    heap = [(0, 0, s) for s in range(count)]  # (load, items, shard)
    for k in sorted(range(len(weights)), key=lambda k: (-weights[k], k)):
        load, items, s = heapq.heappop(heap)
        owner[k] = s
        heapq.heappush(heap, (load + weights[k], items + 1, s))
    return owner


def part_path(manifest: Path, index: int, count: int) -> Path:
    """Where process ``index`` of ``count`` writes its manifest lines: ``STEM.part-I-of-N.jsonl``."""
    return manifest.with_name(f"{manifest.stem}.part-{index}-of-{count}{manifest.suffix}")


def leftover_parts(manifest: Path) -> list[Path]:
    """The parts of ``manifest`` in its folder (from any N), in (N, I) order."""
    found = []
    try:
        entries = list(os.scandir(manifest.parent))
    except OSError:
        return []
    for e in entries:
        name = e.name
        if not (name.startswith(manifest.stem + ".part-") and name.endswith(manifest.suffix)):
            continue
        m = _PART.fullmatch(name[len(manifest.stem) : len(name) - len(manifest.suffix)])
        if m and e.is_file(follow_symlinks=False):
            found.append(((int(m.group(2)), int(m.group(1))), Path(e.path)))
    return [p for _, p in sorted(found)]


def hold(path: Path) -> int:
    """Create (or reopen) the part ``path`` and take its lock; the fd is kept until ``release``."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
    except OSError as e:
        raise OutputError(write_error(path, e).replace("cannot write", "cannot write the manifest part", 1)) from None
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UsageError(
                f"another scenestyle run is writing {path} (the same shard started twice?); wait for it to finish or stop it"
            ) from None
        except OSError:
            pass  # a file system without locks (some cluster mounts): finished parts are then told by their lines
    return fd


def release(fd: int | None) -> None:
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


def is_free(path: Path) -> bool | None:
    """Whether no process holds ``path``'s lock (its writer finished or died); None when locks cannot tell."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:
        return None
    finally:
        os.close(fd)


def read_lines(path: Path) -> list[dict]:
    """The manifest records in a part; a last line cut short (a killed writer) or a foreign line is dropped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise OutputError(f"cannot read the manifest part {path}: {e.strerror or e}") from None
    out = []
    for raw in data.split(b"\n")[:-1]:  # the piece after the last newline is unfinished
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        if isinstance(rec, dict) and {"input", "output", "status"} <= rec.keys():
            out.append(rec)
    return out


def append_lines(manifest: Path, records: Sequence[dict]) -> None:
    """Append records to the manifest, flushed to disk (the parts they came from are deleted next)."""
    if not records:
        return
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    try:
        with open(manifest, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise OutputError(write_error(manifest, e).replace("cannot write", "cannot write the manifest", 1)) from None


def absorb(manifest: Path) -> list[Path]:
    """Append the lines of every finished or orphaned part of ``manifest`` to it and delete the part;
    returns the parts absorbed. A part that a live process still writes (its lock is held) is left."""
    done = []
    for path in leftover_parts(manifest):
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            continue
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # still being written
                except OSError:
                    pass
            try:
                if os.stat(path).st_ino != os.fstat(fd).st_ino:
                    continue  # absorbed and replaced meanwhile by another run
            except FileNotFoundError:
                continue
            append_lines(manifest, read_lines(path))
            path.unlink()
            done.append(path)
        finally:
            os.close(fd)
    return done
