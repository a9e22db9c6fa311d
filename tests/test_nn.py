"""Architectures: build, forward, key layouts, detect round trip, golden outputs, MACs, halos;
the metadata table (``nn.meta``) the engine reads for each generator."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest
import torch
from conftest import TINY
from torch import nn

from scenestyle.metrics.psnr_ssim import psnr
from scenestyle.nn import ARCHS, ModelMeta, build, count_macs, describe, detect_arch, list_archs
from scenestyle.nn._blocks import round_up
from scenestyle.nn.compact import CompactGenerator
from scenestyle.nn.cyclegan import ResnetGenerator, UnetGenerator
from scenestyle.nn.dncnn import DnCNN
from scenestyle.nn.meta import TABLE
from scenestyle.nn.rrdbnet import RRDBNet
from scenestyle.nn.srvgg import SRVGGNetCompact


def tiny(name: str) -> dict:
    if name not in TINY:
        pytest.fail(f"architecture {name!r} has no entry in tests/conftest.py TINY")
    return dict(TINY[name])


# Registered networks that are not inference generators: no entry in the metadata table.
# Named rather than inferred from a missing entry, so a generator that loses its entry fails.
NOT_GENERATORS = ("NLayerDiscriminator", "PixelDiscriminator", "VGGStyleDiscriminator", "UNetDiscriminatorSN", "InceptionV3FID")


def is_generator(name: str) -> bool:
    return name not in NOT_GENERATORS


def meta_of(name: str, **kwargs) -> ModelMeta | None:
    """The generator's ModelMeta at its TINY kwargs (updated by ``kwargs``); None for other networks."""
    return describe(name, {**tiny(name), **kwargs}) if is_generator(name) else None


def tiny_input(meta: ModelMeta | None, seed: int = 1, min_size: int = 32) -> torch.Tensor:
    """A random input the network takes: 3 channels in [-1, 1] for a discriminator (``meta`` None)."""
    size = round_up(min_size, meta.size_multiple if meta else 1)
    channels, (lo, hi) = (meta.in_channels, meta.value_range) if meta else (3, (-1.0, 1.0))
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(1, channels, size, size, generator=g)


def forward(model: nn.Module, meta: ModelMeta | None, x: torch.Tensor) -> torch.Tensor:
    """``model(x)``; a noise-level model gets σ = 25/255."""
    return model(x, 25 / 255) if meta is not None and meta.takes_sigma else model(x)


def test_every_registered_arch_has_tiny_kwargs():
    missing = [name for name in list_archs() if name not in TINY]
    assert not missing, f"add TINY kwargs for {missing} in tests/conftest.py"
    assert set(list_archs()) == set(ARCHS)


def test_unknown_arch_lists_valid_names():
    with pytest.raises(KeyError, match="ResnetGenerator"):
        build("NoSuchNet")


@pytest.mark.parametrize("name", list_archs())
def test_build_and_forward(name):
    model, meta = build(name, **tiny(name)).eval(), meta_of(name)
    x = tiny_input(meta)
    with torch.no_grad():
        y = forward(model, meta, x)
    assert torch.isfinite(y).all()
    if meta is not None:
        s = meta.scale
        assert y.shape == (1, meta.out_channels, x.shape[2] * s, x.shape[3] * s)
        if meta.value_range == (-1.0, 1.0):  # tanh heads
            assert y.abs().max() <= 1.0
    elif hasattr(model, "feature_dim"):  # feature extractors (InceptionV3FID): one vector per image
        assert y.shape == (1, model.feature_dim)
    else:
        assert y.dim() == 4 and y.shape[:2] == (1, 1)


def test_the_table_covers_exactly_the_generators():
    assert set(TABLE) == {n for n in list_archs() if is_generator(n)}
    for name in NOT_GENERATORS:
        with pytest.raises(KeyError, match="not an image model scenestyle can run"):
            describe(name)


