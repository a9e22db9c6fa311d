"""One engine entry point for stylize / upscale / denoise over files and folders.

Takes plain typed options, returns a BatchReport, never prints or exits: the CLI does that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from scenestyle.engine.batch import BatchReport, run_jobs
from scenestyle.engine.device import choose_placement, prepare
from scenestyle.engine.manifest import JobResult, check_manifest, default_manifest
from scenestyle.engine.plan import Job, check_writable, plan_jobs
from scenestyle.engine.ranks import Sharding
from scenestyle.engine.streamed import Streamed, write_streamed
from scenestyle.engine.strokes import MAX_AMOUNT, Strokes
from scenestyle.engine.tasks import Processor
from scenestyle.errors import UsageError, WeightsUnavailable
from scenestyle.imaging import DEFAULT_MAX_PIXELS, Picture, read_picture, remove_stale_temps, write_picture
from scenestyle.loading import LoadedModel, load_model
from scenestyle.nn.meta import ModelMeta
from scenestyle.weights import env_offline, load_defaults, load_lock

# Tiles per forward pass under --batch-size auto on CUDA (on CPU batching buys no speed, only memory).
CUDA_TILE_BATCH = 4
# Command names per task, for reports and manifest file names.
COMMANDS = {"style": "stylize", "upscale": "upscale", "denoise": "denoise"}
# Largest photo (pixels) batched with others of its size; bigger ones go alone, one decoded ahead.
GROUP_MAX_PIXELS = 4_000_000
# stylize's default working size (pixels): the scale the shipped styles were trained at (configs/style-*.toml)
WORK_PIXELS = 1_000_000
# --noise-level range (8-bit units): FFDNet's training range.
MAX_NOISE_LEVEL = 75.0
# The stroke half-length (pixels at the working size) for a model whose weights.lock entry sets
# none (a --weights file of one's own)
STROKE_LENGTH = 6


@dataclass(frozen=True)
class RunOptions:
    """Everything a stylize/upscale/denoise run needs, already parsed."""

    inputs: tuple[str, ...]  # files, folders or globs
    out: Path | None = None  # output file or folder; None = beside each input
    model: str | None = None  # lock name (style-NAME for stylize)
    weights: str | None = None  # path or hf://REPO/FILE[@REV]; overrides model
    arch: str | None = None  # architecture override for --weights
    device: str = "auto"  # auto | cpu | cuda[:N]
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    backend: str = "auto"  # auto | torch | openvino (engine/device.py: choose_placement)
    tile: int | None = None  # None = auto, 0 = whole image, N = tile size in input pixels
    batch_size: int | None = None  # tiles per forward pass; None = auto (CUDA 4, CPU 1)
    recursive: bool = False  # descend into subfolders of folder inputs
    overwrite: bool = False  # redo outputs that already exist
    offline: bool = False  # never download weights
    fmt: str | None = None  # jpeg | png | webp | tiff; None = the input's format
    quality: int = 95  # JPEG/WebP quality
    max_pixels: int = DEFAULT_MAX_PIXELS  # decompression-bomb limit per input
    manifest: Path | None = None  # JSONL manifest path; None = scenestyle-COMMAND.jsonl in the -o folder, else the first input's
    strength: float = 1.0  # stylize/denoise blend of result over input; noise-level denoisers: σ = strength × estimate
    noise_level: float | None = None  # denoise with a noise-level model: σ in 8-bit units (0-75); None = estimate
    scale: int | None = None  # upscale: required model scale (2 or 4)
    outscale: float | None = None  # upscale: final size factor
    denoise: float | None = None  # upscale with general-x4v3: Real-ESRGAN denoise strength
    suffix: str | None = None  # output name suffix; None = the task's default
    work_size: int = WORK_PIXELS  # stylize: paint photos larger than this many pixels at this size, then guide up; 0 = full size
    strokes: float | None = None  # stylize: brush-streak amount in 8-bit levels (0 = none); None = the style's own (weights.lock)
    shard: str | None = None  # "I/N": this process's share of the photos (engine/ranks.py; torchrun needs none)


def _model_spec(task: str, opts: RunOptions) -> str:
    """The weights spec to load: --weights, else the named model, else the lock's default for the task."""
    if opts.weights:
        return opts.weights
    lock, defaults = load_lock(), load_defaults()
    if task == "style":
        name = opts.model or defaults.require("style").removeprefix("style-")
        key = name if name.startswith("style-") else f"style-{name}"
        if key not in lock:
            styles = sorted(k.removeprefix("style-") for k, e in lock.items() if e.task == "style")
            have = ", ".join(styles) if styles else "none ship in this version"
            raise UsageError(f"no model for style {name!r} (available: {have}); pass --weights FILE with a CycleGAN/compact generator")
        return key
    if task == "upscale":
        if opts.model:
            return opts.model
        scale = opts.scale or 4
        if scale not in defaults.upscale:
            raise UsageError(f"--scale must be {' or '.join(map(str, sorted(defaults.upscale)))}, not {scale}")
        return defaults.upscale[scale]
    return opts.model or defaults.require("denoise")


