"""Shared test fixtures: tiny kwargs for every registered architecture, and the shared/ folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Tiny constructor kwargs for every registered architecture name (tests fail on a missing one).
TINY: dict[str, dict] = {
    "ResnetGenerator": dict(ngf=4, n_blocks=2),
    "resnet_6blocks": dict(ngf=4),
    "resnet_9blocks": dict(ngf=4),
    "UnetGenerator": dict(num_downs=5, ngf=4),
    "unet_128": dict(ngf=2),
    "unet_256": dict(ngf=1),
    "NLayerDiscriminator": dict(ndf=4, n_layers=2),
    "PixelDiscriminator": dict(ndf=4),
    "RRDBNet": dict(num_feat=8, num_block=1, num_grow_ch=4),
    "SRVGGNetCompact": dict(num_feat=8, num_conv=3),
    "DnCNN": dict(nc=8, nb=5),
    "FFDNet": dict(in_nc=3, out_nc=3, nc=8, nb=3),
    "ffdnet_color": dict(nc=8, nb=3),
    "ffdnet_gray": dict(nc=8, nb=3),
    "CompactGenerator": dict(ngf=4, n_blocks=2),
    "compact_generator": dict(ngf=4, n_blocks=1),
    "VGGStyleDiscriminator": dict(num_feat=8, input_size=32),
    "UNetDiscriminatorSN": dict(num_feat=8),
    "InceptionV3FID": dict(num_classes=8),  # fixed 299x299 network: only the classifier shrinks
}


# shared/README.md opens with this line; it tells the data folder from any other "shared".
SHARED_TITLE = "# shared/: data and protocols for scenestyle"


def _shared_candidates() -> list[Path]:
    env = os.environ.get("SCENESTYLE_SHARED")
    # ../shared beside the checkout; a git worktree kept in a folder under the main checkout's
    # parent finds it one or more levels further up
    return ([Path(env)] if env else []) + [REPO / "shared"] + [up / "shared" for up in REPO.parents]


def _is_shared(path: Path) -> bool:
    readme = path / "README.md"
    return readme.is_file() and readme.read_text(encoding="utf-8").startswith(SHARED_TITLE)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only shared/ folder: ``$SCENESTYLE_SHARED``, else ``../shared`` beside the checkout
    (or beside a folder above it). Tests that need it fail when it is missing: CI always has it."""
    for path in _shared_candidates():
        if _is_shared(path):
            return path
    looked = ", ".join(str(p) for p in _shared_candidates())
    pytest.fail(f"shared/ folder not found (looked in {looked}); set SCENESTYLE_SHARED or put it beside the checkout")


@pytest.fixture(scope="session", autouse=True)
def _own_cache(tmp_path_factory):
    """scenestyle's cache (compiled OpenVINO models, FID features) in a folder of this test session,
    not the user's: tests start cold and leave nothing behind."""
    old = os.environ.get("SCENESTYLE_CACHE")
    os.environ["SCENESTYLE_CACHE"] = str(tmp_path_factory.mktemp("scenestyle-cache"))
    yield
    if old is None:
        os.environ.pop("SCENESTYLE_CACHE", None)
    else:
        os.environ["SCENESTYLE_CACHE"] = old
