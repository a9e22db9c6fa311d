"""Synthetic degradations for SR training: low-resolution inputs made from HR crops.

* ``bicubic_pair``: the classic SR protocol (MATLAB-bicubic LR of an HR crop).
* ``degrade``: Real-ESRGAN's second-order pipeline (blur, resize, noise, JPEG, twice, then the
  final sinc filter + resize + JPEG in random order), as ``RealESRGANModel.feed_data`` with the
  kernels of ``blur_kernels.py``.

The noise of the denoise trainer is in ``noise_synthesis.py``. Tensors are float32 N×C×H×W in
[0, 1]. Every random draw comes from the ``torch.Generator`` argument (``_draws.py``), so a batch
is reproducible and the pipeline is checkpointable with ``generator.get_state()``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from scenestyle.metrics.resize import imresize as _imresize  # MATLAB-compatible bicubic (the SR protocol's LR)
from scenestyle.train._draws import bernoulli, check_batch, choice, uniform, uniform_n
from scenestyle.train.blur_kernels import KERNEL_KINDS, filter2d, random_kernel, sinc_kernel, usm_sharp

__all__ = [
    "RealESRGANDegradation",
    "bicubic_pair",
    "degrade",
    "jpeg",
]

RESIZE_MODES = ("area", "bilinear", "bicubic")


# --- resize, noise, JPEG -----------------------------------------------------------------------


def _gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] != 3:
        return x.mean(1, keepdim=True)
    r, g_, b = x.unbind(1)
    # torchvision's rgb_to_grayscale weights (0.2989, not BT.601's 0.299), which BasicSR's gray
    # Poisson noise uses: kept so this pipeline draws the noise upstream draws
    return (0.2989 * r + 0.587 * g_ + 0.114 * b).unsqueeze(1)


def _per_image_gray(noise: torch.Tensor, gray_noise: torch.Tensor, noise_gray: torch.Tensor) -> torch.Tensor:
    sel = gray_noise.view(-1, 1, 1, 1).to(noise.device)
    return torch.where(sel, noise_gray.expand_as(noise), noise)


def _random_gaussian_noise(x: torch.Tensor, g: torch.Generator, sigma_range: tuple[float, float], gray_prob: float) -> torch.Tensor:
    """BasicSR ``random_generate_gaussian_noise_pt``: per-image σ (0-255 units) and gray/colour choice."""
    n, c, h, w = x.shape
    sigma = uniform_n(g, n, *sigma_range).float().view(n, 1, 1, 1) / 255.0
    gray = torch.rand(n, generator=g, device=g.device) < gray_prob
    noise = torch.randn(n, c, h, w, generator=g, device=g.device) * sigma
    noise_gray = torch.randn(n, 1, h, w, generator=g, device=g.device) * sigma
    return _per_image_gray(noise, gray, noise_gray).to(x.device)


def _poisson(img: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Shot noise with as many photon levels as the image has distinct 8-bit values (upstream)."""
    img = (img * 255).round().clamp(0, 255) / 255
    vals = torch.tensor([2.0 ** math.ceil(math.log2(len(torch.unique(im)))) for im in img], device=img.device)
    vals = vals.view(-1, 1, 1, 1)
    on_g = (img * vals).to(g.device)
    return torch.poisson(on_g, generator=g).to(img.device) / vals - img


def _random_poisson_noise(x: torch.Tensor, g: torch.Generator, scale_range: tuple[float, float], gray_prob: float) -> torch.Tensor:
    """BasicSR ``random_generate_poisson_noise_pt``: per-image scale and gray/colour choice."""
    n = x.shape[0]
    scale = uniform_n(g, n, *scale_range).float().view(n, 1, 1, 1).to(x.device)
    gray = torch.rand(n, generator=g, device=g.device) < gray_prob
    noise_gray = _poisson(_gray(x), g) if bool(gray.any()) else torch.zeros_like(x[:, :1])
    noise = _poisson(x, g)
    return _per_image_gray(noise, gray, noise_gray) * scale


