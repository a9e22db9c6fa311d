"""stylize / upscale / denoise over many processes: under ``torchrun``, or one ``--shard I/N`` each.

``Sharding.start`` reads how this process was launched and ``engine.run.process`` hands it the
planned jobs (``take``), the batch (``run``) and the report (``finish``). Three modes:

* **plain** (one process): the whole plan; first absorbs the manifest parts that earlier
  ``--shard`` runs (or a torchrun whose rank 0 died) left beside the manifest.
* **--shard I/N** (SLURM arrays, xargs): share I of a split that every process computes alike
  from the plan and the photos' headers alone (the processes cannot talk, and may start hours
  apart, so finished photos count too). Writes ``STEM.part-I-of-N.jsonl``; a later plain run of
  the same command merges the parts into the manifest (and skips every finished photo).
* **torchrun** (WORLD_SIZE > 1): the ranks join a gloo process group (only the plan travels, so
  gloo serves GPU ranks too; each computes on ``cuda:LOCAL_RANK`` or the CPU). They check that
  they planned the same jobs; rank 0 absorbs leftover parts and splits what is left to do by
  pixels; each rank writes its part; rank 0 then waits for the others' parts to be released (a
  rank's lock goes when it finishes or dies), merges every part into the manifest in the planned
  order, marks the inputs of a rank that stopped early as failed, and reports for all.
  The ranks use no collective after the start, so a dead rank cannot hang the others: torchrun
  stops them (SIGTERM), and rank 0 still merges what was done before it exits.

``SCENESTYLE_RANK_TIMEOUT`` (seconds, default 1800): rank 0 gives up on a rank whose part has not
grown for that long while it still holds its lock (hung). Test hook: ``SCENESTYLE_TEST_KILL_RANK=R:K``
makes rank (or shard) R kill itself with SIGKILL after its K-th manifest line, as an OOM kill would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scenestyle._text import encodable, encodable_tree
from scenestyle.engine import shard
from scenestyle.engine.batch import BatchReport
from scenestyle.engine.manifest import JobResult
from scenestyle.engine.plan import Job
from scenestyle.engine.rank_env import DEFAULT_RANK_TIMEOUT, chain, kill_hook, launched_rank, rank_timeout, signals_deferred
from scenestyle.errors import Interrupted, OutputError, ScenestyleError, UsageError

POLL_SECONDS = 0.2
# After rank 0 is told to stop, how long it waits for the other ranks (stopped alike) to record
# their finished photos; torchrun kills a worker 30 s after its SIGTERM.
STOP_GRACE_SECONDS = 15.0
_RESULT_FIELDS = tuple(f.name for f in dataclasses.fields(JobResult))


@dataclass
class MergedReport(BatchReport):
    """Rank 0's report over every rank; ``unfinished`` is the one line naming inputs a rank left undone."""

    unfinished: str | None = None


