"""The IMER desktop app (PySide6 window) and the ``imer`` command (window, ``imer run``, ``imer analyze``).

Built on :mod:`imer_core` (the live pipeline, the analysis); nothing here is
imported by the library or the training code.  See ``docs/architecture.md``.
"""