def jpeg(x: torch.Tensor, quality: Sequence[float] | torch.Tensor | float) -> torch.Tensor:
    """JPEG round trip of each image through Pillow (4:2:0, as DiffJPEG) at its quality (1-100,
    rounded to an integer). Inputs are clamped to [0, 1] and rounded to 8 bits first."""
    check_batch(x, "jpeg input")
    n, c = x.shape[:2]
    if c not in (1, 3):
        raise ValueError(f"jpeg needs 1 or 3 channels, got {c}")
    q = torch.as_tensor(quality, dtype=torch.float64).flatten()
    if q.numel() == 1:
        q = q.expand(n)
    if q.numel() != n or bool(((q < 1) | (q > 100)).any()):
        raise ValueError(f"jpeg quality must be one value or one per image, each in 1..100, got {q.tolist()}")
    arrays = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for arr, qi in zip(arrays, q.tolist()):
        buf = io.BytesIO()
        Image.fromarray(arr[..., 0] if c == 1 else arr).save(buf, format="JPEG", quality=int(round(qi)))
        dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L" if c == 1 else "RGB"))
        out.append(torch.from_numpy(dec.reshape(arr.shape).copy()))
    return torch.stack(out).permute(0, 3, 1, 2).to(x.device, x.dtype) / 255.0


def _random_jpeg(x: torch.Tensor, g: torch.Generator, quality_range: tuple[float, float]) -> torch.Tensor:
    return jpeg(x.clamp(0, 1), uniform_n(g, x.shape[0], *quality_range))


def _random_resize_factor(g: torch.Generator, probs: Sequence[float], rng: tuple[float, float]) -> float:
    kind = choice(g, ("up", "down", "keep"), probs)
    if kind == "up":
        return uniform(g, 1.0, rng[1])
    if kind == "down":
        return uniform(g, rng[0], 1.0)
    return 1.0


# --- the classic bicubic protocol ---------------------------------------------------------------


