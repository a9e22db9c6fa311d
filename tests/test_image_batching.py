"""Same-size photos share forward passes: results equal one-by-one runs; odd ones out go alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _fixtures import tiny_weights  # noqa: F401 (fixture)
from _images import make_random_bytes, make_rgb
from PIL import Image
from typer.testing import CliRunner

from scenestyle.cli import app
from scenestyle.engine.batch import run_jobs
from scenestyle.engine.device import Placement
from scenestyle.engine.plan import Job
from scenestyle.engine.tiles import run_model, run_model_many
from scenestyle.errors import InputImageError, ScenestyleError
from scenestyle.nn import build, describe

FP32 = Placement(torch.device("cpu"), torch.float32, True, None, "test")


def _batch_sizes(model: torch.nn.Module, size: tuple[int, int]) -> list[int]:
    """Batch sizes of the forward passes over ``size`` inputs (the memory probe uses another size)."""
    seen: list[int] = []
    model.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[0]) if tuple(args[0].shape[-2:]) == size else None)
    return seen


@pytest.mark.parametrize(
    "arch,kwargs", [("SRVGGNetCompact", dict(num_feat=8, num_conv=3, upscale=2)), ("ResnetGenerator", dict(ngf=4, n_blocks=2))]
)
def test_stacked_images_equal_one_by_one(arch, kwargs):
    torch.manual_seed(0)
    model, meta = build(arch, **kwargs).eval(), describe(arch, kwargs)
    x = torch.rand(5, 3, 36, 44)
    seen = _batch_sizes(model, (36, 44))
    many = run_model_many(model, meta, x, FP32, tile=None, batch_size=3)
    assert seen == [3, 2]  # two forward passes, not five
    single = torch.cat([run_model(model, meta, x[i : i + 1], FP32, tile=0) for i in range(5)])
    assert many.shape == single.shape
    assert torch.allclose(many, single, atol=1e-5)


def test_images_that_need_tiles_run_one_by_one():
    torch.manual_seed(0)
    kwargs = dict(num_feat=8, num_conv=3, upscale=2)
    model, meta = build("SRVGGNetCompact", **kwargs).eval(), describe("SRVGGNetCompact", kwargs)
    x = torch.rand(3, 3, 64, 64)
    shapes: list[tuple[int, ...]] = []
    model.register_forward_pre_hook(lambda _m, args: shapes.append(tuple(args[0].shape)))
    many = run_model_many(model, meta, x, FP32, tile=16, batch_size=4)
    assert shapes and all(n <= 4 and h < 64 and w < 64 for n, _, h, w in shapes)  # tiles, batched 4 at a time
    single = torch.cat([run_model(model, meta, x[i : i + 1], FP32, tile=16, batch_size=4) for i in range(3)])
    assert torch.equal(many, single)


class _Pic:
    """A decoded stand-in: the batch runner only needs a group key and a payload."""

    def __init__(self, value: int, shape: tuple[int, int]):
        self.value, self.shape, self.notes = value, shape, ()


def _jobs(tmp_path: Path, spec: list[object]) -> list[Job]:
    jobs = []
    for i, s in enumerate(spec):
        f = tmp_path / f"in{i}.txt"
        f.write_text(str(s))
        jobs.append(Job(f, tmp_path / "out" / f"out{i}.txt"))
    return jobs


def _load(path: Path) -> _Pic:
    text = path.read_text()
    if text == "bad":
        raise InputImageError(f"{path.name}: corrupt")
    value, shape = text.split(":")
    return _Pic(int(value), (int(shape), int(shape)))


def _save(value: int, path: Path) -> None:
    path.write_text(str(value))


def test_runner_groups_consecutive_same_key_and_reports_bad_files_alone(tmp_path):
    spec = ["1:8", "2:8", "3:8", "bad", "4:8", "5:16", "6:8", "7:8"]
    calls: list[list[int]] = []

    def many(pics):
        calls.append([p.value for p in pics])
        return [p.value * 10 for p in pics]

    results = run_jobs(
        _jobs(tmp_path, spec),
        load=_load,
        compute=lambda p: p.value * 10,
        save=_save,
        compute_many=many,
        group=3,
        group_key=lambda p: p.shape,
    )
    assert [r.status for r in results] == ["ok", "ok", "ok", "failed", "ok", "ok", "ok", "ok"]
    assert "corrupt" in results[3].error
    # groups never cross a size change or a bad file, and never exceed `group`
    assert calls == [[1, 2, 3], [6, 7]]  # 4 and 5 were alone (single compute)
    outs = {p.name: p.read_text() for p in (tmp_path / "out").iterdir()}
    assert outs == {f"out{i}.txt": str(int(s.split(":")[0]) * 10) for i, s in enumerate(spec) if s != "bad"}


def test_failed_group_is_retried_per_image_so_the_error_lands_on_its_file(tmp_path):
    spec = ["1:8", "2:8", "3:8"]

    def many(pics):
        raise ScenestyleError("batched pass failed")

    def one(p):
        if p.value == 2:
            raise ScenestyleError("image 2 is broken")
        return p.value

    results = run_jobs(_jobs(tmp_path, spec), load=_load, compute=one, save=_save, compute_many=many, group=3, group_key=lambda p: p.shape)
    assert [r.status for r in results] == ["ok", "failed", "ok"]
    assert results[1].error == "image 2 is broken"


def test_none_key_is_never_grouped(tmp_path):
    calls = []
    run_jobs(
        _jobs(tmp_path, ["1:8", "2:8"]),
        load=_load,
        compute=lambda p: p.value,
        save=_save,
        compute_many=lambda ps: calls.append(ps) or [p.value for p in ps],
        group=4,
        group_key=lambda p: None,
    )
    assert calls == []


def test_cli_batch_size_gives_the_same_files(tmp_path, tiny_weights, monkeypatch):
    from scenestyle.engine import tasks

    stacked: list[int] = []
    real = tasks.run_model_many
    monkeypatch.setattr(tasks, "run_model_many", lambda m, meta, x, *a, **k: stacked.append(x.shape[0]) or real(m, meta, x, *a, **k))
    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        make_rgb(src / f"p{i}.png", size=(40, 24) if i != 2 else (24, 40))
    runner = CliRunner()
    outs = {}
    for bs in (1, 4):
        res = runner.invoke(
            app,
            [
                "upscale",
                str(src),
                "-o",
                str(tmp_path / f"o{bs}"),
                "--weights",
                str(tiny_weights["SRVGGNetCompact"]),
                "--device",
                "cpu",
                "--precision",
                "fp32",
                "--batch-size",
                str(bs),
            ],
        )
        assert res.exit_code == 0, res.output
        outs[bs] = {p.name: np.asarray(Image.open(p)) for p in sorted((tmp_path / f"o{bs}").glob("*.png"))}
    assert sorted(outs[1]) == sorted(outs[4]) and len(outs[1]) == 5
    assert stacked == [2, 2]  # p0+p1 and p3+p4; p2 (another size) went alone
    for name in outs[1]:
        assert np.array_equal(outs[1][name], outs[4][name]), name


def test_cli_batch_with_a_corrupt_file_still_writes_the_rest(tmp_path, tiny_weights):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        make_rgb(src / f"p{i}.png", size=(32, 32))
    make_random_bytes(src / "p2b.png")
    res = CliRunner().invoke(
        app,
        [
            "upscale",
            str(src),
            "-o",
            str(tmp_path / "o"),
            "--weights",
            str(tiny_weights["SRVGGNetCompact"]),
            "--device",
            "cpu",
            "--batch-size",
            "4",
        ],
    )
    assert res.exit_code == 1
    assert sorted(p.name for p in (tmp_path / "o").glob("*.png")) == [f"p{i}_x2.png" for i in range(4)]
