"""A learned two-sample test: a small CNN trained on the spot to tell painting crops from photo crops.

Images are split by *image* into folds (cross-fitting): the critic of fold k trains on the
other folds and is the only one that judges fold k's held-out images and anything made from
them (a stylized photo is judged by a critic that never saw that photo). Two input variants:

* ``rgb``: the crop as it is, so palette counts;
* ``gray``: BT.601 luma, standardised per crop, so it cannot see global colour, brightness or
  contrast and must go by texture and local structure.

Deterministic for a seed: crop positions and batches come from numpy Generators, the weights
from ``torch.manual_seed`` inside ``torch.random.fork_rng`` (the caller's RNG is left alone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from scenestyle._colour import BT601_LUMA

__all__ = ["VARIANTS", "CriticConfig", "Critic", "crop_positions", "crops_at", "to_input", "fold_of", "train_critic", "logits"]

VARIANTS = ("rgb", "gray")
Progress = Callable[[int, int], None]  # (steps done, total steps)


@dataclass(frozen=True)
class CriticConfig:
    """Everything that shapes a critic; recorded in the report's protocol."""

    crop: int = 64  # crop side in pixels (after the --max-side downscale)
    width: int = 16  # channels of the first conv (then 2×, 2×)
    steps: int = 400  # Adam steps per critic
    batch: int = 32  # crops per step, half painting, half photo
    lr: float = 2e-3  # Adam learning rate
    folds: int = 2  # cross-fitting folds, split by image
    eval_crops: int = 32  # crops per image for held-out accuracy and for scores


class Critic(nn.Module):
    """Four strided convs (LeakyReLU), global mean pool, one logit (> 0: painting)."""

    def __init__(self, in_channels: int, width: int = 16):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 2 * w, 3, 1, 1), nn.LeakyReLU(0.2),
        )
        self.head = nn.Linear(2 * w, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean(dim=(2, 3)))[:, 0]


def crop_positions(shape: tuple[int, ...], n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random top-left corners (y, x) of ``size``-pixel crops inside an H×W image."""
    h, w = shape[0], shape[1]
    if min(h, w) < size:
        raise ValueError(f"a {w}×{h} image is smaller than the {size}-pixel critic crop")
    return np.stack([rng.integers(0, h - size + 1, n), rng.integers(0, w - size + 1, n)], axis=1)


def crops_at(image: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """uint8 N×size×size×3 crops of an H×W×3 image at (y, x) corners."""
    windows = np.lib.stride_tricks.sliding_window_view(image, (size, size), axis=(0, 1))
    return windows[positions[:, 0], positions[:, 1]].transpose(0, 2, 3, 1)


def to_input(crops: np.ndarray, variant: str) -> torch.Tensor:
    """uint8 N×s×s×3 crops → the critic's float32 N×C×s×s input for ``variant``."""
    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if variant == "rgb":
        return x
    if variant == "gray":
        y = (x * torch.tensor(BT601_LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
        mean = y.mean(dim=(2, 3), keepdim=True)
        std = y.std(dim=(2, 3), keepdim=True)
        return (y - mean) / (std + 1e-3)  # the floor keeps flat crops finite
    raise ValueError(f"critic variant must be one of {', '.join(VARIANTS)}, not {variant!r}")


def fold_of(n: int, folds: int, rng: np.random.Generator) -> np.ndarray:
    """A fold index per image: a seeded permutation dealt round-robin, so folds differ by at most one."""
    out = np.empty(n, dtype=np.int64)
    out[rng.permutation(n)] = np.arange(n) % folds
    return out


def logits(model: nn.Module, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    """The critic's logits for an input tensor, in batches, without gradients."""
    model.eval()
    with torch.inference_mode():
        return torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)]).numpy()


def train_critic(
    paintings: Sequence[np.ndarray],
    photos: Sequence[np.ndarray],
    variant: str,
    cfg: CriticConfig,
    *,
    seed: int = 0,
    progress: Progress | None = None,
) -> Critic:
    """Train one critic: paintings are label 1, photos label 0, random crops drawn afresh each step.

    Each batch takes half its crops from random paintings and half from random photos (so the
    classes are balanced whatever the folder sizes), with random horizontal flips.
    """
    if not paintings or not photos:
        raise ValueError("the critic needs at least one painting and one photo to train on")
    rng = np.random.default_rng([seed, 3])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Critic(3 if variant == "rgb" else 1, cfg.width)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    loss_fn = nn.BCEWithLogitsLoss()
    half = max(1, cfg.batch // 2)
    labels = torch.cat([torch.ones(half), torch.zeros(half)])
    model.train()
    for step in range(cfg.steps):
        batch = []
        for domain in (paintings, photos):
            for i in rng.integers(0, len(domain), half):
                img = domain[i]
                c = crops_at(img, crop_positions(img.shape, 1, cfg.crop, rng), cfg.crop)[0]
                batch.append(c[:, ::-1] if rng.random() < 0.5 else c)
        loss = loss_fn(model(to_input(np.stack(batch), variant)), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress:
            progress(step + 1, cfg.steps)
    model.eval().requires_grad_(False)
    return model
