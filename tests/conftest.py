"""Shared fixtures: small models and a small synthetic MMSA-schema file."""

from __future__ import annotations

import os

import pytest
import torch

from imer_core.config import ModelConfig
from imer_core.registry import create_model

# Qt windows in tests render offscreen (no display needed); a real window runs under xvfb-run.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    """The test models are tiny: intra-op threads only add overhead, and when another
    process shares the 2-core machine OpenMP oversubscription slows tests down up to ~90x."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# Small specs and features live in a light module (spawned test processes import it without this file).
from small_model_data import SMALL_DIMS, SMALL_LEN, small_features, small_specs  # noqa: E402, F401


@pytest.fixture
def small_imder():
    torch.manual_seed(0)
    config = ModelConfig(method="imder", specs=small_specs(),
                         method_options={"sampler_steps": 3, "train_sampler_steps": 2})
    return create_model(config).eval()


# --- Demo clip / synthetic speech helpers (tests/clip_fixtures.py): fixture demo_test_clip ---
from clip_fixtures import demo_test_clip  # noqa: E402, F401

# --- Live pipeline fakes (tests/live_fakes.py): fixture live_checkpoints ---
from live_fakes import live_checkpoints, sources  # noqa: E402, F401

# --- Desktop-window fixtures (tests/gui_fixtures.py): checkpoints, settings, rig, make_window ---
try:
    import pyqtgraph  # noqa: F401
    import pytestqt  # noqa: F401
    from PySide6 import QtWidgets  # noqa: F401
except ImportError:  # the GUI tests skip themselves
    pass
else:
    from gui_fixtures import checkpoints, make_window, rig, settings  # noqa: E402, F401


def pytest_configure(config: pytest.Config) -> None:
    """``IMER_CPU_REPORT=N`` lists the N tests that used the most CPU seconds (tests/cpu_time_plugin.py)."""
    if os.environ.get("IMER_CPU_REPORT"):
        import cpu_time_plugin

        config.pluginmanager.register(cpu_time_plugin, "imer-cpu-time")
