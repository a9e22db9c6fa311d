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
import shutil
import tempfile
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

from .errors import OutputError, UsageError, WeightsError

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
    sigma: float | None = None  # fixed-σ denoisers: the noise std (8-bit units) they always remove


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


# ---------------------------------------------------------------------------------------------- lock

_ENTRY_KEYS = {"task", "arch", "kwargs", "sha256", "size", "licence", "format", "state_dict_key", "hf", "bundled", "urls",
               "sigma"}
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
    sigma = raw.get("sigma")
    if sigma is not None and (not isinstance(sigma, (int, float)) or isinstance(sigma, bool) or not 0 < sigma <= 255):
        raise bad(f"sigma must be a noise std in 8-bit units (0 < sigma <= 255), got {sigma!r}")
    if sigma is not None and raw["task"] != "denoise":
        raise bad(f"sigma is only for denoise models, not {raw['task']}")

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
        if fix is None:
            fix = f"delete it and run `scenestyle weights pull {entry.name}`" if entry.hf else f"delete it, then {how_to_get(entry)}"
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


# `weights add` files an entry that the Hub does not pin at a commit (dncnn-25 is on GitHub only)
# under this made-up repo, in the same cache layout, so the cache stays the one place to look.
_ADDED_ORG = "scenestyle-added"
_COMMIT = re.compile(r"[0-9a-f]{40}")


def _added_source(entry: WeightsEntry) -> HubSource:
    """Where ``weights add`` puts an entry without a Hub source at a commit: a pseudo repo whose
    "commit" is the file's sha256 prefix (so another file for the name can never be mistaken for it)."""
    url_name = entry.urls[0].rsplit("/", 1)[-1] if entry.urls else ""
    suffix = ".safetensors" if entry.format == "safetensors" else ".pth"
    return HubSource(f"{_ADDED_ORG}/{entry.name}", url_name or f"{entry.name}{suffix}", entry.sha256[:40])


def _add_target(entry: WeightsEntry) -> HubSource:
    # A Hub source pinned at a commit is filed exactly where `hf_hub_download` would put it; a
    # branch revision cannot be (its commit is unknown offline), so it goes to the pseudo repo.
    if entry.hf is not None and _COMMIT.fullmatch(entry.hf.revision):
        return entry.hf
    return _added_source(entry)


def _cached_entry_file(entry: WeightsEntry) -> Path | None:
    """The entry's file in the Hugging Face cache: downloaded from the Hub or filed by ``weights add``."""
    found = _cached_hub_file(entry.hf) if entry.hf is not None else None
    return found or _cached_hub_file(_added_source(entry))


def how_to_get(entry: WeightsEntry | None, what: str | None = None) -> str:
    """The by-hand way to get a file, for error messages: the official URL and the two ways to use it."""
    if entry is not None and entry.urls:
        where = " or ".join(entry.urls)
    elif entry is not None and entry.hf is not None:
        where = _hub_file_url(entry.hf)
    else:
        where = what or "the file"
    return f"download {where} by hand, then pass --weights FILE or register it once with `scenestyle weights add FILE`"


