"""Helpers shared by the eval engines: reading images as uint8, running a model on uint8."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from scenestyle._colour import BT601_LUMA
from scenestyle.engine.noise import GRAY_SIGMA_GAIN
from scenestyle.errors import UsageError
from scenestyle.imaging import read_picture
from scenestyle.nn.meta import ModelMeta


def read_u8(path: Path, mode: str = "keep") -> np.ndarray:
    """An image as uint8 H×W×C: ``mode`` "rgb" (grey repeated to 3 channels), "gray" (BT.601 luma) or "keep"."""
    pic = read_picture(path)
    px = pic.pixels
    if mode == "rgb" and px.shape[2] == 1:
        px = np.repeat(px, 3, axis=2)
    # exact for 8-bit files; 16-bit files are scored at 8 bits like every published table
    u8 = np.clip(np.round(px * 255.0), 0, 255).astype(np.uint8)
    if mode == "gray" and u8.shape[2] == 3:
        u8 = np.asarray(Image.fromarray(u8).convert("L"))[..., None]  # ITU-R 601 luma, as cv2's grayscale read
    return u8


def to_u8(x: np.ndarray) -> np.ndarray:
    """Float [0, 1] → uint8 by clipping and rounding (BasicSR's ``tensor2img``, KAIR's ``single2uint``)."""
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def run_float(
    model: torch.nn.Module, meta: ModelMeta, placement, img: np.ndarray, tile: int | None, sigma: float | None = None
) -> np.ndarray:
    """Model over an H×W×C float image in [0, 1] (unclipped allowed); a 1-channel model runs per
    channel, and a gray image through a colour model runs as RGB (a noise-level model told σ ×
    ``GRAY_SIGMA_GAIN``) and comes back as BT.601 luma, as the CLI does. ``sigma``: the noise
    level a noise-level model (``meta.takes_sigma``) is given."""
    from scenestyle.engine.tiles import run_model

    in_ch = meta.in_channels
    if in_ch == 1 and img.shape[2] > 1:
        return np.concatenate([run_float(model, meta, placement, img[..., i : i + 1], tile, sigma) for i in range(img.shape[2])], axis=2)
    if in_ch == 3 and img.shape[2] == 1:
        sigma = None if sigma is None else sigma * GRAY_SIGMA_GAIN  # as the CLI tells it (engine.noise)
        return run_float(model, meta, placement, np.repeat(img, 3, axis=2), tile, sigma) @ np.asarray(BT601_LUMA)[:, None]
    if in_ch != img.shape[2]:
        raise UsageError(f"the model takes {in_ch}-channel images but the data has {img.shape[2]} channels")
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32))[None]
    y = run_model(model, meta, x, placement, tile=tile, sigma=sigma)
    return y[0].numpy().transpose(1, 2, 0).astype(np.float64)
