"""Many photos in, many photos out: input discovery, output naming, resume, manifest.

The per-image work is a callable handed in by the task module; this file knows nothing
about models. Reading the next photo and writing the last one overlap with compute.
"""

from __future__ import annotations

import glob
import json
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from scenestyle.errors import OutputError, ScenestyleError, UsageError
from scenestyle.weights import file_sha256

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
)
# Extension written for each --format choice.
FORMAT_SUFFIX = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "tiff": ".tif"}
# Inputs in a format we do not write (GIF, BMP) default to lossless PNG.
WRITABLE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff"})


@dataclass(frozen=True)
class Job:
    """One input photo and the path its result goes to."""

    input: Path
    output: Path


@dataclass
class JobResult:
    """What happened to one job; one manifest line."""

    input: str
    output: str
    status: str  # "ok" | "skipped" | "failed"
    seconds: float = 0.0
    input_sha256: str | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class BatchReport:
    """Every job's result plus the run's parameters; what ``--json`` prints."""

    command: str
    model: dict
    parameters: dict
    results: list[JobResult]
    manifest: str | None

    @property
    def failed(self) -> int:
        return sum(r.status == "failed" for r in self.results)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def to_dict(self) -> dict:
        return {
            "command": self.command,
            "model": self.model,
            "parameters": self.parameters,
            "counts": {s: sum(r.status == s for r in self.results) for s in ("ok", "skipped", "failed")},
            "manifest": self.manifest,
            "results": [asdict(r) for r in self.results],
        }


