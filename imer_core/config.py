"""Model configuration: everything needed to rebuild a model from a checkpoint.

Configurations are frozen dataclasses made of plain types so that a checkpoint
can store them as dictionaries and be read back with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any

from .modalities import FeatureSpecs

REGRESSION = "regression"
CLASSIFICATION = "classification"

# Label space of the live app (issue: live pipeline / shipped model).
LIVE_EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")


@dataclass(frozen=True)
class FusionConfig:
    """Hyper-parameters of the MulT fusion backbone (names follow the IMDer/MMSA configs).

    Defaults are IMDer's MOSI settings (``config/config.json`` of the reference code).
    The methods built on MulT (IMDer, RoHyDR) hold it as their ``fusion`` option.
    """

    d_model: int = 32
    num_heads: int = 8
    nlevels: int = 4
    mem_layers: int = 3
    conv_kernel_l: int = 3
    conv_kernel_a: int = 3
    conv_kernel_v: int = 3
    attn_dropout: float = 0.0
    attn_dropout_a: float = 0.2
    attn_dropout_v: float = 0.0
    relu_dropout: float = 0.0
    embed_dropout: float = 0.2
    res_dropout: float = 0.0
    output_dropout: float = 0.0
    text_dropout: float = 0.0
    attn_mask: bool = True


@dataclass(frozen=True)
class ModelConfig:
    """A complete, self-describing model configuration.

    Attributes:
        method: registry name of the recovery method (``"imder"``, ...).
        specs: input feature specifications.
        task: ``"regression"`` (one output, MOSI/MOSEI sentiment) or ``"classification"``.
        labels: names of the outputs (class names, or ``("sentiment",)`` for regression).
        method_options: method-specific options (a plain dict; each method
            parses it into its own frozen options dataclass).  The methods built
            on MulT take its settings as ``method_options["fusion"]`` (a
            :class:`FusionConfig` or a dict of its fields).
        expert_fusion: ``None``, or the settings of an
            :class:`~imer_core.nn.expert_fusion.ExpertFusionHead` on top of the
            method (classification only): the prediction becomes the product of
            per-modality experts plus a correction from the method's own output.
    """

    method: str
    specs: FeatureSpecs
    task: str = REGRESSION
    labels: tuple[str, ...] = ("sentiment",)
    method_options: Mapping[str, Any] = field(default_factory=dict)
    expert_fusion: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.task not in (REGRESSION, CLASSIFICATION):
            raise ValueError(f"task must be {REGRESSION!r} or {CLASSIFICATION!r}, got {self.task!r}")
        object.__setattr__(self, "labels", tuple(self.labels))
        if self.task == REGRESSION and len(self.labels) != 1:
            raise ValueError("a regression model has exactly one output label")
        if self.task == CLASSIFICATION and len(self.labels) < 2:
            raise ValueError("a classification model needs at least two class labels")
        object.__setattr__(self, "method_options", dict(self.method_options))
        if self.expert_fusion is not None:
            if self.task != CLASSIFICATION:
                raise ValueError("expert fusion needs a classification model")
            object.__setattr__(self, "expert_fusion", dict(self.expert_fusion))

    @property
    def output_dim(self) -> int:
        """Number of network outputs (1 for regression, number of classes otherwise)."""
        return 1 if self.task == REGRESSION else len(self.labels)

    def with_options(self, **options: Any) -> "ModelConfig":
        """Copy with some method options replaced."""
        return replace(self, method_options={**self.method_options, **options})

    def to_dict(self) -> dict[str, Any]:
        """Plain-type dictionary (for checkpoints and run folders)."""
        return {
            "method": self.method,
            "specs": self.specs.to_dict(),
            "task": self.task,
            "labels": list(self.labels),
            "method_options": _plain(self.method_options),
            **({"expert_fusion": _plain(self.expert_fusion)} if self.expert_fusion is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        """Rebuild a configuration from :meth:`to_dict`'s output.

        Configurations written before MulT's settings became a method option hold
        them in a top-level ``"fusion"`` entry: they move into the options of a
        method that takes a ``fusion`` option and are dropped for one that does not
        (CM-ARR never used them).
        """
        method = str(data["method"])
        options = dict(data.get("method_options", {}))
        if "fusion" in data:
            if not isinstance(data["fusion"], Mapping):  # malformed even where it is dropped (CM-ARR)
                raise ValueError(f"the fusion entry must be a table of MulT settings, got {data['fusion']!r}")
            options = fold_fusion_option(method, options, data["fusion"], legacy=True)
        return cls(
            method=method,
            specs=FeatureSpecs.from_dict(data["specs"]),
            task=str(data.get("task", REGRESSION)),
            labels=tuple(data.get("labels", ("sentiment",))),
            method_options=options,
            expert_fusion=dict(data["expert_fusion"]) if data.get("expert_fusion") is not None else None,
        )


def fusion_config(value: "FusionConfig | Mapping[str, Any]", legacy: bool = False) -> FusionConfig:
    """A :class:`FusionConfig` from itself or a dict of its fields.

    Raises:
        ValueError: unknown fields (``legacy``: dropped instead, for old checkpoints).
    """
    if isinstance(value, FusionConfig):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"the fusion option must be a table of MulT settings, got {value!r}")
    known = {f.name for f in fields(FusionConfig)}
    unknown = sorted(set(value) - known)
    if unknown and not legacy:
        raise ValueError(f"unknown fusion option(s) {unknown}; known: {sorted(known)}")
    return FusionConfig(**{k: v for k, v in value.items() if k in known})


def fold_fusion_option(method: str, options: Mapping[str, Any], fusion: "FusionConfig | Mapping[str, Any]",
                       legacy: bool = False) -> dict[str, Any]:
    """``options`` with MulT settings given beside them folded into a ``fusion`` option.

    For a method whose options take ``fusion`` (looked up in the registry) the
    result's ``fusion`` is ``fusion`` updated by any ``options["fusion"]``; for any
    other method — or an unknown one, which fails later with a clear message —
    ``options`` come back unchanged.

    Raises:
        ValueError: ``options["fusion"]`` is neither a :class:`FusionConfig` nor a table.
    """
    from .registry import get_method_class

    try:
        options_class = get_method_class(method).options_class
    except KeyError:
        return dict(options)
    if not is_dataclass(options_class) or "fusion" not in {f.name for f in fields(options_class)}:
        return dict(options)
    base = asdict(fusion_config(fusion, legacy=legacy))
    given = options.get("fusion", {})
    if isinstance(given, FusionConfig):
        given = asdict(given)
    elif not isinstance(given, Mapping):
        raise ValueError(f"the fusion option must be a table of MulT settings, got {given!r}")
    return {**options, "fusion": {**base, **given}}


def options_from_dict(options_class: type, data: Mapping[str, Any]) -> Any:
    """Build a frozen options dataclass from a dict, rejecting unknown keys clearly.

    Lists are turned into tuples so that options stay hashable and comparable.
    """
    known = {f.name for f in fields(options_class)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {options_class.__name__} option(s) {unknown}; known: {sorted(known)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return options_class(**values)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
