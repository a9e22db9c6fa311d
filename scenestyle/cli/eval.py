"""`scenestyle eval sr | denoise | pair | fid | style`: parse flags, call scenestyle.evaluate, print tables or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from scenestyle.cli import _console
from scenestyle.cli._console import handle_errors, shown
from scenestyle.cli._options import Arch, Device, Json, Offline, StyleWeights, Weights, parse_tile
from scenestyle.cli.eval_tables import print_report, print_style
from scenestyle.errors import UsageError
from scenestyle.evaluate.critic_config import CriticConfig
from scenestyle.weights import load_defaults

eval_app = typer.Typer(
    help="Score models with PSNR/SSIM (SR, denoising, folder pairs), FID/KID/IS and style measures (SWD, critic, structure).",
    no_args_is_help=True,
)

Precision = Annotated[str, typer.Option("--precision", help="fp32 (default, comparable figures) | auto | bf16 | fp16")]
Backend = Annotated[
    str, typer.Option("--backend", help="auto (OpenVINO on the CPU where it runs the model, else torch) | torch | openvino")
]
Tile = Annotated[str, typer.Option("--tile", help="0 (whole image, default) | auto | N (tile size in input pixels).")]
Sheet = Annotated[
    Path | None,
    typer.Option("--sheet", help="Write a contact sheet (PATH.png + PATH.html): best and worst cases, crops where the error is largest."),
]


def _collector(sheet: Path | None):
    if sheet is None:
        return None, {}
    panels: dict = {}
    return (lambda name, group, p: panels.__setitem__((name, group), p)), panels


def _write_sheet(sheet: Path | None, report, panels: dict, json_out: bool, writer=None) -> None:
    """Write a contact sheet with ``writer`` (default: the PSNR/SSIM sheet); an OSError is exit 4."""
    if sheet is None:
        return
    from scenestyle.errors import OutputError
    from scenestyle.evaluate.report import write_sheet

    try:
        page = (writer or write_sheet)(sheet, report, panels)
    except OSError as exc:
        raise OutputError(f"cannot write the contact sheet {sheet}: {exc.strerror or exc}") from None
    if not json_out:
        _console.out.print(f"contact sheet: {shown(page)} and {shown(page.with_suffix('.png'))}", soft_wrap=True)


def _spec(model: str | None, weights: str | None, default: str | None) -> str:
    spec = weights or model or default
    if spec is None:
        raise UsageError("name a model: --model NAME (a weights.lock name, or bicubic) or --weights FILE")
    return spec


def _emit(report, json_out: bool, title: str) -> None:
    if json_out:
        _console.out.print_json(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        print_report(report, title)


@eval_app.command("sr")
@handle_errors
def sr(
    dataset: Annotated[Path, typer.Option("--dataset", help="HR image folder, or a Set5-style folder with HR/ and LR_bicubic/X{scale}/.")],
    scale: Annotated[int, typer.Option("--scale", help="Upscaling factor.")] = 4,
    model: Annotated[
        str | None, typer.Option("--model", help="weights.lock name, or `bicubic` (built-in MATLAB bicubic baseline).")
    ] = None,
    weights: Weights = None,
    arch: Arch = None,
    lr_dir: Annotated[
        Path | None,
        typer.Option("--lr-dir", help="Folder of LR images (default: the dataset's LR_bicubic/X{scale}, else MATLAB bicubic of HR)."),
    ] = None,
    crop_border: Annotated[int | None, typer.Option("--crop-border", help="Pixels ignored at each border (default: the scale).")] = None,
    y: Annotated[bool, typer.Option("--y/--rgb", help="Score the BT.601 Y channel (default) or RGB.")] = True,
    device: Device = "auto",
    precision: Precision = "fp32",
    backend: Backend = "auto",
    tile: Tile = "0",
    offline: Offline = False,
    json_out: Json = False,
    sheet: Sheet = None,
) -> None:
    """PSNR/SSIM of a super-resolution model on an HR dataset (bicubic-degraded LR)."""
    from scenestyle.evaluate.sr import evaluate_sr

    keep, panels = _collector(sheet)
    report = evaluate_sr(
        dataset,
        scale=scale,
        model=_spec(model, weights, None),
        arch=arch,
        lr_dir=lr_dir,
        crop_border=crop_border,
        test_y=y,
        device=device,
        precision=precision,
        backend=backend,
        tile=parse_tile(tile),
        offline=offline,
        on_output=keep,
    )
    _emit(report, json_out, f"eval sr x{scale}: {dataset}")
    _write_sheet(sheet, report, panels, json_out)


def _sigmas(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise UsageError(f"--sigma must be comma-separated numbers such as 15,25,50, not {text!r}") from None
    if not values:
        raise UsageError("--sigma needs at least one value, e.g. 25")
    return values


@eval_app.command("denoise")
@handle_errors
def denoise(
    dataset: Annotated[Path, typer.Option("--dataset", help="Folder of clean images (e.g. Set12, CBSD68).")],
    model: Annotated[str | None, typer.Option("--model", help=f"weights.lock name (default {load_defaults().denoise}).")] = None,
    weights: Weights = None,
    arch: Arch = None,
    sigma: Annotated[str, typer.Option("--sigma", help="Noise levels on the 0-255 scale, comma-separated.")] = "25",
    sigma_source: Annotated[
        str | None,
        typer.Option(
            "--sigma-source",
            help=(
                "Noise-level models (FFDNet) only: the σ the model is given, `true` (the test's own σ, KAIR protocol; "
                "default) or `estimate` (the blind estimate of each noisy image, as `denoise` does)."
            ),
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="np.random.seed before the first image of each sigma.")] = 0,
    gray: Annotated[bool, typer.Option("--gray", help="Convert images to grayscale first.")] = False,
    device: Device = "auto",
    precision: Precision = "fp32",
    backend: Backend = "auto",
    tile: Tile = "0",
    offline: Offline = False,
    json_out: Json = False,
    sheet: Sheet = None,
) -> None:
    """PSNR/SSIM of a denoiser on synthetic Gaussian noise (KAIR protocol)."""
    from scenestyle.evaluate.denoise import evaluate_denoise

    keep, panels = _collector(sheet)
    report = evaluate_denoise(
        dataset,
        model=_spec(model, weights, load_defaults().denoise),
        arch=arch,
        sigmas=_sigmas(sigma),
        sigma_source=sigma_source,
        seed=seed,
        gray=gray,
        device=device,
        precision=precision,
        backend=backend,
        tile=parse_tile(tile),
        offline=offline,
        on_output=keep,
    )
    _emit(report, json_out, f"eval denoise: {dataset}")
    _write_sheet(sheet, report, panels, json_out)


@eval_app.command("pair")
@handle_errors
def pair(
    dir_a: Annotated[Path, typer.Argument(help="Folder of results.")],
    dir_b: Annotated[Path, typer.Argument(help="Folder of references (same file names).")],
    y: Annotated[bool, typer.Option("--y/--rgb", help="Score the BT.601 Y channel, or RGB (default).")] = False,
    crop_border: Annotated[int, typer.Option("--crop-border", help="Pixels ignored at each border.")] = 0,
    lpips_weights: Annotated[
        Path | None, typer.Option("--lpips-weights", help="Full state dict of lpips.LPIPS (alex or vgg) to add LPIPS; never downloaded.")
    ] = None,
    json_out: Json = False,
) -> None:
    """PSNR/SSIM (and LPIPS with --lpips-weights) between files of the same name in two folders."""
    from scenestyle.evaluate.pair import evaluate_pair

    report = evaluate_pair(dir_a, dir_b, test_y=y, crop_border=crop_border, lpips_weights=lpips_weights)
    _emit(report, json_out, f"eval pair: {dir_a} vs {dir_b}")


@eval_app.command("fid")
@handle_errors
def fid(
    dir_a: Annotated[Path, typer.Argument(help="First image folder.")],
    dir_b: Annotated[Path, typer.Argument(help="Second image folder.")],
    with_kid: Annotated[bool, typer.Option("--kid", help="Also compute KID (subsets of min(1000, N) images).")] = False,
    with_is: Annotated[bool, typer.Option("--is", help="Also compute the Inception Score of each folder.")] = False,
    mode: Annotated[
        str, typer.Option("--mode", help="clean (PIL bicubic to 299, clean-fid) | legacy (torch bilinear, pytorch-fid).")
    ] = "clean",
    weights: Annotated[str, typer.Option("--weights", help="FID Inception weights: lock name or file.")] = "inception-fid",
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute folder features instead of reading the cache.")] = False,
    device: Annotated[str, typer.Option("--device", help="cpu | cuda | cuda:N")] = "cpu",
    offline: Offline = False,
    json_out: Json = False,
) -> None:
    """FID (and KID, IS) between two image folders with the pytorch-fid Inception."""
    from scenestyle.evaluate.fid import evaluate_fid

    r = evaluate_fid(
        dir_a, dir_b, mode=mode, with_kid=with_kid, with_is=with_is, weights=weights, offline=offline, use_cache=not no_cache, device=device
    )
    if json_out:
        _console.out.print_json(json.dumps(r.to_dict(), ensure_ascii=False))
        return
    _console.out.print(f"FID {r.fid:.3f}  ({r.count_a} vs {r.count_b} images, mode {r.mode})")
    if r.kid:
        _console.out.print(f"KID {r.kid[0]:.5f} ± {r.kid[1]:.5f}  (subsets of {r.kid_subset_size})")
    if r.inception_score:
        for k, (m, s) in r.inception_score.items():
            _console.out.print(f"IS {'A' if k == 'a' else 'B'} {m:.3f} ± {s:.3f}")
    _console.out.print(f"Inception sha256 {r.model_sha256}")


def _style_progress(json_out: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_console.err,
        transient=True,
        disable=json_out or not _console.err.is_terminal,
    )
    tasks: dict[str, int] = {}

    def step(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done, total=total)

    return progress, step


@eval_app.command("style")
@handle_errors
def style(
    photos: Annotated[Path, typer.Option("--photos", help="Folder of photos to stylize (never trained on).")],
    paintings: Annotated[Path, typer.Option("--paintings", help="Folder of target paintings.")],
    style_name: Annotated[str | None, typer.Option("--style", help="Style model to run (as in `scenestyle stylize --style`).")] = None,
    weights: StyleWeights = None,
    arch: Arch = None,
    outputs: Annotated[
        Path | None, typer.Option("--outputs", help="Folder of already stylized photos, matched to photos by stem ({stem}*).")
    ] = None,
    baselines_only: Annotated[
        bool, typer.Option("--baselines-only", help="Score only the untouched photos and the colour-transfer baseline.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seeds crops, descriptors, projections and the critics.")] = 0,
    max_side: Annotated[int, typer.Option("--max-side", help="Downscale every image so its long side is at most this (0: keep).")] = 512,
    critic_steps: Annotated[int, typer.Option("--critic-steps", help="Adam steps per critic and fold.")] = CriticConfig.steps,
    crop: Annotated[int, typer.Option("--crop", help="Critic crop size in pixels (after --max-side).")] = CriticConfig.crop,
    critic_folds: Annotated[int, typer.Option("--critic-folds", help="Cross-fitting folds per critic (>= 2).")] = CriticConfig.folds,
    match_sharpness: Annotated[
        bool,
        typer.Option(
            "--match-sharpness/--no-match-sharpness",
            help="Blur the sharper side (paintings, or the photos and every row made from them) to the other's median sharpness "
            "before the critics, so they cannot tell paintings by sharpness alone.",
        ),
    ] = True,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Train every critic afresh instead of reusing ones trained on the same inputs.")
    ] = False,
    device: Device = "auto",
    precision: Precision = "fp32",
    backend: Backend = "auto",
    tile: Tile = "0",
    offline: Offline = False,
    json_out: Json = False,
    sheet: Sheet = None,
) -> None:
    """Style measures (SWD per pyramid level, critic shares, structure SSIM) beside three baselines."""
    from dataclasses import replace

    from scenestyle.evaluate.style import evaluate_style
    from scenestyle.evaluate.style_inputs import style_spec

    spec = style_spec(style_name, weights)
    given = [
        n for n, v in (("--style/--weights", spec), ("--outputs", outputs), ("--baselines-only", baselines_only or None)) if v is not None
    ]
    if len(given) != 1:
        raise UsageError(
            "name what to score: --style NAME, --weights FILE, --outputs DIR or --baselines-only"
            + (f" (one of them, not {' and '.join(given)})" if given else "")
        )
    if critic_steps < 1 or crop < 8:
        raise UsageError(f"--critic-steps must be >= 1 and --crop >= 8 (got {critic_steps} and {crop})")
    panels: dict = {}
    progress, step = _style_progress(json_out)
    with progress:
        report = evaluate_style(
            photos,
            paintings,
            outputs_dir=outputs,
            model_spec=spec,
            arch=arch,
            seed=seed,
            max_side=max_side,
            device=device,
            precision=precision,
            backend=backend,
            tile=parse_tile(tile),
            offline=offline,
            critic=replace(CriticConfig(), steps=critic_steps, crop=crop, folds=critic_folds, match_sharpness=match_sharpness),
            use_cache=not no_cache,
            on_progress=step,
            on_panels=panels.__setitem__ if sheet else None,
        )
    if json_out:
        _console.out.print_json(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        print_style(report)
    if sheet is not None:
        from scenestyle.evaluate.style_sheet import write_style_sheet

        _write_sheet(sheet, report, panels, json_out, writer=write_style_sheet)
