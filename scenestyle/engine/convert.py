"""Picture ↔ tensor, channel matching and resizing shared by the task modules."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# ITU-R BT.601 luma weights: grayscale in -> grayscale out after a colour model.
LUMA = (0.299, 0.587, 0.114)


def to_tensor(pixels: np.ndarray, model: nn.Module) -> torch.Tensor:
    """H×W×C floats in [0, 1] → 1×C×H×W in the model's value range, channels matched.

    A grayscale photo fed to a colour model is repeated to three channels; a colour photo
    is not fed to a one-channel model here (the caller runs each channel on its own).
    """
    x = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None].float()
    if x.shape[1] == 1 and model.in_channels == 3:
        x = x.expand(-1, 3, -1, -1)
    lo, hi = model.value_range
    return x * (hi - lo) + lo


def to_pixels(y: torch.Tensor, model: nn.Module, channels: int) -> np.ndarray:
    """1×C×H×W in the model's value range → H×W×channels floats clipped to [0, 1]."""
    lo, hi = model.value_range
    y = ((y.float() - lo) / (hi - lo)).clamp_(0, 1)[0]
    if channels == 1 and y.shape[0] == 3:
        w = torch.tensor(LUMA, dtype=y.dtype).view(3, 1, 1)
        y = (y * w).sum(0, keepdim=True)
    return y.permute(1, 2, 0).contiguous().numpy()


def resize(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Antialiased bicubic resize of an H×W×C (or H×W) float array, clipped to [0, 1]."""
    squeeze = pixels.ndim == 2
    arr = pixels[..., None] if squeeze else pixels
    x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None].float()
    y = F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    out = y[0].clamp_(0, 1).permute(1, 2, 0).contiguous().numpy()
    return out[..., 0] if squeeze else out


def blend(original: np.ndarray, processed: np.ndarray, strength: float) -> np.ndarray:
    """``strength`` of the processed result over the original (same shape)."""
    if strength >= 1.0:
        return processed
    return (strength * processed + (1.0 - strength) * original).astype(np.float32)
