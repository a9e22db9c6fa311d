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
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scenestyle._text import encodable, encodable_tree
from scenestyle.errors import InputImageError, Interrupted, OutputError, ScenestyleError, UsageError
from scenestyle.image_files import IMAGE_SUFFIXES
from scenestyle.imaging import output_format_for
from scenestyle.imaging.atomic import write_error
from scenestyle.weights import file_sha256

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


def _expand(arg: str, recursive: bool) -> list[tuple[Path, Path, bool]]:
    """(file, root it is relative to, found in a folder or glob rather than named) for one INPUT argument."""
    path = Path(arg)
    if path.is_dir():
        pattern = "**/*" if recursive else "*"
        files = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        return [(f, path, True) for f in files]
    if path.exists():
        return [(path, path.parent, False)]
    if glob.has_magic(arg):
        hits = sorted(Path(p) for p in glob.glob(arg, recursive=recursive))
        files = [p for p in hits if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        return [(f, _glob_root(arg), True) for f in files]
    raise UsageError(f"input not found: {arg}")


def input_root(arg: str) -> Path:
    """The folder an INPUT argument names or lies in: a folder itself, a file's folder, a glob's fixed part."""
    path = Path(arg)
    if path.is_dir():
        return path
    if not path.exists() and glob.has_magic(arg):
        return _glob_root(arg)
    return path.parent


def is_output_name(path: Path, suffix: str) -> bool:
    """Whether ``path`` is named like an output of a command whose outputs are ``{stem}_{suffix}.{ext}``."""
    return path.stem.endswith(f"_{suffix}") and path.suffix.lower() in WRITABLE_SUFFIXES


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
    leave_out_outputs: bool = True,
) -> list[Job]:
    """Map inputs to outputs: ``{stem}_{suffix}.{ext}`` beside the input, or mirrored under ``out``.

    A single input file with ``out`` that has an image extension writes exactly there.
    With ``leave_out_outputs``, files that a folder or glob input finds and that are named like
    this command's outputs (``*_{suffix}.*``) are not inputs: they are what an earlier run of
    it wrote, so a rerun on the same folder skips finished photos instead of stopping on
    "output is also an input". A file named on the command line is always an input.
    """
    pairs: list[tuple[Path, Path]] = []
    left_out = 0
    for arg in inputs:
        for f, root, listed in _expand(arg, recursive):
            if leave_out_outputs and listed and is_output_name(f, suffix):
                left_out += 1
            else:
                pairs.append((f, root))
    if not pairs:
        if left_out:
            raise UsageError(
                f"no images to process: the {left_out} found are named like outputs of this command "
                f"(*_{suffix}.*); name a file to process it"
            )
        raise UsageError(
            "no images found in the given inputs (looked for " + ", ".join(sorted(IMAGE_SUFFIXES)) + "; use -r for subfolders)"
        )
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
    if single_file_out and fmt is not None:
        try:  # -o x.png --format jpeg: refused here, before any model loads
            output_format_for(out, fmt)
        except UsageError as e:
            raise UsageError(f"-o {e}") from None

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


def manifest_name(command: str) -> str:
    """The default manifest's file name: one per command and folder, appended to by every run."""
    return f"scenestyle-{command}.jsonl"


def default_manifest(inputs: Iterable[str], out: Path | None, command: str) -> Path:
    """Where the manifest goes without --manifest: in the -o folder (or the -o file's folder),
    else in the first input's folder (the folder itself for a folder input)."""
    if out is not None:
        folder = out.parent if out.suffix.lower() in IMAGE_SUFFIXES and not out.is_dir() else out
    else:
        folder = input_root(next(iter(inputs)))
    return folder / manifest_name(command)


def check_manifest(manifest: Path, jobs: list[Job], *, given: bool = True) -> None:
    """Refuse, before anything runs, a manifest path that would damage a file or cannot be written.

    It must not be a photo (an input, an output, or named like one: every output has an image
    extension, whatever the model's suffix turns out to be), an output folder, or an existing
    file that is not a manifest; its folder must exist. ``given``: it came from --manifest.
    """
    flag = f"--manifest {manifest}" if given else f"the manifest {manifest}"
    if manifest.is_dir():
        raise UsageError(f"{flag} is a folder; give a file name, e.g. {manifest / manifest_name('COMMAND')}")
    resolved = manifest.resolve()
    for j in jobs:
        if resolved == j.input.resolve():
            raise UsageError(f"{flag} is also an input; a manifest is JSON lines, e.g. runs.jsonl")
        if resolved == j.output.resolve():
            raise UsageError(f"{flag} is also an output; a manifest is JSON lines, e.g. runs.jsonl")
        if resolved == j.output.parent.resolve():
            raise UsageError(f"{flag} is an output folder; give a file name for the manifest")
    if manifest.suffix.lower() in IMAGE_SUFFIXES:
        raise UsageError(f"{flag} is named like an image; a manifest is JSON lines, e.g. {manifest.with_suffix('.jsonl')}")
    folder = manifest.parent
    if not folder.is_dir():
        raise UsageError(f"{flag}: the folder {folder} does not exist")
    if manifest.exists() or manifest.is_symlink():
        if not manifest.is_file():
            raise UsageError(f"{flag} exists and is not a regular file; choose another file")
        if not _is_manifest(manifest):
            raise UsageError(
                f"{flag} exists and is not a scenestyle manifest (JSON lines); choose another file, or an existing manifest to append to"
            )
        if not os.access(manifest, os.W_OK):
            raise OutputError(f"{flag} is not writable")
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{flag}: the folder {folder} is not writable")


