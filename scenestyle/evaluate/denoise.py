"""Denoising evaluation with KAIR's synthetic-noise protocol (shared/README.md).

A noise-level model (FFDNet) is told the noise level it removes. KAIR's protocol
(``main_test_ffdnet.py``) gives it the σ the test noise was drawn with; ``sigma_source="estimate"``
gives it the blind estimate of each noisy image instead, as ``scenestyle denoise`` does with
photos, which measures what the estimator costs.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import MappingProxyType

import numpy as np

from scenestyle.errors import UsageError
from scenestyle.evaluate._common import read_u8, run_float, to_u8
from scenestyle.evaluate.report import EvalReport, ImageScore
from scenestyle.image_files import list_images
from scenestyle.metrics.psnr_ssim import psnr, ssim

SIGMA_SOURCES = ("true", "estimate")
_SOURCE_TEXT = {
    "true": "true: the sigma the test noise was drawn with (KAIR protocol)",
    "estimate": "estimate: blind estimate of each noisy image (engine.noise.estimate_noise), capped at the model's maximum",
    None: "none: the model takes no noise level",
}


def evaluate_denoise(
    dataset: Path,
    *,
    model: str | None = None,  # None: the lock's default denoiser
    arch: str | None = None,
    sigmas: tuple[float, ...] = (25.0,),
    sigma_source: str | None = None,  # noise-level models: "true" (default) | "estimate"
    seed: int = 0,
    gray: bool = False,
    device: str = "auto",
    precision: str = "fp32",
    backend: str = "auto",  # auto | torch | openvino (engine/device.py: choose_placement)
    tile: int | None = 0,
    offline: bool = False,
    on_image=None,
    on_output=None,
) -> EvalReport:
    """Add Gaussian noise of each σ (0-255 scale) to clean images and score the model's output.

    Per σ: ``np.random.seed(seed)`` once, images in sorted name order, float64 noise added to
    [0, 1] images without clipping; output clipped and rounded to uint8; PSNR/SSIM on uint8,
    no border crop. ``gray`` converts every image to grayscale first (Set12-style evaluation).
    ``sigma_source``: what a noise-level model is told (see the module docstring); None is
    "true" for such a model, and giving it for any other model is a UsageError.
    ``on_output(name, group, panels)`` gets the noisy input (clipped for display), the output and the clean image.
    """
    if not sigmas or any(not (0 < s <= 255) for s in sigmas):
        raise UsageError(f"--sigma values must be in (0, 255], got {', '.join(map(str, sigmas)) or 'none'}")
    if sigma_source is not None and sigma_source not in SIGMA_SOURCES:
        raise UsageError(f"--sigma-source must be {' or '.join(SIGMA_SOURCES)}, not {sigma_source!r}")
    images = list_images(Path(dataset), "--dataset")

    from scenestyle.engine.device import choose_placement, prepare
    from scenestyle.engine.noise import GRAY_SIGMA_GAIN, sigma_from_estimate
    from scenestyle.engine.run import noise_level_models
    from scenestyle.loading import load_model
    from scenestyle.weights import load_defaults

    loaded = load_model(model or load_defaults().require("denoise"), arch=arch, task="denoise", offline=offline)
    meta = loaded.meta
    if sigma_source is not None and not meta.takes_sigma:
        raise UsageError(
            f"--sigma-source needs a model that takes a noise level ({noise_level_models()}); {loaded.name} ({loaded.arch}) does not"
        )
    source = (sigma_source or "true") if meta.takes_sigma else None
    placement = choose_placement(device, precision, loaded.module, meta, backend=backend)
    net = prepare(loaded.module, meta, placement)
    cleans = [read_u8(p, "gray" if gray else "keep") for p in images]

    scores, notes = [], []
    for sigma in sigmas:
        told = []  # the σ (8-bit units) the model was given for each image
        np.random.seed(seed)  # once per σ, before the first image: KAIR's main_test_dncnn
        for i, (path, clean_u8) in enumerate(zip(images, cleans)):
            if on_image:
                on_image(i, len(images), f"{path.name} σ={sigma:g}")
            clean = clean_u8.astype(np.float64) / 255.0
            noisy = clean + np.random.normal(0, sigma / 255.0, clean.shape)
            t0 = time.perf_counter()
            level = None
            if source == "true":
                level = sigma / 255.0
            elif source == "estimate":  # timed with the model: it is part of what a blind run costs
                level = sigma_from_estimate(noisy.astype(np.float32), cap=meta.sigma_max)[0]
            out = to_u8(run_float(net, meta, placement, noisy.astype(np.float32), tile, sigma=level))
            seconds = time.perf_counter() - t0
            if level is not None:
                told.append(level * 255)
            scores.append(ImageScore(path.name, psnr(out, clean_u8), ssim(out, clean_u8), seconds, group=f"sigma={sigma:g}"))
            if on_output:
                on_output(path.name, f"sigma={sigma:g}", {"noisy": to_u8(noisy), "output": out, "reference": clean_u8})
        if source == "estimate" and told:
            gray = meta.in_channels == 3 and any(c.shape[2] == 1 for c in cleans)  # run_float scales their σ
            notes.append(
                f"sigma={sigma:g}: the model was given blind estimates {min(told):.2f} to {max(told):.2f} (mean {np.mean(told):.2f})"
                + (f", x {GRAY_SIGMA_GAIN:.2f} on gray images" if gray else "")
            )

    protocol = {
        "task": "synthetic Gaussian denoising (KAIR protocol)",
        "sigmas": list(sigmas),
        "model_sigma": _SOURCE_TEXT[source],
        "noise": "np.random.seed(seed) once per sigma before the first image; sorted names; "
        "float64 N(0, sigma/255) added, noisy input not clipped",
        "channels": "grayscale (converted)"
        if gray
        else "as stored (1-channel models run per colour channel; gray through a colour model: as RGB (sigma x 1.50), back to BT.601 luma)",
        "output": "clip to [0, 1], round to uint8",
        "metric": "PSNR/SSIM on uint8 RGB or gray, no border crop",
        "precision": placement.precision,
        "backend": placement.backend,
        "tile": tile,
    }
    return EvalReport(
        kind="denoise",
        dataset=str(dataset),
        scores=tuple(scores),
        protocol=MappingProxyType(protocol),
        model=MappingProxyType({"name": loaded.name, "arch": loaded.arch, "sha256": loaded.sha256, "path": str(loaded.path)}),
        seed=seed,
        placement=MappingProxyType(placement.as_dict()),
        notes=tuple(notes),
    )
