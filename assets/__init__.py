"""Runtime assets of IMER (face model, live checkpoints, demo clip, notices), installed as ``imer_assets``.

Nothing to import here: :mod:`imer_core.assets` finds the files (``$IMER_ASSETS`` overrides them).
"""