def test_architecture_files_carry_no_engine_metadata():
    """What the engine reads lives in nn.meta: a module is forward and weights only."""
    engine_names = {
        "in_channels",
        "out_channels",
        "value_range",
        "size_multiple",
        "halo",
        "task",
        "noise_level",
        "noise_level_input",
        "sigma_max",
        "fixed_sigma",
    }
    for name in list_archs():
        model = build(name, **tiny(name))
        for m in model.modules():
            if not type(m).__module__.startswith("scenestyle.nn"):  # torch's own layers (Conv2d.in_channels ...)
                continue
            assert not engine_names & (set(vars(m)) | set(vars(type(m)))), (name, type(m).__name__)


@pytest.mark.parametrize("name", [n for n in list_archs() if is_generator(n)])
def test_generator_meta(name):
    meta = meta_of(name)
    assert meta.arch == name
    assert isinstance(meta.in_channels, int) and isinstance(meta.out_channels, int)
    assert isinstance(meta.scale, int) and meta.scale >= 1
    assert isinstance(meta.size_multiple, int) and meta.size_multiple >= 1
    assert isinstance(meta.halo, int) and meta.halo >= 1
    assert meta.task in ("style", "upscale", "denoise")
    lo, hi = meta.value_range
    assert isinstance(lo, float) and isinstance(hi, float)
    assert (lo, hi) == ((-1.0, 1.0) if meta.task == "style" else (0.0, 1.0))
    assert meta.takes_sigma == (meta.sigma_max is not None) and meta.fixed_sigma is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.halo = 0


@pytest.mark.parametrize("name", list_archs())
def test_detect_round_trip(name):
    kwargs = tiny(name)
    model = build(name, **kwargs).eval()
    sd = model.state_dict()
    if not is_generator(name):
        with pytest.raises(ValueError, match="known architectures"):
            detect_arch(sd)
        return
    found, found_kwargs = detect_arch(sd)
    assert found == type(model).__name__
    if found == name:  # class registered under its own name: every given kwarg comes back
        assert {k: found_kwargs[k] for k in kwargs} == kwargs
    # a named variant's table entry agrees with its class's, at the kwargs detection reads back
    assert dataclasses.replace(describe(found, found_kwargs), arch=name) == meta_of(name)
    rebuilt = build(found, **found_kwargs).eval()
    rebuilt.load_state_dict(sd, strict=True)
    meta = meta_of(name)
    x = tiny_input(meta)
    with torch.no_grad():
        torch.testing.assert_close(forward(rebuilt, meta, x), forward(model, meta, x), rtol=0, atol=0)


# --- official key layouts -----------------------------------------------------------------


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_resnet_generator_upstream_keys():
    with torch.device("meta"):
        shapes = _shapes(ResnetGenerator())
    expected = {
        "model.1.weight": (64, 3, 7, 7),
        "model.1.bias": (64,),  # instance norm -> conv bias
        "model.4.weight": (128, 64, 3, 3),
        "model.7.weight": (256, 128, 3, 3),
        "model.10.conv_block.1.weight": (256, 256, 3, 3),
        "model.10.conv_block.5.weight": (256, 256, 3, 3),
        "model.18.conv_block.5.bias": (256,),
        "model.19.weight": (256, 128, 3, 3),
        "model.22.weight": (128, 64, 3, 3),  # ConvTranspose2d
        "model.26.weight": (3, 64, 7, 7),
        "model.26.bias": (3,),
    }
    assert {k: shapes.get(k) for k in expected} == expected
    assert len(shapes) == 48 and not any(k.startswith("model.27") for k in shapes)
    assert not any("running" in k for k in shapes)  # InstanceNorm2d(track_running_stats=False)


def test_resnet_generator_batch_norm_and_dropout_keys():
    with torch.device("meta"):
        shapes = _shapes(ResnetGenerator(norm="batch", use_dropout=True, n_blocks=6))
    assert "model.1.bias" not in shapes and shapes["model.2.running_mean"] == (64,)
    assert shapes["model.10.conv_block.6.weight"] == (256, 256, 3, 3)  # dropout at index 4
    assert shapes["model.23.weight"] == (3, 64, 7, 7)


