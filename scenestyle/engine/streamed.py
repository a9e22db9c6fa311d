"""Results computed while they are written: a big result (a ×4 upscale of 25 MP is 400 MP, 1.2 GB
as 8-bit RGB) is never held whole. The processor hands back a ``Streamed``; saving it runs the
computation and pushes each finished band into an ``imaging.band_writer``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from scenestyle.imaging import Picture, SampleBands, band_writer

# (first row, uint8/uint16 r×W×C colour, r×W alpha or None); bands come top to bottom, and a band
# at row 0 again means the computation started over (an out-of-memory retry).
Band = tuple[int, np.ndarray, np.ndarray | None]


@dataclass(frozen=True)
class Streamed:
    """A result to compute band by band: ``bands(bits, with_alpha)`` yields ``Band``s quantised
    to ``bits`` (8 or 16), with alpha only when asked."""

    source: Picture  # the photo it is made from: its depth, ICC profile, EXIF and notes go to the file
    shape: tuple[int, int, int]  # (height, width, channels) of the result
    alpha: str | None  # what the result's alpha will be: None, "opaque" or "varies"
    bands: Callable[[int, bool], Iterator[Band]]
    streamed: ClassVar[bool] = True  # the batch runner saves it on the computing thread

    @property
    def notes(self) -> tuple[str, ...]:
        return self.source.notes


def write_streamed(path: Path, result: Streamed, format: str | None = None, quality: int = 95) -> None:
    """Compute ``result`` and write it to ``path`` band by band (atomically, as ``write_picture``)."""
    with band_writer(path, result.shape, result.alpha, result.source, format=format, quality=quality) as out:
        for row, colour, alpha in result.bands(out.bits, out.with_alpha):
            out.write(row, colour, alpha)


def materialise(result: Streamed, bits: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Compute ``result`` into a ``sample_buffer``: (pixels, alpha) for a Picture."""
    out = SampleBands(result.shape, bits, result.alpha is not None)
    for band in result.bands(bits, out.with_alpha):
        out.write(*band)
    return out.pixels, out.alpha
