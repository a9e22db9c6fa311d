"""From a weights spec to a local file whose sha256 was checked: resolve, pull, add, verify.

A spec is a lock name (``realesrgan-x4plus``), a local file (``.pth``/``.pt``/``.safetensors``) or
``hf://ORG/REPO/FILE[@REVISION]``. Any file whose bytes match a lock entry's sha256 is treated as
that entry; a file reached through a lock name must match it or it is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from scenestyle.errors import UsageError, WeightsError, WeightsUnavailable
from scenestyle.weights.files import file_sha256
from scenestyle.weights.hub import (
    ProgressCallback,
    add_target,
    bundled_path,
    cached_entry_file,
    cached_hub_file,
    default_hub_cache,
    download,
    env_offline,
    how_to_get,
    hub_cache_dir,
    hub_file_url,
    place_in_cache,
)
from scenestyle.weights.lock import HF_PREFIX, HubSource, LockArg, WeightsEntry, entries_of, entry_by_sha, lookup

WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors")


@dataclass(frozen=True)
class ResolvedWeights:
    """A local file ready to read, its sha256, and the lock entry it matches (if any)."""

    path: Path
    entry: WeightsEntry | None
    sha256: str
    source: str = field(default="path", compare=False)  # bundled | cache | download | path | added

    @property
    def name(self) -> str:
        return self.entry.name if self.entry else self.path.name


def _check(path: Path, entry: WeightsEntry, *, fix: str | None = None) -> str:
    actual = file_sha256(path)
    if actual != entry.sha256:
        if fix is None:
            fix = f"delete it and run `scenestyle weights pull {entry.name}`" if entry.hf else f"delete it, then {how_to_get(entry)}"
        raise WeightsError(
            f"weights file {path} has sha256 {actual}, expected {entry.sha256} for {entry.name!r} "
            f"(tampered, truncated or a different file); {fix}"
        )
    return actual


def parse_hf_uri(spec: str) -> HubSource:
    """``hf://ORG/REPO/PATH/IN/REPO[@REV]`` → :class:`HubSource` (revision defaults to ``main``)."""
    rest, at, rev = spec[len(HF_PREFIX) :].partition("@")
    parts = rest.split("/")
    if len(parts) < 3 or not all(parts) or (at and not rev):
        raise UsageError(f"bad Hugging Face URI {spec!r}; expected hf://ORG/REPO/FILENAME[@REVISION]")
    return HubSource("/".join(parts[:2]), "/".join(parts[2:]), rev or "main")


def _looks_like_path(spec: str) -> bool:
    return spec.lower().endswith(WEIGHT_SUFFIXES) or os.sep in spec or "/" in spec or Path(spec).exists()


def cache_path(name: str, *, lock: LockArg = None) -> Path | None:
    """Where the file for lock entry ``name`` already sits locally (bundled or Hub cache), unverified."""
    entry = lookup(entries_of(lock), name, None)
    return bundled_path(entry) or cached_entry_file(entry)


