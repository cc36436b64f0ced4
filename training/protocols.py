"""Missing-modality protocols: which modalities each sample keeps.

Every protocol produces boolean availability masks of shape ``(B, 3)`` in the
canonical order of :data:`imer_core.modalities.MODALITIES` (text, audio,
vision); ``True`` means observed.  Every row keeps at least one modality.

The trainer asks for one training mask per batch with
:meth:`MissingProtocol.train_mask` and for the evaluation masks of a whole
split, in sequential (unshuffled) sample order, with
:meth:`MissingProtocol.eval_masks`.  Evaluation masks depend only on the
protocol's seed and the split name, so every evaluation of a split sees the
same pattern.

Missing rate follows the paper definition ``MR = sum_i N_i / (m * N)`` with
``m = 3`` modalities, ``N`` samples and ``N_i`` samples missing modality ``i``.
"""

from __future__ import annotations

import math
import warnings
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterable

import numpy as np

from imer_core.modalities import MODALITIES, Modality, as_modality, subset_name

N_MODALITIES = len(MODALITIES)
MAX_MISSING_RATE = 2.0 / 3.0  # every sample keeps at least one of three modalities

# IMDer's batch schedule (trains/singleTask/IMDER.py), indexed by MR = 0.1 ... 0.7:
# fraction of an epoch's batches with two modalities missing, then with one.
MISS_TWO: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)
MISS_ONE: tuple[float, ...] = (0.1, 0.2, 0.3, 0.2, 0.1, 0.0, 0.0)


def realised_missing_rate(masks: np.ndarray) -> float:
    """Fraction of missing entries of a ``(N, 3)`` availability mask (paper MR)."""
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 2 or masks.shape[1] != N_MODALITIES:
        raise ValueError(f"masks must have shape (N, {N_MODALITIES}), got {masks.shape}")
    return float((~masks).mean()) if masks.size else 0.0


