"""Synthetic noise for denoise training: noisy copies of clean crops and their noise-level maps.

``add_noise`` makes Gaussian, Poisson-Gaussian, JPEG or camera-pipeline noise (shot and read noise
in linear raw space, a random colour matrix, the sRGB curve) and the per-pixel noise level the
network gets as its extra input. Tensors are float32 N×C×H×W in [0, 1]; every random draw comes
from the ``torch.Generator`` argument, drawn on its device and moved to the data.
"""

from __future__ import annotations

import torch

from scenestyle.train._draws import check_batch, log_uniform_n, uniform_n
from scenestyle.train.degradations import jpeg

__all__ = ["NOISE_DEFAULTS", "NOISE_KINDS", "add_noise"]

NOISE_KINDS = ("gaussian", "poisson_gaussian", "jpeg", "camera")

_SRGB_THRESHOLD = 0.0031308


def _srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(y: torch.Tensor) -> torch.Tensor:
    y = y.clamp(0, 1)
    return torch.where(y <= _SRGB_THRESHOLD, 12.92 * y, 1.055 * y.clamp_min(_SRGB_THRESHOLD) ** (1 / 2.4) - 0.055)


def _linear_to_srgb_slope(y: torch.Tensor) -> torch.Tensor:
    y = y.clamp(0, 1)
    return torch.where(y <= _SRGB_THRESHOLD, torch.full_like(y, 12.92), 1.055 / 2.4 * y.clamp_min(_SRGB_THRESHOLD) ** (1 / 2.4 - 1))


def _random_cam_to_rgb(g: torch.Generator, n: int, off_range: tuple[float, float]) -> torch.Tensor:
    """Camera-to-sRGB colour matrices: negative-ish off-diagonals, rows summing to 1 (grey stays grey)."""
    off = uniform_n(g, n * 9, *off_range).view(n, 3, 3).float() * (1 - torch.eye(3, device=g.device))
    return off + torch.diag_embed(1 - off.sum(-1))


NOISE_DEFAULTS: dict[str, dict] = {
    # per-image σ drawn uniformly, 0-255 units; ``clip`` keeps the KAIR protocol's unclipped noisy input by default
    "gaussian": dict(sigma_range=(0.0, 50.0), clip=False),
    # variance a·x + b² (x in [0, 1]): a drawn log-uniformly (shot), b uniformly (read)
    "poisson_gaussian": dict(shot_range=(1e-4, 1e-2), read_range=(0.0, 0.04)),
    # JPEG quality per image; the map holds the measured RMS error, JPEG being no additive noise
    "jpeg": dict(quality_range=(10.0, 95.0)),
    # shot/read noise in linear camera space, then a random 3×3 colour matrix and the sRGB curve
    "camera": dict(shot_range=(1e-4, 1e-2), read_range=(1e-3, 2e-2), offdiag_range=(-0.4, 0.05)),
}


def add_noise(clean: torch.Tensor, kind: str, generator: torch.Generator, **params) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy version of ``clean`` and its N×1×H×W noise-level map (noise std in [0, 1] units).

    Kinds and their params (defaults in ``NOISE_DEFAULTS``): ``gaussian`` (``sigma_range`` in 0-255,
    ``clip``), ``poisson_gaussian`` (``shot_range``, ``read_range``), ``jpeg`` (``quality_range``),
    ``camera`` (``shot_range``, ``read_range``, ``offdiag_range``). Every parameter is drawn per image;
    a range with equal ends fixes it. Signal-dependent kinds give a map that varies per pixel (the
    channel mean of the per-pixel std, propagated through the colour matrix and the sRGB slope for
    ``camera``). Only ``gaussian`` with ``clip=False`` leaves values outside [0, 1].
    """
    check_batch(clean, "clean")
    if kind not in NOISE_DEFAULTS:
        raise ValueError(f"unknown noise kind {kind!r}; choose one of: {', '.join(NOISE_KINDS)}")
    unknown = sorted(set(params) - set(NOISE_DEFAULTS[kind]))
    if unknown:
        raise ValueError(f"noise kind {kind!r} takes {', '.join(sorted(NOISE_DEFAULTS[kind]))}; got unknown {unknown}")
    p = {**NOISE_DEFAULTS[kind], **params}
    for name, v in p.items():
        if name.endswith("_range") and (len(v) != 2 or v[0] > v[1]):
            raise ValueError(f"{name} must be (low, high) with low <= high, got {v}")
    g, x = generator, clean
    n, c, h, w = x.shape

    def draw(lo_hi: tuple[float, float], log: bool = False) -> torch.Tensor:
        lo, hi = lo_hi
        vals = log_uniform_n(g, n, lo, hi) if log and lo > 0 else uniform_n(g, n, lo, hi)
        return vals.float().view(n, 1, 1, 1).to(x.device)

    def randn(shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=g, device=g.device).to(x.device)

    if kind == "gaussian":
        sigma = draw(p["sigma_range"]) / 255.0
        noisy = x + randn((n, c, h, w)) * sigma
        if p["clip"]:
            noisy = noisy.clamp(0, 1)
        return noisy, sigma.expand(n, 1, h, w).clone()
    if kind == "poisson_gaussian":
        a, b = draw(p["shot_range"], log=True), draw(p["read_range"])
        xc = x.clamp(0, 1)
        # real Poisson counts at 1/a photons per unit signal, then Gaussian read noise
        shot = torch.poisson((xc / a).to(g.device), generator=g).to(x.device) * a
        noisy = (shot + randn((n, c, h, w)) * b).clamp(0, 1)
        return noisy, torch.sqrt(a * xc + b * b).mean(1, keepdim=True)
    if kind == "jpeg":
        q = uniform_n(g, n, *p["quality_range"])
        noisy = jpeg(x, q)
        rms = (noisy - x.clamp(0, 1)).pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
        return noisy, rms.expand(n, 1, h, w).clone()
    # camera
    if c != 3:
        raise ValueError(f"noise kind 'camera' needs RGB images, got {c} channels")
    a, b = draw(p["shot_range"], log=True), draw(p["read_range"], log=True)
    cam_to_rgb = _random_cam_to_rgb(g, n, p["offdiag_range"]).to(x.device)
    rgb_to_cam = torch.linalg.inv(cam_to_rgb)
    lin = _srgb_to_linear(x.clamp(0, 1))
    raw = torch.einsum("nij,njhw->nihw", rgb_to_cam, lin).clamp_min(0)
    var = a * raw + b * b  # per raw channel: independent shot + read noise
    raw_noisy = raw + randn((n, 3, h, w)) * var.sqrt()
    lin_noisy = torch.einsum("nij,njhw->nihw", cam_to_rgb, raw_noisy)
    noisy = _linear_to_srgb(lin_noisy)
    # delta method: std in linear RGB through the colour matrix, then the local slope of the sRGB curve
    lin_std = torch.einsum("nij,njhw->nihw", cam_to_rgb**2, var).sqrt()
    lin_clean = torch.einsum("nij,njhw->nihw", cam_to_rgb, raw)
    sigma_map = (lin_std * _linear_to_srgb_slope(lin_clean)).mean(1, keepdim=True).clamp(0, 1)
    return noisy, sigma_map
