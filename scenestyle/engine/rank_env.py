"""How this process was launched, and the process-level hooks of a many-process run: torchrun's
RANK/WORLD_SIZE, ``SCENESTYLE_RANK_TIMEOUT``, signals deferred while rank 0 merges, and the
``SCENESTYLE_TEST_KILL_RANK`` test hook (see ``engine.ranks``)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

from scenestyle.engine.manifest import JobResult
from scenestyle.errors import UsageError

DEFAULT_RANK_TIMEOUT = 1800.0


def launched_rank() -> tuple[int, int]:
    """(RANK, WORLD_SIZE) as torchrun set them; (0, 1) for a plain process."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return (int(os.environ.get("RANK", "0")), world) if world > 1 else (0, 1)
    except ValueError:
        return 0, 1


def is_quiet_rank() -> bool:
    """A torchrun rank other than 0: it prints errors only, and rank 0 reports for it."""
    rank, world = launched_rank()
    return world > 1 and rank != 0


def rank_timeout() -> float:
    raw = os.environ.get("SCENESTYLE_RANK_TIMEOUT", "").strip()
    try:
        value = float(raw) if raw else DEFAULT_RANK_TIMEOUT
    except ValueError:
        value = -1.0
    if value <= 0:
        raise UsageError(f"SCENESTYLE_RANK_TIMEOUT must be a number of seconds > 0, not {raw!r}")
    return value


class signals_deferred:
    """SIGINT/SIGTERM only set an event while rank 0 waits and merges (so a stop cannot cut the
    manifest short); the previous handlers come back afterwards."""

    def __enter__(self) -> threading.Event:
        self.told = threading.Event()
        self.saved = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, lambda *_: self.told.set())
        return self.told

    def __exit__(self, *exc) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


def kill_hook(index: int) -> Callable[[JobResult], None] | None:
    """``SCENESTYLE_TEST_KILL_RANK=R:K``: rank/shard R SIGKILLs itself after its K-th result (tests)."""
    raw = os.environ.get("SCENESTYLE_TEST_KILL_RANK")
    if not raw:
        return None
    rank, _, after = raw.partition(":")
    if not (rank.isdigit() and after.isdigit()) or int(rank) != index:
        return None
    left = [int(after)]

    def hook(_: JobResult) -> None:
        left[0] -= 1
        if left[0] <= 0:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def chain(first: Callable | None, then: Callable) -> Callable:
    def both(r):
        if first is not None:
            first(r)
        then(r)

    return both