def split_seed(seed: int, split: str) -> np.random.Generator:
    """Generator seeded by ``seed`` and a process-independent hash of ``split``."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(split.encode("utf-8"))])


class MissingProtocol(ABC):
    """A rule deciding which modalities are available, at training and at evaluation."""

    @property
    @abstractmethod
    def name(self) -> str:
        """Spec string that :func:`~training.protocol_spec.make_protocol` parses back into this protocol."""

    @property
    @abstractmethod
    def expected_missing_rate(self) -> float:
        """Missing rate (paper definition) this protocol realises in expectation."""

    @abstractmethod
    def train_mask(self, batch_index: int, n_batches: int, sample_indices: np.ndarray,
                   epoch: int, rng: np.random.Generator) -> np.ndarray:
        """Mask ``(B, 3)`` for training batch ``batch_index`` of ``n_batches`` in ``epoch``.

        ``sample_indices`` are the dataset indices of the batch (``B`` rows);
        ``rng`` is the trainer's generator (seeded by the run seed), used for
        all random draws so that training is reproducible.
        """

    @abstractmethod
    def eval_masks(self, n_samples: int, batch_size: int, split: str) -> np.ndarray:
        """Deterministic masks ``(n_samples, 3)`` for sequential evaluation of ``split``."""

    def eval_passes(self, n_samples: int, batch_size: int, split: str) -> list[np.ndarray]:
        """The evaluation passes over ``split``: one ``(n_samples, 3)`` mask array per pass.

        Metrics pool the predictions of every pass.  The default is one pass with
        :meth:`eval_masks`; the MMIN scenario protocol evaluates every utterance
        under each of its six scenarios (six passes).
        """
        return [self.eval_masks(n_samples, batch_size, split)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class BatchScheduleProtocol(MissingProtocol):
    """IMDer's own batch-level schedule.

    Within an epoch, batches are counted in order.  With ``D = round(n_batches
    / 10) * 10`` (``np.round``, i.e. half to even), batch ``b`` loses two
    modalities while ``b_two / D < MISS_TWO[MR]`` (``b_two`` = two-missing
    batches so far), otherwise one modality while ``b_one / D < MISS_ONE[MR]``,
    otherwise none; the kept modality (or the missing one) is drawn uniformly
    per batch and applies to all rows of the batch.

    Differences from the reference code, all deliberate:

    * The reference indexes the lists with ``int(mr * 10 - 1)``, so MR = 0
      reads index -1 and *every* batch loses two modalities.  Here MR = 0
      means nothing is missing.
    * For loaders with at most 5 batches ``D`` is 0; in the reference the
      numpy divisions then give NaN / inf and nothing (or everything) goes
      missing.  Here ``D = n_batches`` is used instead.
    * MR must be one of 0.0, 0.1, ..., 0.7 (the reference silently truncates
      other values).
    * Evaluation uses sequential batches; which batches get which status is
      permuted with a generator seeded by ``seed`` and the split name (the
      reference shuffles its evaluation loaders), so results are deterministic.

    ``expected_missing_rate`` is ``(2 * MISS_TWO + MISS_ONE) / 3``: it equals
    the nominal MR for 0.1 ... 0.6, but MR = 0.7 realises only 2/3 (all batches
    missing two modalities).
    """

    def __init__(self, missing_rate: float, seed: int = 0) -> None:
        """``missing_rate`` in {0.0, 0.1, ..., 0.7}; ``seed`` fixes evaluation masks."""
        level = round(float(missing_rate) * 10)
        if not 0 <= level <= len(MISS_TWO) or abs(float(missing_rate) * 10 - level) > 1e-6:
            raise ValueError(f"batch schedule missing rate must be one of 0.0, 0.1, ..., 0.7, "
                             f"got {missing_rate!r}")
        self.missing_rate = level / 10.0
        self.seed = int(seed)
        self._two = MISS_TWO[level - 1] if level else 0.0
        self._one = MISS_ONE[level - 1] if level else 0.0

    @property
    def name(self) -> str:
        """Spec string, e.g. ``"batch:0.3"``."""
        return f"batch:{self.missing_rate:g}"

    @property
    def expected_missing_rate(self) -> float:
        """``(2 * two-missing fraction + one-missing fraction) / 3``."""
        return (2.0 * self._two + self._one) / N_MODALITIES

    def batch_counts(self, n_batches: int) -> tuple[int, int, int]:
        """(two-missing, one-missing, complete) batch counts of an epoch of ``n_batches``."""
        if n_batches <= 0:
            return (0, 0, 0)
        denom = float(np.round(n_batches / 10) * 10) or float(n_batches)
        n_two = sum(1 for j in range(n_batches) if j / denom < self._two)
        n_one = sum(1 for j in range(n_batches - n_two) if j / denom < self._one)
        return (n_two, n_one, n_batches - n_two - n_one)

    def scheduled_missing_rate(self, n_batches: int) -> float:
        """Exact missing rate of an epoch of ``n_batches`` equal-sized batches.

        Differs slightly from :attr:`expected_missing_rate` when ``n_batches``
        is not a multiple of 10 (the reference's denominator is rounded).
        """
        n_two, n_one, _ = self.batch_counts(n_batches)
        return (2 * n_two + n_one) / (N_MODALITIES * n_batches) if n_batches > 0 else 0.0

    def batch_status(self, batch_index: int, n_batches: int) -> int:
        """Number of modalities missing (0, 1 or 2) for batch ``batch_index`` of the epoch."""
        if not 0 <= batch_index < n_batches:
            raise ValueError(f"batch_index {batch_index} out of range for {n_batches} batches")
        n_two, n_one, _ = self.batch_counts(n_batches)
        return 2 if batch_index < n_two else 1 if batch_index < n_two + n_one else 0

    def train_mask(self, batch_index: int, n_batches: int, sample_indices: np.ndarray,
                   epoch: int, rng: np.random.Generator) -> np.ndarray:
        """One mask row (random kept modalities) repeated for the whole batch."""
        row = _batch_row(self.batch_status(batch_index, n_batches), rng)
        return np.repeat(row[None], len(sample_indices), axis=0)

    def eval_masks(self, n_samples: int, batch_size: int, split: str) -> np.ndarray:
        """Schedule over ``ceil(n_samples / batch_size)`` sequential batches, statuses permuted."""
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        n_batches = math.ceil(n_samples / batch_size)
        rng = split_seed(self.seed, split)
        statuses = [self.batch_status(b, n_batches) for b in range(n_batches)]
        order = rng.permutation(n_batches)
        masks = np.ones((n_samples, N_MODALITIES), dtype=bool)
        for position, batch in enumerate(order):
            start = position * batch_size
            masks[start:start + batch_size] = _batch_row(statuses[batch], rng)
        return masks


def _batch_row(n_missing: int, rng: np.random.Generator) -> np.ndarray:
    row = np.ones(N_MODALITIES, dtype=bool)
    if n_missing:
        row[rng.choice(N_MODALITIES, size=n_missing, replace=False)] = False
    return row


class PerSampleProtocol(MissingProtocol):
    """Per-sample masks with an exact missing count (paper definition of MR).

    For ``N`` samples exactly ``round(MR * 3 * N)`` entries are missing, at most
    two per sample, drawn *uniformly among all valid assignments*: the number
    ``n2`` of samples missing two modalities is drawn with probability
    proportional to the number of assignments it admits
    (``N! / (n0! n1! n2!) * 3^(n1 + n2)``), then rows and modalities are chosen
    uniformly.  MR above 2/3 is infeasible and is clipped to 2/3 with a warning.

    Evaluation masks are fixed by ``seed`` and the split name.  Training masks
    are drawn per batch from the trainer's generator (so they change every
    epoch), with ``floor`` / ``ceil`` of ``MR * 3 * B`` chosen by stochastic
    rounding so that the epoch-level rate is unbiased.
    """

    def __init__(self, missing_rate: float, seed: int = 0) -> None:
        """``missing_rate`` in [0, 2/3] (larger values are clipped with a warning)."""
        rate = float(missing_rate)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"missing rate must lie in [0, 1], got {missing_rate!r}")
        if rate > MAX_MISSING_RATE + 1e-9:
            warnings.warn(f"per-sample missing rate {rate:g} is infeasible (every sample keeps a "
                          f"modality); clipped to 2/3", stacklevel=2)
            rate = MAX_MISSING_RATE
        self.requested_rate = float(missing_rate)
        self.missing_rate = min(rate, MAX_MISSING_RATE)
        self.seed = int(seed)

    @property
    def name(self) -> str:
        """Spec string, e.g. ``"sample:0.5"``."""
        return f"sample:{self.requested_rate:g}"

    @property
    def expected_missing_rate(self) -> float:
        """The (clipped) missing rate."""
        return self.missing_rate

    def masks(self, n_samples: int, rng: np.random.Generator, n_missing: int | None = None) -> np.ndarray:
        """Uniform valid assignment with ``n_missing`` (default ``round(MR*3*N)``) missing entries."""
        if n_missing is None:
            n_missing = int(round(self.missing_rate * N_MODALITIES * n_samples))
        return sample_masks(n_samples, n_missing, rng)

    def train_mask(self, batch_index: int, n_batches: int, sample_indices: np.ndarray,
                   epoch: int, rng: np.random.Generator) -> np.ndarray:
        """Fresh per-sample mask for the batch; the count is stochastically rounded."""
        size = len(sample_indices)
        target = self.missing_rate * N_MODALITIES * size
        n_missing = int(math.floor(target))
        if rng.random() < target - n_missing:
            n_missing += 1
        return sample_masks(size, min(n_missing, 2 * size), rng)

    def eval_masks(self, n_samples: int, batch_size: int, split: str) -> np.ndarray:
        """Fixed pattern with exactly ``round(MR * 3 * n_samples)`` missing entries."""
        return self.masks(n_samples, split_seed(self.seed, split))


def sample_masks(n_samples: int, n_missing: int, rng: np.random.Generator) -> np.ndarray:
    """Draw uniformly a ``(n_samples, 3)`` mask with ``n_missing`` False entries, <= 2 per row."""
    if not 0 <= n_missing <= 2 * n_samples:
        raise ValueError(f"cannot remove {n_missing} entries from {n_samples} samples "
                         f"(at most 2 per sample)")
    masks = np.ones((n_samples, N_MODALITIES), dtype=bool)
    if n_missing == 0:
        return masks
    low, high = max(0, n_missing - n_samples), n_missing // 2
    n2_values = np.arange(low, high + 1)
    n1_values = n_missing - 2 * n2_values
    n0_values = n_samples - n1_values - n2_values
    log_w = np.array([
        -math.lgamma(n0 + 1) - math.lgamma(n1 + 1) - math.lgamma(n2 + 1) + (n1 + n2) * math.log(3)
        for n0, n1, n2 in zip(n0_values, n1_values, n2_values)
    ])
    weights = np.exp(log_w - log_w.max())
    pick = rng.choice(len(n2_values), p=weights / weights.sum())
    n2, n1 = int(n2_values[pick]), int(n1_values[pick])
    rows = rng.permutation(n_samples)
    two, one = rows[:n2], rows[n2:n2 + n1]
    masks[two] = False
    masks[two, rng.integers(0, N_MODALITIES, size=n2)] = True  # the one kept modality
    masks[one, rng.integers(0, N_MODALITIES, size=n1)] = False  # the one missing modality
    return masks


class FixedSubsetProtocol(MissingProtocol):
    """Every sample keeps exactly the same modalities (one of the six proper subsets, or all)."""

    def __init__(self, available: "Iterable[Modality | str] | str") -> None:
        """``available``: modalities or a short string such as ``"la"`` (l text, a audio, v vision)."""
        if isinstance(available, str):
            text = available.strip().lower()
            items = [text] if text in ("text", "audio", "vision") else list(text)
        else:
            items = list(available)
        present = {as_modality(m) for m in items}
        if not present:
            raise ValueError("at least one modality must be available")
        self.available = frozenset(present)
        self._row = np.array([m in present for m in MODALITIES], dtype=bool)

    @property
    def name(self) -> str:
        """Spec string, e.g. ``"subset:la"``."""
        return f"subset:{subset_name(self.available)}"

    @property
    def expected_missing_rate(self) -> float:
        """``(3 - |available|) / 3``."""
        return (N_MODALITIES - len(self.available)) / N_MODALITIES

    def train_mask(self, batch_index: int, n_batches: int, sample_indices: np.ndarray,
                   epoch: int, rng: np.random.Generator) -> np.ndarray:
        """The fixed row for every sample of the batch."""
        return np.repeat(self._row[None], len(sample_indices), axis=0)

    def eval_masks(self, n_samples: int, batch_size: int, split: str) -> np.ndarray:
        """The fixed row for every sample."""
        return np.repeat(self._row[None], n_samples, axis=0)
