"""Evaluation records: per-image scores, means, and everything needed to reproduce a figure."""

from __future__ import annotations

import math
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class ImageScore:
    """One image's scores; ``group`` separates runs in one report (e.g. ``"sigma=25"``)."""

    name: str
    psnr: float
    ssim: float | None = None
    seconds: float = 0.0
    group: str = ""


@dataclass(frozen=True)
class EvalReport:
    """The outcome of one ``eval`` command: scores plus model, protocol, seed and versions."""

    kind: str  # "sr" | "denoise" | "pair"
    dataset: str
    scores: tuple[ImageScore, ...]
    protocol: Mapping[str, Any]
    model: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    seed: int | None = None
    placement: Mapping[str, Any] | None = None
    notes: tuple[str, ...] = ()
    versions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType(versions()))

    def groups(self) -> list[str]:
        """Group labels in order of first appearance."""
        return list(dict.fromkeys(s.group for s in self.scores))

    def means(self) -> dict[str, dict[str, float | None]]:
        """Per group: mean PSNR and SSIM (None when SSIM was not computed), and the image count."""
        out: dict[str, dict[str, float | None]] = {}
        for g in self.groups():
            rows = [s for s in self.scores if s.group == g]
            ssims = [s.ssim for s in rows if s.ssim is not None]
            out[g] = {
                "psnr": _mean([s.psnr for s in rows]),
                "ssim": _mean(ssims) if len(ssims) == len(rows) else None,
                "images": len(rows),
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``inf`` PSNR of identical images becomes the string "inf")."""
        return {
            "kind": self.kind,
            "dataset": self.dataset,
            "model": dict(self.model),
            "protocol": dict(self.protocol),
            "seed": self.seed,
            "placement": dict(self.placement) if self.placement else None,
            "notes": list(self.notes),
            "versions": dict(self.versions),
            "means": {g: {k: _json_num(v) for k, v in m.items()} for g, m in self.means().items()},
            "images": [
                {"name": s.name, "group": s.group, "psnr": _json_num(s.psnr), "ssim": _json_num(s.ssim), "seconds": round(s.seconds, 4)}
                for s in self.scores
            ],
        }


def _mean(xs: list[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else math.nan


def _json_num(v: float | int | None) -> float | int | str | None:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def versions() -> dict[str, str]:
    """Versions that can move a figure: Python, scenestyle, torch, numpy, scipy, Pillow."""
    import numpy
    import PIL
    import scipy
    import torch

    from scenestyle import __version__

    return {
        "python": platform.python_version(),
        "scenestyle": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "pillow": PIL.__version__,
    }
