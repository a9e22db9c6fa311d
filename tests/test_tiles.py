"""Tiled inference: tiled output matches whole-image output; OOM retry; instance-norm statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import TINY
from test_nn import NOT_GENERATORS
from torch import nn

from scenestyle.engine import memory, norm_stats, tiles
from scenestyle.engine.device import Placement
from scenestyle.engine.norm_stats import frozen_instance_norm, instance_norm_stats
from scenestyle.engine.tiles import model_blocks, run_model
from scenestyle.engine.windows import axis_weights, axis_windows, even_core, fewest_pixels_tile, grid
from scenestyle.errors import ScenestyleError, UsageError
from scenestyle.nn import ModelMeta, build, describe, list_archs

FP32 = Placement(torch.device("cpu"), torch.float32, True, None, "test")
NCHW = Placement(torch.device("cpu"), torch.float32, False, None, "test")


# ---------------------------------------------------------------- tiny stand-ins for scenestyle.nn archs


def meta(
    task: str = "denoise", *, scale: int = 1, value_range=(0.0, 1.0), size_multiple: int = 1, halo: int = 0, channels: int = 3
) -> ModelMeta:
    """What the loader would say about a stand-in."""
    return ModelMeta(
        arch="stand-in",
        task=task,
        in_channels=channels,
        out_channels=channels,
        scale=scale,
        size_multiple=size_multiple,
        halo=halo,
        value_range=value_range,
    )


class TinyDnCNN(nn.Module):
    """DnCNN-like: plain 3x3 conv stack, scale 1, residual output."""

    def __init__(self, channels: int = 3, features: int = 16, depth: int = 6, halo: int = 6):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, features, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(features, features, 3, padding=1), nn.ReLU()]
        layers.append(nn.Conv2d(features, channels, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.meta = meta("denoise", halo=halo, channels=channels)  # a test convenience: the engine reads it as an argument

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)


class TinySRVGG(nn.Module):
    """SRVGGNetCompact-like: conv + PReLU body, pixel shuffle, plus nearest-upsampled input."""

    def __init__(self, scale: int = 2, features: int = 16, num_conv: int = 4, halo: int = 8):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, features, 3, padding=1), nn.PReLU(features)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(features, features, 3, padding=1), nn.PReLU(features)]
        layers += [nn.Conv2d(features, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale)]
        self.body = nn.Sequential(*layers)
        self.scale = scale
        self.meta = meta("upscale", scale=scale, halo=halo)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest")


class TinyResnetGenerator(nn.Module):
    """CycleGAN ResnetGenerator-like: reflection pad, 2 stride-2 downs, resnet blocks, 2 ups, InstanceNorm."""

    def __init__(self, ngf: int = 8, n_blocks: int = 2):
        super().__init__()

        def norm(c: int) -> nn.Module:
            return nn.InstanceNorm2d(c, affine=False, track_running_stats=False)

        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), norm(ngf), nn.ReLU()]
        layers += [nn.Conv2d(ngf, 2 * ngf, 3, 2, 1), norm(2 * ngf), nn.ReLU()]
        layers += [nn.Conv2d(2 * ngf, 4 * ngf, 3, 2, 1), norm(4 * ngf), nn.ReLU()]
        self.down = nn.Sequential(*layers)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.ReflectionPad2d(1),
                nn.Conv2d(4 * ngf, 4 * ngf, 3),
                norm(4 * ngf),
                nn.ReLU(),
                nn.ReflectionPad2d(1),
                nn.Conv2d(4 * ngf, 4 * ngf, 3),
                norm(4 * ngf),
            )
            for _ in range(n_blocks)
        )
        self.up = nn.Sequential(
            nn.ConvTranspose2d(4 * ngf, 2 * ngf, 3, 2, 1, output_padding=1),
            norm(2 * ngf),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * ngf, ngf, 3, 2, 1, output_padding=1),
            norm(ngf),
            nn.ReLU(),
            nn.ReflectionPad2d(3),
            nn.Conv2d(ngf, 3, 7),
            nn.Tanh(),
        )
        # halo not a multiple of 4 on purpose: run_model rounds it up
        self.meta = meta("style", value_range=(-1.0, 1.0), size_multiple=4, halo=15 + 8 * n_blocks + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.down(x)
        for b in self.blocks:
            y = y + b(y)
        return self.up(y)


def seeded(model: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    for p in model.parameters():
        nn.init.normal_(p, std=1.0 / math.sqrt(max(p[0].numel(), 1)) if p.dim() > 1 else 0.05)
    return model.eval()


def image(h: int, w: int, lo: float = 0.0, hi: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Smooth gradients plus fine texture, like a photo: float32 1x3xHxW in [lo, hi]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    planes = [
        0.5
        + 0.3 * torch.sin(3 * xx + 2 * yy + c)
        + 0.1 * torch.sin(60 * xx * (c + 1)) * torch.cos(45 * yy)
        + 0.03 * torch.randn(h, w, generator=g)
        for c in range(3)
    ]
    return (torch.stack(planes).clamp(0, 1) * (hi - lo) + lo).unsqueeze(0)


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 1.0) -> float:
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return float("inf") if mse == 0 else 10 * math.log10(peak**2 / mse)


# ---------------------------------------------------------------- geometry


@pytest.mark.parametrize(
    "length,core,halo,multiple",
    [(100, 20, 10, 1), (64, 48, 8, 1), (37, 4, 4, 1), (50, 4, 13, 1), (33, 4, 9, 1)]
    + [(1224, 612, 108, 4), (4096, 670, 6, 2), (816, 408, 108, 4)],
)
def test_axis_windows_cover_every_pixel_with_halo_context(length, core, halo, multiple):
    window, starts = axis_windows(length, core, halo, multiple)
    assert starts[0] == 0 and starts[-1] + window == length and window % multiple == 0
    assert all(s % multiple == 0 for s in starts) and starts == sorted(set(starts))
    assert len(starts) <= -(-length // core)
    for p in range(length):
        ok = any(s <= p < s + window and (s == 0 or p - s >= halo) and (s + window >= length or s + window - 1 - p >= halo) for s in starts)
        assert ok, p
    # never bigger than a core with a halo on both sides (what bounds the memory a window takes)
    assert window <= min(even_core(length, core, multiple) + 2 * halo, length)


def test_two_windows_carry_one_halo_each():
    """Border windows need context on their inner side only: 1224 px in two windows with a 108-px
    halo run 720 px each (612 + 108), overlapping by two halos, not 828 (612 + 2 x 108)."""
    assert axis_windows(1224, 612, 108, 4) == (720, [0, 504])
    assert axis_windows(1224, 1224, 108, 4) == (1224, [0])
    assert axis_windows(200, 100, 100, 4) == (200, [0])  # two windows would each need the whole side


# ---------------------------------------------------------------- tiled == whole


@pytest.mark.parametrize(
    "model,size,tile",
    [
        (TinyDnCNN(), (61, 83), 16),
        (TinyDnCNN(halo=3), (64, 64), 16),  # halo smaller than the receptive field: feathering hides it
        (TinySRVGG(scale=2), (48, 40), 16),
        (TinySRVGG(scale=4, halo=4), (40, 52), 16),
    ],
    ids=["dncnn", "dncnn-short-halo", "srvgg-x2", "srvgg-x4-short-halo"],
)
def test_tiled_matches_whole_image(model, size, tile):
    model = seeded(model)
    x = image(*size)
    whole = run_model(model, model.meta, x, FP32, tile=0)
    tiled = run_model(model, model.meta, x, FP32, tile=tile, batch_size=3)
    assert whole.shape == tiled.shape == (1, 3, size[0] * model.meta.scale, size[1] * model.meta.scale)
    assert whole.dtype == torch.float32 and whole.device.type == "cpu"
    assert psnr(tiled, whole) >= 40


def test_whole_image_equals_plain_forward_and_pads_to_size_multiple():
    model = seeded(TinyResnetGenerator())
    x = image(30, 45, -1, 1)  # neither side a multiple of 4
    got = run_model(model, model.meta, x, NCHW, tile=0)
    padded = nn.functional.pad(x, (0, 3, 0, 2), mode="reflect")
    with torch.inference_mode():
        want = model(padded)[:, :, :30, :45]
    assert got.shape == (1, 3, 30, 45)
    assert torch.allclose(got, want, atol=1e-5)


def test_batched_equals_unbatched_and_progress_counts():
    model = seeded(TinyDnCNN())
    x = image(50, 50)
    calls: list[tuple[int, int]] = []
    a = run_model(model, model.meta, x, FP32, tile=16, batch_size=1, progress=lambda d, t: calls.append((d, t)))
    b = run_model(model, model.meta, x, FP32, tile=16, batch_size=4)
    assert torch.allclose(a, b, atol=1e-5)
    total = calls[-1][1]
    assert total > 1 and calls[0] == (0, total) and calls[-1] == (total, total)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_bf16_placement_returns_float32_close_to_fp32():
    model = seeded(TinyDnCNN())
    x = image(32, 32)
    ref = run_model(model, model.meta, x, FP32, tile=0)
    bf = Placement(torch.device("cpu"), torch.bfloat16, True, None, "test")
    bf_model = seeded(TinyDnCNN()).to(torch.bfloat16)
    out = run_model(bf_model, bf_model.meta, x, bf, tile=16)
    assert out.dtype == torch.float32
    assert 25 < psnr(out, ref) < float("inf")


@pytest.mark.parametrize("length,core,multiple,halo", [(4096, 670, 2, 6), (1000, 512, 4, 20), (37, 8, 1, 3), (300, 300, 4, 8)])
def test_neighbouring_windows_overlap_by_two_halos(length, core, multiple, halo):
    window, starts = axis_windows(length, core, halo, multiple)
    assert len(starts) == -(-length // core)
    overlaps = [a + window - b for a, b in zip(starts, starts[1:])]
    # evenly spread: only rounding to the multiple (and the last, clamped window) adds overlap
    assert all(o <= 2 * halo + len(starts) * multiple for o in overlaps), overlaps
    even = even_core(length, core, multiple)  # the cores the instance-norm statistics tile with
    assert even <= core and even % multiple == 0 and -(-length // even) == -(-length // core)


def _reference_blend(model, x, tile, halo, scale):
    """The blend written the plain way: every window's weighted output and weight added into full-size maps."""
    _, c, h, w = x.shape
    win_h, win_w, row_starts, col_starts = grid(h, w, tile, halo, 1)
    acc = torch.zeros(c, h * scale, w * scale)
    wsum = torch.zeros(h * scale, w * scale)
    for ys in row_starts:
        for xs in col_starts:
            with torch.no_grad():
                y = model(x[:, :, ys : ys + win_h, xs : xs + win_w])[0]
            wt = axis_weights(ys, win_h, h, scale, halo)[:, None] * axis_weights(xs, win_w, w, scale, halo)[None]
            acc[:, ys * scale : (ys + win_h) * scale, xs * scale : (xs + win_w) * scale] += y * wt
            wsum[ys * scale : (ys + win_h) * scale, xs * scale : (xs + win_w) * scale] += wt
    return (acc / wsum)[None]


