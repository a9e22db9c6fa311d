"""Option types shared by several commands (Typer reads them from the signatures)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

Json = Annotated[bool, typer.Option("--json", help="Print a machine-readable report on stdout.")]
Weights = Annotated[Optional[str], typer.Option("--weights", help="A .pth/.safetensors file or hf://REPO/FILE[@REV]; overrides --model/--style.")]
Arch = Annotated[Optional[str], typer.Option("--arch", help="Architecture for --weights (default: detected from the file).")]
Device = Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N")]
Offline = Annotated[bool, typer.Option("--offline", help="Never download weights (also: HF_HUB_OFFLINE=1).")]
