"""CPU backends side by side: plain fp32 PyTorch, scenestyle's PyTorch path, scenestyle's OpenVINO path.

    python benchmarks/bench_backend.py            # models at 1 and 4 MP (x4 upscalers: 0.25 and 1 MP in), 25 MP peak RSS
    python benchmarks/bench_backend.py --quick    # tiny sizes, no 25 MP cases
    python benchmarks/bench_backend.py --only ffdnet   # the models whose name contains "ffdnet"

For each model and size, in one process:

* **plain**: fp32 NCHW whole-image ``model(x)`` under ``torch.inference_mode()``;
* **torch**: ``choose_placement(backend="torch")`` + ``prepare`` + ``run_model`` (what the CLI ran
  before OpenVINO: bf16 channels_last where the CPU has it, auto tiles);
* **openvino**: the same with ``backend="openvino"`` (what ``--backend auto`` runs on the CPU).
  The conversion and compilation of the first call are reported apart ("compile s"); the timed
  runs reuse the compiled model, as every photo after the first does.

Times are the best of up to 3 runs after a warm-up. PSNR is OpenVINO's output against plain fp32
over the model's value range. Models: the shipped ``oil`` style, ``ffdnet-color`` denoiser and
``upscale-fidelity-x4`` / ``upscale-x4`` upscalers (their real weights) and random seeded weights at
the official sizes of the others (their speed is real).
Then the 25 MP memory cases:
the CLI on the 6144x4096 wallpaper of ../shared with each backend, each in its own process (peak
RSS = the child's ``ru_maxrss``). Results: printed, and written to benchmarks/out/backend.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"
WALLPAPER = SHARED / "data/photos/wallpapers/budgie_sunset-beach_6144x4096_CC0.jpg"

# name -> (arch or lock name, kwargs, input megapixels)
MODELS: dict[str, tuple[str, dict, tuple[float, ...]]] = {
    "oil (CompactGenerator, shipped)": ("style-oil", {}, (1.0, 4.0)),
    "SRVGGNetCompact x4 (general-x4v3 size)": ("SRVGGNetCompact", dict(num_feat=64, num_conv=32, upscale=4), (0.25, 1.0)),
    "upscale-fidelity-x4 (SRVGG x4, shipped)": ("upscale-fidelity-x4", {}, (0.25, 1.0)),
    "upscale-x4 (SRVGG x4 GAN, shipped)": ("upscale-x4", {}, (0.25, 1.0)),
    "CycleGAN ResNet-9 (official style size, instance norms)": ("ResnetGenerator", dict(ngf=64, n_blocks=9), (1.0,)),
    "RRDBNet x4 (x4plus size)": ("RRDBNet", dict(num_feat=64, num_block=23, num_grow_ch=32, scale=4), (0.25,)),
    "ffdnet-color (FFDNet, shipped)": ("ffdnet-color", {}, (1.0, 4.0)),
    "DnCNN colour 17 layers": ("DnCNN", dict(in_nc=3, out_nc=3, nc=64, nb=17), (1.0, 4.0)),
}


def timed(fn, max_reps: int = 3, budget_s: float = 20.0) -> float:
    fn()  # warm-up: kernels are built per shape
    best = spent = 0.0
    for i in range(max_reps):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent = (dt if i == 0 else min(best, dt)), spent + dt
        if spent > budget_s:
            break
    return best


def load(arch: str, kwargs: dict):
    import torch

    from scenestyle.loading import load_model
    from scenestyle.nn import build, describe
    from scenestyle.weights import load_lock

    lock = load_lock()
    if arch in lock:  # a shipped model, with its real weights
        loaded = load_model(arch, task=lock[arch].task, offline=True)
        return loaded.module.float().eval(), loaded.meta
    torch.manual_seed(0)
    return build(arch, **kwargs).eval(), describe(arch, kwargs)


def run_model_case(name: str, mp: float) -> dict:
    import torch

    from scenestyle.engine.agreement import check_image, model_args
    from scenestyle.engine.device import choose_placement, prepare
    from scenestyle.engine.tiles import run_model
    from scenestyle.metrics.psnr_ssim import psnr

    arch, kwargs, _ = MODELS[name]
    model, meta = load(arch, kwargs)
    side = int((mp * 1e6) ** 0.5) // 16 * 16
    lo, hi = meta.value_range
    x = check_image(meta, side=side)
    sigma = model_args(meta)[0] if meta.takes_sigma else None
    row: dict = {"model": name, "input": f"{side}x{side} ({side * side / 1e6:.2f} MP)"}
    with torch.inference_mode():
        row["plain s"] = timed(lambda: model(x, *model_args(meta)))
        ref = model(x, *model_args(meta)).numpy()
    for backend in ("torch", "openvino"):
        placement = choose_placement("cpu", "auto", model=model, meta=meta, backend=backend)
        t0 = time.perf_counter()
        prepared = prepare(model if backend == "openvino" else load(arch, kwargs)[0], meta, placement)
        # inputs are in the model's own value range, as for plain (the engine's UnitRange wrapper is left out of both)
        run = lambda: run_model(prepared, meta, x, placement, sigma=sigma)  # noqa: E731
        if backend == "openvino":
            out = run()
            row["compile s"] = time.perf_counter() - t0
            row["psnr dB"] = psnr(out.numpy(), ref, peak=hi - lo)
        row[f"{backend} s"] = timed(run)
        row[f"{backend} precision"] = placement.precision
    row["openvino vs torch"] = row["torch s"] / row["openvino s"]
    row["openvino vs plain"] = row["plain s"] / row["openvino s"]
    return row


def memory_cases(tmp: Path) -> list[dict]:
    rows = []
    cases = [
        ("stylize --style oil (default work size)", ["stylize", str(WALLPAPER), "--style", "oil"]),
        ("stylize --style oil --work-size 0 (full size, tiled)", ["stylize", str(WALLPAPER), "--style", "oil", "--work-size", "0"]),
        ("upscale --model upscale-x4 (x4: 403 MP out)", ["upscale", str(WALLPAPER), "--model", "upscale-x4"]),
    ]
    for label, cmd in cases:
        row = {"case": label}
        for backend in ("torch", "openvino"):
            out = tmp / f"{backend}-{len(rows)}.jpg"
            # a fresh interpreter per case: ru_maxrss of RUSAGE_CHILDREN is the largest child so far,
            # so each case runs in a child of its own child
            script = (
                "import resource, subprocess, sys, time, json; t=time.perf_counter(); "
                f"r=subprocess.run([sys.executable,'-m','scenestyle',*{[*cmd, '-o', str(out), '--overwrite', '--backend', backend]!r}],"
                "capture_output=True,text=True); "
                "print(json.dumps({'rc': r.returncode, 'err': r.stderr[-300:], 's': time.perf_counter()-t, "
                "'rss': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024}))"
            )
            res = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
            if res["rc"]:
                raise SystemExit(f"{label} ({backend}) failed: {res['err']}")
            row[f"{backend} s"], row[f"{backend} MB"] = res["s"], res["rss"]
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, no 25 MP cases")
    ap.add_argument("--only", default="", help="only the models whose name contains this; no 25 MP cases")
    ap.add_argument("--child", nargs=2, metavar=("MODEL", "MP"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_model_case(args.child[0], float(args.child[1]))))
        return

    from scenestyle.engine import openvino_backend as ov
    from scenestyle.engine.device import cpu_flags, cpu_model_name

    flags = sorted(f for f in cpu_flags() if f in {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"})
    lines = [
        f"{cpu_model_name()}, {platform.machine()}, flags {' '.join(flags)}; OpenVINO {ov.version()}",
        "",
        "| model | input | plain fp32 s | torch path s (precision) | OpenVINO s (precision) | OV compile s | OV/torch | OV/plain | dB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    print(lines[0], flush=True)
    for name, (_, _, sizes) in MODELS.items():
        if args.only not in name:
            continue
        for mp in (0.02,) if args.quick else sizes:
            # each case in its own process: one model's memory and threads do not sway the next
            out = subprocess.run([sys.executable, __file__, "--child", name, str(mp)], capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(out.stderr)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            line = (
                f"| {r['model']} | {r['input']} | {r['plain s']:.3f} | {r['torch s']:.3f} ({r['torch precision']}) | "
                f"{r['openvino s']:.3f} ({r['openvino precision']}) | {r['compile s']:.1f} | {r['openvino vs torch']:.1f}x | "
                f"{r['openvino vs plain']:.1f}x | {r['psnr dB']:.1f} |"
            )
            print(line, flush=True)
            lines.append(line)
    if not args.quick and not args.only and WALLPAPER.is_file():
        lines += [
            "",
            "| 25 MP case (6144x4096 JPEG in and out) | torch s | torch peak MB | OpenVINO s | OpenVINO peak MB |",
            "|---|---|---|---|---|",
        ]
        with tempfile.TemporaryDirectory() as tmp:
            for r in memory_cases(Path(tmp)):
                line = f"| {r['case']} | {r['torch s']:.2f} | {r['torch MB']:.0f} | {r['openvino s']:.2f} | {r['openvino MB']:.0f} |"
                print(line, flush=True)
                lines.append(line)
    out_dir = HERE / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "backend.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
