"""Which files count as images, and finding them in a folder: one list for batch runs, eval and training."""

from __future__ import annotations

from pathlib import Path

from scenestyle.errors import UsageError

# Extensions every reader here decodes (``imaging.read_picture`` and the trainers' Pillow reads).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif")


def list_images(folder: str | Path, what: str, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (and its subfolders when ``recursive``), sorted by path.

    ``what`` names the folder in the ``UsageError`` raised when it is missing or holds no images.
    """
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"{what} folder {root} does not exist or is not a folder")
    found = root.rglob("*") if recursive else root.iterdir()
    files = sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise UsageError(f"{what} folder {root} has no images ({', '.join(IMAGE_SUFFIXES)})")
    return files
