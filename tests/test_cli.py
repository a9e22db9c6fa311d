"""The CLI end to end with Typer's CliRunner, tiny seeded models saved as real weight files and
real image files. Checks outputs, metadata, exit codes and the one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _fixtures import tiny_weights  # noqa: F401 (fixture)
from PIL import Image
from typer.testing import CliRunner

from scenestyle.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def _photo(path: Path, size=(48, 40), mode="RGB", seed=0) -> Path:
    rng = np.random.default_rng(seed)
    h, w = size[1], size[0]
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, (xx + yy) / (w + h)], -1) * 200 + rng.integers(0, 40, (h, w, 3))
    im = Image.fromarray(base.clip(0, 255).astype(np.uint8), "RGB")
    if mode == "RGBA":
        im.putalpha(Image.fromarray((xx * 255 // w).astype(np.uint8)))
    elif mode == "L":
        im = im.convert("L")
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


@pytest.fixture(scope="module")
def weights(tiny_weights) -> dict[str, Path]:
    return {"sr": tiny_weights["SRVGGNetCompact"], "style": tiny_weights["ResnetGenerator"], "dn": tiny_weights["DnCNN"]}


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))


def test_upscale_writes_scaled_image_with_alpha_and_manifest(tmp_path, weights):
    src = _photo(tmp_path / "in" / "ünï code photo.png", mode="RGBA")
    r = invoke("upscale", src, "-o", tmp_path / "out", "--weights", weights["sr"], "--tile", "0")
    assert r.exit_code == 0, r.output
    out = tmp_path / "out" / "ünï code photo_x2.png"
    im = Image.open(out)
    assert im.size == (96, 80) and im.mode == "RGBA"
    [manifest] = (tmp_path / "out").glob("*.jsonl")
    assert manifest.name == "scenestyle-upscale.jsonl"  # one predictable place, appended to by every run
    line = json.loads(manifest.read_text().splitlines()[0])
    assert line["status"] == "ok" and len(line["model"]["sha256"]) == 64 and line["model"]["arch"] == "SRVGGNetCompact"


def test_big_upscales_are_written_while_computed_with_the_same_files(tmp_path, weights, monkeypatch):
    from scenestyle.engine import tasks

    for i in range(3):
        _photo(tmp_path / "in" / f"p{i}.png", mode="RGBA" if i == 0 else "RGB", seed=i)
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    args = ("upscale", tmp_path / "in", "--weights", weights["sr"], "--tile", "32", "--json")
    buffered = invoke(*args, "-o", tmp_path / "buffered")
    monkeypatch.setattr(tasks, "STREAM_PIXELS", 0)  # every upscale streams
    streamed = invoke(*args, "-o", tmp_path / "streamed")
    assert buffered.exit_code == streamed.exit_code == 1, streamed.output
    report = json.loads(streamed.stdout)
    assert report["counts"] == {"ok": 3, "skipped": 0, "failed": 1}
    for i in range(3):
        a, b = (tmp_path / kind / f"p{i}_x2.png" for kind in ("buffered", "streamed"))
        assert Image.open(a).mode == Image.open(b).mode == ("RGBA" if i == 0 else "RGB")
        assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
    assert not list((tmp_path / "streamed").glob(".*.tmp"))


def test_upscale_outscale_and_format(tmp_path, weights):
    src = _photo(tmp_path / "p.jpg")
    r = invoke("upscale", src, "--weights", weights["sr"], "--outscale", "3", "--format", "png")
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "p_x3.png").size == (144, 120)


def test_tiled_equals_whole_through_cli(tmp_path, weights):
    src = _photo(tmp_path / "big.png", size=(160, 128))
    a = invoke("upscale", src, "-o", tmp_path / "whole.png", "--weights", weights["sr"], "--tile", "0")
    b = invoke("upscale", src, "-o", tmp_path / "tiled.png", "--weights", weights["sr"], "--tile", "48")
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    x = np.asarray(Image.open(tmp_path / "whole.png"), dtype=np.float64)
    y = np.asarray(Image.open(tmp_path / "tiled.png"), dtype=np.float64)
    mse = np.mean((x - y) ** 2)
    assert mse == 0 or 10 * np.log10(255**2 / mse) >= 40


def test_stylize_keeps_grayscale_and_strength_zero_is_identity(tmp_path, weights):
    src = _photo(tmp_path / "g.png", mode="L")
    r = invoke("stylize", src, "--weights", weights["style"], "--strength", "0")
    assert r.exit_code == 0, r.output
    [out] = [p for p in tmp_path.glob("g_*.png")]
    im = Image.open(out)
    assert im.mode == "L"
    assert np.array_equal(np.asarray(im), np.asarray(Image.open(src)))


def test_denoise_colour_photo_with_grayscale_model(tmp_path, weights):
    src = _photo(tmp_path / "n.png")
    r = invoke("denoise", src, "--weights", weights["dn"], "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["counts"] == {"ok": 1, "skipped": 0, "failed": 0}
    assert Image.open(tmp_path / "n_denoised.png").mode == "RGB"


def test_resume_skips_then_overwrite_redoes(tmp_path, weights):
    src = _photo(tmp_path / "p.png")
    args = ("denoise", src, "--weights", weights["dn"], "--json")
    assert invoke(*args).exit_code == 0
    r = invoke(*args)
    assert json.loads(r.stdout)["counts"]["skipped"] == 1
    r = invoke(*args, "--overwrite")
    assert json.loads(r.stdout)["counts"]["ok"] == 1


def test_bad_file_in_batch_gives_exit_1_and_others_succeed(tmp_path, weights):
    _photo(tmp_path / "in" / "good.png")
    (tmp_path / "in" / "bad.png").write_bytes(b"")
    r = invoke("denoise", tmp_path / "in", "-o", tmp_path / "out", "--weights", weights["dn"])
    assert r.exit_code == 1
    assert (tmp_path / "out" / "good_denoised.png").exists()
    assert not (tmp_path / "out" / "bad_denoised.png").exists()
    assert "bad.png" in r.stderr and "Traceback" not in r.output


@pytest.mark.parametrize(
    "args, code, text",
    [
        (("upscale", "{missing}"), 2, "input not found"),
        (("upscale", "{src}", "--tile", "7"), 2, "--tile"),
        (("upscale", "{src}", "--batch-size", "0"), 2, "--batch-size"),
        (("upscale", "{src}", "--format", "bmp"), 2, "--format"),
        (("upscale", "{src}", "--precision", "fp16", "--device", "cpu", "--weights", "{sr}"), 2, "fp16"),
        (("stylize", "{src}", "--precision", "int8", "--device", "cpu", "--weights", "{style}"), 2, "auto, fp32, bf16, fp16"),
        (
            ("upscale", "{src}", "--precision", "int8", "--weights", "{sr}"),
            2,
            "invalid precision 'int8'; choose one of: auto, fp32, bf16, fp16",
        ),
        (("upscale", "{src}", "--device", "tpu", "--weights", "{sr}"), 2, "device"),
        (("upscale", "{src}", "--strength-typo", "1"), 2, "No such option"),
        (("upscale", "{src}", "-o", "{src}", "--weights", "{sr}"), 2, "also an input"),
        (("upscale", "{src}", "--scale", "2", "--offline"), 3, "scenestyle weights pull"),  # x4 falls back to the bundled upscaler
        (("upscale", "{src}", "--weights", "{tampered}"), 3, ""),
        (("upscale", "{src}", "--weights", "{sr}", "--arch", "RRDBNet"), 3, "do not fit"),
        (("stylize", "{src}", "--style", "nonexistent"), 2, "nonexistent"),
        (("upscale", "{src}", "--weights", "{sr}", "--scale", "4"), 2, "--scale"),
    ],
)
def test_errors_are_one_line_with_documented_exit_code(tmp_path, weights, args, code, text):
    src = _photo(tmp_path / "p.png")
    tampered = tmp_path / "t.safetensors"
    tampered.write_bytes(weights["sr"].read_bytes()[:-7])
    fill = {"src": src, "missing": tmp_path / "nope.png", "sr": weights["sr"], "style": weights["style"], "tampered": tampered}
    r = invoke(*(a.format(**{k: str(v) for k, v in fill.items()}) for a in args))
    assert r.exit_code == code, (r.exit_code, r.output)
    assert text in r.stderr
    assert "Traceback" not in r.output
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png", "t.safetensors"]


def test_weights_list_and_verify_json():
    r = invoke("weights", "list", "--json")
    assert r.exit_code == 0, r.output
    names = {row["name"] for row in json.loads(r.stdout)}
    assert {"realesrgan-x4plus", "realesr-general-x4v3", "dncnn-25"} <= names
    r = invoke("weights", "path", "realesrgan-x4plus")
    assert r.exit_code == 3 and "weights pull realesrgan-x4plus" in r.stderr


def test_info_reports_choice_and_reason(tmp_path):
    import os
    import subprocess
    import sys

    (tmp_path / "critics").mkdir()
    (tmp_path / "critics" / "c.safetensors").write_bytes(b"x" * 2_500_000)
    env = dict(os.environ, SCENESTYLE_CACHE=str(tmp_path))
    # a fresh interpreter: in-process, other tests' imports could hide a missing one
    r = subprocess.run([sys.executable, "-m", "scenestyle", "info", "--json"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["critic_cache"] == f"{tmp_path / 'critics'} (2.5 MB: critics `eval style` trained)"
    assert report["openvino_cache"].startswith(f"{tmp_path / 'openvino'} (")
    assert report["cuda"] == torch.cuda.is_available()
    if report["cuda"]:  # auto prefers the GPU
        assert report["device"] == "cuda" and report["precision"] in ("fp16", "bf16", "fp32")
    else:
        assert report["device"] == "cpu" and report["precision"] in ("fp32", "bf16")
    assert report["reason"]


def test_python_api_matches_cli(tmp_path, weights):
    import scenestyle

    src = _photo(tmp_path / "p.png")
    report = scenestyle.upscale([src], out=tmp_path / "api", weights=str(weights["sr"]), tile=0)
    assert report.exit_code == 0
    r = invoke("upscale", src, "-o", tmp_path / "cli", "--weights", weights["sr"], "--tile", "0")
    assert r.exit_code == 0
    a = np.asarray(Image.open(tmp_path / "api" / "p_x2.png"))
    b = np.asarray(Image.open(tmp_path / "cli" / "p_x2.png"))
    assert a.shape == (80, 96, 3) and np.array_equal(a, b)


@pytest.mark.parametrize("args", [[], ["weights"], ["eval"]])
def test_no_arguments_print_help_once(args):
    r = invoke(*args)
    assert r.exit_code == 2
    assert r.output.count("Usage") == 1


def test_console_entry_exits_with_the_documented_codes(tmp_path):
    """``python -m scenestyle`` ends without the interpreter's teardown: its codes and its output
    (piped, so buffered) must still come out whole."""
    import subprocess
    import sys

    run = lambda *a: subprocess.run([sys.executable, "-m", "scenestyle", *a], capture_output=True, text=True, cwd=tmp_path)  # noqa: E731
    r = run("stylize", str(tmp_path / "missing.jpg"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "missing.jpg" in r.stderr, r.stderr
    r = run("stylize", "--no-such-flag")
    assert r.returncode == 2 and "no-such-flag" in r.stderr
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("scenestyle ")


@pytest.mark.parametrize("code,status", [(None, 0), (0, 0), (3, 3), ("a message", 1)])
def test_exit_status_is_what_sys_exit_gives(code, status, capsys):
    from scenestyle.cli import _exit_code

    assert _exit_code(code) == status
    assert capsys.readouterr().err == ("a message\n" if isinstance(code, str) else "")
