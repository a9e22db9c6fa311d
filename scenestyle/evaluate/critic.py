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

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from scenestyle._colour import BT601_LUMA
from scenestyle.errors import OutputError
from scenestyle.evaluate.critic_config import CriticConfig
from scenestyle.imaging.atomic import atomic_file

__all__ = [
    "VARIANTS",
    "CriticConfig",
    "Critic",
    "crop_positions",
    "crops_at",
    "to_input",
    "fold_of",
    "train_critic",
    "cached_critic",
    "logits",
]

VARIANTS = ("rgb", "gray")
Progress = Callable[[int, int], None]  # (steps done, total steps)


class Critic(nn.Module):
    """Four strided convs (LeakyReLU), global mean pool, one logit (> 0: painting)."""

    def __init__(self, in_channels: int, width: int = 16):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, w, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 2 * w, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 2 * w, 3, 1, 1),
            nn.LeakyReLU(0.2),
        )
        self.head = nn.Linear(2 * w, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean(dim=(2, 3)))[:, 0]


def _new_critic(variant: str, cfg: CriticConfig) -> Critic:
    return Critic(3 if variant == "rgb" else 1, cfg.width)


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


_PROFILE_BINS = 256


def sharpness_profile(image: np.ndarray) -> np.ndarray:
    """Radial power spectrum of an image's BT.601 luma (mirror-extended, so borders add no edges),
    in ``_PROFILE_BINS`` bins of spatial frequency from 0 to the corner (√0.5 cycles per pixel)."""
    y = np.asarray(image, dtype=np.float64) @ np.array(BT601_LUMA) if np.ndim(image) == 3 else np.asarray(image, dtype=np.float64)
    y = y - y.mean()
    ext = np.block([[y, y[:, ::-1]], [y[::-1], y[::-1, ::-1]]])
    power = np.abs(np.fft.rfft2(ext)) ** 2
    f = np.hypot(np.fft.fftfreq(ext.shape[0])[:, None], np.fft.rfftfreq(ext.shape[1])[None])
    weight = np.full(power.shape[1], 2.0)  # rfft2 keeps half the columns: count the others once more
    weight[0] = 1.0
    if ext.shape[1] % 2 == 0:
        weight[-1] = 1.0
    idx = np.minimum((f / np.sqrt(0.5) * _PROFILE_BINS).astype(np.int64), _PROFILE_BINS - 1)
    return np.bincount(idx.ravel(), (power * weight).ravel(), _PROFILE_BINS)


def sharpness(profile: np.ndarray, sigma: float = 0.0) -> float:
    """log2 of the luma energy in the finest octave (what a Gaussian of σ 1 px removes) over the next
    (what σ 2 px removes beyond σ 1), after a Gaussian blur of ``sigma`` px: the image's detail at the
    pixel scale, relative to its own detail one octave coarser. Blur lowers it; brighter or busier does not."""
    f = (np.arange(len(profile)) + 0.5) / len(profile) * np.sqrt(0.5)

    def gain(s: float) -> np.ndarray:
        return np.exp(-2.0 * np.pi**2 * s**2 * f**2)

    p = profile * gain(sigma) ** 2
    fine, next_ = np.sum(p * (1.0 - gain(1.0)) ** 2), np.sum(p * (gain(1.0) - gain(2.0)) ** 2)
    return float(np.log2(max(fine, 1e-12) / max(next_, 1e-12)))


