"""weights.lock: every entry well formed, bundled files matching their pins, defaults and wdn twins
that name real entries, and malformed locks refused with a message naming what is wrong."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from _fixtures import TINY_MODELS, save_weights
from PIL import Image
from test_weights import write_lock
from typer.testing import CliRunner

import scenestyle
from scenestyle import weights as w
from scenestyle.cli import app
from scenestyle.errors import WeightsError
from scenestyle.nn import _registry, build, describe
from scenestyle.weights import lock as wlock

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
runner = CliRunner()


def test_root_lock_is_the_packaged_lock():
    """One source: the top-level weights.lock is a link to the file the package ships."""
    assert (REPO_ROOT / "weights.lock").resolve() == (REPO_ROOT / "scenestyle" / "weights.lock").resolve()


def test_lock_parses_and_every_entry_is_pinned():
    text = (REPO_ROOT / "weights.lock").read_text()
    headers = re.findall(r"^\[models\.([^\].]+)\]", text, flags=re.M)
    assert len(headers) == len(set(headers))
    lock = w.load_lock()
    assert set(lock) == set(headers)
    for name, e in lock.items():
        assert re.fullmatch(r"[0-9a-f]{64}", e.sha256), name
        assert isinstance(e.size, int) and e.size > 0, name
        assert e.task in w.TASKS and e.format in w.FORMATS
        assert e.hf or e.bundled or e.urls, name
        if e.hf is not None and re.fullmatch(r"[0-9a-f]{40}", e.hf.revision) is None:
            assert "revision unverified offline" in text, name
    assert len({e.sha256 for e in lock.values()}) == len(lock)


def test_bundled_files_match_their_entries():
    bundled = [e for e in w.load_lock().values() if e.bundled]
    assert bundled
    for e in bundled:
        data = (Path(scenestyle.__file__).parent / e.bundled).read_bytes()
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (e.sha256, e.size), e.name


def test_lock_archs_are_registered():
    archs = {e.arch for e in w.load_lock().values()}
    assert archs <= set(_registry.ARCHS), archs - set(_registry.ARCHS)


@pytest.mark.skipif(not (SHARED / "weights/kair_dncnn/dncnn_25.pth").exists(), reason="../shared not present")
def test_shared_dncnn_file_is_recognised_as_lock_entry():
    path = SHARED / "weights/kair_dncnn/dncnn_25.pth"
    rw = w.resolve(str(path))
    assert rw.entry is not None and rw.entry.name == "dncnn-25"
    assert rw.entry.size == path.stat().st_size
    assert rw.sha256 == (SHARED / "weights/kair_dncnn/dncnn_25.pth.sha256").read_text().split()[0]


def test_packaged_defaults_name_entries_that_fit_their_command():
    lock, defaults = w.load_lock(), w.load_defaults()
    assert lock[defaults.require("style")].task == "style" and lock[defaults.style].bundled  # stylize works out of the box
    assert lock[defaults.require("denoise")].task == "denoise" and lock[defaults.denoise].bundled  # so does denoise
    assert sorted(defaults.upscale) == [2, 4]
    for scale, name in defaults.upscale.items():
        assert lock[name].task == "upscale" and describe(lock[name].arch, lock[name].kwargs).scale == scale, name
    twins = {n: e.wdn for n, e in lock.items() if e.wdn}
    assert twins
    for name, twin in twins.items():
        assert lock[twin].task == lock[name].task and (lock[twin].arch, dict(lock[twin].kwargs)) == (
            lock[name].arch,
            dict(lock[name].kwargs),
        )


@pytest.mark.parametrize(
    "args, default",
    [
        (("upscale", "--scale", "2"), lambda d: d.upscale[2]),  # x4 falls back to the bundled upscaler (test_new_user)
    ],
)
def test_commands_without_a_model_load_the_lock_default(tmp_path, monkeypatch, args, default):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    src = tmp_path / "p.png"
    Image.new("RGB", (16, 16)).save(src)
    r = runner.invoke(app, [args[0], str(src), *args[1:], "--offline"])
    assert r.exit_code == 3, r.output
    assert f"weights {default(w.load_defaults())!r} are not" in r.stderr


def test_denoise_without_a_model_runs_the_bundled_default_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    src = tmp_path / "p.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(src)
    r = runner.invoke(app, ["denoise", str(src), "--offline", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["model"]["name"] == w.load_defaults().denoise
    assert (tmp_path / "p_denoised.png").is_file()


@pytest.mark.parametrize(
    "extra, needle",
    [
        ('[defaults]\ndenoise = "other"\n', "defaults.denoise must be one of the denoise entries (tiny), not 'other'"),
        ('[defaults]\nupscale = { x4 = "ghost" }\n', "defaults.upscale.x4 must be one of the upscale entries (other)"),
        ('[defaults]\nupscale = { four = "other" }\n', "defaults.upscale must be an inline table of scale to entry"),
        ('[defaults]\npaint = "tiny"\n', "unknown key(s) paint in [defaults]"),
    ],
)
def test_bad_defaults_are_refused(tmp_path, extra, needle):
    p = write_lock(tmp_path)
    p.write_text(p.read_text() + extra)
    with pytest.raises(WeightsError) as err:
        w.load_defaults(p)
    assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("twin", ["ghost", "tiny"])  # no such entry; an entry of another architecture
def test_wdn_must_name_an_entry_of_the_same_architecture(tmp_path, twin):
    p = write_lock(tmp_path)
    p.write_text(
        p.read_text().replace('urls = ["https://example.org/other.pth"]', f'urls = ["https://example.org/other.pth"]\nwdn = "{twin}"')
    )
    with pytest.raises(WeightsError, match=f"entry 'other': wdn '{twin}' must name another entry with the same arch"):
        w.load_lock(p)


_HF = 'format = "pth"\n[models.tiny.hf]'  # where a key goes into the tiny entry


@pytest.mark.parametrize(
    "patch, needle",
    [
        (('sha256 = "', 'sha256 = "00'), "sha256 must be 64"),
        (('task = "denoise"', 'task = "paint"'), "task 'paint'"),
        (('licence = "MIT"\nformat', 'licnce = "MIT"\nformat'), "unknown key(s) licnce"),
        (('format = "pth"\n[models.tiny.hf]', 'format = "onnx"\n[models.tiny.hf]'), "format 'onnx'"),
        ((_HF, 'format = "pth"\nstrokes = { amount = 12, length = 6 }\n[models.tiny.hf]'), "strokes are only for style"),
        ((_HF, 'format = "pth"\nstrokes = { amount = 12 }\n[models.tiny.hf]'), "strokes must be"),
        ((_HF, 'format = "pth"\nstrokes = { amount = 99, length = 6 }\n[models.tiny.hf]'), "strokes must be"),
        ((_HF, 'format = "pth"\nstrokes = { amount = 12, length = 6, chroma_median = 8 }\n[models.tiny.hf]'), "strokes must be"),
        ((_HF, 'format = "pth"\nstrokes = { amount = 12, length = 6, median = 9 }\n[models.tiny.hf]'), "strokes must be"),
        ((_HF, 'format = "pth"\nstrokes = { amount = 12, length = 6, edges = -1 }\n[models.tiny.hf]'), "strokes must be"),
        ((_HF, 'format = "pth"\nstrokes = { amount = 12, length = 6, edges = true }\n[models.tiny.hf]'), "strokes must be"),
    ],
)
def test_malformed_lock_names_the_entry(tmp_path, patch, needle):
    p = write_lock(tmp_path)
    p.write_text(p.read_text().replace(*patch, 1))
    with pytest.raises(WeightsError) as err:
        w.load_lock(p)
    assert "'tiny'" in str(err.value) and needle in str(err.value)
    assert "\n" not in str(err.value)


def test_lock_entry_without_any_source_is_refused(tmp_path):
    p = write_lock(tmp_path)
    p.write_text(p.read_text().replace('urls = ["https://example.org/other.pth"]', ""))
    with pytest.raises(WeightsError, match="'other'.*at least one source"):
        w.load_lock(p)


# ------------------------------------------------------------------------------ upscale --denoise


def _srvgg_entry(name: str, path: Path, wdn: str | None) -> w.WeightsEntry:
    data = path.read_bytes()
    return w.WeightsEntry(
        name=name,
        task="upscale",
        arch="SRVGGNetCompact",
        kwargs=TINY_MODELS["SRVGGNetCompact"],
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        licence="MIT",
        format="safetensors",
        urls=(f"https://example.org/{name}.safetensors",),
        wdn=wdn,
    )


def test_upscale_denoise_blends_with_the_twin_the_lock_names(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    paths = {}
    for seed, name in enumerate(["tiny-x2", "tiny-wdn"]):
        torch.manual_seed(seed)
        paths[name] = save_weights(build("SRVGGNetCompact", **TINY_MODELS["SRVGGNetCompact"]), tmp_path / f"{name}.safetensors")
    entries = {
        "tiny-x2": _srvgg_entry("tiny-x2", paths["tiny-x2"], "tiny-wdn"),
        "tiny-wdn": _srvgg_entry("tiny-wdn", paths["tiny-wdn"], None),
    }
    monkeypatch.setattr(wlock, "_default_lock", {**w.load_lock(), **entries})
    w.add(paths["tiny-wdn"])  # the twin is loaded by name, so it must be where names are found
    src = tmp_path / "p.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(src)

    def upscale(out: str, *args: str) -> np.ndarray:
        r = runner.invoke(app, ["upscale", str(src), "-o", str(tmp_path / out), "--offline", *args])
        assert r.exit_code == 0, r.output
        return np.asarray(Image.open(tmp_path / out / "p_x2.png"))

    twin_only = upscale("wdn", "--weights", str(paths["tiny-wdn"]))
    blended = upscale("blend", "--weights", str(paths["tiny-x2"]), "--denoise", "0")  # weight 0: all twin
    assert np.array_equal(blended, twin_only)
    assert not np.array_equal(upscale("plain", "--weights", str(paths["tiny-x2"])), twin_only)
    r = runner.invoke(app, ["upscale", str(src), "--weights", str(paths["tiny-wdn"]), "--denoise", "0.5", "--offline"])
    assert r.exit_code == 2 and "--denoise works with " in r.stderr and "tiny-x2" in r.stderr
