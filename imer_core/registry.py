"""Registry of recovery methods by name.

Methods register themselves with :func:`register_method`; users and the app
pick them with :func:`create_model` / :func:`available_methods`.

Built-in methods are found without a hand-kept list: on first use every module
of the :mod:`imer_core.methods` package is imported (their ``@register_method``
decorators run), then every ``imer_core.methods`` entry point of the installed
distributions (a third-party method is one module plus its entry point).  A
method registered from any other code — a test, a notebook — is used the same
way once its class exists.

Each class describes itself (see :class:`~imer_core.methods.base.RecoveryModel`):
its display name and one-line summary (menus, tables), its fast sampler
(comparison tables) and its rank among live methods (the live engine's default
and the order of the app's menus).  :func:`method_title`,
:func:`method_summary`, :func:`preferred_methods` and :func:`live_methods` read
those descriptions for the app and the training tools.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any, TypeVar

from .config import ModelConfig
from .methods.base import RecoveryModel

log = logging.getLogger(__name__)

_METHODS: dict[str, type[RecoveryModel]] = {}
#: Entry-point group under which installed distributions may add recovery methods.
ENTRY_POINT_GROUP = "imer_core.methods"
_loaded = False

ModelT = TypeVar("ModelT", bound=type[RecoveryModel])


def register_method(cls: ModelT) -> ModelT:
    """Class decorator that registers a :class:`RecoveryModel` subclass under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} must define a non-empty `name`")
    if cls.name != cls.name.strip().lower():
        raise ValueError(f"method name {cls.name!r} must be lower case without surrounding spaces")
    existing = _METHODS.get(cls.name)
    if existing is not None and existing is not cls:
        raise ValueError(f"recovery method {cls.name!r} is already registered by {existing.__name__}")
    _METHODS[cls.name] = cls
    return cls


def unregister_method(name: str) -> None:
    """Remove a registered method (for code that registers one for a while, e.g. a test)."""
    _METHODS.pop(name.strip().lower(), None)


def _builtin_modules() -> list[str]:
    """Every module of the :mod:`imer_core.methods` package."""
    from . import methods

    return [f"{methods.__name__}.{info.name}" for info in pkgutil.iter_modules(methods.__path__)]


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    for module in _builtin_modules():
        importlib.import_module(module)
    _load_entry_points()
    _loaded = True


def _load_entry_points() -> None:
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()
        except Exception as exc:  # a broken plug-in must not take the built-in methods down
            log.warning("recovery-method plug-in %s (%s) failed to load: %s", entry.name, entry.value, exc)


def available_methods() -> list[str]:
    """Names of the registered recovery methods."""
    _load_builtins()
    return sorted(_METHODS)


def get_method_class(name: str) -> type[RecoveryModel]:
    """The class registered under ``name`` (case-insensitive)."""
    _load_builtins()
    key = name.strip().lower()
    if key not in _METHODS:
        raise KeyError(f"unknown recovery method {name!r}; available: {', '.join(sorted(_METHODS))}")
    return _METHODS[key]


def create_model(config: ModelConfig) -> RecoveryModel:
    """Instantiate the model described by ``config``."""
    return get_method_class(config.method)(config)


def default_options(name: str) -> dict[str, Any]:
    """The method's default options as a plain dict."""
    return asdict(get_method_class(name).options_class())


def _find(name: str | None) -> type[RecoveryModel] | None:
    if not name:
        return None
    _load_builtins()
    return _METHODS.get(name.strip().lower())


def method_title(name: str | None) -> str:
    """Display name of a method (``"IMDer"`` for ``"imder"``); an unregistered name is shown as is."""
    cls = _find(name)
    if cls is None:
        return name or "none"
    return cls.display_name or cls.name


def method_summary(name: str) -> str:
    """One line on what the method does (empty for an unregistered name)."""
    cls = _find(name)
    return cls.summary if cls is not None else ""


def live_methods() -> list[str]:
    """Methods offered to the live app, most preferred first (those with a ``live_rank``)."""
    _load_builtins()
    ranked = [cls for cls in _METHODS.values() if cls.live_rank is not None]
    return [cls.name for cls in sorted(ranked, key=lambda c: (c.live_rank, c.name))]


def preferred_methods(available: Iterable[str]) -> list[str]:
    """``available`` ordered by preference: live methods by rank, then the others in their given order."""
    names = list(dict.fromkeys(available))
    ranked = [m for m in live_methods() if m in names]
    return ranked + [m for m in names if m not in ranked]
