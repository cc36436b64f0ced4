"""A synthetic task with a known answer: linear-Gaussian modalities from shared latents.

Same MMSA pickle schema as :mod:`training.data.synthetic` (so every method and
protocol runs on it unchanged), but a generative model simple enough that the
Bayes-optimal recovery and prediction are computable in closed form::

    s_n      ~ N(0, I_k)                               shared static latent, k = 8
    q^m_n    ~ N(0, I_p)                               private static latent of modality m, p = 4
    x^m_nt   = c_m + A_m s_n + B_m q^m_n + D_m ε_nt    ε_nt ~ N(0, I) i.i.d. over t
    y_n      = w · s_n + τ e_n                         e_n ~ N(0, 1)

``A_m`` has rank ``r_m`` (text 6, audio 4, vision 5 of k = 8), so each modality
sees part of the latent and a missing one is partly recoverable from the
others; ``D_m`` is diagonal.  Labels are continuous (std ≈ 1.2, not rounded,
not clipped), so ``Has0`` and ``Non0`` metrics coincide.

Given the observed modalities ``O`` of a sample, the time mean ``x̄^m`` of each is
a sufficient statistic for ``s`` (the deviations from the mean are pure noise,
independent of it), with ``x̄^m = c_m + A_m s + η_m``, ``η_m ~ N(0, S_m)``,
``S_m = B_m B_mᵀ + D_m² / T``.  Hence the posterior ``s | O ~ N(μ, Λ⁻¹)`` with

    Λ = I + Σ_{m∈O} A_mᵀ S_m⁻¹ A_m,      μ = Λ⁻¹ Σ_{m∈O} A_mᵀ S_m⁻¹ (x̄^m − c_m),

and (:class:`LinearGaussianTask`):

* the Bayes-optimal recovery of a missing modality ``u`` (mean squared error)
  is ``E[x^u_t | O] = c_u + A_u μ`` for every t, with expected error per entry
  ``(tr(A_u Λ⁻¹ A_uᵀ) + tr(B_u B_uᵀ) + tr(D_u²)) / d_u``; for a method whose
  recovery space is an affine map ``f`` of the features, ``f`` of it is optimal there;
* the Bayes-optimal sentiment prediction is ``w · μ`` (posterior mean = median:
  optimal for MSE, MAE and the correlation), with expected MAE ``sqrt(2 v / π)``,
  ``v = wᵀ Λ⁻¹ w + τ²``, and its sign is optimal for Acc-2, with expected accuracy
  ``1/2 + arcsin(ρ) / π``, ``ρ² = wᵀ(I − Λ⁻¹)w / (|w|² + τ²)`` (orthant probability
  of the bivariate Gaussian ``(w·μ, y)``).  For Acc-7 and F1 the posterior mean is
  not exactly optimal.

Tables built on it carry :data:`LINEAR_GAUSSIAN_NOTE`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .mmsa import DATASET_DIMS, SPLITS
from .synthetic import _token_ids

LINEAR_GAUSSIAN_NOTE = ("Synthetic linear-Gaussian task (MMSA schema, training.data.linear_gaussian) - not "
                        "CMU-MOSI/MOSEI; the Bayes-optimal recovery error and accuracy are computed exactly.")
LATENT_DIM = 8
PRIVATE_DIM = 4
RANKS = (6, 4, 5)            # rank of the shared view seen by text, audio, vision
NOISE = (0.8, 0.8, 0.8)      # per-step noise, in units of the per-dimension scale
LABEL_NOISE = 0.3
LABEL_SCALE = 1.2            # |w|


@dataclass(frozen=True)
class ModalityMaps:
    """``x_t = offset + shared @ s + private @ q + noise * ε_t`` for one modality (``d`` dims)."""

    shared: np.ndarray       # (d, k)
    private: np.ndarray      # (d, p)
    noise: np.ndarray        # (d,) standard deviations
    offset: np.ndarray       # (d,)


@dataclass(frozen=True)
class Posterior:
    """Posterior of the shared latent for one availability pattern: mean ``(n, k)`` and covariance ``(k, k)``."""

    mean: np.ndarray
    cov: np.ndarray


class LinearGaussianTask:
    """The generative model's parameters and its exact Bayes-optimal answers (see the module docstring).

    Args:
        dims: (text, audio, vision) feature dimensions.
        seq_len: time steps ``T``.
        seed: seed of the maps (the samples have their own seed).
    """

    def __init__(self, dims: Sequence[int], seq_len: int = 50, seed: int = 0) -> None:
        dims = tuple(int(d) for d in dims)
        if len(dims) != 3 or min(dims) < 1 or seq_len < 3:
            raise ValueError(f"need three positive dims and seq_len >= 3, got {dims}, {seq_len}")
        self.dims, self.seq_len = dims, int(seq_len)
        rng = np.random.default_rng([int(seed), 0x1A6A])
        readout = rng.standard_normal(LATENT_DIM)
        self.readout = LABEL_SCALE * readout / np.linalg.norm(readout)
        self.label_noise = LABEL_NOISE
        self.modalities: list[ModalityMaps] = []
        for dim, rank, noise in zip(dims, RANKS, NOISE):
            rank = min(rank, dim)
            scale = rng.uniform(0.5, 2.0, dim)
            view = rng.standard_normal((rank, LATENT_DIM)) / math.sqrt(LATENT_DIM)
            lift = rng.standard_normal((dim, rank)) / math.sqrt(rank)
            private = rng.standard_normal((dim, PRIVATE_DIM)) * 0.5 / math.sqrt(PRIVATE_DIM)
            self.modalities.append(ModalityMaps(shared=scale[:, None] * (lift @ view),
                                                private=scale[:, None] * private,
                                                noise=noise * scale, offset=rng.normal(0.0, 0.5, dim)))

    # ------------------------------------------------------------- sampling
    def sample(self, n: int, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """``n`` samples: features ``[(n, T, d_m)]`` (float32), labels ``(n,)`` and the latents ``(n, k)``."""
        latent = rng.standard_normal((n, LATENT_DIM))
        features = []
        for maps in self.modalities:
            static = maps.offset + latent @ maps.shared.T + rng.standard_normal((n, PRIVATE_DIM)) @ maps.private.T
            noise = rng.standard_normal((n, self.seq_len, static.shape[1])) * maps.noise
            features.append((static[:, None, :] + noise).astype(np.float32))
        labels = latent @ self.readout + self.label_noise * rng.standard_normal(n)
        return features, labels, latent

    # ------------------------------------------------------------- posterior
    def _noise_cov(self, m: int) -> np.ndarray:
        maps = self.modalities[m]
        return maps.private @ maps.private.T + np.diag(maps.noise ** 2) / self.seq_len

    def posterior(self, features: Sequence[np.ndarray | None], available: Sequence[bool]) -> Posterior:
        """Posterior of ``s`` given the available modalities' features ``(n, T, d_m)`` (others ignored)."""
        precision = np.eye(LATENT_DIM)
        info = None
        for m, (x, on) in enumerate(zip(features, available)):
            if not on:
                continue
            maps = self.modalities[m]
            weighted = np.linalg.solve(self._noise_cov(m), maps.shared)          # S⁻¹ A   (d, k)
            precision += maps.shared.T @ weighted
            mean_x = np.asarray(x, dtype=np.float64).mean(axis=1) - maps.offset   # (n, d)
            term = mean_x @ weighted                                             # (n, k)
            info = term if info is None else info + term
        cov = np.linalg.inv(precision)
        cov = 0.5 * (cov + cov.T)
        if info is None:
            n = next(len(x) for x in features if x is not None)
            return Posterior(np.zeros((n, LATENT_DIM)), cov)
        return Posterior(info @ cov, cov)

    def recover(self, posterior: Posterior, m: int) -> np.ndarray:
        """Bayes-optimal (MSE) estimate of modality ``m``'s features ``(n, T, d_m)``: ``c + A μ`` at every step."""
        maps = self.modalities[m]
        static = maps.offset + posterior.mean @ maps.shared.T
        return np.repeat(static[:, None, :], self.seq_len, axis=1).astype(np.float32)

    def predict(self, posterior: Posterior) -> np.ndarray:
        """Bayes-optimal sentiment prediction ``w · μ`` (posterior mean and median of ``y``)."""
        return posterior.mean @ self.readout

    # --------------------------------------------------------- closed forms
    def expected(self, available: Sequence[bool]) -> dict[str, float]:
        """Expected Bayes-optimal metrics for one availability pattern (over the data distribution).

        Returns ``Non0_acc_2`` (sign accuracy), ``MAE``, and ``recovery_mse_<m>``
        (per-entry MSE of the optimal recovery, raw feature space) for every missing ``m``.
        """
        dummy = [np.zeros((1, self.seq_len, d)) for d in self.dims]
        cov = self.posterior(dummy, available).cov
        w = self.readout
        total = float(w @ w) + self.label_noise ** 2
        explained = float(w @ w - w @ cov @ w)
        rho = math.sqrt(max(explained, 0.0) / total)
        out = {"Non0_acc_2": 0.5 + math.asin(rho) / math.pi,
               "MAE": math.sqrt(2.0 * (total - explained) / math.pi)}
        for m, on in enumerate(available):
            if not on:
                maps = self.modalities[m]
                err = (np.trace(maps.shared @ cov @ maps.shared.T) + np.sum(maps.private ** 2)
                       + np.sum(maps.noise ** 2))
                out[f"recovery_mse_{m}"] = float(err) / self.dims[m]
        return out


