"""Moved to :mod:`imer_core.features.text`; this alias keeps imports of the old path working."""

import sys

from .features import text as _text

sys.modules[__name__] = _text