def _expand(arg: str, recursive: bool) -> list[tuple[Path, Path]]:
    """(file, root it is relative to) pairs for one INPUT argument."""
    path = Path(arg)
    if path.is_dir():
        pattern = "**/*" if recursive else "*"
        files = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        return [(f, path) for f in files]
    if path.exists():
        return [(path, path.parent)]
    if glob.has_magic(arg):
        hits = sorted(Path(p) for p in glob.glob(arg, recursive=recursive))
        files = [p for p in hits if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        return [(f, _glob_root(arg)) for f in files]
    raise UsageError(f"input not found: {arg}")


def _glob_root(pattern: str) -> Path:
    """The longest leading part of a glob pattern that has no wildcard."""
    parts = Path(pattern).parts
    fixed = [p for p in parts[: next((i for i, p in enumerate(parts) if glob.has_magic(p)), len(parts))]]
    return Path(*fixed) if fixed else Path(".")


def plan_jobs(
    inputs: Iterable[str],
    *,
    out: Path | None,
    suffix: str,
    fmt: str | None,
    recursive: bool = False,
) -> list[Job]:
    """Map inputs to outputs: ``{stem}_{suffix}.{ext}`` beside the input, or mirrored under ``out``.

    A single input file with ``out`` that has an image extension writes exactly there.
    """
    pairs: list[tuple[Path, Path]] = []
    for arg in inputs:
        pairs.extend(_expand(arg, recursive))
    if not pairs:
        raise UsageError("no images found in the given inputs (looked for " + ", ".join(sorted(IMAGE_SUFFIXES)) + "; use -r for subfolders)")
    seen: set[Path] = set()
    unique = []
    for f, root in pairs:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((f, root))

    single_file_out = out is not None and out.suffix.lower() in IMAGE_SUFFIXES and not out.is_dir()
    if single_file_out and len(unique) != 1:
        raise UsageError(f"-o {out} is a file name but there are {len(unique)} inputs; give a folder instead")

    jobs = []
    for f, root in unique:
        ext = FORMAT_SUFFIX[fmt] if fmt else (f.suffix.lower() if f.suffix.lower() in WRITABLE_SUFFIXES else ".png")
        if single_file_out:
            target = out
        else:
            name = f"{f.stem}_{suffix}{ext}"
            rel = f.parent.relative_to(root) if f.is_relative_to(root) else Path()
            target = (out / rel / name) if out is not None else f.parent / name
        jobs.append(Job(input=f, output=target))

    inputs_resolved = {j.input.resolve() for j in jobs}
    outs: dict[Path, Path] = {}
    for j in jobs:
        r = j.output.resolve()
        if r in inputs_resolved:
            raise UsageError(f"output {j.output} is also an input; choose another -o or --format")
        if r in outs:
            raise UsageError(f"inputs {outs[r]} and {j.input} would both write {j.output}; use -o with a folder")
        outs[r] = j.input
    return jobs


def check_writable(folder: Path) -> None:
    """Fail early, with one line, when an output folder cannot be created or written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create output folder {folder}: {e.strerror or e}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {folder} is not writable")


def run_jobs(
    jobs: list[Job],
    *,
    load: Callable[[Path], object],
    compute: Callable[[object], object],
    save: Callable[[object, Path], None],
    overwrite: bool = False,
    manifest: Path | None = None,
    context: dict | None = None,
    on_start: Callable[[Job, int], None] | None = None,
    on_done: Callable[[JobResult], None] | None = None,
) -> list[JobResult]:
    """Run load → compute → save for each job; one bad file never stops the batch.

    The next input is decoded and the previous output encoded on worker threads while the
    current one computes. Existing outputs are skipped unless ``overwrite``.
    """
    results: list[JobResult] = []
    manifest_f = open(manifest, "a", encoding="utf-8") if manifest else None
    todo = [j for j in jobs if overwrite or not j.output.exists()]
    for j in jobs:
        if j not in todo:
            r = JobResult(str(j.input), str(j.output), "skipped", notes=["output exists; --overwrite to redo"])
            results.append(r)
            _log(manifest_f, r, context)
            if on_done:
                on_done(r)

    def read(job: Job):
        t = time.perf_counter()
        return load(job.input), file_sha256(job.input), time.perf_counter() - t

    with ThreadPoolExecutor(max_workers=1) as reader, ThreadPoolExecutor(max_workers=1) as writer:
        pending_write: tuple[Future, JobResult] | None = None
        nxt: Future | None = reader.submit(read, todo[0]) if todo else None
        for i, job in enumerate(todo):
            if on_start:
                on_start(job, i)
            cur, nxt = nxt, (reader.submit(read, todo[i + 1]) if i + 1 < len(todo) else None)
            r = JobResult(str(job.input), str(job.output), "failed")
            t0 = time.perf_counter()
            try:
                pic, r.input_sha256, t_read = cur.result()
                r.notes = list(getattr(pic, "notes", ()))
                out = compute(pic)
                job.output.parent.mkdir(parents=True, exist_ok=True)
                fut = writer.submit(save, out, job.output)
            except ScenestyleError as e:
                r.error = str(e)
                r.seconds = round(time.perf_counter() - t0, 3)
                fut = None
            if pending_write is not None:
                _finish(pending_write, results, manifest_f, on_done, context)
            if fut is None:
                results.append(r)
                _log(manifest_f, r, context)
                if on_done:
                    on_done(r)
                pending_write = None
            else:
                r.seconds = round(time.perf_counter() - t0 + t_read, 3)
                pending_write = (fut, r)
        if pending_write is not None:
            _finish(pending_write, results, manifest_f, on_done, context)
    if manifest_f:
        manifest_f.close()
    order = {str(j.input): k for k, j in enumerate(jobs)}
    results.sort(key=lambda r: order[r.input])
    return results


def _finish(pending: tuple[Future, JobResult], results, manifest_f, on_done, context) -> None:
    fut, r = pending
    t = time.perf_counter()
    try:
        fut.result()
        r.status = "ok"
    except ScenestyleError as e:
        r.error = str(e)
    r.seconds = round(r.seconds + time.perf_counter() - t, 3)
    results.append(r)
    _log(manifest_f, r, context)
    if on_done:
        on_done(r)


def _log(manifest_f, r: JobResult, context: dict | None) -> None:
    if manifest_f is not None:
        line = {**asdict(r), **(context or {})}
        manifest_f.write(json.dumps(line, ensure_ascii=False) + "\n")
        manifest_f.flush()
