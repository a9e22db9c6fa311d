"""Would OpenVINO int8 (NNCF post-training quantisation) pay on this CPU? bf16 vs int8, one process.

    pip install nncf                       # not a scenestyle dependency: this probe decides whether it becomes one
    python benchmarks/probe_ov_int8.py     # writes benchmarks/out/ov_int8.md

For each model: convert to OpenVINO as scenestyle does; quantise a copy with ``nncf.quantize``
(calibration: 64 crops of 256² from ../shared/data/photos/train, noisy at σ 25 for denoisers);
compile both with bf16 as the precision of what stays float (the fastest float here with AMX);
time the best of 3 runs at the size given; agreement = PSNR of each against torch fp32 on a held-out
photo of ../shared/data/photos/sun_hays_half (what scenestyle's 40 dB check would see).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"
sys.path.insert(0, str(HERE))
from bench_backend import MODELS, load  # noqa: E402


def photo_tensor(path: Path, mp: float) -> torch.Tensor:
    im = Image.open(path).convert("RGB")
    s = (mp * 1e6 / (im.width * im.height)) ** 0.5
    im = im.resize((max(16, round(im.width * s / 16) * 16), max(16, round(im.height * s / 16) * 16)), Image.BICUBIC)
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)[None]


def inputs_for(meta, x: torch.Tensor, rng: np.random.Generator) -> list[np.ndarray]:
    if meta.task == "denoise":
        x = x + torch.from_numpy(rng.normal(0, 25 / 255, x.shape).astype(np.float32))
    lo, hi = meta.value_range
    x = x * (hi - lo) + lo
    if meta.in_channels == 1:
        x = x.mean(1, keepdim=True)
    out = [x.numpy()]
    if meta.takes_sigma:
        out.append(np.full((x.shape[0],), 25 / 255, np.float32))
    return out


def best_of(fn, reps: int = 3) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mp", type=float, default=1.0, help="megapixels in (x4 upscalers: a quarter of it)")
    args = ap.parse_args()
    from scenestyle.engine.openvino_import import import_openvino

    ov = import_openvino()  # before nncf, which imports it too
    import nncf

    from scenestyle.engine.device import cpu_flags, cpu_model_name
    from scenestyle.metrics.psnr_ssim import psnr

    rng = np.random.default_rng(0)
    train = sorted((SHARED / "data/photos/train").glob("*.jpg"))[:32]
    crops = []
    for p in train:
        t = photo_tensor(p, 0.25)
        for _ in range(2):
            y, x = rng.integers(0, t.shape[2] - 256 + 1), rng.integers(0, t.shape[3] - 256 + 1)
            crops.append(t[:, :, y : y + 256, x : x + 256])
    held_out = sorted((SHARED / "data/photos/sun_hays_half").glob("*.jpg"))[0]
    core = ov.Core()
    rows = []
    for name, (arch, kwargs, _sizes) in MODELS.items():
        if arch == "RRDBNet":
            continue  # 0.25 MP in takes minutes per quantisation; SRVGG stands for the upscalers
        module, meta = load(arch, kwargs)
        mp = args.mp / (meta.scale**2)
        example = [torch.from_numpy(a) for a in inputs_for(meta, crops[0], rng)]
        shapes = [ov.PartialShape([-1, meta.in_channels, -1, -1])] + ([ov.PartialShape([-1])] if meta.takes_sigma else [])
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ov.convert_model(module, example_input=tuple(example), input=shapes)
        calib = nncf.Dataset(crops, lambda c: inputs_for(meta, c, rng))
        t0 = time.perf_counter()
        q = nncf.quantize(model, calib, subset_size=len(crops), fast_bias_correction=True)
        quant_s = time.perf_counter() - t0
        cfg = {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY"}
        compiled = {"bf16": core.compile_model(model, "CPU", cfg), "int8": core.compile_model(q, "CPU", cfg)}
        x = inputs_for(meta, photo_tensor(held_out, mp), np.random.default_rng(1))
        with torch.inference_mode():
            ref = module(*[torch.from_numpy(a) for a in x]).numpy()
        lo, hi = meta.value_range
        row = {"model": name, "in": f"{x[0].shape[3]}x{x[0].shape[2]}", "quantise s": round(quant_s, 1)}
        for prec, c in compiled.items():
            req = c.create_infer_request()
            row[f"{prec} s"] = round(best_of(lambda: req.infer(x)), 3)
            row[f"{prec} dB"] = round(psnr(np.asarray(req.infer(x)[0]), ref, peak=float(hi - lo)), 1)
        row["int8 speed-up"] = f"{row['bf16 s'] / row['int8 s']:.2f}x"
        print(row, flush=True)
        rows.append(row)
    flags = ", ".join(f for f in sorted(cpu_flags()) if f.startswith(("amx", "avx512_bf16", "avx512_vnni", "avx_vnni")))
    head = list(rows[0])
    md = [
        f"CPU: {cpu_model_name()} ({flags}), {torch.get_num_threads()} threads; OpenVINO {ov.__version__}, NNCF {nncf.__version__}",
        f"Command: `python benchmarks/probe_ov_int8.py --mp {args.mp}`",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ] + ["| " + " | ".join(str(r[k]) for k in head) + " |" for r in rows]
    out = HERE / "out" / "ov_int8.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
