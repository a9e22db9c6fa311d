"""Paired training data made on the fly from one folder of clean photos.

``HRStream`` is ``data.DataStream`` with a single domain; each step's item carries its step
number, so that step's degradation draws from a generator seeded by ``(seed, step, rank)``. A
batch is therefore a pure function of the step, whatever the number of DataLoader workers, and a
resumed run sees exactly the pairs an uninterrupted one would. ``HRCrops`` cuts crops at native
resolution (optionally scaled down first; unreadable files are skipped with a warning, as in
``data.py``) and turns them into ``(input, target, pixel_target, sigma_map)`` with a pair maker:
``SRPairs`` (bicubic or Real-ESRGAN LR) or ``NoisyPairs`` (synthetic noise and its level map).
Degradations run in the workers, in parallel with the training step.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from scenestyle._colour import BT601_LUMA
from scenestyle.train.blur_kernels import usm_sharp
from scenestyle.train.data import CropRecipe, DataStream, UnpairedCrops, _mix, cut
from scenestyle.train.degradations import RealESRGANDegradation, bicubic_pair, degrade
from scenestyle.train.noise_synthesis import add_noise

Pair = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # input, target, pixel target, sigma map
_EMPTY = torch.zeros(0)  # "no sigma map" (a tensor, so the batch tuple collates and pins like the others)


class HRStream(DataStream):
    """Per-step crop recipes of one folder, sharded across ranks; items are ``(step, recipes)``."""

    def __init__(
        self,
        n: int,
        *,
        batch_size: int,
        crop: int,
        scale_range: tuple[float, float],
        hflip: bool,
        vflip: bool,
        seed: int,
        rank: int = 0,
        world: int = 1,
    ):
        super().__init__(
            n, 0, batch_size=batch_size, crop=crop, scale_jitter=scale_range, hflip=hflip, vflip=vflip, seed=seed, rank=rank, world=world
        )

    def recipes(self, step: int) -> tuple[int, list[CropRecipe]]:  # type: ignore[override]
        return step, super().recipes(step)


def to_luma(x: torch.Tensor) -> torch.Tensor:
    """N×3×H×W -> N×1×H×W BT.601 luma rounded to 8-bit steps (what PIL's ``convert("L")`` gives)."""
    wr, wg, wb = BT601_LUMA
    y = wr * x[:, 0:1] + wg * x[:, 1:2] + wb * x[:, 2:3]
    return (y * 255).round() / 255


class HRCrops(UnpairedCrops):
    """Map-style dataset: ``(step, recipes)`` -> one step's ``Pair`` batch."""

    draft = False  # native pixels: no reduced-size JPEG decoding

    def __init__(
        self, files: list[Path], crop: int, make_pair: Callable[[torch.Tensor, torch.Generator], Pair], *, gray: bool, seed: int, rank: int
    ):
        super().__init__(files, [], crop)
        self.make_pair, self.gray, self.seed, self.rank = make_pair, gray, seed, rank

    def crop_hr(self, r: CropRecipe) -> torch.Tensor:
        """One recipe at native resolution (scaled by ``r.scale`` <= 1, never below the crop); CHW in [0, 1]."""
        im = self._load(r.domain, r.index)
        w, h = im.size
        f = max(r.scale, self.crop / min(w, h))
        if f != 1.0:
            im = im.resize((max(self.crop, round(w * f)), max(self.crop, round(h * f))), Image.Resampling.BICUBIC)
        return torch.from_numpy(np.asarray(cut(im, r, self.crop), dtype=np.float32).transpose(2, 0, 1) / 255.0)

    def __getitem__(self, item: tuple[int, list[CropRecipe]]) -> Pair:  # type: ignore[override]
        step, recipes = item
        hr = torch.stack([self.crop_hr(r) for r in recipes])
        if self.gray:
            hr = to_luma(hr)
        g = torch.Generator().manual_seed(_mix(self.seed, 13, step, self.rank))
        return self.make_pair(hr, g)


class SRPairs:
    """HR crops -> (LR, HR, pixel-loss target, no map): bicubic protocol or Real-ESRGAN second order."""

    def __init__(self, scale: int, kind: str, settings: RealESRGANDegradation | None = None, usm_target: bool = True):
        self.scale, self.kind, self.settings, self.usm_target = scale, kind, settings, usm_target

    def __call__(self, hr: torch.Tensor, g: torch.Generator) -> Pair:
        if self.kind == "bicubic":
            hr, lr = bicubic_pair(hr, self.scale)
            return lr, hr, hr, _EMPTY
        lr = degrade(hr, self.scale, self.settings, g)
        return lr, hr, usm_sharp(hr) if self.usm_target else hr, _EMPTY


class NoisyPairs:
    """Clean crops -> (noisy, clean, clean, σ map); the noise kind is drawn per image with ``probs``."""

    def __init__(self, kinds: tuple[str, ...], probs: tuple[float, ...], params: dict[str, dict]):
        self.kinds, self.probs, self.params = kinds, torch.tensor(probs, dtype=torch.float64), params

    def __call__(self, clean: torch.Tensor, g: torch.Generator) -> Pair:
        noisy, sigma = [], []
        for i in range(clean.shape[0]):
            kind = self.kinds[int(torch.multinomial(self.probs, 1, generator=g))]
            y, s = add_noise(clean[i : i + 1], kind, g, **self.params[kind])
            noisy.append(y)
            sigma.append(s)
        return torch.cat(noisy), clean, clean, torch.cat(sigma)
