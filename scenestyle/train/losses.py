"""Adversarial losses (vanilla, lsgan, wgan-gp, hinge) and the WGAN-GP gradient penalty."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from scenestyle._colour import BT601_LUMA


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Discriminator loss from its outputs on real and (detached) fake images."""
    if kind == "vanilla":
        return 0.5 * (
            F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
        )
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


def _luma(x: torch.Tensor) -> torch.Tensor:
    """N×1 float32 BT.601 luma of an N×3 image batch."""
    weights = torch.tensor(BT601_LUMA, device=x.device, dtype=torch.float32).view(1, 3, 1, 1)
    return (x.float() * weights).sum(1, keepdim=True)


def structure_loss(fake: torch.Tensor, real: torch.Tensor, pool: int = 4, eps: float = 1e-3) -> torch.Tensor:
    """``1 - corr`` between the luminance of ``fake`` and ``real``, both ``pool``x average-pooled, per image.

    A correlation ignores brightness and contrast, so a style may change tones and paint strokes finer
    than ``pool`` pixels, but it must keep where the edges and shapes are. ``eps`` (variance, images in
    [-1, 1]) keeps flat crops such as clear sky from demanding structure they do not have.
    """
    lum = [F.avg_pool2d(_luma(t), pool).flatten(1) for t in (fake, real)]
    f, r = (t - t.mean(1, keepdim=True) for t in lum)
    cov = (f * r).mean(1)
    corr = cov / torch.sqrt((f.pow(2).mean(1) + eps) * (r.pow(2).mean(1) + eps))
    return (1.0 - corr).mean()


def luma_view(x: torch.Tensor, scale: float, eps: float = 1e-3) -> torch.Tensor:
    """N×1 BT.601 luma of ``x`` resized by ``scale`` (antialiased) and standardised per image: what a
    palette-blind judge of the result at that scale sees (no colour, brightness or contrast)."""
    y = _luma(x)
    if scale != 1:
        size = [max(1, round(s * scale)) for s in y.shape[-2:]]
        y = F.interpolate(y, size=size, mode="bilinear", align_corners=False, antialias=True)
    mean, var = y.mean(dim=(2, 3), keepdim=True), y.var(dim=(2, 3), keepdim=True)
    return (y - mean) / torch.sqrt(var + eps)  # eps keeps flat crops finite, as the critic's floor does


def chroma_loss(fake: torch.Tensor, real: torch.Tensor, pool: int = 4) -> torch.Tensor:
    """L1 between the ``pool``x average-pooled chroma (each RGB channel less the BT.601 luma) of ``fake``
    and ``real``: colour must stay the photo's down to ``pool`` pixels (no fringes or bands along
    edges), while luma (tones, strokes, edges) is left to the other terms."""
    f, r = (t.float() - _luma(t) for t in (fake, real))
    return F.l1_loss(F.avg_pool2d(f, pool), F.avg_pool2d(r, pool))
