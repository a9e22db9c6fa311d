"""The CycleGAN authors' style generators (style_monet/cezanne/vangogh/ukiyoe) fetched from a Hub mirror.

The lock can only pin a mirror whose LFS pointer was seen to carry the file's sha256 (issue 13). These
tests check the path such an entry takes, with no network: a loopback Hub (reused from test_weights)
serves a ResNet-9 state dict of the official layout (random weights, saved with torch.save), and the
entry's sha256 is set to that file's hash. An entry already in weights.lock is used as it stands
apart from its sha256/size; a name not (yet) pinned is exercised through the same entry, built here.
"""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_weights import COMMIT, fake_hub, hub_cache, sha  # noqa: F401 (fixtures reused)
from typer.testing import CliRunner

from scenestyle import weights as w
from scenestyle.cli import app
from scenestyle.errors import WeightsError
from scenestyle.weights import lock as wlock

# lock name -> (--style value, official file stem); official downloads are
# http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/<stem>.pth
STYLES = {
    "style-monet": ("monet", "style_monet"),
    "style-cezanne": ("cezanne", "style_cezanne"),
    "style-vangogh": ("vangogh", "style_vangogh"),
    "style-cyclegan-ukiyoe": ("cyclegan-ukiyoe", "style_ukiyoe"),
}
# The official generators: ResNet-9, ngf 64, instance norm, no dropout (upstream `--no_dropout`).
KWARGS = dict(input_nc=3, output_nc=3, ngf=64, norm="instance", n_blocks=9)
MIRROR = "test-mirror/cyclegan-styles"  # only for names the lock does not pin

runner = CliRunner()


def _official_layout_bytes(seed: int) -> bytes:
    """A ResNet-9 state dict keyed like upstream's, plus the InstanceNorm running stats that
    checkpoints saved by old PyTorch carry (and upstream's loader drops)."""
    from scenestyle.nn import build

    torch.manual_seed(seed)
    net = build("ResnetGenerator", **KWARGS)
    sd = dict(net.state_dict())
    for name, m in net.named_modules():
        if isinstance(m, torch.nn.InstanceNorm2d):
            sd[f"{name}.running_mean"] = torch.zeros(m.num_features)
            sd[f"{name}.running_var"] = torch.ones(m.num_features)
    buf = io.BytesIO()
    torch.save(sd, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def official_like() -> bytes:
    return _official_layout_bytes(0)


def _entry(name: str, data: bytes, tmp_path: Path) -> w.WeightsEntry:
    """The lock entry for ``name`` with its sha256/size set to ``data``'s (built if not pinned)."""
    real = w.load_lock().get(name)
    if real is not None:
        return dataclasses.replace(real, sha256=sha(data), size=len(data))
    stem = STYLES[name][1]
    kwargs = ", ".join(f"{k} = {v!r}".replace("'", '"') for k, v in KWARGS.items())
    toml = tmp_path / f"{name}.lock"
    toml.write_text(
        f'[models.{name}]\ntask = "style"\narch = "ResnetGenerator"\nkwargs = {{ {kwargs} }}\n'
        f'sha256 = "{sha(data)}"\nsize = {len(data)}\nlicence = "BSD-2-Clause"\nformat = "pth"\n'
        f'[models.{name}.hf]\nrepo_id = "{MIRROR}"\nfilename = "{stem}.pth"\nrevision = "{COMMIT}"\n',
        encoding="utf-8",
    )
    return w.load_lock(toml)[name]


@pytest.fixture
def with_entry(monkeypatch, tmp_path):
    """Put the entry into the default lock (what the CLI reads) and return it."""

    def put(name: str, data: bytes) -> w.WeightsEntry:
        entry = _entry(name, data, tmp_path)
        monkeypatch.setattr(wlock, "_default_lock", {**w.load_lock(), name: entry})
        return entry

    return put


def _serve(fake_hub, entry: w.WeightsEntry, data: bytes):  # noqa: F811
    hub = fake_hub({(entry.hf.repo_id, entry.hf.filename): data})
    hub.commit = entry.hf.revision  # the Hub answers with the pinned commit
    return hub


def _photo(path: Path, size=(52, 44)) -> Path:
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
    rgb = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1) % 256
    Image.fromarray(rgb.astype(np.uint8), "RGB").save(path)
    return path


# ------------------------------------------------------------------------------ download and verify


