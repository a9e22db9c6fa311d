"""Issue 14: what a careless or unlucky user does to stylize/upscale/denoise (a manifest pointed at
a photo, reruns on the same folder, odd file names, a full disk, signals) gives one stderr line,
the documented exit code, and never loses or overwrites a file."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _fixtures import tiny_weights  # noqa: F401 (fixture)
from PIL import Image
from typer.testing import CliRunner

from scenestyle.cli import app

runner = CliRunner()


def invoke(*args, **kw):
    return runner.invoke(app, [str(a) for a in args], **kw)


def _photo(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path)
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _errors(r) -> list[str]:
    return [line for line in r.stderr.splitlines() if line.startswith("scenestyle:")]


@pytest.fixture
def dn(tiny_weights) -> Path:
    return tiny_weights["DnCNN"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))


# --- 1, 2, 7: the manifest path is checked before anything runs ---------------------------------
# The weights file does not exist: a run that got as far as loading the model would exit 3.


@pytest.mark.parametrize("case", ["input", "output", "output-folder", "text-file", "no-folder", "a-folder"])
def test_bad_manifest_path_is_refused_before_the_model_loads(tmp_path, case):
    src = _photo(tmp_path / "in.png")
    (tmp_path / "notes.txt").write_text("my notes\n")
    before = {p.name: _digest(p) for p in tmp_path.iterdir() if p.is_file()}
    args = ["denoise", src, "--weights", tmp_path / "missing.pth"]
    args += {
        "input": ["--manifest", src],
        "output": ["-o", tmp_path / "out.png", "--manifest", tmp_path / "out.png"],
        "output-folder": ["-o", tmp_path / "outdir", "--manifest", tmp_path / "outdir"],
        "text-file": ["--manifest", tmp_path / "notes.txt"],
        "no-folder": ["--manifest", tmp_path / "nodir" / "m.jsonl"],
        "a-folder": ["--manifest", tmp_path],
    }[case]
    r = invoke(*args)
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert len(_errors(r)) == 1 and "--manifest" in r.stderr, r.stderr
    assert {p.name: _digest(p) for p in tmp_path.iterdir() if p.is_file()} == before
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "nodir").exists()


def test_an_existing_manifest_is_appended_to(tmp_path, dn):
    src = _photo(tmp_path / "in.png")
    m = tmp_path / "runs.jsonl"
    assert invoke("denoise", src, "--weights", dn, "--manifest", m).exit_code == 0
    r = invoke("denoise", src, "--weights", dn, "--manifest", m)
    assert r.exit_code == 0, r.output
    assert [json.loads(x)["status"] for x in m.read_text().splitlines()] == ["ok", "skipped"]


# --- 3 and 22: a default run on a folder reruns, with one predictable manifest ---------------------


def test_default_run_on_a_folder_can_be_rerun_and_skips_finished_photos(tmp_path, dn):
    ph = tmp_path / "ph"
    _photo(ph / "a.png", 1)
    _photo(ph / "b.png", 2)
    r1 = invoke("denoise", ph, "--weights", dn, "--json")
    assert r1.exit_code == 0, r1.output
    finished = {p.name: _digest(p) for p in ph.glob("*_denoised.png")}
    assert sorted(finished) == ["a_denoised.png", "b_denoised.png"]
    r2 = invoke("denoise", ph, "--weights", dn, "--json")
    assert r2.exit_code == 0, r2.output
    report = json.loads(r2.stdout)
    assert report["counts"] == {"ok": 0, "skipped": 2, "failed": 0}
    assert {p.name: _digest(p) for p in ph.glob("*_denoised.png")} == finished  # untouched, and no a_denoised_denoised.png
    # one manifest per command and folder, appended to by each run
    assert sorted(p.name for p in ph.glob("*.jsonl")) == ["scenestyle-denoise.jsonl"]
    assert len((ph / "scenestyle-denoise.jsonl").read_text().splitlines()) == 4
    assert report["manifest"] == str(ph / "scenestyle-denoise.jsonl")


def test_a_file_named_like_an_output_is_an_input_when_named(tmp_path, dn):
    only = _photo(tmp_path / "ph" / "old_denoised.png")
    r = invoke("denoise", tmp_path / "ph", "--weights", dn)
    assert r.exit_code == 2 and "named like outputs" in r.stderr, r.output
    assert invoke("denoise", only, "--weights", dn).exit_code == 0
    assert (tmp_path / "ph" / "old_denoised_denoised.png").exists()


def test_help_says_where_the_manifest_goes():
    r = invoke("denoise", "--help", env={"COLUMNS": "250", "TERMINAL_WIDTH": "250"})
    assert "scenestyle-COMMAND.jsonl" in " ".join(r.stdout.split()), r.stdout


# --- 4, 5, 13: any file name is shown as it is, on one line ----------------------------------------


def test_names_with_rich_markup_are_shown_verbatim(tmp_path, dn):
    d = tmp_path / "a[/b]"
    src = _photo(d / "x.png")
    red = _photo(tmp_path / "[red]y.png")
    r = invoke("denoise", src, red, "--weights", dn)
    assert r.exit_code == 0, r.output
    assert (d / "x_denoised.png").exists() and "Traceback" not in r.output
    assert "[red]y.png" in r.stdout and "a[/b]" in r.stdout


def test_last_resort_handler_escapes_markup(monkeypatch, capsys):
    import scenestyle.cli as cli

    def boom():
        raise RuntimeError("cannot open a[/b]/[red]x.jpg")

    monkeypatch.setattr(cli, "app", boom)
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 70
    err = capsys.readouterr().err
    assert "a[/b]/[red]x.jpg" in err and err.count("\n") == 1, err


def test_non_utf8_name_is_processed_printed_and_recorded(tmp_path, dn):
    folder = tmp_path / "nb"
    bad = Path(os.fsdecode(bytes(folder) + b"/bad\xff.png"))
    try:
        _photo(bad)
    except (UnicodeEncodeError, OSError):
        pytest.skip("this file system does not take a non-UTF-8 name")
    _photo(folder / "ok.png")
    r = invoke("denoise", folder, "--weights", dn)
    assert r.exit_code == 0, r.output
    assert "bad\\xff.png" in r.stdout
    lines = [json.loads(x) for x in (folder / "scenestyle-denoise.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted((Path(x["input"]).name, x["status"]) for x in lines) == [("bad\\xff.png", "ok"), ("ok.png", "ok")]
    assert os.path.exists(os.fsencode(folder) + b"/bad\xff_denoised.png")
    r = invoke("denoise", folder, "--weights", dn, "--json")
    assert json.loads(r.stdout)["counts"]["skipped"] == 2


def test_newline_in_a_failing_name_stays_one_line(tmp_path, dn):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "two\nlines.png").write_bytes(b"not an image")
    r = invoke("denoise", folder, "--weights", dn)
    assert r.exit_code == 1
    [line] = _errors(r)
    assert "two\\nlines.png: not an image" in line, r.stderr
    assert not [x for x in r.stderr.splitlines() if x.startswith("lines.png")]


# --- 6: disk full while the manifest is written -----------------------------------------------------


def test_disk_full_on_the_manifest_is_one_line_exit_4(tmp_path, dn, monkeypatch):
    import scenestyle.engine.manifest as manifest

    class Full:
        def write(self, text):
            return len(text)

        def flush(self):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            self.flush()

    monkeypatch.setattr(manifest, "open", lambda *a, **k: Full(), raising=False)  # a new manifest is all it opens
    src = _photo(tmp_path / "in.png")
    r = invoke("denoise", src, "--weights", dn)
    assert r.exit_code == 4, r.output
    [line] = _errors(r)
    assert "no space left" in line and "manifest" in line, r.stderr
    assert "Traceback" not in r.output


# --- 8: an input that cannot be hashed fails alone ---------------------------------------------------


def test_unhashable_input_fails_alone(tmp_path, dn, monkeypatch):
    import scenestyle.engine.batch as batch

    real = batch.file_sha256

    def sha(path):
        if Path(path).name == "b.png":  # what resolve().stat() gives under a folder the user cannot search
            raise PermissionError(errno.EACCES, "Permission denied", str(Path(path).resolve()))
        return real(path)

    monkeypatch.setattr(batch, "file_sha256", sha)
    for n, name in enumerate(("a.png", "b.png", "c.png")):
        _photo(tmp_path / "in" / name, n)
    r = invoke("denoise", tmp_path / "in", "-o", tmp_path / "out", "--weights", dn, "--json")
    assert r.exit_code == 1, r.output
    assert json.loads(r.stdout)["counts"] == {"ok": 2, "skipped": 0, "failed": 1}
    assert _errors(r) == [e for e in _errors(r) if "b.png" in e and "Permission denied" in e] and len(_errors(r)) == 1


# --- 9: stale temp files of ours are removed -----------------------------------------------------------


def test_stale_temp_files_are_removed_by_their_pattern_only(tmp_path, dn):
    import fcntl

    src = _photo(tmp_path / "x.png")
    stale = tmp_path / ".x_denoised.png.ab_d1234.tmp"  # tempfile.mkstemp's name, left by a SIGKILL
    others = [tmp_path / ".x_denoised.png.tmp", tmp_path / ".other.png.abcd1234.tmp", tmp_path / "x_denoised.png.abcd1234.tmp"]
    live = tmp_path / ".x_denoised.png.zzzz9999.tmp"  # another run is writing it: its lock is held
    for p in [stale, live, *others]:
        p.write_bytes(b"partial")
    with open(live, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        r = invoke("denoise", src, "--weights", dn)
    assert r.exit_code == 0, r.output
    assert not stale.exists()
    assert live.exists() and all(p.exists() for p in others)


# --- 11, 12: usage and output errors where they belong -------------------------------------------------


def test_output_extension_contradicting_format_is_a_usage_error_up_front(tmp_path):
    src = _photo(tmp_path / "in.png")
    r = invoke("denoise", src, "--weights", tmp_path / "missing.pth", "-o", tmp_path / "x.png", "--format", "jpeg")
    assert r.exit_code == 2, r.output
    assert len(_errors(r)) == 1 and "--format" in r.stderr and "x.png" in r.stderr


def test_folder_where_the_output_goes_is_an_error_not_skipped(tmp_path, dn):
    src = _photo(tmp_path / "in.png")
    (tmp_path / "in_denoised.png").mkdir()
    for extra in ([], ["--overwrite"]):
        r = invoke("denoise", src, "--weights", dn, "--json", *extra)
        assert r.exit_code == 1, r.output
        [res] = json.loads(r.stdout)["results"]
        assert res["status"] == "failed" and "folder" in res["error"]
        assert len(_errors(r)) == 1
    assert (tmp_path / "in_denoised.png").is_dir()


# --- 9, 10: signals, through the real entry point ------------------------------------------------------

_SLOW_SAVE = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # a background job starts with SIGINT ignored
import scenestyle.engine.run as run
_write = run.write_picture
def slow(*a, **k):
    _write(*a, **k)
    time.sleep(0.5)
run.write_picture = slow
from scenestyle.cli import main
sys.argv[0] = "scenestyle"
main()
"""


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_signal_mid_batch_says_what_was_finished(tmp_path, dn, sig, code, word):
    folder = tmp_path / "ph"
    for i in range(6):
        _photo(folder / f"p{i}.png", i)
    cmd = [sys.executable, "-c", _SLOW_SAVE, "denoise", str(folder), "--weights", str(dn)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not (folder / "p0_denoised.png").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before the signal; make it slower"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    lines = [x for x in err.splitlines() if x.startswith("scenestyle:")]
    assert proc.returncode == code, err
    assert len(lines) == 1 and lines[0].startswith(f"scenestyle: {word}: ") and " of 6 inputs finished" in lines[0], err
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    done = [json.loads(x) for x in (folder / "scenestyle-denoise.jsonl").read_text().splitlines()]
    assert done and all(x["status"] == "ok" for x in done)
    assert sorted(Path(x["output"]).name for x in done) == sorted(p.name for p in folder.glob("*_denoised.png"))
