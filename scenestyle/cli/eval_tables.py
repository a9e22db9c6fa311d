"""Rich tables of the `scenestyle eval` reports: per-image scores with their means, and the style table."""

from __future__ import annotations

import math

from rich.table import Table

from scenestyle.cli import _console
from scenestyle.cli._console import shown


def fmt(v: float | None, digits: int) -> str:
    if v is None:
        return "-"
    return "inf" if math.isinf(v) else f"{v:.{digits}f}"


def print_report(report, title: str) -> None:
    groups = report.groups()
    table = Table(title=title)
    table.add_column("image", overflow="fold")
    if len(groups) > 1 or groups[0]:
        table.add_column("setting")
    grouped = len(table.columns) == 2
    lp = any(s.lpips is not None for s in report.scores)
    for col in ("PSNR dB", "SSIM") + (("LPIPS",) if lp else ()) + ("seconds",):
        table.add_column(col, justify="right")
    for s in report.scores:
        row = [shown(s.name)] + ([shown(s.group)] if grouped else []) + [fmt(s.psnr, 2), fmt(s.ssim, 4)] + ([fmt(s.lpips, 4)] if lp else [])
        table.add_row(*row, f"{s.seconds:.2f}")
    for g, m in report.means().items():
        row = [f"[bold]mean ({m['images']})[/]"] + ([shown(g)] if grouped else []) + [f"[bold]{fmt(m['psnr'], 2)}[/]", fmt(m["ssim"], 4)]
        table.add_row(*row, *([fmt(m.get("lpips"), 4)] if lp else []), "", end_section=True)
    _console.out.print(table)
    if report.model:
        sha = report.model.get("sha256")
        _console.out.print(f"model {shown(report.model.get('name'))} ({report.model.get('arch')})" + (f", sha256 {sha}" if sha else ""))
    proto = report.protocol
    _console.out.print("protocol: " + shown("; ".join(f"{k}={v}" for k, v in proto.items())), soft_wrap=True)
    for note in report.notes:
        _console.out.print(f"note: {shown(note)}", soft_wrap=True)


def print_style(report) -> None:
    from rich import box

    table = Table(
        title=f"eval style: {shown(report.photos)} vs {shown(report.paintings)}", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True
    )
    legend = (
        "SWD x1e3 against the paintings per pyramid level (1/1 fine texture ... last: colour) and avg; "
        "critic: share of crops called painting (rgb, colour-blind gray); struct: SSIM of blurred luma vs photo"
    )
    table.add_column("set", no_wrap=True)
    for col in list(report.levels) + ["avg", "rgb", "gray", "struct"]:
        table.add_column(col, justify="right", no_wrap=True)
    for r in report.rows:
        table.add_row(
            shown(r.name),
            *[f"{v:.0f}" for v in r.swd],
            f"[bold]{r.swd_mean:.1f}[/]",
            f"{r.critic_rgb:.3f}",
            f"{r.critic_gray:.3f}",
            f"{r.structure_ssim:.3f}",
        )
    _console.out.print(table)
    _console.out.print(legend, soft_wrap=True)
    for v, a in report.critic_accuracy.items():
        _console.out.print(
            f"critic {v}: held-out accuracy {a['balanced']:.3f} (paintings called painting {a['paintings']:.3f}, "
            f"photos called photo {a['photos']:.3f})"
        )
    m = report.model
    if m.get("sha256"):
        _console.out.print(f"model {shown(m.get('name'))} ({m.get('arch')}), sha256 {m['sha256']}", soft_wrap=True)
    elif m.get("outputs"):
        _console.out.print(f"stylized outputs from {shown(m['outputs'])}", soft_wrap=True)
    _console.out.print(f"seed {report.seed}; protocol: " + shown("; ".join(f"{k}={v}" for k, v in report.protocol.items())), soft_wrap=True)
    for note in report.notes:
        _console.out.print(f"note: {shown(note)}", soft_wrap=True)
