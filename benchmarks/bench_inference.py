"""Inference benchmark: plain fp32 NCHW whole-image forward vs scenestyle's path, side by side.

Each (model, size) case runs in its own subprocess, baseline first, then ours
(``choose_placement`` + ``prepare`` + ``run_model`` with an automatic tile); peak RSS is
read from /proc/self/status VmHWM, reset between the two with ``clear_refs`` (Linux).
Random seeded weights (their speed is real), plus DnCNN-25 with the real KAIR weights from
../shared on a noisy Set12 photo. Inputs are otherwise a seeded smooth+textured image in the
model's range.

    python benchmarks/bench_inference.py            # full run (< 10 min on 2 cores)
    python benchmarks/bench_inference.py --quick    # seconds, tiny sizes, no 20 MP case

The Markdown table is printed and written to benchmarks/out/inference.md.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"

MODELS: dict[str, tuple[str, dict]] = {
    "RRDBNet x4": ("RRDBNet", dict(num_feat=64, num_block=23, num_grow_ch=32, scale=4)),
    "SRVGGNetCompact x4": ("SRVGGNetCompact", dict(num_feat=64, num_conv=32, upscale=4)),
    "ResnetGenerator-9": ("ResnetGenerator", dict(ngf=64, n_blocks=9)),
    "DnCNN color": ("DnCNN", dict(in_nc=3, out_nc=3, nc=64, nb=17)),
    "CompactGenerator": ("CompactGenerator", dict()),
    "DnCNN-25 gray (KAIR)": ("DnCNN", dict(in_nc=1, out_nc=1, nc=64, nb=17)),
}
KAIR_DNCNN = SHARED / "weights/kair_dncnn/dncnn_25.pth"
# input sides per model, chosen to keep the full run under 10 minutes on 2 cores
FULL_SIDES = {
    "RRDBNet x4": [128, 256],
    "SRVGGNetCompact x4": [256, 512],
    # 1536² is above the 1.5 MP whole-image limit for instance-norm models: the tiled path with
    # statistics from a downscaled copy, frozen into the norms
    "ResnetGenerator-9": [256, 512, 1024, 1536],
    "DnCNN color": [256, 512, 1024],
    "CompactGenerator": [256, 512, 1024, 1536],
    "DnCNN-25 gray (KAIR)": [256, 512, 1024],
}
QUICK_SIDES = {name: [32 if name == "RRDBNet x4" else 64] for name in MODELS}


# ---------------------------------------------------------------- helpers shared by parent and child


def peak_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")  # 5 = reset the peak RSS (VmHWM) to the current RSS
        return True
    except OSError:
        return False


def test_image(h: int, w: int, channels: int, lo: float, hi: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    planes = [
        0.5 + 0.3 * torch.sin(3 * xx + 2 * yy + c) + 0.1 * torch.sin(60 * xx) * torch.cos(45 * yy) + 0.03 * torch.randn(h, w, generator=g)
        for c in range(channels)
    ]
    return (torch.stack(planes).clamp(0, 1) * (hi - lo) + lo).unsqueeze(0)


def build(name: str):
    """(model in eval mode, its ModelMeta)."""
    from scenestyle.nn import build as nn_build
    from scenestyle.nn import describe

    if name == "DnCNN-25 gray (KAIR)":
        from scenestyle.loading import load_model

        loaded = load_model(str(KAIR_DNCNN), task="denoise")
        return loaded.module.eval(), loaded.meta
    arch, kwargs = MODELS[name]
    torch.manual_seed(0)
    return nn_build(arch, **kwargs).eval(), describe(arch, kwargs)


def case_input(name: str, side: int, meta) -> torch.Tensor:
    """The benchmark image: Set12's first photo tiled to ``side`` with σ=25 noise for the real
    denoiser, else :func:`test_image`."""
    if name != "DnCNN-25 gray (KAIR)":
        lo, hi = meta.value_range
        return test_image(side, side, meta.in_channels, lo, hi)
    import numpy as np
    from PIL import Image

    clean = np.asarray(Image.open(SHARED / "data/eval/Set12/01.png").convert("L"), dtype=np.float32) / 255
    reps = -(-side // clean.shape[0])
    clean = np.tile(clean, (reps, reps))[:side, :side]
    g = torch.Generator().manual_seed(0)
    return (torch.from_numpy(np.ascontiguousarray(clean)) + torch.randn(side, side, generator=g) * 25 / 255)[None, None]


def macs(model: torch.nn.Module, shape: tuple[int, ...]) -> int:
    try:
        from scenestyle.nn import count_macs
    except ImportError:  # own hook counter: conv MACs = output elements x in/groups x kernel area
        total = [0]

        def hook(m, _i, out):
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                total[0] += out.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)

        hs = [m.register_forward_hook(hook) for m in model.modules()]
        with torch.inference_mode():
            model(torch.zeros(shape))
        for h in hs:
            h.remove()
        return total[0]
    return count_macs(model, shape)


def timed(fn, budget_s: float = 8.0, max_reps: int = 3) -> float:
    """Best wall time of up to ``max_reps`` runs after a full-size warm-up run (oneDNN builds
    kernels per shape); repeats stop once ``budget_s`` is spent, so slow cases run once or twice."""
    t0 = time.perf_counter()
    fn()
    best = spent = time.perf_counter() - t0
    for _ in range(max_reps):
        if spent > budget_s:
            break
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return best


# ---------------------------------------------------------------- child: one case


def run_case(name: str, side: int) -> dict:
    from scenestyle.engine.device import choose_placement, prepare
    from scenestyle.engine.tasks import Processor
    from scenestyle.engine.tiles import run_model

    model, meta = build(name)
    lo, hi = meta.value_range
    x = case_input(name, side, meta)
    gmac = macs(model, tuple(x.shape)) / 1e9
    reset_peak_rss()

    with torch.inference_mode():
        held: dict[str, torch.Tensor] = {}

        def baseline() -> None:
            held.pop("y", None)  # free the previous output first: peak RSS counts one output
            held["y"] = model(x)

        base_s = timed(baseline)
        ref = held.pop("y")
    base_rss = peak_rss_mb()

    reset_peak_rss()
    t0 = time.perf_counter()
    placement = choose_placement("auto", "auto", model=model, meta=meta)
    proc = Processor(model=prepare(model, meta, placement), meta=meta, placement=placement, task="denoise")
    setup_s = time.perf_counter() - t0
    x01 = (x - lo) / (hi - lo)  # the engine works on [0, 1] photos; PSNR below is over the same span

    def ours() -> None:  # as the CLI does per photo: the model in its value-range wrapper, tiled
        held.pop("y", None)
        held["y"] = run_model(proc.model, meta, x01, placement)

    ours_s = timed(ours)
    ours_rss = peak_rss_mb()
    mse = torch.mean((held["y"].double() - ((ref - lo) / (hi - lo)).double()) ** 2).item()
    psnr = float("inf") if mse == 0 else 10 * math.log10(1 / mse)
    return dict(
        model=name,
        side=side,
        gmac=gmac,
        base_s=base_s,
        ours_s=ours_s,
        setup_s=setup_s,
        precision=placement.precision,
        psnr=psnr,
        base_rss=base_rss,
        ours_rss=ours_rss,
        reason=placement.reason,
    )


# The whole-CLI memory cases: (command, arch, kwargs, output name). The upscaler is a narrow SRVGG:
# the case measures the photo-sized buffers (decode, 4x output, encode), not the model's compute.
CLI_CASES = {
    "stylize": ("stylize", "CompactGenerator", {}, "out.jpg"),
    "upscale": ("upscale", "SRVGGNetCompact", dict(num_feat=16, num_conv=4, upscale=4), "out.jpg"),
    "upscale-png": ("upscale", "SRVGGNetCompact", dict(num_feat=16, num_conv=4, upscale=4), "out.png"),
    # Real-ESRGAN's common use: the x4 model, output at x2
    "upscale-outscale2": ("upscale", "SRVGGNetCompact", dict(num_feat=16, num_conv=4, upscale=4), "out.jpg"),
}
OUTSCALE = {"upscale-outscale2": 2.0}  # cases run with --outscale


def run_20mp_plain(case: str) -> dict:
    """What a plain script does with the same photo and model: Pillow decode, one fp32 whole-image
    forward, float → uint8, Pillow encode (in a child process, for its peak RSS)."""
    import resource
    import tempfile

    import numpy as np
    from PIL import Image

    from scenestyle.nn import build as nn_build

    _, arch, kwargs, out_name = CLI_CASES[case]
    path = sorted(glob.glob(str(SHARED / "data/photos/wallpapers/*6144x4096*.jpg")))[0]
    torch.manual_seed(0)
    model = nn_build(arch, **kwargs).eval()
    t0 = time.perf_counter()
    with Image.open(path) as im:
        x = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)[None].float().div_(255)
        size = (round(im.height * OUTSCALE.get(case, 0)), round(im.width * OUTSCALE.get(case, 0)))
    with torch.inference_mode():
        y = model(x)
        del x
        if case in OUTSCALE:
            y = torch.nn.functional.interpolate(y, size=size, mode="bicubic", antialias=True)
        out = y[0].clamp_(0, 1).mul_(255).round_().byte().permute(1, 2, 0).numpy()
        del y
    Image.MAX_IMAGE_PIXELS = None
    with tempfile.TemporaryDirectory() as tmp:
        Image.fromarray(out).save(Path(tmp) / out_name)
    secs = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(secs=secs, rss=rss)


def run_20mp(tile: int, case: str = "stylize") -> dict:
    """The whole CLI (decode, tiles, encode) on the 25 MP wallpaper, in a child process for its peak RSS."""
    import resource
    import tempfile

    from safetensors.torch import save_file

    from scenestyle.nn import build as nn_build

    command, arch, kwargs, out_name = CLI_CASES[case]
    path = sorted(glob.glob(str(SHARED / "data/photos/wallpapers/*6144x4096*.jpg")))[0]
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "model.safetensors"
        torch.manual_seed(0)
        save_file({k: v.contiguous() for k, v in nn_build(arch, **kwargs).state_dict().items()}, str(weights))
        cmd = [sys.executable, "-m", "scenestyle", command, path, "-o", str(Path(tmp) / out_name), "--weights", str(weights), "--json"]
        if tile:
            cmd += ["--tile", str(tile)]
        if case in OUTSCALE:
            cmd += ["--outscale", str(OUTSCALE[case])]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        secs = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError((proc.stderr.strip().splitlines() or ["?"])[-1])
        report = json.loads(proc.stdout)
        if report["results"][0]["status"] != "ok":
            raise RuntimeError(report["results"][0]["error"])
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = None  # our own 400 MP output
        with Image.open(Path(tmp) / out_name) as im:
            out_size = im.size
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    with Image.open(path) as im:
        w, h = im.size
    return dict(
        path=Path(path).name,
        h=h,
        w=w,
        tile=tile or "auto",
        secs=secs,
        rss=rss,
        out=out_size,
        precision=report["parameters"]["precision"],
        status=report["results"][0]["status"],
        case=case,
        arch=arch,
        out_name=out_name,
    )


def describe_20mp(r: dict) -> str:
    """One sentence for a whole-CLI memory case."""
    ow, oh = r["out"]
    outscale = f" --outscale {OUTSCALE[r['case']]:g}" if r["case"] in OUTSCALE else ""
    return (
        f"`scenestyle {r['case']}`{outscale} "
        f"with {r['arch']} ({r['precision']}) on {r['path']} ({r['w']}x{r['h']}, "
        f"{r['w'] * r['h'] / 1e6:.1f} MP) to {ow}x{oh} ({ow * oh / 1e6:.0f} MP), tile {r['tile']}: "
        f"{r['secs']:.1f} s end to end (decode, model, {Path(str(r['out_name'])).suffix[1:].upper()} encode), "
        f"peak RSS {r['rss']:.0f} MB"
    )


# ---------------------------------------------------------------- parent


def conv_peaks() -> dict[str, float]:
    """GFLOP/s of a 64->64 3x3 conv on 256x256: fp32 NCHW, fp32 and bf16 channels_last."""
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).eval()
    x = torch.randn(1, 64, 256, 256)
    flops = 2 * 64 * 64 * 9 * 256 * 256
    res = {}
    with torch.inference_mode():
        for label, dtype, cl in [("fp32 NCHW", torch.float32, False), ("fp32 CL", torch.float32, True), ("bf16 CL", torch.bfloat16, True)]:
            c = conv.to(dtype)
            xi = x.to(dtype)
            if cl:
                c, xi = c.to(memory_format=torch.channels_last), xi.contiguous(memory_format=torch.channels_last)
            c(xi)
            res[label] = flops / timed(lambda: c(xi), budget_s=1.0, max_reps=5) / 1e9
    return res


def header() -> list[str]:
    from scenestyle.engine.device import cpu_flags, cpu_model_name

    flags = cpu_flags()
    shown = ", ".join(f"{f}={'yes' if f in flags else 'no'}" for f in ("avx512_bf16", "amx_bf16", "avx512_vnni"))
    return [
        f"- CPU: {cpu_model_name()} ({os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}); {shown}",
        f"- torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}",
    ]


def child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        return dict(error=(proc.stderr.strip().splitlines() or ["?"])[-1])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, no 20 MP case: seconds")
    ap.add_argument("--models", nargs="*", default=list(MODELS), help="subset of: " + ", ".join(MODELS))
    ap.add_argument("--no-20mp", action="store_true", help="skip the 20 MP memory case")
    ap.add_argument("--tile-20mp", type=int, default=0, help="tile for the 20 MP case (0: the CLI's auto)")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "inference.md")
    ap.add_argument("--case", nargs=2, metavar=("MODEL", "SIDE"), help=argparse.SUPPRESS)
    ap.add_argument("--case-20mp", nargs="+", metavar="TILE [CASE]", help=argparse.SUPPRESS)
    ap.add_argument("--case-20mp-plain", metavar="CASE", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.case:
        print(json.dumps(run_case(a.case[0], int(a.case[1]))))
        return
    if a.case_20mp_plain is not None:
        print(json.dumps(run_20mp_plain(a.case_20mp_plain)))
        return
    if a.case_20mp is not None:
        tile, case = (a.case_20mp + ["stylize"])[:2]
        print(json.dumps(run_20mp(int(tile), case)))
        return

    t_start = time.perf_counter()
    lines = ["# Inference benchmark", "", *header()]
    peaks = conv_peaks()
    lines.append("- 64->64 3x3 conv 256x256 peak: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()))
    lines += [
        "",
        "| model | input | GMAC | base fp32 NCHW ms | ours ms | ours prec | speedup | base GMAC/s | ours GMAC/s "
        "| ours % fp32 CL peak | ours % bf16 peak | PSNR ours vs base dB | base RSS MB | ours RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    reasons: dict[str, str] = {}
    sides = QUICK_SIDES if a.quick else FULL_SIDES
    skipped: list[str] = []
    for name in a.models:
        if name == "DnCNN-25 gray (KAIR)" and not KAIR_DNCNN.exists():
            skipped.append(f"- {name}: skipped, no {KAIR_DNCNN}")
            continue
        for side in sides[name]:
            r = child(["--case", name, str(side)])
            if "error" in r:
                row = f"| {name} | {side}² | failed: {r['error']} |"
            else:
                reasons[name] = r["reason"]
                gps_b, gps_o = r["gmac"] / r["base_s"], r["gmac"] / r["ours_s"]
                row = (
                    f"| {name} | {side}² | {r['gmac']:.1f} | {r['base_s'] * 1e3:.0f} | {r['ours_s'] * 1e3:.0f} | {r['precision']} "
                    f"| {r['base_s'] / r['ours_s']:.2f}x | {gps_b:.0f} | {gps_o:.0f} | {100 * 2 * gps_o / peaks['fp32 CL']:.0f}% "
                    f"| {100 * 2 * gps_o / peaks['bf16 CL']:.0f}% | {r['psnr']:.1f} | {r['base_rss']:.0f} | {r['ours_rss']:.0f} |"
                )
            lines.append(row)
            print(row, flush=True)
    lines += ["", "Placement reasons (ours; setup includes the bf16 agreement check):", ""]
    lines += [f"- {k}: {v}" for k, v in reasons.items()]
    if skipped:
        lines += ["", *skipped]
    if not a.quick and not a.no_20mp:
        if glob.glob(str(SHARED / "data/photos/wallpapers/*6144x4096*.jpg")):
            lines += ["", "Memory, whole CLI (target: peak RSS <= 2048 MB for a 20 MP photo):", ""]
            for case in CLI_CASES:
                r = child(["--case-20mp", str(a.tile_20mp), case])
                row = f"- {case} case failed: {r['error']}" if "error" in r else f"- {describe_20mp(r)}"
                if case != "stylize" and "error" not in r:  # the plain script beside it (stylize: see the table)
                    p = child(["--case-20mp-plain", case])
                    row += (
                        f"; plain fp32 whole-image script: failed ({p['error']})"
                        if "error" in p
                        else f"; plain fp32 whole-image script: {p['secs']:.1f} s, peak RSS {p['rss']:.0f} MB"
                    )
                lines.append(row)
                print(row, flush=True)
        else:
            lines += ["", f"20 MP cases skipped: no wallpaper under {SHARED}"]
    lines += ["", f"Total benchmark wall time {time.perf_counter() - t_start:.0f} s."]
    print("\n".join(lines[lines.index("Placement reasons (ours; setup includes the bf16 agreement check):", 0) - 1 :]))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"\nwritten to {a.out}")


if __name__ == "__main__":
    main()
