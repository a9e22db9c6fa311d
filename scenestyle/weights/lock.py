"""The weights lock: parse and validate ``weights.lock``, its model entries and its per-task defaults."""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from scenestyle._strokes import MAX_AMOUNT, MAX_CHROMA_MEDIAN, MAX_EDGES, MAX_LENGTH, Strokes
from scenestyle.errors import UsageError, WeightsError

TASKS = ("upscale", "denoise", "style", "eval")
FORMATS = ("pth", "safetensors")
HF_PREFIX = "hf://"
# Tasks that `stylize` / `upscale` / `denoise` run with a default model when none is named.
DEFAULT_TASKS = ("style", "upscale", "denoise")

_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class HubSource:
    """A file in a Hugging Face model repository at a fixed revision."""

    repo_id: str
    filename: str
    revision: str = "main"

    @property
    def uri(self) -> str:
        return f"{HF_PREFIX}{self.repo_id}/{self.filename}@{self.revision}"


@dataclass(frozen=True)
class WeightsEntry:
    """One ``[models.NAME]`` table of the lock."""

    name: str
    task: str
    arch: str
    kwargs: Mapping[str, Any]
    sha256: str
    size: int | None
    licence: str
    format: str
    state_dict_key: str | None = None
    hf: HubSource | None = None
    bundled: str | None = None
    urls: tuple[str, ...] = ()
    sigma: float | None = None  # fixed-σ denoisers: the noise std (8-bit units) they always remove
    wdn: str | None = None  # the weak-denoise twin that ``upscale --denoise`` interpolates with this model
    fallback: str | None = None  # bundled entry that runs instead when this one, as a default, is not here and cannot be fetched
    strokes: Strokes | None = None  # styles: what stylize draws over each painting (amount, length, chroma median, edges)


@dataclass(frozen=True)
class LockDefaults:
    """The ``[defaults]`` table: the lock entry each task runs when no model is named."""

    style: str | None = None
    denoise: str | None = None
    upscale: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))  # model scale → entry

    def require(self, task: str) -> str:
        """The default entry for ``style`` or ``denoise``; UsageError when the lock names none."""
        name = getattr(self, task)
        if name is None:
            raise UsageError(f"weights.lock names no default {task} model; pass --model NAME or --weights FILE")
        return name


# A lock as functions take it: already parsed, a lock file path, or None for the packaged lock.
LockArg = Mapping[str, WeightsEntry] | str | os.PathLike | None

_ENTRY_KEYS = {
    "task",
    "arch",
    "kwargs",
    "sha256",
    "size",
    "licence",
    "format",
    "state_dict_key",
    "hf",
    "bundled",
    "urls",
    "sigma",
    "wdn",
    "fallback",
    "strokes",
}
_REQUIRED = ("task", "arch", "sha256", "licence", "format")
_HF_KEYS = {"repo_id", "filename", "revision"}
_default_lock: dict[str, WeightsEntry] | None = None
_default_defaults: LockDefaults | None = None


def _lock_text(path: str | os.PathLike | None) -> tuple[str, str]:
    if path is None:
        res = importlib.resources.files("scenestyle").joinpath("weights.lock")
        return res.read_text(encoding="utf-8"), "scenestyle/weights.lock"
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8"), str(p)
    except OSError as exc:
        raise WeightsError(f"cannot read weights lock {p}: {exc.strerror or exc}") from None


def _parse_hf(raw: Any, bad) -> HubSource:
    if not isinstance(raw, dict) or set(raw) - _HF_KEYS or not {"repo_id", "filename"} <= set(raw):
        raise bad("hf must be a table with repo_id, filename and optional revision")
    if not all(isinstance(v, str) and v for v in raw.values()) or raw["repo_id"].count("/") != 1:
        raise bad("hf.repo_id must look like ORG/NAME and hf.filename/revision must be non-empty strings")
    return HubSource(raw["repo_id"], raw["filename"], raw.get("revision", "main"))


def _strokes(raw: Any, bad) -> Strokes | None:
    """A style's ``strokes`` table as a ``Strokes``: TOML numbers (integers for the pixel sizes, no
    booleans; amount and edges kept as floats) that make a valid one."""
    if raw is None:
        return None
    names = [f.name for f in dataclasses.fields(Strokes)]
    ok = (
        isinstance(raw, dict)
        and {"amount", "length"} <= set(raw) <= set(names)
        and all(
            isinstance(v, int if k in ("length", "chroma_median") else (int, float)) and not isinstance(v, bool) for k, v in raw.items()
        )
    )
    try:
        strokes = Strokes(**{**raw, "amount": float(raw["amount"]), "edges": float(raw.get("edges", 0.0))}) if ok else None
    except ValueError:
        strokes = None
    if strokes is None:
        raise bad(
            f"strokes must be {{ amount = 0-{MAX_AMOUNT:g} (8-bit levels), length = 1-{MAX_LENGTH} (pixels)"
            f"[, chroma_median = odd 3-{MAX_CHROMA_MEDIAN} (pixels)][, edges = 0-{MAX_EDGES:g} (gain)] }}, got {raw!r}"
        )
    return strokes