def matching_blur(sharper: Sequence[np.ndarray], target: float, *, tol: float = 1e-3) -> float:
    """The Gaussian σ (px) that brings the median sharpness of the ``sharper`` profiles down to ``target``
    (0 when it is not above it); bisection, the median falls monotonically with σ."""

    def median(s: float) -> float:
        return float(np.median([sharpness(p, s) for p in sharper]))

    if median(0.0) <= target:
        return 0.0
    lo, hi = 0.0, 4.0
    if median(hi) > target:
        return hi
    while hi - lo > tol:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if median(mid) > target else (lo, mid)
    return (lo + hi) / 2


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """uint8 H×W×C image blurred per channel by a Gaussian of ``sigma`` px, rounded: applied exactly
    (the frequency response ``sharpness`` assumes) on the mirror-extended image."""
    if sigma <= 0:
        return image
    h, w = image.shape[:2]
    x = np.asarray(image, dtype=np.float64)
    ext = np.concatenate([np.concatenate([x, x[:, ::-1]], 1), np.concatenate([x[::-1], x[::-1, ::-1]], 1)], 0)
    f2 = np.fft.fftfreq(2 * h)[:, None] ** 2 + np.fft.rfftfreq(2 * w)[None] ** 2
    gain = np.exp(-2.0 * np.pi**2 * sigma**2 * f2)[..., None]
    out = np.fft.irfft2(np.fft.rfft2(ext, axes=(0, 1)) * gain, s=(2 * h, 2 * w), axes=(0, 1))[:h, :w]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


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
        model = _new_critic(variant, cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.5, 0.999), weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps) if cfg.lr_schedule == "cosine" else None
    smallest = min(min(im.shape[:2]) for im in list(paintings) + list(photos))
    loss_fn = nn.BCEWithLogitsLoss()
    half = max(1, cfg.batch // 2)
    labels = torch.cat([torch.ones(half), torch.zeros(half)])
    model.train()
    for step in range(cfg.steps):
        batch = []
        size = cfg.crop
        if cfg.scale_jitter > 0:
            j = np.log1p(cfg.scale_jitter)
            size = int(min(smallest, max(8, round(cfg.crop * np.exp(rng.uniform(-j, j))))))
        for domain in (paintings, photos):
            for i in rng.integers(0, len(domain), half):
                img = domain[i]
                c = crops_at(img, crop_positions(img.shape, 1, size, rng), size)[0]
                if rng.random() < 0.5:
                    c = c[:, ::-1]
                if cfg.rot90:
                    c = np.rot90(c, int(rng.integers(4)))
                batch.append(np.ascontiguousarray(c))
        x = np.stack(batch)
        if size != cfg.crop:
            t = torch.from_numpy(x).permute(0, 3, 1, 2).float()
            t = torch.nn.functional.interpolate(t, size=(cfg.crop, cfg.crop), mode="bilinear", align_corners=False, antialias=True)
            x = t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        loss = loss_fn(model(to_input(x, variant)), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched:
            sched.step()
        if progress:
            progress(step + 1, cfg.steps)
    model.eval().requires_grad_(False)
    return model


_CACHE_FORMAT = "scenestyle-critic/1"


def critic_key(paintings: Sequence[np.ndarray], photos: Sequence[np.ndarray], variant: str, cfg: CriticConfig, seed: int) -> str:
    """sha256 of everything a critic's weights depend on: the exact training pixels, the variant,
    the settings, the seed and the torch version (whose kernels shape the numerics)."""
    h = hashlib.sha256(json.dumps([_CACHE_FORMAT, variant, asdict(cfg), seed, torch.__version__]).encode())
    for side in (paintings, photos):
        h.update(f"{len(side)};".encode())
        for im in side:
            h.update(f"{im.shape};".encode())
            h.update(np.ascontiguousarray(im).data)
    return h.hexdigest()


def cached_critic(
    paintings: Sequence[np.ndarray],
    photos: Sequence[np.ndarray],
    variant: str,
    cfg: CriticConfig,
    *,
    seed: int = 0,
    cache: Path | None = None,
    progress: Progress | None = None,
) -> tuple[Critic, bool]:
    """(critic, came_from_cache): ``train_critic``, or the weights it gave for the very same inputs
    before (``critic_key``) when ``cache`` is a folder, so re-scoring a retrained style skips the
    critics. A cache that cannot be read or written only costs time."""
    path = cache / f"{critic_key(paintings, photos, variant, cfg, seed)}.safetensors" if cache is not None else None
    if path is not None and path.is_file():
        model = _new_critic(variant, cfg)
        try:
            model.load_state_dict(load_file(path))
            return model.eval().requires_grad_(False), True
        except (OSError, RuntimeError, SafetensorError):  # a damaged entry is retrained and rewritten
            pass
    model = train_critic(paintings, photos, variant, cfg, seed=seed, progress=progress)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(path) as f:
                f.write(save({k: v.contiguous() for k, v in model.state_dict().items()}))
        except (OSError, OutputError):
            pass
    return model, False