def test_unet_generator_upstream_keys():
    with torch.device("meta"):
        shapes = _shapes(UnetGenerator(num_downs=8))
    inner = "model.model.1.model." + "3.model." * 6
    expected = {
        "model.model.0.weight": (64, 3, 4, 4),
        "model.model.1.model.1.weight": (128, 64, 4, 4),
        "model.model.1.model.2.running_mean": (128,),
        "model.model.1.model.5.weight": (256, 64, 4, 4),
        "model.model.3.weight": (128, 3, 4, 4),
        "model.model.3.bias": (3,),
        inner + "1.weight": (512, 512, 4, 4),
        inner + "3.weight": (512, 512, 4, 4),
        inner + "4.running_var": (512,),
    }
    assert {k: shapes.get(k) for k in expected} == expected
    assert not any(k.startswith(inner + "3.model.") for k in shapes)


def test_rrdbnet_upstream_keys():
    with torch.device("meta"):
        model = RRDBNet()
    shapes = _shapes(model)
    expected = {
        "conv_first.weight": (64, 3, 3, 3),
        "body.0.rdb1.conv1.weight": (32, 64, 3, 3),
        "body.0.rdb1.conv5.weight": (64, 192, 3, 3),
        "body.22.rdb3.conv5.bias": (64,),
        "conv_body.weight": (64, 64, 3, 3),
        "conv_up1.weight": (64, 64, 3, 3),
        "conv_up2.weight": (64, 64, 3, 3),
        "conv_hr.weight": (64, 64, 3, 3),
        "conv_last.weight": (3, 64, 3, 3),
    }
    assert {k: shapes.get(k) for k in expected} == expected
    assert "body.23.rdb1.conv1.weight" not in shapes
    assert sum(p.numel() for p in model.parameters()) == 16_697_987  # RealESRGAN_x4plus
    for scale, first_in in ((2, 12), (1, 48)):
        with torch.device("meta"):
            assert _shapes(RRDBNet(scale=scale))["conv_first.weight"] == (64, first_in, 3, 3)


def test_srvgg_upstream_keys():
    with torch.device("meta"):
        shapes = _shapes(SRVGGNetCompact())
    assert shapes["body.0.weight"] == (64, 3, 3, 3)
    assert shapes["body.1.weight"] == (64,)  # PReLU, one weight per channel
    assert shapes["body.2.weight"] == (64, 64, 3, 3)
    assert shapes["body.34.weight"] == (48, 64, 3, 3)  # 3 * 4**2 channels for the x4 pixel shuffle
    assert "body.35.weight" not in shapes
    with torch.device("meta"):  # realesr-general-x4v3
        assert _shapes(SRVGGNetCompact(num_conv=32))["body.66.weight"] == (48, 64, 3, 3)


def test_dncnn_kair_keys():
    with torch.device("meta"):
        shapes = _shapes(DnCNN())
    assert len(shapes) == 34
    assert shapes["model.0.weight"] == (64, 1, 3, 3) and shapes["model.0.bias"] == (64,)
    assert shapes["model.2.weight"] == (64, 64, 3, 3) and shapes["model.30.bias"] == (64,)
    assert shapes["model.32.weight"] == (1, 64, 3, 3) and shapes["model.32.bias"] == (1,)


def test_dncnn_returns_input_minus_predicted_noise():
    model = DnCNN(nc=8, nb=3).eval()
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), x - model.model(x))


# --- golden outputs of seeded tiny models -------------------------------------------------

# Computed once with torch 2.15 CPU from ``golden_values``; they pin each family's forward pass
# (layer order, activations, residual scalings, resampling) against silent changes.
GOLDEN = {
    "CompactGenerator": [0.244315, 0.1546139, 0.3248221, -0.04269065, -0.2505746, -0.05394306, 0.2973295],
    "DnCNN": [0.7340637, 0.7628983, 0.1004715, 0.578837, 0.1466285, 0.4579, 0.2894663],
    "FFDNet": [-0.1041927, -0.1263056, 0.1713087, 0.07354968, 0.07970814, 0.001743958, 0.09628849],
    "RRDBNet": [0.02030237, 0.006213025, -0.04369077, -0.07093464, -0.02695232, -0.05810504, 0.02964329],
    "ResnetGenerator": [-0.2476275, -0.1916101, -0.1394934, 0.179656, 0.1279507, 0.05534186, 0.328461],
    "SRVGGNetCompact": [0.8151809, 0.4815749, 0.3277109, -0.1121127, 0.1323785, 0.4966856, 0.2981247],
    "UnetGenerator": [0.03697346, 0.03267879, -0.2130235, -0.1056812, -0.1181907, -0.06865794, 0.09389225],
}


