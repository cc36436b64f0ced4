"""Tests of the missing-modality protocols."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from training.protocol_spec import make_protocol
from training.protocols import (
    MISS_ONE,
    MISS_TWO,
    BatchScheduleProtocol,
    FixedSubsetProtocol,
    PerSampleProtocol,
    realised_missing_rate,
    sample_masks,
)


def _epoch_masks(protocol, n_batches: int, batch_size: int, epoch: int,
                 rng: np.random.Generator) -> list[np.ndarray]:
    return [protocol.train_mask(b, n_batches, np.arange(b * batch_size, (b + 1) * batch_size), epoch, rng)
            for b in range(n_batches)]


def _reference_statuses(mr: float, n_batches: int) -> list[int]:
    """IMDer's counters from trains/singleTask/IMDER.py, re-expressed (MR >= 0.1 only)."""
    two, one, statuses = 0, 0, []
    denom = np.round(n_batches / 10) * 10
    for _ in range(n_batches):
        if two / denom < MISS_TWO[int(mr * 10 - 1)]:
            statuses.append(2)
            two += 1
        elif one / denom < MISS_ONE[int(mr * 10 - 1)]:
            statuses.append(1)
            one += 1
        else:
            statuses.append(0)
    return statuses


@pytest.mark.parametrize("mr", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
def test_batch_schedule_realises_nominal_rate(mr: float) -> None:
    protocol = BatchScheduleProtocol(mr)
    assert protocol.expected_missing_rate == pytest.approx(mr)
    masks = np.concatenate(_epoch_masks(protocol, 40, 8, 0, np.random.default_rng(0)))
    assert realised_missing_rate(masks) == pytest.approx(mr, abs=0.02)
    assert masks.any(axis=1).all()


def test_batch_schedule_mr_zero_and_mr_07() -> None:
    rng = np.random.default_rng(1)
    none = np.concatenate(_epoch_masks(BatchScheduleProtocol(0.0), 40, 8, 0, rng))
    assert none.all()
    top = BatchScheduleProtocol(0.7)
    assert top.expected_missing_rate == pytest.approx(2 / 3)
    masks = np.concatenate(_epoch_masks(top, 40, 8, 0, rng))
    assert realised_missing_rate(masks) == pytest.approx(2 / 3)
    assert (masks.sum(axis=1) == 1).all()


@pytest.mark.parametrize("n_batches", [6, 10, 13, 36, 40, 41, 45, 55, 128])
@pytest.mark.parametrize("mr", [0.1, 0.3, 0.4, 0.6, 0.7])
def test_batch_schedule_matches_reference_counters(mr: float, n_batches: int) -> None:
    protocol = BatchScheduleProtocol(mr)
    ours = [protocol.batch_status(b, n_batches) for b in range(n_batches)]
    assert ours == _reference_statuses(mr, n_batches)


def test_batch_schedule_rows_shared_within_batch_and_tiny_loaders() -> None:
    protocol = BatchScheduleProtocol(0.3)
    for mask in _epoch_masks(protocol, 20, 5, 0, np.random.default_rng(2)):
        assert (mask == mask[0]).all()
    assert protocol.batch_counts(3) == (1, 1, 1)  # denominator 0 guarded: D = n_batches
    assert protocol.batch_counts(1) == (1, 0, 0)
    assert protocol.scheduled_missing_rate(40) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="out of range"):
        protocol.batch_status(5, 5)


def test_batch_schedule_eval_is_deterministic() -> None:
    protocol = BatchScheduleProtocol(0.4, seed=7)
    first = protocol.eval_masks(686, 32, "test")
    np.testing.assert_array_equal(first, BatchScheduleProtocol(0.4, seed=7).eval_masks(686, 32, "test"))
    assert not np.array_equal(first, protocol.eval_masks(686, 32, "valid"))
    assert first.shape == (686, 3) and first.any(axis=1).all()
    n_batches = 22
    counts = protocol.batch_counts(n_batches)
    expected = (2 * counts[0] + counts[1]) * 32 / (3 * 686)
    assert realised_missing_rate(first) == pytest.approx(expected, abs=32 / 686)


@pytest.mark.parametrize("bad", [0.25, 0.8, -0.1, 1.0])
def test_batch_schedule_rejects_off_grid_rates(bad: float) -> None:
    with pytest.raises(ValueError, match="0.0, 0.1, ..., 0.7"):
        BatchScheduleProtocol(bad)


@pytest.mark.parametrize("mr", [0.0, 0.1, 0.3, 0.5, 0.6, 2 / 3])
@pytest.mark.parametrize("n", [1, 7, 229, 686])
def test_per_sample_exact_count_and_no_empty_rows(mr: float, n: int) -> None:
    masks = PerSampleProtocol(mr, seed=3).eval_masks(n, 32, "test")
    assert masks.shape == (n, 3) and masks.dtype == bool
    assert int((~masks).sum()) == round(mr * 3 * n)
    assert masks.any(axis=1).all()


