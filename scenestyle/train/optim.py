"""Learning-rate policies counted in optimisation steps: linear (CycleGAN), step, cosine, plateau."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau, StepLR

from scenestyle.train.config import OptimConfig


class _LinearDecay:
    """Constant for ``decay_start * steps`` steps, then linear to 0 at ``steps`` (picklable, unlike a lambda)."""

    def __init__(self, steps: int, decay_start: float):
        self.steps, self.start = steps, int(decay_start * steps)

    def __call__(self, step: int) -> float:
        return 1.0 - max(0, step - self.start) / max(1, self.steps - self.start)


class _Cosine:
    def __init__(self, steps: int, min_ratio: float):
        self.steps, self.min_ratio = steps, min_ratio

    def __call__(self, step: int) -> float:
        t = min(step, self.steps) / max(1, self.steps)
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, steps: int) -> LRScheduler | ReduceLROnPlateau:
    """The scheduler for ``cfg.policy``; call ``step()`` once per training step (plateau: ``step(loss)``)."""
    if cfg.policy == "linear":
        return LambdaLR(optimizer, _LinearDecay(steps, cfg.decay_start))
    if cfg.policy == "step":
        return StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.policy == "cosine":
        return LambdaLR(optimizer, _Cosine(steps, cfg.min_lr_ratio))
    if cfg.policy == "plateau":
        return ReduceLROnPlateau(optimizer, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience)
    raise ValueError(f"optim.policy must be linear, step, cosine or plateau, not {cfg.policy!r}")


def step_scheduler(scheduler: LRScheduler | ReduceLROnPlateau, metric: float) -> None:
    """Advance one step; only the plateau policy looks at ``metric``."""
    if isinstance(scheduler, ReduceLROnPlateau):
        scheduler.step(metric)
    else:
        scheduler.step()