def golden_values(name: str) -> list[float]:
    torch.manual_seed(0)
    model, meta = build(name, **tiny(name)).eval(), meta_of(name)
    with torch.no_grad():
        y = forward(model, meta, tiny_input(meta))
    flat = y.flatten().double()
    idx = torch.linspace(0, flat.numel() - 1, 5).round().long()
    return flat[idx].tolist() + [flat.mean().item(), flat.std().item()]


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_output(name):
    np.testing.assert_allclose(golden_values(name), GOLDEN[name], rtol=1e-4, atol=1e-5)


def test_every_generator_family_has_golden_values():
    families = {type(build(n, **tiny(n))).__name__ for n in list_archs() if is_generator(n)}
    assert families <= set(GOLDEN)


# --- MACs ---------------------------------------------------------------------------------


def test_count_macs_by_hand():
    conv = nn.Conv2d(4, 8, 3, padding=1, groups=2)  # 16x16 out: 8*256 outputs * (4/2)*9
    assert count_macs(conv, (1, 4, 16, 16)) == 8 * 256 * 2 * 9
    assert count_macs(conv, (4, 16, 16)) == 8 * 256 * 2 * 9
    deconv = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)  # 4x32x32 out
    assert count_macs(deconv, (2, 8, 16, 16)) == 2 * 4 * 32 * 32 * 8 * 9
    lin = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    assert count_macs(lin, (3, 12, 1, 1)) == 3 * 5 * 12


def test_count_macs_passes_extra_forward_arguments():
    # FFDNet takes its noise level after the image: its convs run on the 2x-downshuffled input
    model = build("FFDNet", in_nc=3, out_nc=3, nc=8, nb=3)
    macs = count_macs(model, (1, 3, 16, 16), 25 / 255)
    assert macs == 8 * 8 * 8 * 9 * (3 * 4 + 1) + 8 * 8 * 8 * 9 * 8 + 8 * 8 * 12 * 9 * 8


def test_count_macs_restores_training_mode():
    model = CompactGenerator(ngf=4, n_blocks=1).train()
    count_macs(model, (1, 3, 32, 32))
    assert model.training


def test_resnet9_macs_match_published_figure():
    with torch.device("meta"):
        macs = count_macs(ResnetGenerator(), (1, 3, 256, 256))
    assert abs(macs / 1e9 - 56.8) < 0.05  # CycleGAN ResNet-9 at 256x256 (GAN Compression's count)


def test_compact_generator_is_15x_cheaper_than_resnet9():
    with torch.device("meta"):
        resnet = count_macs(ResnetGenerator(ngf=64, n_blocks=9), (1, 3, 256, 256))
        compact = count_macs(build("compact_generator"), (1, 3, 256, 256))
        compact_cls = count_macs(CompactGenerator(), (1, 3, 256, 256))
    print(
        f"\nMACs at 256x256: ResnetGenerator(ngf=64, n_blocks=9) {resnet / 1e9:.2f} G, "
        f"compact_generator {compact / 1e9:.2f} G (1/{resnet / compact:.1f})"
    )
    assert compact == compact_cls
    assert compact * 15 <= resnet


# --- halo: tiles with this much overlap reproduce whole-image output ----------------------


