"""Many photos in, many photos out: run the jobs ``engine.plan`` made, skip finished ones, log
each result to the manifest (``engine.manifest``).

The per-image work is a callable handed in by the task module; this file knows nothing
about models. Reading the next photo and writing the last one overlap with compute.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from scenestyle._text import encodable, encodable_tree
from scenestyle.engine.manifest import JobResult, log_result, open_manifest
from scenestyle.engine.plan import Job
from scenestyle.errors import InputImageError, Interrupted, ScenestyleError
from scenestyle.weights import file_sha256


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
    manifest_f = open_manifest(manifest) if manifest else None
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
        log_result(manifest_f, manifest, r, context)
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
