"""The three jobs — stylize, upscale, denoise — as Picture → Picture processors.

Each processor holds a loaded model and its placement and is called once per photo; the
batch runner does the rest. Alpha, ICC, EXIF and bit depth ride along on the Picture.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from scenestyle.engine.convert import UnitRange, blend, resize, to_pixels, to_tensor
from scenestyle.engine.device import Placement
from scenestyle.engine.tiles import run_model, run_model_many
from scenestyle.imaging import Picture

TileProgress = Callable[[int, int], None]


@dataclass
class Processor:
    """Runs one model over a Picture; ``task`` picks the pre/post-processing."""

    model: nn.Module
    placement: Placement
    task: str  # "style" | "upscale" | "denoise"
    tile: int | None = None  # None = auto, 0 = whole image, N = N×N tiles
    batch_size: int = 1
    strength: float = 1.0  # stylize/denoise: share of the result blended over the input
    outscale: float | None = None  # upscale: final size factor (default: the model's scale)
    progress: TileProgress | None = None

    def __post_init__(self) -> None:
        self.model = UnitRange(self.model)

    def _run(self, pixels: np.ndarray) -> np.ndarray:
        """Model over an H×W×C array; a one-channel model runs each colour channel alone."""
        m = self.model
        if m.in_channels == 1 and pixels.shape[2] == 3:
            return np.concatenate([self._run(pixels[..., c : c + 1]) for c in range(3)], axis=2)
        y = run_model(m, to_tensor(pixels, m), self.placement, tile=self.tile,
                      batch_size=self.batch_size, progress=self.progress)
        return to_pixels(y, channels=pixels.shape[2])

    def __call__(self, pic: Picture) -> Picture:
        return self._finish(pic, self._run(pic.pixels))

    def many(self, pics: list[Picture]) -> list[Picture]:
        """Several pictures; same-size ones share forward passes (up to ``batch_size`` whole images each)."""
        m = self.model
        per_image = (len(pics) == 1 or self.batch_size == 1 or len({p.pixels.shape for p in pics}) > 1
                     or (m.in_channels == 1 and pics[0].pixels.shape[2] == 3)
                     or getattr(m.model, "noise_level_input", False))  # a per-image noise level
        if per_image:
            return [self(p) for p in pics]
        x = torch.cat([to_tensor(p.pixels, m) for p in pics])
        y = run_model_many(m, x, self.placement, tile=self.tile, batch_size=self.batch_size, progress=self.progress)
        return [self._finish(p, to_pixels(y[i : i + 1], channels=p.pixels.shape[2])) for i, p in enumerate(pics)]

    def _finish(self, pic: Picture, out: np.ndarray) -> Picture:
        alpha = pic.alpha
        if self.task == "upscale":
            factor = self.outscale if self.outscale is not None else float(self.model.scale)
            h, w = pic.pixels.shape[:2]
            th, tw = max(1, round(h * factor)), max(1, round(w * factor))
            if out.shape[:2] != (th, tw):
                out = resize(out, th, tw)
            if alpha is not None:
                alpha = resize(alpha, th, tw)
        else:
            out = blend(pic.pixels, out, self.strength)
        return dataclasses.replace(pic, pixels=out, alpha=alpha)
