"""The OpenVINO CPU backend: every architecture agrees with torch, the CLI runs through it, its
caches work, and a missing or unsuitable OpenVINO is said in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY
from PIL import Image
from typer.testing import CliRunner

from scenestyle.cli import app
from scenestyle.engine import openvino_backend as ov
from scenestyle.engine.agreement import check_image, model_args
from scenestyle.engine.device import choose_placement, prepare
from scenestyle.errors import UsageError
from scenestyle.metrics.psnr_ssim import psnr
from scenestyle.nn import build, describe
from scenestyle.nn.meta import TABLE

pytestmark = pytest.mark.skipif(ov.version() is None, reason="openvino is not installed on this platform")
runner = CliRunner()


def _tiny(arch: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build(arch, **TINY[arch]).eval()


def _photo(path: Path, size=(40, 36)) -> Path:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
    rgb = np.stack([xx * 5, yy * 6, (xx + yy) * 3], -1) + rng.normal(0, 12, (size[1], size[0], 3))
    Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize("arch", sorted(a for a in TABLE if a in TINY))
def test_every_architecture_agrees_with_torch(arch):
    model = _tiny(arch)
    meta = describe(arch, TINY[arch])
    for side, batch in ((48, 1), (32, 2)):  # dynamic shapes: other sizes and a batch, one compiled model
        x = check_image(meta, side=side).repeat(batch, 1, 1, 1)
        with torch.inference_mode():
            ref = model(x, *model_args(meta))
        out = ov.compile_model(model, meta, "fp32")(x, *model_args(meta))
        lo, hi = meta.value_range
        assert out.shape == ref.shape and out.dtype == torch.float32
        assert psnr(out.numpy(), ref.numpy(), peak=hi - lo) >= 40, arch


def test_a_flattened_net_runs_its_convs_in_openvino_and_the_filter_in_torch(monkeypatch, tmp_path):
    monkeypatch.setenv("SCENESTYLE_CACHE", str(tmp_path))
    torch.manual_seed(0)
    kwargs = dict(ngf=4, n_blocks=2, norm="none", flatten=3)
    model, meta = build("CompactGenerator", **kwargs).eval(), describe("CompactGenerator", kwargs)
    compiled = ov.compile_model(model, meta, "fp32")
    assert compiled.finish is not None and not any(True for _ in compiled.finish.parameters())
    (xml,) = (tmp_path / "openvino" / "models").glob("*/model.xml")  # the converted graph
    assert "GroupConvolution" in xml.read_text() and "AvgPool" not in xml.read_text()  # no Kuwahara windows in it
    x = check_image(meta, side=48)
    with torch.inference_mode():
        ref = model(x)
    assert psnr(compiled(x).numpy(), ref.numpy(), peak=2.0) >= 40


def test_a_second_process_loads_the_converted_model_instead_of_converting(monkeypatch, tmp_path):
    monkeypatch.setenv("SCENESTYLE_CACHE", str(tmp_path))
    model, meta = _tiny("SRVGGNetCompact"), describe("SRVGGNetCompact", TINY["SRVGGNetCompact"])
    first = ov.compile_model(model, meta, "fp32")
    assert ov.cache_bytes() > 0 and list((tmp_path / "openvino" / "models").glob("*/model.xml"))
    ov._COMPILED.clear()  # as a new process starts
    monkeypatch.setattr(ov, "_convert", lambda *a: pytest.fail("converted again"))
    second = ov.compile_model(model, meta, "fp32")
    x = check_image(meta)
    assert torch.equal(first(x), second(x))
    changed = _tiny("SRVGGNetCompact", seed=1)  # other weights: another key, so a conversion
    with pytest.raises(pytest.fail.Exception, match="converted again"):
        ov.compile_model(changed, meta, "fp32")


_TELEMETRY = """
import sys, torch
from openvino_telemetry.utils.sender import TelemetrySender
sent = []
TelemetrySender.send = lambda self, backend, message: sent.append(message)
if sys.argv[1] == "ours":
    from scenestyle.engine import openvino_backend as ov
    from scenestyle.nn import build, describe
    ov.compile_model(build("DnCNN", nc=8, nb=5).eval(), describe("DnCNN", dict(nc=8, nb=5)), "fp32")