def _is_manifest(path: Path) -> bool:
    """Empty, or its first line is one of our JSON records (so appending cannot spoil another file)."""
    try:
        with open(path, "rb") as f:
            first = f.readline(1 << 20)
    except OSError as e:
        raise OutputError(f"cannot read the manifest {path}: {e.strerror or e}") from None
    if not first:
        return True
    try:
        record = json.loads(first)
    except ValueError:
        return False
    return isinstance(record, dict) and {"input", "output", "status"} <= record.keys()


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
    manifest_f = _open_manifest(manifest) if manifest else None
    context = encodable_tree(context or {})
    try:
        return _run_jobs(
            jobs,
            results,
            manifest,
            manifest_f,
            context,
            load=load,
            compute=compute,
            save=save,
            overwrite=overwrite,
            on_start=on_start,
            on_done=on_done,
            compute_many=compute_many,
            group=group,
            group_key=group_key,
        )
    finally:
        if manifest_f is not None:
            try:
                manifest_f.close()
            except OSError:
                pass  # the error that matters was raised by the write that failed


def _run_jobs(
    jobs, results, manifest, manifest_f, context, *, load, compute, save, overwrite, on_start, on_done, compute_many, group, group_key
) -> list[JobResult]:
    def report(r: JobResult) -> None:
        results.append(r)
        _log(manifest_f, manifest, r, context)
        if on_done:
            on_done(r)

    todo = []
    for j in jobs:
        if j.output.is_dir():  # not a finished output: nothing can be written there
            report(
                JobResult(
                    encodable(j.input),
                    encodable(j.output),
                    "failed",
                    error=f"cannot write {encodable(j.output)}: a folder of that name is in the way",
                )
            )
        elif overwrite or not (j.output.exists() or j.output.is_symlink()):
            todo.append(j)
        else:
            report(JobResult(encodable(j.input), encodable(j.output), "skipped", notes=["output exists; --overwrite to redo"]))
    group = max(1, group) if compute_many is not None else 1
    key = group_key or (lambda pic: 0)

    def read(job: Job):
        t = time.perf_counter()
        pic = load(job.input)
        try:
            digest = file_sha256(job.input)
        except OSError as e:  # e.g. a folder above it that this user cannot search: this input fails, not the batch
            raise InputImageError(f"{encodable(job.input)}: cannot read it to hash it: {e.strerror or e}") from None
        return pic, digest, time.perf_counter() - t

    def run_group(members: list[tuple[Job, JobResult, object]]) -> list:
        if len(members) == 1:
            return [_attempt(compute, members[0][2])]
        try:
            return list(compute_many([pic for _, _, pic in members]))
        except ScenestyleError:
            return [_attempt(compute, pic) for _, _, pic in members]

    pending: list[tuple[Future, JobResult]] = []
    writes: list[tuple[Future | None, JobResult]] = []  # this group's saves, until they move to pending
    try:
        with ThreadPoolExecutor(max_workers=1) as reader, ThreadPoolExecutor(max_workers=1) as writer:
            ahead: deque[tuple[Job, Future]] = deque()
            upcoming = iter(todo)
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
                    r = JobResult(encodable(job.input), encodable(job.output), "failed")
                    try:
                        pic, r.input_sha256, t_read = fut.result()
                    except ScenestyleError as e:
                        if members:
                            break  # reported on its own turn
                        ahead.popleft()
                        if on_start:
                            on_start(job, started)
                        started += 1
                        r.error, r.seconds = encodable(e), round(time.perf_counter() - t0, 3)
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
                writes = []
                for (job, r, _), out in zip(members, outs):
                    r.seconds = round(r.seconds + share, 3)
                    if isinstance(out, ScenestyleError):
                        r.error = encodable(out)
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
                        r.error = f"cannot create {encodable(job.output.parent)}: {e.strerror or e}"
                        writes.append((None, r))
                for item in pending:
                    _finish(item, report)
                pending.clear()
                for fut, r in writes:
                    if fut is None:
                        report(r)
                    else:
                        pending.append((fut, r))
            for item in pending:
                _finish(item, report)
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: the pools have finished their current work
        reported = {id(r) for r in results}
        for fut, r in pending + writes:  # an interrupt can land before a group's saves reach pending
            if id(r) not in reported and fut is not None and fut.done() and fut.exception() is None:  # written: record it
                r.status = "ok"
                reported.add(id(r))
                report(r)
        raise Interrupted(_finished(results, len(jobs), manifest)) from e
    order = {encodable(j.input): k for k, j in enumerate(jobs)}
    results.sort(key=lambda r: order[r.input])
    return results


def _finished(results: list[JobResult], total: int, manifest: Path | None) -> str:
    """What an interrupted batch got done, for its one line."""
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "skipped", "failed")}
    where = f"; the manifest {encodable(manifest)} lists them" if manifest is not None and results else ""
    return (
        f"{len(results)} of {total} inputs finished ({counts['ok']} ok, {counts['skipped']} skipped, "
        f"{counts['failed']} failed){where}; run the same command again to resume"
    )


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
        r.error = encodable(e)
    r.seconds = round(r.seconds + time.perf_counter() - t, 3)
    report(r)


def _open_manifest(path: Path):
    try:
        return open(path, "a", encoding="utf-8")
    except OSError as e:
        raise OutputError(write_error(path, e).replace("cannot write", "cannot write the manifest", 1)) from None


def _log(manifest_f, path: Path | None, r: JobResult, context: dict) -> None:
    if manifest_f is not None:
        line = encodable_tree({**asdict(r), **context})  # notes and errors may quote a file name
        try:
            manifest_f.write(json.dumps(line, ensure_ascii=False) + "\n")
            manifest_f.flush()
        except OSError as e:  # disk full: the record of the run cannot be kept, so the run stops
            raise OutputError(write_error(path, e).replace("cannot write", "cannot write the manifest", 1)) from None
