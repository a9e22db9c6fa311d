"""Device and precision choice: valid choices, refusals that teach, CPU bf16 policy, prepare."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scenestyle.engine import agreement
from scenestyle.engine import device as dev
from scenestyle.engine.device import Placement, agreement_db, check_image, choose_placement, cpu_flags, prepare
from scenestyle.errors import UsageError
from scenestyle.nn import ModelMeta, describe
from scenestyle.nn.ffdnet import FFDNet

# What the loader would say about Tiny.
META = ModelMeta(arch="tiny", task="denoise", in_channels=3, out_channels=3, scale=1, size_multiple=4, halo=2, value_range=(0.0, 1.0))


class Tiny(nn.Module):
    def __init__(self, gain: float = 1.0):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # a huge gain makes bf16 rounding visible over the [0, 1] range: agreement fails
        return x + self.gain * self.body(x)


@pytest.fixture(autouse=True)
def _no_env_threads(monkeypatch):
    monkeypatch.delenv("SCENESTYLE_THREADS", raising=False)


def with_flags(monkeypatch, *flags: str) -> None:
    monkeypatch.setattr(dev, "cpu_flags", lambda: frozenset(flags))


def test_cpu_flags_is_a_frozenset_of_names():
    flags = cpu_flags()
    assert isinstance(flags, frozenset)
    assert all(isinstance(f, str) and f == f.strip() and f for f in flags)


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "CPU", "", "cuda:"])
def test_invalid_device_lists_choices(bad):
    with pytest.raises(UsageError, match="auto, cpu, cuda, cuda:N"):
        choose_placement(bad)


@pytest.mark.parametrize("asked", ["cuda", "cuda:1"])
def test_cuda_unavailable_suggests_cpu(asked, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on a CUDA host
    with pytest.raises(UsageError, match="CUDA is not available.*--device cpu"):
        choose_placement(asked)


def test_invalid_precision_lists_choices():
    with pytest.raises(UsageError, match="auto, fp32, bf16, fp16"):
        choose_placement("cpu", "half")


def test_fp16_on_cpu_is_refused():
    with pytest.raises(UsageError, match="fp16 is not supported on CPU.*use bf16 or fp32"):
        choose_placement("cpu", "fp16")


def test_explicit_precisions_on_cpu(monkeypatch):
    with_flags(monkeypatch)
    p = choose_placement("cpu", "fp32")
    assert (p.device, p.dtype, p.channels_last) == (torch.device("cpu"), torch.float32, True)
    b = choose_placement("cpu", "bf16")
    assert b.dtype == torch.bfloat16 and "emulated" in b.reason


def test_auto_without_native_bf16_is_fp32(monkeypatch):
    with_flags(monkeypatch, "avx512f", "avx512_vnni", "amx_int8")
    monkeypatch.setattr(dev, "agreement_db", lambda *a, **k: pytest.fail("no bf16 to check"))
    p = choose_placement("cpu", "auto", model=Tiny(), meta=META)
    assert (p.dtype, p.channels_last, p.backend) == (torch.float32, True, "torch")
    assert "lacks avx512_bf16 and amx_bf16" in p.reason and "fp32" in p.reason
    assert choose_placement("cpu", "auto").dtype == torch.float32


@pytest.mark.parametrize("flag", ["amx_bf16", "avx512_bf16"])
def test_auto_with_native_bf16_and_agreeing_model_is_bf16(monkeypatch, flag):
    with_flags(monkeypatch, "avx512f", flag)
    p = choose_placement("cpu", "auto", model=Tiny(), meta=META)
    assert (p.dtype, p.channels_last, p.backend) == (torch.bfloat16, True, "torch")
    assert f"CPU has {flag}" in p.reason and ">= 40" in p.reason and "dB from fp32" in p.reason
    assert ("no AMX" in p.reason) == (flag != "amx_bf16")


def test_auto_without_a_model_names_the_agreement_rule(monkeypatch):
    with_flags(monkeypatch, "amx_bf16")
    p = choose_placement("cpu", "auto")
    assert p.dtype == torch.bfloat16 and ">= 40 dB from fp32, else fp32" in p.reason


def test_auto_bf16_refused_when_model_disagrees(monkeypatch):
    with_flags(monkeypatch, "amx_bf16", "avx512_bf16")
    model = Tiny(gain=3000.0)
    p = choose_placement("cpu", "auto", model=model, meta=META)
    assert p.dtype == torch.float32
    assert "< 40" in p.reason and "amx_bf16" in p.reason
    assert agreement_db(model, META, torch.bfloat16) < 40


def test_int8_is_not_a_precision():
    with pytest.raises(UsageError, match=r"^invalid precision 'int8'; choose one of: auto, fp32, bf16, fp16$"):
        choose_placement("cpu", "int8")


def test_agreement_is_cached_and_leaves_model_untouched(monkeypatch):
    model = Tiny()
    first = agreement_db(model, META, torch.bfloat16)
    assert first >= 40
    assert next(model.parameters()).dtype == torch.float32
    monkeypatch.setattr(agreement, "forward_at", lambda *a, **k: pytest.fail("must use the cache"))
    assert agreement_db(model, META, torch.bfloat16) == first


def test_a_noise_level_model_is_checked_at_a_mid_range_sigma():
    torch.manual_seed(0)
    meta = describe("FFDNet", dict(in_nc=3, out_nc=3, nc=8, nb=3))
    assert 20 < agreement_db(FFDNet(in_nc=3, out_nc=3, nc=8, nb=3).eval(), meta, torch.bfloat16) < float("inf")


def test_a_model_comes_with_its_meta():
    with pytest.raises(ValueError, match="model and its meta"):
        choose_placement("cpu", "fp32", model=Tiny())


def test_check_image_respects_range_and_multiple():
    m = ModelMeta(arch="odd", task="style", in_channels=1, out_channels=1, scale=1, size_multiple=24, halo=0, value_range=(-1.0, 1.0))
    img = check_image(m)
    assert img.shape == (1, 1, 72, 72)
    assert img.min() >= -1 and img.max() <= 1 and img.std() > 0.1
    assert torch.equal(img, check_image(m))  # seeded


def test_threads_from_env(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("SCENESTYLE_THREADS", "1")
    try:
        p = choose_placement("cpu", "fp32")
        assert p.threads == 1 and torch.get_num_threads() == 1 and "SCENESTYLE_THREADS" in p.reason
    finally:
        torch.set_num_threads(before)
    monkeypatch.setenv("SCENESTYLE_THREADS", "many")
    with pytest.raises(UsageError, match="SCENESTYLE_THREADS"):
        choose_placement("cpu", "fp32")


def test_no_env_leaves_threads_alone():
    assert choose_placement("cpu", "fp32").threads is None


def test_prepare_casts_and_sets_eval():
    model = Tiny().train()
    p = Placement(torch.device("cpu"), torch.bfloat16, True, None, "test")
    out = prepare(model, META, p)
    w = out.body[0].weight
    assert out.training is False and w.dtype == torch.bfloat16
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()


def test_placement_is_frozen_and_serialisable():
    p = choose_placement("cpu", "fp32")
    with pytest.raises(AttributeError):
        p.dtype = torch.float16  # type: ignore[misc]
    assert p.as_dict()["precision"] == "fp32" and p.as_dict()["device"] == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="gpu test on a machine without CUDA")
def test_cuda_auto_picks_fp16_for_an_agreeing_model():
    p = choose_placement("cuda", "auto", model=Tiny(), meta=META)
    assert p.device.type == "cuda" and p.dtype == torch.float16 and "dB" in p.reason
