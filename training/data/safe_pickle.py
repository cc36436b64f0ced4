"""A restricted unpickler for the published MMSA feature pickles.

The MMSA files (``aligned_50.pkl`` / ``unaligned_50.pkl``) are Python pickles
by publication, and :func:`pickle.load` runs whatever callable a pickle names.
:func:`restricted_load` resolves only the globals those files contain: numpy
arrays, dtypes and scalars (under the module names numpy 1.x and 2.x write)
and ``_codecs.encode`` (protocol-2 byte strings).  Dicts, lists, tuples,
strings and numbers need no global at all.  Anything else raises
:class:`ForbiddenGlobalError` naming the refused global, before it is called.

Two further limits keep a hostile file from exhausting memory:

* every read of the unpickler is clamped to the bytes left in the file, so a
  protocol-4 ``FRAME`` declaring a terabyte reads what is there and fails as a
  truncated pickle instead of allocating the declared size.  (CPython's
  unpickler allocates the object of a ``BINBYTES8`` / ``BYTEARRAY8`` opcode
  before reading it: such a declaration costs address space but no memory
  until it is filled, and an allocation that fails is a ``MemoryError``, which
  the MMSA loader reports as a corrupt file);
* numpy's ``_reconstruct`` is only accepted with an empty shape (numpy always
  writes ``(0,)`` and sets the real shape from the data that follows, whose
  length numpy checks against the shape).
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Callable
from typing import IO, Any

import numpy as np

__all__ = ["ForbiddenGlobalError", "restricted_load", "BoundedReader", "ALLOWED_GLOBALS"]


class ForbiddenGlobalError(pickle.UnpicklingError):
    """The pickle names a global that the MMSA schema never contains."""

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name
        super().__init__(f"refused global {module}.{name}")


def _constructor(reduced: str | tuple[Any, ...]) -> Callable[..., Any]:
    """The callable of a ``__reduce__`` result (numpy's reductions are always tuples)."""
    if isinstance(reduced, str) or not callable(reduced[0]):
        raise TypeError(f"unexpected numpy reduction {reduced!r}")
    return reduced[0]


def _numpy_reconstruct() -> Callable[..., Any]:
    return _constructor(np.empty(0).__reduce__())


def _numpy_scalar() -> Callable[..., Any]:
    return _constructor(np.float32(0).__reduce__())


def _numpy_frombuffer() -> Callable[..., Any]:
    return _constructor(np.zeros(1, dtype=np.float32).__reduce_ex__(5))


def _checked_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct``, refusing a non-empty initial shape (numpy never writes one)."""
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"numpy _reconstruct of {subtype!r} refused (only numpy.ndarray)")
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    if not all(isinstance(d, int) and d >= 0 for d in dims) or int(np.prod(dims, dtype=np.float64)) != 0:
        raise pickle.UnpicklingError(f"numpy _reconstruct with initial shape {shape!r} refused "
                                     "(numpy writes (0,) and fills the array from its data)")
    return _numpy_reconstruct()(subtype, shape, dtype)


def _build_allowed() -> dict[tuple[str, str], Any]:
    import codecs

    allowed: dict[tuple[str, str], Any] = {("_codecs", "encode"): codecs.encode}
    scalar, frombuffer = _numpy_scalar(), _numpy_frombuffer()
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = _checked_reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = frombuffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    # numpy >= 1.25 pickles dtypes as instances of their DType classes, e.g.
    # numpy.dtypes.Float32DType; those classes construct nothing but dtypes.
    dtypes_module = getattr(np, "dtypes", None)
    if dtypes_module is not None:
        for name in dir(dtypes_module):
            value = getattr(dtypes_module, name)
            if isinstance(value, type) and issubclass(value, np.dtype):
                allowed[("numpy.dtypes", name)] = value
    return allowed


#: (module, name) -> object for every global the restricted unpickler resolves.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = _build_allowed()


class BoundedReader(io.RawIOBase):
    """A read-only view of a binary file whose reads never ask for more than is left.

    ``pickle`` allocates the size an opcode declares before reading; clamping
    every request to the remaining bytes bounds that allocation by the file size.
    """

    def __init__(self, handle: IO[bytes]) -> None:
        super().__init__()
        self._handle = handle
        self._size = os.fstat(handle.fileno()).st_size

    def readable(self) -> bool:
        return True

    def _left(self) -> int:
        return max(0, self._size - self._handle.tell())

    def read(self, size: int | None = -1) -> bytes:
        left = self._left()
        return self._handle.read(left if size is None or size < 0 else min(size, left))

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[:len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        left = self._left()
        return self._handle.readline(left if size is None or size < 0 else min(size, left))


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise ForbiddenGlobalError(module, name) from None


class _TrustingUnpickler(pickle.Unpickler):
    pass


def restricted_load(handle: IO[bytes], *, trust: bool = False) -> Any:
    """Unpickle ``handle`` (an open binary file) allowing only :data:`ALLOWED_GLOBALS`.

    With ``trust`` every global is resolved as :func:`pickle.load` would
    (the file can then run code); reads stay bounded by the file size either way.

    Raises:
        ForbiddenGlobalError: the pickle names a global outside the allow-list.
        pickle.UnpicklingError, EOFError, ValueError, ...: as :func:`pickle.load`.
    """
    unpickler_class = _TrustingUnpickler if trust else _RestrictedUnpickler
    return unpickler_class(BoundedReader(handle)).load()