def _parse_entry(name: str, raw: Any, where: str) -> WeightsEntry:
    def bad(msg: str) -> WeightsError:
        return WeightsError(f"{where}: entry {name!r}: {msg}")

    if not isinstance(raw, dict):
        raise bad("must be a table")
    unknown = sorted(set(raw) - _ENTRY_KEYS)
    if unknown:
        raise bad(f"unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(_ENTRY_KEYS))}")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise bad(f"missing key(s) {', '.join(missing)}")
    for key in ("arch", "licence", "sha256"):
        if not isinstance(raw[key], str) or not raw[key]:
            raise bad(f"{key} must be a non-empty string")
    if raw["task"] not in TASKS:
        raise bad(f"task {raw['task']!r} is not one of {', '.join(TASKS)}")
    if raw["format"] not in FORMATS:
        raise bad(f"format {raw['format']!r} is not one of {', '.join(FORMATS)}")
    if not _HEX64.fullmatch(raw["sha256"]):
        raise bad(f"sha256 must be 64 lowercase hex digits, got {raw['sha256']!r}")
    kwargs = raw.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise bad("kwargs must be an inline table")
    size = raw.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
        raise bad(f"size must be a positive integer (bytes), got {size!r}")
    key = raw.get("state_dict_key")
    if key is not None and (not isinstance(key, str) or not key):
        raise bad("state_dict_key must be a non-empty string (omit it for a flat state dict)")
    hf = _parse_hf(raw["hf"], bad) if "hf" in raw else None

    bundled = raw.get("bundled")
    if bundled is not None:
        parts = Path(str(bundled)).parts
        if not isinstance(bundled, str) or Path(bundled).is_absolute() or ".." in parts:
            raise bad(f"bundled must be a path inside the package, got {bundled!r}")

    urls = raw.get("urls", [])
    if not isinstance(urls, list) or not all(isinstance(u, str) and u.startswith("https://") for u in urls):
        raise bad("urls must be a list of https:// URLs")
    if hf is None and bundled is None and not urls:
        raise bad("needs at least one source: hf, bundled or urls")
    sigma = raw.get("sigma")
    if sigma is not None and (not isinstance(sigma, (int, float)) or isinstance(sigma, bool) or not 0 < sigma <= 255):
        raise bad(f"sigma must be a noise std in 8-bit units (0 < sigma <= 255), got {sigma!r}")
    if sigma is not None and raw["task"] != "denoise":
        raise bad(f"sigma is only for denoise models, not {raw['task']}")
    wdn = raw.get("wdn")
    if wdn is not None and (not isinstance(wdn, str) or not wdn):
        raise bad("wdn must be the name of another entry")
    fallback = raw.get("fallback")
    if fallback is not None and (not isinstance(fallback, str) or not fallback):
        raise bad("fallback must be the name of another entry")
    strokes = _strokes(raw.get("strokes"), bad)
    if strokes is not None and raw["task"] != "style":
        raise bad(f"strokes are only for style models, not {raw['task']}")

    return WeightsEntry(
        name=name,
        task=raw["task"],
        arch=raw["arch"],
        kwargs=MappingProxyType(dict(kwargs)),
        sha256=raw["sha256"],
        size=size,
        licence=raw["licence"],
        format=raw["format"],
        state_dict_key=key,
        hf=hf,
        bundled=bundled,
        urls=tuple(urls),
        sigma=float(sigma) if sigma is not None else None,
        wdn=wdn,
        fallback=fallback,
        strokes=strokes,
    )


