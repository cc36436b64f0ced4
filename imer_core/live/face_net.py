"""A small facial-expression network on aligned 48×48 grayscale face crops.

:class:`FaceExpressionNet` is a small VGG-style CNN (about 300 k parameters)
sized for this project's shared 2-core CPU: it trains at about 80 images/s on
one loaded thread and runs in a few milliseconds per face.  (A
mini-Xception-style net of residual depthwise-separable blocks trained 3×
slower here for fewer parameters, so it was not used.)  Its penultimate layer
(:attr:`FaceExpressionNet.embedding_dim` values) is the live vision feature;
its classifier head predicts the seven live emotions.

:class:`FaceNetRunner` loads a shipped face-network file
(``assets/models/face_net.pt``) and turns crops made by
:func:`imer_core.features.face_crop.aligned_face_crop` into embeddings and
class probabilities.  torch is imported only when a network is built.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

FACE_NET_FILENAME = "face_net.pt"
FACE_NET_FORMAT = "imer-face-net-v1"
#: Prefix of the vision feature id of models fed by a face network (see :func:`face_net_feature_id`).
FACE_NET_FEATURE_PREFIX = "imer-face-net-v1"
#: Embedding size of the shipped network file (two networks of 128 side by side; the registered live
#: feature's; checked when it is loaded).
FACE_NET_EMBEDDING_DIM = 256


def build_face_net(widths: Sequence[int] = (16, 32, 64, 128), convs_per_stage: "int | Sequence[int]" = (1, 2, 2, 2),
                   embedding_dim: int = 128, num_classes: int = 7, dropout: float = 0.3) -> Any:
    """A new :class:`FaceExpressionNet` (torch ``nn.Module``).

    One stage per width: ``convs_per_stage`` 3×3 convolutions (batch norm,
    ReLU; one count for every stage or one per stage), then a 2×2 max-pool, so
    four stages take 48 pixels to 3.  A 1×1
    convolution to ``embedding_dim`` channels and global average pooling give
    the embedding; dropout and a linear layer give the class scores.
    """
    import torch
    from torch import nn

    class FaceExpressionNet(nn.Module):
        """VGG-style stages of 3×3 convolutions, global pooling, embedding, linear head."""

        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            cin = 1
            counts = [convs_per_stage] * len(widths) if isinstance(convs_per_stage, int) else list(convs_per_stage)
            if len(counts) != len(widths):
                raise ValueError(f"{len(widths)} stage widths but {len(counts)} convolution counts")
            for width, count in zip(widths, counts):
                for _ in range(count):
                    layers += [nn.Conv2d(cin, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                               nn.ReLU(inplace=True)]
                    cin = width
                layers.append(nn.MaxPool2d(2))
            self.features = nn.Sequential(*layers)
            self.embed = nn.Sequential(nn.Conv2d(cin, embedding_dim, 1, bias=False), nn.BatchNorm2d(embedding_dim),
                                       nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(embedding_dim, num_classes))
            self.embedding_dim = embedding_dim

        def embedding(self, x: torch.Tensor) -> torch.Tensor:
            """``(B, embedding_dim)`` features of ``(B, 1, 48, 48)`` crops scaled to ``[0, 1]``."""
            return self.embed(self.features(x - 0.5))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.embedding(x))

    return FaceExpressionNet()


def build_face_net_ensemble(members: Sequence[Mapping[str, Any]], flip_average: bool = True) -> Any:
    """Several face networks as one (torch ``nn.Module``): concatenated embeddings, mean class probability.

    ``members`` are :func:`build_face_net` configs.  The embedding is the members'
    embeddings side by side (``embedding_dim`` their sum); ``head`` maps it to the
    log of the members' mean class probability.  With ``flip_average`` every
    member's embedding is the mean of the embeddings of the crop and its mirror
    image (test-time flip augmentation; the networks were trained with random
    flips), so the output does not change when the face is mirrored.
    """
    import torch
    from torch import nn

    if not members:
        raise ValueError("a face-network ensemble needs at least one member")
    nets = [build_face_net(**dict(config)) for config in members]

    class FaceNetEnsemble(nn.Module):
        """Face networks side by side, optionally averaged over the crop and its mirror image."""

        def __init__(self) -> None:
            super().__init__()
            self.members = nn.ModuleList(nets)
            self.nets: list[Any] = list(nets)  # the same modules, typed for the calls below
            self.flip_average = bool(flip_average)
            self.sizes = [int(net.embedding_dim) for net in nets]
            self.embedding_dim = sum(self.sizes)

        def embedding(self, x: torch.Tensor) -> torch.Tensor:
            """``(B, embedding_dim)`` features of ``(B, 1, 48, 48)`` crops scaled to ``[0, 1]``."""
            if not self.flip_average:
                return torch.cat([net.embedding(x) for net in self.nets], dim=1)
            both = torch.cat([x, x.flip(-1)])
            parts = []
            for net in self.nets:
                plain, mirrored = net.embedding(both).chunk(2)
                parts.append((plain + mirrored) / 2)
            return torch.cat(parts, dim=1)

        def head(self, embedding: torch.Tensor) -> torch.Tensor:
            """Log mean class probability ``(B, C)`` of the members (their heads on their parts)."""
            parts = embedding.split(self.sizes, dim=1)
            log_probs = torch.stack([torch.log_softmax(net.head(part), dim=-1)
                                     for net, part in zip(self.nets, parts)])
            return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.embedding(x))

    return FaceNetEnsemble()


def build_face_net_from_config(config: Mapping[str, Any]) -> Any:
    """The network a face-network file's ``config`` describes.

    ``{"members": [...], "flip_average": bool}`` is an ensemble
    (:func:`build_face_net_ensemble`); any other config is one network
    (:func:`build_face_net`).
    """
    if "members" in config:
        unknown = sorted(set(config) - {"members", "flip_average"})
        if unknown:
            raise ValueError(f"unknown face-network ensemble settings {unknown}")
        return build_face_net_ensemble(list(config["members"]), bool(config.get("flip_average", True)))
    return build_face_net(**dict(config))


class FaceNetError(RuntimeError):
    """A face-network file is missing, corrupt or of another format."""


def default_face_net_path() -> Path:
    """``assets/models/face_net.pt`` (``$IMER_ASSETS`` overrides the assets folder)."""
    from ..assets import assets_dir  # light: no torch (imer_core.live.models imports it)

    return assets_dir() / "models" / FACE_NET_FILENAME


def save_face_net(path: "str | os.PathLike[str]", model: Any, config: dict[str, Any],
                  metadata: dict[str, Any]) -> None:
    """Write a face-network file: format tag, build config, weights and metadata."""
    import torch

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"format": FACE_NET_FORMAT, "config": dict(config), "state_dict": state,
                "metadata": dict(metadata)}, str(path))


def weights_id(path: "str | os.PathLike[str]") -> str:
    """First 12 hex digits of the SHA-256 of a face-network file: its embedding's identity.

    The embedding of one trained network means nothing to a model trained on
    another's, so the vision feature id names the weights, not just the format.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def face_net_feature_id(weights: str, embedding_dim: int, base_id: str) -> str:
    """Vision feature id of the face network's embedding followed by the ``base_id`` features."""
    return f"{FACE_NET_FEATURE_PREFIX}-{weights}-emb{int(embedding_dim)}+{base_id}"


