"""16-bit PNG and TIFF of a 25 MP photo: the writers and readers before and after the move to
imagecodecs/tifffile, side by side in one run, each case in its own process (wall time and
peak RSS, VmHWM).

The 6144x4096 wallpaper from ../shared is decoded and widened to 16-bit RGB: its 8 bits are
the high byte and the low byte is noise, as in a model's output quantised to 16 bits (it does
not compress away). Cases:

* write PNG: ``PngWriter`` (band encoder, unchanged) and ``imagecodecs.png_encode`` (whole array);
* write TIFF: the numpy/Pillow-IFD ``TiffWriter`` of ``--baseline`` and today's tifffile one;
* read PNG and TIFF: ``--baseline``'s Pillow-decoder route (``_png16``) and today's ``read_picture``.

The baseline's modules are taken from git (``git show REV:scenestyle/_writers.py``), so both
sides run from this checkout. "base MB" is the child's RSS before the case (the input held).

    python benchmarks/bench_io16.py [--baseline b32b540] [--only write-png ...] [--photo JPEG]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WALLPAPER = ROOT.parent / "shared" / "data" / "photos" / "wallpapers" / "budgie_sunset-beach_6144x4096_CC0.jpg"

CHILD = r"""
import io, json, sys, time
import numpy as np
sys.path.insert(0, {old!r})
case, data, out = {case!r}, {data!r}, {out!r}

def rss_mb():
    # VmHWM, not ru_maxrss: Linux carries the parent's peak across fork and exec into ru_maxrss
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

def writer_case(make):
    samples = np.load(data)
    base = rss_mb()
    t = time.perf_counter()
    with open(out, "w+b") as f:
        make(f, samples)
    return base, time.perf_counter() - t

if case == "write-png/PngWriter":
    from scenestyle.imaging.png import PngWriter
    from scenestyle.imaging.rows import write_array
    base, s = writer_case(lambda f, a: write_array(PngWriter(f, *a.shape, a.dtype), a))
elif case == "write-png/imagecodecs":
    import imagecodecs
    base, s = writer_case(lambda f, a: f.write(imagecodecs.png_encode(a, level=6)))
elif case == "write-tiff/baseline":
    import old_writers
    base, s = writer_case(lambda f, a: old_writers.write_array(old_writers.TiffWriter(f, *a.shape, a.dtype), a))
elif case == "write-tiff/tifffile":
    from scenestyle.imaging.tiff import TiffWriter
    from scenestyle.imaging.rows import write_array
    base, s = writer_case(lambda f, a: write_array(TiffWriter(f, *a.shape, a.dtype), a))
elif case.startswith("read-"):
    from PIL import Image
    Image.MAX_IMAGE_PIXELS = None
    base = rss_mb()
    t = time.perf_counter()
    if case.endswith("/baseline"):
        import old_png16
        with Image.open(data) as im:
            raw = old_png16.deep_rawmode(im)
            im.load()  # the baseline's read_picture decoded every file fully first
        pixels = old_png16.read_deep(data, raw).astype(np.float32) / 65535
    else:
        from scenestyle.imaging import read_picture
        pixels = read_picture(data).pixels
    s = time.perf_counter() - t
    assert pixels.shape[2] == 3
print(json.dumps(dict(case=case, seconds=s, base_mb=base, peak_mb=rss_mb())))
"""

CASES = [
    "write-png/PngWriter",
    "write-png/imagecodecs",
    "write-tiff/baseline",
    "write-tiff/tifffile",
    "read-png/baseline",
    "read-png/today",
    "read-tiff/baseline",
    "read-tiff/today",
]


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _baseline_modules(rev: str, folder: Path) -> None:
    for name, path in (("old_writers", "scenestyle/_writers.py"), ("old_png16", "scenestyle/_png16.py")):
        text = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
        (folder / f"{name}.py").write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="b32b540", help="git revision with scenestyle/_writers.py and _png16.py")
    ap.add_argument("--only", nargs="*", help="case-name prefixes, e.g. write-png read-tiff")
    ap.add_argument("--photo", type=Path, default=WALLPAPER, help="the 25 MP photo (default: the wallpaper in ../shared)")
    args = ap.parse_args()
    cases = [c for c in CASES if not args.only or any(c.startswith(p) for p in args.only)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _baseline_modules(args.baseline, folder)
        rgb = np.asarray(Image.open(args.photo).convert("RGB"))
        low = np.random.default_rng(0).integers(0, 256, rgb.shape, dtype=np.uint16)
        samples = (rgb.astype(np.uint16) << 8) | low
        np.save(folder / "samples.npy", samples)
        h, w, _ = samples.shape
        del rgb, low
        env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        print(
            f"{w}x{h} ({w * h / 1e6:.1f} MP) 16-bit RGB, {samples.nbytes / 2**20:.0f} MB of samples; {_cpu()}, "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n"
        )
        print("| case | seconds | base MB | peak RSS MB | file MB |\n|---|---|---|---|---|")
        written: dict[str, Path] = {}
        for case in cases:
            kind, who = case.split("/")
            ext = "png" if "png" in kind else "tif"
            out = folder / f"{kind}-{who}.{ext}"
            data = folder / "samples.npy"
            if kind.startswith("read-"):
                data = written.get(f"write-{ext.replace('tif', 'tiff')}") or _write_input(folder, samples, ext)
            code = CHILD.format(old=str(folder), case=case, data=str(data), out=str(out))
            run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
            if run.returncode:
                print(f"| {case} | failed: {run.stderr.strip().splitlines()[-1]} | | | |")
                continue
            r = json.loads(run.stdout.strip().splitlines()[-1])
            size = out.stat().st_size / 2**20 if out.exists() else float("nan")
            if out.exists():
                written.setdefault(kind, out)
            print(
                f"| {case} | {r['seconds']:.2f} | {r['base_mb']:.0f} | {r['peak_mb']:.0f} | {'' if size != size else f'{size:.0f}'} |",
                flush=True,
            )
        print(f"\nload average after: {os.getloadavg()[0]:.1f}")


def _write_input(folder: Path, samples: np.ndarray, ext: str) -> Path:
    """A 16-bit file for the read cases when no write case made one."""
    sys.path.insert(0, str(ROOT))
    from scenestyle.imaging.png import PngWriter
    from scenestyle.imaging.rows import write_array
    from scenestyle.imaging.tiff import TiffWriter

    path = folder / f"input.{ext}"
    with open(path, "w+b") as f:
        write_array((PngWriter if ext == "png" else TiffWriter)(f, *samples.shape, samples.dtype), samples)
    return path


if __name__ == "__main__":
    main()