# (h, w, tile, halo, batch): cores narrower than 2 halos (a window overlaps non-neighbours), clamped
# last windows, batches that span window rows, one window row, one window column
@pytest.mark.parametrize(
    "h,w,tile,halo,batch", [(40, 52, 16, 4, 1), (37, 29, 8, 6, 3), (24, 70, 12, 8, 5), (70, 20, 20, 2, 2), (33, 33, 4, 9, 7)]
)
def test_sink_blocks_tile_the_output_once_and_match_the_plain_blend(h, w, tile, halo, batch):
    model = seeded(TinySRVGG(scale=2, halo=halo))
    x = image(h, w)
    ref = _reference_blend(model, x, tile, halo, 2)
    got = torch.full_like(ref[0], float("nan"))
    seen = torch.zeros(ref.shape[2:], dtype=torch.int32)

    for r, c, block in model_blocks(model, model.meta, x, FP32, tile=tile, batch_size=batch):
        got[:, r : r + block.shape[1], c : c + block.shape[2]] = block
        seen[r : r + block.shape[1], c : c + block.shape[2]] += 1
    assert bool((seen == 1).all()), "every output pixel is handed over exactly once"
    torch.testing.assert_close(got[None], ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(run_model(model, model.meta, x, FP32, tile=tile, batch_size=batch), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("tile,pattern", [(-1, "positive multiple of 4"), (30, "try 28")])
def test_bad_tile_is_a_usage_error(tile, pattern):
    with pytest.raises(UsageError, match=pattern):
        model = seeded(TinyResnetGenerator())
        run_model(model, model.meta, image(32, 32, -1, 1), FP32, tile=tile)


def test_wrong_input_is_rejected():
    model = seeded(TinyDnCNN())
    with pytest.raises(UsageError, match="3-channel"):
        run_model(model, model.meta, torch.rand(1, 1, 16, 16), FP32)
    with pytest.raises(ValueError, match="1xCxHxW tensor on the CPU"):
        run_model(model, model.meta, torch.rand(3, 16, 16), FP32)
    with pytest.raises(ValueError, match="float32 \\(or uint8/uint16\\)"):
        run_model(model, model.meta, torch.zeros(1, 3, 16, 16, dtype=torch.int32), FP32)


@pytest.mark.parametrize("dtype,top", [(torch.uint8, 255), (torch.uint16, 65535)])
@pytest.mark.parametrize("tile", [0, 8])
def test_integer_samples_run_as_their_unit_floats(dtype, top, tile):
    """A photo kept as 8/16-bit samples is scaled to [0, 1] window by window: the same result as the float photo."""
    model = seeded(TinyDnCNN())
    samples = torch.randint(0, top + 1, (1, 3, 21, 26), dtype=torch.int64).to(dtype)
    want = run_model(model, model.meta, samples.float() / top, FP32, tile=tile)
    torch.testing.assert_close(run_model(model, model.meta, samples, FP32, tile=tile), want, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- memory: auto tile and OOM


def test_auto_tile_whole_image_when_memory_is_plenty(monkeypatch):
    model = seeded(TinyDnCNN())
    monkeypatch.setattr(memory, "available_memory", lambda device: 1 << 40)
    calls: list[tuple[int, int]] = []
    run_model(model, model.meta, image(40, 40), FP32, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (1, 1)


def test_auto_tile_splits_when_memory_is_short(monkeypatch):
    model = seeded(TinyDnCNN())
    x = image(96, 96)
    bpp = memory.bytes_per_input_pixel(model, model.meta, FP32)
    assert bpp > 16 * 4  # 16 float32 feature maps at least
    monkeypatch.setattr(memory, "available_memory", lambda device: int(2 * bpp * 40 * 40) + 4 * x.numel())
    calls: list[tuple[int, int]] = []
    out = run_model(model, model.meta, x, FP32, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1][1] > 1
    assert psnr(out, run_model(model, model.meta, x, FP32, tile=0)) >= 40


class OOMAbove(nn.Module):
    """Wraps a model and raises CUDA OOM for inputs larger than ``limit`` pixels per side."""

    def __init__(self, inner: nn.Module, limit: int):
        super().__init__()
        self.inner, self.limit, self.sides = inner, limit, []
        self.meta = inner.meta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sides.append(max(x.shape[-2:]))
        if max(x.shape[-2:]) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(x)


def test_oom_halves_tile_and_retries():
    inner = seeded(TinyDnCNN(halo=4))
    model = OOMAbove(inner, limit=40)
    x = image(100, 100)
    out = run_model(model, model.meta, x, FP32, tile=64)
    # 64 px cores: two windows over 100 px, (100 + 2*4)/2 = 54 px each, fail; 32: four windows of
    # (100 + 6*4)/4 = 31 px fit
    assert model.sides[0] == 54 and max(model.sides[1:]) == 31
    assert psnr(out, run_model(inner, inner.meta, x, FP32, tile=0)) >= 40


def test_oom_on_whole_image_then_tiles():
    model = OOMAbove(seeded(TinyDnCNN(halo=4)), limit=40)
    out = run_model(model, model.meta, image(64, 64), FP32, tile=0)
    assert out.shape == (1, 3, 64, 64) and model.sides[0] == 64


def test_oom_at_smallest_tile_gives_up_with_a_clear_error():
    model = OOMAbove(seeded(TinyDnCNN(halo=4)), limit=4)
    with pytest.raises(ScenestyleError, match="out of memory"):
        run_model(model, model.meta, image(64, 64), FP32, tile=32)


def test_other_errors_are_not_retried():
    class Broken(TinyDnCNN):
        def forward(self, x):
            raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_model(Broken(), Broken().meta, image(32, 32), FP32, tile=8)


# ---------------------------------------------------------------- instance norm


def test_frozen_instance_norm_uses_recorded_stats_and_restores():
    model = seeded(TinyResnetGenerator())
    x = image(64, 64, -1, 1)
    stats = instance_norm_stats(model, x)
    assert len(stats) == 3 + 2 * 2 + 2  # 3 down, 2 per block, 2 up
    with torch.inference_mode():
        plain = model(x)
        with frozen_instance_norm(stats):
            frozen = model(x)  # same image: its own statistics, same result
            half = model(x[:, :, :32])  # half image: whole-image statistics, not its own
        assert torch.allclose(frozen, plain, atol=1e-4)
        assert not torch.allclose(half, model(x[:, :, :32]), atol=1e-3)
    assert all("forward" not in m.__dict__ for m in stats)


def test_frozen_instance_norm_restores_on_error():
    model = seeded(TinyResnetGenerator())
    stats = instance_norm_stats(model, image(32, 32, -1, 1))
    with pytest.raises(RuntimeError):
        with frozen_instance_norm(stats):
            model(torch.rand(1, 5, 32, 32))  # wrong channel count
    assert all("forward" not in m.__dict__ for m in stats)


@pytest.mark.slow
def test_instance_norm_global_stats_beat_per_tile_stats(monkeypatch):
    model, m = seeded(build("ResnetGenerator", ngf=8, n_blocks=2)), describe("ResnetGenerator", dict(ngf=8, n_blocks=2))
    x = image(1024, 1024, -1, 1)
    whole = run_model(model, m, x, FP32, tile=0)
    tiled = run_model(model, m, x, FP32, tile=256)
    global_db = psnr(tiled, whole, peak=2.0)

    # naive tiling: no whole-image pass, each tile normalised by its own statistics
    monkeypatch.setattr(tiles, "whole_image_stats", lambda *a, **k: {})
    naive = run_model(model, m, x, FP32, tile=256)
    naive_db = psnr(naive, whole, peak=2.0)
    assert global_db >= 35, global_db
    assert naive_db < global_db - 3, (naive_db, global_db)


def test_stats_from_downscaled_image_beat_per_tile_stats(monkeypatch):
    model = seeded(TinyResnetGenerator())
    x = image(256, 256, -1, 1)
    full = run_model(model, model.meta, x, FP32, tile=0)
    approx_db = psnr(run_model(model, model.meta, x, FP32, tile=64, stats_max_pixels=128 * 128), full, peak=2.0)
    monkeypatch.setattr(tiles, "whole_image_stats", lambda *a, **k: {})
    naive_db = psnr(run_model(model, model.meta, x, FP32, tile=64), full, peak=2.0)
    # a random net on fine texture is a hard case (about 21 vs 15 dB); trained generators fare better
    assert approx_db > naive_db + 3, (approx_db, naive_db)


def test_exact_statistics_from_tiled_prefix_passes_match_the_whole_image(monkeypatch):
    model = seeded(TinyResnetGenerator())
    x = image(256, 192, -1, 1)
    full = run_model(model, model.meta, x, FP32, tile=0)
    # the ceiling: statistics from one whole-image pass (tiles still differ a little: halo, feathering)
    ceiling_db = psnr(run_model(model, model.meta, x, FP32, tile=64), full, peak=2.0)
    monkeypatch.setattr(norm_stats, "EXACT_NORMS", 10**6)  # every norm from tiled prefix passes
    exact_db = psnr(run_model(model, model.meta, x, FP32, tile=64, stats_max_pixels=96 * 96), full, peak=2.0)
    assert exact_db > ceiling_db - 0.1 and exact_db > 50, (exact_db, ceiling_db)
    monkeypatch.setattr(norm_stats, "EXACT_NORMS", 0)
    copy_db = psnr(run_model(model, model.meta, x, FP32, tile=64, stats_max_pixels=96 * 96), full, peak=2.0)
    monkeypatch.setattr(norm_stats, "EXACT_NORMS", 1)
    first_db = psnr(run_model(model, model.meta, x, FP32, tile=64, stats_max_pixels=96 * 96), full, peak=2.0)
    assert copy_db < first_db < exact_db, (copy_db, first_db, exact_db)


REAL_ARCHS = [
    ("DnCNN", dict(in_nc=3, out_nc=3, nc=8, nb=6), (0.0, 1.0)),
    ("SRVGGNetCompact", dict(num_feat=8, num_conv=4, upscale=2), (0.0, 1.0)),
    ("SRVGGNetCompact", dict(num_feat=8, num_conv=4, upscale=4), (0.0, 1.0)),
    ("RRDBNet", dict(num_feat=8, num_block=1, num_grow_ch=4, scale=4), (0.0, 1.0)),
    ("CompactGenerator", dict(ngf=8, n_blocks=2), (-1.0, 1.0)),
]


@pytest.mark.parametrize("name,kwargs,vrange", REAL_ARCHS, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(REAL_ARCHS)])
def test_real_architectures_tiled_match_whole(name, kwargs, vrange):
    model, m = seeded(build(name, **kwargs)), describe(name, kwargs)
    lo, hi = vrange
    x = image(52, 68, lo, hi)
    whole = run_model(model, m, x, FP32, tile=0)
    tiled = run_model(model, m, x, FP32, tile=16, batch_size=2)
    assert tiled.shape == (1, m.out_channels, 52 * m.scale, 68 * m.scale)
    assert psnr(tiled, whole, peak=hi - lo) >= 40


@pytest.mark.parametrize("name", [n for n in list_archs() if n not in NOT_GENERATORS])
@pytest.mark.parametrize("h, w", [(1, 1), (1, 9), (7, 1), (3, 6)])
def test_every_generator_runs_a_photo_a_few_pixels_across(name, h, w):
    """A side shorter than two size multiples would leave the net's deepest map 1 px across, where
    reflect padding (and instance norm) stop: it is padded for the pass, and the result cropped."""
    model, m = seeded(build(name, **TINY[name])), describe(name, TINY[name])
    lo, hi = m.value_range
    x = image(h, w, lo, hi)[:, : m.in_channels]
    y = run_model(model, m, x, FP32, tile=0, sigma=25 / 255 if m.takes_sigma else None)
    assert y.shape == (1, m.out_channels, h * m.scale, w * m.scale) and torch.isfinite(y).all()


class _SignedIdentity(nn.Module):
    """Returns its input; works in [-1, 1] and holds one bf16 parameter, like a prepared bf16 generator."""

    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.ones((), dtype=torch.bfloat16))
        self.meta = meta("style", value_range=(-1.0, 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain


def test_unit_range_maps_to_the_models_range_before_the_bf16_cast():
    from scenestyle.engine.convert import UnitRange

    bf16 = Placement(torch.device("cpu"), torch.bfloat16, True, None, "test")
    x = torch.full((1, 3, 8, 8), 0.5 + 0.0007)  # mid-grey: bf16 of 0.5007 in [0, 1] rounds to 0.5
    inner = _SignedIdentity()
    y = run_model(UnitRange(inner, inner.meta.value_range), meta("style"), x, bf16, tile=0)
    # mapped first, 0.0014 in [-1, 1] keeps bf16's relative precision: back within 1e-5 of the input
    assert torch.allclose(y, x, atol=1e-5), (y.flatten()[0].item(), x.flatten()[0].item())


@pytest.mark.parametrize("h,w", [(816, 1224), (864, 1152), (1000, 1000), (748, 1332), (1224, 816), (300, 400)])
def test_fewest_pixels_tile_keeps_windows_under_the_budget_and_beats_fixed_tiles(h, w):
    halo, m, budget = 108, 4, 700_000
    tile = fewest_pixels_tile(h, w, halo, m, budget)
    win_h, win_w, ys, xs = grid(h, w, tile, halo, m)
    assert win_h * win_w <= budget
    ran = len(ys) * len(xs) * win_h * win_w
    for other in (256, 512, 640):  # every fixed tile under the budget runs at least as many pixels
        oh, ow, oys, oxs = grid(h, w, other, halo, m)
        assert oh * ow > budget or ran <= len(oys) * len(oxs) * oh * ow
    if h * w <= budget:
        assert len(ys) == len(xs) == 1  # a photo that fits runs whole
    else:
        assert len(ys) * len(xs) >= 2


def test_fewest_pixels_tile_splits_a_three_by_two_working_size_in_two():
    win_h, win_w, ys, xs = grid(816, 1224, fewest_pixels_tile(816, 1224, 108, 4, 700_000), 108, 4)
    assert (len(ys), len(xs)) == (1, 2) and win_h == 816
