"""Probe, not product: how close the tiled path of an instance-norm generator above 1.5 MP comes to
the whole-image output, by where its norms' statistics come from.

ResnetGenerator-9 with random seeded weights, fp32, 512-px tiles, on a real photo (the 25 MP
wallpaper from ../shared resized to 1536x1024) and on the seeded synthetic image of
bench_inference.py. Rows: all statistics from the 0.5 MP copy; the first K norms exact from tiled
partial passes (scenestyle uses K = 3); all norms exact (one whole-image statistics pass).

    python benchmarks/probe_norm_stats.py        # a few minutes on 2 cores
"""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import torch
from bench_inference import test_image
from PIL import Image

from scenestyle.engine import norm_stats, tiles
from scenestyle.engine.convert import UnitRange
from scenestyle.engine.device import choose_placement, prepare
from scenestyle.metrics.psnr_ssim import psnr
from scenestyle.nn import build, describe

SHARED = Path(__file__).resolve().parents[2] / "shared"


def main() -> None:
    torch.manual_seed(0)
    model, meta = build("ResnetGenerator", ngf=64, n_blocks=9).eval(), describe("ResnetGenerator", dict(ngf=64, n_blocks=9))
    placement = choose_placement("cpu", "fp32", model=model, meta=meta)
    net = UnitRange(prepare(model, meta, placement), meta.value_range)
    images = {"synthetic": test_image(1024, 1536, 3, 0.0, 1.0)}
    wallpapers = sorted(glob.glob(str(SHARED / "data/photos/wallpapers/*6144x4096*.jpg")))
    if wallpapers:
        with Image.open(wallpapers[0]) as im:
            photo = np.asarray(im.convert("RGB").resize((1536, 1024), Image.BICUBIC), dtype=np.float32) / 255
        images["real photo"] = torch.from_numpy(photo).permute(2, 0, 1)[None].contiguous()
    rows = [("0.5 MP copy only", 0), ("first 1 exact", 1), ("first 2 exact", 2), ("first 3 exact", 3), ("first 5 exact", 5)]
    print("| image | " + " | ".join(r[0] for r in rows) + " | all exact |")
    print("|---" * (len(rows) + 2) + "|")
    for name, x in images.items():
        with torch.inference_mode():
            whole = net(x)
        cells = []
        for _, k in rows:
            norm_stats.EXACT_NORMS = k
            cells.append(psnr(tiles.run_model(net, meta, x, placement, tile=512).numpy(), whole.numpy(), peak=1.0))
        cells.append(psnr(tiles.run_model(net, meta, x, placement, tile=512, stats_max_pixels=10**9).numpy(), whole.numpy(), peak=1.0))
        print(f"| {name} | " + " | ".join(f"{c:.1f}" for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