def test_per_sample_eval_deterministic_train_redrawn() -> None:
    protocol = PerSampleProtocol(0.5, seed=11)
    np.testing.assert_array_equal(protocol.eval_masks(300, 32, "test"),
                                  PerSampleProtocol(0.5, seed=11).eval_masks(300, 32, "test"))
    assert not np.array_equal(protocol.eval_masks(300, 32, "test"), protocol.eval_masks(300, 32, "valid"))
    assert not np.array_equal(protocol.eval_masks(300, 32, "test"),
                              PerSampleProtocol(0.5, seed=12).eval_masks(300, 32, "test"))
    rng = np.random.default_rng(0)
    epoch0 = np.concatenate(_epoch_masks(protocol, 30, 32, 0, rng))
    epoch1 = np.concatenate(_epoch_masks(protocol, 30, 32, 1, rng))
    assert not np.array_equal(epoch0, epoch1)
    for masks in (epoch0, epoch1):
        assert masks.any(axis=1).all()
        assert realised_missing_rate(masks) == pytest.approx(0.5, abs=0.01)


def test_per_sample_train_rate_unbiased_for_small_batches() -> None:
    protocol, rng = PerSampleProtocol(0.1), np.random.default_rng(5)
    masks = np.concatenate(_epoch_masks(protocol, 2000, 4, 0, rng))  # 1.2 missing entries per batch
    assert realised_missing_rate(masks) == pytest.approx(0.1, abs=0.005)


def test_per_sample_clips_infeasible_rate() -> None:
    with pytest.warns(UserWarning, match="infeasible"):
        protocol = PerSampleProtocol(0.9)
    assert protocol.expected_missing_rate == pytest.approx(2 / 3)
    masks = protocol.eval_masks(50, 8, "test")
    assert realised_missing_rate(masks) == pytest.approx(2 / 3)
    assert (masks.sum(axis=1) == 1).all()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        PerSampleProtocol(1.5)


def test_sample_masks_uniform_over_valid_assignments() -> None:
    # N = 2 samples, 2 missing entries: 6 assignments put both on one sample
    # (2 rows x 3 kept modalities), 9 put one on each (3 x 3): P(two on one) = 0.4.
    rng = np.random.default_rng(0)
    draws = [sample_masks(2, 2, rng) for _ in range(4000)]
    both = np.mean([(~m).sum(axis=1).max() == 2 for m in draws])
    assert both == pytest.approx(0.4, abs=0.03)
    patterns = {m.tobytes() for m in draws}
    assert len(patterns) == 15
    with pytest.raises(ValueError, match="at most 2 per sample"):
        sample_masks(2, 5, rng)


def test_fixed_subset() -> None:
    protocol = make_protocol("subset:la")
    assert isinstance(protocol, FixedSubsetProtocol) and protocol.name == "subset:la"
    assert protocol.expected_missing_rate == pytest.approx(1 / 3)
    masks = protocol.eval_masks(5, 2, "test")
    assert (masks == np.array([True, True, False])).all()
    train = protocol.train_mask(0, 1, np.arange(3), 0, np.random.default_rng(0))
    assert train.shape == (3, 3) and (train == np.array([True, True, False])).all()
    assert make_protocol("subset:vl").name == "subset:lv"
    assert make_protocol("subset:lav").expected_missing_rate == 0.0
    assert FixedSubsetProtocol("vision").name == "subset:v"
    assert FixedSubsetProtocol(["text", "a"]).name == "subset:la"


def test_make_protocol_round_trip_and_errors() -> None:
    for spec in ("batch:0.3", "batch:0", "sample:0.5", "subset:a"):
        assert make_protocol(spec).name == spec
    assert isinstance(make_protocol(" Batch : 0.7 "), BatchScheduleProtocol)
    assert isinstance(make_protocol("sample:0.2", seed=4), PerSampleProtocol)
    for bad, message in (("", "invalid missing-modality protocol"),
                         ("batch", "invalid missing-modality protocol"),
                         ("batch:abc", "invalid missing rate"),
                         ("sample:nan", "invalid missing rate"),
                         ("drop:0.3", "unknown protocol kind"),
                         ("subset:lx", "invalid modality subset"),
                         ("subset:ll", "invalid modality subset"),
                         ("batch:0.25", "0.0, 0.1, ..., 0.7")):
        with pytest.raises(ValueError, match=message):
            make_protocol(bad)


def test_realised_missing_rate_checks_shape() -> None:
    assert realised_missing_rate(np.array([[True, False, False], [True, True, True]])) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        realised_missing_rate(np.ones((4, 2), dtype=bool))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert realised_missing_rate(np.ones((0, 3), dtype=bool)) == 0.0