def dependency_radius(model: nn.Module, meta: ModelMeta, size: int) -> int:
    """Largest distance (input pixels) from input pixel ``o // scale`` that output pixel ``o``
    depends on, measured from gradients around the image centre (float64, every phase)."""
    model = model.double().eval()
    s = meta.scale
    x = torch.randn(1, meta.in_channels, size, size, dtype=torch.float64, requires_grad=True)
    y = forward(model, meta, x)
    c = size * s // 2
    radius = 0
    phases = max(2, s * meta.size_multiple)  # one period of output phases (strides and upscale)
    for dy in range(phases):
        for dx in range(phases):
            oy, ox = c + dy, c + dx
            (g,) = torch.autograd.grad(y[0, :, oy, ox].sum(), x, retain_graph=True)
            nz = (g[0].abs().sum(0) != 0).nonzero()
            radius = max(radius, int((nz[:, 0] - oy // s).abs().max()), int((nz[:, 1] - ox // s).abs().max()))
    return radius


HALO_CASES = [
    ("ResnetGenerator", dict(ngf=4, n_blocks=2, norm="none")),
    ("ResnetGenerator", dict(ngf=4, n_blocks=1, norm="none", padding_type="zero")),
    ("CompactGenerator", dict(ngf=4, n_blocks=2, norm="none")),
    ("CompactGenerator", dict(ngf=4, n_blocks=2, norm="none", upsample="bilinear")),
    ("CompactGenerator", dict(ngf=4, n_blocks=2, norm="none", upsample="bilinear", flatten=3)),
    ("RRDBNet", dict(num_feat=8, num_grow_ch=4, num_block=1, scale=4)),
    ("RRDBNet", dict(num_feat=8, num_grow_ch=4, num_block=1, scale=2)),
    ("RRDBNet", dict(num_feat=8, num_grow_ch=4, num_block=0, scale=1)),
    ("SRVGGNetCompact", dict(num_feat=8, num_conv=3, upscale=4)),
    ("SRVGGNetCompact", dict(num_feat=8, num_conv=2, upscale=1)),
    ("DnCNN", dict(nc=8, nb=5)),
]


@pytest.mark.parametrize(("name", "kwargs"), HALO_CASES)
def test_halo_covers_receptive_field(name, kwargs):
    torch.manual_seed(0)
    model, meta = build(name, **kwargs), describe(name, kwargs)
    radius = dependency_radius(model, meta, size=round_up(2 * meta.halo + 16, meta.size_multiple))
    assert radius <= meta.halo
    assert meta.halo - radius < max(4, meta.size_multiple)  # and not needlessly large


def test_halo_tile_matches_whole_image():
    """An interior tile cut with ``halo`` overlap gives the whole-image output exactly (no norm)."""
    torch.manual_seed(0)
    kwargs = dict(ngf=4, n_blocks=2, norm="none")
    model = CompactGenerator(**kwargs).eval()
    h = describe("CompactGenerator", kwargs).halo
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        whole = model(x)
        tile = model(x[:, :, 48 - h : 80 + h, 48 - h : 80 + h])[:, :, h : h + 32, h : h + 32]
    assert psnr(tile.numpy(), whole[:, :, 48:80, 48:80].numpy(), peak=2.0) > 100


def test_default_halos():
    assert describe("ResnetGenerator").halo == 84
    assert describe("CompactGenerator").halo == 88
    assert describe("DnCNN").halo == 17
    assert describe("SRVGGNetCompact", dict(num_conv=32)).halo == 34
    assert [describe("RRDBNet", dict(scale=s)).halo for s in (4, 2, 1)] == [24, 40, 64]
    assert describe("UnetGenerator", dict(num_downs=8)).halo == 256


def test_size_multiples():
    assert describe("ResnetGenerator").size_multiple == 4 and describe("CompactGenerator").size_multiple == 4
    assert describe("UnetGenerator", dict(num_downs=7)).size_multiple == 128
    assert [describe("RRDBNet", dict(scale=s)).size_multiple for s in (4, 2, 1)] == [1, 2, 4]
    assert [describe("RRDBNet", dict(scale=s)).scale for s in (4, 2, 1)] == [4, 2, 1]


def test_builders_write_out_variant_settings():
    with torch.device("meta"):
        assert len(build("resnet_9blocks").model) == 28 and len(build("resnet_6blocks").model) == 25
    assert describe("unet_128").size_multiple == 128 and describe("unet_256").size_multiple == 256
    assert describe("resnet_9blocks").halo == describe("ResnetGenerator", dict(n_blocks=9)).halo
    for name in ("resnet_9blocks", "resnet_6blocks"):
        assert "n_blocks" not in inspect.signature(ARCHS[name]).parameters
    for name in ("unet_128", "unet_256"):
        assert "num_downs" not in inspect.signature(ARCHS[name]).parameters


# ---------------------------------------------------------------- layout-preserving instance norm


def _offset_features(dtype: torch.dtype, n: int = 2, c: int = 8, h: int = 24, w: int = 20) -> torch.Tensor:
    """Features whose channel means are several times their spread, like conv outputs before a norm."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, c, h, w, generator=g) * (0.1 + torch.rand(1, c, 1, 1, generator=g)) + 4 * torch.randn(1, c, 1, 1, generator=g)
    return x.to(dtype).contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("affine", [False, True])
def test_layout_instance_norm_matches_torch_and_keeps_channels_last(affine):
    from scenestyle.nn._blocks import InstanceNorm2d

    norm = InstanceNorm2d(8, affine=affine).eval()
    if affine:
        with torch.no_grad():
            norm.weight.uniform_(0.5, 2)
            norm.bias.uniform_(-1, 1)
    x = _offset_features(torch.float32)
    want = torch.nn.functional.instance_norm(x.contiguous(), weight=norm.weight, bias=norm.bias, eps=norm.eps)
    got = norm(x)
    assert got.is_contiguous(memory_format=torch.channels_last) and not got.is_contiguous()
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)


def test_layout_instance_norm_bf16_is_as_accurate_as_torch_bf16():
    from scenestyle.nn._blocks import InstanceNorm2d

    x = _offset_features(torch.bfloat16, h=64, w=48)
    exact = torch.nn.functional.instance_norm(x.float().contiguous())
    torch_err = (torch.nn.functional.instance_norm(x.contiguous()).float() - exact).pow(2).mean().sqrt()
    ours = InstanceNorm2d(8).eval()(x)
    assert ours.dtype == torch.bfloat16
    assert (ours.float() - exact).pow(2).mean().sqrt() <= 1.2 * torch_err


def test_instance_norm_training_and_nchw_use_torch_forward():
    from scenestyle.nn._blocks import InstanceNorm2d

    norm = InstanceNorm2d(8)
    x = _offset_features(torch.float32)
    assert torch.equal(norm.train()(x), torch.nn.functional.instance_norm(x, eps=norm.eps))
    assert torch.equal(norm.eval()(x.contiguous()), torch.nn.functional.instance_norm(x.contiguous(), eps=norm.eps))
    assert norm.state_dict().keys() == torch.nn.InstanceNorm2d(8).state_dict().keys()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_channel_mean_var_in_either_layout(dtype):
    from scenestyle.nn import channel_mean_var

    x = _offset_features(dtype)
    var, mean = torch.var_mean(x.double(), dim=(2, 3), keepdim=True, correction=0)
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-3, rtol=2e-3)
    for layout in (x, x.contiguous()):  # the matmul path and torch's var_mean
        m, v = channel_mean_var(layout)
        assert m.dtype == v.dtype == torch.float32 and m.shape == (2, 8, 1, 1)
        torch.testing.assert_close(m.double(), mean, **tol)
        torch.testing.assert_close(v.double(), var, **tol)


@pytest.mark.parametrize("name", [n for n in list_archs() if any(isinstance(m, nn.InstanceNorm2d) for m in build(n, **tiny(n)).modules())])
def test_instance_norm_models_agree_in_channels_last(name):
    """Every instance-norm architecture uses the layout-preserving norm, and its channels_last
    forward (the CPU inference layout) matches the NCHW one."""
    from scenestyle.nn import InstanceNorm2d

    model = build(name, **tiny(name)).eval()
    assert all(type(m) is InstanceNorm2d for m in model.modules() if isinstance(m, nn.InstanceNorm2d))
    x = tiny_input(meta_of(name), min_size=48)
    with torch.no_grad():
        want = model(x)
        got = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
