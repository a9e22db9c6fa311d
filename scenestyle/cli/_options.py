"""Option types shared by several commands (Typer reads them from the signatures)."""

from __future__ import annotations

from typing import Annotated

import typer

from scenestyle.errors import UsageError

Json = Annotated[bool, typer.Option("--json", help="Print a machine-readable report on stdout.")]
# Two texts for one flag: each command names the option --weights replaces, and only one it has.
Weights = Annotated[str | None, typer.Option("--weights", help="A .pth/.safetensors file or hf://REPO/FILE[@REV]; overrides --model.")]
StyleWeights = Annotated[str | None, typer.Option("--weights", help="A .pth/.safetensors file or hf://REPO/FILE[@REV]; overrides --style.")]
Arch = Annotated[str | None, typer.Option("--arch", help="Architecture for --weights (default: detected from the file).")]
Device = Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N")]
Offline = Annotated[bool, typer.Option("--offline", help="Never download weights (also: HF_HUB_OFFLINE=1).")]


def parse_tile(value: str) -> int | None:
    """``--tile``: auto → None, 0 → whole image, N ≥ 32 → tile size in input pixels."""
    if value == "auto":
        return None
    if value.isdigit():
        n = int(value)
        if n == 0 or n >= 32:
            return n
    raise UsageError(f"--tile must be auto, 0 or a size >= 32, not {value!r}")
