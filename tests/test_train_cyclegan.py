"""CycleGAN trainer on tiny data: data stream, exact resume after SIGKILL, clean SIGTERM, export, DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import numpy as np
import pytest
import torch
from _fixtures import kill_after_first_checkpoint, torchrun_two_ranks
from PIL import Image

from scenestyle.image_files import list_images
from scenestyle.train import checkpoint as ckpt
from scenestyle.train.config import load_config
from scenestyle.train.cyclegan import train_cyclegan
from scenestyle.train.data import DataStream, UnpairedCrops
from scenestyle.weights import file_sha256

PY = sys.executable

TINY = [
    "data.crop=32",
    "data.workers=0",
    "model.generator=ResnetGenerator",
    "model.generator_kwargs={ngf = 8, n_blocks = 2}",
    "model.discriminator_kwargs={ndf = 8, n_layers = 2}",
    "train.log_every=1",
    "train.sample_every=0",
    "gan.pool_size=4",
    "train.ema_decay=0.9",
    "train.deterministic=true",
]


@pytest.fixture()
def domains(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    for d in "ab":
        (tmp_path / d / "sub").mkdir(parents=True)
        for i in range(3):
            arr = rng.integers(0, 256, (40, 40 + 4 * i, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / d / ("sub" if i == 2 else "") / f"{i}.png")
    (tmp_path / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    return tmp_path / "a", tmp_path / "b"


def _args(a: Path, b: Path, run: Path, *extra: str) -> list[str]:
    sets = [x for s in TINY + list(extra) for x in ("--set", s)]
    return ["--a", str(a), "--b", str(b), "--run-dir", str(run), *sets]


def _weights(run: Path) -> dict:
    state = ckpt.load(ckpt.latest_checkpoint(run))
    return {f"{m}.{k}": v for m, sd in state["models"].items() for k, v in sd.items()} | {
        f"ema.{k}": v for k, v in state["ema"]["module"].items()
    }


def test_stream_is_deterministic_sharded_and_skips_corrupt(domains) -> None:
    a, b = domains
    files_a, files_b = list_images(a, "domain A", recursive=True), list_images(b, "domain B", recursive=True)
    assert len(files_a) == 4 and any(p.parent.name == "sub" for p in files_a)  # recursive
    kw = dict(batch_size=2, crop=32, scale_jitter=(1.0, 1.5), hflip=True, vflip=False, seed=3)
    s1, s2 = DataStream(4, 3, **kw), DataStream(4, 3, **kw)
    assert s1.recipes(5) == s2.recipes(5) and s1.recipes(5) != s1.recipes(6)
    # two ranks cover one epoch of domain A between them, each file once (as DistributedSampler)
    r0, r1 = DataStream(4, 3, **kw, rank=0, world=2), DataStream(4, 3, **kw, rank=1, world=2)
    seen = [r.recipes(0)[j].index for r in (r0, r1) for j in (0, 1)]
    assert sorted(seen) == [0, 1, 2, 3]
    ds = UnpairedCrops(files_a, files_b, 32)
    broken = files_a.index(a / "broken.jpg")
    with pytest.warns(RuntimeWarning, match="broken.jpg"):
        x, y = ds[[r for r in s1.recipes(0)] + [s1.recipes(0)[0].__class__(0, broken, 1.2, 0.5, 0.5, True, False)]]
    assert x.shape == (3, 3, 32, 32) and y.shape == (2, 3, 32, 32)
    assert x.min() >= -1 and x.max() <= 1


@pytest.mark.slow
def test_sigkill_then_resume_is_bitwise_identical(domains, tmp_path: Path) -> None:
    a, b = domains
    steps = ["train.steps=12", "train.checkpoint_every=2", "train.keep_checkpoints=2"]
    # uninterrupted reference, in this process
    ref = train_cyclegan(
        load_config(None, TINY + steps + [f"data.a={a}", f"data.b={b}"]), run=tmp_path / "ref", device="cpu", show_progress=False
    )
    assert ref.step == 12 and ref.stopped == "done"
    # the same run in a subprocess, killed with SIGKILL once a checkpoint is on disk
    run = tmp_path / "killed"
    kill_after_first_checkpoint([PY, "-m", "scenestyle", "train", "cyclegan", *_args(a, b, run, *steps), "--device", "cpu"], run)
    killed_at = ckpt.list_checkpoints(run)[-1][0]
    assert 0 < killed_at < 12
    done = subprocess.run(
        [PY, "-m", "scenestyle", "train", "cyclegan", "--resume", str(run), "--device", "cpu", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    w_ref, w_res = _weights(tmp_path / "ref"), _weights(run)
    assert w_ref.keys() == w_res.keys()
    assert all(torch.equal(w_ref[k], w_res[k]) for k in w_ref)
    assert [s for s, _ in ckpt.list_checkpoints(run)] == [10, 12]  # pruned to keep_checkpoints


@pytest.mark.slow
@pytest.mark.parametrize("group", [False, True], ids=["process", "process-group-with-workers"])
def test_sigterm_saves_and_exits_143(domains, tmp_path: Path, group: bool) -> None:
    """SIGTERM to the trainer, or to its whole process group as SLURM and `timeout` send it (the
    DataLoader workers then get it too), saves a checkpoint and exits 143."""
    a, b = domains
    run = tmp_path / "run"
    extra = ["train.steps=100000", "train.checkpoint_every=100000"] + (["data.workers=2"] if group else [])
    proc = subprocess.Popen(
        [PY, "-m", "scenestyle", "train", "cyclegan", *_args(a, b, run, *extra), "--device", "cpu"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=group,
    )
    deadline = time.monotonic() + 60
    while not (run / "metrics.jsonl").exists() or not (run / "metrics.jsonl").read_text().strip():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    if group:
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    found = ckpt.list_checkpoints(run)
    assert len(found) == 1 and 0 < found[0][0] < 100000
    assert not [p for p in (run / "checkpoints").iterdir() if p.suffix == ".tmp"]


def test_export_then_stylize_matches_direct_forward(domains, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from scenestyle.cli import app
    from scenestyle.nn import build

    a, b = domains
    runner = CliRunner()
    run = tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "train",
            "cyclegan",
            *_args(a, b, run, "train.steps=2", "gan.one_direction=true", "train.sample_every=1"),
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (run / "samples" / "step_00000002.png").is_file() and (run / "config.toml").is_file()
    res = runner.invoke(app, ["train", "export", str(run), "--name", "tiny-style", "-o", str(tmp_path / "exp")])
    assert res.exit_code == 0, res.output
    weights = tmp_path / "exp" / "tiny-style.safetensors"
    entry = tomllib.loads(res.stdout)["models"]["tiny-style"]  # stdout is the weights.lock entry alone
    assert entry["arch"] == "ResnetGenerator" and entry["kwargs"]["ngf"] == 8 and entry["kwargs"]["n_blocks"] == 2
    assert entry["sha256"] == file_sha256(tmp_path / "exp" / "tiny-style.safetensors")
    # the same checkpoint exported again is the same file: the header is written with sorted keys
    res = runner.invoke(app, ["train", "export", str(run), "--name", "tiny-style", "-o", str(tmp_path / "again")])
    assert res.exit_code == 0 and file_sha256(tmp_path / "again" / "tiny-style.safetensors") == entry["sha256"]
    raw = weights.read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    assert list(header) == sorted(header) and list(header["__metadata__"]) == sorted(header["__metadata__"])
    out = tmp_path / "out.png"
    res = runner.invoke(
        app,
        ["stylize", str(b / "0.png"), "--weights", str(weights), "-o", str(out), "--device", "cpu", "--precision", "fp32", "--tile", "0"],
    )
    assert res.exit_code == 0, res.output

    from safetensors.torch import load_file

    g = build("ResnetGenerator", ngf=8, n_blocks=2).eval()
    g.load_state_dict(load_file(str(weights)))
    x = torch.from_numpy(np.asarray(Image.open(b / "0.png"), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        y = ((g(x * 2 - 1) + 1) / 2).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    got = np.asarray(Image.open(out), dtype=np.float32) / 255
    assert got.shape == y.shape
    assert np.abs(got - y).max() <= 1.01 / 255
    res = runner.invoke(app, ["train", "export", str(run), "--name", "Bad Name"])
    assert res.exit_code == 2


def test_cli_errors_are_one_line(domains, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from scenestyle.cli import app

    a, b = domains
    runner = CliRunner()
    res = runner.invoke(app, ["train", "cyclegan", "--a", str(a), "--b", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "domain B folder" in res.output
    res = runner.invoke(app, ["train", "cyclegan", "--a", str(a), "--b", str(b), "--set", "gan.loss=wgan"])
    assert res.exit_code == 2 and "wgan-gp" in res.output
    res = runner.invoke(app, ["train", "cyclegan", "--resume", str(tmp_path)])
    assert res.exit_code == 2 and "config.toml" in res.output
    # generator settings that do not fit: one line, and no run folder left behind
    bad = ["--set", "model.generator=CompactGenerator", "--set", "model.generator_kwargs={flatten = -1}"]
    res = runner.invoke(app, ["train", "cyclegan", "--a", str(a), "--b", str(b), "--run-dir", str(tmp_path / "bad"), *bad])
    assert res.exit_code == 2 and "do not fit CompactGenerator" in res.output and "flatten" in res.output
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_ddp_two_gloo_ranks_stay_in_sync(domains, tmp_path: Path) -> None:
    a, b = domains
    run = tmp_path / "ddp"
    done = torchrun_two_ranks(
        [
            "train",
            "cyclegan",
            *_args(a, b, run, "train.steps=3", "train.checkpoint_every=3", "train.deterministic=false"),
            "--device",
            "cpu",
            "--json",
        ],
        run,
    )
    assert done.returncode == 0, done.stderr[:3000] + "\n...\n" + done.stderr[-1500:]
    import json

    report = json.loads(done.stdout[done.stdout.index("{") :])
    assert len(report["digests"]) == 2 and report["digests"][0] == report["digests"][1]
    assert [s for s, _ in ckpt.list_checkpoints(run)] == [3]
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3  # rank 0 alone logs
    state = ckpt.load(ckpt.latest_checkpoint(run))
    assert len(state["ranks"]) == 2 and state["ranks"][1]["data"]["rank"] == 1