def _hub_file_url(src: HubSource) -> str:
    endpoint = (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    return f"{endpoint}/{src.repo_id}/resolve/{src.revision}/{src.filename}"


def _umask() -> int:
    # Linux shows the umask in /proc; os.umask can only read it by setting it, for an instant, process-wide.
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def new_file_mode() -> int:
    """``0o666 & ~umask``, the mode ``open()`` gives a new file. mkstemp and safetensors make 0600
    files, which would keep a cached model, a checkpoint or a trained model from being shared."""
    return 0o666 & ~_umask()


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


def _unreachable(exc: BaseException) -> str | None:
    """The first line of a resolver or connection failure inside ``exc`` (None for other errors).
    Matched by class name: the hub's HTTP client (requests, httpx, httpx2) differs across versions."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        names = {c.__name__ for c in type(e).__mro__}
        if names & {"ConnectError", "ConnectTimeout", "ConnectionError", "NameResolutionError", "gaierror"}:
            text = str(e).strip()
            return text.splitlines()[0] if text else type(e).__name__
        e = e.__cause__ or e.__context__
    return None


def _probe(src: HubSource, what: str, entry: WeightsEntry | None) -> None:
    """One request without retries: an unknown host or a refused connection fails here at once,
    instead of after ``hf_hub_download``'s 25 s of logged retries; any other outcome (even an
    HTTP error) is left to the download, which retries transient failures."""
    try:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
    except ImportError:
        return
    endpoint = os.environ.get("HF_ENDPOINT") or None
    kwargs: dict[str, Any] = {"timeout": 10}
    params = inspect.signature(get_hf_file_metadata).parameters
    if "retry_on_errors" in params:
        kwargs["retry_on_errors"] = False
    if "endpoint" in params:
        kwargs["endpoint"] = endpoint
    try:
        get_hf_file_metadata(hf_hub_url(src.repo_id, src.filename, revision=src.revision, endpoint=endpoint), **kwargs)
    except Exception as exc:  # anything but a connection failure is the download's business
        reason = _unreachable(exc)
        if reason is None:
            return
        host = (endpoint or "https://huggingface.co").rstrip("/")
        raise WeightsError(
            f"cannot reach the Hugging Face Hub at {host} ({reason}) to download {what}; "
            f"{how_to_get(entry, _hub_file_url(src))}"
        ) from None


def _download(src: HubSource, what: str, progress: ProgressCallback | None, entry: WeightsEntry | None = None) -> Path:
    from huggingface_hub import hf_hub_download

    _probe(src, what, entry)
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
        raise WeightsError(
            f"could not download {what} from {src.uri}: {type(exc).__name__}: {detail}; {how_to_get(entry, _hub_file_url(src))}"
        ) from exc


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
    return _bundled_path(entry) or _cached_entry_file(entry)


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
                raise WeightsError(
                    f"{spec} is not in the Hugging Face cache and downloads are off (offline); run once online, or "
                    f"{how_to_get(None, _hub_file_url(src))}"
                )
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
    cached = _cached_entry_file(entry)
    if cached is not None:
        return ResolvedWeights(cached, entry, _check(cached, entry), "cache")
    if entry.hf is None:
        raise WeightsError(f"weights {entry.name!r} are not here and have no Hugging Face source to download; {how_to_get(entry)}")
    if offline:
        raise WeightsError(
            f"weights {entry.name!r} are not in the Hugging Face cache ({_hub_cache_dir() or _default_hub_cache()}) and "
            f"downloads are off; run `scenestyle weights pull {entry.name}` while online, or {how_to_get(entry)}"
        )
    path = _download(entry.hf, entry.name, progress, entry)
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


def add(
    path: str | os.PathLike,
    name: str | None = None,
    *,
    lock: Mapping[str, WeightsEntry] | str | os.PathLike | None = None,
) -> ResolvedWeights:
    """Register a file downloaded by hand: check its sha256 against the lock (against ``name`` if
    given, else any entry), then file it in the Hugging Face cache as the Hub would, so that lock
    names, ``weights list | verify | path`` and offline runs find it. The file itself is copied, not moved."""
    entries = _lock(lock)
    src_path = Path(path).expanduser()
    if not src_path.is_file():
        raise UsageError(f"{path} does not exist (or is not a file); give the weights file you downloaded")
    try:
        sha = file_sha256(src_path)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if name is not None:
        entry = _lookup(entries, name, None)
        if sha != entry.sha256:
            raise WeightsError(
                f"{path} has sha256 {sha}, expected {entry.sha256} for {entry.name!r} (a different, truncated or "
                f"damaged download); download {' or '.join(entry.urls) or 'it'} again"
            )
    else:
        found = _entry_by_sha(entries, sha)
        if found is None:
            raise WeightsError(
                f"{path} (sha256 {sha}) is none of the files pinned in weights.lock ({', '.join(sorted(entries))}), so it "
                f"cannot be added; use it as it is with --weights {path}"
            )
        entry = found
    bundled = _bundled_path(entry)
    if bundled is not None:
        return ResolvedWeights(bundled, entry, sha, "bundled")  # shipped in the package: nothing to add
    existing = _cached_entry_file(entry)
    if existing is not None and file_sha256(existing) == sha:
        return ResolvedWeights(existing, entry, sha, "cache")
    placed = _place_in_cache(src_path, _add_target(entry), sha)
    return ResolvedWeights(placed, entry, _check(placed, entry), "added")


def _place_in_cache(path: Path, src: HubSource, sha: str) -> Path:
    """Copy ``path`` into the cache layout of huggingface_hub: ``blobs/<sha256>`` (an LFS file's etag
    is its sha256) and ``snapshots/<revision>/<filename>`` linking to it; both renamed into place,
    so an interrupted add leaves no half file under a name the cache lookup trusts."""
    cache = Path(_hub_cache_dir() or _default_hub_cache())
    repo_dir = cache / ("models--" + src.repo_id.replace("/", "--"))
    blob = repo_dir / "blobs" / sha
    snap = repo_dir / "snapshots" / src.revision / src.filename
    tmp: str | None = None
    try:
        blob.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{sha[:16]}.", suffix=".incomplete", dir=blob.parent)
        with os.fdopen(fd, "wb") as out, open(path, "rb") as inp:
            shutil.copyfileobj(inp, out, _CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, blob)
        tmp = None
        snap.parent.mkdir(parents=True, exist_ok=True)
        link = snap.with_name(f".{snap.name}.{os.getpid()}.link")
        link.unlink(missing_ok=True)
        try:
            link.symlink_to(os.path.relpath(blob, snap.parent))
        except (OSError, NotImplementedError):  # no symlinks (some Windows setups): the hub copies, so do we
            shutil.copyfile(blob, link)
        os.replace(link, snap)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write to the Hugging Face cache {cache}: {exc.strerror or exc}") from None
    return snap


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
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"cannot read weights {path}: corrupt or not a PyTorch file ({first})") from None
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
