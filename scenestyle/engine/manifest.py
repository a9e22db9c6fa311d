"""The run's manifest: one JSON line per input (status, time, sha256, notes), appended to by
every run, so a rerun skips finished photos and a batch can be audited afterwards."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scenestyle._text import encodable_tree
from scenestyle.engine.plan import Job, input_root
from scenestyle.errors import OutputError, UsageError
from scenestyle.image_files import IMAGE_SUFFIXES
from scenestyle.imaging.atomic import write_error


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
        if not is_manifest(manifest):
            raise UsageError(
                f"{flag} exists and is not a scenestyle manifest (JSON lines); choose another file, or an existing manifest to append to"
            )
        if not os.access(manifest, os.W_OK):
            raise OutputError(f"{flag} is not writable")
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{flag}: the folder {folder} is not writable")


def is_manifest(path: Path) -> bool:
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


def open_manifest(path: Path):
    try:
        return open(path, "a", encoding="utf-8")
    except OSError as e:
        raise OutputError(write_error(path, e).replace("cannot write", "cannot write the manifest", 1)) from None


def log_result(manifest_f, path: Path | None, r: JobResult, context: dict) -> None:
    if manifest_f is not None:
        line = encodable_tree({**asdict(r), **context})  # notes and errors may quote a file name
        try:
            manifest_f.write(json.dumps(line, ensure_ascii=False) + "\n")
            manifest_f.flush()
        except OSError as e:  # disk full: the record of the run cannot be kept, so the run stops
            raise OutputError(write_error(path, e).replace("cannot write", "cannot write the manifest", 1)) from None
