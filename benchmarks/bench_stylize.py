"""12 MP stylize end to end (decode, model, guided upsampling, encode) against the CycleGAN ResNet-9 reference.

    python benchmarks/bench_stylize.py [--style oil | --weights FILE] [--mp 12] [--reference scaled|full]

"ours" is the CLI exactly as a user runs it (`scenestyle stylize photo.jpg --style oil`), in its own
process: wall time and peak RSS (``ru_maxrss`` of the child). The reference is the official
CycleGAN generator (ResNet-9, ngf 64, random weights: their speed is real) in plain fp32 NCHW,
whole image: ``--reference scaled`` (default) times it at 1 MP and scales ×MP to the photo's size
(compute grows linearly with pixels; a 12 MP forward needs about 10 GB, more than a laptop has),
``--reference full`` runs it on the photo's own size (rounded down to multiples of 4), with its
peak RSS. Both are timed ``--repeat`` times and the fastest run counts (a shared 2-core machine
varies almost 2× between single runs of the reference); the peak RSS is the largest of ours. The photo is the 25 MP wallpaper of ../shared
resized to MP megapixels and saved as JPEG quality 95.
"""

from __future__ import annotations

import argparse
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"

REFERENCE = """
import time, torch
from scenestyle.nn import build
torch.manual_seed(0)
net = build("ResnetGenerator", ngf=64, n_blocks=9).eval()
x = torch.rand(1, 3, HEIGHT, WIDTH) * 2 - 1
best = float("inf")
with torch.inference_mode():
    net(x[..., :64, :64])
    for _ in range(REPEAT):
        t = time.perf_counter(); net(x); best = min(best, time.perf_counter() - t)
print(best)
"""


def run_child(cmd: list[str]) -> tuple[float, float, str]:
    """(seconds, peak RSS MB of this child, stdout); children run one at a time so ru_maxrss is theirs."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(after, before) / 1024, proc.stdout


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--style", default="oil")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--mp", type=float, default=12.0)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each case; the fastest counts")
    ap.add_argument("--reference", choices=("scaled", "full"), default="scaled", help="ResNet-9 at 1 MP scaled, or at the photo's size")
    args = ap.parse_args()
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo.jpg"
        src = sorted((SHARED / "data/photos/wallpapers").iterdir())[0]
        with Image.open(src) as im:
            f = (args.mp * 1e6 / (im.width * im.height)) ** 0.5
            im.convert("RGB").resize((round(im.width * f), round(im.height * f)), Image.Resampling.LANCZOS).save(photo, quality=95)
        w, h = Image.open(photo).size
        model = ["--weights", args.weights] if args.weights else ["--style", args.style]
        ours_cmd = [sys.executable, "-m", "scenestyle", "stylize", str(photo), *model, "-o", str(Path(tmp) / "out.jpg")]
        runs = [run_child(ours_cmd + ["--overwrite"]) for _ in range(args.repeat)]
        ours_s, ours_mb = min(r[0] for r in runs), max(r[1] for r in runs)
        rh, rw = (h // 4 * 4, w // 4 * 4) if args.reference == "full" else (864, 1152)  # 864x1152: 1.0 MP
        script = REFERENCE.replace("REPEAT", str(args.repeat)).replace("HEIGHT", str(rh)).replace("WIDTH", str(rw))
        _, ref_mb, out = run_child([sys.executable, "-c", script])
        ref_s = float(out.strip().splitlines()[-1]) * (w * h) / (rh * rw)
    rows = [
        "| case | seconds | peak RSS MB |",
        "|---|---|---|",
        f"| scenestyle stylize {' '.join(model)}, {w}x{h} ({w * h / 1e6:.1f} MP) JPEG in and out, best of {args.repeat} "
        f"| {ours_s:.2f} | {ours_mb:.0f} |",
        f"| CycleGAN ResNet-9 fp32 NCHW, {rw}x{rh} forward (best of {args.repeat})"
        + (f" | {ref_s:.1f} | {ref_mb:.0f} |" if args.reference == "full" else f" x {w * h / (rh * rw):.1f} | {ref_s:.1f} | - |"),
        "",
        f"ratio: {ref_s / ours_s:.1f}x faster than the reference",
        f"CPU: {cpu_name()}, {len(__import__('os').sched_getaffinity(0))} cores; "
        f"command: python benchmarks/bench_stylize.py {' '.join(sys.argv[1:])}",
    ]
    text = "\n".join(rows)
    print(text)
    out_dir = HERE / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "stylize.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
