#!/usr/bin/env python3
"""Regenerate the shipped demo clip ``assets/demo/demo_clip.mp4``.

Without arguments it writes the shipped clip (five sentences, 20 s, 640x480 @
30 fps); any arguments are passed to ``python -m training.demo_clip``
instead (``--help`` lists them).  Needs espeak-ng and PyAV.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from training.demo_clip import main  # noqa: E402

SHIPPED_ARGS = [str(REPO / "assets" / "demo" / "demo_clip.mp4"), "--duration", "20"]

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:] or SHIPPED_ARGS))
