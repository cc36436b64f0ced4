"""Gaussian-distribution helpers and contrastive losses used by CM-ARR.

* :func:`gaussian_w2_squared` — closed-form squared 2-Wasserstein distance of
  two diagonal Gaussians.  For Gaussians ``N(μ1, Σ1)``, ``N(μ2, Σ2)``
  (Givens & Shortt 1984; Dowson & Landau 1982)::

      W2² = ||μ1 - μ2||² + tr(Σ1 + Σ2 - 2 (Σ2^½ Σ1 Σ2^½)^½),

  which for commuting (diagonal) covariances reduces to
  ``||μ1 - μ2||² + ||σ1 - σ2||²``.
* :func:`wasserstein_info_nce` — distribution-based InfoNCE (van den Oord et
  al. 2018) where the similarity of two samples' Gaussians is ``-W2² / τ`` and
  the positive of sample ``i`` in one modality is sample ``i`` in the other.
* :func:`supervised_contrastive_loss` — SupCon ``L_out`` (Khosla et al.,
  NeurIPS 2020, eq. 2).
* :func:`product_of_experts` — precision-weighted fusion of diagonal Gaussians.
* :func:`kl_standard_normal` — ``KL(N(μ, σ²) || N(0, I))``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_w2_squared(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor,
                        sigma2: torch.Tensor) -> torch.Tensor:
    """Squared 2-Wasserstein distance of diagonal Gaussians, summed over the last dimension.

    Shapes broadcast; ``sigma`` are standard deviations (not variances).
    """
    return (mu1 - mu2).pow(2).sum(dim=-1) + (sigma1 - sigma2).pow(2).sum(dim=-1)


def pairwise_w2_squared(mu_a: torch.Tensor, sigma_a: torch.Tensor, mu_b: torch.Tensor,
                        sigma_b: torch.Tensor) -> torch.Tensor:
    """``W2²`` between every row of ``a (N, d)`` and every row of ``b (M, d)``: shape ``(N, M)``.

    Computed by broadcasting (not ``cdist``) so the gradient is well defined at distance 0.
    """
    return gaussian_w2_squared(mu_a.unsqueeze(1), sigma_a.unsqueeze(1), mu_b.unsqueeze(0), sigma_b.unsqueeze(0))


def wasserstein_info_nce(mu_a: torch.Tensor, sigma_a: torch.Tensor, mu_b: torch.Tensor, sigma_b: torch.Tensor,
                         temperature: float = 0.1, per_dimension: bool = True) -> torch.Tensor:
    """Symmetric InfoNCE between two modalities' Gaussians with ``-W2²`` as the similarity.

    ``logits[i, j] = -W2²(q_a^i, q_b^j) / τ``; the loss is the mean of the
    cross-entropies with targets ``i`` over rows (a → b) and over columns (b → a)::

        L = -½ Σ_i [log softmax_j(logits[i, :])_i + log softmax_j(logits[:, i])_i] / N.

    Args:
        per_dimension: divide ``W2²`` by ``d`` so ``τ`` does not depend on the width.
    """
    if mu_a.shape[0] < 2:
        raise ValueError("InfoNCE needs at least two samples (one positive and one negative)")
    dist = pairwise_w2_squared(mu_a, sigma_a, mu_b, sigma_b)
    if per_dimension:
        dist = dist / mu_a.shape[-1]
    logits = -dist / temperature
    targets = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets))


def supervised_contrastive_loss(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float = 0.07,
                                normalize: bool = True) -> torch.Tensor:
    """SupCon ``L_out`` (Khosla et al. 2020, eq. 2) over ``N`` embeddings ``(N, D)`` with labels ``(N,)``.

    For anchor ``i`` with positives ``P(i) = {p ≠ i: y_p = y_i}`` and all others ``A(i)``::

        ℓ_i = -1/|P(i)| Σ_{p ∈ P(i)} log( exp(z_i·z_p/τ) / Σ_{a ∈ A(i)} exp(z_i·z_a/τ) ),

    averaged over the anchors that have at least one positive (0 when none has).
    Embeddings are L2-normalised first when ``normalize`` is set.
    """
    if embeddings.dim() != 2 or labels.shape[0] != embeddings.shape[0]:
        raise ValueError("embeddings must be (N, D) and labels (N,)")
    z = F.normalize(embeddings, dim=-1) if normalize else embeddings
    n = z.shape[0]
    sim = z @ z.t() / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))                   # a ∈ A(i) excludes i itself
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    labels = labels.view(-1)
    positives = (labels.unsqueeze(0) == labels.unsqueeze(1)) & ~self_mask
    n_pos = positives.sum(dim=1)
    has_pos = n_pos > 0
    if not bool(has_pos.any()):
        return z.sum() * 0.0
    pos_log_prob = log_prob.masked_fill(~positives, 0.0).sum(dim=1)
    per_anchor = -pos_log_prob[has_pos] / n_pos[has_pos].to(z.dtype)
    return per_anchor.mean()


def product_of_experts(mu: torch.Tensor, sigma: torch.Tensor,
                       weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Precision-weighted product of the selected diagonal Gaussian experts.

    Args:
        mu, sigma: ``(B, M, d)`` means and standard deviations of ``M`` experts.
        weights: ``(B, M)`` booleans (or 0/1), which experts each row uses.

    Returns ``(μ, σ)`` of shape ``(B, d)`` with ``1/σ² = Σ_k w_k / σ_k²`` and
    ``μ = σ² Σ_k w_k μ_k / σ_k²``.  A row with no selected expert gets the
    standard normal ``N(0, I)``.
    """
    w = weights.to(mu.dtype).unsqueeze(-1)                            # (B, M, 1)
    precision = w / sigma.pow(2)
    empty = (w.sum(dim=1) == 0).to(mu.dtype)                          # (B, 1): fall back to N(0, I)
    total = precision.sum(dim=1) + empty
    fused_mu = (precision * mu).sum(dim=1) / total
    return fused_mu, total.rsqrt()


def kl_standard_normal(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``KL(N(μ, diag σ²) || N(0, I)) = ½ Σ (μ² + σ² - 1 - 2 log σ)`` over the last dimension."""
    return 0.5 * (mu.pow(2) + sigma.pow(2) - 1.0 - 2.0 * torch.log(sigma)).sum(dim=-1)
