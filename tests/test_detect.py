"""detect_arch: every constructor setting readable from weights comes back exactly."""

from __future__ import annotations

import inspect
import itertools

import pytest
import torch

from scenestyle.nn import ARCHS, build, detect_arch


def full_kwargs(name: str, kwargs: dict) -> dict:
    """The constructor's defaults updated with ``kwargs``."""
    params = inspect.signature(ARCHS[name]).parameters
    return {k: p.default for k, p in params.items()} | kwargs


CASES: list[tuple[str, dict]] = []
for norm, dropout, pad, n in itertools.product(("instance", "batch", "none"), (False, True), ("reflect", "zero"), (0, 2)):
    CASES.append(("ResnetGenerator", dict(ngf=4, norm=norm, use_dropout=dropout, padding_type=pad, n_blocks=n)))
CASES.append(("ResnetGenerator", dict(input_nc=1, output_nc=3, ngf=6, n_blocks=1)))
for norm, downs in itertools.product(("instance", "batch", "none"), (5, 6)):
    CASES.append(("UnetGenerator", dict(ngf=2, norm=norm, num_downs=downs)))
CASES.append(("UnetGenerator", dict(input_nc=1, output_nc=2, ngf=3, num_downs=5)))
for scale, blocks, ch in itertools.product((1, 2, 4), (0, 2), (1, 3)):
    CASES.append(("RRDBNet", dict(num_in_ch=ch, num_out_ch=ch, scale=scale, num_block=blocks, num_feat=8, num_grow_ch=4)))
CASES.append(("RRDBNet", dict(num_in_ch=3, num_out_ch=1, scale=4, num_block=1, num_feat=8, num_grow_ch=6)))
for act, up, conv, ch in itertools.product(("prelu", "relu"), (1, 2, 3, 4), (0, 2), (1, 3)):
    CASES.append(("SRVGGNetCompact", dict(num_in_ch=ch, num_out_ch=ch, num_feat=8, num_conv=conv, upscale=up, act_type=act)))
for act, ch, nb in itertools.product(("R", "BR"), (1, 3), (2, 5)):
    CASES.append(("DnCNN", dict(in_nc=ch, out_nc=ch, nc=8, nb=nb, act_mode=act)))
for norm, n in itertools.product(("instance", "batch", "none"), (0, 2)):
    CASES.append(("CompactGenerator", dict(ngf=4, n_blocks=n, norm=norm)))
CASES.append(("CompactGenerator", dict(input_nc=1, output_nc=3, ngf=6, n_blocks=1)))


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_detect_recovers_kwargs(name, kwargs):
    torch.manual_seed(0)
    model = build(name, **kwargs)
    found, found_kwargs = detect_arch(model.state_dict())
    assert found == name
    expected = full_kwargs(name, kwargs)
    # settings that leave no trace in the weights come back as defaults
    if name == "UnetGenerator":
        expected["use_dropout"] = False  # dropout has no weights
    if name == "ResnetGenerator" and expected["n_blocks"] == 0:
        expected |= dict(use_dropout=False, padding_type="reflect")  # only blocks show them
    if name == "RRDBNet" and expected["num_block"] == 0:
        expected["num_grow_ch"] = 32
    if name == "DnCNN" and expected["nb"] == 2:
        expected["act_mode"] = "R"  # no body conv, so no BatchNorm
    assert found_kwargs == expected
    build(found, **found_kwargs).load_state_dict(model.state_dict(), strict=True)


def test_settings_without_weights_get_defaults():
    sd = build("SRVGGNetCompact", num_feat=8, num_conv=1, act_type="leakyrelu").state_dict()
    assert detect_arch(sd)[1]["act_type"] == "relu"
    sd = build("DnCNN", nc=8, nb=3, act_mode="L").state_dict()
    assert detect_arch(sd)[1]["act_mode"] == "R"
    sd = build("ResnetGenerator", ngf=4, n_blocks=1, padding_type="replicate").state_dict()
    assert detect_arch(sd)[1]["padding_type"] == "reflect"


