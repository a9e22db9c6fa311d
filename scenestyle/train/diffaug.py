"""DiffAugment (Zhao et al. 2020): the same random, differentiable augmentation on every image D sees.

A discriminator shown a few dozen paintings memorises them within a few thousand steps and then
gives the generator no useful gradient. Augmenting real and generated images alike (and in the G
step too, so the gradient flows through the augmentation) keeps D from memorising without letting
the augmentation leak into what G paints. Policies follow the reference implementation
(mit-han-lab/data-efficient-gans, ``DiffAugment_pytorch.py``): ``translation`` shifts by up to 1/8
of the side with zero padding, ``cutout`` blanks a square of half the side, ``color`` jitters
brightness, saturation and contrast. ``hue`` (ours) rotates the chroma plane of YIQ by a random
angle, so D cannot judge by hue: with the colour term the scene keeps its hues (a desert stays
sand-coloured) while brushwork, tones and saturation follow the paintings. Draws come from a
``torch.Generator`` so runs are repeatable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from scenestyle._colour import BT601_LUMA
from scenestyle.errors import UsageError

POLICIES = ("translation", "cutout", "color", "hue")


def parse_policy(policy: str) -> list[str]:
    """``"translation,cutout"`` -> ``["translation", "cutout"]``; "" -> []."""
    return [p.strip() for p in policy.split(",") if p.strip()]


def check_policy(policy: str) -> None:
    """UsageError naming the valid policies when ``policy`` has an unknown one."""
    for p in parse_policy(policy):
        if p not in POLICIES:
            raise UsageError(f"gan.diffaug: unknown policy {p!r}; choose from {', '.join(POLICIES)} (comma-separated)")


def _rand(n: int, g: torch.Generator, x: torch.Tensor) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, generator=g).to(device=x.device, dtype=x.dtype)


def _color(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    x = x + (_rand(n, g, x) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(n, g, x) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(n, g, x) + 0.5) + mean


def _translation(x: torch.Tensor, g: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n,), generator=g).tolist()
    dx = torch.randint(-sw, sw + 1, (n,), generator=g).tolist()
    padded = F.pad(x, (sw, sw, sh, sh))
    return torch.stack([padded[i, :, sh - dy[i] : sh - dy[i] + h, sw - dx[i] : sw - dx[i] + w] for i in range(n)])


def _cutout(x: torch.Tensor, g: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n,), generator=g)
    cx = torch.randint(0, w + (1 - cw % 2), (n,), generator=g)
    ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    y0, x0 = (cy - ch // 2).view(n, 1, 1), (cx - cw // 2).view(n, 1, 1)
    inside = (ys >= y0) & (ys < y0 + ch) & (xs >= x0) & (xs < x0 + cw)
    return x * (~inside).unsqueeze(1).to(device=x.device, dtype=x.dtype)


_RGB2YIQ = torch.tensor([BT601_LUMA, [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def _hue(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    theta = (torch.rand(n, generator=g) * 2 - 1) * torch.pi
    c, s = torch.cos(theta), torch.sin(theta)
    rot = torch.zeros(n, 3, 3)
    rot[:, 0, 0], rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = 1, c, -s, s, c
    m = (torch.linalg.inv(_RGB2YIQ) @ rot @ _RGB2YIQ).to(device=x.device, dtype=x.dtype)  # N×3×3, RGB -> RGB
    return torch.einsum("nij,njhw->nihw", m, x)


_OPS = {"color": _color, "translation": _translation, "cutout": _cutout, "hue": _hue}


def diff_augment(x: torch.Tensor, policy: list[str], g: torch.Generator) -> torch.Tensor:
    """``x`` (N×C×H×W) through each policy in order; differentiable with respect to ``x``."""
    for p in policy:
        x = _OPS[p](x, g)
    return x
