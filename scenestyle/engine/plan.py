"""Which photos a batch reads and where each result goes: input discovery (files, folders,
globs), output naming and mirroring of the input tree, and the up-front output-folder check."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from scenestyle.errors import OutputError, UsageError
from scenestyle.image_files import IMAGE_SUFFIXES
from scenestyle.imaging import output_format_for

# Extension written for each --format choice.
FORMAT_SUFFIX = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "tiff": ".tif"}
# Inputs in a format we do not write (GIF, BMP) default to lossless PNG.
WRITABLE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff"})


@dataclass(frozen=True)
class Job:
    """One input photo and the path its result goes to."""

    input: Path
    output: Path


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


def check_writable(folder: Path) -> None:
    """Fail early, with one line, when an output folder cannot be created or written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create output folder {folder}: {e.strerror or e}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {folder} is not writable")
