"""Adversarial losses (vanilla, lsgan, wgan-gp, hinge) and the WGAN-GP gradient penalty."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Discriminator loss from its outputs on real and (detached) fake images."""
    if kind == "vanilla":
        return 0.5 * (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                      + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    if kind == "lsgan":  # upstream halves the D loss so D learns slower than G
        return 0.5 * (F.mse_loss(real, torch.ones_like(real)) + F.mse_loss(fake, torch.zeros_like(fake)))
    if kind == "wgan-gp":
        return fake.mean() - real.mean()
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    raise ValueError(f"gan loss must be vanilla, lsgan, wgan-gp or hinge, not {kind!r}")


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """Generator loss from the discriminator's output on generated images."""
    if kind == "vanilla":
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if kind == "lsgan":
        return F.mse_loss(fake, torch.ones_like(fake))
    if kind in ("wgan-gp", "hinge"):
        return -fake.mean()
    raise ValueError(f"gan loss must be vanilla, lsgan, wgan-gp or hinge, not {kind!r}")


def gradient_penalty(d: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gulrajani et al.: ``(||grad D(x_hat)||_2 - 1)^2`` on random interpolates of real and fake."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, generator=generator, dtype=real.dtype).to(real.device)
    x = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = d(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()
