"""Pinned weights: the lock file, finding files (package, Hugging Face cache, download), sha256 checks.

A weights spec is a lock name (``realesrgan-x4plus``), a local file (``.pth``/``.pt``/``.safetensors``)
or ``hf://ORG/REPO/FILE[@REVISION]``. Any file whose bytes match a lock entry's sha256 is treated as
that entry; a file reached through a lock name must match it or it is refused.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import inspect
import os
import pickle
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

import torch

from .errors import UsageError, WeightsError

TASKS = ("upscale", "denoise", "style", "eval")
FORMATS = ("pth", "safetensors")
WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors")
HF_PREFIX = "hf://"

_HEX64 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20

# (description, bytes done, bytes total or None); called from the download thread.
ProgressCallback = Callable[[str, int, "int | None"], None]


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


@dataclass(frozen=True)
class ResolvedWeights:
    """A local file ready to read, its sha256, and the lock entry it matches (if any)."""

    path: Path
    entry: WeightsEntry | None
    sha256: str
    source: str = field(default="path", compare=False)  # bundled | cache | download | path

    @property
    def name(self) -> str:
        return self.entry.name if self.entry else self.path.name


# ---------------------------------------------------------------------------------------------- lock

_ENTRY_KEYS = {"task", "arch", "kwargs", "sha256", "size", "licence", "format", "state_dict_key", "hf", "bundled", "urls"}
_REQUIRED = ("task", "arch", "sha256", "licence", "format")
_HF_KEYS = {"repo_id", "filename", "revision"}
_default_lock: dict[str, WeightsEntry] | None = None


def _lock_text(path: str | os.PathLike | None) -> tuple[str, str]:
    if path is None:
        res = importlib.resources.files("scenestyle").joinpath("weights.lock")
        return res.read_text(encoding="utf-8"), "scenestyle/weights.lock"
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8"), str(p)
    except OSError as exc:
        raise WeightsError(f"cannot read weights lock {p}: {exc.strerror or exc}") from None


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

    hf = None
    if "hf" in raw:
        t = raw["hf"]
        if not isinstance(t, dict) or set(t) - _HF_KEYS or not {"repo_id", "filename"} <= set(t):
            raise bad("hf must be a table with repo_id, filename and optional revision")
        if not all(isinstance(v, str) and v for v in t.values()) or t["repo_id"].count("/") != 1:
            raise bad("hf.repo_id must look like ORG/NAME and hf.filename/revision must be non-empty strings")
        hf = HubSource(t["repo_id"], t["filename"], t.get("revision", "main"))

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
    )


def load_lock(path: str | os.PathLike | None = None) -> dict[str, WeightsEntry]:
    """Parse and validate a lock file (default: the copy shipped in the package)."""
    global _default_lock
    if path is None and _default_lock is not None:
        return dict(_default_lock)
    text, where = _lock_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WeightsError(f"{where} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"models"})
    if unknown:
        raise WeightsError(f"{where}: unknown top-level table(s) {', '.join(unknown)}; only [models.NAME] is allowed")
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise WeightsError(f"{where}: models must be a table of [models.NAME] tables")
    entries = {name: _parse_entry(name, raw, where) for name, raw in models.items()}
    if path is None:
        _default_lock = entries
    return dict(entries)


def _lock(lock: Mapping[str, WeightsEntry] | str | os.PathLike | None) -> Mapping[str, WeightsEntry]:
    if lock is None or isinstance(lock, (str, os.PathLike)):
        return load_lock(lock)
    return lock


def _entry_by_sha(lock: Mapping[str, WeightsEntry], sha256: str) -> WeightsEntry | None:
    return next((e for e in lock.values() if e.sha256 == sha256), None)


def _lookup(lock: Mapping[str, WeightsEntry], name: str, task: str | None) -> WeightsEntry:
    entry = lock.get(name)
    valid = sorted(n for n, e in lock.items() if task is None or e.task == task)
    if entry is None:
        scope = f" {task}" if task else ""
        raise UsageError(f"unknown{scope} weights {name!r}; choose one of: {', '.join(valid) or '(none)'} or give a file path / hf:// URI")
    if task is not None and entry.task != task:
        raise UsageError(f"weights {name!r} are for the {entry.task} task, not {task}; choose one of: {', '.join(valid) or '(none)'}")
    return entry


# -------------------------------------------------------------------------------------------- sha256

_hash_cache: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def file_sha256(path: Path) -> str:
    """Full sha256 of a file, remembered per (real path, mtime, size) so repeat checks are free."""
    real = Path(path).resolve()
    st = real.stat()
    key = (str(real), st.st_mtime_ns, st.st_size)
    with _hash_lock:
        if key in _hash_cache:
            return _hash_cache[key]
    h = hashlib.sha256()
    with open(real, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    with _hash_lock:
        _hash_cache[key] = digest
    return digest


def _check(path: Path, entry: WeightsEntry, *, fix: str | None = None) -> str:
    actual = file_sha256(path)
    if actual != entry.sha256:
        fix = fix or f"delete it and run `scenestyle weights pull {entry.name}`"
        raise WeightsError(
            f"weights file {path} has sha256 {actual}, expected {entry.sha256} for {entry.name!r} "
            f"(tampered, truncated or a different file); {fix}"
        )
    return actual


# ----------------------------------------------------------------------------------------- locating


def _hub_cache_dir() -> str | None:
    # Read at call time, not at huggingface_hub import, so a changed environment is honoured.
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    return None  # huggingface_hub's own default


def _default_hub_cache() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _env_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _bundled_path(entry: WeightsEntry) -> Path | None:
    if entry.bundled is None:
        return None
    res = importlib.resources.files("scenestyle").joinpath(entry.bundled)
    path = Path(str(res))
    return path if path.is_file() else None


def _cached_hub_file(src: HubSource) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(src.repo_id, src.filename, cache_dir=_hub_cache_dir(), revision=src.revision)
    return Path(found) if isinstance(found, str) and os.path.isfile(found) else None


class _CallbackBar:
    """Just enough of tqdm for ``hf_hub_download(tqdm_class=...)``: forwards byte counts to a callback."""

    def __init__(self, *, total: int | None = None, initial: int = 0, desc: str = "", callback: ProgressCallback | None = None, **_: Any):
        self.total, self.n, self.desc, self._cb = total, initial, desc, callback
        self._emit()

    def _emit(self) -> None:
        if self._cb is not None:
            self._cb(self.desc, self.n, self.total)

    def update(self, n: int = 1) -> None:
        self.n += n
        self._emit()

    def close(self) -> None:
        pass

    def __enter__(self) -> _CallbackBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _bar_class(progress: ProgressCallback | None, desc: str) -> type:
    # The hub's own tqdm bar is replaced even without a callback: the CLI owns the terminal.
    class Bar(_CallbackBar):
        def __init__(self, **kw: Any):
            kw["desc"] = desc
            super().__init__(callback=progress, **kw)

    return Bar


def _download(src: HubSource, what: str, progress: ProgressCallback | None) -> Path:
    from huggingface_hub import hf_hub_download

    kwargs: dict[str, Any] = dict(
        repo_id=src.repo_id,
        filename=src.filename,
        revision=src.revision,
        cache_dir=_hub_cache_dir(),
        endpoint=os.environ.get("HF_ENDPOINT") or None,
    )
    if "tqdm_class" in inspect.signature(hf_hub_download).parameters:  # huggingface_hub >= 1.0
        kwargs["tqdm_class"] = _bar_class(progress, what)
    try:
        return Path(hf_hub_download(**kwargs))
    except Exception as exc:  # the hub raises many types (HTTP, network, OS); all mean "not downloaded"
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise WeightsError(f"could not download {what} from {src.uri}: {type(exc).__name__}: {detail}") from exc


@contextmanager
def rich_download_progress(console: Any = None) -> Iterator[ProgressCallback]:
    """A Rich progress display for downloads; yields the callback to pass as ``progress=``."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as bars:
        ids: dict[str, Any] = {}

        def update(desc: str, done: int, total: int | None) -> None:
            if desc not in ids:
                ids[desc] = bars.add_task(desc, total=total)
            bars.update(ids[desc], completed=done, total=total)

        yield update