def _check_twins(entries: Mapping[str, WeightsEntry], where: str) -> None:
    # Interpolating two state dicts needs the same architecture at the same size.
    for e in entries.values():
        twin = entries.get(e.wdn) if e.wdn is not None else None
        if e.wdn is not None and (twin is None or (twin.arch, dict(twin.kwargs)) != (e.arch, dict(e.kwargs))):
            raise WeightsError(
                f"{where}: entry {e.name!r}: wdn {e.wdn!r} must name another entry with the same arch and "
                f"kwargs; entries: {', '.join(sorted(entries))}"
            )
        # A fallback must run where its entry cannot be fetched: inside the package, for the same task.
        sub = entries.get(e.fallback) if e.fallback is not None else None
        if e.fallback is not None and (sub is None or sub.bundled is None or sub.task != e.task):
            bundled = sorted(n for n, x in entries.items() if x.bundled is not None and x.task == e.task)
            raise WeightsError(
                f"{where}: entry {e.name!r}: fallback {e.fallback!r} must name a bundled {e.task} entry ({', '.join(bundled) or 'none'})"
            )


def _parse_defaults(raw: Any, entries: Mapping[str, WeightsEntry], where: str) -> LockDefaults:
    def named(task: str, value: Any, key: str) -> str:
        entry = entries.get(value) if isinstance(value, str) else None
        if entry is None or entry.task != task:
            valid = sorted(n for n, e in entries.items() if e.task == task)
            raise WeightsError(f"{where}: defaults.{key} must be one of the {task} entries ({', '.join(valid) or 'none'}), not {value!r}")
        return value

    if not isinstance(raw, dict):
        raise WeightsError(f"{where}: defaults must be a table")
    unknown = sorted(set(raw) - set(DEFAULT_TASKS))
    if unknown:
        raise WeightsError(f"{where}: unknown key(s) {', '.join(unknown)} in [defaults]; valid keys: {', '.join(DEFAULT_TASKS)}")
    upscale = raw.get("upscale", {})
    if not isinstance(upscale, dict) or not all(re.fullmatch(r"x[1-9]", k) for k in upscale):
        raise WeightsError(f'{where}: defaults.upscale must be an inline table of scale to entry, e.g. {{ x4 = "NAME" }}')
    return LockDefaults(
        style=named("style", raw["style"], "style") if "style" in raw else None,
        denoise=named("denoise", raw["denoise"], "denoise") if "denoise" in raw else None,
        upscale=MappingProxyType({int(k[1:]): named("upscale", v, f"upscale.{k}") for k, v in sorted(upscale.items())}),
    )


def _read(path: str | os.PathLike | None) -> tuple[dict[str, WeightsEntry], LockDefaults]:
    global _default_lock, _default_defaults
    if path is None and _default_lock is not None and _default_defaults is not None:
        return dict(_default_lock), _default_defaults
    text, where = _lock_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WeightsError(f"{where} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"models", "defaults"})
    if unknown:
        raise WeightsError(f"{where}: unknown top-level table(s) {', '.join(unknown)}; only [models.NAME] and [defaults] are allowed")
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise WeightsError(f"{where}: models must be a table of [models.NAME] tables")
    entries = {name: _parse_entry(name, raw, where) for name, raw in models.items()}
    _check_twins(entries, where)
    defaults = _parse_defaults(data.get("defaults", {}), entries, where)
    if path is None:
        _default_lock, _default_defaults = entries, defaults
    return dict(entries), defaults


def load_lock(path: str | os.PathLike | None = None) -> dict[str, WeightsEntry]:
    """Parse and validate a lock file (default: the copy shipped in the package)."""
    return _read(path)[0]


def load_defaults(path: str | os.PathLike | None = None) -> LockDefaults:
    """The lock's ``[defaults]`` table (default: the copy shipped in the package)."""
    return _read(path)[1]


def entries_of(lock: LockArg) -> Mapping[str, WeightsEntry]:
    """The entries of ``lock``: already parsed, a lock file path, or None for the packaged lock."""
    if lock is None or isinstance(lock, (str, os.PathLike)):
        return load_lock(lock)
    return lock


def entry_by_sha(lock: Mapping[str, WeightsEntry], sha256: str) -> WeightsEntry | None:
    """The entry pinning these bytes, if any."""
    return next((e for e in lock.values() if e.sha256 == sha256), None)


def lookup(lock: Mapping[str, WeightsEntry], name: str, task: str | None) -> WeightsEntry:
    """The entry called ``name`` (for ``task`` if given); UsageError listing the valid names otherwise."""
    entry = lock.get(name)
    valid = sorted(n for n, e in lock.items() if task is None or e.task == task)
    if entry is None:
        scope = f" {task}" if task else ""
        raise UsageError(f"unknown{scope} weights {name!r}; choose one of: {', '.join(valid) or '(none)'} or give a file path / hf:// URI")
    if task is not None and entry.task != task:
        raise UsageError(f"weights {name!r} are for the {entry.task} task, not {task}; choose one of: {', '.join(valid) or '(none)'}")
    return entry
