"""What a new user stumbles on (issue 14, items 15-22): unsafe-checkpoint wording, an unreachable
Hub, `weights add`, training progress without a terminal, file modes, fixed-σ denoisers, help texts.

Everything runs offline: the Hub is a closed loopback port or a fake cache in tmp.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console
from test_weights import COMMIT, TINY, hub_cache, point_hub_at, put_in_cache, sha, write_lock  # noqa: F401 (fixture reused)
from typer.testing import CliRunner

from scenestyle import weights as w
from scenestyle.cli import app
from scenestyle.errors import UsageError, WeightsError
from scenestyle.loading import read_state_dict

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
DNCNN_URL = "https://github.com/cszn/KAIR/releases/download/v1.0/dncnn_25.pth"
X4_URL = "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _photo(path: Path, noise: float = 0.0, size: int = 96) -> Path:
    """A smooth gradient (a clean photo reads ~0 noise), with white Gaussian noise of std ``noise`` (8-bit)."""
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.stack([xx * 2.0, yy * 2.0, (xx + yy) * 1.0], -1) + 40
    base += np.random.default_rng(0).normal(0, noise, base.shape) if noise else 0
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(base.clip(0, 255).astype(np.uint8)).save(path)
    return path


class Payload:
    """Unpickling this would call ``Path.touch`` on the marker: the code a checkpoint must never run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# ------------------------------------------------------------ 15: a code pickle is refused, never "weights_only=False"


def test_code_pickle_checkpoint_is_refused_without_unsafe_advice(tmp_path):
    from scenestyle.train import checkpoint as ckpt

    marker = tmp_path / "ran"
    path = tmp_path / "step_00000001.pt"
    torch.save({"step": 1, "models": {}, "extra": Payload(marker)}, path)
    with pytest.raises(UsageError) as err:
        ckpt.load(path)
    msg = str(err.value)
    assert "not a plain checkpoint" in msg and "can run code" in msg and "\n" not in msg
    assert "weights_only=False" not in msg.replace(" ", "") and "False" not in msg
    assert not marker.exists()

    r = invoke("train", "export", path, "--name", "x")  # the CLI way in: one line, exit 2
    assert r.exit_code == 2 and "not a plain checkpoint" in one_line(r.stderr) and "False" not in r.stderr
    assert not marker.exists()


def test_code_pickle_weights_are_refused_without_unsafe_advice(tmp_path):
    from scenestyle.train.sr_losses import VGG19Features

    marker = tmp_path / "ran"
    path = tmp_path / "vgg19.pth"
    torch.save({"features.0.weight": Payload(marker)}, path)
    with pytest.raises(WeightsError) as err:
        read_state_dict(path)
    assert "not a plain weights file" in str(err.value) and "False" not in str(err.value)
    with pytest.raises(WeightsError) as err:  # was a raw UnpicklingError quoting torch's advice
        VGG19Features(["conv1_1"], path)
    assert "not a plain weights file" in str(err.value) and "False" not in str(err.value)
    assert not marker.exists()


# ------------------------------------------------------------------- 16: an unreachable Hub fails at once


