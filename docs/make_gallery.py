"""Build docs/styles.jpg: each shipped style on the same evaluation scenes, and one scene at 1 MP and 25 MP.

    python docs/make_gallery.py --shared ../shared [--styles oil ukiyoe ...] [-o docs/styles.jpg]

Rows: six scenes of ``data/photos/sun_hays_half`` (never trained on); columns: the photo, then one
per style, each run through ``scenestyle stylize --style NAME`` exactly as a user would. The last
two rows are a 25 MP wallpaper shrunk to 1 MP and at full size, each stylized as it is: with the
working size the two must look alike (a centre crop of each, at the same field of view).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

SCENES = (
    "sunhays80_img_001.jpg",
    "sunhays80_img_009.jpg",
    "sunhays80_img_017.jpg",
    "sunhays80_img_033.jpg",
    "sunhays80_img_057.jpg",
    "sunhays80_img_071.jpg",
)
CELL = 240  # cell height in pixels


def stylize(src: Path, style: str, out: Path) -> Path:
    cmd = [sys.executable, "-m", "scenestyle", "stylize", str(src), "--style", style, "-o", str(out), "--overwrite"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out


def fit(im: Image.Image, h: int = CELL) -> Image.Image:
    return im.convert("RGB").resize((round(im.width * h / im.height), h), Image.Resampling.LANCZOS)


def justify(row: list[Image.Image], width: int) -> list[Image.Image]:
    """The row scaled so its cells fill ``width`` (a row of tall pictures gets taller, none is cropped)."""
    f = width / sum(c.width for c in row)
    if f == 1:
        return row
    h = round(row[0].height * f)
    widths = [round(c.width * f) for c in row]
    widths[-1] = width - sum(widths[:-1])  # rounding must not leave a gap at the right edge
    return [c.resize((w, h), Image.Resampling.LANCZOS) for c, w in zip(row, widths)]


def save_sheet(sheet: Image.Image, path: Path, quality: int = 90) -> None:
    """Write a contact sheet as JPEG and say how big it came out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, quality=quality, optimize=True)
    print(f"{path}: {sheet.width}x{sheet.height}, {path.stat().st_size / 1e6:.2f} MB")


def label(im: Image.Image, text: str) -> Image.Image:
    d = ImageDraw.Draw(im)
    d.rectangle((0, 0, 8 * len(text) + 8, 16), fill=(0, 0, 0))
    d.text((4, 2), text, fill=(255, 255, 255))
    return im


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    ap.add_argument("--styles", nargs="+", default=["oil", "ukiyoe", "expressionism", "abstract"])
    ap.add_argument("-o", "--output", type=Path, default=Path(__file__).resolve().parent / "styles.jpg")
    args = ap.parse_args()
    photos = args.shared / "data" / "photos"
    rows: list[list[Image.Image]] = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        for scene in SCENES:
            src = photos / "sun_hays_half" / scene
            row = [label(fit(Image.open(src)), "photo")]
            for style in args.styles:
                row.append(label(fit(Image.open(stylize(src, style, t / f"{style}_{scene}"))), style))
            rows.append(row)
        big = photos / "wallpapers" / sorted(p.name for p in (photos / "wallpapers").iterdir())[0]
        with Image.open(big) as im:
            photo_big = im.convert("RGB")
        small = photo_big.resize((1224, 816), Image.Resampling.LANCZOS)  # about 1 MP
        small.save(t / "small.png")
        w, h = photo_big.size
        box = (w * 3 // 8, h * 3 // 8, w * 5 // 8, h * 5 // 8)  # the centre quarter of the field of view
        sbox = tuple(round(v * small.width / w) for v in box)
        row_small, row_big = [label(fit(small.crop(sbox)), "photo 1 MP")], [label(fit(photo_big.crop(box)), f"photo {w * h / 1e6:.0f} MP")]
        for style in args.styles:
            out_small = Image.open(stylize(t / "small.png", style, t / f"small_{style}.png"))
            out_big = Image.open(stylize(big, style, t / f"big_{style}.jpg"))
            row_small.append(label(fit(out_small.crop(sbox)), f"{style} 1 MP"))
            row_big.append(label(fit(out_big.crop(box)), f"{style} {w * h / 1e6:.0f} MP"))
        rows += [row_small, row_big]
    width = max(sum(c.width for c in r) for r in rows)
    rows = [justify(r, width) for r in rows]
    sheet = Image.new("RGB", (width, sum(r[0].height for r in rows)), (255, 255, 255))
    y = 0
    for row in rows:
        x = 0
        for cell in row:
            sheet.paste(cell, (x, y))
            x += cell.width
        y += row[0].height
    save_sheet(sheet, args.output, quality=80)  # the brush strokes' fine texture: <= 1 MB at 80


if __name__ == "__main__":
    main()
