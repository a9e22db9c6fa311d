"""Photos per second of one ``scenestyle upscale`` process beside two, on this machine's CPU, in one run.

Cases, each the CLI as a user starts it, on the same folder of synthetic photos of varied sizes
(seeded) with a seeded SRVGGNetCompact x2 (``--feat`` features, ``--convs`` convs) saved as a
weights file:

* **1 process**: ``python -m scenestyle upscale …`` (torch's default threads: every core);
* **torchrun 2**: ``python -m torch.distributed.run --nproc-per-node 2 -m scenestyle upscale …``
  (torchrun gives each rank OMP_NUM_THREADS=1);
* **--shard 2**: ``--shard 0/2`` and ``--shard 1/2`` started together, OMP_NUM_THREADS=1 each
  (what a SLURM array or xargs does), then a plain run that merges their manifest parts.

Each case runs twice into a fresh folder: the first run is timed (wall clock, start to exit); the
second finds every output there and skips them all, so its time is the fixed cost (Python and torch
imports, model load, planning, the process group). "photos/s" is photos / wall; "photos/s
net" is photos / (wall - fixed cost). Outputs of every case are checked to match the 1-process ones.

    python benchmarks/bench_shard.py [--photos 24] [--feat 32] [--convs 8] [--min-side 256 --max-side 640]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _photos(folder: Path, n: int, lo: int, hi: int) -> int:
    """``n`` smooth-plus-noise photos with sides in [lo, hi]; returns their total pixel count."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(n):
        w, h = (int(v) for v in rng.integers(lo, hi + 1, 2))
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx / w, yy / h, (xx + yy) / (w + h)], -1) * 200 + rng.integers(0, 50, (h, w, 3))
        Image.fromarray(base.clip(0, 255).astype(np.uint8)).save(folder / f"p{i:03d}.png")
        total += w * h
    return total


def _weights(path: Path, feat: int, convs: int) -> None:
    import torch
    from safetensors.torch import save_file

    from scenestyle.nn import build

    torch.manual_seed(0)
    model = build("SRVGGNetCompact", num_feat=feat, num_conv=convs, upscale=2)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


def _port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _timed(cmds: list[list[str]], env: dict) -> float:
    t = time.perf_counter()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in cmds]
    for p, c in zip(procs, cmds):
        _, err = p.communicate()
        if p.returncode != 0:
            sys.exit(f"failed ({p.returncode}): {' '.join(c)}\n{err[-2000:]}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=int, default=24)
    ap.add_argument("--min-side", type=int, default=256)
    ap.add_argument("--max-side", type=int, default=640)
    ap.add_argument("--feat", type=int, default=32)
    ap.add_argument("--convs", type=int, default=8)
    ap.add_argument("--out", type=Path, default=HERE / "out" / "shard")
    args = ap.parse_args()

    shutil.rmtree(args.out, ignore_errors=True)
    photos = args.out / "photos"
    pixels = _photos(photos, args.photos, args.min_side, args.max_side)
    weights = args.out / "sr.safetensors"
    _weights(weights, args.feat, args.convs)
    py = sys.executable
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), "HF_HUB_OFFLINE": "1"}
    one_thread = {**env, "OMP_NUM_THREADS": "1"}

    def cli(out: Path, *extra: str) -> list[str]:
        return ["-m", "scenestyle", "upscale", str(photos), "-o", str(out), "--weights", str(weights), "--tile", "0", *extra]

    cases = {
        "1 process": lambda out: ([[py, *cli(out)]], env),
        "torchrun 2": lambda out: (
            [
                [
                    py,
                    "-m",
                    "torch.distributed.run",
                    "--nproc-per-node",
                    "2",
                    "--master-addr",
                    "127.0.0.1",
                    "--master-port",
                    _port(),
                    *cli(out),
                ]
            ],
            env,
        ),
        "--shard 2": lambda out: ([[py, *cli(out, "--shard", f"{i}/2")] for i in range(2)], one_thread),
    }
    import torch

    from scenestyle.engine.device import cpu_model_name

    print(
        f"cpu: {cpu_model_name()}, {os.cpu_count()} logical cores; torch {torch.__version__}; "
        f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print(
        f"{args.photos} photos, {pixels / 1e6:.2f} MP in all, sides {args.min_side}-{args.max_side}; "
        f"SRVGGNetCompact x2, {args.feat} features, {args.convs} convs; fp32, --tile 0\n"
    )
    print("| case | wall s | fixed s | photos/s | photos/s net |")
    print("|---|---|---|---|---|")
    reference = None
    for name, make in cases.items():
        out = args.out / name.replace(" ", "-").strip("-")
        cmds, case_env = make(out)
        wall = _timed(cmds, case_env)
        fixed = _timed(make(out)[0], case_env)  # everything skipped: imports, model load, planning
        if name == "--shard 2":
            _timed([[py, *cli(out)]], env)  # the plain run that merges the parts
        got = {p.name: np.asarray(Image.open(p)) for p in sorted(out.glob("*.png"))}
        if reference is None:
            reference = got
        same = sorted(got) == sorted(reference) and all(np.array_equal(got[k], reference[k]) for k in got)
        net = f"{args.photos / (wall - fixed):.2f}" if wall - fixed > 0.5 else "-"  # noise beyond that
        print(f"| {name} | {wall:.1f} | {fixed:.1f} | {args.photos / wall:.2f} | {net} |" + ("" if same else " outputs DIFFER"))
    print(f"\nload average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
