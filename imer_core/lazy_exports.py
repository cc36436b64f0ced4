"""Lazy package attributes (PEP 562): a package names what it exports, the submodule loads on first access.

Keeps ``import imer_core`` and ``import imer_core.features`` light: torch,
MediaPipe and the other heavy modules load only when a name that needs them
is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any


def lazy_attributes(package: str, exports: Mapping[str, str], namespace: MutableMapping[str, Any],
                    public: Iterable[str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return a package's ``__getattr__`` and ``__dir__``.

    ``exports`` maps each exported name to the submodule (relative to
    ``package``) that defines it; a loaded value is cached in ``namespace``
    (the package's ``globals()``) so the lookup runs once per name.
    """
    public_names = set(public)

    def module_getattr(name: str) -> Any:
        module_name = exports.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module_name}"), name)
        namespace[name] = value
        return value

    def module_dir() -> list[str]:
        return sorted(set(namespace) | public_names)

    return module_getattr, module_dir
