"""Checkpoints: plain dicts written atomically, found by step, pruned; and a stop-signal flag.

A checkpoint is ``torch.save`` of a dict (step, models, optimizers, schedulers, EMA, pools, RNG
states, data-stream state, config text and its sha256). It is written to a temporary file in
the same folder, fsynced, renamed over the final name and the folder fsynced, so a crash at
any moment leaves either the previous checkpoint set or the new one, never a torn file.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import signal
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scenestyle.errors import OutputError, UsageError
from scenestyle.weights import new_file_mode  # mkstemp makes 0600 files: checkpoints follow the umask

_NAME = re.compile(r"^step_(\d{8})\.pt$")


def checkpoint_path(run: Path, step: int) -> Path:
    """``run/checkpoints/step_00001000.pt``."""
    return Path(run) / "checkpoints" / f"step_{step:08d}.pt"


def list_checkpoints(run: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every complete checkpoint of a run, oldest first (temporary files ignored)."""
    folder = Path(run) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def latest_checkpoint(run: Path) -> Path:
    """The newest checkpoint of ``run``; UsageError if it has none."""
    found = list_checkpoints(run)
    if not found:
        raise UsageError(f"--resume {run}: no checkpoints in {Path(run) / 'checkpoints'}")
    return found[-1][1]


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open folders; rename is still atomic there
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, rename; OutputError on failure."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write checkpoint in {path.parent}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def prune(run: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    for _, p in list_checkpoints(run)[:-keep]:
        p.unlink(missing_ok=True)


def load(path: Path) -> dict:
    """Read a checkpoint written by this trainer (``weights_only=True``: no code runs)."""
    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UsageError(f"checkpoint {path} does not exist") from None
    except pickle.UnpicklingError as exc:
        # torch's own message advises weights_only=False, i.e. running the file's code: never repeat it.
        if "weights only" in str(exc).lower():
            raise UsageError(
                f"checkpoint {path} is not a plain checkpoint: it holds Python objects{_globals(exc)} beyond tensors and "
                "containers, which scenestyle refuses to load because unpickling them can run code; use a checkpoint "
                "written by scenestyle train (RUN/checkpoints/step_*.pt)"
            ) from None
        raise UsageError(f"cannot read checkpoint {path}: corrupt or not a PyTorch file ({_first_line(exc)})") from None
    except Exception as exc:
        raise UsageError(f"cannot read checkpoint {path}: {type(exc).__name__}: {_first_line(exc)}") from None


def _globals(exc: BaseException) -> str:
    """`` (e.g. builtins.print)``: the object torch's refusal names, without the rest of its advice."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
    return f" (e.g. {found.group(1)})" if found else ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def rng_state() -> dict:
    """Python, NumPy and torch (CPU and CUDA) global RNG states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what ``rng_state`` returned."""
    random.setstate(_tuples(state["python"]))
    np.random.set_state(_tuples(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(x: Any) -> Any:
    # torch.load(weights_only=True) may return lists where the RNG setters want tuples
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


class StopFlag:
    """SIGINT/SIGTERM set a flag instead of killing; the loop saves after the current step and exits
    128 + signal (130 / 143). A second signal of the same kind kills at once, as usual."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        self.signum = signum

    def __enter__(self) -> StopFlag:
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread: no handlers, the flag just stays unset
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum or 0)
