"""Blur kernels of Real-ESRGAN's degradation pipeline, and the unsharp mask of its HR targets.

The kernel families of BasicSR ``basicsr/data/degradations.py`` (isotropic / anisotropic Gaussian,
generalized Gaussian, plateau) and its 2-D sinc (ringing), drawn by ``random_kernel`` from a
``torch.Generator``; ``filter2d`` applies one kernel per image of a batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.nn import functional as F

from scenestyle.train._draws import bernoulli, choice, uniform

__all__ = [
    "KERNEL_KINDS",
    "filter2d",
    "gaussian_kernel",
    "generalized_gaussian_kernel",
    "plateau_kernel",
    "random_kernel",
    "sinc_kernel",
    "usm_sharp",
]

KERNEL_KINDS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd number, got {size}")
    ax = torch.arange(size, dtype=torch.float64) - size // 2
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    return xx, yy


def _quadratic_form(size: int, sig_x: float, sig_y: float, theta: float) -> torch.Tensor:
    """[x y] Σ⁻¹ [x y]ᵀ on the kernel grid, Σ = R diag(σx², σy²) Rᵀ (BasicSR ``sigma_matrix2``)."""
    c, s = math.cos(theta), math.sin(theta)
    rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    inv = torch.linalg.inv(rot @ torch.diag(torch.tensor([sig_x**2, sig_y**2], dtype=torch.float64)) @ rot.T)
    xx, yy = _grid(size)
    return inv[0, 0] * xx * xx + (inv[0, 1] + inv[1, 0]) * xx * yy + inv[1, 1] * yy * yy


def _normalised(k: torch.Tensor) -> torch.Tensor:
    return (k / k.sum()).float()


def gaussian_kernel(size: int, sig_x: float, sig_y: float | None = None, theta: float = 0.0) -> torch.Tensor:
    """Isotropic (``sig_y=None``) or rotated anisotropic Gaussian blur kernel, summing to 1."""
    q = _quadratic_form(size, sig_x, sig_x if sig_y is None else sig_y, theta)
    return _normalised(torch.exp(-0.5 * q))


def generalized_gaussian_kernel(size: int, sig_x: float, sig_y: float | None, theta: float, beta: float) -> torch.Tensor:
    """exp(-½ qᵝ): β < 1 heavier tails, β > 1 flatter top than a Gaussian (β = 1)."""
    q = _quadratic_form(size, sig_x, sig_x if sig_y is None else sig_y, theta)
    return _normalised(torch.exp(-0.5 * q.pow(beta)))


def plateau_kernel(size: int, sig_x: float, sig_y: float | None, theta: float, beta: float) -> torch.Tensor:
    """1 / (1 + qᵝ): a flat-topped kernel (BasicSR ``bivariate_plateau``)."""
    q = _quadratic_form(size, sig_x, sig_x if sig_y is None else sig_y, theta)
    return _normalised(1.0 / (q.pow(beta) + 1.0))


def sinc_kernel(cutoff: float, size: int, pad_to: int = 0) -> torch.Tensor:
    """Circular low-pass (2-D sinc) kernel with ``cutoff`` in radians (π = Nyquist), summing to 1;
    zero-padded to ``pad_to`` when larger. It models ringing and overshoot artefacts."""
    xx, yy = _grid(size)
    r = torch.sqrt(xx * xx + yy * yy)
    k = cutoff * torch.special.bessel_j1(cutoff * r) / (2 * math.pi * r)
    k[size // 2, size // 2] = cutoff**2 / (4 * math.pi)  # the limit at r = 0
    k = k / k.sum()
    if pad_to > size:
        p = (pad_to - size) // 2
        k = F.pad(k, (p, p, p, p))
    return k.float()


def _pad_kernel(k: torch.Tensor, size: int) -> torch.Tensor:
    p = (size - k.shape[-1]) // 2
    return F.pad(k, (p, p, p, p))


def _sinc_cutoff(g: torch.Generator, size: int) -> float:
    # upstream: small kernels cannot represent low cutoffs, so they keep omega >= pi/3
    return uniform(g, math.pi / 3 if size < 13 else math.pi / 5, math.pi)


def random_kernel(
    g: torch.Generator,
    kinds: Sequence[str],
    probs: Sequence[float],
    sizes: Sequence[int],
    sigma_range: tuple[float, float],
    betag_range: tuple[float, float],
    betap_range: tuple[float, float],
    sinc_prob: float,
) -> torch.Tensor:
    """One random blur kernel as ``RealESRGANDataset`` draws it, zero-padded to ``max(sizes)``."""
    size = choice(g, sizes)
    if bernoulli(g, sinc_prob):
        k = sinc_kernel(_sinc_cutoff(g, size), size)
    else:
        kind = choice(g, kinds, probs)
        sig_x = uniform(g, *sigma_range)
        if kind.endswith("aniso"):
            sig_y, theta = uniform(g, *sigma_range), uniform(g, -math.pi, math.pi)
        else:
            sig_y, theta = sig_x, 0.0
        if kind in ("iso", "aniso"):
            k = gaussian_kernel(size, sig_x, sig_y, theta)
        else:
            lo, hi = betag_range if kind.startswith("generalized") else betap_range
            beta = uniform(g, lo, 1.0) if bernoulli(g, 0.5) else uniform(g, 1.0, hi)  # as upstream
            make = generalized_gaussian_kernel if kind.startswith("generalized") else plateau_kernel
            k = make(size, sig_x, sig_y, theta, beta)
    return _pad_kernel(k, max(sizes))


def filter2d(img: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve each image with its own odd k×k kernel (``kernel``: k×k or N×k×k).

    Borders are reflected as upstream; images not larger than k//2 (tiny crops, deep downscales)
    replicate their edge instead, since reflection needs more pixels than the padding.
    """
    n, c, h, w = img.shape
    k = kernel.shape[-1]
    kernel = kernel.to(img).reshape(-1, 1, k, k).expand(n, 1, k, k)
    p = k // 2
    mode = "reflect" if p < min(h, w) else "replicate"
    padded = F.pad(img, (p, p, p, p), mode=mode)
    weight = kernel.repeat_interleave(c, dim=0)  # (n*c, 1, k, k), image-major like the reshape below
    out = F.conv2d(padded.reshape(1, n * c, h + 2 * p, w + 2 * p), weight, groups=n * c)
    return out.view(n, c, h, w)


