"""Super-resolution evaluation: HR folder → LR (given or MATLAB bicubic) → model → PSNR/SSIM on Y."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from scenestyle.errors import UsageError
from scenestyle.evaluate._common import read_u8, run_float, to_u8
from scenestyle.evaluate.report import EvalReport, ImageScore
from scenestyle.image_files import list_images
from scenestyle.metrics.psnr_ssim import psnr, ssim
from scenestyle.metrics.resize import imresize

BICUBIC = "bicubic"  # the built-in baseline: MATLAB-style bicubic upsampling of the LR image


@dataclass(frozen=True)
class SRLayout:
    """Where the HR images are, and the LR folder to use (None: degrade HR with MATLAB bicubic)."""

    hr_dir: Path
    lr_dir: Path | None
    note: str


def find_layout(dataset: Path, scale: int, lr_dir: Path | None = None) -> SRLayout:
    """Resolve ``dataset``: a folder of HR images, or a Set5-style folder with ``HR/`` and ``LR_bicubic/X{scale}/``."""
    dataset = Path(dataset)
    if not dataset.is_dir():
        raise UsageError(f"--dataset {dataset} does not exist or is not a folder")
    hr_dir = dataset / "HR" if (dataset / "HR").is_dir() else dataset
    if lr_dir is not None:
        if not Path(lr_dir).is_dir():
            raise UsageError(f"--lr-dir {lr_dir} does not exist or is not a folder")
        return SRLayout(hr_dir, Path(lr_dir), f"LR images from --lr-dir {lr_dir}")
    given = dataset / "LR_bicubic" / f"X{scale}"
    if hr_dir != dataset and given.is_dir():
        return SRLayout(hr_dir, given, f"using the dataset's own LR images in {given} (HR/ + LR_bicubic/X{scale}/ layout)")
    return SRLayout(hr_dir, None, f"LR made from HR with MATLAB-compatible bicubic x1/{scale} (uint8 after each pass)")


def _lr_for(hr_path: Path, lr_dir: Path, scale: int) -> Path:
    for name in (f"{hr_path.stem}x{scale}{hr_path.suffix}", hr_path.name, f"{hr_path.stem}x{scale}.png", f"{hr_path.stem}.png"):
        if (lr_dir / name).is_file():
            return lr_dir / name
    raise UsageError(f"no LR image for {hr_path.name} in {lr_dir} (looked for {hr_path.stem}x{scale}{hr_path.suffix} and {hr_path.name})")


def evaluate_sr(
    dataset: Path,
    *,
    scale: int = 4,
    model: str = BICUBIC,
    arch: str | None = None,
    lr_dir: Path | None = None,
    crop_border: int | None = None,
    test_y: bool = True,
    device: str = "auto",
    precision: str = "fp32",
    backend: str = "auto",  # auto | torch | openvino (engine/device.py: choose_placement)
    tile: int | None = 0,
    offline: bool = False,
    on_image=None,
    on_output=None,
) -> EvalReport:
    """Score ``model`` (a weights.lock name, a weights path/URI, or ``"bicubic"``) on an HR folder.

    HR is cropped to a multiple of ``scale``; ``crop_border`` defaults to ``scale``; scores are
    on BT.601 Y unless ``test_y`` is False. ``on_image(i, n, name)`` is called before each image;
    ``on_output(name, group, panels)`` gets the bicubic-upsampled LR, the output and the HR (uint8).
    """
    if scale not in (2, 3, 4, 8):
        raise UsageError(f"--scale must be 2, 3, 4 or 8, not {scale}")
    crop = scale if crop_border is None else crop_border
    if crop < 0:
        raise UsageError(f"--crop-border must be >= 0, not {crop}")
    layout = find_layout(dataset, scale, lr_dir)
    images = list_images(layout.hr_dir, "HR")

    net = placement = meta = None
    model_info: dict[str, object] = {"name": BICUBIC, "arch": "MATLAB imresize bicubic", "sha256": None}
    if model != BICUBIC:
        from scenestyle.engine.device import choose_placement, prepare
        from scenestyle.loading import load_model

        loaded = load_model(model, arch=arch, task="upscale", offline=offline)
        meta = loaded.meta
        if meta.scale != scale:
            raise UsageError(
                f"model {loaded.name} upscales x{meta.scale} but --scale is {scale}; pass --scale {meta.scale} or an x{scale} model"
            )
        placement = choose_placement(device, precision, loaded.module, meta, backend=backend)
        net = prepare(loaded.module, meta, placement)
        model_info = {"name": loaded.name, "arch": loaded.arch, "sha256": loaded.sha256, "path": str(loaded.path)}

    scores = []
    for i, hr_path in enumerate(images):
        if on_image:
            on_image(i, len(images), hr_path.name)
        hr = read_u8(hr_path, "rgb")
        h, w = hr.shape[:2]
        hr = hr[: h - h % scale, : w - w % scale]
        lr = read_u8(_lr_for(hr_path, layout.lr_dir, scale), "rgb") if layout.lr_dir else imresize(hr, 1 / scale)
        if lr.shape[0] * scale != hr.shape[0] or lr.shape[1] * scale != hr.shape[1]:
            raise UsageError(
                f"{hr_path.name}: LR is {lr.shape[1]}×{lr.shape[0]}, which x{scale} does not make the HR's {hr.shape[1]}×{hr.shape[0]}"
            )
        t0 = time.perf_counter()
        if net is None:
            sr = imresize(lr, float(scale))
        else:
            sr = to_u8(run_float(net, meta, placement, lr.astype(np.float32) / 255.0, tile))
        seconds = time.perf_counter() - t0
        scores.append(ImageScore(hr_path.name, psnr(sr, hr, crop, test_y), ssim(sr, hr, crop, test_y), seconds))
        if on_output:
            on_output(
                hr_path.name, "", {"input (bicubic)": sr if net is None else imresize(lr, float(scale)), "output": sr, "reference": hr}
            )

    protocol = {
        "task": f"x{scale} super-resolution",
        "lr": layout.note,
        "resize": "MATLAB imresize bicubic (Keys a=-0.5, antialiased when shrinking, edge-replicate borders)",
        "hr_modcrop": scale,
        "channel": "Y (ITU-R BT.601, float, no rounding)" if test_y else "RGB",
        "crop_border": crop,
        "ssim": "11x11 Gaussian sigma 1.5, valid window (BasicSR calculate_ssim)",
        "output": "clip to [0, 1], round to uint8",
        "precision": placement.precision if placement else "float64",
        "backend": placement.backend if placement else None,
        "tile": tile,
    }
    return EvalReport(
        kind="sr",
        dataset=str(dataset),
        scores=tuple(scores),
        protocol=MappingProxyType(protocol),
        model=MappingProxyType(model_info),
        seed=None,
        placement=MappingProxyType(placement.as_dict()) if placement else None,
        notes=(layout.note,),
    )
