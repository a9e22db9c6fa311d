"""`stylize`, `upscale`, `denoise`: parse flags, call engine.run.process, print the outcome."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from scenestyle._text import encodable_tree
from scenestyle.cli import _console
from scenestyle.cli._console import handle_errors, shown
from scenestyle.cli._download import download_callback
from scenestyle.cli._options import Arch, Device, Json, Offline, StyleWeights, Weights, parse_tile
from scenestyle.errors import UsageError
from scenestyle.weights import load_defaults

Inputs = Annotated[list[str], typer.Argument(help="Image files, folders or globs.", show_default=False)]
Out = Annotated[
    Path | None,
    typer.Option("-o", "--output", help="Output file (one input) or folder (mirrors the input tree). Default: beside each input."),
]
Precision = Annotated[str, typer.Option("--precision", help="auto | fp32 | bf16 | fp16 (fp16 is refused on CPU).")]
Backend = Annotated[
    str,
    typer.Option(
        "--backend",
        help="auto (OpenVINO on the CPU where it is installed and runs the model, else torch) | torch | openvino. CUDA runs torch.",
    ),
]
Tile = Annotated[str, typer.Option("--tile", help="auto (from free memory) | 0 (whole image) | N (tile size in input pixels).")]
Batch = Annotated[str, typer.Option("--batch-size", help="Tiles per forward pass: auto (4 on CUDA, 1 on CPU) or N.")]
Recursive = Annotated[bool, typer.Option("-r", "--recursive", help="Descend into subfolders of folder inputs.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Redo outputs that exist (default: skip them, so a run resumes).")]
Format = Annotated[str | None, typer.Option("--format", help="jpeg | png | webp | tiff (default: the input's).")]
Quality = Annotated[int, typer.Option("--quality", min=1, max=100, help="JPEG/WebP quality.")]
MaxPixels = Annotated[int, typer.Option("--max-pixels", min=1, help="Refuse inputs larger than this (decompression-bomb guard).")]
Model = Annotated[str | None, typer.Option("--model", help="Model name from weights.lock.")]
# Shown as --style's default in the help; the name without the lock's "style-" prefix.
DEFAULT_STYLE = (load_defaults().style or "").removeprefix("style-")
Manifest = Annotated[
    Path | None,
    typer.Option(
        "--manifest",
        help=(
            "JSONL manifest to append one line per input to (default: scenestyle-COMMAND.jsonl in the -o folder, "
            "else in the first input's folder)."
        ),
    ),
]
Shard = Annotated[
    str | None,
    typer.Option(
        "--shard",
        help=(
            "I/N: process share I (0 to N-1) of N, balanced by pixels, for N processes started apart (a SLURM array, "
            "xargs); each writes its own manifest part, which a later run without --shard merges. Not under torchrun, "
            "whose ranks share the photos by themselves."
        ),
    ),
]

FORMATS = ("jpeg", "png", "webp", "tiff")


def _batch(value: str) -> int | None:
    if value == "auto":
        return None
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise UsageError(f"--batch-size must be auto or a whole number >= 1, not {value!r}")


def _format(value: str | None) -> str | None:
    if value is None:
        return None
    v = {"jpg": "jpeg", "tif": "tiff"}.get(value.lower(), value.lower())
    if v not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {value!r}")
    return v


def _run(task: str, params: dict) -> None:
    """Map a command's parameters (its ``locals()``) onto RunOptions, run, print, exit."""
    from scenestyle.engine.rank_env import is_quiet_rank, launched_rank
    from scenestyle.engine.run import RunOptions, process  # heavy imports only when running

    kw = dict(params)
    json_out = kw.pop("json_out")
    quiet = is_quiet_rank()  # a torchrun rank other than 0: errors only; rank 0 reports for every rank
    if quiet:
        _console.prefix = f"scenestyle[rank {launched_rank()[0]}]"
    kw["out"] = kw.pop("output")
    if "style" in kw:
        kw["model"] = kw.pop("style")
    opts = RunOptions(
        inputs=tuple(kw.pop("inputs")),
        tile=parse_tile(kw.pop("tile")),
        fmt=_format(kw.pop("fmt")),
        batch_size=_batch(kw.pop("batch_size")),
        **kw,
    )
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=_console.err,
        transient=True,
        disable=json_out or quiet or not _console.err.is_terminal,
    )
    state: dict = {}
    on_download = download_callback(progress, "downloading {}")

    def on_notice(message: str) -> None:
        if not quiet:  # stderr, so --json output stays one JSON document
            _console.err.print(shown(message), soft_wrap=True)

    def on_model(loaded, placement) -> None:
        if not json_out and not quiet:
            _console.err.print(
                f"model {shown(loaded.name or loaded.path)} ({loaded.arch}) on {placement.device}, "
                f"{placement.precision}: {shown(placement.reason)}",
                soft_wrap=True,
            )

    def on_start(job, i, n) -> None:
        if "images" not in state:
            state["images"] = progress.add_task("images", total=n)
        if "tiles" in state:
            progress.remove_task(state.pop("tiles"))
        state["tiles"] = progress.add_task(shown(job.input.name[:40]), total=None)

    def on_tiles(done, total) -> None:
        if "tiles" in state:
            progress.update(state["tiles"], completed=done, total=total)

    def on_done(result) -> None:
        if "images" in state:
            progress.advance(state["images"])
        if result.status == "failed":  # most errors already name the file
            _console.error(result.error if result.input in (result.error or "") else f"{result.input}: {result.error}")

    with progress:
        report = process(
            task,
            opts,
            on_download=on_download,
            on_notice=on_notice,
            on_model=on_model,
            on_start=on_start,
            on_tiles=on_tiles,
            on_done=on_done,
        )
    if quiet:  # its failures were printed as they came and are in rank 0's report; a non-zero exit here
        raise typer.Exit(0)  # would make torchrun stop the ranks still working
    if json_out:
        _console.out.print_json(json.dumps(encodable_tree(report.to_dict()), ensure_ascii=False))
    else:
        _summary(report)
    if getattr(report, "unfinished", None):  # torchrun rank 0: the inputs a rank that stopped early left undone
        _console.error(report.unfinished)
    raise typer.Exit(report.exit_code)


