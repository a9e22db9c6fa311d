"""Learning-rate policies counted in optimisation steps: linear (CycleGAN), step, cosine, plateau."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau, StepLR

from scenestyle.train.schemas import OptimConfig


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


def _lambda(cfg: OptimConfig, steps: int) -> _LinearDecay | _Cosine:
    return _LinearDecay(steps, cfg.decay_start) if cfg.policy == "linear" else _Cosine(steps, cfg.min_lr_ratio)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, steps: int) -> LRScheduler | ReduceLROnPlateau:
    """The scheduler for ``cfg.policy``; call ``step()`` once per training step (plateau: ``step(loss)``)."""
    if cfg.policy in ("linear", "cosine"):
        return LambdaLR(optimizer, _lambda(cfg, steps))
    if cfg.policy == "step":
        return StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.policy == "plateau":
        return ReduceLROnPlateau(optimizer, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience)
    raise ValueError(f"optim.policy must be linear, step, cosine or plateau, not {cfg.policy!r}")


def step_scheduler(scheduler: LRScheduler | ReduceLROnPlateau, metric: float) -> None:
    """Advance one step; only the plateau policy looks at ``metric``."""
    if isinstance(scheduler, ReduceLROnPlateau):
        scheduler.step(metric)
    else:
        scheduler.step()


def retarget(scheduler: LRScheduler | ReduceLROnPlateau, optimizer: torch.optim.Optimizer, cfg: OptimConfig, steps: int) -> None:
    """Stretch a resumed linear/cosine schedule to a new total of ``steps`` (a run extended with
    ``--resume --set train.steps=N``): the lr of the current step follows the new curve. A no-op
    when the total is unchanged (so an ordinary resume stays bitwise exact) and for step/plateau."""
    if not isinstance(scheduler, LambdaLR) or all(getattr(f, "steps", steps) == steps for f in scheduler.lr_lambdas):
        return
    scheduler.lr_lambdas = [_lambda(cfg, steps) for _ in optimizer.param_groups]
    lrs = [base * f(scheduler.last_epoch) for base, f in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, lr in zip(optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = lrs
