"""Which files count as images: one list for batch runs, eval and training, each of them readable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scenestyle.errors import UsageError
from scenestyle.evaluate._common import read_u8
from scenestyle.image_files import IMAGE_SUFFIXES, list_images


def test_every_listed_suffix_is_read(tmp_path: Path) -> None:
    px = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3) * 3
    for suffix in IMAGE_SUFFIXES:
        path = tmp_path / f"x{suffix}"
        Image.fromarray(px).save(path, **({"quality": 95} if suffix in (".jpg", ".jpeg", ".webp") else {}))
        assert read_u8(path, "rgb").shape == (4, 5, 3), suffix


def test_folder_listing_flat_or_recursive(tmp_path: Path) -> None:
    for name in ("b.PNG", "a.gif", "notes.txt", "sub/c.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_images(tmp_path, "DIR")] == ["a.gif", "b.PNG"]
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path, "DIR", recursive=True)] == ["a.gif", "b.PNG", "sub/c.jpg"]


def test_missing_or_empty_folder_names_it_and_the_suffixes(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--photos folder .* does not exist"):
        list_images(tmp_path / "nope", "--photos")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UsageError, match=r"has no images \(\.png, .*\.gif\)"):
        list_images(tmp_path, "--photos", recursive=True)
