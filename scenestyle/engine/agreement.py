"""How far a model's output at a reduced precision (or on another backend) is from its torch fp32
output, on a fixed check image: the test every precision choice passes before it is used."""

from __future__ import annotations

import copy
import math
import weakref

import torch
from torch import nn

from scenestyle.metrics.psnr_ssim import psnr
from scenestyle.nn.meta import ModelMeta

AGREEMENT_DB = 40.0
"""Minimum PSNR (dB, over the model's value range) of reduced-precision output vs fp32."""

CHECK_SIGMA = 25 / 255
"""σ a noise-level model is run at when only its precision or memory use is measured (mid-range)."""


def check_image(meta: ModelMeta | None, side: int = 64, seed: int = 0) -> torch.Tensor:
    """A fixed 1xCxSxS float32 image, smooth gradients plus texture, in the model's value range.

    ``side`` is rounded up to the model's ``size_multiple``; no ``meta``: 3 channels in [0, 1].
    """
    channels, multiple, (lo, hi) = 3, 1, (0.0, 1.0)
    if meta is not None:
        channels, multiple, (lo, hi) = meta.in_channels, meta.size_multiple, meta.value_range
    side = math.ceil(side / multiple) * multiple
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
    planes = []
    for c in range(channels):
        smooth = 0.5 + 0.3 * torch.sin(2.5 * xx + 1.7 * yy + c) * torch.cos(1.3 * yy - 0.7 * c)
        texture = 0.08 * torch.sin(40 * xx + 7 * c) * torch.sin(33 * yy) + 0.05 * torch.randn(side, side, generator=gen)
        planes.append(smooth + texture)
    img = torch.stack(planes).clamp(0, 1).unsqueeze(0)
    return img * (hi - lo) + lo


def model_args(meta: ModelMeta) -> tuple[float, ...]:
    """Forward arguments after the image for a run that only measures the model (precision,
    memory): a noise-level model gets ``CHECK_SIGMA``, others nothing."""
    return (CHECK_SIGMA,) if meta.takes_sigma else ()


def forward_at(
    model: nn.Module, meta: ModelMeta, x: torch.Tensor, device: torch.device, dtype: torch.dtype, channels_last: bool
) -> torch.Tensor:
    x = x.to(device=device, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        return model(x, *model_args(meta)).float().cpu()


# Weak keys: a model that is dropped also drops its cached checks (no id() reuse bugs).
_AGREEMENT: weakref.WeakKeyDictionary[nn.Module, dict[tuple[str, torch.dtype], float]] = weakref.WeakKeyDictionary()


def agreement_db(
    model: nn.Module, meta: ModelMeta, dtype: torch.dtype, device: torch.device | str = "cpu", channels_last: bool = True
) -> float:
    """PSNR (dB, peak = the model's value range) of the model at ``dtype`` vs fp32 on ``check_image``.

    Cached in memory per (model, device, dtype); the model itself is not modified.
    """
    device = torch.device(device)
    per_model = _AGREEMENT.setdefault(model, {})
    key = (str(device), dtype)
    if key not in per_model:
        lo, hi = meta.value_range
        x = check_image(meta)
        ref_model = copy.deepcopy(model).to(device=device, dtype=torch.float32).eval()
        ref = forward_at(ref_model, meta, x, device, torch.float32, channels_last)
        del ref_model
        low_model = copy.deepcopy(model).to(device=device, dtype=dtype).eval()
        if channels_last:
            low_model = low_model.to(memory_format=torch.channels_last)
        low = forward_at(low_model, meta, x, device, dtype, channels_last)
        per_model[key] = psnr(low.numpy(), ref.numpy(), peak=float(hi - lo))
    return per_model[key]
