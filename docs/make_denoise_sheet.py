"""Build docs/denoise_rni15.jpg: the default denoiser on real noisy photos (RNI15), at 100 %.

    python docs/make_denoise_sheet.py --shared ../shared [--weights FILE] [-o docs/denoise_rni15.jpg]

RNI15 has no clean references, so a person judges it: rows are photos of
``data/eval/RNI15``; columns are a 100 % crop of the noisy photo, then the same crop after
``scenestyle denoise`` at ``--strength 0.5`` and at the default strength (1), each run exactly as a
user would (the σ is estimated from each photo). Noise should be gone and edges, text and fur kept.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_gallery import label, save_sheet  # noqa: E402

PHOTOS = ("Audrey_Hepburn.jpg", "Bears.png", "Dog.png", "Flowers.png", "Frog.png", "Postcards.png", "Singer.png", "Window.png")
CROP = 256  # side of the 100 % crop, pixels
STRENGTHS = (0.5, 1.0)


def denoise(src: Path, out: Path, strength: float, weights: Path | None) -> Path:
    cmd = [sys.executable, "-m", "scenestyle", "denoise", str(src), "-o", str(out), "--overwrite", "--strength", str(strength)]
    if weights is not None:
        cmd += ["--weights", str(weights)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out


def centre_crop(im: Image.Image) -> Image.Image:
    w, h = im.size
    x, y = max(0, (w - CROP) // 2), max(0, (h - CROP) // 2)
    return im.convert("RGB").crop((x, y, x + CROP, y + CROP))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    ap.add_argument("--weights", type=Path, default=None, help="a denoiser file instead of the default model")
    ap.add_argument("-o", "--output", type=Path, default=Path(__file__).resolve().parent / "denoise_rni15.jpg")
    args = ap.parse_args()
    rni = args.shared / "data" / "eval" / "RNI15"
    sheet = Image.new("RGB", (CROP * (1 + len(STRENGTHS)), CROP * len(PHOTOS)), (255, 255, 255))
    with tempfile.TemporaryDirectory() as tmp:
        for y, name in enumerate(PHOTOS):
            src = rni / name
            cells = [label(centre_crop(Image.open(src)), f"{src.stem} noisy")]
            for s in STRENGTHS:
                out = denoise(src, Path(tmp) / f"{src.stem}_{s}.png", s, args.weights)
                cells.append(label(centre_crop(Image.open(out)), f"denoise --strength {s:g}"))
            for x, cell in enumerate(cells):
                sheet.paste(cell, (x * CROP, y * CROP))
    save_sheet(sheet, args.output)


if __name__ == "__main__":
    main()