def resolve(
    spec: str,
    *,
    offline: bool = False,
    task: str | None = None,
    progress: ProgressCallback | None = None,
    lock: LockArg = None,
) -> ResolvedWeights:
    """Find (and if needed download) the file for ``spec`` and check its sha256 against the lock."""
    entries = entries_of(lock)
    offline = offline or env_offline()

    if spec.startswith(HF_PREFIX):
        src = parse_hf_uri(spec)
        path = cached_hub_file(src)
        source = "cache"
        if path is None:
            if offline:
                raise WeightsUnavailable(
                    f"{spec} is not in the Hugging Face cache and downloads are off (offline); run once online, or "
                    f"{how_to_get(None, hub_file_url(src))}"
                )
            path, source = download(src, spec, progress), "download"
        sha = file_sha256(path)
        return ResolvedWeights(path, entry_by_sha(entries, sha), sha, source)

    if spec not in entries and _looks_like_path(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise UsageError(f"weights file {spec} does not exist (or is not a file)")
        if not path.name.lower().endswith(WEIGHT_SUFFIXES):
            raise UsageError(f"weights file {spec} must end in {', '.join(WEIGHT_SUFFIXES)}")
        sha = file_sha256(path)
        return ResolvedWeights(path, entry_by_sha(entries, sha), sha, "path")

    entry = lookup(entries, spec, task)
    bundled = bundled_path(entry)
    if bundled is not None:
        fix = "the installed package is damaged; reinstall scenestyle"
        return ResolvedWeights(bundled, entry, _check(bundled, entry, fix=fix), "bundled")
    cached = cached_entry_file(entry)
    if cached is not None:
        return ResolvedWeights(cached, entry, _check(cached, entry), "cache")
    if entry.hf is None:
        raise WeightsUnavailable(f"weights {entry.name!r} are not here and have no Hugging Face source to download; {how_to_get(entry)}")
    if offline:
        raise WeightsUnavailable(
            f"weights {entry.name!r} are not in the Hugging Face cache ({hub_cache_dir() or default_hub_cache()}) and "
            f"downloads are off; run `scenestyle weights pull {entry.name}` while online, or {how_to_get(entry)}"
        )
    path = download(entry.hf, entry.name, progress, entry)
    fix = f"the Hub copy {entry.hf.uri} is not the pinned file; delete {path} and report it"
    return ResolvedWeights(path, entry, _check(path, entry, fix=fix), "download")


def pull(
    names: Iterable[str],
    offline: bool = False,
    *,
    progress: ProgressCallback | None = None,
    lock: LockArg = None,
) -> list[ResolvedWeights]:
    """Make every named entry available locally and verified; unknown names fail before any download."""
    entries = entries_of(lock)
    names = list(names)
    for name in names:
        lookup(entries, name, None)
    return [resolve(n, offline=offline, progress=progress, lock=entries) for n in names]


def add(path: str | os.PathLike, name: str | None = None, *, lock: LockArg = None) -> ResolvedWeights:
    """Register a file downloaded by hand: check its sha256 against the lock (against ``name`` if
    given, else any entry), then file it in the Hugging Face cache as the Hub would, so that lock
    names, ``weights list | verify | path`` and offline runs find it. The file itself is copied, not moved."""
    entries = entries_of(lock)
    src_path = Path(path).expanduser()
    if not src_path.is_file():
        raise UsageError(f"{path} does not exist (or is not a file); give the weights file you downloaded")
    try:
        sha = file_sha256(src_path)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if name is not None:
        entry = lookup(entries, name, None)
        if sha != entry.sha256:
            raise WeightsError(
                f"{path} has sha256 {sha}, expected {entry.sha256} for {entry.name!r} (a different, truncated or "
                f"damaged download); download {' or '.join(entry.urls) or 'it'} again"
            )
    else:
        found = entry_by_sha(entries, sha)
        if found is None:
            raise WeightsError(
                f"{path} (sha256 {sha}) is none of the files pinned in weights.lock ({', '.join(sorted(entries))}), so it "
                f"cannot be added; use it as it is with --weights {path}"
            )
        entry = found
    bundled = bundled_path(entry)
    if bundled is not None:
        return ResolvedWeights(bundled, entry, sha, "bundled")  # shipped in the package: nothing to add
    existing = cached_entry_file(entry)
    if existing is not None and file_sha256(existing) == sha:
        return ResolvedWeights(existing, entry, sha, "cache")
    placed = place_in_cache(src_path, add_target(entry), sha)
    return ResolvedWeights(placed, entry, _check(placed, entry), "added")


def verify(names: Iterable[str] | None = None, *, lock: LockArg = None) -> list[tuple[str, str]]:
    """Check local copies without downloading: (name, "ok" | "missing" | "mismatch: ...") per entry."""
    entries = entries_of(lock)
    out: list[tuple[str, str]] = []
    for name in list(names) if names is not None else sorted(entries):
        path = cache_path(name, lock=entries)
        if path is None:
            out.append((name, "missing"))
            continue
        actual = file_sha256(path)
        expected = entries[name].sha256
        out.append((name, "ok" if actual == expected else f"mismatch: {path} has sha256 {actual}, expected {expected}"))
    return out
