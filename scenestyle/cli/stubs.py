"""`train` and `eval`: the command groups exist now; their issues fill them."""

from __future__ import annotations

import typer

from scenestyle.cli._console import error

train_app = typer.Typer(help="Train CycleGAN, SRGAN and denoising models (not in this version yet).", no_args_is_help=False)
eval_app = typer.Typer(help="Evaluate models with PSNR/SSIM/FID and style measures (not in this version yet).", no_args_is_help=False)


@train_app.callback(invoke_without_command=True)
def train() -> None:
    """Training is not part of this version yet."""
    error("`scenestyle train` is not available in this version yet; see the README's roadmap")
    raise typer.Exit(2)


@eval_app.callback(invoke_without_command=True)
def evaluate() -> None:
    """Evaluation is not part of this version yet."""
    error("`scenestyle eval` is not available in this version yet; see the README's roadmap")
    raise typer.Exit(2)