class FaceNetRunner:
    """A loaded face network in evaluation mode.

    Args:
        path: the face-network file (default :func:`default_face_net_path`).

    Raises:
        FaceNetError: the file is missing, unreadable or not a face-network file.
    """

    def __init__(self, path: "str | os.PathLike[str] | None" = None) -> None:
        import torch

        self.path = Path(path) if path is not None else default_face_net_path()
        if not self.path.is_file():
            raise FaceNetError(f"face network not found at {self.path}")
        try:
            payload = torch.load(str(self.path), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
            from ..checkpoint import brief_load_error

            raise FaceNetError(f"cannot read face network {self.path}: {brief_load_error(exc)}") from exc
        if not isinstance(payload, dict) or payload.get("format") != FACE_NET_FORMAT:
            raise FaceNetError(f"{self.path} is not an {FACE_NET_FORMAT} file")
        self.config: dict[str, Any] = dict(payload["config"])
        self.metadata: dict[str, Any] = dict(payload.get("metadata", {}))
        try:
            self.model = build_face_net_from_config(self.config)
        except (TypeError, ValueError) as exc:
            raise FaceNetError(f"{self.path}: not a face-network configuration: {exc}") from exc
        try:
            self.model.load_state_dict(payload["state_dict"])
        except (RuntimeError, KeyError) as exc:
            raise FaceNetError(f"{self.path}: weights do not fit the network: {exc}") from exc
        self.model.eval()
        self._torch = torch
        self.weights_id = weights_id(self.path)

    @property
    def embedding_dim(self) -> int:
        """Length of one embedding."""
        return int(self.model.embedding_dim)

    def __call__(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(embeddings (B, D), probabilities (B, 7))`` of uint8 crops ``(B, 48, 48)`` or one ``(48, 48)``."""
        array = np.asarray(crops, np.uint8)
        if array.ndim == 2:
            array = array[None]
        with self._torch.inference_mode():
            x = self._torch.from_numpy(array.astype(np.float32) / 255.0)[:, None]
            embedding = self.model.embedding(x)
            probs = self._torch.softmax(self.model.head(embedding), dim=1)
        return embedding.numpy().astype(np.float32), probs.numpy().astype(np.float32)
