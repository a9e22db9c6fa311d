"""One batch over several processes: --shard I/N, torchrun ranks, manifest parts, resume after a dead rank."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest
from _fixtures import tiny_weights, torchrun_two_ranks  # noqa: F401 (fixture)
from PIL import Image
from typer.testing import CliRunner

from scenestyle.cli import app
from scenestyle.engine import shard
from scenestyle.errors import UsageError

runner = CliRunner()
# (width, height): varied, so balancing by pixels and by file count differ
SIZES = [(96, 64), (40, 56), (48, 40), (32, 32), (80, 48), (64, 32)]
NOT_PROCESSED = "not processed: rank"


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "SCENESTYLE_TEST_KILL_RANK", "SCENESTYLE_RANK_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def photos(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate(SIZES):
        path = tmp_path / "in" / ("sub" if i % 3 == 2 else "") / f"p{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return tmp_path / "in"


def _args(photos: Path, out: Path, weights: Path, *extra: str) -> list[str]:
    return ["upscale", str(photos), "-r", "-o", str(out), "--weights", str(weights), "--tile", "0", *extra]


def _invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def _outputs(folder: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(folder)): np.asarray(Image.open(p)) for p in sorted(folder.rglob("*.png"))}


def _same_pictures(a: Path, b: Path) -> None:
    pa, pb = _outputs(a), _outputs(b)
    assert sorted(pa) == sorted(pb) and len(pa) == len(SIZES)
    for name in pa:
        assert np.array_equal(pa[name], pb[name]), name


@pytest.fixture
def reference(photos, tiny_weights, tmp_path) -> Path:
    """The outputs of one plain process."""
    out = tmp_path / "single"
    r = _invoke(*_args(photos, out, tiny_weights["SRVGGNetCompact"]))
    assert r.exit_code == 0, r.output
    return out


# -- the split ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["3/2", "2/2", "1/0", "0", "a/b", "-1/2", "1/2/3", ""])
def test_bad_shard_values_are_one_line_usage_errors(value):
    with pytest.raises(UsageError) as e:
        shard.parse_shard(value)
    assert "--shard" in str(e.value) and "\n" not in str(e.value)


def test_shard_values():
    assert shard.parse_shard("0/1") == (0, 1) and shard.parse_shard(" 3 / 8 ") == (3, 8)


def test_assign_balances_pixels_not_files_and_is_deterministic():
    weights = [1000, 10, 10, 10, 10, 10, 10, 900]
    owner = shard.assign(weights, 2)
    assert owner == shard.assign(list(weights), 2)
    loads = [sum(w for w, o in zip(weights, owner) if o == s) for s in (0, 1)]
    assert sorted(loads) == [960, 1000]  # by file count it would be 4 and 4 files with one holding both big ones
    assert shard.assign([5, 5, 5], 5) == [0, 1, 2]  # more shards than photos: some get none
    assert shard.assign([], 3) == []


def test_weights_read_headers_only_whatever_the_size(tmp_path, photos):
    from _images import make_bomb

    (tmp_path / "bad.png").write_bytes(b"not an image")
    got = shard.weights([photos / "p0.png", tmp_path / "bad.png", make_bomb(tmp_path / "huge.png", 30_000, 20_000)])
    assert got == [shard.FILE_COST_PIXELS + n for n in (96 * 64, 0, 600_000_000)]


def test_a_part_being_written_is_not_absorbed_and_a_cut_line_is_dropped(tmp_path):
    manifest = tmp_path / "m.jsonl"
    live, dead = shard.part_path(manifest, 0, 2), shard.part_path(manifest, 1, 2)
    assert live.name == "m.part-0-of-2.jsonl"
    fd = shard.hold(live)
    with pytest.raises(UsageError, match="started twice"):
        shard.hold(live)
    os.write(fd, b'{"input": "a", "output": "A", "status": "ok"}\n')
    dead.write_text('{"input": "b", "output": "B", "status": "ok"}\n{"input": "c", "outp')  # killed mid-line
    assert shard.leftover_parts(manifest) == [live, dead]
    assert shard.absorb(manifest) == [dead]
    assert [x["input"] for x in _lines(manifest)] == ["b"] and live.exists() and not dead.exists()
    shard.release(fd)
    assert shard.absorb(manifest) == [live]
    assert [x["input"] for x in _lines(manifest)] == ["b", "a"] and shard.leftover_parts(manifest) == []


def test_rank_zero_gives_up_on_a_hung_rank_and_names_its_inputs(tmp_path):
    from scenestyle.engine.plan import Job
    from scenestyle.engine.ranks import Sharding

    manifest = tmp_path / "m.jsonl"
    jobs = [Job(tmp_path / f"{n}.png", tmp_path / f"{n}_x2.png") for n in "abc"]
    s = Sharding(
        index=0, count=2, mode="torchrun", jobs=jobs, owner=[0, 1, 1], manifest=manifest, context={"command": "upscale"}, timeout=0.3
    )
    line = '{"input": "%s", "output": "%s", "status": "ok", "shard": "%d/2"}\n'
    shard.part_path(manifest, 0, 2).write_text(line % (jobs[0].input, jobs[0].output, 0))
    hung = shard.hold(shard.part_path(manifest, 1, 2))  # alive (its lock is held) but silent after one photo
    os.write(hung, (line % (jobs[1].input, jobs[1].output, 1)).encode())
    try:
        report = s._gather(stopped=False)
    finally:
        shard.release(hung)
    assert [r.status for r in report.results] == ["ok", "ok", "failed"] and report.exit_code == 1
    assert report.unfinished.startswith("rank 1 of 2 stopped before finishing: 1 input not processed")
    assert str(jobs[2].input) in report.unfinished and "wrote nothing for 0.3 s" in report.unfinished
    lines = _lines(manifest)
    assert [x["input"] for x in lines] == [str(j.input) for j in jobs]
    assert lines[2]["error"].startswith(NOT_PROCESSED) and lines[2]["shard"] == "1/2" and lines[2]["command"] == "upscale"
    assert shard.leftover_parts(manifest) == []


def test_without_locks_a_part_is_finished_when_it_lists_all_its_photos(tmp_path, monkeypatch):
    from scenestyle.engine.plan import Job
    from scenestyle.engine.ranks import Sharding

    monkeypatch.setattr(shard, "fcntl", None)  # Windows, or a mount without flock
    manifest = tmp_path / "m.jsonl"
    jobs = [Job(tmp_path / f"{n}.png", tmp_path / f"{n}_x2.png") for n in "ab"]
    for r, j in enumerate(jobs):
        shard.part_path(manifest, r, 2).write_text(f'{{"input": "{j.input}", "output": "{j.output}", "status": "ok"}}\n')
    s = Sharding(index=0, count=2, mode="torchrun", jobs=jobs, owner=[0, 1], manifest=manifest, timeout=60)
    report = s._gather(stopped=False)
    assert report.unfinished is None and [r.status for r in report.results] == ["ok", "ok"]
    assert len(_lines(manifest)) == 2 and shard.leftover_parts(manifest) == []


def test_a_stopped_rank_zero_still_merges_and_says_what_is_left(tmp_path):
    from scenestyle.engine.plan import Job
    from scenestyle.engine.ranks import Sharding
    from scenestyle.errors import Interrupted

    manifest = tmp_path / "m.jsonl"
    jobs = [Job(tmp_path / f"{n}.png", tmp_path / f"{n}_x2.png") for n in "abc"]
    s = Sharding(index=0, count=2, mode="torchrun", jobs=jobs, owner=[0, 0, 1], manifest=manifest, timeout=60)
    s._fd = shard.hold(shard.part_path(manifest, 0, 2))
    shard.part_path(manifest, 1, 2).write_text(f'{{"input": "{jobs[2].input}", "output": "x", "status": "ok"}}\n')

    def stopped_after_one(todo, *, context, manifest):  # run_jobs, stopped by SIGTERM after its first photo
        os.write(s._fd, (f'{{"input": "{todo[0].input}", "output": "y", "status": "ok"}}\n').encode())
        raise Interrupted("1 of 2 inputs finished") from KeyboardInterrupt()

    before = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(Interrupted) as e:
            s.run(stopped_after_one, jobs[:2], context={"command": "upscale"}, manifest=shard.part_path(manifest, 0, 2))
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN  # merged: torchrun's SIGTERM cannot cut the report
    finally:
        signal.signal(signal.SIGTERM, before)
    assert str(e.value).startswith(
        f"2 of 3 inputs finished (2 ok, 0 skipped, 0 failed); rank 0 of 2 stopped before finishing: 1 input not processed ({jobs[1].input})"
    )
    assert isinstance(e.value.__cause__, KeyboardInterrupt)  # the CLI tells 130 from 143 by it
    assert [x["status"] for x in _lines(manifest)] == ["ok", "failed", "ok"] and shard.leftover_parts(manifest) == []


def test_bad_rank_timeout_is_refused_before_anything_runs(monkeypatch):
    from scenestyle.engine.ranks import Sharding

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("SCENESTYLE_RANK_TIMEOUT", "soon")
    with pytest.raises(UsageError, match="SCENESTYLE_RANK_TIMEOUT"):
        Sharding.start(None)


# -- --shard I/N --------------------------------------------------------------------------------


def test_shards_cover_the_folder_once_and_a_plain_rerun_merges_them(photos, tiny_weights, reference, tmp_path):
    w = tiny_weights["SRVGGNetCompact"]
    out = tmp_path / "out"
    manifest = out / "scenestyle-upscale.jsonl"
    r = _invoke(*_args(photos, out, w, "--shard", "3/2"))
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "--shard 3/2" in r.output

    first = _invoke(*_args(photos, out, w, "--shard", "0/3", "--json"))  # one share of an earlier split
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["manifest"] == str(shard.part_path(manifest, 0, 3)) and report["counts"]["ok"] >= 1
    for i in range(2):  # the rest with another N: what is done is skipped
        r = _invoke(*_args(photos, out, w, "--shard", f"{i}/2"))
        assert r.exit_code == 0, r.output
    parts = shard.leftover_parts(manifest)
    assert [p.name for p in parts] == [
        "scenestyle-upscale.part-0-of-2.jsonl",
        "scenestyle-upscale.part-1-of-2.jsonl",
        "scenestyle-upscale.part-0-of-3.jsonl",
    ]
    assert not manifest.exists()
    records = [x for p in parts for x in _lines(p)]
    ok = sorted(x["input"] for x in records if x["status"] == "ok")
    assert ok == sorted(str(p) for p in photos.rglob("*.png"))  # each photo processed exactly once
    two = [x for p in parts[:2] for x in _lines(p)]
    assert sorted(x["input"] for x in two) == ok  # the N=2 shards planned every photo, each once
    assert {x["shard"] for x in two} == {"0/2", "1/2"}
    _same_pictures(out, reference)

    plain = _invoke(*_args(photos, out, w, "--json"))  # merges the parts, skips every finished photo
    assert plain.exit_code == 0, plain.output
    assert json.loads(plain.stdout)["counts"] == {"ok": 0, "skipped": len(SIZES), "failed": 0}
    assert shard.leftover_parts(manifest) == []
    merged = _lines(manifest)
    assert len(merged) == len(records) + len(SIZES) and merged[: len(records)] == records


def test_shard_under_torchrun_is_refused(photos, tiny_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    r = _invoke(*_args(photos, tmp_path / "out", tiny_weights["SRVGGNetCompact"], "--shard", "0/2"))
    assert r.exit_code == 2 and "under torchrun" in r.output and not (tmp_path / "out").exists()


# -- torchrun -------------------------------------------------------------------------------------


def _scenestyle_lines(stderr: str) -> list[str]:
    return [x for x in stderr.splitlines() if re.match(r"scenestyle(\[rank \d+\])?:", x)]


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process(photos, tiny_weights, reference, tmp_path):
    out = tmp_path / "out"
    done = torchrun_two_ranks(_args(photos, out, tiny_weights["SRVGGNetCompact"], "--json"), out)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)  # one report, from rank 0, over both ranks
    assert report["counts"] == {"ok": len(SIZES), "skipped": 0, "failed": 0}
    assert _scenestyle_lines(done.stderr) == []
    _same_pictures(out, reference)
    manifest = out / "scenestyle-upscale.jsonl"
    lines = _lines(manifest)
    assert [x["input"] for x in lines] == [r["input"] for r in report["results"]]  # the planned order
    assert sorted(x["input"] for x in lines) == sorted(str(p) for p in photos.rglob("*.png"))
    assert {x["shard"] for x in lines} == {"0/2", "1/2"} and shard.leftover_parts(manifest) == []


@pytest.mark.slow
def test_a_killed_rank_loses_no_other_work_and_a_rerun_resumes(photos, tiny_weights, reference, tmp_path, monkeypatch):
    out = tmp_path / "out"
    w = tiny_weights["SRVGGNetCompact"]
    monkeypatch.setenv("SCENESTYLE_TEST_KILL_RANK", "1:1")  # rank 1 SIGKILLs itself after its first photo
    done = torchrun_two_ranks(_args(photos, out, w), out)
    monkeypatch.delenv("SCENESTYLE_TEST_KILL_RANK")
    assert done.returncode == 1, done.stderr[-3000:]
    [line] = _scenestyle_lines(done.stderr)  # rank 0's one line; rank 1 died silently
    assert "of 2 stopped before finishing" in line and "run the same command again" in line
    manifest = out / "scenestyle-upscale.jsonl"
    lines = _lines(manifest)
    assert sorted(x["input"] for x in lines) == sorted(str(p) for p in photos.rglob("*.png"))
    rank1 = [x for x in lines if x["shard"] == "1/2"]
    assert [x["status"] for x in rank1].count("ok") == 1 and len(rank1) >= 2
    assert all(x["status"] == "ok" or x["error"].startswith(NOT_PROCESSED) for x in lines)
    for x in lines:  # every finished photo is there, nothing else is
        assert Path(x["output"]).exists() == (x["status"] == "ok")
    assert Path(next(x["input"] for x in rank1 if x["status"] != "ok")).name in line
    assert shard.leftover_parts(manifest) == []

    again = _invoke(*_args(photos, out, w, "--json"))  # resumed by one process: another N
    assert again.exit_code == 0, again.output
    counts = json.loads(again.stdout)["counts"]
    assert counts == {"ok": sum(x["status"] != "ok" for x in lines), "skipped": sum(x["status"] == "ok" for x in lines), "failed": 0}
    _same_pictures(out, reference)