def test_variant_builders_detect_as_their_class():
    with torch.device("meta"):
        assert detect_arch(build("resnet_9blocks").state_dict()) == ("ResnetGenerator", full_kwargs("ResnetGenerator", {}))
        name, kw = detect_arch(build("unet_256").state_dict())
        assert (name, kw["num_downs"], kw["norm"]) == ("UnetGenerator", 8, "batch")
        assert detect_arch(build("unet_128").state_dict())[1]["num_downs"] == 7
        assert detect_arch(build("compact_generator").state_dict()) == ("CompactGenerator", full_kwargs("CompactGenerator", {}))


def test_official_default_layouts():
    with torch.device("meta"):
        assert detect_arch(build("RRDBNet").state_dict()) == (
            "RRDBNet",
            dict(num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=23, num_grow_ch=32),
        )
        assert detect_arch(build("RRDBNet", scale=2).state_dict())[1]["scale"] == 2
        assert detect_arch(build("SRVGGNetCompact", num_conv=32).state_dict()) == (
            "SRVGGNetCompact",
            dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4, act_type="prelu"),
        )


def test_legacy_instance_norm_statistics_are_tolerated():
    model = build("ResnetGenerator", ngf=4, n_blocks=1)
    sd = dict(model.state_dict())
    sd["model.2.running_mean"] = torch.zeros(4)
    sd["model.2.running_var"] = torch.ones(4)
    sd["model.10.conv_block.2.running_mean"] = torch.zeros(16)
    sd["model.10.conv_block.6.num_batches_tracked"] = torch.tensor(0)
    assert detect_arch(sd) == ("ResnetGenerator", full_kwargs("ResnetGenerator", dict(ngf=4, n_blocks=1)))


def test_shared_dncnn_checkpoint(shared_dir):
    sd = torch.load(shared_dir / "weights/kair_dncnn/dncnn_25.pth", map_location="cpu", weights_only=True)
    assert detect_arch(sd) == ("DnCNN", dict(in_nc=1, out_nc=1, nc=64, nb=17, act_mode="R"))


def test_unknown_layout_names_keys_and_archs():
    sd = {"encoder.weight": torch.zeros(2, 2), "decoder.bias": torch.zeros(2)}
    with pytest.raises(ValueError) as err:
        detect_arch(sd)
    msg = str(err.value)
    assert "encoder.weight" in msg and "decoder.bias" in msg
    assert all(name in msg for name in ("ResnetGenerator", "RRDBNet", "SRVGGNetCompact", "DnCNN", "CompactGenerator"))


def test_empty_and_wrapped_state_dicts():
    with pytest.raises(ValueError, match="empty"):
        detect_arch({})
    with pytest.raises(ValueError, match="params_ema"):
        detect_arch({"params_ema": build("DnCNN", nc=4, nb=2).state_dict()})


def test_prefixed_state_dict_is_not_guessed():
    sd = {f"module.{k}": v for k, v in build("DnCNN", nc=4, nb=3).state_dict().items()}
    with pytest.raises(ValueError, match="module.model.0.weight"):
        detect_arch(sd)


def test_mismatched_layout_explains_what_differs():
    sd = dict(build("RRDBNet", num_feat=8, num_block=2, num_grow_ch=4).state_dict())
    sd["body.1.rdb2.conv3.weight"] = torch.zeros(4, 8, 3, 3)
    with pytest.raises(ValueError, match=r"wrong shape: body\.1\.rdb2\.conv3\.weight"):
        detect_arch(sd)
    sd = dict(build("DnCNN", nc=8, nb=4).state_dict())
    del sd["model.4.bias"]
    with pytest.raises(ValueError, match=r"missing: model\.4\.bias"):
        detect_arch(sd)


def test_discriminators_are_not_taken_for_generators():
    for name in ("NLayerDiscriminator", "PixelDiscriminator"):
        with pytest.raises(ValueError, match="known architectures"):
            detect_arch(build(name, ndf=4).state_dict())


def test_legacy_instance_norm_statistics_in_unet():
    model = build("UnetGenerator", ngf=2, num_downs=5, norm="instance")
    sd = dict(model.state_dict())
    sd["model.model.1.model.2.running_mean"] = torch.zeros(4)
    sd["model.model.1.model.2.running_var"] = torch.ones(4)
    assert detect_arch(sd)[1]["norm"] == "instance"