def _summary(report) -> None:
    table = Table(title=f"scenestyle {report.command}", show_lines=False)
    for col in ("input", "output", "status", "seconds"):
        table.add_column(col, overflow="fold")
    for r in report.results:
        colour = {"ok": "green", "skipped": "yellow", "failed": "red"}[r.status]
        note = f" ({shown('; '.join(r.notes))})" if r.notes and r.status == "ok" else ""
        table.add_row(shown(r.input), shown(r.output), f"[{colour}]{r.status}[/]{note}", f"{r.seconds:.2f}")
    _console.out.print(table)
    c = report.to_dict()["counts"]
    _console.out.print(f"{c['ok']} ok, {c['skipped']} skipped, {c['failed']} failed; manifest: {shown(report.manifest)}")


@handle_errors
def stylize(
    inputs: Inputs,
    output: Out = None,
    style: Annotated[
        str | None,
        typer.Option("--style", help=f"Style name from weights.lock (see `scenestyle weights list`); default {DEFAULT_STYLE}."),
    ] = None,
    strength: Annotated[float, typer.Option("--strength", min=0.0, max=1.0, help="Blend of the painting over the photo.")] = 1.0,
    work_size: Annotated[
        int,
        typer.Option(
            "--work-size",
            help=(
                "Paint photos larger than this many pixels at this size (the scale the style was trained at), then bring "
                "the painting back to full size with a guided filter that keeps the photo's edges. 0 = paint at full size."
            ),
        ),
    ] = 1_000_000,
    strokes: Annotated[
        float | None,
        typer.Option(
            "--strokes",
            help=(
                "Brush strokes drawn over the painting along its edges: streak strength in 8-bit levels "
                "(0 = none; default: the style's own, in its model card). Drawn at the working size; "
                "--work-size 0 paints without them."
            ),
        ),
    ] = None,
    weights: StyleWeights = None,
    arch: Arch = None,
    device: Device = "auto",
    precision: Precision = "auto",
    backend: Backend = "auto",
    tile: Tile = "auto",
    batch_size: Batch = "auto",
    recursive: Recursive = False,
    overwrite: Overwrite = False,
    offline: Offline = False,
    json_out: Json = False,
    fmt: Format = None,
    quality: Quality = 95,
    max_pixels: MaxPixels = 200_000_000,
    manifest: Manifest = None,
    shard: Shard = None,
) -> None:
    """Turn photos into paintings in a style."""
    _run("style", locals())


@handle_errors
def upscale(
    inputs: Inputs,
    output: Out = None,
    scale: Annotated[int | None, typer.Option("--scale", help="2 or 4: picks the default model and checks --weights.")] = None,
    model: Model = None,
    outscale: Annotated[float | None, typer.Option("--outscale", help="Final size factor (default: the model's scale).")] = None,
    denoise: Annotated[
        float | None, typer.Option("--denoise", min=0.0, max=1.0, help="realesr-general-x4v3 only: 0 keeps noise, 1 removes it.")
    ] = None,
    weights: Weights = None,
    arch: Arch = None,
    device: Device = "auto",
    precision: Precision = "auto",
    backend: Backend = "auto",
    tile: Tile = "auto",
    batch_size: Batch = "auto",
    recursive: Recursive = False,
    overwrite: Overwrite = False,
    offline: Offline = False,
    json_out: Json = False,
    fmt: Format = None,
    quality: Quality = 95,
    max_pixels: MaxPixels = 200_000_000,
    manifest: Manifest = None,
    shard: Shard = None,
) -> None:
    """Upscale photos x2 or x4."""
    if scale is not None and scale not in (2, 4):
        raise UsageError(f"--scale must be 2 or 4, not {scale}")
    _run("upscale", locals())


@handle_errors
def denoise(
    inputs: Inputs,
    output: Out = None,
    model: Model = None,
    strength: Annotated[
        float,
        typer.Option(
            "--strength",
            min=0.0,
            max=1.0,
            help=(
                "Models with a noise-level input (FFDNet): share of the noise estimated in each photo to remove "
                "(1 removes it, lower keeps more grain). Other models: blend of the denoised result over the photo."
            ),
        ),
    ] = 1.0,
    noise_level: Annotated[
        float | None,
        typer.Option(
            "--noise-level",
            min=0.0,
            max=75.0,
            help=(
                "FFDNet only: remove noise of this standard deviation in 8-bit units (0-75, e.g. 15) from every "
                "photo instead of estimating it."
            ),
        ),
    ] = None,
    weights: Weights = None,
    arch: Arch = None,
    device: Device = "auto",
    precision: Precision = "auto",
    backend: Backend = "auto",
    tile: Tile = "auto",
    batch_size: Batch = "auto",
    recursive: Recursive = False,
    overwrite: Overwrite = False,
    offline: Offline = False,
    json_out: Json = False,
    fmt: Format = None,
    quality: Quality = 95,
    max_pixels: MaxPixels = 200_000_000,
    manifest: Manifest = None,
    shard: Shard = None,
) -> None:
    """Remove noise from photos."""
    _run("denoise", locals())
