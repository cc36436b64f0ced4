"""Which torch device a ``--device`` request means: one rule for the app, the analysis and training."""

from __future__ import annotations

DEVICE_CHOICES = ("auto", "cpu", "cuda")


class DeviceUnavailable(RuntimeError):
    """CUDA was requested but no CUDA device is available."""


def resolve_device(request: str | None = "auto") -> str:
    """``"auto"`` → ``"cuda"`` when a CUDA device is present, else ``"cpu"``; ``"cpu"``, ``"cuda"`` and
    ``"cuda:N"`` are kept.

    Raises:
        DeviceUnavailable: CUDA requested without a CUDA device.
        ValueError: anything else.
    """
    import torch

    text = (request or "auto").strip().lower()
    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return text
    if text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit()):
        if not torch.cuda.is_available():
            raise DeviceUnavailable(f"device {text!r} was requested but no CUDA device is available; "
                                    "use --device cpu")
        return text
    raise ValueError(f"unknown device {request!r}; expected auto, cpu or cuda")
