"""load_model: weights → architecture → strict load, with errors that say what does not fit.

The generic tests register two tiny test-only architectures; the official-layout tests build the
real RRDBNet / SRVGGNetCompact / ResnetGenerator through scenestyle.nn at small widths.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

import scenestyle.nn as snn
from scenestyle.errors import UsageError, WeightsError
from scenestyle.loading import LoadedModel, load_model, read_state_dict
from scenestyle.nn import _registry
from scenestyle.nn.meta import ModelMeta
from scenestyle.weights import file_sha256

SHARED = Path(__file__).resolve().parents[2] / "shared"

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"


class TinyNet(nn.Module):
    def __init__(self, ch: int = 4, norm: bool = False):
        super().__init__()
        self.head = nn.Conv2d(1, ch, 3, padding=1)
        self.norm = nn.InstanceNorm2d(ch) if norm else nn.Identity()
        self.tail = nn.Conv2d(ch, 1, 3, padding=1)

    def forward(self, x):
        return self.tail(torch.relu(self.norm(self.head(x))))


class OtherNet(nn.Module):
    def __init__(self, width: int = 2):
        super().__init__()
        self.body = nn.Conv2d(1, width, 1)


def _test_meta(arch: str, **_) -> ModelMeta:
    return ModelMeta(arch=arch, task="denoise", in_channels=1, out_channels=1, scale=1, size_multiple=1, halo=2, value_range=(0.0, 1.0))


@pytest.fixture
def test_archs(monkeypatch):
    added = {"_TestTinyNet": TinyNet, "_TestOtherNet": OtherNet}
    for name, cls in added.items():
        monkeypatch.setitem(snn.ARCHS, name, cls)
        monkeypatch.setitem(snn.meta.TABLE, name, _test_meta)

    def detect(sd):
        if "head.weight" in sd:
            return "_TestTinyNet", {"ch": sd["head.weight"].shape[0]}
        raise ValueError("no known layout")

    monkeypatch.setattr(snn, "detect_arch", detect, raising=False)
    return added


def saved_tiny(tmp_path: Path, *, ch: int = 4, norm: bool = False, wrap: str | None = None) -> tuple[TinyNet, Path]:
    torch.manual_seed(0)
    net = TinyNet(ch, norm).eval()
    sd = net.state_dict()
    path = tmp_path / f"tiny{ch}.pth"
    torch.save({wrap: sd} if wrap else sd, path)
    return net, path


def lock_for(tmp_path: Path, path: Path, *, arch: str, kwargs: str, task: str = "denoise", key: str | None = None) -> Path:
    lock = tmp_path / "weights.lock"
    key_line = f'state_dict_key = "{key}"\n' if key else ""
    lock.write_text(
        f"""[models.tiny]
