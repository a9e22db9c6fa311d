"""CycleGAN trainer speed on this machine: steps/s and images/s, fp32 vs bf16 autocast, side by side.

    python benchmarks/bench_train.py [--steps 3] [--crop 128] [--device cpu]

Uses ../shared/data/photos/train and ../shared/data/paintings/oil when present (read in place),
else random images in a temporary folder. Each configuration runs 2*steps steps; the rate is
measured over the second half (the first half warms up oneDNN/cuDNN and the page cache).
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from scenestyle.train.config import load_config
from scenestyle.train.cyclegan import train_cyclegan

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MODELS = {
    "ResNet-6, ngf 32": ["model.generator=resnet_6blocks", "model.generator_kwargs={ngf = 32}"],
    "Compact, ngf 32, 9 blocks": ["model.generator=CompactGenerator", "model.generator_kwargs={ngf = 32, n_blocks = 9}"],
}


def _domains(tmp: Path) -> tuple[Path, Path]:
    a, b = SHARED / "photos" / "train", SHARED / "paintings" / "oil"
    if a.is_dir() and b.is_dir():
        return a, b
    rng = np.random.default_rng(0)
    for d in "ab":
        (tmp / d).mkdir()
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(tmp / d / f"{i}.png")
    return tmp / "a", tmp / "b"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        a, b = _domains(Path(tmp))
        for label, model in MODELS.items():
            for amp in ("none", "bf16"):
                sets = model + [f"data.a={a}", f"data.b={b}", f"data.crop={args.crop}", "data.workers=1",
                                f"train.batch_size={args.batch_size}", f"train.steps={2 * args.steps}",
                                f"train.log_every={args.steps}", "train.sample_every=0",
                                f"train.checkpoint_every={10 * args.steps}", f"train.amp={amp}"]
                res = train_cyclegan(load_config(None, sets), run=Path(tmp) / f"run-{len(rows)}", device=args.device,
                                     show_progress=False)
                rate = res.metrics["it_per_s"]
                rows.append((label, "fp32" if amp == "none" else "bf16 autocast", rate, rate * 2 * args.batch_size))
                print(f"{rows[-1][0]} {rows[-1][1]}: {rate:.3f} steps/s", flush=True)
    print(f"\nCycleGAN training step (G_AB, G_BA, D_A, D_B; {args.crop} px crops, batch {args.batch_size}, {args.device})\n")
    print("| generator | precision | steps/s | images/s (A+B) |")
    print("|---|---|---|---|")
    for label, prec, rate, ips in rows:
        print(f"| {label} | {prec} | {rate:.3f} | {ips:.3f} |")


if __name__ == "__main__":
    main()
