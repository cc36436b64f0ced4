"""Registered kinds of capture source: what a ``--source`` value means and how it is opened.

A :class:`~imer_core.live.parts.SourceSpec` holds the user's ``source``
string; its :attr:`~imer_core.live.parts.SourceSpec.kind` is the first
registered :class:`SourceKind` whose :attr:`~SourceKind.matches` accepts it
(the media-file kind takes whatever no other kind claims).  The pipeline,
``imer run`` and the window only ask the kind — whether it is a live device,
why a value cannot be used, how to describe it and how to open it — so a new
kind (a network stream, a screen grab) is one module that calls
:func:`register_source_kind`, with no new branch in the app.

Built-in kinds: ``webcam`` (camera + microphone) and ``file`` (a media file,
played at its own pace, optionally looped).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .base import AudioSource, VideoSource

if TYPE_CHECKING:
    from ..parts import SourceSpec

WEBCAM = "webcam"


@dataclass(frozen=True)
class SourceKind:
    """One kind of capture source.

    Attributes:
        name: short name (``"webcam"``, ``"file"``).
        matches: ``matches(source) -> bool``: whether a ``--source`` value is of this kind.
        open: ``open(spec) -> (video, audio)``: build the two sources without opening a device
            or starting a thread (their ``start()`` does that); raises
            :class:`~imer_core.live.sources.base.SourceOpenError` when ``spec`` cannot be used
            (the pipeline's constructor, ``imer run`` and the window report it in one line).
        describe: ``describe(spec) -> str``: one line for status bars and logs.
        live: a live device (frames arrive in real time and never end) rather than a
            recording that plays, ends, may loop, and is held until the models have loaded.
        problem: ``problem(source) -> str``: why the value cannot be used (``""``: it can);
            checked before anything starts (``imer run`` exits with it).
    """

    name: str
    matches: Callable[[str], bool]
    open: Callable[[SourceSpec], tuple[VideoSource, AudioSource]]
    describe: Callable[[SourceSpec], str]
    live: bool = True
    problem: Callable[[str], str] | None = None

    def check(self, source: str) -> str:
        """:attr:`problem` of ``source`` (``""`` without a check)."""
        return self.problem(source) if self.problem is not None else ""


_KINDS: list[SourceKind] = []
_FALLBACK: list[SourceKind] = []
_LOCK = threading.Lock()


def register_source_kind(kind: SourceKind, *, fallback: bool = False) -> SourceKind:
    """Register ``kind`` (checked before those registered earlier); ``fallback``: the kind of any
    value no other kind matches (the media file)."""
    with _LOCK:
        if any(k.name == kind.name for k in (*_KINDS, *_FALLBACK)):
            raise ValueError(f"a source kind {kind.name!r} is already registered")
        if fallback:
            _FALLBACK[:] = [kind]
        else:
            _KINDS.insert(0, kind)
    return kind


def unregister_source_kind(name: str) -> None:
    """Remove a registered kind (tests)."""
    with _LOCK:
        _KINDS[:] = [k for k in _KINDS if k.name != name]


def source_kind(source: str) -> SourceKind:
    """The kind of a ``--source`` value."""
    with _LOCK:
        for kind in _KINDS:
            if kind.matches(source):
                return kind
        if _FALLBACK:
            return _FALLBACK[0]
    raise ValueError(f"no capture source kind accepts {source!r}")


def source_kinds() -> list[str]:
    """Names of the registered kinds."""
    with _LOCK:
        return [k.name for k in (*_KINDS, *_FALLBACK)]


# -- built-in kinds -----------------------------------------------------------------------
def _open_devices(spec: SourceSpec) -> tuple[VideoSource, AudioSource]:
    from .camera import CameraSource
    from .microphone import MicrophoneSource

    return (CameraSource(spec.camera, spec.width, spec.height, spec.fps),
            MicrophoneSource(device=spec.microphone))


def _describe_devices(spec: SourceSpec) -> str:
    mic = "default microphone" if spec.microphone is None else f"microphone {spec.microphone!r}"
    return f"camera {spec.camera} + {mic}"


def _open_file(spec: SourceSpec) -> tuple[VideoSource, AudioSource]:
    from .media import MediaFileSource

    media = MediaFileSource(spec.source, loop=spec.loop)
    return media.video, media.audio


def _describe_file(spec: SourceSpec) -> str:
    return f"file {Path(spec.source).name}" + (" (looping)" if spec.loop else "")


def media_problem(source: str) -> str:
    """Why ``source`` cannot be played as a media file (one line), or ``""``."""
    path = Path(source)
    if not path.exists():
        return f"source file not found: {path}"
    from .media import MediaOpenError, probe_media

    try:
        probe_media(path)
    except MediaOpenError as exc:
        return f"not an audio or video file: {path.name} ({exc})"
    return ""


WEBCAM_KIND = register_source_kind(SourceKind(WEBCAM, lambda s: s == WEBCAM, _open_devices, _describe_devices))
FILE_KIND = register_source_kind(SourceKind("file", lambda s: True, _open_file, _describe_file, live=False,
                                            problem=media_problem), fallback=True)
