"""What a run reports: Rich progress on rank 0 (a plain line every ``line_every`` seconds when
stderr is not a terminal: nohup, CI, a log file), ``metrics.jsonl`` (+ TensorBoard when
installed), and sample sheets (input | output | reconstruction) as PNG."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

LINE_EVERY = 30.0  # seconds between plain progress lines: a log stays readable, a stall shows within a minute


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Reporter:
    """Progress bar, metrics file and optional TensorBoard writer; a no-op when ``enabled`` is False.

    Without a bar (``show_bar`` False) and with a ``console`` that is not a terminal, a plain line
    (step, it/s, losses, ETA) goes to the console at the first step, every ``line_every`` seconds
    and at the end: a Rich bar there would print nothing until the run is over."""

    def __init__(
        self, run: Path, total: int, start: int, *, enabled: bool, console: Console | None, show_bar: bool, line_every: float = LINE_EVERY
    ):
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
            TextColumn("step"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            disable=not (enabled and show_bar),
        )
        self.task = self.progress.add_task("train", total=total, completed=start, rate="", info="")
        self._t, self._step = time.perf_counter(), start
        self.lines = enabled and not show_bar and console is not None and not console.is_terminal
        self.console, self.total, self.line_every = console, total, line_every
        self._t0, self._start = self._t, start  # the ETA uses the rate since the run (re)started
        self._line_t, self._line_step, self._last_step = self._t, start, start
        self._losses: dict[str, float] = {}

    def __enter__(self) -> Reporter:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.lines and self._last_step != self._line_step:
            self._line(self._last_step, time.perf_counter())
        self.progress.__exit__(*exc)
        if self.metrics:
            self.metrics.close()
        if self.tb:
            self.tb.close()

    def advance(self, step: int) -> None:
        self.progress.update(self.task, completed=step)
        self._last_step = step
        if self.lines:
            now = time.perf_counter()
            if self._line_step == self._start or now - self._line_t >= self.line_every:
                self._line(step, now)

    def _line(self, step: int, now: float) -> None:
        """``step 120/1000 (12%)  3.41 it/s  loss_G=1.23 loss_D=0.456  ETA 4m18s`` on the console."""
        rate = (step - self._line_step) / max(now - self._line_t, 1e-9)
        overall = (step - self._start) / max(now - self._t0, 1e-9)
        eta = _duration((self.total - step) / overall) if overall > 0 and step < self.total else "0m00s"
        losses = "  " + " ".join(f"{k}={v:.3g}" for k, v in self._losses.items()) if self._losses else ""
        pct = 100 * step / max(self.total, 1)
        self.console.print(
            f"step {step}/{self.total} ({pct:.0f}%)  {rate:.2f} it/s{losses}  ETA {eta}", markup=False, highlight=False, soft_wrap=True
        )
        self._line_t, self._line_step = now, step

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
        self._losses = {k: float(v) for k, v in values.items() if k in ("loss_G", "loss_D")}
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
