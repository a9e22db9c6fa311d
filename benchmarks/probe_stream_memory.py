"""Peak RSS of `scenestyle stylize` on a 61 MP photo, written while computed vs computed whole.

The 30 MP wallpaper from ../shared is resized to 9600x6400 (61 MP, a high-resolution camera's
size) and stylized by a seeded CompactGenerator through the real CLI, once with the default
streaming threshold and once with streaming switched off, each in its own process (each child
reports its own peak RSS, ru_maxrss). Prints one line per run and the PSNR
between the two outputs (they may differ slightly: the tile size follows the memory budget,
which is larger when the result is not held).

    python benchmarks/probe_stream_memory.py
"""

from __future__ import annotations

import glob
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
SIZE = (9600, 6400)

RUN = """
import resource, sys
import scenestyle.engine.tasks as tasks
tasks.STREAM_PIXELS = {limit}
from scenestyle.cli import app
sys.argv = ["scenestyle", "stylize", {src!r}, "-o", {out!r}, "--weights", {weights!r}, "--json"]
try:
    app()
except SystemExit as e:
    code = e.code
print("peak_rss_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def main() -> None:
    from scenestyle.nn import build

    Image.MAX_IMAGE_PIXELS = None
    [path] = glob.glob(str(SHARED / "data/photos/wallpapers/*6720x4480*.jpg"))
    with tempfile.TemporaryDirectory() as tmp:
        src, weights = Path(tmp) / "photo61.jpg", Path(tmp) / "model.safetensors"
        with Image.open(path) as im:
            im.convert("RGB").resize(SIZE, Image.BICUBIC).save(src, quality=92)
        torch.manual_seed(0)
        save_file({k: v.contiguous() for k, v in build("CompactGenerator").state_dict().items()}, str(weights))
        outs = {}
        for label, limit in (("written while computed", 16_000_000), ("computed whole", 1 << 62)):
            out = Path(tmp) / f"{limit}.jpg"
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", RUN.format(limit=limit, src=str(src), out=str(out), weights=str(weights))],
                capture_output=True,
                text=True,
                cwd=HERE.parent,
            )
            secs = time.perf_counter() - t0
            if proc.returncode != 0:
                raise SystemExit(f"{label}: failed: {proc.stderr.strip().splitlines()[-1:]}")
            rss = int(proc.stderr.split("peak_rss_kb")[-1])
            report = json.loads(proc.stdout)
            print(
                f"{label}: {SIZE[0]}x{SIZE[1]} CompactGenerator ({report['parameters']['precision']}) to JPEG, "
                f"{secs:.1f} s, peak RSS {rss / 1024:.0f} MB",
                flush=True,
            )
            outs[label] = np.asarray(Image.open(out), dtype=np.float64)
        a, b = outs.values()
        print(f"PSNR between the two outputs: {10 * np.log10(255**2 / np.mean((a - b) ** 2)):.1f} dB")


if __name__ == "__main__":
    main()
