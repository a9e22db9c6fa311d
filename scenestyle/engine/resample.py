"""Antialiased bicubic resizing a band of rows at a time, for ``upscale --outscale``.

The weights are those of ``F.interpolate(mode="bicubic", antialias=True, align_corners=False)``
(PIL's bicubic filter, a = -0.5, support widened by the scale when shrinking, clipped and
renormalised at the borders), computed once per axis. Each output row depends on a known
window of input rows, so an output band can be made as soon as the input rows it needs have
arrived: a ×4 model's output for ``--outscale 2`` (4.8 GB as float for a 25 MP photo) never
has to exist whole.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from scenestyle.imaging.picture import unit_float

_A = -0.5


def _cubic(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    near = ((_A + 2) * x - (_A + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * _A
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


def axis_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(first input index, int64 [out]; weights, float32 [out, taps], zero-padded) of the
    antialiased bicubic resize of one axis from ``in_size`` to ``out_size``."""
    scale = in_size / out_size
    support = 2.0 * scale if scale >= 1.0 else 2.0
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    taps = int(math.ceil(support)) * 2 + 1
    centre = scale * (np.arange(out_size) + 0.5)
    first = np.maximum((centre - support + 0.5).astype(np.int64), 0)
    last = np.minimum((centre + support + 0.5).astype(np.int64), in_size)
    j = np.arange(taps)[None, :]
    w = _cubic((j + first[:, None] - centre[:, None] + 0.5) * invscale)
    w = np.where(j < (last - first)[:, None], w, 0.0)
    w /= w.sum(axis=1, keepdims=True)
    return first, w.astype(np.float32)


def _rows(x: torch.Tensor, first: np.ndarray, w: np.ndarray) -> torch.Tensor:
    """Σ_t w[:, t] · x[first + t]: output rows from the R×C×K tensor ``x``'s rows."""
    out = None
    for t in range(w.shape[1]):
        wt = torch.from_numpy(np.ascontiguousarray(w[:, t]))
        if not wt.any():
            continue
        term = x.index_select(0, torch.from_numpy(np.minimum(first + t, x.shape[0] - 1))) * wt[:, None, None]
        out = term if out is None else out.add_(term)
    return out


def _columns(rows: np.ndarray, out_w: int) -> torch.Tensor:
    """Whole rows (r×W×C) resized to ``out_w`` columns by torch's own kernel, with exactly
    ``axis_weights``' weights (its pass over the rows is the identity at an unchanged height)."""
    x = torch.from_numpy(np.ascontiguousarray(unit_float(rows))).permute(2, 0, 1)[None]
    x = F.interpolate(x, size=(x.shape[2], out_w), mode="bicubic", align_corners=False, antialias=True)
    return x[0].permute(1, 2, 0).contiguous()


class BandResizer:
    """Resizes an H×W×C image, fed top to bottom in bands of whole rows, to ``out_h``×``out_w``;
    ``feed`` yields (first output row, rows) as soon as they can be made. Float32 throughout,
    clipped to [0, 1] like ``convert.resize``."""

    def __init__(self, in_h: int, in_w: int, out_h: int, out_w: int) -> None:
        self.in_h, self.out_h, self.out_w = in_h, out_h, out_w
        self.row_first, self.row_w = axis_weights(in_h, out_h)
        nz = self.row_w != 0
        # one past the last input row each output row reads (made non-decreasing, to search it)
        self.row_end = np.maximum.accumulate(self.row_first + nz.shape[1] - np.argmax(nz[:, ::-1], axis=1))
        self.held = torch.empty((0, out_w, 0))  # column-resized input rows from ``held_from`` on
        self.held_from = 0
        self.received = 0
        self.made = 0  # output rows handed out

    def feed(self, rows: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Take the next input rows (r×W×C float); yield the output rows they complete."""
        x = _columns(rows, self.out_w)
        self.held = x if self.held.shape[0] == 0 else torch.cat([self.held, x])
        self.received += rows.shape[0]
        ready = int(np.searchsorted(self.row_end, self.received, side="right"))  # rows whose inputs have all arrived
        if self.received == self.in_h:
            ready = self.out_h
        if ready > self.made:
            first = self.row_first[self.made : ready] - self.held_from
            out = _rows(self.held, first, self.row_w[self.made : ready]).clamp_(0, 1)
            yield self.made, out.numpy()
            self.made = ready
            keep = int(self.row_first[ready]) if ready < self.out_h else self.received
            self.held = self.held[keep - self.held_from :]
            self.held_from = keep


def resize_band(src: np.ndarray, out_h: int, out_w: int, first: int, last: int) -> np.ndarray:
    """Rows ``[first, last)`` of the antialiased bicubic resize of the H×W (or H×W×C) float array
    ``src`` to ``out_h``×``out_w``, reading only the input rows they need."""
    squeeze = src.ndim == 2
    arr = src[..., None] if squeeze else src
    row_first, row_w = axis_weights(arr.shape[0], out_h)
    lo = int(row_first[first])
    hi = min(arr.shape[0], int(row_first[last - 1]) + row_w.shape[1])
    out = _rows(_columns(arr[lo:hi], out_w), row_first[first:last] - lo, row_w[first:last]).clamp_(0, 1).numpy()
    return out[..., 0] if squeeze else out


def resize_in_bands(src: np.ndarray, out_h: int, out_w: int, rows: int = 256) -> np.ndarray:
    """``convert.resize`` of the H×W×C float or uint8/uint16 array ``src`` (as [0, 1]), read ``rows``
    rows at a time: the temporaries are band-sized, not photo-sized (12 MP is 144 MB per float copy)."""
    resizer = BandResizer(src.shape[0], src.shape[1], out_h, out_w)
    out = np.empty((out_h, out_w, src.shape[2]), np.float32)
    for r in range(0, src.shape[0], rows):
        for first, band in resizer.feed(unit_float(src[r : r + rows])):
            out[first : first + band.shape[0]] = band
    return out
