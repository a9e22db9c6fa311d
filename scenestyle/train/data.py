"""Unpaired image folders and a deterministic, resumable, shardable stream of crops.

Every batch is a pure function of ``(seed, step, rank, world)``: which files (an epoch-wise
permutation of each domain, split across ranks as ``DistributedSampler`` does, padded by
wrapping) and how they are cropped (scale jitter, position, flips drawn from a
``torch.Generator`` seeded per step). So the stream does not depend on the number of DataLoader
workers or on how far they prefetched, and resuming at step ``k`` continues it exactly;
``DataStream.state(step)`` is what a checkpoint records.

A file that cannot be decoded is skipped with a warning (the next file of the same domain is
used instead), never a crashed epoch.
"""

from __future__ import annotations

import math
import signal
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset

from scenestyle.errors import UsageError

_MASK64 = (1 << 63) - 1


@dataclass(frozen=True)
class CropRecipe:
    """Which file and how to crop it; drawn in the training process, applied in a worker."""

    domain: int  # 0 = A, 1 = B
    index: int  # into that domain's file list
    scale: float  # short side -> crop * scale
    fx: float  # crop position, fraction of the free width
    fy: float  # crop position, fraction of the free height
    hflip: bool
    vflip: bool


def _mix(*xs: int) -> int:
    """A 63-bit seed from integers (splitmix64-style), so nearby steps get unrelated streams."""
    h = 0x9E3779B97F4A7C15
    for x in xs:
        h = (h ^ (x & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & _MASK64


class DataStream:
    """Per-step crop recipes for both domains (only domain A when ``n_b`` is 0), sharded across ranks."""

    def __init__(
        self,
        n_a: int,
        n_b: int,
        *,
        batch_size: int,
        crop: int,
        scale_jitter: tuple[float, float],
        hflip: bool,
        vflip: bool,
        seed: int,
        rank: int = 0,
        world: int = 1,
    ):
        self.sizes = (n_a, n_b) if n_b else (n_a,)
        self.batch_size, self.crop, self.scale_jitter = batch_size, crop, scale_jitter
        self.hflip, self.vflip, self.seed, self.rank, self.world = hflip, vflip, seed, rank, world
        self._perms: dict[tuple[int, int], list[int]] = {}

    def _index(self, domain: int, n: int) -> int:
        size = self.sizes[domain]
        per_rank = math.ceil(size / self.world)
        epoch, i = divmod(n, per_rank)
        key = (domain, epoch)
        if key not in self._perms:
            self._perms = {k: v for k, v in self._perms.items() if k[1] >= epoch - 1}
            g = torch.Generator().manual_seed(_mix(self.seed, 1 + domain, epoch))
            perm = torch.randperm(size, generator=g).tolist()
            self._perms[key] = (perm * (1 + per_rank * self.world // size))[: per_rank * self.world]
        return self._perms[key][self.rank + i * self.world]

    def generator(self, step: int) -> torch.Generator:
        """The generator that draws step ``step``'s crops on this rank (its state goes into checkpoints)."""
        return torch.Generator().manual_seed(_mix(self.seed, 7, step, self.rank))

    def state(self, step: int) -> dict:
        """What a checkpoint records to continue the stream at ``step``."""
        return {"next_step": step, "seed": self.seed, "rank": self.rank, "world": self.world, "generator": self.generator(step).get_state()}

    def recipes(self, step: int) -> list[CropRecipe]:
        """``batch_size`` A recipes then (with two domains) ``batch_size`` B recipes for ``step``."""
        g = self.generator(step)
        lo, hi = self.scale_jitter
        out = []
        for domain in range(len(self.sizes)):
            for j in range(self.batch_size):
                u = torch.rand(5, generator=g, dtype=torch.float64).tolist()
                out.append(
                    CropRecipe(
                        domain,
                        self._index(domain, step * self.batch_size + j),
                        lo + (hi - lo) * u[0],
                        u[1],
                        u[2],
                        self.hflip and u[3] < 0.5,
                        self.vflip and u[4] < 0.5,
                    )
                )
        return out


def cut(im: Image.Image, r: CropRecipe, crop: int) -> Image.Image:
    """The ``crop``×``crop`` window at the recipe's position (fractions of the free space), flipped as it says."""
    w, h = im.size
    x, y = round((w - crop) * r.fx), round((h - crop) * r.fy)
    im = im.crop((x, y, x + crop, y + crop))
    if r.hflip:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if r.vflip:
        im = im.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    return im


class UnpairedCrops(Dataset):
    """Map-style dataset whose "indices" are lists of ``CropRecipe``: one item is one step's batch."""

    draft = True  # JPEGs may be decoded at a reduced size (subclasses that need native pixels turn it off)

    def __init__(self, files_a: list[Path], files_b: list[Path], crop: int, *, work_pixels: int = 0, effective_pixels: int = 0):
        self.files = (files_a, files_b)
        self.crop = crop
        self.work_pixels, self.effective_pixels = work_pixels, effective_pixels

    def __len__(self) -> int:  # indices are recipes, not integers; a nominal length for DataLoader
        return max(len(f) for f in self.files)

    def _load(self, domain: int, index: int) -> Image.Image:
        files = self.files[domain]
        for k in range(len(files)):
            path = files[(index + k) % len(files)]
            try:
                with Image.open(path) as im:
                    if self.draft:  # JPEG: decode at a reduced size when it can (never below what is used)
                        need = math.isqrt(self.effective_pixels or self.work_pixels) if self.work_pixels else self.crop * 2
                        im.draft("RGB", (need // 2, need // 2))
                    return ImageOps.exif_transpose(im).convert("RGB")
            except Exception as exc:  # corrupt, truncated, not an image: skip it, keep training
                warnings.warn(f"skipping unreadable training image {path}: {exc}", RuntimeWarning, stacklevel=2)
        raise UsageError(f"no readable image among the {len(files)} files of domain {'AB'[domain]}")

    def crop_one(self, r: CropRecipe) -> torch.Tensor:
        """Apply one recipe: resize, crop, flip; CHW float32 in [-1, 1].

        Resize: by default the short side becomes ``crop * scale``. With ``work_pixels`` the image is
        brought to about ``work_pixels * scale**2`` pixels, the size ``stylize`` runs its model at, so
        brush strokes are learnt at the scale they are painted at inference; with ``effective_pixels``
        larger images are first shrunk to that many pixels, so every image of both domains carries the
        same detail (large sharp paintings against small soft photos would teach D to judge sharpness).
        """
        im = self._load(r.domain, r.index)
        w, h = im.size
        if self.work_pixels:
            if self.effective_pixels and w * h > self.effective_pixels:
                f = math.sqrt(self.effective_pixels / (w * h))
                im = im.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.BICUBIC, reducing_gap=3.0)
            f = math.sqrt(self.work_pixels / (w * h)) * r.scale
            f = max(f, self.crop / min(w, h))  # never smaller than the crop
            nw, nh = max(self.crop, round(w * f)), max(self.crop, round(h * f))
        else:
            short = max(self.crop, round(self.crop * r.scale))
            nw, nh = (short, max(short, round(h * short / w))) if w <= h else (max(short, round(w * short / h)), short)
        im = im.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0)
        arr = np.asarray(cut(im, r, self.crop), dtype=np.float32) / 127.5 - 1.0
        return torch.from_numpy(arr.transpose(2, 0, 1).copy())

    def __getitem__(self, recipes: list[CropRecipe]) -> tuple[torch.Tensor, torch.Tensor]:
        a = torch.stack([self.crop_one(r) for r in recipes if r.domain == 0])
        b = torch.stack([self.crop_one(r) for r in recipes if r.domain == 1])
        return a, b


class _StepSampler:
    """Yields each step's recipe list, from ``start`` to ``stop``."""

    def __init__(self, stream: DataStream, start: int, stop: int):
        self.stream, self.start, self.stop = stream, start, stop

    def __iter__(self):
        for step in range(self.start, self.stop):
            yield self.stream.recipes(step)

    def __len__(self) -> int:
        return self.stop - self.start


def _first(batch: list) -> tuple[torch.Tensor, torch.Tensor]:
    return batch[0]


def _leave_stop_signals_to_the_trainer(_worker_id: int) -> None:
    # SIGTERM/SIGINT sent to the whole process group (SLURM, `timeout`, Ctrl-C) would kill the
    # workers before the training process could save its stop checkpoint; the trainer handles the
    # signal and shuts the workers down itself.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_loader(dataset: UnpairedCrops, stream: DataStream, start: int, stop: int, workers: int, pin_memory: bool = False) -> DataLoader:
    """A DataLoader yielding ``(a, b)`` batches for steps ``start .. stop-1`` in order."""
    return DataLoader(
        dataset,
        sampler=_StepSampler(stream, start, stop),
        batch_size=1,
        collate_fn=_first,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=2 if workers else None,
        worker_init_fn=_leave_stop_signals_to_the_trainer if workers else None,
    )