@pytest.mark.parametrize("name", sorted(STYLES))
def test_first_use_downloads_into_the_hub_cache_and_verifies(name, fake_hub, hub_cache, with_entry, official_like):  # noqa: F811
    entry = with_entry(name, official_like)
    hub = _serve(fake_hub, entry, official_like)

    rw = w.resolve(name, task="style")
    assert rw.source == "download" and rw.entry == entry and rw.sha256 == sha(official_like)
    repo_dir = hub_cache / ("models--" + entry.hf.repo_id.replace("/", "--"))
    assert rw.path == repo_dir / "snapshots" / entry.hf.revision / entry.hf.filename
    assert rw.path.is_symlink() and rw.path.resolve() == repo_dir / "blobs" / sha(official_like)
    assert any(m == "GET" for m, _ in hub.requests)

    n = len(hub.requests)
    again = w.resolve(name, task="style", offline=True)  # second use: the cache, no network
    assert (again.path, again.source) == (rw.path, "cache") and len(hub.requests) == n
    assert w.verify([name]) == [(name, "ok")]


def test_official_layout_loads_strictly_as_resnet9(fake_hub, hub_cache, with_entry, official_like):  # noqa: F811
    from scenestyle.loading import load_model

    entry = with_entry("style-monet", official_like)
    _serve(fake_hub, entry, official_like)
    loaded = load_model("style-monet", task="style")
    assert loaded.arch == "ResnetGenerator" and loaded.task == "style"
    assert (loaded.module.ngf, len([m for m in loaded.module.model if type(m).__name__ == "ResnetBlock"])) == (64, 9)
    expected = torch.load(io.BytesIO(official_like), weights_only=True)
    got = loaded.module.state_dict()
    assert set(got) == {k for k in expected if not k.endswith(("running_mean", "running_var"))}
    assert all(torch.equal(got[k], expected[k]) for k in got)


def test_mirror_serving_other_bytes_is_refused(fake_hub, hub_cache, with_entry, official_like):  # noqa: F811
    entry = with_entry("style-monet", official_like)
    other = _official_layout_bytes(1)  # right layout, wrong bytes
    _serve(fake_hub, entry, other)
    with pytest.raises(WeightsError) as err:
        w.resolve("style-monet", task="style")
    msg = str(err.value)
    assert "not the pinned file" in msg and sha(other) in msg and entry.sha256 in msg and "\n" not in msg


# ------------------------------------------------------------------------------------ the CLI end to end


def test_stylize_style_monet_downloads_verifies_and_paints(fake_hub, hub_cache, with_entry, official_like, tmp_path):  # noqa: F811
    entry = with_entry("style-monet", official_like)
    hub = _serve(fake_hub, entry, official_like)
    src = _photo(tmp_path / "photo.png")

    r = runner.invoke(app, ["stylize", str(src), "-o", str(tmp_path / "out"), "--style", "monet", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    [out] = (tmp_path / "out").glob("photo_monet.*")
    im = Image.open(out)
    assert im.size == (52, 44) and im.mode == "RGB"
    assert not np.array_equal(np.asarray(im), np.asarray(Image.open(src)))
    assert (hub_cache / ("models--" + entry.hf.repo_id.replace("/", "--")) / "blobs" / sha(official_like)).is_file()
    assert any(m == "GET" for m, _ in hub.requests)

    n = len(hub.requests)  # second run: from the cache, offline
    r = runner.invoke(app, ["stylize", str(src), "-o", str(tmp_path / "out2"), "--style", "monet", "--offline"])
    assert r.exit_code == 0, r.output
    assert len(hub.requests) == n and list((tmp_path / "out2").glob("photo_monet.*"))


def test_stylize_refuses_wrong_bytes_with_one_line(fake_hub, hub_cache, with_entry, official_like, tmp_path):  # noqa: F811
    entry = with_entry("style-monet", official_like)
    _serve(fake_hub, entry, official_like[:-4096] + bytes(4096))  # same size, damaged tail
    src = _photo(tmp_path / "photo.png")

    r = runner.invoke(app, ["stylize", str(src), "-o", str(tmp_path / "out"), "--style", "monet"])
    assert r.exit_code == 3, r.output
    assert "not the pinned file" in r.stderr and "Traceback" not in r.output
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not list((tmp_path / "out").glob("photo_monet.*"))
