"""The style-training terms: crops at the working size, one level of detail, DiffAugment, structure loss."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from scenestyle._colour import BT601_LUMA
from scenestyle.errors import UsageError
from scenestyle.train.config import load_config
from scenestyle.train.cyclegan import train_cyclegan
from scenestyle.train.data import CropRecipe, UnpairedCrops
from scenestyle.train.diffaug import check_policy, diff_augment
from scenestyle.train.losses import chroma_loss, luma_view, structure_loss

REPO = Path(__file__).resolve().parents[1]


def _sharp(path: Path, w: int, h: int) -> Path:
    """A checkerboard of 2-px squares: all its energy is at the finest scale."""
    yy, xx = np.mgrid[0:h, 0:w]
    arr = (((yy // 2 + xx // 2) % 2) * 255).astype(np.uint8)
    Image.fromarray(np.stack([arr] * 3, -1)).save(path)
    return path


def _hf_energy(x: torch.Tensor) -> float:
    return float((x[:, 1:, :] - x[:, :-1, :]).abs().mean())


def test_work_pixels_sets_the_scale_and_effective_pixels_removes_detail(tmp_path):
    big = _sharp(tmp_path / "big.png", 1200, 900)  # 1.08 MP
    r = CropRecipe(1, 0, 1.0, 0.5, 0.5, False, False)
    detailed = UnpairedCrops([big], [big], 64, work_pixels=1_080_000)  # native size: squares intact
    soft = UnpairedCrops([big], [big], 64, work_pixels=1_080_000, effective_pixels=67_500)  # via 1/16 of the pixels
    e_native, e_soft = (_hf_energy(d.crop_one(r)) for d in (detailed, soft))
    assert e_native > 0.8  # [-1, 1] samples flipping every 2 px: half the row pairs differ by 2
    assert e_soft < 0.2 * e_native  # shrunk 4x first: the squares are gone, only then brought to the working size
    assert detailed.crop_one(r).shape == (3, 64, 64)


def test_structure_loss_ignores_tone_but_not_shape():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    x = torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear")  # shapes larger than the 4x pooling
    # eps (a variance floor for flat crops) keeps a perfect match a little above 0
    assert structure_loss(x, x) < 0.05
    assert structure_loss(0.5 * x + 0.3, x) < 0.05  # brighter and flatter: same structure
    assert structure_loss(x.flip(-1), x) > 0.5  # mirrored: different structure
    flat = torch.zeros_like(x)
    assert abs(float(structure_loss(x, flat)) - 1.0) < 1e-6  # a flat photo asks for nothing in particular


def test_chroma_loss_ignores_luma_but_not_colour_fringes():
    torch.manual_seed(2)
    x = torch.nn.functional.interpolate(torch.rand(2, 3, 8, 8) * 2 - 1, size=(64, 64), mode="bilinear")
    luma = torch.tensor(BT601_LUMA).view(1, 3, 1, 1)
    strokes = x + 0.3 * torch.sign(torch.randn(2, 1, 64, 64))  # the same offset on R, G, B: a luma change only
    assert float(chroma_loss(strokes, x)) < 1e-6 and float(chroma_loss(x, x)) == 0.0
    fringe = x.clone()
    fringe[:, 0, :, 30:34] += 0.4  # a 4-px red band
    fringe[:, 2, :, 30:34] -= 0.4 * float(luma[0, 0, 0, 0] / luma[0, 2, 0, 0])  # luma kept
    assert abs(float(((fringe - x) * luma).sum(1).abs().max())) < 1e-5
    assert float(chroma_loss(fringe, x)) > 0.01


def test_diffaug_is_seeded_differentiable_and_checked():
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    a = diff_augment(x, ["color", "hue", "translation", "cutout"], torch.Generator().manual_seed(1))
    b = diff_augment(x, ["color", "hue", "translation", "cutout"], torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b)
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(UsageError, match="translation, cutout, color, hue"):
        check_policy("translation,blur")


@pytest.mark.parametrize("config", sorted((REPO / "configs").glob("style-*.toml")), ids=lambda p: p.stem)
def test_shipped_style_config_loads_and_trains_a_step(tmp_path, config):
    shipped = load_config(config).model.generator_kwargs
    pool = 9 if shipped.get("colour_pool") else 0
    flatten = min(shipped.get("flatten", 0), 3)  # a tiny crop takes a tiny radius
    cfg = load_config(
        config,
        [
            "data.workers=0",
            "data.crop=32",
            "train.sample_every=0",
            f"model.generator_kwargs={{ngf = 4, n_blocks = 1, colour_pool = {pool}, flatten = {flatten}}}",
            "model.discriminator_kwargs={ndf = 4, n_layers = 2}",
            "gan.luma_scale=0.5",  # D_L's view of a 32-px crop: 16 px, enough for its 2 strided layers
        ],
    )
    assert cfg.data.work_pixels == 1_000_000 and cfg.gan.diffaug
    for d in "ab":
        (tmp_path / d).mkdir()
        for i in range(2):
            Image.fromarray(np.random.default_rng(i).integers(0, 256, (60, 80, 3), dtype=np.uint8)).filter(ImageFilter.SMOOTH).save(
                tmp_path / d / f"{i}.png"
            )
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, a=str(tmp_path / "a"), b=str(tmp_path / "b")))
    result = train_cyclegan(cfg, run=tmp_path / "run", max_steps=2, show_progress=False)
    assert result.step == 2
    assert {"loss_structure", "loss_content", "loss_D_B"} <= set(result.metrics)
    assert ({"loss_G_L", "loss_D_L"} <= set(result.metrics)) == (cfg.gan.lambda_luma > 0)
    from safetensors import safe_open

    from scenestyle.train.export import export_generator

    out = export_generator(tmp_path / "run", "tiny-style", fp16=True).path
    kwargs = json.loads(safe_open(str(out), "pt").metadata()["kwargs"])
    # settings the state-dict keys cannot show travel in the metadata
    assert kwargs["colour_pool"] == pool and kwargs["flatten"] == flatten and kwargs["norm"] == cfg.model.norm


def test_luma_view_is_blind_to_palette_and_contrast_but_not_to_texture():
    torch.manual_seed(1)
    x = torch.rand(2, 3, 64, 48) * 1.6 - 0.8
    v = luma_view(x, 0.5, eps=1e-9)
    assert v.shape == (2, 1, 32, 24)
    assert torch.allclose(v.mean((2, 3)), torch.zeros(2, 1), atol=1e-5) and torch.allclose(v.std((2, 3)), torch.ones(2, 1), atol=0.01)
    hue = diff_augment(x, ["hue"], torch.Generator().manual_seed(3))
    for same in (0.4 * x + 0.1, hue):  # flatter and brighter; another hue, same luma
        assert torch.allclose(luma_view(same, 0.5, eps=1e-9), v, atol=1e-3)
    assert (luma_view(x.flip(-1), 0.5, eps=1e-9) - v).abs().mean() > 0.3  # other texture
    # antialiased: a 1-px checkerboard is gone at half size, a 4-px one is not
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    fine, coarse = (((yy // k + xx // k) % 2 * 2.0 - 1).expand(1, 3, 64, 64) for k in (1, 4))
    assert float(luma_view(fine, 0.5, eps=1.0).abs().max()) < 0.05 < float(luma_view(coarse, 0.5, eps=1.0).abs().max())


def test_luma_discriminator_trains_with_the_generator_and_checks_its_view(tmp_path):
    for d in "ab":
        (tmp_path / d).mkdir()
        for i in range(2):
            arr = np.random.default_rng(i + (d == "b") * 9).integers(0, 256, (48, 64, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / d / f"{i}.png")
    sets = [
        f"data.a={tmp_path / 'a'}",
        f"data.b={tmp_path / 'b'}",
        "data.crop=32",
        "data.workers=0",
        "model.generator=CompactGenerator",
        "model.generator_kwargs={ngf = 4, n_blocks = 1}",
        "model.discriminator_kwargs={ndf = 4, n_layers = 2}",
        "gan.one_direction=true",
        "gan.diffaug=translation,cutout,color,hue",
        "gan.lambda_luma=1.0",
        "gan.luma_scale=0.5",
        "train.sample_every=0",
        "train.checkpoint_every=3",
    ]
    result = train_cyclegan(load_config(None, sets), run=tmp_path / "run", max_steps=3, show_progress=False)
    assert {"loss_G_L", "loss_D_L"} <= set(result.metrics)
    from scenestyle.train import checkpoint as ckpt

    models = ckpt.load(ckpt.latest_checkpoint(tmp_path / "run"))["models"]
    assert models["D_L"]["model.0.bias"].shape == (4,)  # one input channel, ndf 4
    assert next(v for k, v in models["D_L"].items() if k.startswith("model.0.")).shape[1] == 1
    with pytest.raises(UsageError, match="raise data.crop or gan.luma_scale"):
        load_config(None, [*sets, "gan.luma_scale=0.25"])  # an 8-px view


def test_hue_rotation_keeps_luma_and_changes_hue():
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    y = diff_augment(x, ["hue"], torch.Generator().manual_seed(3))
    luma = torch.tensor(BT601_LUMA).view(1, 3, 1, 1)
    assert torch.allclose((x * luma).sum(1), (y * luma).sum(1), atol=1e-5)
    assert (x - y).abs().mean() > 0.05


def test_colour_pool_keeps_the_photos_palette_and_is_local():
    from scenestyle.nn import build, describe

    torch.manual_seed(0)
    g = build("CompactGenerator", ngf=4, n_blocks=1, norm="none", colour_pool=9).eval()
    x = torch.rand(1, 3, 96, 96) * 2 - 1
    with torch.no_grad():
        y = g(x)
        plain = build("CompactGenerator", ngf=4, n_blocks=1, norm="none").eval()
        plain.load_state_dict(g.state_dict())
        y0 = plain(x)
    chroma = lambda t: t.mean((2, 3)) - (t.mean((2, 3)) * torch.tensor(BT601_LUMA)).sum(1, keepdim=True)
    assert torch.allclose(chroma(y), chroma(x), atol=0.01)  # the photo's overall colour
    assert not torch.allclose(chroma(y0), chroma(x), atol=0.01)  # which the bare net does not keep
    luma = torch.tensor(BT601_LUMA).view(1, 3, 1, 1)
    assert torch.allclose((y * luma).sum(1), (y0 * luma).sum(1), atol=1e-5)  # tones are the net's
    # a crop with the halo around it gives the same interior: tiles stay seamless
    h = describe("CompactGenerator", dict(ngf=4, n_blocks=1, norm="none", colour_pool=9)).halo
    with torch.no_grad():
        part = g(x[..., 8:96, 4:96])
    assert h >= 4 and torch.allclose(part[..., h : 88 - h, h : 92 - h], y[..., 8 + h : 96 - h, 4 + h : 96 - h], atol=1e-5)
    with pytest.raises(ValueError, match="colour_pool"):
        build("CompactGenerator", colour_pool=8)


def test_flatten_melts_texture_into_fields_and_keeps_edges():
    from scenestyle.nn import build
    from scenestyle.nn.compact import kuwahara

    torch.manual_seed(0)
    step = torch.full((1, 3, 40, 40), -0.5)
    step[..., 20:] = 0.5
    x = (step + 0.1 * torch.randn(1, 3, 40, 40)).requires_grad_(True)
    y = kuwahara(x, 4)
    inside = (slice(None), slice(None), slice(8, 32))
    assert y[..., 4:16][inside].std() < x[..., 4:16][inside].std() / 3  # the texture is gone
    assert (y[..., 20] - y[..., 19])[inside].mean() > 0.9  # the edge is still one pixel wide
    flat = torch.full((1, 3, 24, 24), 0.3)
    assert torch.allclose(kuwahara(flat, 3), flat, atol=1e-6)
    assert torch.isfinite(kuwahara(flat.half(), 3)).all()  # weights up to 1e16: computed in float32
    with torch.no_grad():  # in bands of rows (inference): the same filter, band edges included
        assert torch.allclose(kuwahara(x, 4, band_rows=7), kuwahara(x, 4), atol=1e-6)
    with torch.no_grad():
        exact = kuwahara(x, 4)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # training's autocast: window sums stay float32
            assert torch.allclose(kuwahara(x, 4), exact, atol=1e-6)
    y.sum().backward()
    assert x.grad.abs().sum() > 0  # the net behind it can learn to paint for it
    g = build("CompactGenerator", ngf=4, n_blocks=2, norm="none", flatten=3).eval()
    plain = build("CompactGenerator", ngf=4, n_blocks=2, norm="none").eval()
    plain.load_state_dict(g.state_dict())  # no parameters of its own
    with torch.no_grad():
        p = torch.rand(1, 3, 32, 32) * 2 - 1
        out, bare = g(p), plain(p)
    assert bare.std() > 1e-3 and not torch.allclose(out, bare, atol=1e-4)  # a net that paints something, flattened
    assert torch.allclose(out, kuwahara(kuwahara(bare, 3), 3), atol=1e-6)  # two passes, last in the net
    with pytest.raises(ValueError, match="flatten"):
        build("CompactGenerator", flatten=-1)


def test_split_finish_parts_the_flattening_from_the_convs():
    from scenestyle.nn import build
    from scenestyle.nn.meta import split_finish

    torch.manual_seed(0)
    g = build("CompactGenerator", ngf=4, n_blocks=2, norm="none", flatten=3, flatten_passes=2).eval()
    body, finish = split_finish(g)
    p = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        whole, painted = g(p), body(p)
        assert torch.equal(finish(painted), whole)  # the same computation, in two steps
    assert not torch.allclose(painted, whole, atol=1e-3)  # the body does not flatten
    assert isinstance(g.finish, type(finish)) and body is not g  # the model itself is untouched
    plain = build("CompactGenerator", ngf=4, n_blocks=2, norm="none")
    assert split_finish(plain) == (plain, None)  # nothing to part


@pytest.mark.parametrize("d_norm, want", [("same", None), ("instance", torch.nn.InstanceNorm2d)])
def test_discriminator_norm_is_independent_of_the_generators(d_norm, want):
    from scenestyle.train.cyclegan import build_networks

    cfg = load_config(
        None, ["model.generator=CompactGenerator", "model.norm=none", f"model.discriminator_norm={d_norm}", "gan.one_direction=true"]
    )
    nets = build_networks(cfg)
    kinds = (torch.nn.InstanceNorm2d, torch.nn.BatchNorm2d)
    norms_d = {k for m in nets["D_B"].modules() for k in kinds if isinstance(m, k)}
    norms_g = {k for m in nets["G_AB"].modules() for k in kinds if isinstance(m, k)}
    assert norms_g == set()
    assert norms_d == ({want} if want else set())


@pytest.mark.parametrize("init", ["normal", "kaiming"])
def test_kaiming_init_makes_a_norm_free_generator_depend_on_its_input(init):
    from scenestyle.train.cyclegan import build_networks

    torch.manual_seed(0)
    cfg = load_config(
        None, ["model.generator=CompactGenerator", "model.norm=none", f"model.generator_init={init}", "gan.one_direction=true"]
    )
    g = build_networks(cfg)["G_AB"].eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        y = g(x)
    spread = (y[0] - y[1]).abs().mean().item()  # how much two different photos give different outputs
    # N(0, 0.02) without norms leaves an (almost) constant output; kaiming keeps the input's signal
    assert (spread > 1e-2) == (init == "kaiming")
