"""Missing-modality protocols by name: ``make_protocol("batch:0.3")`` and the other CLI specs.

The protocol classes live in :mod:`training.protocols` (missing rates, fixed
subsets) and :mod:`training.scenarios` (the six MMIN scenarios); this module
imports both, so neither imports the other.
"""

from __future__ import annotations

import math

from .protocols import BatchScheduleProtocol, FixedSubsetProtocol, MissingProtocol, PerSampleProtocol
from .scenarios import make_scenario_protocol

_SPEC_HELP = ('expected "batch:<MR>" (MR in 0.0..0.7, step 0.1), "sample:<MR>" (MR in [0, 2/3]) '
              '"subset:<letters>" (letters from l=text, a=audio, v=vision, e.g. "subset:la") '
              'or "scenario" (a random one of the six MMIN missing scenarios per sample)')


def make_protocol(spec: str, *, seed: int = 0) -> MissingProtocol:
    """Parse a CLI spec such as ``"batch:0.3"``, ``"sample:0.5"`` or ``"subset:la"``.

    ``seed`` fixes the evaluation masks of the random protocols.
    """
    kind, sep, value = str(spec).strip().partition(":")
    kind, value = kind.strip().lower(), value.strip().lower()
    if kind == "scenario":
        return make_scenario_protocol(spec, seed=seed)
    if not sep or not value:
        raise ValueError(f"invalid missing-modality protocol {spec!r}: {_SPEC_HELP}")
    if kind in ("batch", "sample"):
        try:
            rate = float(value)
        except ValueError:
            raise ValueError(f"invalid missing rate {value!r} in {spec!r}: {_SPEC_HELP}") from None
        if not math.isfinite(rate):
            raise ValueError(f"invalid missing rate {value!r} in {spec!r}: {_SPEC_HELP}")
        return BatchScheduleProtocol(rate, seed) if kind == "batch" else PerSampleProtocol(rate, seed)
    if kind == "subset":
        bad = sorted(set(value) - {"l", "a", "v"})
        if bad or len(set(value)) != len(value):
            raise ValueError(f"invalid modality subset {value!r} in {spec!r}: {_SPEC_HELP}")
        return FixedSubsetProtocol(value)
    raise ValueError(f"unknown protocol kind {kind!r} in {spec!r}: {_SPEC_HELP}")
