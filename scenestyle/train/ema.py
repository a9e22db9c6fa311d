"""Exponential moving average of a model's weights (the generator that gets exported)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """``shadow = decay * shadow + (1 - decay) * param`` after every step; buffers are copied."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for s, p in zip(self.module.parameters(), model.parameters()):
            s.lerp_(p.detach(), 1.0 - self.decay)
        for s, b in zip(self.module.buffers(), model.buffers()):
            s.copy_(b)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.module.load_state_dict(state["module"])
