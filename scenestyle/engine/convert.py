"""Picture ↔ tensor, value ranges, channel matching and resizing shared by the task modules."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scenestyle._colour import BT601_LUMA
from scenestyle.imaging.picture import unit_float


class UnitRange(nn.Module):
    """Wraps a generator whose forward works in ``value_range`` so it takes and returns [0, 1]
    images; extra forward arguments (an FFDNet's σ) pass through.

    Doing the mapping per tile inside the model lets the engine feed a zero-copy view of the
    decoded photo: a 25 MP photo is 300 MB per float copy.
    """

    def __init__(self, model: nn.Module, value_range: tuple[float, float]):
        super().__init__()
        self.model = model
        self.lo, self.hi = value_range
        # Another range is mapped in float32 and cast after: bf16 steps of a [0, 1] input near
        # mid-grey are twice as coarse in [-1, 1] units as bf16 of the mapped value (measured:
        # 3 dB less agreement with fp32 for a [-1, 1] generator).
        self.input_dtype = None if (self.lo, self.hi) == (0.0, 1.0) else torch.float32

    def forward(self, x: Tensor, *args: object) -> Tensor:
        if self.input_dtype is None:
            return self.model(x, *args)
        param = next(self.model.parameters(), None)
        dtype = param.dtype if param is not None and param.is_floating_point() else x.dtype
        y = self.model((x.float() * (self.hi - self.lo) + self.lo).to(dtype), *args)
        return (y.float() - self.lo) / (self.hi - self.lo)


def to_tensor(pixels: np.ndarray, in_channels: int) -> Tensor:
    """H×W×C float32 in [0, 1] → a 1×C×H×W view (no copy), grayscale repeated for a colour model
    (``in_channels`` 3)."""
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    if x.shape[1] == 1 and in_channels == 3:
        x = x.expand(-1, 3, -1, -1)
    return x


def to_pixels(y: Tensor, channels: int) -> np.ndarray:
    """1×C×H×W in [0, 1] (clipped in place) → an H×W×channels array view."""
    y = y.float().clamp_(0, 1)[0]
    if channels == 1 and y.shape[0] == 3:
        w = torch.tensor(BT601_LUMA, dtype=y.dtype).view(3, 1, 1)
        y = (y * w).sum(0, keepdim=True)
    return y.permute(1, 2, 0).numpy()


def resize(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Antialiased bicubic resize of an H×W×C (or H×W) float (or uint8/uint16 sample) array, clipped to [0, 1]."""
    squeeze = pixels.ndim == 2
    arr = unit_float(pixels[..., None] if squeeze else pixels)
    x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None].float()
    y = F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    out = y[0].clamp_(0, 1).permute(1, 2, 0).contiguous().numpy()
    return out[..., 0] if squeeze else out


def resize_rows(src: np.ndarray, factor: int, first: int, last: int) -> np.ndarray:
    """Output rows ``[first, last)`` (multiples of ``factor``) of ``resize`` of the H×W float
    array ``src`` by the integer ``factor``, computed from a band of ``src``. Every output row
    maps back into its own band, and with a few rows of context per side the band gives
    exactly the whole-image rows."""
    h = src.shape[0]
    ctx = 4  # the bicubic kernel reaches 2 input pixels out; 4 keeps the edge clamping away
    lo, hi = max(0, first // factor - ctx), min(h, -(-last // factor) + ctx)
    band = resize(src[lo:hi], (hi - lo) * factor, src.shape[1] * factor)
    return band[first - lo * factor : last - lo * factor]


def blend(original: np.ndarray, processed: np.ndarray, strength: float) -> np.ndarray:
    """``strength`` of the processed result over the original (same shape)."""
    if strength >= 1.0:
        return processed
    return (strength * processed + (1.0 - strength) * original).astype(np.float32)
