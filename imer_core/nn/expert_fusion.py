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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .layers import linear_at, zero_missing


def pool_sequence(x: torch.Tensor) -> torch.Tensor:
    """Mean and standard deviation over time: ``(B, T, D)`` → ``(B, 2D)``."""
    return torch.cat([x.mean(dim=1), x.std(dim=1, unbiased=False)], dim=-1)


def available_only(features: Mapping[str, torch.Tensor], names: Sequence[str],
                   mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """``features`` with the rows of each missing modality (``mask (B, M)`` in ``names`` order) set to zero.

    Keys ``<name>@speaker`` follow their modality.  A selection, not a product with the
    mask, so a NaN or infinite value of a missing modality cannot reach an expert's output.
    """
    out = dict(features)
    for i, name in enumerate(names):
        for key in (name, name + SPEAKER_SUFFIX):
            x = features.get(key)
            if x is not None:
                out[key] = zero_missing(x, mask[:, i])
    return out


class ModalityExpert(nn.Module):
    """One modality's classifier: mean and std over time, then an MLP (``depth`` hidden layers) to class logits.

    ``depth=0`` is a linear classifier on the pooled features (e.g. an encoder's own
    classification head carried over, see ``training.live.expert_calibration``).
    """

    def __init__(self, dim: int, num_classes: int, hidden: int = 128, dropout: float = 0.3, depth: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = 2 * dim
        for _ in range(max(0, int(depth))):
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, C)`` of a ``(B, T, D)`` window."""
        return self.net(pool_sequence(x))


class ExpertEnsemble(nn.Module):
    """Several experts of one modality (trained with different seeds): the log of their mean probability.

    Averaging the probabilities of independently trained classifiers lowers their
    variance (the usual gain of an ensemble); the output is a log-probability, so it
    takes the place of one expert's logits everywhere (``log_softmax`` leaves it unchanged).
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an expert ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log mean probability ``(B, C)`` of the members for a ``(B, T, D)`` window."""
        log_probs = torch.stack([F.log_softmax(member(x), dim=-1) for member in self.members])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


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
        log_probs = self.expert_log_probs(available_only(features, self.names, mask))
        weights = mask.to(log_probs.dtype)[:, :, None]
        combined = ((log_probs - self.log_prior) * weights).sum(dim=1) + self.log_prior
        return F.log_softmax(combined, dim=-1)

    def residual_logits(self, features: Mapping[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """The residual ``(B, C)`` from the available modalities' pooled features and the mask."""
        available = available_only(features, self.names, mask)
        pooled = [pool_sequence(available[n]) for n in self.names]
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


def _fit_if_it_helps(owner: nn.Module, part: nn.Module, reset: Callable[[], None],
                     batch_loss: Callable[[torch.Tensor], torch.Tensor], val_loss: Callable[[], float],
                     optimiser: torch.optim.Optimizer, n: int, epochs: int, batch_size: int,
                     generator: torch.Generator) -> tuple[float, float, bool]:
    """Train ``part`` of ``owner`` from its reset state; keep its best epoch only if it beats the reset state.

    Returns the validation loss of the reset state, the best loss reached and
    whether ``part`` was kept (otherwise it is reset again).
    """
    reset()
    baseline = val_loss()
    best, best_state = baseline, copy.deepcopy(part.state_dict())
    for _ in range(epochs):
        owner.train()
        for idx in _batches(n, batch_size, generator):
            loss = batch_loss(idx)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        current = val_loss()
        if current < best:
            best, best_state = current, copy.deepcopy(part.state_dict())
    part.load_state_dict(best_state)
    kept = best < baseline
    if not kept:
        reset()
    return baseline, best, kept


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

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        batch = {n: features[n][idx] for n in model.names}
        mask = random_masks(len(idx), len(model.names), generator)
        return F.cross_entropy(model(batch, mask), labels[idx])

    baseline, best, kept = _fit_if_it_helps(model, model.residual, model.zero_residual, batch_loss, val_loss,
                                            optimiser, len(labels), epochs, batch_size, generator)
    for p in model.experts.parameters():
        p.requires_grad_(True)
    model.eval()
    return {"val_loss_product": baseline, "val_loss_fused": best if kept else baseline, "residual_kept": kept}


#: Suffix of the feature key that carries a modality normalised with the speaker's own statistics
#: (e.g. ``"audio@speaker"``); when present, that modality's speaker expert replaces its global one.
SPEAKER_SUFFIX = "@speaker"


class ExpertFusionHead(nn.Module):
    """The prediction of a recovery method put on top of the product of per-modality experts.

    ``fused = PoE(available experts) + correction([PoE, log_softmax(method), mask])``: the
    prior-corrected product of the available modalities' experts (the Bayes-optimal
    combination when the modalities are independent given the class, as they are in
    class-matched pseudo-pairs), plus a small correction network that sees the
    method's own prediction (made with the missing modalities recovered).  The
    correction's output layer starts at zero and :func:`fit_correction` keeps it only
    if it lowers the validation loss, so on held-out data the head is never worse than
    the experts' product by that criterion.

    Args:
        dims: ``{modality: feature dim}`` in the model's modality order.
        num_classes: number of classes.
        hidden, depth, dropout: each expert's MLP.
        correction_hidden: width of the correction network.
        speaker_experts: modalities that also get an expert trained on features
            normalised per speaker (used when the feature key ``<modality>@speaker`` is given).
        members: experts per modality; above 1 each is an :class:`ExpertEnsemble` of that
            many MLPs (trained with different seeds) and its output their mean probability.
        linear_experts: modalities whose expert is one linear classifier on the pooled
            features (``depth=0``, never an ensemble): an encoder's own head carried over.
        temperatures: ``{expert key: T}`` (a modality, or ``<modality>@speaker`` for a speaker
            expert); that expert's logits are divided by ``T`` before the product
            (temperature scaling, Guo et al. 2017, "On Calibration of Modern Neural
            Networks"; see :func:`fit_temperature`).  Missing keys: ``T = 1``.
    """

    log_prior: torch.Tensor

    def __init__(self, dims: Mapping[str, int], num_classes: int, hidden: int = 128, depth: int = 2,
                 dropout: float = 0.2, correction_hidden: int = 32, speaker_experts: Sequence[str] = (),
                 members: int = 1, linear_experts: Sequence[str] = (),
                 temperatures: Mapping[str, float] | None = None) -> None:
        super().__init__()
        self.names: tuple[str, ...] = tuple(dims)
        unknown = sorted((set(speaker_experts) | set(linear_experts)) - set(self.names))
        if unknown:
            raise ValueError(f"speaker or linear experts for unknown modalities {unknown}")
        if int(members) < 1:
            raise ValueError(f"members must be at least 1, got {members}")
        self.members = int(members)

        self.linear_experts: tuple[str, ...] = tuple(linear_experts)

        def expert(name: str) -> nn.Module:
            if name in self.linear_experts:
                return ModalityExpert(int(dims[name]), num_classes, depth=0)
            if self.members == 1:
                return ModalityExpert(int(dims[name]), num_classes, hidden, dropout, depth)
            return ExpertEnsemble([ModalityExpert(int(dims[name]), num_classes, hidden, dropout, depth)
                                   for _ in range(self.members)])

        self.experts = nn.ModuleDict({n: expert(n) for n in self.names})
        self.speaker_experts = nn.ModuleDict({n: expert(n) for n in speaker_experts})
        self.temperatures: dict[str, float] = {}
        self.set_temperatures(temperatures or {})
        self.register_buffer("log_prior", torch.full((num_classes,), -math.log(num_classes)))
        self.correction = nn.Sequential(nn.Linear(2 * num_classes + len(self.names), correction_hidden), nn.ReLU(),
                                        nn.Linear(correction_hidden, num_classes))
        self.zero_correction()

    @classmethod
    def from_settings(cls, dims: Mapping[str, int], num_classes: int,
                      settings: Mapping[str, Any]) -> "ExpertFusionHead":
        """A head built from a model config's ``expert_fusion`` settings."""
        known = {"hidden", "depth", "dropout", "correction_hidden", "speaker_experts", "members", "linear_experts",
                 "temperatures"}
        unknown = sorted(set(settings) - known - {"trained"})
        if unknown:
            raise ValueError(f"unknown expert_fusion settings {unknown}; known: {sorted(known)}")
        options = {k: settings[k] for k in known if k in settings}
        if "members" in options:
            options["members"] = int(options["members"])
        for key in ("speaker_experts", "linear_experts"):
            if key in options:
                options[key] = tuple(options[key])
        if "temperatures" in options:
            options["temperatures"] = {str(k): float(v) for k, v in dict(options["temperatures"]).items()}
        return cls(dims, num_classes, **options)

    @property
    def expert_keys(self) -> tuple[str, ...]:
        """Names of every expert: the modalities, then ``<modality>@speaker`` for the speaker experts."""
        return self.names + tuple(n + SPEAKER_SUFFIX for n in self.speaker_experts)

    def set_temperatures(self, temperatures: Mapping[str, float]) -> None:
        """Replace the experts' temperatures (``{expert key: T > 0}``; keys not given: ``T = 1``)."""
        unknown = sorted(set(temperatures) - set(self.expert_keys))
        if unknown:
            raise ValueError(f"temperatures for unknown experts {unknown}; experts: {list(self.expert_keys)}")
        bad = {k: v for k, v in temperatures.items() if not (math.isfinite(float(v)) and float(v) > 0)}
        if bad:
            raise ValueError(f"temperatures must be finite and positive, got {bad}")
        self.temperatures = {k: float(v) for k, v in temperatures.items()}

    def expert(self, key: str) -> nn.Module:
        """One expert by key: a modality, or ``<modality>@speaker`` for its speaker expert."""
        if key.endswith(SPEAKER_SUFFIX):
            return self.speaker_experts[key[: -len(SPEAKER_SUFFIX)]]
        return self.experts[key]

    def expert_logits(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """Temperature-scaled logits ``(B, C)`` of one expert (``key``: a modality or ``<modality>@speaker``)."""
        return self.expert(key)(x) / self.temperatures.get(key, 1.0)

    def zero_correction(self) -> None:
        """Output of the correction set to zero: the head becomes the experts' product."""
        last = linear_at(self.correction, -1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    @property
    def correction_active(self) -> bool:
        """Whether the correction changes anything (its output layer is not all zero)."""
        last = linear_at(self.correction, -1)
        return bool(last.weight.abs().sum() > 0 or last.bias.abs().sum() > 0)

    def expert_log_probs(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``(B, M, C)`` log-probabilities of every modality's expert (speaker expert where its key is given)."""
        out = []
        for n in self.names:
            speaker = features.get(n + SPEAKER_SUFFIX)
            if speaker is not None and n in self.speaker_experts:
                out.append(F.log_softmax(self.expert_logits(n + SPEAKER_SUFFIX, speaker), dim=-1))
            else:
                out.append(F.log_softmax(self.expert_logits(n, features[n]), dim=-1))
        return torch.stack(out, dim=1)

    def product_of_experts(self, features: Mapping[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``(B, C)`` of the product of the available modalities' experts."""
        log_probs = self.expert_log_probs(available_only(features, self.names, mask))
        weights = mask.to(log_probs.dtype).to(log_probs.device)[:, :, None]
        combined = ((log_probs - self.log_prior) * weights).sum(dim=1) + self.log_prior
        return F.log_softmax(combined, dim=-1)

    def fuse(self, product: torch.Tensor, method_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Fused logits from the experts' product and the method's logits."""
        side = torch.cat([product, F.log_softmax(method_logits.float(), dim=-1), mask.float().to(product.device)],
                         dim=-1)
        return product + self.correction(side)

    def forward(self, features: Mapping[str, torch.Tensor], mask: torch.Tensor,
                method_logits: torch.Tensor) -> torch.Tensor:
        """Fused logits ``(B, C)``."""
        return self.fuse(self.product_of_experts(features, mask), method_logits, mask)


def fit_correction(head: ExpertFusionHead, train: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
                   val: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], epochs: int = 30,
                   lr: float = 3e-3, batch_size: int = 256, seed: int = 0) -> dict[str, float | bool]:
    """Train only the correction of ``head``; keep it only if it lowers the validation loss.

    ``train`` and ``val`` are ``(product log-probs (N, C), method logits (N, C), masks (N, M), labels (N,))``
    computed beforehand with the experts and the method frozen.  Returns both validation
    losses and whether the correction was kept.
    """
    generator = torch.Generator().manual_seed(seed)
    product, method, mask, labels = train
    v_product, v_method, v_mask, v_labels = val
    optimiser = torch.optim.Adam(head.correction.parameters(), lr=lr)

    def val_loss() -> float:
        head.eval()
        with torch.no_grad():
            return float(F.cross_entropy(head.fuse(v_product, v_method, v_mask), v_labels))

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(head.fuse(product[idx], method[idx], mask[idx]), labels[idx])

    baseline, best, kept = _fit_if_it_helps(head, head.correction, head.zero_correction, batch_loss, val_loss,
                                            optimiser, len(labels), epochs, batch_size, generator)
    head.eval()
    return {"val_loss_product": baseline, "val_loss_fused": best if kept else baseline, "correction_kept": kept}


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, low: float = 0.05, high: float = 20.0) -> float:
    """The temperature ``T`` that minimises the NLL of ``softmax(logits / T)`` on held-out data.

    Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks",
    Sec. 4.2): one scalar per classifier, fitted on validation data; the argmax of one
    classifier is unchanged, but the product of several classifiers depends on how
    confident each is.  ``T`` is searched in ``[low, high]`` (golden section on ``log T``;
    the NLL is convex in ``1 / T``).
    """
    logits = logits.detach().float()
    labels = labels.detach().long()
    if len(labels) == 0 or not torch.isfinite(logits).all():
        raise ValueError("fit_temperature needs finite logits and at least one label")

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(logits / math.exp(log_t), labels))

    a, b = math.log(low), math.log(high)
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(c), nll(d)
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(d)
    return math.exp((a + b) / 2.0)
