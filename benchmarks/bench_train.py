"""Trainer speed on this machine: steps/s and images/s of every trainer, fp32 vs bf16 autocast, side by side.

    python benchmarks/bench_train.py [--steps 3] [--crop 128] [--batch-size 1] [--device cpu] [--only cyclegan,srgan,denoise]

Uses ../shared/data/photos/train (and ../shared/data/paintings/oil for CycleGAN) when present (read
in place), else random images in a temporary folder. Each configuration runs 2*steps steps; the rate
is measured over the second half (the first half warms up oneDNN/cuDNN and the page cache). The
SR/denoise rows time the adversarial phase (loss.pretrain_steps = 0: G step with GAN + feature
matching where set, then the D step); their degradations run in one DataLoader worker. Prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from scenestyle.train.config import load_config
from scenestyle.train.cyclegan import train_cyclegan
from scenestyle.train.schemas import DenoiseConfig, SRGANConfig
from scenestyle.train.sr_denoise import train_denoise, train_srgan

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
D_SMALL = "model.discriminator_kwargs={num_feat = 32}"
# (trainer, label, config overrides); "images" counts the images one step consumes per batch entry
MODELS = [
    ("cyclegan", "ResNet-6, ngf 32", ["model.generator=resnet_6blocks", "model.generator_kwargs={ngf = 32}"]),
    ("cyclegan", "Compact, ngf 32, 9 blocks", ["model.generator=CompactGenerator", "model.generator_kwargs={ngf = 32, n_blocks = 9}"]),
    (
        "srgan",
        "SRVGG x4 (32 feat, 8 convs), bicubic, U-Net D 32",
        ["model.generator=SRVGGNetCompact", "model.generator_kwargs={num_feat = 32, num_conv = 8, upscale = 4}", D_SMALL],
    ),
    (
        "srgan",
        "RRDB x4 (32 feat, 4 blocks), Real-ESRGAN degr., U-Net D 32",
        [
            "model.generator=RRDBNet",
            "model.generator_kwargs={num_feat = 32, num_block = 4, num_grow_ch = 16, scale = 4}",
            "degradation.kind=realesrgan",
            D_SMALL,
        ],
    ),
    ("denoise", "FFDNet colour (KAIR size: 96 ch, 12 convs), U-Net D 32", ["model.generator=ffdnet_color", D_SMALL]),
]


def _folder(tmp: Path, name: str) -> Path:
    rng = np.random.default_rng(0)
    (tmp / name).mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(tmp / name / f"{i}.png")
    return tmp / name


def _data(tmp: Path) -> tuple[Path, Path]:
    a, b = SHARED / "photos" / "train", SHARED / "paintings" / "oil"
    if a.is_dir() and b.is_dir():
        return a, b
    return _folder(tmp, "a"), _folder(tmp, "b")


def _run(trainer: str, sets: list[str], photos: Path, paintings: Path, run: Path, device: str):
    if trainer == "cyclegan":
        return train_cyclegan(
            load_config(None, sets + [f"data.a={photos}", f"data.b={paintings}"]), run=run, device=device, show_progress=False
        )
    root, fn = (SRGANConfig, train_srgan) if trainer == "srgan" else (DenoiseConfig, train_denoise)
    cfg = load_config(None, sets + [f"data.hr={photos}", "loss.pretrain_steps=0"], root=root)
    return fn(cfg, run=run, device=device, show_progress=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--crop", type=int, default=128, help="training crop (SR: the HR crop)")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--only", default="cyclegan,srgan,denoise", help="comma-separated trainers to time")
    args = ap.parse_args()
    wanted = set(args.only.split(","))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        photos, paintings = _data(Path(tmp))
        for trainer, label, model in MODELS:
            if trainer not in wanted:
                continue
            for amp in ("none", "bf16"):
                sets = model + [
                    f"data.crop={args.crop}",
                    "data.workers=1",
                    f"train.batch_size={args.batch_size}",
                    f"train.steps={2 * args.steps}",
                    f"train.log_every={args.steps}",
                    "train.sample_every=0",
                    f"train.checkpoint_every={10 * args.steps}",
                    f"train.amp={amp}",
                ]
                res = _run(trainer, sets, photos, paintings, Path(tmp) / f"run-{len(rows)}", args.device)
                rate = res.metrics["it_per_s"]
                images = rate * args.batch_size * (2 if trainer == "cyclegan" else 1)
                rows.append((trainer, label, "fp32" if amp == "none" else "bf16 autocast", rate, images))
                print(f"{trainer} {label} {rows[-1][2]}: {rate:.3f} steps/s", flush=True)
    print(
        f"\nOne training step per trainer ({args.crop} px crops (SR: HR crops), batch {args.batch_size}, {args.device}); "
        "images/s counts A+B for CycleGAN, training pairs for SR/denoise\n"
    )
    print("| trainer | model | precision | steps/s | images/s |")
    print("|---|---|---|---|---|")
    for trainer, label, prec, rate, ips in rows:
        print(f"| {trainer} | {label} | {prec} | {rate:.3f} | {ips:.3f} |")


if __name__ == "__main__":
    main()
