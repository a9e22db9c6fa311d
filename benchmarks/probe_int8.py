"""Probe, not product: would int8 (VNNI) inference pay on this CPU, and does it agree with fp32?

scenestyle does not run int8 yet. This measures torch's FX static quantisation (x86 backend,
default qconfig: per-channel weights, histogram-calibrated activations) against a plain fp32 NCHW
forward, one image per model, in one process:

- DnCNN-25 with the real KAIR weights from ../shared on a noisy Set12 image (calibrated on five
  other noisy Set12 images), so its agreement figure means something;
- RRDBNet, SRVGGNetCompact and ResnetGenerator-9 with random seeded weights: their speed is
  real, their agreement is not (random networks amplify quantisation error).

    python benchmarks/probe_int8.py
"""

from __future__ import annotations

import glob
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from scenestyle.engine.device import cpu_flags, cpu_model_name
from scenestyle.loading import load_model
from scenestyle.nn import build

SHARED = Path(__file__).resolve().parents[2] / "shared"
RANDOM = [("RRDBNet x4", "RRDBNet", dict(num_in_ch=3, num_out_ch=3, scale=4), 128),
          ("SRVGGNetCompact x4", "SRVGGNetCompact", dict(upscale=4), 256),
          ("ResnetGenerator-9", "ResnetGenerator", dict(n_blocks=9), 256)]


def quantise(model: torch.nn.Module, calibration: list[torch.Tensor]) -> torch.nn.Module:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    prepared = prepare_fx(model, get_default_qconfig_mapping("x86"), example_inputs=(calibration[0],))
    with torch.no_grad():
        for x in calibration:
            prepared(x)
    return convert_fx(prepared)


def timed(model: torch.nn.Module, x: torch.Tensor, repeat: int = 3) -> tuple[torch.Tensor, float]:
    with torch.no_grad():
        out = model(x)  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeat):
            model(x)
    return out, (time.perf_counter() - t0) / repeat


def row(name: str, model: torch.nn.Module, x: torch.Tensor, calibration: list[torch.Tensor], weights: str) -> str:
    ref, t32 = timed(model, x)
    out, t8 = timed(quantise(model, calibration), x)
    lo, hi = model.value_range
    mse = torch.mean((out.double() - ref.double()) ** 2).item()
    db = 10 * math.log10((hi - lo) ** 2 / mse)
    return f"| {name} | {weights} | {x.shape[-1]}² | {t32 * 1e3:.0f} | {t8 * 1e3:.0f} | {t32 / t8:.2f}x | {db:.1f} |"


def noisy_gray(path: str, gen: torch.Generator) -> torch.Tensor:
    clean = torch.from_numpy(np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255)[None, None]
    return clean + torch.randn(clean.shape, generator=gen) * 25 / 255


def main() -> None:
    warnings.filterwarnings("ignore")  # torch.ao.quantization deprecation notices
    flags = cpu_flags()
    print(f"CPU: {cpu_model_name()}; " + ", ".join(f"{f}={'yes' if f in flags else 'no'}"
                                                 for f in ("avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16")))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| model | weights | input | fp32 NCHW ms | int8 ms | speedup | int8 vs fp32 dB |")
    print("|---|---|---|---|---|---|---|")
    set12 = sorted(glob.glob(str(SHARED / "data/eval/Set12/*.png")))
    dncnn = SHARED / "weights/kair_dncnn/dncnn_25.pth"
    if set12 and dncnn.exists():
        gen = torch.Generator().manual_seed(0)
        model = load_model(str(dncnn), task="denoise").module.eval()
        print(row("DnCNN-25 gray", model, noisy_gray(set12[0], gen), [noisy_gray(p, gen) for p in set12[1:6]], "KAIR (real)"),
              flush=True)
    for name, arch, kwargs, side in RANDOM:
        torch.manual_seed(0)
        model = build(arch, **kwargs).eval()
        x = torch.rand(1, 3, side, side)
        print(row(name, model, x, [x, torch.rand_like(x)], "random"), flush=True)


if __name__ == "__main__":
    main()
