"""Random draws for the training degradations, every one from an explicit ``torch.Generator``.

Drawing on the generator's device and never from a global RNG keeps a batch reproducible and the
pipeline checkpointable with ``generator.get_state()``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch


def uniform(g: torch.Generator, lo: float, hi: float) -> float:
    """One float drawn uniformly from [lo, hi)."""
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64, device=g.device))


def uniform_n(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    """``n`` float64 values drawn uniformly from [lo, hi), on the generator's device."""
    return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64, device=g.device)


def log_uniform_n(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    """``n`` values whose logarithm is uniform between log(lo) and log(hi) (lo > 0)."""
    return torch.exp(uniform_n(g, n, math.log(lo), math.log(hi)))


def bernoulli(g: torch.Generator, p: float) -> bool:
    """True with probability ``p``."""
    return float(torch.rand((), generator=g, dtype=torch.float64, device=g.device)) < p


def choice(g: torch.Generator, options: Sequence[Any], probs: Sequence[float] | None = None) -> Any:
    """One of ``options``, uniformly or with the given probabilities."""
    if probs is None:
        return options[int(torch.randint(len(options), (), generator=g, device=g.device))]
    p = torch.tensor(probs, dtype=torch.float64, device=g.device)
    return options[int(torch.multinomial(p, 1, generator=g))]


def check_batch(x: torch.Tensor, what: str) -> None:
    """ValueError naming ``what`` unless ``x`` is a float N×C×H×W tensor."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{what} must be a float N×C×H×W tensor in [0, 1], got {got}")
