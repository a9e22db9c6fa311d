"""PSNR/SSIM between two folders of already-made images, matched by file name."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from scenestyle.errors import UsageError
from scenestyle.evaluate._common import read_u8
from scenestyle.evaluate.report import EvalReport, ImageScore
from scenestyle.image_files import list_images
from scenestyle.metrics.psnr_ssim import psnr, ssim


def _lpips_of(net, x, y) -> float:
    import torch

    def t(a):
        return torch.from_numpy(a.astype("float32") / 127.5 - 1.0).permute(2, 0, 1)[None]

    with torch.inference_mode():
        return float(net(t(x), t(y))[0])


def evaluate_pair(dir_a: Path, dir_b: Path, *, test_y: bool = False, crop_border: int = 0, lpips_weights: Path | None = None) -> EvalReport:
    """Score every file of ``dir_a`` against the file of the same name in ``dir_b`` (RGB, or Y with ``test_y``).

    ``lpips_weights``: a full ``lpips`` state dict file; LPIPS v0.1 is then added per image (RGB, after the crop).
    """
    a = {p.name: p for p in list_images(Path(dir_a), "DIR_A")}
    b = {p.name: p for p in list_images(Path(dir_b), "DIR_B")}
    common = sorted(a.keys() & b.keys())
    if not common:
        raise UsageError(f"{dir_a} and {dir_b} share no file names (e.g. {next(iter(a))} vs {next(iter(b))})")
    if crop_border < 0:
        raise UsageError(f"--crop-border must be >= 0, not {crop_border}")
    net = lpips_sha = None
    if lpips_weights is not None:
        from scenestyle.metrics.lpips import load_lpips

        net, lpips_sha = load_lpips(Path(lpips_weights))
    scores = []
    for name in common:
        x, y = read_u8(a[name], "rgb"), read_u8(b[name], "rgb")
        if x.shape != y.shape:
            raise UsageError(f"{name}: {x.shape[1]}×{x.shape[0]} in {dir_a} but {y.shape[1]}×{y.shape[0]} in {dir_b}")
        try:
            score = ImageScore(name, psnr(x, y, crop_border, test_y), ssim(x, y, crop_border, test_y))
        except ValueError as exc:
            raise UsageError(f"{name}: {exc}") from None
        if net is not None:
            c = slice(crop_border, x.shape[0] - crop_border), slice(crop_border, x.shape[1] - crop_border)
            score = replace(score, lpips=_lpips_of(net, x[c], y[c]))
        scores.append(score)
    notes = []
    only = sorted(a.keys() ^ b.keys())
    if only:
        notes.append(f"{len(only)} file(s) in only one folder were skipped (e.g. {only[0]})")
    protocol = {
        "channel": "Y (ITU-R BT.601)" if test_y else "RGB",
        "crop_border": crop_border,
        "metric": "BasicSR calculate_psnr / calculate_ssim on uint8",
    }
    if net is not None:
        protocol["lpips"] = f"LPIPS v0.1 {net.net_type}, RGB in [-1, 1], whole image; weights {Path(lpips_weights).name} sha256 {lpips_sha}"
    else:
        from scenestyle.metrics.lpips import HOW_TO

        notes.append(f"LPIPS not computed: {HOW_TO}")
    return EvalReport(
        kind="pair", dataset=f"{dir_a} vs {dir_b}", scores=tuple(scores), protocol=MappingProxyType(protocol), notes=tuple(notes)
    )
