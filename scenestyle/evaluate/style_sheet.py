"""Contact sheet for ``eval style``: the photos whose result the critics found most and least painting-like.

Each row shows photo | colour transfer | stylized as thumbnails, then the same crop of each
(the crop the colour-blind critic found most painting-like) zoomed, so texture can be judged
beside palette. A small HTML page with the figures sits beside the PNG.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from scenestyle.evaluate.report import write_contact_sheet
from scenestyle.evaluate.style import PHOTOS, STYLIZED, TRANSFER, StyleReport

THUMB = 160  # thumbnail height in pixels


def _thumb(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    size = (max(1, round(w * THUMB / h)), THUMB)
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS))


def _hstack(tiles: list[np.ndarray], gap: int = 4) -> np.ndarray:
    h = max(t.shape[0] for t in tiles)
    padded = [np.pad(t, ((0, h - t.shape[0]), (0, gap), (0, 0)), constant_values=255) for t in tiles]
    return np.concatenate(padded, axis=1)


def write_style_sheet(
    path: Path, report: StyleReport, panels: Mapping[str, Mapping[str, np.ndarray]], cases: int = 3, zoom: int = 2
) -> Path:
    """PNG (``path`` with .png) + HTML (.html) of the ``cases`` best and worst photos; returns the HTML path.

    Ranked by the main row (stylized, else colour transfer): mean of its RGB and gray critic shares.
    ``panels[name]`` maps row names to the uint8 images ``evaluate_style`` passed to ``on_panels``.
    """
    main = STYLIZED if any(r.name == STYLIZED for r in report.rows) else TRANSFER
    ranked = sorted((s for s in report.images if s.row == main), key=lambda s: (s.critic_rgb + s.critic_gray) / 2)
    picks = [("best", s) for s in ranked[::-1][:cases]]
    picks += [("worst", s) for s in ranked[:cases] if s.name not in {p.name for _, p in picks}]
    crop = int(report.protocol["critic"]["crop"])
    order = [r for r in (PHOTOS, TRANSFER, STYLIZED) if r in {x.row for x in report.images}]
    strips, lines = [], []
    for label, s in picks:
        imgs = panels.get(s.name)
        if not imgs:
            continue
        y, x = s.crop
        crops = [np.kron(imgs[r][y : y + crop, x : x + crop], np.ones((zoom, zoom, 1), dtype=np.uint8)) for r in order]
        strips.append(
            (
                f"{label}: {s.name}  critic rgb {s.critic_rgb:.2f} gray {s.critic_gray:.2f}  structure {s.structure_ssim:.3f}",
                _hstack([_thumb(imgs[r]) for r in order] + crops),
            )
        )
        lines.append(
            f"<tr><td>{label}</td><td>{html.escape(s.name)}</td><td>{s.critic_rgb:.2f}</td><td>{s.critic_gray:.2f}</td>"
            f"<td>{s.structure_ssim:.3f}</td><td>({x}, {y})</td></tr>"
        )
    rows = "".join(
        f"<tr><td>{html.escape(r.name)}</td><td>{r.swd_mean:.2f}</td><td>{r.critic_rgb:.3f}</td><td>{r.critic_gray:.3f}</td>"
        f"<td>{r.structure_ssim:.3f}</td></tr>"
        for r in report.rows
    )
    acc = "; ".join(f"{v} {a['balanced']:.2f}" for v, a in report.critic_accuracy.items())
    intro = (
        f"<h1>eval style — {html.escape(report.photos)} vs {html.escape(report.paintings)}</h1>"
        f"<p>model {html.escape(str(report.model.get('name') or report.model.get('outputs')))} "
        f"sha256 {html.escape(str(report.model.get('sha256')))}; seed {report.seed}; critic held-out accuracy {html.escape(acc)}</p>"
        "<table border=1><tr><th>set</th><th>SWD avg</th><th>critic rgb</th><th>critic gray</th><th>structure</th></tr>"
        f"{rows}</table><p>Each strip: {html.escape(' | '.join(order))} thumbnails, then the same {crop}×{crop} crop of each "
        f"(the one the gray critic found most painting-like), ×{zoom}.</p>"
    )
    return write_contact_sheet(
        path,
        strips,
        title="scenestyle eval style",
        intro_html=intro,
        columns=("case", "photo", "critic rgb", "critic gray", "structure", "crop at"),
        rows_html=lines,
        legend=f"columns: {' | '.join(order)}, then the same {crop}-px crop of each x{zoom}",
    )