def _separable_blur(img: torch.Tensor, k1: torch.Tensor) -> torch.Tensor:
    """``filter2d`` with the outer product of ``k1`` with itself, as two 1-D passes (same borders)."""
    n, c, h, w = img.shape
    p = k1.numel() // 2
    mode = "reflect" if p < min(h, w) else "replicate"
    x = F.pad(img, (p, p, p, p), mode=mode).reshape(n * c, 1, h + 2 * p, w + 2 * p)
    k1 = k1.to(img)
    x = F.conv2d(x, k1.view(1, 1, -1, 1))
    x = F.conv2d(x, k1.view(1, 1, 1, -1))
    return x.view(n, c, h, w)


def usm_sharp(img: torch.Tensor, weight: float = 0.5, radius: int = 50, threshold: float = 10) -> torch.Tensor:
    """Unsharp masking as BasicSR ``USMSharp``: Real-ESRGAN degrades (and trains L1/perceptual
    against) the sharpened ground truth. ``threshold`` is in 0-255 units."""
    radius += radius % 2 == 0
    sigma = 0.3 * ((radius - 1) * 0.5 - 1) + 0.8  # OpenCV getGaussianKernel's default for sigma=0
    ax = torch.arange(radius, dtype=torch.float64) - radius // 2
    g1 = torch.exp(-ax * ax / (2 * sigma * sigma))
    g1 = g1 / g1.sum()
    g1 = g1.float()
    blur = _separable_blur(img, g1)
    residual = img - blur
    mask = (residual.abs() * 255 > threshold).to(img.dtype)
    soft = _separable_blur(mask, g1)
    sharp = (img + weight * residual).clamp(0, 1)
    return soft * sharp + (1 - soft) * img
