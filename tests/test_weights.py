"""scenestyle.weights: resolving names, paths and hf:// URIs, the Hub cache layout, a loopback Hub.

Everything runs offline against real huggingface_hub code: a fake cache in tmp, or a tiny HTTP
server on 127.0.0.1 that speaks the part of the Hub file API that ``hf_hub_download`` uses.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import threading
from pathlib import Path

import pytest
import torch

from scenestyle import weights as w
from scenestyle.errors import UsageError, WeightsError
from scenestyle.weights import files, resolver

COMMIT = "0123456789abcdef0123456789abcdef01234567"
TINY = b"scenestyle tiny weights file\n" * 7


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_lock(
    tmp_path: Path, data: bytes = TINY, *, revision: str = COMMIT, repo: str = "org/tiny", filename: str = "sub/tiny.pth"
) -> Path:
    p = tmp_path / "weights.lock"
    p.write_text(
        f"""
[models.tiny]
task = "denoise"
arch = "DnCNN"
kwargs = {{ in_nc = 1 }}
sha256 = "{sha(data)}"
size = {len(data)}
licence = "MIT"
format = "pth"
[models.tiny.hf]
repo_id = "{repo}"
filename = "{filename}"
revision = "{revision}"

[models.other]
task = "upscale"
arch = "RRDBNet"
sha256 = "{"ab" * 32}"
licence = "MIT"
format = "pth"
urls = ["https://example.org/other.pth"]
""",
        encoding="utf-8",
    )
    return p


def put_in_cache(cache: Path, repo_id: str, filename: str, data: bytes, *, commit: str = COMMIT, ref: str | None = "main") -> Path:
    """Lay a file out the way huggingface_hub does: blobs/<etag>, snapshots/<commit>/<file> → blob, refs/<ref>."""
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    blob = repo_dir / "blobs" / sha(data)
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    snap = repo_dir / "snapshots" / commit / filename
    snap.parent.mkdir(parents=True, exist_ok=True)
    snap.symlink_to(os.path.relpath(blob, snap.parent))
    if ref:
        (repo_dir / "refs").mkdir(exist_ok=True)
        (repo_dir / "refs" / ref).write_text(commit)
    return snap


def point_hub_at(monkeypatch, url: str) -> None:
    """Send huggingface_hub to ``url`` (a loopback endpoint), bypassing proxies and offline mode."""
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)  # the hub reads this once, at import
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return cache


# ---------------------------------------------------------------------------- resolve: specs and cache


def test_unknown_name_lists_valid_names_filtered_by_task(tmp_path):
    lock = write_lock(tmp_path)
    with pytest.raises(UsageError) as err:
        w.resolve("nope", lock=lock, offline=True)
    assert "tiny" in str(err.value) and "other" in str(err.value)
    with pytest.raises(UsageError) as err:
        w.resolve("nope", lock=lock, offline=True, task="upscale")
    assert "other" in str(err.value) and "tiny" not in str(err.value)
    with pytest.raises(UsageError, match="for the denoise task, not upscale"):
        w.resolve("tiny", lock=lock, offline=True, task="upscale")


def test_resolve_offline_from_cache_by_commit(hub_cache, tmp_path):
    lock = write_lock(tmp_path)
    snap = put_in_cache(hub_cache, "org/tiny", "sub/tiny.pth", TINY, ref=None)
    rw = w.resolve("tiny", lock=lock, offline=True)
    assert rw.path == snap and rw.source == "cache"
    assert rw.entry.name == "tiny" and rw.sha256 == sha(TINY)
    assert w.cache_path("tiny", lock=lock) == snap


def test_hf_home_is_honoured_when_hf_hub_cache_is_unset(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    snap = put_in_cache(tmp_path / "hfhome" / "hub", "org/tiny", "sub/tiny.pth", TINY)
    assert w.resolve("tiny", lock=write_lock(tmp_path), offline=True).path == snap


def test_resolve_offline_from_cache_through_refs_main(hub_cache, tmp_path):
    lock = write_lock(tmp_path, revision="main")
    snap = put_in_cache(hub_cache, "org/tiny", "sub/tiny.pth", TINY, ref="main")
    assert w.resolve("tiny", lock=lock, offline=True).path == snap


def test_second_resolve_does_not_rehash(hub_cache, tmp_path, monkeypatch):
    lock = write_lock(tmp_path)
    put_in_cache(hub_cache, "org/tiny", "sub/tiny.pth", TINY)
    calls = []
    real = hashlib.sha256

    class Spy:
        @staticmethod
        def sha256(*a):
            calls.append(1)
            return real(*a)

    monkeypatch.setattr(files, "hashlib", Spy)
    w.resolve("tiny", lock=lock, offline=True)
    w.resolve("tiny", lock=lock, offline=True)
    assert len(calls) == 1


def test_tampered_cache_file_is_refused(hub_cache, tmp_path):
    lock = write_lock(tmp_path)
    snap = put_in_cache(hub_cache, "org/tiny", "sub/tiny.pth", TINY)
    w.resolve("tiny", lock=lock, offline=True)  # fills the hash memo with the good digest
    blob = snap.resolve()
    data = bytearray(TINY)
    data[5] ^= 1
    blob.write_bytes(bytes(data))
    st = blob.stat()
    os.utime(blob, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # the memo keys on mtime
    with pytest.raises(WeightsError) as err:
        w.resolve("tiny", lock=lock, offline=True)
    msg = str(err.value)
    assert sha(bytes(data)) in msg and sha(TINY) in msg and str(snap) in msg
    assert "scenestyle weights pull tiny" in msg and "\n" not in msg
    assert w.verify(["tiny"], lock=lock)[0][1].startswith("mismatch: ")


def test_offline_with_empty_cache_names_pull(hub_cache, tmp_path):
    lock = write_lock(tmp_path)
    with pytest.raises(WeightsError, match="scenestyle weights pull tiny"):
        w.resolve("tiny", lock=lock, offline=True)
    assert w.verify(lock=lock) == [("other", "missing"), ("tiny", "missing")]
    assert w.cache_path("tiny", lock=lock) is None


def test_env_hf_hub_offline_blocks_downloads(hub_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # would fail loudly if contacted
    with pytest.raises(WeightsError, match="downloads are off"):
        w.resolve("tiny", lock=write_lock(tmp_path), offline=False)


def test_entry_without_hub_source_says_where_to_get_it(hub_cache, tmp_path):
    with pytest.raises(WeightsError, match="https://example.org/other.pth"):
        w.resolve("other", lock=write_lock(tmp_path), offline=True)


def test_bundled_file_comes_first(hub_cache, tmp_path, monkeypatch):
    lock = write_lock(tmp_path)
    put_in_cache(hub_cache, "org/tiny", "sub/tiny.pth", TINY)
    bundled = tmp_path / "bundled.pth"
    bundled.write_bytes(TINY)
    monkeypatch.setattr(resolver, "bundled_path", lambda entry: bundled)
    rw = w.resolve("tiny", lock=lock, offline=True)
    assert (rw.path, rw.source) == (bundled, "bundled")


def test_hf_uri_from_cache_attaches_entry_by_sha(hub_cache, tmp_path):
    lock = write_lock(tmp_path)
    snap = put_in_cache(hub_cache, "org/tiny", "sub/tiny.pth", TINY)
    rw = w.resolve("hf://org/tiny/sub/tiny.pth", lock=lock, offline=True)
    assert rw.path == snap and rw.entry.name == "tiny"
    assert w.resolve(f"hf://org/tiny/sub/tiny.pth@{COMMIT}", lock=lock, offline=True).path == snap
    with pytest.raises(WeightsError, match="not in the Hugging Face cache"):
        w.resolve("hf://org/tiny/missing.pth", lock=lock, offline=True)


@pytest.mark.parametrize("bad", ["hf://org/tiny", "hf://org//x.pth", "hf://org/tiny/x.pth@"])
def test_bad_hf_uri(bad):
    with pytest.raises(UsageError, match="hf://ORG/REPO/FILENAME"):
        w.parse_hf_uri(bad)


def test_local_path_specs(tmp_path):
    lock = write_lock(tmp_path)
    known = tmp_path / "renamed.pt"
    known.write_bytes(TINY)
    stranger = tmp_path / "mine.pth"
    stranger.write_bytes(b"other bytes")
    assert w.resolve(str(known), lock=lock).entry.name == "tiny"
    rw = w.resolve(str(stranger), lock=lock)
    assert rw.entry is None and rw.sha256 == sha(b"other bytes") and rw.name == "mine.pth"
    with pytest.raises(UsageError, match="does not exist"):
        w.resolve(str(tmp_path / "absent.pth"), lock=lock)
    bad_suffix = tmp_path / "weights.bin"
    bad_suffix.write_bytes(TINY)
    with pytest.raises(UsageError, match=r"\.safetensors"):
        w.resolve(str(bad_suffix), lock=lock)


def test_pull_checks_all_names_first(hub_cache, tmp_path):
    with pytest.raises(UsageError, match="'bogus'"):
        w.pull(["tiny", "bogus"], offline=True, lock=write_lock(tmp_path))


# ------------------------------------------------------------------------ a loopback Hugging Face Hub


class FakeHub:
    """Serves HEAD/GET /{repo_id}/resolve/{revision}/{filename} like the Hub does for a plain (non-Xet) file."""

    def __init__(self, files: dict[tuple[str, str], bytes], commit: str = COMMIT):
        self.files, self.commit, self.requests = files, commit, []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _reply(self, body: bool) -> None:
                hub.requests.append((self.command, self.path))
                m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", self.path.split("?")[0])
                data = hub.files.get((m.group(1), m.group(3))) if m else None
                if data is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("X-Error-Message", "Entry not found")
                    self.send_header("X-Repo-Commit", hub.commit)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Repo-Commit", hub.commit)
                self.send_header("ETag", f'"{sha(data)}"')  # LFS files: the etag is the sha256
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_HEAD(self):
                self._reply(body=False)

            def do_GET(self):
                self._reply(body=True)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def fake_hub(hub_cache, monkeypatch):
    hubs = []

    def start(files):
        hub = FakeHub(files)
        hubs.append(hub)
        point_hub_at(monkeypatch, hub.url)
        return hub

    yield start
    for hub in hubs:
        hub.close()


def test_download_from_loopback_hub_then_offline_from_cache(fake_hub, hub_cache, tmp_path):
    hub = fake_hub({("org/tiny", "sub/tiny.pth"): TINY})
    lock = write_lock(tmp_path, revision="main")
    seen = []
    rw = w.resolve("tiny", lock=lock, progress=lambda desc, done, total: seen.append((desc, done, total)))
    assert rw.source == "download" and rw.sha256 == sha(TINY)
    assert rw.path.read_bytes() == TINY
    assert hub_cache in rw.path.parents and f"snapshots/{COMMIT}" in rw.path.as_posix()
    assert seen and seen[-1] == ("tiny", len(TINY), len(TINY))
    assert any(m == "GET" for m, _ in hub.requests)

    n = len(hub.requests)
    again = w.resolve("tiny", lock=lock, offline=True)
    assert again.path == rw.path and again.source == "cache"
    assert len(hub.requests) == n
    assert w.verify(["tiny"], lock=lock) == [("tiny", "ok")]


def test_pull_downloads_by_hf_uri_and_name(fake_hub, hub_cache, tmp_path):
    fake_hub({("org/tiny", "sub/tiny.pth"): TINY})
    lock = write_lock(tmp_path)  # pinned to a commit
    (rw,) = w.pull(["tiny"], lock=lock)
    assert rw.entry.name == "tiny" and rw.path.read_bytes() == TINY
    by_uri = w.resolve(f"hf://org/tiny/sub/tiny.pth@{COMMIT}", lock=lock)
    assert by_uri.path == rw.path and by_uri.entry.name == "tiny"


def test_hub_serving_other_bytes_is_refused(fake_hub, hub_cache, tmp_path):
    fake_hub({("org/tiny", "sub/tiny.pth"): b"not the pinned bytes"})
    with pytest.raises(WeightsError) as err:
        w.resolve("tiny", lock=write_lock(tmp_path))
    assert "not the pinned file" in str(err.value) and sha(b"not the pinned bytes") in str(err.value)


def test_hub_missing_file_is_a_weights_error(fake_hub, hub_cache, tmp_path):
    fake_hub({})
    with pytest.raises(WeightsError, match="could not download tiny from hf://org/tiny/sub/tiny.pth"):
        w.resolve("tiny", lock=write_lock(tmp_path))