def parse_hf_uri(spec: str) -> HubSource:
    """``hf://ORG/REPO/PATH/IN/REPO[@REV]`` → :class:`HubSource` (revision defaults to ``main``)."""
    rest, at, rev = spec[len(HF_PREFIX):].partition("@")
    parts = rest.split("/")
    if len(parts) < 3 or not all(parts) or (at and not rev):
        raise UsageError(f"bad Hugging Face URI {spec!r}; expected hf://ORG/REPO/FILENAME[@REVISION]")
    return HubSource("/".join(parts[:2]), "/".join(parts[2:]), rev or "main")


def _looks_like_path(spec: str) -> bool:
    return spec.lower().endswith(WEIGHT_SUFFIXES) or os.sep in spec or "/" in spec or Path(spec).exists()


def cache_path(name: str, *, lock: Mapping[str, WeightsEntry] | str | os.PathLike | None = None) -> Path | None:
    """Where the file for lock entry ``name`` already sits locally (bundled or Hub cache), unverified."""
    entry = _lookup(_lock(lock), name, None)
    found = _bundled_path(entry)
    if found is None and entry.hf is not None:
        found = _cached_hub_file(entry.hf)
    return found


def resolve(
    spec: str,
    *,
    offline: bool = False,
    task: str | None = None,
    progress: ProgressCallback | None = None,
    lock: Mapping[str, WeightsEntry] | str | os.PathLike | None = None,
) -> ResolvedWeights:
    """Find (and if needed download) the file for ``spec`` and check its sha256 against the lock."""
    entries = _lock(lock)
    offline = offline or _env_offline()

    if spec.startswith(HF_PREFIX):
        src = parse_hf_uri(spec)
        path = _cached_hub_file(src)
        source = "cache"
        if path is None:
            if offline:
                raise WeightsError(f"{spec} is not in the Hugging Face cache and downloads are off (offline); run once online")
            path, source = _download(src, spec, progress), "download"
        sha = file_sha256(path)
        return ResolvedWeights(path, _entry_by_sha(entries, sha), sha, source)

    if spec not in entries and _looks_like_path(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise UsageError(f"weights file {spec} does not exist (or is not a file)")
        if not path.name.lower().endswith(WEIGHT_SUFFIXES):
            raise UsageError(f"weights file {spec} must end in {', '.join(WEIGHT_SUFFIXES)}")
        sha = file_sha256(path)
        return ResolvedWeights(path, _entry_by_sha(entries, sha), sha, "path")

    entry = _lookup(entries, spec, task)
    bundled = _bundled_path(entry)
    if bundled is not None:
        fix = "the installed package is damaged; reinstall scenestyle"
        return ResolvedWeights(bundled, entry, _check(bundled, entry, fix=fix), "bundled")
    if entry.hf is None:
        urls = " or ".join(entry.urls)
        raise WeightsError(
            f"weights {entry.name!r} have no Hugging Face source; download {urls} by hand and pass the file's path instead"
        )
    cached = _cached_hub_file(entry.hf)
    if cached is not None:
        return ResolvedWeights(cached, entry, _check(cached, entry), "cache")
    if offline:
        raise WeightsError(
            f"weights {entry.name!r} are not in the Hugging Face cache ({_hub_cache_dir() or _default_hub_cache()}) and "
            f"downloads are off; run `scenestyle weights pull {entry.name}` while online"
        )
    path = _download(entry.hf, entry.name, progress)
    fix = f"the Hub copy {entry.hf.uri} is not the pinned file; delete {path} and report it"
    return ResolvedWeights(path, entry, _check(path, entry, fix=fix), "download")


def pull(
    names: Iterable[str],
    offline: bool = False,
    *,
    progress: ProgressCallback | None = None,
    lock: Mapping[str, WeightsEntry] | str | os.PathLike | None = None,
) -> list[ResolvedWeights]:
    """Make every named entry available locally and verified; unknown names fail before any download."""
    entries = _lock(lock)
    names = list(names)
    for name in names:
        _lookup(entries, name, None)
    return [resolve(n, offline=offline, progress=progress, lock=entries) for n in names]


def verify(
    names: Iterable[str] | None = None,
    *,
    lock: Mapping[str, WeightsEntry] | str | os.PathLike | None = None,
) -> list[tuple[str, str]]:
    """Check local copies without downloading: (name, "ok" | "missing" | "mismatch: ...") per entry."""
    entries = _lock(lock)
    out: list[tuple[str, str]] = []
    for name in (list(names) if names is not None else sorted(entries)):
        path = cache_path(name, lock=entries)
        if path is None:
            out.append((name, "missing"))
            continue
        actual = file_sha256(path)
        expected = entries[name].sha256
        out.append((name, "ok" if actual == expected else f"mismatch: {path} has sha256 {actual}, expected {expected}"))
    return out


# --------------------------------------------------------------------------------------- state dicts

_WRAPPERS = ("params_ema", "params", "state_dict")


def read_state_dict(path: Path, state_dict_key: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a weights file, unwrapped (params_ema / params / state_dict / ``key``) and DDP-stripped."""
    path = Path(path)
    try:
        if path.name.lower().endswith(".safetensors"):
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        else:
            # weights_only: a weights file must never be able to run code on load.
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower():
            raise WeightsError(
                f"{path} is not a plain weights file: unpickling it needs more than tensors and containers "
                "(scenestyle loads with weights_only=True); re-save its state_dict with torch.save or as .safetensors"
            ) from None
        raise WeightsError(f"cannot read weights {path}: corrupt or not a PyTorch file ({exc})") from None
    except OSError as exc:
        raise WeightsError(f"cannot read weights {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # zip/pickle/safetensors readers raise assorted types on damaged files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"cannot read weights {path}: corrupt or truncated ({first})") from None

    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path} holds a {type(obj).__name__}, not a state dict (a mapping of names to tensors)")
    if state_dict_key is not None:
        if state_dict_key not in obj:
            raise WeightsError(f"{path} has no {state_dict_key!r} entry; top-level keys: {', '.join(map(str, list(obj)[:8]))}")
        obj = obj[state_dict_key]
    for key in _WRAPPERS:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path}: the state dict is a {type(obj).__name__}, not a mapping of names to tensors")
    bad = [(k, v) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        k, v = bad[0]
        raise WeightsError(
            f"{path} holds {len(bad)} non-tensor entr{'y' if len(bad) == 1 else 'ies'} (e.g. {k!r}: {type(v).__name__}); "
            "it is a training checkpoint, not a state dict: give the key of its weights"
        )
    sd = {str(k): v for k, v in obj.items()}
    if sd and all(k.startswith("module.") for k in sd):  # saved from DistributedDataParallel
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd
