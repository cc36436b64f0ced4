"""Self-describing checkpoints.

One file holds everything needed to rebuild and use a model: the format name
and version, the method name, the full :class:`~imer_core.config.ModelConfig`
(feature specs, label space and method options), free-form metadata
(training data, metrics, git commit, ...) and the state dict.  Only plain
Python types and tensors are stored, so files load with
``torch.load(..., weights_only=True)`` and never execute code.
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .config import ModelConfig
from .methods.base import RecoveryModel
from .registry import create_model

FORMAT_NAME = "imer-checkpoint"
FORMAT_VERSION = 1
_REQUIRED_KEYS = ("format", "format_version", "method", "config", "state_dict")
#: A checkpoint's members are stored uncompressed by torch.save; a file whose
#: members declare more than this many times its own size (plus slack) is refused
#: before anything is read (a zip bomb, or a corrupt directory).
_MAX_EXPANSION, _EXPANSION_SLACK = 4, 64 << 20


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt, truncated or does not match the model."""


def save_checkpoint(model: RecoveryModel, path: "str | os.PathLike[str]",
                    metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` with its configuration and ``metadata`` to ``path`` atomically.

    The file is written to a temporary name and renamed, so an interrupted save
    never leaves a truncated checkpoint behind.
    """
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"refusing to save a model with NaN or infinite weights ({len(bad)} tensors, "
                              f"e.g. {bad[0]}) to {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "method": model.config.method,
        "config": model.config.to_dict(),
        "metadata": _plain(dict(metadata or {})),
        "state_dict": state,
    }
    fd, tmp_name = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp_name)
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return path


def brief_load_error(exc: BaseException) -> str:
    """One line naming a loading error: torch's multi-line messages reduced to their substance."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for i, line in enumerate(lines):
        marker = "WeightsUnpickler error:"  # torch.load(weights_only=True) refusing an object
        if marker in line:
            detail = line.split(marker, 1)[1].strip() or (lines[i + 1] if i + 1 < len(lines) else "")
            return f"{type(exc).__name__}: {detail.split('. ')[0][:200]}"  # not torch's advice to allow it
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


def read_checkpoint(path: "str | os.PathLike[str]") -> dict[str, Any]:
    """Read and validate a checkpoint's contents without building the model."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is empty")
    _check_declared_size(path, size)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (zipfile.BadZipFile, EOFError, RuntimeError, ValueError, io.UnsupportedOperation) as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({brief_load_error(exc)}); "
                              "re-download or re-train it") from exc
    except Exception as exc:  # the unpickler rejects foreign objects with various types
        raise CheckpointError(f"checkpoint {path} could not be read safely ({brief_load_error(exc)}): not an IMER "
                              "checkpoint, or it holds objects other than tensors and plain values") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path} is not an IMER checkpoint (expected format {FORMAT_NAME!r})")
    missing = [k for k in _REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}")
    version = payload["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"checkpoint {path} has an invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {version}, "
                              f"newer than this library supports ({FORMAT_VERSION}); upgrade imer")
    _check_types(path, payload)
    return payload


def _check_declared_size(path: Path, size: int) -> None:
    """Refuse a file whose zip members declare far more bytes than the file holds (before reading them)."""
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return  # not a zip: torch.load reports it (legacy format or corrupt)
    if declared > _MAX_EXPANSION * size + _EXPANSION_SLACK:
        raise CheckpointError(f"checkpoint {path} declares {declared} bytes of content in a {size}-byte file; "
                              "it is corrupt or hostile")


def _check_types(path: Path, payload: Mapping[str, Any]) -> None:
    """Types of the fields every reader relies on; non-finite weights."""
    if not isinstance(payload["method"], str) or not payload["method"]:
        raise CheckpointError(f"checkpoint {path}: 'method' must be a non-empty string")
    if not isinstance(payload["config"], Mapping):
        raise CheckpointError(f"checkpoint {path}: 'config' must be a dict, got {type(payload['config']).__name__}")
    metadata = payload.get("metadata", {})
    if not isinstance(metadata, Mapping):
        raise CheckpointError(f"checkpoint {path}: 'metadata' must be a dict, got {type(metadata).__name__}")
    state = payload["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                 for k, v in state.items()):
        raise CheckpointError(f"checkpoint {path}: 'state_dict' must map parameter names to tensors")
    bad = {k: int((~torch.isfinite(v)).sum()) for k, v in state.items()
           if (v.is_floating_point() or v.is_complex()) and not bool(torch.isfinite(v).all())}
    if bad:
        total = sum(int(state[k].numel()) for k in bad)
        raise CheckpointError(f"checkpoint {path} holds {sum(bad.values())} NaN or infinite weights (in "
                              f"{len(bad)} tensors of {total} values, e.g. {next(iter(bad))}); "
                              "the training diverged or the file is corrupt - retrain it")


def load_checkpoint(path: "str | os.PathLike[str]", map_location: "str | torch.device" = "cpu",
                    expected_method: str | None = None) -> RecoveryModel:
    """Rebuild the model stored in ``path`` (in eval mode) and load its weights.

    Raises:
        CheckpointError: file missing, corrupt or truncated, unknown method,
            fields of the wrong type, NaN or infinite weights, or a state dict
            that does not fit the configuration.  No other exception escapes
            for a malformed file.
    """
    payload = read_checkpoint(path)
    if expected_method is not None and payload["method"] != expected_method:
        raise CheckpointError(f"checkpoint {path} holds method {payload['method']!r}, expected {expected_method!r}")
    try:
        config = ModelConfig.from_dict(payload["config"])
        model = create_model(config)
    except CheckpointError:
        raise
    except Exception as exc:  # from_dict / the method's constructor reject bad values in many ways
        raise CheckpointError(f"checkpoint {path} has an invalid configuration: "
                              f"{type(exc).__name__}: {exc}") from exc
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path} does not match its {payload['method']} configuration: {exc}") from exc
    model.checkpoint_metadata = dict(payload.get("metadata", {}))
    return model.to(map_location).eval()


def checkpoint_info(path: "str | os.PathLike[str]") -> dict[str, Any]:
    """What a checkpoint file holds besides the weights: method, config, versions and ``"metadata"``.

    (A loaded model keeps the metadata alone as :attr:`RecoveryModel.checkpoint_metadata`.)
    """
    payload = read_checkpoint(path)
    keys = ("method", "config", "format_version", "package_version")
    info: dict[str, Any] = {k: payload[k] for k in keys if k in payload}
    info["metadata"] = payload.get("metadata", {})
    return info


def _plain(value: Any) -> Any:
    """Convert metadata to types accepted by the weights-only unpickler."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return str(value)
