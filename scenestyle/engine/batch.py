"""Many photos in, many photos out: input discovery, output naming, resume, manifest.

The per-image work is a callable handed in by the task module; this file knows nothing
about models. Reading the next photo and writing the last one overlap with compute.
"""

from __future__ import annotations

import glob
import json
import os
import time
from collections import deque
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
    compute_many: Callable[[list], list] | None = None,
    group: int = 1,
    group_key: Callable[[object], object] | None = None,
) -> list[JobResult]:
    """Run load → compute → save for each job; one bad file never stops the batch.

    The next inputs are decoded and the previous outputs encoded on worker threads while the
    current ones compute. With ``compute_many`` and ``group`` > 1, up to ``group`` consecutive
    inputs with equal ``group_key`` (e.g. pixel shape; None = never grouped, and then only one
    input is decoded ahead) are computed in one call; if that call
    fails, each input is retried alone so the error lands on the right file. An output whose
    ``streamed`` is true is computed while it is written, so it is saved on this thread before
    the next compute starts. Existing outputs are skipped unless ``overwrite``.
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
    group = max(1, group) if compute_many is not None else 1
    key = group_key or (lambda pic: 0)

    def read(job: Job):
        t = time.perf_counter()
        return load(job.input), file_sha256(job.input), time.perf_counter() - t

    def report(r: JobResult) -> None:
        results.append(r)
        _log(manifest_f, r, context)
        if on_done:
            on_done(r)

    def run_group(members: list[tuple[Job, JobResult, object]]) -> list:
        if len(members) == 1:
            return [_attempt(compute, members[0][2])]
        try:
            return list(compute_many([pic for _, _, pic in members]))
        except ScenestyleError:
            return [_attempt(compute, pic) for _, _, pic in members]

    with ThreadPoolExecutor(max_workers=1) as reader, ThreadPoolExecutor(max_workers=1) as writer:
        ahead: deque[tuple[Job, Future]] = deque()
        upcoming = iter(todo)
        pending: list[tuple[Future, JobResult]] = []
        started, grouping = 0, False  # decode one ahead until the first photo shows it is groupable

        def refill() -> None:
            while len(ahead) < (group + 1 if grouping else 2) and (nxt := next(upcoming, None)) is not None:
                ahead.append((nxt, reader.submit(read, nxt)))

        while True:
            refill()
            if not ahead:
                break
            # a group: the first readable input plus following ones of the same key
            members: list[tuple[Job, JobResult, object]] = []
            t0 = time.perf_counter()
            while ahead and len(members) < group:
                job, fut = ahead[0]
                r = JobResult(str(job.input), str(job.output), "failed")
                try:
                    pic, r.input_sha256, t_read = fut.result()
                except ScenestyleError as e:
                    if members:
                        break  # reported on its own turn
                    ahead.popleft()
                    if on_start:
                        on_start(job, started)
                    started += 1
                    r.error, r.seconds = str(e), round(time.perf_counter() - t0, 3)
                    report(r)
                    t0 = time.perf_counter()
                    continue
                if members and (key(pic) is None or key(pic) != key(members[0][2])):
                    break
                ahead.popleft()
                if on_start:
                    on_start(job, started)
                started += 1
                r.notes, r.seconds = list(getattr(pic, "notes", ())), t_read
                members.append((job, r, pic))
                grouping = key(pic) is not None
                if not grouping:
                    break
                refill()
            if not members:
                continue
            outs = run_group(members)
            share = (time.perf_counter() - t0) / len(members)
            writes: list[tuple[Future, JobResult]] = []
            for (job, r, _), out in zip(members, outs):
                r.seconds = round(r.seconds + share, 3)
                if isinstance(out, ScenestyleError):
                    r.error = str(out)
                    writes.append((None, r))
                    continue
                r.notes += [n for n in getattr(out, "notes", ()) if n not in r.notes]  # e.g. the precision a photo ran at
                try:
                    job.output.parent.mkdir(parents=True, exist_ok=True)
                    if getattr(out, "streamed", False):  # computed while written: here, not beside the next compute
                        writes.append((_save_now(save, out, job.output, r), r))
                    else:
                        writes.append((writer.submit(save, out, job.output), r))
                except OSError as e:
                    r.error = f"cannot create {job.output.parent}: {e.strerror or e}"
                    writes.append((None, r))
            for item in pending:
                _finish(item, report)
            pending = []
            for fut, r in writes:
                if fut is None:
                    report(r)
                else:
                    pending.append((fut, r))
        for item in pending:
            _finish(item, report)
    if manifest_f:
        manifest_f.close()
    order = {str(j.input): k for k, j in enumerate(jobs)}
    results.sort(key=lambda r: order[r.input])
    return results


def _save_now(save: Callable[[object, Path], None], out: object, path: Path, r: JobResult) -> Future:
    """``save(out, path)`` on this thread, as a finished Future; its time goes to ``r.seconds``."""
    fut: Future = Future()
    t = time.perf_counter()
    try:
        save(out, path)
        fut.set_result(None)
    except ScenestyleError as e:
        fut.set_exception(e)
    r.seconds = round(r.seconds + time.perf_counter() - t, 3)
    return fut


def _attempt(compute: Callable[[object], object], pic: object) -> object:
    """``compute(pic)``, or the ScenestyleError it raised (so one file's failure is data)."""
    try:
        return compute(pic)
    except ScenestyleError as e:
        return e


def _finish(pending: tuple[Future, JobResult], report: Callable[[JobResult], None]) -> None:
    fut, r = pending
    t = time.perf_counter()
    try:
        fut.result()
        r.status = "ok"
    except ScenestyleError as e:
        r.error = str(e)
    r.seconds = round(r.seconds + time.perf_counter() - t, 3)
    report(r)


def _log(manifest_f, r: JobResult, context: dict | None) -> None:
    if manifest_f is not None:
        line = {**asdict(r), **(context or {})}
        manifest_f.write(json.dumps(line, ensure_ascii=False) + "\n")
        manifest_f.flush()
