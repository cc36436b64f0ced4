"""Fusion that starts from, and cannot drift far below, the product of per-modality experts.

With class-matched pseudo-pairs the modalities are independent given the
label, and the Bayes-optimal combination of per-modality posteriors
``p_m(y | x_m)`` is their product divided by the prior for every extra
modality:

    log p(y | x_available) = Σ_m [log p_m(y | x_m) − log p(y)] + log p(y) + const.

:class:`ExpertProductFusion` computes exactly that from its
:class:`ModalityExpert` classifiers (one per modality, trained on that
modality alone) for whatever subset of modalities is available, and adds a
**residual** from a small network over the available modalities' pooled
features and the availability mask.  The residual's output layer starts at
zero, so an untrained fusion *is* the product of experts, and
:func:`fit_residual` keeps the residual only if it improves the validation
loss (else it is set back to zero): on held-out data the fused model is never
worse than the experts' product by that criterion.

The residual is where cross-modal structure would go on genuinely paired
data; on pseudo-pairs there is none to learn, and the fused model stays at
the experts' product.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import linear_at


def pool_sequence(x: torch.Tensor) -> torch.Tensor:
    """Mean and standard deviation over time: ``(B, T, D)`` → ``(B, 2D)``."""
    return torch.cat([x.mean(dim=1), x.std(dim=1, unbiased=False)], dim=-1)


class ModalityExpert(nn.Module):
    """One modality's classifier: mean and std over time, then an MLP to class logits."""

    def __init__(self, dim: int, num_classes: int, hidden: int = 128, dropout: float = 0.3) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, C)`` of a ``(B, T, D)`` window."""
        return self.net(pool_sequence(x))


class ExpertProductFusion(nn.Module):
    """Product of the available modalities' experts plus a residual that starts at zero.

    Args:
        experts: ``{modality name: module}`` mapping a ``(B, T, D)`` window to ``(B, C)`` logits.
        dims: ``{modality name: feature dim}`` (the residual's input).
        log_prior: ``(C,)`` log class prior the experts were trained under
            (``None``: uniform, i.e. class-balanced training).
        hidden: width of the residual network.
    """

    log_prior: torch.Tensor

    def __init__(self, experts: Mapping[str, nn.Module], dims: Mapping[str, int],
                 log_prior: torch.Tensor | None = None, hidden: int = 64) -> None:
        super().__init__()
        self.names: tuple[str, ...] = tuple(experts)
        self.experts = nn.ModuleDict(dict(experts))
        num_classes: int | None = None
        for module in self.experts.values():
            last = [m for m in module.modules() if isinstance(m, nn.Linear)]
            num_classes = last[-1].out_features if last else num_classes
        if log_prior is not None:
            num_classes = int(log_prior.numel())
            prior = log_prior
        elif num_classes is not None:
            prior = torch.full((num_classes,), -math.log(num_classes))
        else:
            raise ValueError("cannot tell the number of classes: pass log_prior")
        self.register_buffer("log_prior", prior.detach().float().clone())
        width = sum(2 * int(dims[n]) for n in self.names) + len(self.names)
        self.residual = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
        self.zero_residual()

    def zero_residual(self) -> None:
        """Set the residual's output to zero everywhere: the fusion becomes the experts' product."""
        last = linear_at(self.residual, -1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def expert_log_probs(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``(B, M, C)`` log-probabilities of every expert (whether or not its modality is available)."""
        return torch.stack([F.log_softmax(self.experts[n](features[n]), dim=-1) for n in self.names], dim=1)

    def product_of_experts(self, features: Mapping[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``(B, C)`` of the experts' product over the available modalities (mask ``(B, M)``)."""
        log_probs = self.expert_log_probs(features)
        weights = mask.to(log_probs.dtype)[:, :, None]
        combined = ((log_probs - self.log_prior) * weights).sum(dim=1) + self.log_prior
        return F.log_softmax(combined, dim=-1)

    def residual_logits(self, features: Mapping[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """The residual ``(B, C)`` from the available modalities' pooled features and the mask."""
        pooled = [pool_sequence(features[n]) * mask[:, i, None].to(features[n].dtype)
                  for i, n in enumerate(self.names)]
        return self.residual(torch.cat(pooled + [mask.float()], dim=-1))

    def forward(self, features: Mapping[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """Fused logits ``(B, C)``: product of the available experts + residual."""
        return self.product_of_experts(features, mask) + self.residual_logits(features, mask)


def _batches(n: int, batch_size: int, generator: torch.Generator) -> Sequence[torch.Tensor]:
    return torch.randperm(n, generator=generator).split(batch_size)


def random_masks(n: int, num_modalities: int, generator: torch.Generator) -> torch.Tensor:
    """``(n, M)`` availability masks drawn uniformly from the non-empty subsets."""
    subsets = torch.tensor([[(k >> i) & 1 for i in range(num_modalities)] for k in range(1, 2 ** num_modalities)],
                           dtype=torch.bool)
    return subsets[torch.randint(len(subsets), (n,), generator=generator)]


def fit_residual(model: ExpertProductFusion, train: tuple[Mapping[str, torch.Tensor], torch.Tensor],
                 val: tuple[Mapping[str, torch.Tensor], torch.Tensor], epochs: int = 10, lr: float = 1e-3,
                 batch_size: int = 128, seed: int = 0) -> dict[str, float]:
    """Train only the residual (experts frozen) on random availability masks; keep it only if it helps.

    The validation loss of the experts' product (residual zero) and of the
    trained fusion are compared on the same fixed validation masks; the
    residual is zeroed again unless it lowered the loss.  Returns both losses
    and whether the residual was kept.
    """
    generator = torch.Generator().manual_seed(seed)
    features, labels = train
    val_features, val_labels = val
    val_mask = random_masks(len(val_labels), len(model.names), generator)
    for p in model.experts.parameters():
        p.requires_grad_(False)
    optimiser = torch.optim.Adam(model.residual.parameters(), lr=lr)

    def val_loss() -> float:
        model.eval()
        with torch.no_grad():
            return float(F.cross_entropy(model(val_features, val_mask), val_labels))

    model.zero_residual()
    baseline = val_loss()
    best, best_state = baseline, copy.deepcopy(model.residual.state_dict())
    for _ in range(epochs):
        model.train()
        for idx in _batches(len(labels), batch_size, generator):
            batch = {n: features[n][idx] for n in model.names}
            mask = random_masks(len(idx), len(model.names), generator)
            loss = F.cross_entropy(model(batch, mask), labels[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        current = val_loss()
        if current < best:
            best, best_state = current, copy.deepcopy(model.residual.state_dict())
    model.residual.load_state_dict(best_state)
    kept = best < baseline
    if not kept:
        model.zero_residual()
    for p in model.experts.parameters():
        p.requires_grad_(True)
    model.eval()
    return {"val_loss_product": baseline, "val_loss_fused": best if kept else baseline, "residual_kept": kept}