def make_linear_gaussian_mmsa(dataset: str = "mosi", *, seed: int = 0, sizes: Sequence[int] = (1284, 229, 686),
                              seq_len: int = 50, dims: Sequence[int] | None = None) -> dict[str, dict]:
    """Samples of :class:`LinearGaussianTask` (maps from ``seed``) in the MMSA ``aligned_50.pkl`` schema."""
    dataset = dataset.lower()
    if dataset not in DATASET_DIMS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(DATASET_DIMS)}")
    dims = tuple(int(d) for d in (dims if dims else DATASET_DIMS[dataset]))
    task = LinearGaussianTask(dims, seq_len, seed)
    rng = np.random.default_rng([int(seed), 0x5A4D])
    out, offset = {}, 0
    for split, n in zip(SPLITS, (int(s) for s in sizes)):
        (text, audio, vision), labels, _ = task.sample(n, rng)
        labels = labels.astype(np.float32)
        classes = np.where(labels < 0, 0, np.where(labels > 0, 2, 1)).astype(np.int64)
        out[split] = {
            "raw_text": np.array([f"synthetic linear-Gaussian utterance {offset + i} (not real data)"
                                  for i in range(n)]),
            "id": np.array([f"lingauss_{offset + i:06d}" for i in range(n)]),
            "text": text, "text_bert": _token_ids(rng, n, seq_len), "audio": audio, "vision": vision,
            "audio_lengths": [seq_len] * n, "vision_lengths": [seq_len] * n,
            "annotations": np.array([("Negative", "Neutral", "Positive")[c] for c in classes]),
            "classification_labels": classes, "regression_labels": labels,
        }
        offset += n
    return out
