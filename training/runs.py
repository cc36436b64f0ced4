"""Run folders: config, seed, git commit, per-epoch CSV log and final metrics of one run."""

from __future__ import annotations

import csv
import json
import platform
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch


def git_commit(cwd: Path | None = None) -> str:
    """Current git commit of the source tree (``"unknown"`` outside a git checkout)."""
    here = cwd or Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip()
    if out.returncode != 0 or not commit:
        return "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                           capture_output=True, text=True, timeout=5).stdout.strip()
    return commit + ("-dirty" if dirty else "")


def machine_info() -> dict[str, Any]:
    """Short description of the machine a run or benchmark used."""
    info = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpu_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


class RunFolder:
    """Writes one run's files; everything is flushed as soon as it is written.

    Files: ``config.json`` (experiment, seed, protocol, git commit, machine),
    ``epochs.csv`` (one row per epoch and stage), ``metrics.json`` (final
    metrics) and checkpoints.
    """

    EPOCH_FIELDS = ("stage", "epoch", "train_loss", "valid_loss", "valid_key", "learning_rate",
                    "seconds", "realised_missing_rate")

    def __init__(self, path: Path, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        if enabled:
            self.path.mkdir(parents=True, exist_ok=True)

    def write_config(self, config: Mapping[str, Any]) -> None:
        """Write ``config.json`` with the git commit, machine and start time added."""
        full = {**config, "git_commit": git_commit(), "machine": machine_info(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self.write_json("config.json", full)

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        """Append one row to ``epochs.csv``."""
        if not self.enabled:
            return
        target = self.path / "epochs.csv"
        new = not target.exists()
        with target.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.EPOCH_FIELDS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: _fmt(row.get(k, "")) for k in self.EPOCH_FIELDS})

    def write_json(self, name: str, data: Any) -> Path:
        """Write a JSON file in the run folder."""
        target = self.path / name
        if self.enabled:
            target.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        return target


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value