def _group_key(pic) -> tuple | None:
    """Same-size photos share forward passes; big ones are not held back for company."""
    h, w, c = pic.pixels.shape
    return (h, w, c) if h * w <= GROUP_MAX_PIXELS else None


def noise_level_models() -> str:
    """The lock entries and architectures whose models take a noise level, for error messages."""
    from scenestyle.nn.meta import TABLE, describe

    archs = sorted(n for n in TABLE if describe(n).takes_sigma)
    names = [
        name
        for name, entry in load_lock().items()
        if entry.task == "denoise" and entry.arch in TABLE and describe(entry.arch, entry.kwargs).takes_sigma
    ]
    return ", ".join(names + [f"--weights of an {a}" for a in archs])


def _interpolate(a: LoadedModel, b: LoadedModel, weight_a: float) -> None:
    """Real-ESRGAN's deep network interpolation: a ← weight_a·a + (1 − weight_a)·b, in place."""
    sb = b.module.state_dict()
    with torch.no_grad():
        for k, v in a.module.state_dict().items():
            v.mul_(weight_a).add_(sb[k], alpha=1.0 - weight_a)


def style_strokes(meta: ModelMeta, amount: float | None) -> Strokes | None:
    """The brush strokes to draw: ``amount`` (--strokes) over the style's own from weights.lock; the
    style's chroma cleaning and edges stay with ``--strokes 0``."""
    own = meta.strokes or Strokes(0.0, STROKE_LENGTH)
    strokes = own if amount is None else replace(own, amount=amount)
    return strokes if strokes.acts else None


def _suffix(task: str, opts: RunOptions, loaded: LoadedModel, factor: float) -> str:
    if opts.suffix:
        return opts.suffix
    if task == "style":
        return loaded.name.removeprefix("style-") if loaded.name in load_lock() else loaded.path.stem
    if task == "upscale":
        return f"x{factor:g}"
    return "denoised"


