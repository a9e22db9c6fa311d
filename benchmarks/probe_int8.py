"""Probe, not product: would int8 (VNNI) inference pay on this CPU, and does it agree with fp32?

First, torch's own route for comparison: FX static quantisation (x86 backend,
default qconfig: per-channel weights, histogram-calibrated activations) against a plain fp32 NCHW
forward, one image per model, in one process:

- DnCNN-25 with the real KAIR weights from ../shared on a noisy Set12 image (calibrated on five
  other noisy Set12 images), so its agreement figure means something;
- RRDBNet, SRVGGNetCompact and ResnetGenerator-9 with random seeded weights: their speed is
  real, their agreement is not (random networks amplify quantisation error).

Then scenestyle's own int8 path (:mod:`scenestyle.engine.int8`), as the CLI runs it per photo:

- DnCNN-25 (real weights) on each noisy Set12 photo: the agreement the per-photo check measures on
  its held-out crops beside the agreement over the whole photo; and, for contrast, FX calibrated on
  synthetic check images instead of photos;
- a CompactGenerator without norms (depthwise convs), fp32 vs scenestyle's int8: why grouped convs
  stay float.

    python benchmarks/probe_int8.py
"""

from __future__ import annotations

import glob
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from scenestyle.engine.device import cpu_flags, cpu_model_name
from scenestyle.loading import load_model
from scenestyle.metrics.psnr_ssim import psnr
from scenestyle.nn import build, describe

SHARED = Path(__file__).resolve().parents[2] / "shared"
RANDOM = [
    ("RRDBNet x4", "RRDBNet", dict(num_in_ch=3, num_out_ch=3, scale=4), 128),
    ("SRVGGNetCompact x4", "SRVGGNetCompact", dict(upscale=4), 256),
    ("ResnetGenerator-9", "ResnetGenerator", dict(n_blocks=9), 256),
]


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


def row(
    name: str, model: torch.nn.Module, x: torch.Tensor, calibration: list[torch.Tensor], weights: str, value_range: tuple[float, float]
) -> str:
    ref, t32 = timed(model, x)
    t0 = time.perf_counter()
    quantised = quantise(model, calibration)  # FX prepare, calibration forwards, convert
    tq = time.perf_counter() - t0
    out, t8 = timed(quantised, x)
    lo, hi = value_range
    db = psnr(out.numpy(), ref.numpy(), peak=hi - lo)
    return f"| {name} | {weights} | {x.shape[-1]}² | {t32 * 1e3:.0f} | {t8 * 1e3:.0f} | {t32 / t8:.2f}x | {db:.1f} | {tq:.1f} |"


def noisy_gray(path: str, gen: torch.Generator) -> torch.Tensor:
    clean = torch.from_numpy(np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255)[None, None]
    return clean + torch.randn(clean.shape, generator=gen) * 25 / 255


def our_int8_on_set12(model: torch.nn.Module, meta, photos: list[torch.Tensor]) -> None:
    import scenestyle.engine.tasks as tasks
    from scenestyle.engine.device import check_image, choose_placement, prepare
    from scenestyle.engine.tasks import Processor

    tasks.MIN_PHOTO_CROPS = 16  # Set12 photos are 0.07-0.26 MP: lift the CLI's size gate so each is checked
    placement = choose_placement("cpu", "int8", model=model, meta=meta)
    proc = Processor(model=prepare(model, meta, placement), meta=meta, placement=placement, task="denoise", tile=0)
    fx = quantise(model, [check_image(meta, side=64, seed=s) for s in range(4)] + [check_image(meta, side=128, seed=9)])
    print("\n| Set12 photo | check crops dB (ours) | whole photo dB (ours) | whole photo dB (FX, synthetic calibration) |")
    print("|---|---|---|---|")
    for k, x in enumerate(photos):
        m, p, note = proc.placed_for(x[0].permute(1, 2, 0).numpy())
        check = float(note.split("int8: ")[1].split(" dB")[0]) if note and note.startswith("int8: ") else float("nan")
        with torch.inference_mode():
            ours, ref = proc.model(x), proc.fallback(x)  # --precision int8 falls back to fp32: the reference
            fx_out = fx(x)
        print(
            f"| {k + 1:02d} | {check:.1f} | {psnr(ours.numpy(), ref.numpy(), peak=1.0):.1f} "
            f"| {psnr(fx_out.numpy(), ref.numpy(), peak=1.0):.1f} |",
            flush=True,
        )


def depthwise_row() -> str:
    from scenestyle.engine.int8 import Int8Model, sample_crops

    torch.manual_seed(0)
    model = build("CompactGenerator", norm="none").eval()
    x = torch.rand(1, 3, 512, 512) * 2 - 1
    ref, t32 = timed(model, x)
    q = Int8Model(model, fallback=model)
    crops = sample_crops(x, 64, 6)
    q.fit(q, crops[::2], crops[1::2])
    _, t8 = timed(q, x)
    return (
        f"CompactGenerator (norm none, depthwise convs), 512², random: fp32 NCHW {t32 * 1e3:.0f} ms, "
        f"scenestyle int8 {t8 * 1e3:.0f} ms ({t8 / t32:.1f}x slower)"
    )


def main() -> None:
    warnings.filterwarnings("ignore")  # torch.ao.quantization deprecation notices
    flags = cpu_flags()
    print(
        f"CPU: {cpu_model_name()}; "
        + ", ".join(f"{f}={'yes' if f in flags else 'no'}" for f in ("avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16"))
    )
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| model | weights | input | fp32 NCHW ms | int8 ms | speedup | int8 vs fp32 dB | FX quantise s |")
    print("|---|---|---|---|---|---|---|---|")
    set12 = sorted(glob.glob(str(SHARED / "data/eval/Set12/*.png")))
    dncnn = SHARED / "weights/kair_dncnn/dncnn_25.pth"
    if set12 and dncnn.exists():
        gen = torch.Generator().manual_seed(0)
        loaded = load_model(str(dncnn), task="denoise")
        print(
            row(
                "DnCNN-25 gray",
                loaded.module.eval(),
                noisy_gray(set12[0], gen),
                [noisy_gray(p, gen) for p in set12[1:6]],
                "KAIR (real)",
                loaded.meta.value_range,
            ),
            flush=True,
        )
    for name, arch, kwargs, side in RANDOM:
        torch.manual_seed(0)
        model = build(arch, **kwargs).eval()
        x = torch.rand(1, 3, side, side)
        print(row(name, model, x, [x, torch.rand_like(x)], "random", describe(arch, kwargs).value_range), flush=True)
    if set12 and dncnn.exists():
        gen = torch.Generator().manual_seed(0)
        loaded = load_model(str(dncnn), task="denoise")
        our_int8_on_set12(loaded.module.eval(), loaded.meta, [noisy_gray(p, gen) for p in set12])
    print("\n" + depthwise_row())


if __name__ == "__main__":
    main()
