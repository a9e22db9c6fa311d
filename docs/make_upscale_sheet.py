"""Build docs/upscale_realsrset.jpg: the shipped x4 upscalers on real low-resolution photos (RealSRSet).

    python docs/make_upscale_sheet.py --shared ../shared [--gan FILE] [-o docs/upscale_realsrset.jpg]

RealSRSet has no high-resolution references, so a person judges it: rows are photos of
``data/eval/RealSRSet``; columns are the centre of each photo enlarged x4 by bicubic
interpolation, by ``scenestyle upscale --model upscale-fidelity-x4`` (L1: faithful, soft) and by
``--model upscale-x4`` (GAN: sharp), each run exactly as a user would. The GAN column should be
visibly sharper than the other two, with no halos, ringing or colour shifts.
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

PHOTOS = ("Lincoln.png", "building.png", "chip.png", "oldphoto2.png", "dog.png", "frog.png", "comic3.png")
CROP = 80  # side of the low-resolution centre crop; cells are 4x that


def upscale(src: Path, out: Path, model: list[str]) -> Image.Image:
    cmd = [sys.executable, "-m", "scenestyle", "upscale", str(src), "-o", str(out), "--overwrite", "--scale", "4", *model]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return Image.open(out).convert("RGB")


def centre(im: Image.Image, side: int) -> Image.Image:
    w, h = im.size
    x, y = (w - side) // 2, (h - side) // 2
    return im.crop((x, y, x + side, y + side))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    ap.add_argument("--gan", type=Path, default=None, help="a GAN upscaler file instead of the shipped upscale-x4")
    ap.add_argument("-o", "--output", type=Path, default=Path(__file__).resolve().parent / "upscale_realsrset.jpg")
    args = ap.parse_args()
    columns = [
        ("upscale-fidelity-x4", ["--model", "upscale-fidelity-x4"]),
        (
            "upscale-x4" if args.gan is None else args.gan.stem,
            ["--model", "upscale-x4"] if args.gan is None else ["--weights", str(args.gan)],
        ),
    ]
    cell = 4 * CROP
    sheet = Image.new("RGB", (cell * (1 + len(columns)), cell * len(PHOTOS)), (255, 255, 255))
    with tempfile.TemporaryDirectory() as tmp:
        for y, name in enumerate(PHOTOS):
            src = args.shared / "data" / "eval" / "RealSRSet" / name
            with Image.open(src) as im:
                small = centre(im.convert("RGB"), CROP)
            cells = [label(small.resize((cell, cell), Image.Resampling.BICUBIC), f"{src.stem}: bicubic x4")]
            for title, model in columns:
                big = upscale(src, Path(tmp) / f"{src.stem}_{len(cells)}.png", model)
                cells.append(label(centre(big, cell), title))
            for x, c in enumerate(cells):
                sheet.paste(c, (x * cell, y * cell))
    save_sheet(sheet, args.output)


if __name__ == "__main__":
    main()
