"""The IMER desktop app (PySide6) and the headless ``imer`` command.

The live pipeline and the window are built on :mod:`imer_core`; they arrive with
the live-pipeline and desktop-app issues. This package is empty until then.
"""