import openvino
openvino.convert_model(torch.nn.Conv2d(3, 3, 3), example_input=torch.rand(1, 3, 16, 16))
print(len(sent))
"""


@pytest.mark.parametrize("how", ["plain", "ours"])
def test_openvino_sends_no_telemetry_through_scenestyle(how, tmp_path):
    """OpenVINO reports its import and each conversion to Google Analytics by default (no consent file,
    not in CI); once scenestyle has imported it, nothing is sent and no client id is written."""
    pytest.importorskip("openvino_telemetry")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    env.update(HOME=str(tmp_path), SCENESTYLE_CACHE=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, "-c", _TELEMETRY, how], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    sent = int(r.stdout.split()[-1])
    if how == "plain":  # what OpenVINO does on its own: the test would see a leak
        assert sent > 0 and (tmp_path / "intel").is_dir()
    else:
        assert sent == 0 and not (tmp_path / "intel").exists()


def test_a_read_only_cache_costs_a_conversion_not_the_run(monkeypatch, tmp_path):
    # a cache root that is a file cannot take folders, even for root (who ignores permission bits)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setenv("SCENESTYLE_CACHE", str(blocked / "cache"))
    model, meta = _tiny("DnCNN"), describe("DnCNN", TINY["DnCNN"])
    x = check_image(meta)
    assert ov.compile_model(model, meta, "fp32")(x).shape == x.shape


def test_a_blob_another_process_is_writing_costs_a_compilation_not_the_run(monkeypatch, tmp_path):
    """Ranks of one torchrun share the blob cache; one may read a blob the other is writing."""
    monkeypatch.setenv("SCENESTYLE_CACHE", str(tmp_path / "cache"))
    openvino = ov.import_openvino()
    real = openvino.Core

    class RacingCore:  # a Core whose blob cache is being written by someone else
        def __init__(self):
            self.core, self.cached = real(), False

        def set_property(self, props):
            self.cached = "CACHE_DIR" in props
            self.core.set_property(props)

        def compile_model(self, *args):
            if self.cached:
                raise RuntimeError("Exception from src/inference/src/cpp/core.cpp:132: filesystem error: cannot open file")
            return self.core.compile_model(*args)

    monkeypatch.setattr(openvino, "Core", RacingCore)
    model, meta = _tiny("DnCNN"), describe("DnCNN", TINY["DnCNN"])
    x = check_image(meta)
    assert ov.compile_model(model, meta, "fp32")(x).shape == x.shape


def test_auto_picks_openvino_on_the_cpu_for_every_model():
    kwargs = {**TINY["CompactGenerator"], "norm": "none"}  # as the shipped styles
    model, meta = build("CompactGenerator", **kwargs).eval(), describe("CompactGenerator", kwargs)
    p = choose_placement("cpu", "fp32", model=model, meta=meta, backend="auto")
    assert p.backend == "openvino" and p.precision == "fp32" and "OpenVINO" in p.reason
    assert isinstance(prepare(model, meta, p), ov.OVModel)
    resnet, rmeta = _tiny("ResnetGenerator"), describe("ResnetGenerator", TINY["ResnetGenerator"])  # instance norms
    assert choose_placement("cpu", "fp32", model=resnet, meta=rmeta, backend="auto").backend == "openvino"
    with pytest.raises(UsageError, match="invalid precision 'int8'; choose one of: auto, fp32, bf16, fp16$"):
        choose_placement("cpu", "int8", model=model, meta=meta, backend="openvino")
    with pytest.raises(UsageError, match="choose one of: auto, torch, openvino"):
        choose_placement("cpu", "fp32", model=model, meta=meta, backend="onnx")


@pytest.mark.parametrize(
    ("command", "arch", "kwargs", "extra"),
    [
        ("stylize", "CompactGenerator", {"norm": "none"}, ["--work-size", "0"]),
        ("upscale", "SRVGGNetCompact", {}, []),
        ("denoise", "DnCNN", {}, []),
        ("denoise", "ffdnet_color", {}, ["--noise-level", "20"]),
    ],
)
def test_cli_outputs_match_the_torch_backend(command, arch, kwargs, extra, tmp_path):
    from safetensors.torch import save_file

    weights = tmp_path / f"{arch}.safetensors"
    torch.manual_seed(0)
    model = build(arch, **{**TINY[arch], **kwargs})
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    photos = tmp_path / "in"
    photos.mkdir()
    for i, size in enumerate([(72, 64), (72, 64), (96, 50)]):  # two of one size: batched together
        _photo(photos / f"p{i}.png", size)
    outs = {}
    for backend in ("torch", "openvino"):
        out = tmp_path / backend
        args = [command, str(photos), "-o", str(out), "--weights", str(weights), "--arch", arch, "--precision", "fp32"]
        r = runner.invoke(app, [*args, *extra, "--backend", backend, "--tile", "32", "--batch-size", "2", "--json"])
        assert r.exit_code == 0, r.output
        report = json.loads(r.stdout)
        assert report["parameters"]["backend"] == backend
        outs[backend] = {p.name: np.asarray(Image.open(p), dtype=np.float64) for p in sorted(out.glob("p*.png"))}
    assert outs["torch"].keys() == outs["openvino"].keys() and len(outs["torch"]) == 3
    for name, ref in outs["torch"].items():
        assert psnr(outs["openvino"][name], ref, peak=255.0) >= 40, name


def test_missing_openvino_is_one_line_and_auto_falls_back_to_torch(monkeypatch, tmp_path):
    monkeypatch.setattr(ov, "version", lambda: None)
    photo = _photo(tmp_path / "p.png")
    r = runner.invoke(app, ["stylize", str(photo), "-o", str(tmp_path / "a"), "--backend", "openvino"])
    assert r.exit_code == 2
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "openvino package is not installed" in lines[0] and "--backend torch" in lines[0]
    r = runner.invoke(app, ["stylize", str(photo), "-o", str(tmp_path / "b"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["parameters"]["backend"] == "torch"


def test_shipped_style_runs_bf16_on_openvino_where_the_cpu_has_it():
    from scenestyle.engine.device import NATIVE_BF16_FLAGS, cpu_flags
    from scenestyle.loading import load_model

    loaded = load_model("style-oil", task="style", offline=True)
    p = choose_placement("cpu", "auto", model=loaded.module, meta=loaded.meta, backend="openvino")
    native = any(f in cpu_flags() for f in NATIVE_BF16_FLAGS)
    assert p.precision == ("bf16" if native else "fp32")
    if native:
        assert ov.agreement_db(loaded.module, loaded.meta, "bf16") >= 40


def test_memory_estimate_sees_through_the_compiled_model():
    # tiles are sized from bytes per pixel; a compiled model has no layers to measure, so its
    # float32 torch twin is measured, also through the engine's value-range wrapper
    from scenestyle.engine.convert import UnitRange
    from scenestyle.engine.memory import bytes_per_input_pixel

    kwargs = {**TINY["CompactGenerator"], "norm": "none"}
    model, meta = build("CompactGenerator", **kwargs).eval(), describe("CompactGenerator", kwargs)
    p_ov = choose_placement("cpu", "fp32", model=model, meta=meta, backend="openvino")
    p_torch = choose_placement("cpu", "fp32", model=model, meta=meta, backend="torch")
    wrapped = UnitRange(prepare(model, meta, p_ov), meta.value_range)
    expected = bytes_per_input_pixel(prepare(build("CompactGenerator", **kwargs).eval(), meta, p_torch), meta, p_torch)
    from scenestyle.engine.memory import _OV_OUTPUT_BUFFERS

    held = _OV_OUTPUT_BUFFERS * 4 * meta.out_channels * meta.scale**2  # OpenVINO's own output-sized buffers
    assert bytes_per_input_pixel(wrapped, meta, p_ov) == expected + held > held


_PEAK_GROWTH = """
import json, sys, torch
from scenestyle.engine.device import choose_placement, prepare
from scenestyle.engine.memory import bytes_per_input_pixel
from scenestyle.nn import build, describe
def hwm():
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM"))
kw = dict(num_feat=16, num_conv=4, upscale=4)
model, meta = build("SRVGGNetCompact", **kw).eval(), describe("SRVGGNetCompact", kw)
p = choose_placement("cpu", "auto", model=model, meta=meta, backend="openvino")
m = prepare(model, meta, p)
m(torch.rand(1, 3, 32, 32))
x = torch.rand(1, 3, 256, 256)
before = hwm()
y = m(x)
print(json.dumps({"growth": hwm() - before, "estimate": bytes_per_input_pixel(m, meta, p) * 256 * 256}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS read from /proc (Linux)")
def test_memory_estimate_covers_what_an_openvino_x4_forward_adds_to_the_peak():
    # tiles are sized from this estimate: below the real growth, a 25 MP upscale overshot its budget
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", _PEAK_GROWTH], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert 0 < got["growth"] <= got["estimate"], got


def test_stylize_at_the_working_size_frees_openvinos_activations_before_guiding_up(monkeypatch, tmp_path):
    # OpenVINO keeps a pass's buffers between calls; the full-size guided filter needs that memory
    from safetensors.torch import save_file

    freed = []
    monkeypatch.setattr(ov.OVModel, "release_memory", lambda self: freed.append(self.precision))
    torch.manual_seed(0)
    model = build("CompactGenerator", **{**TINY["CompactGenerator"], "norm": "none"})
    weights = tmp_path / "style.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    photos = tmp_path / "in"
    photos.mkdir()
    for i in range(2):
        _photo(photos / f"p{i}.png", (320, 240))  # 76800 px: above the smallest working size
    args = ["stylize", str(photos), "-o", str(tmp_path / "out"), "--weights", str(weights), "--arch", "CompactGenerator"]
    r = runner.invoke(app, [*args, "--work-size", "65536", "--backend", "openvino"])
    assert r.exit_code == 0, r.output
    assert len(freed) == 2 and len(list((tmp_path / "out").glob("p*.png"))) == 2


def test_instance_norm_model_runs_whole_on_openvino_and_tiles_on_torch_with_whole_image_statistics(monkeypatch):
    """OpenVINO's instance norms see the whole image; tiles need its statistics, which the float32
    torch module gets: both give the torch path's result, and only the whole run calls OpenVINO."""
    from scenestyle.engine.convert import UnitRange
    from scenestyle.engine.device import Placement
    from scenestyle.engine.tiles import run_model

    model, meta = _tiny("ResnetGenerator"), describe("ResnetGenerator", TINY["ResnetGenerator"])
    compiled = UnitRange(ov.compile_model(model, meta, "fp32"), meta.value_range)
    ov_place = choose_placement("cpu", "fp32", model=model, meta=meta, backend="openvino")
    torch_place = Placement(torch.device("cpu"), torch.float32, False, None, "test")
    x = torch.rand(1, 3, 96, 80)
    calls = []
    real = ov.OVModel.forward
    monkeypatch.setattr(ov.OVModel, "forward", lambda self, *a: calls.append(1) or real(self, *a))
    for tile in (0, 32):
        want = run_model(UnitRange(model, meta.value_range), meta, x, torch_place, tile=tile)
        calls.clear()
        got = run_model(compiled, meta, x, ov_place, tile=tile)
        assert bool(calls) == (tile == 0)  # tiled: the torch twin ran, not OpenVINO
        assert psnr(got.numpy(), want.numpy(), peak=1.0) >= 50, tile


def test_agreement_is_kept_on_disk_per_cpu(monkeypatch):
    """A later process reads the bf16 check's figure beside the converted model instead of running
    the two check passes again; another CPU checks afresh."""
    model, meta = _tiny("CompactGenerator", seed=7), describe("CompactGenerator", TINY["CompactGenerator"])
    first = ov.agreement_db(model, meta, "bf16", cpu="cpu A")
    ov._AGREEMENT.clear()  # a new process
    monkeypatch.setattr(ov, "forward_at", lambda *a, **k: pytest.fail("the check ran again"))
    assert ov.agreement_db(model, meta, "bf16", cpu="cpu A") == first
    ov._AGREEMENT.clear()
    with pytest.raises(pytest.fail.Exception, match="ran again"):
        ov.agreement_db(model, meta, "bf16", cpu="cpu B")
