"""`scenestyle train cyclegan` and `scenestyle train export`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from scenestyle.cli import _console
from scenestyle.cli._console import handle_errors
from scenestyle.errors import UsageError

train_app = typer.Typer(help="Train CycleGAN style models and export them.", no_args_is_help=True)


@train_app.command("cyclegan")
@handle_errors
def cyclegan(
    a: Annotated[Optional[Path], typer.Option("--a", help="Domain A folder (photos), recursive; overrides data.a.")] = None,
    b: Annotated[Optional[Path], typer.Option("--b", help="Domain B folder (paintings), recursive; overrides data.b.")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="TOML config (see configs/cyclegan.toml).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override one config key: section.key=value (repeatable).")] = None,
    run: Annotated[Optional[Path], typer.Option("--run", "--run-dir", help="Run folder (default: runs/cyclegan-DATE-TIME); --run-dir under torchrun.")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue this run folder from its newest checkpoint.")] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", min=1, help="Stop (with a checkpoint) once this step is reached.")] = None,
    time_limit: Annotated[Optional[float], typer.Option("--time-limit", min=0.0, help="Stop cleanly with a checkpoint after this many seconds.")] = None,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N")] = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="Print a machine-readable report on stdout.")] = False,
) -> None:
    """Train an unpaired A->B CycleGAN (also under torchrun for DDP)."""
    from scenestyle.train.config import load_config
    from scenestyle.train.cyclegan import train_cyclegan

    overrides = list(set_ or [])
    if resume is not None:
        if config is not None or overrides or a is not None or b is not None or run is not None:
            raise UsageError("--resume continues a run with its saved config.toml; drop --config, --set, --a, --b and --run")
        cfg = None
    else:
        overrides += [f"data.a={a}"] if a is not None else []
        overrides += [f"data.b={b}"] if b is not None else []
        cfg = load_config(config, overrides)
    result = train_cyclegan(cfg, run=run, resume=resume, max_steps=max_steps, time_limit=time_limit, device=device,
                            console=_console.err, show_progress=not json_out and _console.err.is_terminal)
    if result.digests and len(set(result.digests)) > 1:
        _console.error(f"ranks ended with different weights: {', '.join(d[:12] for d in result.digests)}")
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        if json_out:
            _console.out.print_json(json.dumps(result.to_dict()))
        else:
            _console.out.print(f"{result.stopped} at step {result.step} in {result.seconds:.1f} s; "
                               f"run {result.run}, checkpoint {result.checkpoint}")
    raise typer.Exit(result.exit_code)


@train_app.command("export")
@handle_errors
def export(
    run: Annotated[Path, typer.Argument(help="Run folder (or one checkpoint file).", show_default=False)],
    name: Annotated[str, typer.Option("--name", help="Model name: writes NAME.safetensors.")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Folder for NAME.safetensors (default: the run folder).")] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="Store float16 weights (half the size).")] = False,
    ema: Annotated[Optional[bool], typer.Option("--ema/--no-ema", help="Export the EMA generator (default: when the run has one).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a machine-readable report on stdout.")] = False,
) -> None:
    """Write the trained generator as NAME.safetensors and print its weights.lock entry."""
    from scenestyle.train.export import export_generator

    result = export_generator(run, name, out_dir=output, fp16=fp16, ema=ema)
    if json_out:
        _console.out.print_json(json.dumps(result.to_dict()))
    else:
        _console.err.print(f"wrote {result.path} (step {result.step}, {'EMA' if result.ema else 'raw'} G_AB)")
        _console.out.print(result.lock_entry, markup=False, highlight=False, soft_wrap=True)