task = "{task}"
arch = "{arch}"
kwargs = {kwargs}
sha256 = "{file_sha256(path)}"
licence = "MIT"
format = "pth"
{key_line}urls = ["https://example.org/tiny.pth"]
[models.tiny.hf]
repo_id = "org/tiny"
filename = "w/tiny.pth"
revision = "{COMMIT}"
"""
    )
    return lock


def same_output(a: nn.Module, b: nn.Module, channels: int = 1, size: int = 16) -> bool:
    x = torch.rand(1, channels, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.equal(a(x), b(x))


# ------------------------------------------------------------------------------------ generic logic


def test_path_with_lock_entry_uses_entry_arch_and_kwargs(tmp_path, test_archs):
    net, path = saved_tiny(tmp_path, ch=6, wrap="params_ema")
    lock = lock_for(tmp_path, path, arch="_TestTinyNet", kwargs="{ ch = 6 }", key="params_ema")
    m = load_model(str(path), lock=lock)
    assert isinstance(m, LoadedModel)
    assert (m.name, m.arch, dict(m.kwargs), m.task, m.path) == ("tiny", "_TestTinyNet", {"ch": 6}, "denoise", path)
    assert m.meta == _test_meta("_TestTinyNet")
    assert m.sha256 == file_sha256(path)
    assert not m.module.training and not any(p.requires_grad for p in m.module.parameters())
    assert same_output(net, m.module)


def test_path_without_entry_detects_arch(tmp_path, test_archs):
    net, path = saved_tiny(tmp_path, ch=5, wrap="params")
    m = load_model(str(path))
    assert (m.arch, dict(m.kwargs), m.name) == ("_TestTinyNet", {"ch": 5}, str(path))
    assert same_output(net, m.module)


def test_hf_uri_from_fake_cache(tmp_path, test_archs, monkeypatch):
    net, path = saved_tiny(tmp_path, ch=3)
    cache = tmp_path / "hub"
    snap = cache / "models--org--tiny" / "snapshots" / COMMIT / "w" / "tiny.pth"
    snap.parent.mkdir(parents=True)
    snap.write_bytes(path.read_bytes())
    (cache / "models--org--tiny" / "refs").mkdir()
    (cache / "models--org--tiny" / "refs" / "main").write_text(COMMIT)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    lock = lock_for(tmp_path, path, arch="_TestTinyNet", kwargs="{ ch = 3 }")
    by_uri = load_model("hf://org/tiny/w/tiny.pth", offline=True, lock=lock)
    by_name = load_model("tiny", offline=True, lock=lock, task="denoise")
    assert by_uri.path == by_name.path == snap and by_uri.name == "tiny"
    assert same_output(net, by_uri.module) and same_output(net, by_name.module)


def test_forced_wrong_arch_is_one_line_weights_error(tmp_path, test_archs):
    _, path = saved_tiny(tmp_path)
    with pytest.raises(WeightsError) as err:
        load_model(str(path), arch="_TestOtherNet", lock=lock_for(tmp_path, path, arch="_TestTinyNet", kwargs="{ ch = 4 }"))
    msg = str(err.value)
    assert "\n" not in msg
    assert f"weights {path.name} do not fit _TestOtherNet" in msg
    assert "2 missing keys (e.g. body.weight, body.bias)" in msg and "4 unexpected (e.g. head.weight" in msg
    assert "--arch" in msg and "_TestTinyNet" in msg


def test_shape_mismatch_is_reported(tmp_path, test_archs):
    _, path = saved_tiny(tmp_path, ch=4)
    lock = lock_for(tmp_path, path, arch="_TestTinyNet", kwargs="{ ch = 8 }")
    with pytest.raises(WeightsError, match=r"3 of other shape \(e.g. head.weight: file \(4, 1, 3, 3\) vs model \(8, 1, 3, 3\)\)"):
        load_model(str(path), lock=lock)


def test_unknown_arch_lists_choices(tmp_path, test_archs):
    _, path = saved_tiny(tmp_path)
    with pytest.raises(UsageError, match="unknown architecture 'Nope'.*_TestTinyNet"):
        load_model(str(path), arch="Nope")


def test_task_mismatch(tmp_path, test_archs):
    _, path = saved_tiny(tmp_path)
    with pytest.raises(WeightsError, match="for the denoise task .*needs upscale"):
        load_model(str(path), task="upscale")
    lock = lock_for(tmp_path, path, arch="_TestTinyNet", kwargs="{ ch = 4 }")
    with pytest.raises(UsageError, match="for the denoise task, not style"):
        load_model("tiny", task="style", lock=lock, offline=True)


def test_undetectable_file_asks_for_arch(tmp_path, test_archs):
    path = tmp_path / "odd.pth"
    torch.save({"x.weight": torch.zeros(1)}, path)
    with pytest.raises(WeightsError, match="pass --arch"):
        load_model(str(path))


def test_legacy_instance_norm_stats_are_dropped(tmp_path, test_archs):
    # torch 0.4-era CycleGAN checkpoints carry running stats for untracked InstanceNorm layers.
    net, path = saved_tiny(tmp_path, norm=True)
    sd = net.state_dict()
    sd.update({"norm.running_mean": torch.zeros(4), "norm.running_var": torch.ones(4)})
    torch.save(sd, path)
    m = load_model(str(path), lock=lock_for(tmp_path, path, arch="_TestTinyNet", kwargs="{ ch = 4, norm = true }"))
    assert same_output(net, m.module)
    sd["head.running_mean"] = torch.zeros(4)  # not a norm layer: still an error
    torch.save(sd, path)
    with pytest.raises(WeightsError, match="1 unexpected \\(e.g. head.running_mean\\)"):
        load_model(str(path), lock=lock_for(tmp_path, path, arch="_TestTinyNet", kwargs="{ ch = 4, norm = true }"))


# ------------------------------------------------------------------------ official layouts via nn.build


OFFICIAL = [
    ("RRDBNet", dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4, scale=4), "params_ema", "upscale"),
    ("SRVGGNetCompact", dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=4, act_type="prelu"), "params", "upscale"),
    ("ResnetGenerator", dict(input_nc=3, output_nc=3, ngf=8, n_blocks=1), None, "style"),
]


@pytest.mark.parametrize("arch, kwargs, wrap, task", OFFICIAL, ids=[o[0] for o in OFFICIAL])
def test_official_layout_round_trip(tmp_path, arch, kwargs, wrap, task):
    torch.manual_seed(0)
    ref = snn.build(arch, **kwargs).eval()
    path = tmp_path / f"{arch}.pth"
    torch.save({wrap: ref.state_dict()} if wrap else ref.state_dict(), path)
    m = load_model(str(path), task=task)
    assert m.arch == arch and m.task == task and m.meta == snn.describe(arch, kwargs)
    for k, v in kwargs.items():
        assert m.kwargs.get(k, v) == v, (k, m.kwargs)
    assert same_output(ref, m.module, channels=3)


def test_official_srvgg_forced_into_rrdbnet_fails_cleanly(tmp_path):
    torch.manual_seed(0)
    ref = snn.build("SRVGGNetCompact", num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=4, act_type="prelu")
    path = tmp_path / "srvgg.pth"
    torch.save({"params": ref.state_dict()}, path)
    with pytest.raises(WeightsError) as err:
        load_model(str(path), arch="RRDBNet")
    msg = str(err.value)
    assert "\n" not in msg and "do not fit RRDBNet" in msg and "missing keys" in msg and "--arch" in msg


def test_a_network_the_engine_cannot_run_is_a_usage_error(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "d.pth"
    torch.save(snn.build("PixelDiscriminator", ndf=4).state_dict(), path)
    with pytest.raises(UsageError, match="'PixelDiscriminator' is not an image model scenestyle can run"):
        load_model(str(path), arch="PixelDiscriminator")


def test_real_dncnn_25_loads_from_shared(shared_dir):
    path = shared_dir / "weights" / "kair_dncnn" / "dncnn_25.pth"
    m = load_model(str(path), task="denoise")
    assert (m.name, m.arch, m.task) == ("dncnn-25", "DnCNN", "denoise")
    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert m.module(x).shape == x.shape
    assert os.path.samefile(m.path, path)


# ------------------------------------------------------------------------------------ read_state_dict


def small_sd() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"conv.weight": torch.randn(4, 3, 3, 3, generator=g), "conv.bias": torch.randn(4, generator=g)}


def assert_same(a, b):
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_unwraps_params_ema_before_params(tmp_path):
    sd = small_sd()
    p = tmp_path / "realesrgan.pth"
    torch.save({"params_ema": sd, "params": {k: v * 0 for k, v in sd.items()}}, p)
    assert_same(read_state_dict(p), sd)
    assert_same(read_state_dict(p, "params"), {k: v * 0 for k, v in sd.items()})
    torch.save({"params": sd}, p)
    assert_same(read_state_dict(p), sd)
    torch.save({"state_dict": sd, "epoch_tensor": torch.tensor(3)}, p)
    assert_same(read_state_dict(p), sd)
    with pytest.raises(WeightsError, match="no 'g_ema' entry"):
        read_state_dict(p, "g_ema")


def test_strips_ddp_module_prefix(tmp_path):
    sd = small_sd()
    p = tmp_path / "ddp.pth"
    torch.save({f"module.{k}": v for k, v in sd.items()}, p)
    assert_same(read_state_dict(p), sd)


def test_reads_safetensors(tmp_path):
    from safetensors.torch import save_file

    sd = small_sd()
    p = tmp_path / "m.safetensors"
    save_file(sd, str(p))
    assert_same(read_state_dict(p), sd)


class NotATensor:
    pass


def test_pickle_needing_more_than_weights_is_refused(tmp_path):
    p = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(1), "extra": NotATensor()}, p)
    with pytest.raises(WeightsError, match="not a plain weights file") as err:
        read_state_dict(p)
    assert "\n" not in str(err.value)


def test_non_tensor_values_are_refused(tmp_path):
    p = tmp_path / "ckpt.pth"
    torch.save({"conv.weight": torch.zeros(1), "epoch": 3}, p)
    with pytest.raises(WeightsError, match="non-tensor entry .*'epoch'"):
        read_state_dict(p)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_corrupt_file_is_one_line_weights_error(tmp_path, suffix):
    from safetensors.torch import save_file

    good = tmp_path / f"good{suffix}"
    if suffix == ".pth":
        torch.save(small_sd(), good)
    else:
        save_file(small_sd(), str(good))
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WeightsError, match="cannot read weights") as err:
        read_state_dict(bad)
    assert "\n" not in str(err.value)


@pytest.mark.skipif(not (SHARED / "weights/kair_dncnn/dncnn_25.pth").exists(), reason="../shared not present")
def test_reads_kair_dncnn():
    sd = read_state_dict(SHARED / "weights/kair_dncnn/dncnn_25.pth")
    assert len(sd) == 34 and sd["model.0.weight"].shape == (64, 1, 3, 3) and "model.32.bias" in sd
