"""`scenestyle train cyclegan | srgan | denoise` and `scenestyle train export`."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from scenestyle.cli import _console
from scenestyle.cli._console import handle_errors
from scenestyle.cli._options import Device, Json
from scenestyle.errors import UsageError

train_app = typer.Typer(help="Train style, super-resolution and denoise models and export them.", no_args_is_help=True)

# options every trainer shares
Config = Annotated[Path | None, typer.Option("--config", help="TOML config (see configs/*.toml).")]
Set = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="Override one config key: section.key=value (repeatable); with --resume only train.steps and the other cadence keys."
    ),
]
Run = Annotated[
    Path | None, typer.Option("--run", "--run-dir", help="Run folder (default: runs/TRAINER-DATE-TIME); --run-dir under torchrun.")
]
Resume = Annotated[Path | None, typer.Option("--resume", help="Continue this run folder from its newest checkpoint.")]
MaxSteps = Annotated[int | None, typer.Option("--max-steps", min=1, help="Stop (with a checkpoint) once this step is reached.")]
TimeLimit = Annotated[float | None, typer.Option("--time-limit", min=0.0, help="Stop cleanly with a checkpoint after this many seconds.")]


def _train(
    kind: str,
    folders: dict[str, Path | None],
    config: Path | None,
    set_: list[str] | None,
    run: Path | None,
    resume: Path | None,
    max_steps: int | None,
    time_limit: float | None,
    device: str,
    json_out: bool,
) -> None:
    """Resolve the config (``folders``: flag -> (config key, path)), run trainer ``kind``, report, exit."""
    overrides = list(set_ or [])
    given = {flag: path for flag, (_, path) in folders.items() if path is not None}
    if resume is not None:
        if config is not None or given or run is not None:
            drop = ", ".join(["--config", *folders, "--run"])
            raise UsageError(f"--resume continues a run with its saved config.toml; drop {drop}")
        cfg = None
    else:
        overrides += [f"{key}={path}" for key, path in folders.values() if path is not None]
        cfg = _load(kind, config, overrides)
        overrides = []
    result = _trainer(kind)(
        cfg,
        run=run,
        resume=resume,
        overrides=overrides,
        max_steps=max_steps,
        time_limit=time_limit,
        device=device,
        console=_console.err,
        show_progress=not json_out and _console.err.is_terminal,
    )
    if result.digests and len(set(result.digests)) > 1:
        _console.error(f"ranks ended with different weights: {', '.join(d[:12] for d in result.digests)}")
    if int(os.environ.get("RANK", "0")) == 0:
        if json_out:
            _console.out.print_json(json.dumps(result.to_dict()))
        else:
            _console.out.print(
                f"{result.stopped} at step {result.step} in {result.seconds:.1f} s; run {result.run}, checkpoint {result.checkpoint}"
            )
    raise typer.Exit(result.exit_code)


def _load(kind: str, config: Path | None, overrides: list[str]):
    from scenestyle.train.config import load_config
    from scenestyle.train.schemas import CycleGANConfig, DenoiseConfig, SRGANConfig

    roots = {"cyclegan": CycleGANConfig, "srgan": SRGANConfig, "denoise": DenoiseConfig}
    return load_config(config, overrides, root=roots[kind])


def _trainer(kind: str) -> Callable:
    if kind == "cyclegan":
        from scenestyle.train.cyclegan import train_cyclegan

        return train_cyclegan
    from scenestyle.train import sr_denoise

    return {"srgan": sr_denoise.train_srgan, "denoise": sr_denoise.train_denoise}[kind]


@train_app.command("cyclegan")
@handle_errors
def cyclegan(
    a: Annotated[Path | None, typer.Option("--a", help="Domain A folder (photos), recursive; overrides data.a.")] = None,
    b: Annotated[Path | None, typer.Option("--b", help="Domain B folder (paintings), recursive; overrides data.b.")] = None,
    config: Config = None,
    set_: Set = None,
    run: Run = None,
    resume: Resume = None,
    max_steps: MaxSteps = None,
    time_limit: TimeLimit = None,
    device: Device = "auto",
    json_out: Json = False,
) -> None:
    """Train an unpaired A->B CycleGAN (also under torchrun for DDP)."""
    _train("cyclegan", {"--a": ("data.a", a), "--b": ("data.b", b)}, config, set_, run, resume, max_steps, time_limit, device, json_out)


@train_app.command("srgan")
@handle_errors
def srgan(
    hr: Annotated[Path | None, typer.Option("--hr", help="Folder of clean HR photos, recursive; overrides data.hr.")] = None,
    config: Config = None,
    set_: Set = None,
    run: Run = None,
    resume: Resume = None,
    max_steps: MaxSteps = None,
    time_limit: TimeLimit = None,
    device: Device = "auto",
    json_out: Json = False,
) -> None:
    """Train a GAN upscaler (RRDBNet / SRVGGNetCompact) on LR made on the fly from HR photos."""
    _train("srgan", {"--hr": ("data.hr", hr)}, config, set_, run, resume, max_steps, time_limit, device, json_out)


@train_app.command("denoise")
@handle_errors
def denoise(
    clean: Annotated[Path | None, typer.Option("--clean", help="Folder of clean photos, recursive; overrides data.hr.")] = None,
    config: Config = None,
    set_: Set = None,
    run: Run = None,
    resume: Resume = None,
    max_steps: MaxSteps = None,
    time_limit: TimeLimit = None,
    device: Device = "auto",
    json_out: Json = False,
) -> None:
    """Train a blind denoiser (FFDNet with a noise-level input by default) on synthetic noise."""
    _train("denoise", {"--clean": ("data.hr", clean)}, config, set_, run, resume, max_steps, time_limit, device, json_out)


@train_app.command("export")
@handle_errors
def export(
    run: Annotated[Path, typer.Argument(help="Run folder (or one checkpoint file).", show_default=False)],
    name: Annotated[str, typer.Option("--name", help="Model name: writes NAME.safetensors.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Folder for NAME.safetensors (default: the run folder).")] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="Store float16 weights (half the size).")] = False,
    ema: Annotated[bool | None, typer.Option("--ema/--no-ema", help="Export the EMA generator (default: when the run has one).")] = None,
    json_out: Json = False,
) -> None:
    """Write the trained generator as NAME.safetensors and print its weights.lock entry."""
    from scenestyle.train.export import export_generator

    result = export_generator(run, name, out_dir=output, fp16=fp16, ema=ema)
    if json_out:
        _console.out.print_json(json.dumps(result.to_dict()))
    else:
        _console.err.print(f"wrote {result.path} (step {result.step}, {'EMA' if result.ema else 'raw'} generator)")
        _console.out.print(result.lock_entry, markup=False, highlight=False, soft_wrap=True)