@dataclass
class Sharding:
    """This process's place in a run over several processes (see the module docstring)."""

    index: int = 0
    count: int = 1
    mode: str = "plain"  # plain | shard | torchrun
    local_rank: int = 0
    jobs: list[Job] = field(default_factory=list)  # the whole plan (torchrun rank 0: to merge)
    owner: list[int] = field(default_factory=list)  # the shard of each planned job
    manifest: Path | None = None  # the one manifest (parts go beside it)
    context: dict = field(default_factory=dict)  # what run_jobs adds to each manifest line
    timeout: float = DEFAULT_RANK_TIMEOUT  # rank 0 gives up on a rank whose part stopped growing this long ago
    _fd: int | None = None  # this process's part, locked while open
    _group: bool = False  # we started the process group

    @classmethod
    def start(cls, shard_arg: str | None) -> Sharding:
        """From torchrun's environment or ``--shard``; refuses bad values before any model loads."""
        rank, world = launched_rank()
        if world > 1:
            if shard_arg is not None:
                raise UsageError(
                    "--shard is for processes started without torchrun; under torchrun each rank takes its share of the photos by itself"
                )
            return cls(index=rank, count=world, mode="torchrun", local_rank=int(os.environ.get("LOCAL_RANK", "0")), timeout=rank_timeout())
        if shard_arg is not None:
            i, n = shard.parse_shard(shard_arg)
            return cls(index=i, count=n, mode="shard")
        return cls()

    @property
    def tag(self) -> dict:
        """Added to every manifest line of a split run: which share wrote it."""
        return {} if self.mode == "plain" else {"shard": f"{self.index}/{self.count}"}

    def device(self, device: str) -> str:
        """torchrun ranks on a GPU machine: ``auto`` / ``cuda`` become ``cuda:LOCAL_RANK``."""
        if self.mode != "torchrun" or device not in ("auto", "cuda"):
            return device
        import torch

        if not torch.cuda.is_available():
            return device
        gpus = torch.cuda.device_count()
        if self.local_rank >= gpus:
            raise UsageError(
                f"LOCAL_RANK {self.local_rank} has no GPU: this machine has {gpus}; start at most "
                f"{gpus} processes per node (--nproc-per-node {gpus}), or pass --device cpu"
            )
        torch.cuda.set_device(self.local_rank)
        return f"cuda:{self.local_rank}"

    # -- the plan ---------------------------------------------------------------------------------

    def take(self, jobs: list[Job], manifest: Path, *, overwrite: bool) -> tuple[list[Job], Path]:
        """This process's jobs (in the planned order) and the manifest file it appends to."""
        self.jobs, self.manifest = jobs, manifest
        if self.mode == "plain":
            shard.absorb(manifest)
            self.owner = [0] * len(jobs)
            return jobs, manifest
        if self.mode == "shard":  # no finished-or-not: every process must compute the same split
            self.owner = shard.assign(shard.weights([j.input for j in jobs]), self.count)
        else:
            self.owner = self._agree_on_plan(jobs, manifest, overwrite)
        part = shard.part_path(manifest, self.index, self.count)
        if self.mode == "shard":
            self._fd = shard.hold(part)
        else:
            self._hold_all(part)
        return [j for j, o in zip(jobs, self.owner) if o == self.index], part

    def _agree_on_plan(self, jobs: list[Job], manifest: Path, overwrite: bool) -> list[int]:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="gloo")
            self._group = True
        digest = hashlib.sha256("\n".join(f"{encodable(j.input)}\0{encodable(j.output)}" for j in jobs).encode()).hexdigest()
        digests: list = [None] * self.count
        dist.all_gather_object(digests, digest)
        other = [r for r, d in enumerate(digests) if d != digests[0]]
        if other:
            raise UsageError(
                f"{_ranks(other)} planned other photos than rank 0 (sees {len(jobs)}): every node needs "
                "the same inputs, -o and working folder, e.g. on a shared file system"
            )
        box: list = [None]
        if self.index == 0:  # before any rank writes: split what is left to do
            shard.absorb(manifest)
            pending = [overwrite or not (j.output.exists() or j.output.is_symlink()) for j in jobs]
            todo = shard.weights([j.input for j, p in zip(jobs, pending) if p])
            it = iter(todo)
            box[0] = shard.assign([next(it) if p else 0 for p in pending], self.count)
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def _hold_all(self, part: Path) -> None:
        """Every rank locks its part; rank 0 checks that it sees them all (a shared file system)."""
        import torch.distributed as dist

        try:
            self._fd, problem = shard.hold(part), None
        except (OutputError, UsageError) as e:
            problem = (e.exit_code, str(e))
        problems: list = [None] * self.count
        dist.all_gather_object(problems, problem)
        if any(problems):
            code, message = next(p for p in problems if p)
            err = ScenestyleError(message)
            err.exit_code = code
            raise err
        box: list = [None]
        if self.index == 0:
            box[0] = [r for r in range(self.count) if not shard.part_path(self.manifest, r, self.count).exists()]
        dist.broadcast_object_list(box, src=0)
        if box[0]:
            raise OutputError(
                f"rank 0 cannot see the manifest parts of {_ranks(box[0])} in {self.manifest.parent}: "
                "the output and manifest folders must be on a file system every node shares"
            )

    # -- the run ----------------------------------------------------------------------------------

    def run(self, run_jobs: Callable[..., list[JobResult]], jobs: list[Job], **kw) -> list[JobResult]:
        """``run_jobs(jobs, **kw)``; an interrupted rank 0 still merges what every rank finished."""
        self.context = {**(kw.get("context") or {}), **self.tag}
        kw["context"] = self.context
        kill = kill_hook(self.index) if self.mode != "plain" else None
        if kill is not None:
            kw["on_done"] = chain(kw.get("on_done"), kill)
        try:
            return run_jobs(jobs, **kw)
        except Interrupted as e:
            if not self._merges:
                self._close()
                raise
            shard.release(self._fd)
            self._fd = None
            unfinished = self._gather(stopped=True).unfinished
            _report_unstoppable()
            raise Interrupted(unfinished) from e.__cause__

    @property
    def _merges(self) -> bool:
        return self.mode == "torchrun" and self.index == 0

    def finish(self, report: BatchReport) -> BatchReport:
        """Rank 0 of torchrun: the report over every rank (after they finished); else ``report``."""
        if not self._merges:
            self._close()
            return report
        shard.release(self._fd)
        self._fd = None
        merged = self._gather(stopped=False)
        _report_unstoppable()
        return MergedReport(
            command=report.command,
            model=report.model,
            parameters=report.parameters,
            results=merged.results,
            manifest=str(self.manifest),
            unfinished=merged.unfinished,
        )

    def _close(self) -> None:
        shard.release(self._fd)
        self._fd = None
        if self._group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self._group = False

    def _gather(self, *, stopped: bool) -> MergedReport:
        """Wait for the other ranks, merge every part into the manifest, build the report."""
        with signals_deferred() as told:
            gone = self._wait(told, stopped)
            report = self._merge(gone, stopped)
        self._close()
        return report

    def _wait(self, told: threading.Event, stopped: bool) -> dict[int, str]:
        """Until every other rank released its part; returns {rank: why} for those given up on."""
        timeout = self.timeout
        parts = {r: shard.part_path(self.manifest, r, self.count) for r in range(1, self.count)}
        expected = {r: self.owner.count(r) for r in parts}
        seen: dict[int, tuple] = {}
        deadline = time.monotonic() + STOP_GRACE_SECONDS if stopped else None
        gone: dict[int, str] = {}
        while parts:
            now = time.monotonic()
            if told.is_set() and deadline is None:
                deadline = now + STOP_GRACE_SECONDS
            for r, p in list(parts.items()):
                try:
                    st = p.stat()
                    mark = (st.st_size, st.st_mtime_ns)
                except OSError:
                    mark = None
                grew = seen.get(r, (None,))[0] != mark
                free = shard.is_free(p)
                if free is None:  # no locks here: finished when it lists every photo it had
                    free = grew and len(shard.read_lines(p)) >= expected[r]
                if free:
                    del parts[r]
                    continue
                if grew:
                    seen[r] = (mark, now)
                elif now - seen[r][1] > timeout:
                    gone[r] = f"wrote nothing for {timeout:g} s (SCENESTYLE_RANK_TIMEOUT)"
                    del parts[r]
            if parts and deadline is not None and time.monotonic() > deadline:
                gone.update({r: "was still running when rank 0 was stopped" for r in parts})
                break
            if parts:
                time.sleep(POLL_SECONDS)
        return gone

    def _merge(self, gone: dict[int, str], stopped: bool) -> MergedReport:
        by_input: dict[str, dict] = {}
        paths = [shard.part_path(self.manifest, r, self.count) for r in range(self.count)]
        for p in paths:
            for rec in shard.read_lines(p):
                by_input[rec["input"]] = rec
        records, results, missing = [], [], {}
        for job, r in zip(self.jobs, self.owner):
            key = encodable(job.input)
            rec = by_input.pop(key, None)
            if rec is None:
                missing.setdefault(r, []).append(key)
                res = JobResult(
                    key,
                    encodable(job.output),
                    "failed",
                    error=f"not processed: rank {r} of {self.count} stopped before it; run the same command again to resume",
                )
                rec = encodable_tree({**asdict(res), **self.context, "shard": f"{r}/{self.count}"})
            records.append(rec)
            results.append(JobResult(**{k: rec.get(k) for k in _RESULT_FIELDS if k in rec}))
        records += by_input.values()  # (none expected) lines of inputs outside the plan are kept, not lost
        shard.append_lines(self.manifest, records)
        for p in paths:
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        unfinished = _unfinished_line(missing, gone, self.count, self.manifest, results, stopped)
        return MergedReport(command="", model={}, parameters={}, results=results, manifest=str(self.manifest), unfinished=unfinished)


