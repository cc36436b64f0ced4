"""Registry of recovery methods by name.

Methods register themselves with :func:`register_method`; users and the app
pick them with :func:`create_model` / :func:`available_methods`.
"""

from __future__ import annotations

import importlib
from typing import TypeVar

from .config import ModelConfig
from .methods.base import RecoveryModel

_METHODS: dict[str, type[RecoveryModel]] = {}
# Modules imported on first use so that registering stays lazy and import-light.
_BUILTIN_MODULES = ("imer_core.methods.imder", "imer_core.methods.cmarr", "imer_core.methods.rohydr",
                    "imer_core.methods.regression")

ModelT = TypeVar("ModelT", bound=type[RecoveryModel])


def register_method(cls: ModelT) -> ModelT:
    """Class decorator that registers a :class:`RecoveryModel` subclass under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} must define a non-empty `name`")
    existing = _METHODS.get(cls.name)
    if existing is not None and existing is not cls:
        raise ValueError(f"recovery method {cls.name!r} is already registered by {existing.__name__}")
    _METHODS[cls.name] = cls
    return cls


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


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


def default_options(name: str) -> dict:
    """The method's default options as a plain dict."""
    from dataclasses import asdict

    return asdict(get_method_class(name).options_class())

