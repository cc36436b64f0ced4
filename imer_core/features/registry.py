"""Registered feature extractors, and the one factory the live engine and ``imer analyze`` build them with.

Every extractor is registered under its :class:`~.base.ExtractorSpec` id with
a ``build(device=..., **options)`` function; one per modality is the default.
The built-in ones (MediaPipe face features, numpy voice features, MiniLM
sentence embeddings) are discovered on first use of this module's functions:
every module of :mod:`imer_core.features` with a module-level ``EXTRACTORS``
tuple of :class:`~.base.ExtractorEntry` is registered (no list to keep).  A
new extractor is one such module (or, outside this package, one call of
:func:`register_extractor`) plus a checkpoint trained on its features;
``imer run --extractor vision=<id>`` then runs it, and the engine checks every
checkpoint against it.

:func:`extractor_factories` is what both the live pipeline
(:meth:`imer_core.live.parts.PipelineParts.for_device`) and the analysis
(:class:`imer_core.analysis.features.Extractors`) call, so they always build
the same extractors.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..modalities import MODALITIES, Modality, as_modality
from .base import ExtractorEntry, ExtractorFactory, ExtractorSpec

#: Registered extractors by id (an entry's ``default`` flag is recorded in ``_DEFAULTS``).
_REGISTRY: dict[str, ExtractorEntry] = {}
_DEFAULTS: dict[Modality, str] = {}
_LOCK = threading.RLock()
_BUILTINS_DONE = False


def register_extractor(spec: ExtractorSpec, build: Callable[..., Any], *, default: bool = False,
                       replace: bool = False) -> None:
    """Register an extractor under ``spec.extractor_id``.

    Args:
        spec: what it produces.
        build: ``build(device="cpu", **options) -> extractor``; called lazily, in a worker thread.
            The vision options are ``color`` (``"bgr"``/``"rgb"``) and ``still_images``.
        default: make it the default extractor of its modality.
        replace: allow replacing an extractor already registered under that id.

    Raises:
        ValueError: the id is taken (and ``replace`` is false).
    """
    _register_builtins()
    with _LOCK:
        if spec.extractor_id in _REGISTRY and not replace:
            raise ValueError(f"an extractor {spec.extractor_id!r} is already registered")
        _REGISTRY[spec.extractor_id] = ExtractorEntry(spec, build)
        if default:
            _DEFAULTS[spec.modality] = spec.extractor_id


def unregister_extractor(extractor_id: str) -> None:
    """Remove a registered extractor (tests); a built-in default cannot be removed."""
    with _LOCK:
        if extractor_id in _DEFAULTS.values():
            raise ValueError(f"{extractor_id!r} is the default extractor of its modality")
        _REGISTRY.pop(extractor_id, None)


def available_extractors(modality: Modality | str | None = None) -> list[str]:
    """Ids of the registered extractors (of one modality)."""
    _register_builtins()
    wanted = None if modality is None else as_modality(modality)
    return sorted(i for i, e in _REGISTRY.items() if wanted is None or e.spec.modality is wanted)


def extractor_spec(extractor_id: str) -> ExtractorSpec:
    """The spec of a registered extractor (raises ``ValueError`` naming the known ones)."""
    return _entry(extractor_id).spec


def extractor_factory(extractor_id: str, device: str = "cpu") -> ExtractorFactory[Any]:
    """A factory of a registered extractor on ``device``."""
    entry = _entry(extractor_id)
    return ExtractorFactory(entry.spec, functools.partial(entry.build, device=device))


def extractor_factories(device: str = "cpu", choice: Mapping[Modality, str] | Mapping[str, str] | None = None
                        ) -> dict[Modality, ExtractorFactory[Any]]:
    """``{modality: factory}`` of the extractors to run: the defaults, or the ``choice`` ids.

    Raises:
        ValueError: an unknown id, or an id chosen for another modality than its own.
    """
    _register_builtins()
    ids = dict(_DEFAULTS)
    for modality, extractor_id in (choice or {}).items():
        modality = as_modality(modality)
        spec = extractor_spec(extractor_id)
        if spec.modality is not modality:
            raise ValueError(f"extractor {extractor_id!r} makes {spec.modality.value} features, "
                             f"not {modality.value} ones")
        ids[modality] = extractor_id
    return {m: extractor_factory(ids[m], device) for m in MODALITIES}


def default_extractor_specs() -> dict[Modality, ExtractorSpec]:
    """``{modality: spec}`` of the default extractors."""
    _register_builtins()
    return {m: _REGISTRY[_DEFAULTS[m]].spec for m in MODALITIES}


def parse_extractor_choice(text: str | None) -> dict[Modality, str]:
    """``"vision=<id>,audio=<id>"`` → ``{Modality.VISION: <id>, ...}`` (each id checked).

    Raises:
        ValueError: malformed text, unknown modality or id, or an id of another modality.
    """
    choice: dict[Modality, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, extractor_id = part.partition("=")
        if not sep or not extractor_id.strip():
            raise ValueError(f"expected MODALITY=EXTRACTOR, got {part.strip()!r}")
        choice[as_modality(name)] = extractor_id.strip()
    extractor_factories(choice=choice)  # checks ids and modalities
    return choice


def _entry(extractor_id: str) -> ExtractorEntry:
    _register_builtins()
    entry = _REGISTRY.get(extractor_id)
    if entry is None:
        raise ValueError(f"unknown feature extractor {extractor_id!r}; registered: "
                         f"{', '.join(sorted(_REGISTRY))}")
    return entry


def _register_builtins() -> None:
    """Register the ``EXTRACTORS`` of every module of this package (once)."""
    global _BUILTINS_DONE
    if _BUILTINS_DONE:
        return
    import importlib
    import pkgutil

    from .. import features

    with _LOCK:
        if _BUILTINS_DONE:
            return
        for info in sorted(pkgutil.iter_modules(features.__path__), key=lambda i: i.name):
            module = importlib.import_module(f"{features.__name__}.{info.name}")
            for entry in getattr(module, "EXTRACTORS", ()):
                _REGISTRY.setdefault(entry.spec.extractor_id, entry)
                if entry.default:
                    _DEFAULTS.setdefault(entry.spec.modality, entry.spec.extractor_id)
        missing = [m.value for m in MODALITIES if m not in _DEFAULTS]
        if missing:
            raise RuntimeError(f"no default feature extractor for {', '.join(missing)}")
        _BUILTINS_DONE = True
