"""Every odd or broken input the issue lists, through the real CLI: odd-but-valid photos come out
right; broken ones give one stderr line naming the file, exit 1, no output, inputs untouched."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import _images as mk
import numpy as np
import pytest
from _fixtures import tiny_weights  # noqa: F401 (fixture)
from PIL import Image
from typer.testing import CliRunner

from scenestyle.cli import app

runner = CliRunner()


def _run(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))


BROKEN = {
    "zero-byte.png": lambda p: p.write_bytes(b""),
    "truncated.jpg": lambda p: mk.make_truncated(p, 0.5, "JPEG"),
    "truncated.png": lambda p: mk.make_truncated(p, 0.5, "PNG"),
    "random.png": mk.make_random_bytes,
    "notes.jpg": mk.make_text_file,
    "bomb.png": mk.make_bomb,
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_input_one_line_exit_1_no_output(tmp_path, tiny_weights, name):
    src_dir = tmp_path / "in"
    src_dir.mkdir()
    BROKEN[name](src_dir / name)
    before = _digest(src_dir)
    r = _run("denoise", src_dir / name, "-o", tmp_path / "out", "--weights", tiny_weights["DnCNN"])
    assert r.exit_code == 1, r.output
    lines = [x for x in r.stderr.splitlines() if x.startswith("scenestyle:")]
    assert len(lines) == 1 and name in lines[0], r.stderr
    assert "Traceback" not in r.output
    assert not any(p.suffix != ".jsonl" for p in (tmp_path / "out").glob("*"))
    assert _digest(src_dir) == before


def test_bomb_message_names_the_limit_flag(tmp_path, tiny_weights):
    mk.make_bomb(tmp_path / "b.png")
    r = _run("denoise", tmp_path / "b.png", "--weights", tiny_weights["DnCNN"])
    assert r.exit_code == 1 and "--max-pixels" in r.stderr


ODD = {
    # name: (maker, expected output mode, expected note fragment or None)
    "cmyk.jpg": (mk.make_cmyk_jpeg, "RGB", None),
    "palette.png": (mk.make_palette_png_with_transparency, "RGBA", None),
    "gray.png": (lambda p: mk.make_rgb(p, mode="L"), "L", None),
    "rgba.png": (lambda p: mk.make_rgb(p, mode="RGBA"), "RGBA", None),
    "anim.gif": (mk.make_animated_gif, None, "first"),
}


@pytest.mark.parametrize("name", sorted(ODD))
def test_odd_inputs_are_processed(tmp_path, tiny_weights, name):
    maker, mode, note = ODD[name]
    maker(tmp_path / name)
    r = _run("denoise", tmp_path / name, "-o", tmp_path / "out", "--weights", tiny_weights["DnCNN"], "--json")
    assert r.exit_code == 0, r.output
    [res] = json.loads(r.stdout)["results"]
    out = Image.open(res["output"])
    if mode:
        assert out.mode == mode
    if note:
        assert any(note in n for n in res["notes"]), res["notes"]


def test_16bit_png_stays_16bit(tmp_path, tiny_weights):
    mk.make_16bit_png(tmp_path / "deep.png", channels=3)
    r = _run("stylize", tmp_path / "deep.png", "--weights", tiny_weights["ResnetGenerator"], "--strength", "0")
    assert r.exit_code == 0, r.output
    from scenestyle.imaging import read_picture

    src, out = read_picture(tmp_path / "deep.png"), read_picture(next(tmp_path.glob("deep_*.png")))
    assert out.bit_depth == 16
    assert np.abs(src.pixels - out.pixels).max() <= 0.5 / 65535  # strength 0: identity at 16-bit precision


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_comes_out_upright(tmp_path, tiny_weights, orientation):
    upright = mk.make_exif_oriented(tmp_path / "o.png", orientation)
    r = _run("denoise", tmp_path / "o.png", "--weights", tiny_weights["DnCNN"], "--strength", "0")
    assert r.exit_code == 0, r.output
    out = Image.open(tmp_path / "o_denoised.png")
    assert out.getexif().get(0x0112, 1) == 1
    assert np.array_equal(np.asarray(out.convert("RGB")), upright[..., :3])


def test_unwritable_output_folder_exit_4(tmp_path, tiny_weights):
    mk.make_rgb(tmp_path / "p.png")
    (tmp_path / "file").write_text("x")  # a folder cannot be made under a file, even by root
    r = _run("denoise", tmp_path / "p.png", "-o", tmp_path / "file" / "out", "--weights", tiny_weights["DnCNN"])
    assert r.exit_code == 4 and "output folder" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_read_only_output_folder_exit_4(tmp_path, tiny_weights, monkeypatch):
    import os

    mk.make_rgb(tmp_path / "p.png")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    real_access = os.access
    # Root ignores permission bits; make the check see what a normal user would.
    monkeypatch.setattr(os, "access", lambda p, m, **k: False if Path(p) == ro and m & os.W_OK else real_access(p, m, **k))
    r = _run("denoise", tmp_path / "p.png", "-o", ro, "--weights", tiny_weights["DnCNN"])
    assert r.exit_code == 4 and "not writable" in r.stderr, r.output
    assert list(ro.iterdir()) == []


def test_weights_for_another_task_refused(tmp_path, tiny_weights):
    mk.make_rgb(tmp_path / "p.png")
    r = _run("denoise", tmp_path / "p.png", "--weights", tiny_weights["SRVGGNetCompact"])
    assert r.exit_code == 3 and "upscale" in r.stderr