def bicubic_pair(hr: torch.Tensor, scale: int, quantize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(HR cropped to a multiple of ``scale``, its bicubic LR), the classic SR protocol.

    LR is MATLAB ``imresize`` (``scenestyle.metrics.resize``: Keys a=-0.5, antialiased, edge
    replicate); ``quantize`` runs it on 8-bit values with MATLAB's rounding after each pass, which
    reproduces the official ``LR_bicubic`` sets.
    """
    check_batch(hr, "hr")
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    n, c, h, w = hr.shape
    h, w = h - h % scale, w - w % scale
    if h == 0 or w == 0:
        raise ValueError(f"hr {tuple(hr.shape[-2:])} is smaller than the scale {scale}")
    hr = hr[:, :, :h, :w]
    arr = hr.detach().permute(0, 2, 3, 1).cpu().double().numpy()
    if quantize:
        arr = np.clip(np.floor(arr * 255 + 0.5), 0, 255).astype(np.uint8)
    lr = np.stack([_imresize(a, size=(h // scale, w // scale)) for a in arr]).astype(np.float64)
    lr = torch.from_numpy(lr / 255.0 if quantize else lr).permute(0, 3, 1, 2)
    return hr, lr.to(hr.device, hr.dtype).contiguous()


# --- Real-ESRGAN second-order degradation ------------------------------------------------------


@dataclass(frozen=True)
class RealESRGANDegradation:
    """Settings of the second-order pipeline; defaults are Real-ESRGAN x4plus
    (``options/train_realesrgan_x4plus.yml``). Noise σ and JPEG quality are in 0-255 / 1-100 units."""

    usm_input: bool = True  # degrade the unsharp-masked HR, as upstream feeds ``gt_usm``
    kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)  # odd blur kernel sizes, drawn uniformly
    # first stage
    kernel_list: tuple[str, ...] = KERNEL_KINDS  # blur kernel families
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)  # their probabilities
    sinc_prob: float = 0.1  # chance the blur is a sinc (ringing) kernel instead
    blur_sigma: tuple[float, float] = (0.2, 3.0)  # Gaussian σ range in pixels
    betag_range: tuple[float, float] = (0.5, 4.0)  # generalized-Gaussian shape β
    betap_range: tuple[float, float] = (1.0, 2.0)  # plateau shape β
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)  # resize factor range
    gaussian_noise_prob: float = 0.5  # Gaussian noise, else Poisson
    noise_range: tuple[float, float] = (1.0, 30.0)  # Gaussian σ
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)  # Poisson noise scale
    gray_noise_prob: float = 0.4  # same noise in every channel
    jpeg_range: tuple[float, float] = (30.0, 95.0)  # JPEG quality
    # second stage
    second_blur_prob: float = 0.8  # chance of a second blur at all
    kernel_list2: tuple[str, ...] = KERNEL_KINDS  # blur kernel families
    kernel_prob2: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)  # their probabilities
    sinc_prob2: float = 0.1  # chance the second blur is a sinc kernel
    blur_sigma2: tuple[float, float] = (0.2, 1.5)  # Gaussian σ range in pixels
    betag_range2: tuple[float, float] = (0.5, 4.0)  # generalized-Gaussian shape β
    betap_range2: tuple[float, float] = (1.0, 2.0)  # plateau shape β
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)  # up, down, keep
    resize_range2: tuple[float, float] = (0.3, 1.2)  # resize factor range (relative to the LR size)
    gaussian_noise_prob2: float = 0.5  # Gaussian noise, else Poisson
    noise_range2: tuple[float, float] = (1.0, 25.0)  # Gaussian σ
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)  # Poisson noise scale
    gray_noise_prob2: float = 0.4  # same noise in every channel
    jpeg_range2: tuple[float, float] = (30.0, 95.0)  # JPEG quality
    # final step
    final_sinc_prob: float = 0.8  # chance of the final sinc filter (else identity)

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.endswith("_prob") or f.name.endswith("_prob2"):
                if isinstance(v, tuple):
                    if any(p < 0 for p in v) or abs(sum(v) - 1) > 1e-6:
                        raise ValueError(f"{f.name} must be non-negative and sum to 1, got {v}")
                elif not 0 <= v <= 1:
                    raise ValueError(f"{f.name} must be in [0, 1], got {v}")
            elif f.name.endswith("range") or f.name.endswith("range2") or f.name.startswith("blur_sigma"):
                if len(v) != 2 or not 0 < v[0] <= v[1]:
                    raise ValueError(f"{f.name} must be (low, high) with 0 < low <= high, got {v}")
        for lst, prob in (("kernel_list", "kernel_prob"), ("kernel_list2", "kernel_prob2")):
            kinds, probs = getattr(self, lst), getattr(self, prob)
            bad = [k for k in kinds if k not in KERNEL_KINDS]
            if bad:
                raise ValueError(f"{lst} has unknown kernels {bad}; choose from {', '.join(KERNEL_KINDS)}")
            if len(kinds) != len(probs):
                raise ValueError(f"{lst} and {prob} must have the same length, got {len(kinds)} and {len(probs)}")
        if not self.kernel_sizes or any(s < 1 or s % 2 == 0 for s in self.kernel_sizes):
            raise ValueError(f"kernel_sizes must be positive odd numbers, got {self.kernel_sizes}")
        for name in ("jpeg_range", "jpeg_range2"):
            if getattr(self, name)[1] > 100:
                raise ValueError(f"{name} must lie in 1..100, got {getattr(self, name)}")


def _stage_kernels(g: torch.Generator, n: int, cfg: RealESRGANDegradation, second: bool) -> torch.Tensor:
    sfx = "2" if second else ""
    return torch.stack(
        [
            random_kernel(
                g,
                getattr(cfg, "kernel_list" + sfx),
                getattr(cfg, "kernel_prob" + sfx),
                cfg.kernel_sizes,
                getattr(cfg, "blur_sigma" + sfx),
                getattr(cfg, "betag_range" + sfx),
                getattr(cfg, "betap_range" + sfx),
                getattr(cfg, "sinc_prob" + sfx),
            )
            for _ in range(n)
        ]
    )


def _final_sinc(g: torch.Generator, n: int, cfg: RealESRGANDegradation) -> torch.Tensor:
    size = max(cfg.kernel_sizes)
    out = []
    for _ in range(n):
        if bernoulli(g, cfg.final_sinc_prob):
            k = choice(g, cfg.kernel_sizes)
            out.append(sinc_kernel(uniform(g, math.pi / 3, math.pi), k, pad_to=size))
        else:
            pulse = torch.zeros(size, size)
            pulse[size // 2, size // 2] = 1  # identity: no final blur
            out.append(pulse)
    return torch.stack(out)


def _noise(
    out: torch.Tensor, g: torch.Generator, p_gauss: float, sigma: tuple[float, float], poisson: tuple[float, float], gray_prob: float
) -> torch.Tensor:
    if bernoulli(g, p_gauss):
        noise = _random_gaussian_noise(out, g, sigma, gray_prob)
    else:
        noise = _random_poisson_noise(out, g, poisson, gray_prob)
    return (out + noise).clamp(0, 1)


@torch.no_grad()
def degrade(hr: torch.Tensor, scale: int, cfg: RealESRGANDegradation, generator: torch.Generator) -> torch.Tensor:
    """Real-ESRGAN second-order degradation of an HR batch to an LR batch of size HR/``scale``.

    Kernels, noise levels, gray-noise choices and JPEG qualities are drawn per image (as the
    upstream dataset + model do); resize factors, modes, the second-blur coin and the order of
    the final step per batch. The result is clamped and rounded to 1/255 steps, as upstream.
    """
    check_batch(hr, "hr")
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    n, _, h, w = hr.shape
    if h % scale or w % scale:
        raise ValueError(f"hr size {h}x{w} must be divisible by the scale {scale}; crop it first")
    g = generator
    k1, k2, sinc = _stage_kernels(g, n, cfg, False), _stage_kernels(g, n, cfg, True), _final_sinc(g, n, cfg)

    out = usm_sharp(hr) if cfg.usm_input else hr
    # first stage
    out = filter2d(out, k1)
    factor = _random_resize_factor(g, cfg.resize_prob, cfg.resize_range)
    out = F.interpolate(out, scale_factor=factor, mode=choice(g, RESIZE_MODES))
    out = _noise(out, g, cfg.gaussian_noise_prob, cfg.noise_range, cfg.poisson_scale_range, cfg.gray_noise_prob)
    out = _random_jpeg(out, g, cfg.jpeg_range)
    # second stage
    if bernoulli(g, cfg.second_blur_prob):
        out = filter2d(out, k2)
    factor = _random_resize_factor(g, cfg.resize_prob2, cfg.resize_range2)
    size = (max(1, int(h / scale * factor)), max(1, int(w / scale * factor)))
    out = F.interpolate(out, size=size, mode=choice(g, RESIZE_MODES))
    out = _noise(out, g, cfg.gaussian_noise_prob2, cfg.noise_range2, cfg.poisson_scale_range2, cfg.gray_noise_prob2)
    # final: [resize back + sinc] and JPEG in either order (upstream: other orders twist lines)
    if bernoulli(g, 0.5):
        out = F.interpolate(out, size=(h // scale, w // scale), mode=choice(g, RESIZE_MODES))
        out = filter2d(out, sinc)
        out = _random_jpeg(out, g, cfg.jpeg_range2)
    else:
        out = _random_jpeg(out, g, cfg.jpeg_range2)
        out = F.interpolate(out, size=(h // scale, w // scale), mode=choice(g, RESIZE_MODES))
        out = filter2d(out, sinc)
    return ((out * 255.0).round().clamp(0, 255) / 255.0).contiguous()
