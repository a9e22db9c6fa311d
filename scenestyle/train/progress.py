"""What a run reports: Rich progress on rank 0, ``metrics.jsonl`` (+ TensorBoard when installed),
and sample sheets (input | output | reconstruction) as PNG."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class Reporter:
    """Progress bar, metrics file and optional TensorBoard writer; a no-op when ``enabled`` is False."""

    def __init__(self, run: Path, total: int, start: int, *, enabled: bool, console: Console | None, show_bar: bool):
        self.enabled = enabled
        self.metrics = (Path(run) / "metrics.jsonl").open("a", encoding="utf-8") if enabled else None
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter  # only when tensorboard is installed

                self.tb = SummaryWriter(str(Path(run) / "tb"))
            except Exception:
                self.tb = None
        self.progress = Progress(
            TextColumn("step"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, transient=False, disable=not (enabled and show_bar),
        )
        self.task = self.progress.add_task("train", total=total, completed=start, rate="", info="")
        self._t, self._step = time.perf_counter(), start

    def __enter__(self) -> "Reporter":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)
        if self.metrics:
            self.metrics.close()
        if self.tb:
            self.tb.close()

    def advance(self, step: int) -> None:
        self.progress.update(self.task, completed=step)

    def log(self, step: int, values: dict[str, float]) -> dict:
        """Write one metrics line (adds it/s since the last line); returns the record."""
        now = time.perf_counter()
        rate = (step - self._step) / max(now - self._t, 1e-9)
        self._t, self._step = now, step
        record = {"step": step, "time": time.time(), "it_per_s": round(rate, 4), **{k: round(float(v), 6) for k, v in values.items()}}
        if not self.enabled:
            return record
        self.metrics.write(json.dumps(record) + "\n")
        self.metrics.flush()
        if self.tb:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)
        info = " ".join(f"{k}={v:.3g}" for k, v in values.items() if k in ("loss_G", "loss_D", "lr"))
        self.progress.update(self.task, completed=step, rate=f"{rate:.2f} it/s", info=info)
        return record


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """NCHW in [-1, 1] -> N x H x W x 3 uint8."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def save_sheet(rows: list[list[torch.Tensor]], path: Path) -> None:
    """One row per list of NCHW batches (e.g. [a, G_AB(a), G_BA(G_AB(a))]); images side by side."""
    strips = []
    for row in rows:
        cells = [to_uint8(t) for t in row]
        for i in range(cells[0].shape[0]):
            strips.append(np.concatenate([c[i] for c in cells], axis=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(np.concatenate(strips, axis=0)).save(tmp, format="PNG")
    tmp.replace(path)
