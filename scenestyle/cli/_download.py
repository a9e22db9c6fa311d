"""Rich progress for weight downloads: the engine reports bytes through a plain callback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from scenestyle.weights import ProgressCallback


def download_callback(bars: Progress, label: str = "{}") -> ProgressCallback:
    """A ``progress=`` callback that shows each downloaded file as its own bar in ``bars``;
    ``label`` formats the file's description into the bar's title."""
    ids: dict[str, Any] = {}

    def update(desc: str, done: int, total: int | None) -> None:
        if desc not in ids:
            ids[desc] = bars.add_task(label.format(desc), total=total)
        bars.update(ids[desc], completed=done, total=total)

    return update


@contextmanager
def download_progress(console: Console | None = None) -> Iterator[ProgressCallback]:
    """A Rich display of bytes, speed and time left; yields the callback to pass as ``progress=``."""
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as bars:
        yield download_callback(bars)