def _report_unstoppable() -> None:
    """Rank 0 has merged the manifest and has only its report left: SIGTERM is ignored from here.
    torchrun sends it to every rank when one dies, as rank 0 may be finishing; it would cut the
    one line that says which inputs are left to 'terminated'."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _unfinished_line(
    missing: dict[int, list[str]], gone: dict[int, str], count: int, manifest: Path, results: list[JobResult], stopped: bool
) -> str | None:
    """One line naming the inputs no rank finished; None when every input was, unless rank 0 was
    stopped (then it also says what was finished, as a stopped plain run does)."""
    names = [n for r in sorted(missing) for n in missing[r]]
    if not names and not stopped:
        return None
    left = ""
    if names:
        listed = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        why = "".join(f"; rank {r} {gone[r]}" for r in sorted(gone) if r in missing)
        left = (
            f"{_ranks(sorted(missing))} of {count} stopped before finishing: {len(names)} "
            f"input{'s' if len(names) != 1 else ''} not processed ({listed}){why}"
        )
    if not stopped:
        return f"{left}; the manifest {encodable(manifest)} marks them failed; run the same command again to resume"
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "skipped", "failed")}
    counts["failed"] -= len(names)
    return (
        f"{len(results) - len(names)} of {len(results)} inputs finished ({counts['ok']} ok, {counts['skipped']} "
        f"skipped, {counts['failed']} failed){'; ' + left if left else ''}; the manifest {encodable(manifest)} "
        "lists them all; run the same command again to resume"
    )


def _ranks(ranks: list[int]) -> str:
    return f"rank {ranks[0]}" if len(ranks) == 1 else "ranks " + ", ".join(map(str, ranks))