def process(
    task: str,
    opts: RunOptions,
    *,
    on_download: Callable[[str, int, int | None], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
    on_model: Callable[[LoadedModel, object], None] | None = None,
    on_start: Callable[[Job, int, int], None] | None = None,
    on_tiles: Callable[[int, int], None] | None = None,
    on_done: Callable[[JobResult], None] | None = None,
) -> BatchReport:
    """Run one task over every input; per-file failures are in the report, not raised."""
    if task not in ("style", "upscale", "denoise"):
        raise UsageError(f"unknown task {task!r}; choose style, upscale or denoise")
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")  # tells this run's manifest lines from earlier runs'
    if not 0.0 <= opts.strength <= 1.0:
        raise UsageError(f"--strength must be between 0 and 1, not {opts.strength}")
    if opts.denoise is not None and not 0.0 <= opts.denoise <= 1.0:
        raise UsageError(f"--denoise must be between 0 and 1, not {opts.denoise}")
    if opts.work_size < 0 or 0 < opts.work_size < 65_536:
        raise UsageError(f"--work-size must be 0 (full size) or at least 65536 pixels, not {opts.work_size}")
    if opts.work_size != WORK_PIXELS and task != "style":
        raise UsageError(f"--work-size is a stylize option, not a {COMMANDS[task]} one")
    if opts.strokes is not None and task != "style":
        raise UsageError(f"--strokes is a stylize option, not a {COMMANDS[task]} one")
    if opts.strokes is not None and not 0 <= opts.strokes <= MAX_AMOUNT:
        raise UsageError(f"--strokes must be between 0 (none) and {MAX_AMOUNT:g} (8-bit levels), not {opts.strokes:g}")
    if opts.outscale is not None and not 0 < opts.outscale <= 16:
        raise UsageError(f"--outscale must be in (0, 16], not {opts.outscale}")
    if opts.noise_level is not None:
        if task != "denoise":
            raise UsageError(f"--noise-level is a denoise option, not a {COMMANDS[task]} one")
        if not 0.0 <= opts.noise_level <= MAX_NOISE_LEVEL:
            raise UsageError(f"--noise-level must be between 0 and {MAX_NOISE_LEVEL:g} (8-bit units), not {opts.noise_level:g}")
        if opts.strength != 1.0:
            raise UsageError("--strength scales the estimated noise level; give --noise-level or --strength, not both")
    sharding = Sharding.start(opts.shard)  # many processes (engine/ranks.py): torchrun's rank or --shard I/N

    # Plan and check outputs and the manifest before the (possibly slow) model load. The output
    # names need the model (a style's name, an upscale factor), so every input found is checked.
    probe_jobs = plan_jobs(opts.inputs, out=opts.out, suffix="probe", fmt=opts.fmt, recursive=opts.recursive, leave_out_outputs=False)
    if opts.manifest is not None:  # before any output folder is created for a run that cannot start
        check_manifest(opts.manifest, probe_jobs)
    for folder in sorted({j.output.parent for j in probe_jobs}):
        check_writable(folder)
    manifest = opts.manifest or default_manifest(opts.inputs, opts.out, COMMANDS[task])
    if opts.manifest is None:
        check_manifest(manifest, probe_jobs, given=False)

    spec = _model_spec(task, opts)
    try:
        loaded = load_model(spec, arch=opts.arch, task=task, offline=opts.offline, progress=on_download)
    except WeightsUnavailable:
        # A default that is not here and cannot be fetched gives way to its bundled fallback; a model
        # the user named does not: they asked for exactly that one.
        entry = load_lock().get(spec)
        if opts.model or opts.weights or entry is None or entry.fallback is None:
            raise
        if on_notice:
            why = "downloads are off" if opts.offline or env_offline() else "it cannot be downloaded now"
            on_notice(f"{spec} is not in the Hugging Face cache and {why}: using the bundled {entry.fallback} instead")
        spec = entry.fallback
        loaded = load_model(spec, arch=opts.arch, task=task, offline=True, progress=on_download)
    meta = loaded.meta
    if task == "upscale":
        if opts.scale is not None and meta.scale != opts.scale:
            raise UsageError(f"--scale {opts.scale} but model {loaded.name or spec} upscales x{meta.scale}")
        if opts.denoise is not None:
            entry = load_lock().get(loaded.name)
            twin = entry.wdn if entry is not None else None
            if twin is None:
                paired = sorted(n for n, e in load_lock().items() if e.wdn)
                raise UsageError(f"--denoise works with {', '.join(paired)} only, not {loaded.name or spec}")
            _interpolate(loaded, load_model(twin, task=task, offline=opts.offline, progress=on_download), opts.denoise)
    if opts.noise_level is not None and not meta.takes_sigma:
        raise UsageError(
            f"--noise-level needs a model that takes a noise level ({noise_level_models()}); "
            f"{loaded.name or spec} ({loaded.arch}) does not: use --strength to blend its result"
        )
    placement = choose_placement(sharding.device(opts.device), opts.precision, model=loaded.module, meta=meta, backend=opts.backend)
    model = prepare(loaded.module, meta, placement)
    if on_model:
        on_model(loaded, placement)

    factor = opts.outscale if opts.outscale is not None else float(meta.scale)
    jobs = plan_jobs(opts.inputs, out=opts.out, suffix=_suffix(task, opts, loaded, factor), fmt=opts.fmt, recursive=opts.recursive)
    jobs, manifest = sharding.take(jobs, manifest, overwrite=opts.overwrite)  # this process's share, its manifest part
    # A run killed by SIGKILL leaves its temp file beside the output it was writing: ours to remove.
    by_folder: dict[Path, set[str]] = {}
    for j in jobs:
        by_folder.setdefault(j.output.parent, set()).add(j.output.name)
    for folder, names in by_folder.items():
        remove_stale_temps(folder, names)
    batch_size = opts.batch_size or (CUDA_TILE_BATCH if placement.device.type == "cuda" else 1)
    proc = Processor(
        model=model,
        meta=meta,
        placement=placement,
        task=task,
        tile=opts.tile,
        batch_size=batch_size,
        strength=opts.strength if task != "upscale" else 1.0,
        noise_level=opts.noise_level / 255 if opts.noise_level is not None else None,
        outscale=opts.outscale,
        progress=on_tiles,
        work_pixels=opts.work_size if task == "style" else 0,
        strokes=style_strokes(meta, opts.strokes) if task == "style" else None,
    )
    parameters = {
        "device": str(placement.device),
        "backend": placement.backend,
        "precision": placement.precision,
        "tile": opts.tile,
        "batch_size": batch_size,
        "strength": opts.strength,
        "outscale": factor if task == "upscale" else None,
        "denoise": opts.denoise,
        "noise_level": opts.noise_level,
        "format": opts.fmt,
        "quality": opts.quality,
        "work_size": opts.work_size if task == "style" else None,
        "strokes": proc.strokes.amount if proc.draws_strokes else None,
    }
    model_info = {
        "name": loaded.name if loaded.name in load_lock() else None,
        "arch": loaded.arch,
        "sha256": loaded.sha256,
        "path": str(loaded.path),
    }
    results = sharding.run(
        run_jobs,
        jobs,
        load=lambda p: proc.annotate(read_picture(p, max_pixels=opts.max_pixels, samples=proc.reads_samples)),  # + its σ, if any
        compute=proc,
        compute_many=proc.many,
        group=batch_size,
        group_key=_group_key,
        save=lambda out, path: save(path, out, opts.fmt, opts.quality),
        overwrite=opts.overwrite,
        manifest=manifest,
        context={"command": COMMANDS[task], "started": started, "model": model_info, "parameters": parameters},
        on_start=(lambda job, i: on_start(job, i, len(jobs))) if on_start else None,
        on_done=on_done,
    )
    return sharding.finish(
        BatchReport(command=COMMANDS[task], model=model_info, parameters=parameters, results=results, manifest=str(manifest))
    )  # rank 0: over every rank


def save(path: Path, result: Picture | Streamed, format: str | None, quality: int) -> None:
    """Write one result: a Picture whole, a ``Streamed`` one band by band while it is computed."""
    if isinstance(result, Streamed):
        write_streamed(path, result, format=format, quality=quality)
    else:
        write_picture(path, result, format=format, quality=quality)
