"""The Hugging Face side of weights: cache layout, ``hf_hub_download`` against the endpoint, and
the by-hand advice that error messages give when the Hub cannot help."""

from __future__ import annotations

import importlib.resources
import inspect
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scenestyle.errors import OutputError, WeightsUnavailable
from scenestyle.weights.files import CHUNK, new_file_mode
from scenestyle.weights.lock import HubSource, WeightsEntry

# (description, bytes done, bytes total or None); called from the download thread.
ProgressCallback = Callable[[str, int, "int | None"], None]

# `weights add` files an entry that the Hub does not pin at a commit (dncnn-25 is on GitHub only)
# under this made-up repo, in the same cache layout, so the cache stays the one place to look.
_ADDED_ORG = "scenestyle-added"
_COMMIT = re.compile(r"[0-9a-f]{40}")


def hub_cache_dir() -> str | None:
    """The cache folder the environment asks for; None means huggingface_hub's own default."""
    # Read at call time, not at huggingface_hub import, so a changed environment is honoured.
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    return None


def default_hub_cache() -> str:
    """huggingface_hub's default cache folder."""
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def env_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` turns downloads off."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def bundled_path(entry: WeightsEntry) -> Path | None:
    """The entry's file shipped inside the package, if it has one and it is there."""
    if entry.bundled is None:
        return None
    res = importlib.resources.files("scenestyle").joinpath(entry.bundled)
    path = Path(str(res))
    return path if path.is_file() else None


def cached_hub_file(src: HubSource) -> Path | None:
    """The file for ``src`` in the Hugging Face cache, if it is there."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(src.repo_id, src.filename, cache_dir=hub_cache_dir(), revision=src.revision)
    return Path(found) if isinstance(found, str) and os.path.isfile(found) else None


def _added_source(entry: WeightsEntry) -> HubSource:
    """Where ``weights add`` puts an entry without a Hub source at a commit: a pseudo repo whose
    "commit" is the file's sha256 prefix (so another file for the name can never be mistaken for it)."""
    url_name = entry.urls[0].rsplit("/", 1)[-1] if entry.urls else ""
    suffix = ".safetensors" if entry.format == "safetensors" else ".pth"
    return HubSource(f"{_ADDED_ORG}/{entry.name}", url_name or f"{entry.name}{suffix}", entry.sha256[:40])


def add_target(entry: WeightsEntry) -> HubSource:
    """Where ``weights add`` files the entry's file in the cache."""
    # A Hub source pinned at a commit is filed exactly where `hf_hub_download` would put it; a
    # branch revision cannot be (its commit is unknown offline), so it goes to the pseudo repo.
    if entry.hf is not None and _COMMIT.fullmatch(entry.hf.revision):
        return entry.hf
    return _added_source(entry)


def cached_entry_file(entry: WeightsEntry) -> Path | None:
    """The entry's file in the Hugging Face cache: downloaded from the Hub or filed by ``weights add``."""
    found = cached_hub_file(entry.hf) if entry.hf is not None else None
    return found or cached_hub_file(_added_source(entry))


def how_to_get(entry: WeightsEntry | None, what: str | None = None) -> str:
    """The by-hand way to get a file, for error messages: the official URL and the two ways to use it."""
    if entry is not None and entry.urls:
        where = " or ".join(entry.urls)
    elif entry is not None and entry.hf is not None:
        where = hub_file_url(entry.hf)
    else:
        where = what or "the file"
    return f"download {where} by hand, then pass --weights FILE or register it once with `scenestyle weights add FILE`"


def hub_file_url(src: HubSource) -> str:
    """The https URL of ``src`` at the configured endpoint."""
    endpoint = (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    return f"{endpoint}/{src.repo_id}/resolve/{src.revision}/{src.filename}"


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
        raise WeightsUnavailable(
            f"cannot reach the Hugging Face Hub at {host} ({reason}) to download {what}; {how_to_get(entry, hub_file_url(src))}"
        ) from None


def download(src: HubSource, what: str, progress: ProgressCallback | None, entry: WeightsEntry | None = None) -> Path:
    """Fetch ``src`` into the Hugging Face cache (unverified); ``progress`` gets the byte counts."""
    from huggingface_hub import hf_hub_download

    _probe(src, what, entry)
    kwargs: dict[str, Any] = dict(
        repo_id=src.repo_id,
        filename=src.filename,
        revision=src.revision,
        cache_dir=hub_cache_dir(),
        endpoint=os.environ.get("HF_ENDPOINT") or None,
    )
    if "tqdm_class" in inspect.signature(hf_hub_download).parameters:  # huggingface_hub >= 1.0
        kwargs["tqdm_class"] = _bar_class(progress, what)
    try:
        return Path(hf_hub_download(**kwargs))
    except Exception as exc:  # the hub raises many types (HTTP, network, OS); all mean "not downloaded"
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise WeightsUnavailable(
            f"could not download {what} from {src.uri}: {type(exc).__name__}: {detail}; {how_to_get(entry, hub_file_url(src))}"
        ) from exc


def place_in_cache(path: Path, src: HubSource, sha: str) -> Path:
    """Copy ``path`` into the cache layout of huggingface_hub: ``blobs/<sha256>`` (an LFS file's etag
    is its sha256) and ``snapshots/<revision>/<filename>`` linking to it; both renamed into place,
    so an interrupted add leaves no half file under a name the cache lookup trusts."""
    cache = Path(hub_cache_dir() or default_hub_cache())
    repo_dir = cache / ("models--" + src.repo_id.replace("/", "--"))
    blob = repo_dir / "blobs" / sha
    snap = repo_dir / "snapshots" / src.revision / src.filename
    tmp: str | None = None
    try:
        blob.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{sha[:16]}.", suffix=".incomplete", dir=blob.parent)
        with os.fdopen(fd, "wb") as out, open(path, "rb") as inp:
            shutil.copyfileobj(inp, out, CHUNK)
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
