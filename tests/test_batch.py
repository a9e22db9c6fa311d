"""Input discovery, output naming, resume and the manifest (no models involved)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scenestyle.engine.batch import run_jobs
from scenestyle.engine.plan import Job, plan_jobs
from scenestyle.errors import InputImageError, OutputError, UsageError


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_single_file_default_name_beside_input(tmp_path):
    f = _touch(tmp_path / "a b" / "ph oto.jpg")
    [job] = plan_jobs([str(f)], out=None, suffix="oil", fmt=None)
    assert job.output == tmp_path / "a b" / "ph oto_oil.jpg"


def test_format_changes_extension(tmp_path):
    f = _touch(tmp_path / "p.jpg")
    [job] = plan_jobs([str(f)], out=None, suffix="x4", fmt="png")
    assert job.output.name == "p_x4.png"


def test_folder_mirrors_tree_only_with_recursive(tmp_path):
    src = tmp_path / "in"
    _touch(src / "a.jpg")
    _touch(src / "sub" / "b.png")
    _touch(src / "notes.txt")
    flat = plan_jobs([str(src)], out=tmp_path / "out", suffix="denoised", fmt=None)
    assert [j.output for j in flat] == [tmp_path / "out" / "a_denoised.jpg"]
    deep = plan_jobs([str(src)], out=tmp_path / "out", suffix="denoised", fmt=None, recursive=True)
    assert sorted(j.output for j in deep) == [tmp_path / "out" / "a_denoised.jpg", tmp_path / "out" / "sub" / "b_denoised.png"]


def test_glob_input(tmp_path):
    _touch(tmp_path / "g" / "x1.jpg")
    _touch(tmp_path / "g" / "x2.jpg")
    _touch(tmp_path / "g" / "y.jpg")
    jobs = plan_jobs([str(tmp_path / "g" / "x*.jpg")], out=tmp_path / "o", suffix="s", fmt=None)
    assert [j.output.name for j in jobs] == ["x1_s.jpg", "x2_s.jpg"]


def test_missing_input_is_usage_error(tmp_path):
    with pytest.raises(UsageError, match="input not found"):
        plan_jobs([str(tmp_path / "nope.jpg")], out=None, suffix="s", fmt=None)


def test_empty_folder_is_usage_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no images found"):
        plan_jobs([str(tmp_path / "empty")], out=None, suffix="s", fmt=None)


def test_output_equal_to_input_refused(tmp_path):
    f = _touch(tmp_path / "p.jpg")
    with pytest.raises(UsageError, match="also an input"):
        plan_jobs([str(f)], out=f, suffix="s", fmt=None)
    g = _touch(tmp_path / "p_s.jpg")  # an input named like another input's output
    with pytest.raises(UsageError, match="also an input"):
        plan_jobs([str(f), str(g)], out=None, suffix="s", fmt=None)


def test_file_output_with_many_inputs_refused(tmp_path):
    a, b = _touch(tmp_path / "a.jpg"), _touch(tmp_path / "b.jpg")
    with pytest.raises(UsageError, match="file name but there are 2 inputs"):
        plan_jobs([str(a), str(b)], out=tmp_path / "x.png", suffix="s", fmt=None)


def test_run_jobs_resume_skips_existing_and_logs_failures(tmp_path):
    jobs = [Job(_touch(tmp_path / f"{n}.jpg", n.encode()), tmp_path / "out" / f"{n}_s.jpg") for n in ("a", "bad", "c")]
    _touch(jobs[2].output, b"old")

    def load(p: Path) -> str:
        if p.stem == "bad":
            raise InputImageError(f"{p}: not an image")
        return p.read_text()

    manifest = tmp_path / "m.jsonl"
    results = run_jobs(
        jobs, load=load, compute=str.upper, save=lambda s, p: p.write_text(s), manifest=manifest, context={"model": {"sha256": "abc"}}
    )
    assert [r.status for r in results] == ["ok", "failed", "skipped"]
    assert jobs[0].output.read_text() == "A"
    assert jobs[2].output.read_bytes() == b"old"  # nothing overwritten without --overwrite
    assert not jobs[1].output.exists()
    lines = [json.loads(x) for x in manifest.read_text().splitlines()]
    assert {x["status"] for x in lines} == {"ok", "failed", "skipped"}
    assert all(x["model"]["sha256"] == "abc" for x in lines)
    bad = next(x for x in lines if x["status"] == "failed")
    assert "not an image" in bad["error"]
    ok = next(x for x in lines if x["status"] == "ok")
    assert len(ok["input_sha256"]) == 64

    again = run_jobs(jobs, load=load, compute=str.upper, save=lambda s, p: p.write_text(s), overwrite=True)
    assert [r.status for r in again] == ["ok", "failed", "ok"]
    assert jobs[2].output.read_text() == "C"


def test_run_jobs_save_error_is_reported_not_raised(tmp_path):
    jobs = [Job(_touch(tmp_path / "a.jpg"), tmp_path / "a_s.jpg")]

    def save(_, p):
        raise OutputError(f"{p}: disk full")

    [r] = run_jobs(jobs, load=lambda p: "x", compute=lambda x: x, save=save)
    assert r.status == "failed" and "disk full" in r.error
