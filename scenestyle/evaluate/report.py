"""Evaluation records: per-image scores, means, and everything needed to reproduce a figure."""

from __future__ import annotations

import math
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
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
    lpips: float | None = None  # only when LPIPS weights were given


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
        """Per group: mean PSNR, SSIM and LPIPS (None where not computed), and the image count."""
        out: dict[str, dict[str, float | None]] = {}
        for g in self.groups():
            rows = [s for s in self.scores if s.group == g]
            ssims = [s.ssim for s in rows if s.ssim is not None]
            lp = [s.lpips for s in rows if s.lpips is not None]
            out[g] = {
                "psnr": _mean([s.psnr for s in rows]),
                "ssim": _mean(ssims) if len(ssims) == len(rows) else None,
                "images": len(rows),
            }
            if lp:
                out[g]["lpips"] = _mean(lp) if len(lp) == len(rows) else None
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
                {
                    "name": s.name,
                    "group": s.group,
                    "psnr": _json_num(s.psnr),
                    "ssim": _json_num(s.ssim),
                    "seconds": round(s.seconds, 4),
                    **({"lpips": s.lpips} if s.lpips is not None else {}),
                }
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
    """Versions that can move a figure: Python, scenestyle, torch, numpy, Pillow."""
    import numpy
    import PIL
    import torch

    from scenestyle import __version__

    return {
        "python": platform.python_version(),
        "scenestyle": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
    }


# ------------------------------------------------------------------------- contact sheet

Panels = Mapping[str, Any]  # panel label → uint8 H×W×C array (input, output, reference), same size


def _worst_window(out: Any, ref: Any, size: int) -> tuple[int, int]:
    import numpy as np

    err = np.abs(out.astype(np.float64) - ref.astype(np.float64)).mean(axis=2)
    h, w = err.shape
    size = min(size, h, w)
    # summed-area table: the window with the largest error shows where the method fails
    sat = np.pad(err.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = sat[size:, size:] - sat[:-size, size:] - sat[size:, :-size] + sat[:-size, :-size]
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(y), int(x)


def write_sheet(path: Path, report: EvalReport, panels: Mapping[tuple[str, str], Panels], crop: int = 96, zoom: int = 2) -> Path:
    """PNG of the best and worst image of each group (crops where the error is largest) plus an HTML page beside it.

    ``panels[(name, group)]`` holds same-sized uint8 images, e.g. ``{"input": ..., "output": ..., "reference": ...}``.
    Returns the HTML path.
    """
    import html
    from pathlib import Path

    import numpy as np

    path = Path(path)
    rows, lines = [], []
    for g in report.groups():
        ranked = sorted((s for s in report.scores if s.group == g), key=lambda s: s.psnr)
        picks = [("worst", ranked[0])] + ([("best", ranked[-1])] if len(ranked) > 1 else [])
        for label, s in picks:
            p = panels.get((s.name, g))
            if not p:
                continue
            y, x = _worst_window(p["output"], p["reference"], crop)
            tiles = []
            for img in p.values():
                c = img[y : y + crop, x : x + crop]
                c = np.repeat(c, 3, axis=2) if c.shape[2] == 1 else c
                tiles.append(np.kron(c, np.ones((zoom, zoom, 1), dtype=np.uint8)))
            row = np.concatenate([np.pad(t, ((0, 4), (0, 4), (0, 0)), constant_values=255) for t in tiles], axis=1)
            rows.append((f"{label} {g} {s.name}: {s.psnr:.2f} dB  [{' | '.join(p.keys())}]", row))
            lines.append(
                f"<tr><td>{html.escape(label)}</td><td>{html.escape(g)}</td><td>{html.escape(s.name)}</td>"
                f"<td>{s.psnr:.2f}</td><td>{'' if s.ssim is None else f'{s.ssim:.4f}'}</td><td>({x}, {y})</td></tr>"
            )
    means = "; ".join(f"{g or 'all'}: {m['psnr']:.2f} dB" for g, m in report.means().items())
    intro = (
        f"<h1>{html.escape(report.kind)} — {html.escape(report.dataset)}</h1><p>model {html.escape(str(report.model.get('name')))} "
        f"sha256 {html.escape(str(report.model.get('sha256')))}; mean {html.escape(means)}</p>"
        f"<p>{crop}×{crop} crops where the output's error is largest, zoomed ×{zoom}.</p>"
    )
    return write_contact_sheet(
        path,
        rows,
        title=f"scenestyle eval {report.kind}",
        intro_html=intro,
        columns=("case", "setting", "image", "PSNR", "SSIM", "crop at"),
        rows_html=lines,
    )


def write_contact_sheet(
    path: Path,
    strips: list[tuple[str, Any]],
    *,
    title: str,
    intro_html: str,
    columns: Sequence[str],
    rows_html: list[str],
    legend: str | None = None,
) -> Path:
    """PNG of captioned uint8 strips (``path`` with .png, ``legend`` on top) and an HTML page (.html): ``intro_html``,
    a table of ``rows_html`` under ``columns``, then the PNG. Returns the HTML path."""
    import html
    from pathlib import Path

    from PIL import Image, ImageDraw

    if not strips:
        raise ValueError("no images to put on the contact sheet")
    width, head = max(r.shape[1] for _, r in strips), 18 if legend else 0
    canvas = Image.new("RGB", (width, head + sum(r.shape[0] + 18 for _, r in strips)), "white")
    draw, top = ImageDraw.Draw(canvas), head
    if legend:
        draw.text((2, 3), legend, fill="black")
    for caption, strip in strips:
        draw.text((2, top + 3), caption, fill="black")
        canvas.paste(Image.fromarray(strip), (0, top + 18))
        top += strip.shape[0] + 18
    png = Path(path).with_suffix(".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(png)
    header = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    page = (
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>{intro_html}"
        f"<table border=1><tr>{header}</tr>{''.join(rows_html)}</table><img src='{html.escape(png.name)}'>"
    )
    out = png.with_suffix(".html")
    out.write_text(page, encoding="utf-8")
    return out
