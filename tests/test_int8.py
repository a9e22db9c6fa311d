"""int8 convs: eligibility, calibration, the per-photo check and fallback, the placement policy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from scenestyle.engine import device as dev
from scenestyle.engine import int8
from scenestyle.engine.device import choose_placement, prepare
from scenestyle.engine.tasks import Processor
from scenestyle.errors import UsageError
from scenestyle.imaging import Picture
from scenestyle.nn import ModelMeta, build, describe

# What the loader would say about Smooth (and, for the kernel probe, a plain conv).
META = ModelMeta(arch="smooth", task="denoise", in_channels=3, out_channels=3, scale=1, size_multiple=1, halo=4, value_range=(0.0, 1.0))

# the public kernel probe: a plain conv is refused only when this torch/CPU cannot run int8 convs
# (no x86 quantised engine, or kernels that saturate, as AVX2-only CPUs' do)
KERNELS = int8.int8_blocker(nn.Conv2d(1, 1, 1), META)
needs_kernels = pytest.mark.skipif(KERNELS is not None, reason=f"int8 kernels refused on this machine: {KERNELS}")


class Smooth(nn.Module):
    """A tiny residual denoiser with tame weights, so int8 agrees with fp32 the way trained models do."""

    def __init__(self, gain: float = 0.1):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 3, 3, padding=1))
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.gain * self.body(x)


def photo(side: int = 256, seed: int = 0) -> np.ndarray:
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side
    base = np.stack([0.5 + 0.3 * np.sin(3 * xx + 2 * yy + c) for c in range(3)], axis=2)
    return np.clip(base + g.normal(0, 0.05, base.shape), 0, 1).astype(np.float32)


def with_flags(monkeypatch, *flags: str) -> None:
    monkeypatch.setattr(dev, "cpu_flags", lambda: frozenset(flags))


@pytest.mark.parametrize(
    "arch, kwargs, blocked",
    [
        ("DnCNN", dict(in_nc=1, out_nc=1, nc=8, nb=3), None),
        ("SRVGGNetCompact", dict(num_feat=8, num_conv=2, upscale=4), None),
        ("RRDBNet", dict(num_feat=8, num_block=1, num_grow_ch=4, scale=2), None),
        ("ResnetGenerator", dict(ngf=8, n_blocks=1), "normalises per instance"),
        ("FFDNet", dict(in_nc=1, out_nc=1, nc=8, nb=3), "noise level"),
        ("CompactGenerator", dict(ngf=8, n_blocks=1, norm="none"), "depthwise"),
    ],
)
def test_blocker_names_why_a_model_cannot_run_int8(arch, kwargs, blocked):
    why = int8.int8_blocker(build(arch, **kwargs), describe(arch, kwargs))
    assert why == KERNELS if blocked is None else blocked in why  # an eligible model meets only the kernel verdict


@needs_kernels
def test_int8_conv_close_to_float_and_exact_zero_padding():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1)
    q = int8.Int8Conv(conv)
    x = torch.rand(1, 4, 20, 20)
    q.mode = "calibrating"
    ref = q(x)
    q.freeze(margin=0.0)
    q.mode = "int8"
    with torch.no_grad():
        err = (q(x) - ref).abs().max().item()
    span = (ref.max() - ref.min()).item()
    assert 0 < err < 0.02 * span  # really quantised, and within a couple of output steps
    assert q.in_zero == 0  # inputs >= 0: zero (the padding value) is exactly representable


def test_freeze_before_calibration_raises():
    with pytest.raises(RuntimeError, match="before any calibration"):
        int8.Int8Conv(nn.Conv2d(1, 1, 1)).freeze()


@needs_kernels
def test_fit_reports_the_psnr_of_int8_against_fp32_on_the_check_crops():
    model = Smooth()
    q = int8.Int8Model(model, fallback=model)
    x = torch.from_numpy(photo()).permute(2, 0, 1)[None]
    crops = int8.sample_crops(x, 64, 6)
    db = q.fit(q, crops[::2], crops[1::2])
    with torch.no_grad():
        ref, out = model(crops[1]), q(crops[1])  # q is left in int8 mode
        mse = sum(float(torch.sum((q(c).double() - model(c).double()) ** 2)) for c in crops[1::2]) / (3 * 64 * 64 * 3)
    assert not torch.equal(ref, out)
    assert db == pytest.approx(10 * math.log10(1 / mse), abs=1e-6)
    assert db > 40


def test_sample_crops_spread_and_distinct():
    x = torch.arange(300 * 500, dtype=torch.float32).reshape(1, 1, 300, 500)
    crops = int8.sample_crops(x, 64, 6)
    assert len(crops) == 6 and all(c.shape == (1, 1, 64, 64) for c in crops)
    corners = {float(c[0, 0, 0, 0]) for c in crops}
    assert len(corners) == 6
    assert int8.sample_crops(x[..., :50, :], 64, 6) == []


@needs_kernels
def test_auto_picks_int8_with_vnni_and_no_amx(monkeypatch):
    with_flags(monkeypatch, "avx512f", "avx512_vnni")
    p = choose_placement("cpu", "auto", model=Smooth(), meta=META)
    assert p.int8 and p.precision == "int8" and p.dtype == torch.float32
    assert p.fallback is not None and p.fallback.precision == "fp32"
    assert "avx512_vnni" in p.reason and ">= 40 dB" in p.reason
    assert p.as_dict()["fallback"] == "fp32"


@pytest.mark.parametrize("flags", [("avx512f",), ("amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni")])
def test_auto_skips_int8_without_vnni_or_with_amx(monkeypatch, flags):
    with_flags(monkeypatch, *flags)
    p = choose_placement("cpu", "auto", model=Smooth(), meta=META, probe=lambda d: 2.0)
    assert not p.int8 and p.fallback is None


def test_auto_says_why_a_model_gets_no_int8(monkeypatch):
    with_flags(monkeypatch, "avx512_vnni")
    p = choose_placement(
        "cpu", "auto", model=build("ResnetGenerator", ngf=8, n_blocks=1), meta=describe("ResnetGenerator", dict(ngf=8, n_blocks=1))
    )
    assert not p.int8 and "no int8 (the model normalises per instance)" in p.reason


def test_auto_without_model_mentions_int8(monkeypatch):
    with_flags(monkeypatch, "avx512_vnni")
    assert "int8" in choose_placement("cpu", "auto").reason


def test_explicit_int8_refusals(monkeypatch):
    with_flags(monkeypatch, "avx512_vnni")
    with pytest.raises(UsageError, match="cannot run this model: the model normalises per instance; choose auto, fp32 or bf16"):
        choose_placement(
            "cpu", "int8", model=build("ResnetGenerator", ngf=8, n_blocks=1), meta=describe("ResnetGenerator", dict(ngf=8, n_blocks=1))
        )
    with pytest.raises(UsageError, match="only where each photo is calibrated"):
        choose_placement("cpu", "int8", model=Smooth(), meta=META, int8=False)
    assert not choose_placement("cpu", "auto", model=Smooth(), meta=META, int8=False).int8


@needs_kernels
def test_prepare_keeps_the_original_as_fallback(monkeypatch):
    with_flags(monkeypatch, "avx512_vnni", "avx512_bf16")
    model = Smooth()
    p = choose_placement("cpu", "auto", model=model, meta=META, probe=lambda d: 2.0)
    assert p.fallback.precision == "bf16"
    q = prepare(model, META, p)
    assert isinstance(q, int8.Int8Model) and q.fallback is model
    assert next(model.parameters()).dtype == torch.bfloat16  # the fallback runs at its own precision
    assert next(q.net.parameters()).dtype == torch.float32  # calibration and the check run fp32


def _processor(monkeypatch, model: nn.Module) -> Processor:
    with_flags(monkeypatch, "avx512_vnni")
    p = choose_placement("cpu", "auto", model=model, meta=META)
    return Processor(model=prepare(model, META, p), meta=META, placement=p, task="denoise")


@needs_kernels
def test_photo_runs_int8_when_it_agrees(monkeypatch):
    proc = _processor(monkeypatch, Smooth())
    pic = Picture(pixels=photo(512), alpha=None, bit_depth=8, icc_profile=None, exif=None, source_format="PNG")
    out = proc(pic)
    assert out.notes[-1].startswith("int8: ") and "dB from fp32 on check crops" in out.notes[-1]
    fp32 = Smooth()(torch.from_numpy(pic.pixels).permute(2, 0, 1)[None]).clamp(0, 1)[0].permute(1, 2, 0).detach().numpy()
    mse = float(np.mean((out.pixels.astype(np.float64) - fp32) ** 2))
    assert 0 < mse and 10 * math.log10(1 / mse) > 40


@needs_kernels
def test_photo_falls_back_when_int8_disagrees(monkeypatch):
    proc = _processor(monkeypatch, Smooth())
    monkeypatch.setattr("scenestyle.engine.tasks.AGREEMENT_DB", 99.0)
    pic = Picture(pixels=photo(512), alpha=None, bit_depth=8, icc_profile=None, exif=None, source_format="PNG")
    out = proc(pic)
    assert out.notes[-1].startswith("fp32: int8 was only") and "(< 99)" in out.notes[-1]
    fp32 = Smooth()(torch.from_numpy(pic.pixels).permute(2, 0, 1)[None]).clamp(0, 1)[0].permute(1, 2, 0).detach().numpy()
    np.testing.assert_allclose(out.pixels, fp32, atol=1e-5)


@needs_kernels
def test_a_run_stops_trying_int8_after_repeated_misses(monkeypatch):
    proc = _processor(monkeypatch, Smooth())
    monkeypatch.setattr("scenestyle.engine.tasks.AGREEMENT_DB", 99.0)
    pic = Picture(pixels=photo(512), alpha=None, bit_depth=8, icc_profile=None, exif=None, source_format="PNG")
    notes = [proc(pic).notes[-1] for _ in range(int8.GIVE_UP_AFTER + 1)]
    assert all(n.startswith("fp32: int8 was only") for n in notes[:-1])
    assert notes[-1] == f"fp32: int8 failed its check on {int8.GIVE_UP_AFTER} photos in a row, not tried again"


@needs_kernels
def test_small_photo_runs_the_fallback(monkeypatch):
    proc = _processor(monkeypatch, Smooth())
    out = proc(Picture(pixels=photo(side=256), alpha=None, bit_depth=8, icc_profile=None, exif=None, source_format="PNG"))
    assert out.notes[-1] == "fp32: the photo is too small for int8 to pay for its check"


@needs_kernels
def test_sequential_relu_is_fused_and_convs_pass_quint8_along():
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
    q = int8.Int8Model(seq, fallback=seq)
    first, fused, mid, _, last = list(q.net)
    assert isinstance(fused, nn.Identity) and first.relu and mid.relu and not last.relu
    assert first.quantised_out and mid.quantised_out and not last.quantised_out
    seen = []
    last.register_forward_pre_hook(lambda m, a: seen.append(a[0].is_quantized))
    x = torch.from_numpy(photo(128)).permute(2, 0, 1)[None]
    crops = int8.sample_crops(x, 64, 6)
    db = q.fit(q, crops[::2], crops[1::2])
    assert seen[-1] is True  # the int8 pass fed the last conv a quint8 tensor
    with torch.no_grad():
        assert (q(x) - seq(x)).abs().max() < 0.05 and db > 35


@needs_kernels
@pytest.mark.parametrize("act_type", ["prelu", "leakyrelu"])
def test_declared_chain_runs_activations_on_quint8(act_type):
    torch.manual_seed(0)
    kwargs = dict(num_feat=8, num_conv=2, upscale=2, act_type=act_type)
    model = build("SRVGGNetCompact", **kwargs).eval()
    q = int8.Int8Model(model, fallback=model, chains=describe("SRVGGNetCompact", kwargs).int8_chains)
    acts = [m for m in q.net.body if isinstance(m, int8.Int8Act)]
    assert len(acts) == 3 and all(a.quantised_out for a in acts)
    x = torch.from_numpy(photo(128)).permute(2, 0, 1)[None]
    crops = int8.sample_crops(x, 64, 6)
    db = q.fit(q, crops[::2], crops[1::2])
    assert all(isinstance(a.qact, nn.Module) for a in acts)
    with torch.no_grad():
        mse = torch.mean((q(x) - model(x)) ** 2).item()
    assert 0 < mse < 10 ** (-35 / 10) and db > 35  # whole image and check crops both within 35 dB


@needs_kernels
@pytest.mark.parametrize("weight, quantised", [(0.25, True), (1.5, False), (-0.3, False)])
def test_prelu_runs_quantised_only_where_the_kernel_matches_float(weight, quantised):
    act = int8.Int8Act(nn.PReLU(num_parameters=4, init=weight))
    x = torch.linspace(-2, 2, 4 * 64).reshape(1, 4, 8, 8)
    act.mode = "calibrating"
    ref = act(x)
    act.freeze(margin=0.0)
    assert (act.qact is not None) == quantised
    act.mode = "int8"
    xq = torch.quantize_per_tensor(x, 4 / 255, 128, torch.quint8)
    with torch.no_grad():
        err = (act(xq) - ref).abs().max().item()
    assert err < 0.1  # quantised or float, the result is right
