"""CPU backends side by side: plain fp32 PyTorch, scenestyle's PyTorch path, scenestyle's OpenVINO path.

    python benchmarks/bench_backend.py            # models at 1 and 4 MP (x4 upscalers: 0.25 and 1 MP in), 25 MP peak RSS
    python benchmarks/bench_backend.py --quick    # tiny sizes, no 25 MP cases
    python benchmarks/bench_backend.py --only ffdnet   # the models whose name contains "ffdnet"
    python benchmarks/bench_backend.py --baseline 99c8bcd   # + the 25 MP cases through the CLI of that commit
    ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 python benchmarks/bench_backend.py --no-25mp   # as on a CPU without AMX (emulated)

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

"TFLOP/s" is each path's rate (``scenestyle.nn.count_macs``, 1 MAC = 2 FLOP) and "% ceiling" that rate
over the machine's ceiling for such work, measured in the same run: the faster of torch bf16
channels_last and OpenVINO bf16 on a plain conv net at 512x512 (3->64, 16 x 64->64, 64->3; 3x3 with
ReLU), the layers these models are mostly made of. A path near 100 % has little left to gain from
any backend. ``ONEDNN_MAX_CPU_ISA`` (read by the oneDNN inside both torch and OpenVINO) caps the
instruction sets their kernels may use, so an AMX machine can stand in for an AVX512-BF16 one; the
header records it.

Then the 25 MP memory cases: the CLI on the 6144x4096 wallpaper of ../shared with each backend,
each in its own process (peak RSS = the child's ``ru_maxrss``); ``--baseline COMMIT`` adds the CLI of
that commit (``git archive`` of its package, run with PYTHONPATH, given the same weight files).
Results: printed, and written to benchmarks/out/backend.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
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


def conv_peak() -> dict:
    """TFLOP/s of a plain conv net (3->64, 16 x 64->64, 64->3; 3x3, ReLU) on 1x3x512x512: torch bf16
    channels_last and OpenVINO bf16."""
    import numpy as np
    import torch
    from torch import nn

    from scenestyle.engine.openvino_import import import_openvino

    ov = import_openvino()

    torch.manual_seed(0)
    widths = [3] + [64] * 17 + [3]
    layers = [m for a, b in zip(widths, widths[1:]) for m in (nn.Conv2d(a, b, 3, padding=1), nn.ReLU())]
    net = nn.Sequential(*layers[:-1]).eval()
    x = torch.rand(1, 3, 512, 512)
    flops = 2 * sum(a * b * 9 for a, b in zip(widths, widths[1:])) * 512 * 512
    with torch.inference_mode():
        cl = copy.deepcopy(net).to(torch.bfloat16).to(memory_format=torch.channels_last)
        xb = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        torch_s = timed(lambda: cl(xb))
        compiled = ov.Core().compile_model(ov.convert_model(net, example_input=x), "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})
    request, xn = compiled.create_infer_request(), np.ascontiguousarray(x.numpy())
    ov_s = timed(lambda: request.infer([xn], share_inputs=True))
    return {"torch bf16": flops / torch_s / 1e12, "openvino bf16": flops / ov_s / 1e12}


def run_model_case(name: str, mp: float) -> dict:
    import torch

    from scenestyle.engine.agreement import check_image, model_args
    from scenestyle.engine.device import choose_placement, prepare
    from scenestyle.engine.tiles import run_model
    from scenestyle.metrics.psnr_ssim import psnr
    from scenestyle.nn import count_macs

    arch, kwargs, _ = MODELS[name]
    model, meta = load(arch, kwargs)
    side = int((mp * 1e6) ** 0.5) // 16 * 16
    lo, hi = meta.value_range
    x = check_image(meta, side=side)
    sigma = model_args(meta)[0] if meta.takes_sigma else None
    row: dict = {"model": name, "input": f"{side}x{side} ({side * side / 1e6:.2f} MP)"}
    small = 8 * max(meta.size_multiple, 16)  # MACs grow with pixels: counted on a small input, scaled
    row["tflop"] = 2 * count_macs(model, (1, meta.in_channels, small, small), *model_args(meta)) * side * side / small**2 / 1e12
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


def _cli_child(argv: list[str], pythonpath: str | None = None) -> dict:
    """``python -m scenestyle *argv`` in a fresh interpreter: seconds and peak RSS (MiB)."""
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far, so each case runs in a child of its own child
    script = (
        "import resource, subprocess, sys, time, json; t=time.perf_counter(); "
        f"r=subprocess.run([sys.executable,'-m','scenestyle',*{argv!r}],capture_output=True,text=True); "
        "print(json.dumps({'rc': r.returncode, 'err': r.stderr[-300:], 's': time.perf_counter()-t, "
        "'rss': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024}))"
    )
    env = dict(os.environ, **({"PYTHONPATH": pythonpath} if pythonpath else {}))
    res = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env).stdout)
    if res["rc"]:
        raise SystemExit(f"scenestyle {' '.join(argv)} failed: {res['err']}")
    return res


def baseline_tree(commit: str, tmp: Path) -> Path:
    """The ``scenestyle`` package as of ``commit`` (``git archive``), to run with PYTHONPATH."""
    dest = tmp / "baseline"
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", commit, "scenestyle"], capture_output=True)
    if archive.returncode:
        raise SystemExit(f"--baseline {commit}: {archive.stderr.decode().strip() or 'git archive failed'}")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def memory_cases(tmp: Path, baseline: Path | None) -> list[dict]:
    """The 25 MP cases through the CLI with each backend and, given ``baseline`` (an older package),
    through that version's CLI with the same weight files (it may not know the names)."""
    models = HERE.parent / "scenestyle" / "models"
    oil, up = ["--weights", str(models / "style-oil.safetensors")], ["--weights", str(models / "upscale-x4.safetensors")]
    cases = [
        ("stylize, oil weights (default work size)", ["stylize", str(WALLPAPER), *oil]),
        ("stylize, oil weights, --work-size 0 (full size, tiled)", ["stylize", str(WALLPAPER), *oil, "--work-size", "0"]),
        ("upscale, upscale-x4 weights (x4: 403 MP out)", ["upscale", str(WALLPAPER), *up]),
    ]
    rows = []
    for label, cmd in cases:
        row = {"case": label}
        for backend in ("torch", "openvino", "baseline"):
            if backend == "baseline" and baseline is None:
                continue
            argv = [*cmd, "-o", str(tmp / f"{backend}-{len(rows)}.jpg"), "--overwrite"]
            res = _cli_child(argv, str(baseline)) if backend == "baseline" else _cli_child([*argv, "--backend", backend])
            row[f"{backend} s"], row[f"{backend} MB"] = res["s"], res["rss"]
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, no 25 MP cases")
    ap.add_argument("--only", default="", help="only the models whose name contains this; no 25 MP cases")
    ap.add_argument("--child", nargs=2, metavar=("MODEL", "MP"), help=argparse.SUPPRESS)
    ap.add_argument("--no-25mp", action="store_true", help="leave out the 25 MP cases")
    ap.add_argument("--baseline", metavar="COMMIT", help="also run the 25 MP cases with the CLI of this git commit")
    ap.add_argument("--peak-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_model_case(args.child[0], float(args.child[1]))))
        return
    if args.peak_child:
        print(json.dumps(conv_peak()))
        return

    from scenestyle.engine import openvino_backend as ov
    from scenestyle.engine.device import cpu_flags, cpu_model_name

    flags = sorted(f for f in cpu_flags() if f in {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"})
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA")
    out = subprocess.run([sys.executable, __file__, "--peak-child"], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    peaks = json.loads(out.stdout.strip().splitlines()[-1])
    peak = max(peaks.values())
    lines = [
        f"{cpu_model_name()}, {platform.machine()}, flags {' '.join(flags)}; OpenVINO {ov.version()}"
        + (f"; kernels capped by ONEDNN_MAX_CPU_ISA={isa}" if isa else ""),
        "conv-net ceiling (3->64, 16 x 64->64, 64->3, 3x3 + ReLU, 512x512): " + ", ".join(f"{k} {v:.2f} TFLOP/s" for k, v in peaks.items()),
        "",
        "| model | input | plain fp32 s | torch path s (precision) | OpenVINO s (precision) | OV compile s | OV/torch | OV/plain "
        "| dB | torch TFLOP/s (% ceiling) | OV TFLOP/s (% ceiling) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines[:2]), flush=True)
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
                f"{r['openvino vs plain']:.1f}x | {r['psnr dB']:.1f} | "
                + " | ".join(f"{r['tflop'] / r[k]:.2f} ({100 * r['tflop'] / r[k] / peak:.0f} %)" for k in ("torch s", "openvino s"))
                + " |"
            )
            print(line, flush=True)
            lines.append(line)
    if not (args.quick or args.only or args.no_25mp) and WALLPAPER.is_file():
        base = f" | CLI at {args.baseline} s | its peak MB" if args.baseline else ""
        lines += [
            "",
            f"| 25 MP case (6144x4096 JPEG in and out) | torch s | torch peak MB | OpenVINO s | OpenVINO peak MB{base} |",
            "|---|---|---|---|---|" + ("---|---|" if args.baseline else ""),
        ]
        with tempfile.TemporaryDirectory() as tmp:
            baseline = baseline_tree(args.baseline, Path(tmp)) if args.baseline else None
            for r in memory_cases(Path(tmp), baseline):
                line = f"| {r['case']} | {r['torch s']:.2f} | {r['torch MB']:.0f} | {r['openvino s']:.2f} | {r['openvino MB']:.0f} |"
                if baseline is not None:
                    line += f" {r['baseline s']:.2f} | {r['baseline MB']:.0f} |"
                print(line, flush=True)
                lines.append(line)
    out_dir = HERE / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "backend.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
