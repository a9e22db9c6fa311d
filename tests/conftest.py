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


def _shared_candidates() -> list[Path]:
    env = os.environ.get("SCENESTYLE_SHARED")
    paths = [Path(env)] if env else []
    return paths + [REPO.parent / "shared", REPO / "shared", Path("/work/shared")]


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only shared/ folder (``$SCENESTYLE_SHARED``, else ``../shared`` beside the
    checkout, else ``/work/shared``); the test is skipped when none exists."""
    for path in _shared_candidates():
        if (path / "README.md").is_file():
            return path
    pytest.skip("shared/ folder not found (set SCENESTYLE_SHARED or put it beside the checkout)")