@pytest.fixture
def closed_hub(hub_cache, monkeypatch) -> str:
    """HF_ENDPOINT at a loopback port nothing listens on: every connection is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    point_hub_at(monkeypatch, url)
    return url


def _says_how_to_get_it(line: str, url: str) -> None:
    assert line.startswith("scenestyle: cannot reach the Hugging Face Hub"), line
    assert url in line and "--weights FILE" in line and "scenestyle weights add FILE" in line
    assert "Retry" not in line and "LocalEntryNotFoundError" not in line


def test_unreachable_hub_pull_is_one_line_without_retries(closed_hub, hub_cache):
    # A real process: the hub's retry warnings go to the process's stderr through logging.
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "COLUMNS": "400"}
    r = subprocess.run(
        [sys.executable, "-m", "scenestyle", "weights", "pull", "realesrgan-x4plus"], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 3, r.stderr
    _says_how_to_get_it(one_line(r.stderr), X4_URL)


def test_unreachable_hub_pull_never_waits_to_retry(closed_hub, hub_cache, monkeypatch):
    naps: list[float] = []
    monkeypatch.setattr(time, "sleep", naps.append)  # the Hub client's backoff between retries sleeps
    r = invoke("weights", "pull", "realesrgan-x4plus")
    assert r.exit_code == 3, r.output
    assert naps == []


def test_unreachable_hub_upscale_and_fid_are_one_line(closed_hub, hub_cache, tmp_path):
    photo = _photo(tmp_path / "photo.jpg")
    r = invoke("upscale", photo, "--model", "realesr-general-x4v3")  # named: no fallback
    assert r.exit_code == 3
    _says_how_to_get_it(one_line(r.stderr), "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.5.0/realesr-general-x4v3.pth")
    assert not (tmp_path / "photo_x4.jpg").exists()

    a, b = tmp_path / "a", tmp_path / "b"
    for i in range(2):
        _photo(a / f"{i}.png", noise=3 + i, size=64)
        _photo(b / f"{i}.png", noise=9 + i, size=64)
    r = invoke("eval", "fid", a, b)
    assert r.exit_code == 3
    _says_how_to_get_it(one_line(r.stderr), "pt_inception-2015-12-05-6726825d.pth")


def test_default_upscale_falls_back_to_the_bundled_upscaler_when_the_hub_is_closed(closed_hub, hub_cache, tmp_path):
    photo = _photo(tmp_path / "photo.png", size=24)
    r = invoke("upscale", photo, "--json")
    assert r.exit_code == 0, r.output
    [line] = [x for x in r.stderr.splitlines() if "instead" in x]
    assert line.startswith("realesr-general-x4v3 is not in the Hugging Face cache and it cannot be downloaded now"), line
    assert line.endswith("using the bundled upscale-x4 instead"), line
    assert json.loads(r.stdout)["model"]["name"] == "upscale-x4"
    assert Image.open(tmp_path / "photo_x4.png").size == (96, 96)
    r = invoke("upscale", photo, "--offline", "--overwrite")
    assert r.exit_code == 0 and "downloads are off: using the bundled upscale-x4 instead" in r.stderr, r.output


@pytest.fixture
def remote_default_style(monkeypatch):
    """A default style on the Hub (not cached) whose lock entry falls back to the bundled oil."""
    from scenestyle.weights import lock as wlock

    oil = w.load_lock()["style-oil"]
    hf = w.HubSource(repo_id="org/remote-style", filename="remote.safetensors", revision=COMMIT)
    remote = w.WeightsEntry(**{**oil.__dict__, "name": "style-remote", "bundled": None, "hf": hf, "fallback": "style-oil"})
    monkeypatch.setattr(wlock, "_default_lock", {**w.load_lock(), "style-remote": remote})
    monkeypatch.setattr(wlock, "_default_defaults", w.LockDefaults(style="style-remote"))


@pytest.mark.parametrize("how", ["--offline", "closed hub"])
def test_a_default_that_cannot_be_fetched_gives_way_to_its_bundled_fallback(how, closed_hub, remote_default_style, tmp_path):
    photo = _photo(tmp_path / "photo.png", size=48)
    r = invoke("stylize", photo, *(["--offline"] if how == "--offline" else []), "-o", tmp_path / "out", "--json")
    assert r.exit_code == 0, r.output
    notice = one_line(r.stderr)
    assert "style-remote is not in the Hugging Face cache" in notice and "using the bundled style-oil" in notice
    assert ("downloads are off" in notice) == (how == "--offline")
    report = json.loads(r.stdout)
    assert report["model"]["name"] == "style-oil" and (tmp_path / "out" / "photo_oil.png").is_file()


def test_a_model_named_by_the_user_never_falls_back(closed_hub, remote_default_style, tmp_path):
    photo = _photo(tmp_path / "photo.png", size=48)
    r = invoke("stylize", photo, "--style", "remote", "-o", tmp_path / "out")
    assert r.exit_code == 3 and "cannot reach the Hugging Face Hub" in one_line(r.stderr)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_fallback_must_be_a_bundled_entry_of_the_same_task(tmp_path):
    oil = w.load_lock()["style-oil"]
    text = (REPO / "scenestyle" / "weights.lock").read_text(encoding="utf-8")
    for bad in ("realesrgan-x4plus", "style-missing"):
        lock = tmp_path / f"{bad}.lock"
        lock.write_text(text.replace(f'bundled = "{oil.bundled}"', f'bundled = "{oil.bundled}"\nfallback = "{bad}"'), encoding="utf-8")
        with pytest.raises(WeightsError, match=f"fallback '{bad}' must name a bundled style entry"):
            w.load_lock(lock)


def test_unreachable_hub_for_an_hf_uri_gives_the_hub_file_url(closed_hub, tmp_path):
    with pytest.raises(WeightsError) as err:
        w.resolve(f"hf://org/tiny/sub/tiny.pth@{COMMIT}", lock=write_lock(tmp_path))
    _says_how_to_get_it(f"scenestyle: {err.value}", f"{closed_hub}/org/tiny/resolve/{COMMIT}/sub/tiny.pth")


# -------------------------------------------------------------------------------- 17: weights add


def test_add_places_a_hub_file_where_the_hub_would(hub_cache, tmp_path, umask_022):
    lock = write_lock(tmp_path)
    download = tmp_path / "Downloads" / "tiny.pth"
    download.parent.mkdir()
    download.write_bytes(TINY)
    rw = w.add(download, lock=lock)
    assert rw.entry.name == "tiny" and rw.source == "added" and rw.sha256 == sha(TINY)
    snap = hub_cache / "models--org--tiny" / "snapshots" / COMMIT / "sub" / "tiny.pth"
    assert rw.path == snap and snap.is_symlink() and snap.read_bytes() == TINY
    blob = hub_cache / "models--org--tiny" / "blobs" / sha(TINY)
    assert snap.resolve() == blob.resolve() and stat.S_IMODE(blob.stat().st_mode) == 0o644
    assert download.read_bytes() == TINY  # copied, not moved
    # the ordinary lookups now find it, offline
    assert w.resolve("tiny", lock=lock, offline=True).source == "cache"
    assert w.cache_path("tiny", lock=lock) == snap and w.verify(["tiny"], lock=lock) == [("tiny", "ok")]
    assert w.add(download, "tiny", lock=lock).source == "cache"  # a second add changes nothing
    assert not [p for p in (hub_cache / "models--org--tiny" / "blobs").iterdir() if p.name != sha(TINY)]


def test_add_replaces_a_tampered_cache_copy(hub_cache, tmp_path):
    lock = write_lock(tmp_path)
    snap = put_in_cache(hub_cache, "org/tiny", "sub/tiny.pth", b"tampered", ref=None)
    with pytest.raises(WeightsError):
        w.resolve("tiny", lock=lock, offline=True)
    good = tmp_path / "tiny.pth"
    good.write_bytes(TINY)
    assert w.add(good, lock=lock).path == snap
    assert w.resolve("tiny", lock=lock, offline=True).path.read_bytes() == TINY


def test_add_files_an_entry_without_hub_source(hub_cache, tmp_path):
    data = b"other weights\n" * 3
    lock_path = write_lock(tmp_path)
    lock_path.write_text(lock_path.read_text().replace("ab" * 32, sha(data)))
    with pytest.raises(WeightsError) as err:  # before: "download ... and pass the file's path instead"
        w.resolve("other", lock=lock_path)
    assert "https://example.org/other.pth" in str(err.value) and "scenestyle weights add FILE" in str(err.value)
    assert "--weights FILE" in str(err.value)
    f = tmp_path / "other.pth"
    f.write_bytes(data)
    rw = w.add(f, lock=lock_path)
    assert rw.entry.name == "other" and hub_cache in rw.path.parents
    again = w.resolve("other", lock=lock_path, offline=True)
    assert (again.path, again.source) == (rw.path, "cache")
    assert w.verify(["other"], lock=lock_path) == [("other", "ok")]


def test_add_refuses_files_the_lock_does_not_pin(hub_cache, tmp_path):
    lock = write_lock(tmp_path)
    f = tmp_path / "mine.pth"
    f.write_bytes(b"something else")
    with pytest.raises(WeightsError) as err:
        w.add(f, lock=lock)
    msg = str(err.value)
    assert sha(b"something else") in msg and "other, tiny" in msg and f"--weights {f}" in msg
    with pytest.raises(WeightsError, match=f"expected {sha(TINY)} for 'tiny'"):
        w.add(f, "tiny", lock=lock)
    with pytest.raises(UsageError, match="choose one of: other, tiny"):
        w.add(f, "bogus", lock=lock)
    with pytest.raises(UsageError, match="does not exist"):
        w.add(tmp_path / "nope.pth", lock=lock)
    assert not list(hub_cache.iterdir())


def test_missing_weights_messages_point_to_add_and_weights(hub_cache, tmp_path):
    with pytest.raises(WeightsError) as err:
        w.resolve("tiny", lock=write_lock(tmp_path), offline=True)
    msg = str(err.value)
    assert "scenestyle weights pull tiny" in msg and "scenestyle weights add FILE" in msg and "--weights FILE" in msg
    r = invoke("weights", "path", "dncnn-25")  # before: "run `scenestyle weights pull dncnn-25`", which cannot work
    assert r.exit_code == 3
    line = one_line(r.stderr)
    assert DNCNN_URL in line and "scenestyle weights add FILE" in line and "weights pull" not in line


def test_weights_add_cli_with_the_real_dncnn(hub_cache, shared_dir, tmp_path, umask_022):
    src = shared_dir / "weights" / "kair_dncnn" / "dncnn_25.pth"
    r = invoke("weights", "verify", "dncnn-25")
    assert r.exit_code == 0 and "dncnn-25: missing" in r.stdout and "weights add FILE" in r.stdout
    r = invoke("weights", "add", src)
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("dncnn-25: added, sha256 ok")
    r = invoke("weights", "path", "dncnn-25")
    assert r.exit_code == 0 and Path(r.stdout.strip()).read_bytes() == src.read_bytes()
    assert invoke("weights", "verify", "dncnn-25").stdout.strip() == "dncnn-25: ok"
    rows = {row["name"]: row for row in json.loads(invoke("weights", "list", "--json").stdout)}
    assert rows["dncnn-25"]["local"] and rows["dncnn-25"]["urls"] == [DNCNN_URL]
    r = invoke("weights", "add", src, "--json")
    assert json.loads(r.stdout)["source"] == "cache"
    # and a run finds it by name, offline
    photo = _photo(tmp_path / "p.png", noise=25)
    r = invoke("denoise", photo, "--model", "dncnn-25", "--offline", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["model"]["name"] == "dncnn-25"


def test_weights_add_cli_errors_are_one_line(hub_cache, tmp_path):
    f = tmp_path / "x.pth"
    f.write_bytes(b"not a pinned file")
    r = invoke("weights", "add", f)
    assert r.exit_code == 3 and "is none of the files pinned in weights.lock" in one_line(r.stderr)
    r = invoke("weights", "add", tmp_path / "missing.pth")
    assert r.exit_code == 2 and "does not exist" in one_line(r.stderr)


# ------------------------------------------------------------ 18: progress lines without a terminal


def _drive(reporter, steps: int, sleep: float = 0.0) -> None:
    with reporter:
        for step in range(1, steps + 1):
            if sleep:
                time.sleep(sleep)
            reporter.advance(step)
            if step % 2 == 0:
                reporter.log(step, {"loss_G": 1.5 / step, "loss_D": 0.25, "lr": 2e-4})


def test_training_prints_plain_progress_lines_when_not_a_terminal(tmp_path):
    from scenestyle.train.progress import Reporter

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=200)
    _drive(Reporter(tmp_path, 6, 0, enabled=True, console=console, show_bar=False, line_every=0.0), 6)
    lines = buf.getvalue().strip().splitlines()
    assert len(lines) == 6, lines
    assert re.fullmatch(r"step 1/6 \(17%\)  \d+\.\d\d it/s  ETA \d+m\d\ds", lines[0]), lines[0]
    # printed as step 4 starts its bookkeeping: the losses are the newest logged ones (step 2)
    assert re.fullmatch(r"step 4/6 \(67%\)  \d+\.\d\d it/s  loss_G=0\.75 loss_D=0\.25  ETA \d+m\d\ds", lines[3]), lines[3]
    assert lines[-1].startswith("step 6/6 (100%)") and lines[-1].endswith("ETA 0m00s")
    assert "\x1b" not in buf.getvalue()  # plain text for a log file


def test_progress_lines_are_spaced_in_time_and_end_with_the_last_step(tmp_path):
    from scenestyle.train.progress import Reporter

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=200)
    _drive(Reporter(tmp_path, 50, 10, enabled=True, console=console, show_bar=False, line_every=3600), 40)
    lines = buf.getvalue().strip().splitlines()
    assert [ln.split()[1] for ln in lines] == ["1/50", "40/50"]  # the first step, then the last one at the end


def test_no_progress_lines_on_a_terminal_or_off_rank_0(tmp_path):
    from scenestyle.train.progress import Reporter

    buf = io.StringIO()
    tty = Console(file=buf, force_terminal=True, width=200)
    _drive(Reporter(tmp_path, 4, 0, enabled=True, console=tty, show_bar=False, line_every=0.0), 4)  # --json on a terminal
    plain = Console(file=buf, force_terminal=False, width=200)
    _drive(Reporter(tmp_path / "r1", 4, 0, enabled=False, console=plain, show_bar=False, line_every=0.0), 4)
    assert "step" not in buf.getvalue()


# ---------------------------------------------------------------- 19: trained files follow the umask


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_checkpoints_and_exports_follow_the_umask(tmp_path, umask, mode):
    from scenestyle.nn import build
    from scenestyle.train import checkpoint as ckpt
    from scenestyle.train.export import export_generator

    torch.manual_seed(0)
    kwargs = {"ngf": 4, "n_blocks": 1}
    state = {
        "format": "scenestyle-cyclegan/1",
        "step": 3,
        "config_sha256": "0" * 64,
        "ema": None,
        "generator": {"arch": "ResnetGenerator", "kwargs": kwargs, "model": "G_AB"},
        "models": {"G_AB": build("ResnetGenerator", **kwargs).state_dict()},
    }
    old = os.umask(umask)
    try:
        path = ckpt.checkpoint_path(tmp_path / "run", 3)
        ckpt.atomic_save(state, path)
        result = export_generator(tmp_path / "run", "mine")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode  # was 0600 (mkstemp)
    assert stat.S_IMODE(result.path.stat().st_mode) == mode  # was 0600 (safetensors)


# ---------------------------------------------------------------- 20, 22: README and help texts


def test_readme_training_example_uses_a_users_folders_and_says_how_to_install_cpu_torch():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert "docs/training.md" in text
    training = (REPO / "docs" / "training.md").read_text(encoding="utf-8")
    assert "../shared" not in training
    assert "--a photos/ --b paintings/" in training
    assert re.search(r"`photos/` holds scene photos", training) and re.search(r"`paintings/` holds paintings", training)
    assert "How many" in training
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in text
    assert text.index("download.pytorch.org/whl/cpu") < text.index("## Using it")  # before a laptop user installs


def _command(path: list[str]):
    import typer

    cmd = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return cmd


@pytest.mark.parametrize("path", [["stylize"], ["upscale"], ["denoise"], ["eval", "sr"], ["eval", "denoise"], ["eval", "style"]])
def test_weights_help_names_only_flags_the_command_has(path):
    cmd = _command(path)
    flags = {opt for p in cmd.params for opt in p.opts}
    (weights,) = [p for p in cmd.params if "--weights" in p.opts]
    named = set(re.findall(r"--[a-z][a-z-]*", weights.help))
    assert named and named <= flags, (path, weights.help)


def test_version():
    from scenestyle import __version__

    r = invoke("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"scenestyle {__version__}"


# ---------------------------------------------------------------- 21: fixed-σ denoiser on a clean photo


def test_fixed_sigma_note_only_when_the_photo_is_far_cleaner():
    from scenestyle.engine.noise import fixed_sigma_note

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:128] / 128.0
    clean = np.stack([xx, yy, (xx + yy) / 2], -1).astype(np.float32) * 0.8 + 0.1
    noisy = (clean + rng.normal(0, 25 / 255, clean.shape)).astype(np.float32)
    note = fixed_sigma_note(clean, 25 / 255)
    assert note is not None and "far below" in note and "25/255" in note and "\n" not in note
    assert fixed_sigma_note(noisy, 25 / 255) is None
    assert fixed_sigma_note(clean, 25 / 255, strength=0.0) is None  # nothing of the model's output is kept


def test_lock_sigma_reaches_the_loaded_model(tmp_path):
    from scenestyle.loading import load_model
    from scenestyle.nn import build

    torch.manual_seed(0)
    f = tmp_path / "dn.pth"
    torch.save(build("DnCNN", in_nc=1, out_nc=1, nc=8, nb=3).state_dict(), f)
    lock = tmp_path / "weights.lock"
    lock.write_text(
        f'[models.dn-15]\ntask = "denoise"\narch = "DnCNN"\nkwargs = {{ in_nc = 1, out_nc = 1, nc = 8, nb = 3 }}\n'
        f'sha256 = "{w.file_sha256(f)}"\nlicence = "MIT"\nformat = "pth"\nsigma = 15\n'
        'urls = ["https://example.org/dn.pth"]\n'
    )
    assert load_model(str(f), lock=lock).meta.fixed_sigma == pytest.approx(15 / 255)
    assert w.load_lock()["dncnn-25"].sigma == 25
    bad = tmp_path / "bad.lock"
    bad.write_text(lock.read_text().replace("sigma = 15", "sigma = 0"))
    with pytest.raises(WeightsError, match="sigma must be"):
        w.load_lock(bad)


def test_denoise_warns_when_dncnn25_meets_a_clean_photo(shared_dir, tmp_path):
    weights = shared_dir / "weights" / "kair_dncnn" / "dncnn_25.pth"
    clean, noisy = _photo(tmp_path / "clean.png"), _photo(tmp_path / "noisy.png", noise=25)
    r = invoke("denoise", clean, noisy, "--weights", weights, "-o", tmp_path / "out", "--json")
    assert r.exit_code == 0, r.output
    notes = {Path(x["input"]).name: x["notes"] for x in json.loads(r.stdout)["results"]}
    assert [n for n in notes["clean.png"] if "far below the model's fixed σ 25/255" in n]
    assert not [n for n in notes["noisy.png"] if "far below" in n]
