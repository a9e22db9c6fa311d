"""Where a 12 MP `stylize --style oil` spends its time and memory, stage by stage, in one process.

    python benchmarks/probe_stylize_stages.py [--mp 12]

Imports (torch, OpenVINO, the engine), reading the JPEG, loading and placing the model, shrinking
to the working size, the model pass, the guided upsampling and encoding, and what ending the
interpreter normally costs. RSS is the process's resident set after each stage (``VmRSS``), the
peak its high-water mark (``VmHWM``), in MiB. The photo is made as in ``bench_stylize.py``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"


MAKE_PHOTO = """
import sys
from pathlib import Path
from PIL import Image
src, mp, out = sorted(Path(sys.argv[1]).iterdir())[0], float(sys.argv[2]), sys.argv[3]
with Image.open(src) as im:
    f = (mp * 1e6 / (im.width * im.height)) ** 0.5
    im.convert("RGB").resize((round(im.width * f), round(im.height * f)), Image.Resampling.LANCZOS).save(out, quality=95)
"""


def _mem() -> tuple[int, int]:
    d = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            d[line.split(":")[0]] = int(line.split()[1]) // 1024
    return d.get("VmRSS", 0), d.get("VmHWM", 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mp", type=float, default=12.0)
    args = ap.parse_args()
    tmp_photo = tempfile.TemporaryDirectory()
    photo = Path(tmp_photo.name) / "photo.jpg"
    # made in a child process, so that its 25 MP resize leaves nothing in this one's memory
    subprocess.run([sys.executable, "-c", MAKE_PHOTO, str(SHARED / "data/photos/wallpapers"), str(args.mp), str(photo)], check=True)
    rows, last = [], [time.perf_counter()]

    def lap(stage: str) -> None:
        now = time.perf_counter()
        rows.append((stage, now - last[0], *_mem()))
        last[0] = now

    import numpy  # noqa: F401
    import PIL.Image  # noqa: F401

    lap("python, numpy, Pillow")
    import torch  # noqa: F401

    lap("import torch")
    from scenestyle.engine.openvino_import import import_openvino

    import_openvino()  # as the engine does: with OpenVINO's telemetry declined
    lap("import openvino")
    from scenestyle.engine import guided, tasks
    from scenestyle.engine.device import choose_placement, prepare
    from scenestyle.engine.resample import resize_in_bands
    from scenestyle.engine.run import WORK_PIXELS, save
    from scenestyle.imaging import read_picture
    from scenestyle.loading import load_model

    lap("import the engine")
    with tempfile.TemporaryDirectory() as tmp:
        last[0] = time.perf_counter()
        pic = read_picture(photo, samples=True)
        lap(f"read the JPEG ({pic.pixels.shape[1]}x{pic.pixels.shape[0]})")
        loaded = load_model("style-oil", task="style", offline=True)
        placement = choose_placement("auto", "auto", model=loaded.module, meta=loaded.meta, backend="auto")
        model = prepare(loaded.module, loaded.meta, placement)
        lap(f"load and place the model ({placement.backend}, {placement.precision})")
        proc = tasks.Processor(model=model, meta=loaded.meta, placement=placement, task="style", work_pixels=WORK_PIXELS)
        h, w, _ = pic.pixels.shape
        hs, ws = guided.work_shape(h, w, WORK_PIXELS, loaded.meta.size_multiple)
        small = resize_in_bands(pic.pixels, hs, ws)
        lap(f"shrink to the working size ({ws}x{hs})")
        tile = proc.work_tile(hs, ws)
        proc._run(small, model, placement, tile=tile)
        lap(f"model pass (core tile {tile})")
        result = proc(pic)
        save(Path(tmp) / "out.jpg", result, None, 95)
        lap("the whole stylize again: shrink, model, guided upsampling, encode")
    out = subprocess.run(
        [sys.executable, "-c", "import time, sys; t = time.perf_counter(); import torch, openvino; print(time.perf_counter() - t)"],
        capture_output=True,
        text=True,
        check=True,
    )
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, openvino"], check=True)
    whole = time.perf_counter() - t
    print("| stage | seconds | RSS MiB | peak MiB |\n|---|---|---|---|")
    for stage, s, rss, hwm in rows:
        print(f"| {stage} | {s:.3f} | {rss} | {hwm} |")
    imports = float(out.stdout)
    print(f"\na process that only imports torch and openvino: {whole:.2f} s, the imports {imports:.2f} s of it (rest: start-up, teardown)")
    print(f"command: python benchmarks/probe_stylize_stages.py {' '.join(sys.argv[1:])}")
    tmp_photo.cleanup()


if __name__ == "__main__":
    main()
