"""Where the runtime assets are: the face model, the live checkpoints, the demo clip, notices.

The assets live in the source tree's ``assets/`` folder, which a wheel
installs as the package ``imer_assets`` (package data, found with
:mod:`importlib.resources`).  One override: the environment variable
``IMER_ASSETS`` names a folder laid out the same way (``face_landmarker.task``,
``models/live_<method>.pt``, ``demo/demo_clip.mp4``, ``MODEL_CARD.md``,
``NOTICE-*.md``) that replaces the shipped one for everything.

Order: ``$IMER_ASSETS``, then the ``assets/`` folder of a source checkout this
module belongs to (so a working tree always uses its own files, even when
another copy of IMER is installed), then the installed ``imer_assets`` package.
Importing this module imports nothing heavy.
"""

from __future__ import annotations

import os
from pathlib import Path

ASSETS_ENV = "IMER_ASSETS"
ASSETS_PACKAGE = "imer_assets"
_SOURCE_ROOT = Path(__file__).resolve().parents[1]


class AssetsNotFound(FileNotFoundError):
    """Neither ``$IMER_ASSETS``, a source checkout nor the ``imer_assets`` package provides the assets."""


def source_assets_dir() -> Path | None:
    """``<checkout>/assets`` when this module runs from a source checkout (``None`` in an installed copy)."""
    folder = _SOURCE_ROOT / "assets"
    if (_SOURCE_ROOT / "pyproject.toml").is_file() and folder.is_dir():
        return folder
    return None


def packaged_assets_dir() -> Path | None:
    """Folder of the installed ``imer_assets`` package (``None`` when it is not installed)."""
    from importlib import resources

    try:
        root = resources.files(ASSETS_PACKAGE)
    except ModuleNotFoundError:
        return None
    path = Path(str(root))
    return path if path.is_dir() else None


def assets_dir() -> Path:
    """The assets folder in use: ``$IMER_ASSETS``, a source checkout's ``assets/``, or the installed package.

    Never fails: when nothing is found it returns the checkout path, whose
    missing files then produce the usual "not found" messages.
    """
    env = os.environ.get(ASSETS_ENV)
    if env:
        return Path(env).expanduser()
    return source_assets_dir() or packaged_assets_dir() or _SOURCE_ROOT / "assets"


def asset_path(*parts: str) -> Path:
    """A file under :func:`assets_dir`, e.g. ``asset_path("demo", "demo_clip.mp4")`` (may not exist)."""
    return assets_dir().joinpath(*parts)


def demo_clip_path() -> Path:
    """The shipped demo clip (``demo/demo_clip.mp4``)."""
    return asset_path("demo", "demo_clip.mp4")


def licence_path() -> Path:
    """The project's licence: the checkout's ``LICENSE``, else the one installed with the distribution."""
    source = _SOURCE_ROOT / "LICENSE"
    if source.is_file():
        return source
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        files = distribution("imer").files or []
    except PackageNotFoundError:
        return source
    for file in files:
        if file.name in ("LICENSE", "LICENSE.txt"):
            return Path(str(file.locate()))
    return source
