"""Ctrl-C / SIGTERM while imer is still starting (imports, model loading) ends it at once, with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHILD = ("import os, signal, time\n"
         "from app.signals import note_early_signals\n"
         "note_early_signals()\n"
         "os.kill(os.getpid(), signal.{sig})\n"
         "time.sleep(30)  # a slow import or model load would be here\n"
         "print('still running')\n")


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_during_start_up_ends_the_process_with_one_line(sig):
    done = subprocess.run([sys.executable, "-c", CHILD.format(sig=sig)], cwd=REPO, capture_output=True, text=True,
                          timeout=25, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 128 + getattr(signal, sig)
    assert "still running" not in done.stdout
    assert done.stderr.strip() == "imer: interrupted while starting"


def test_without_exit_now_the_signal_is_only_noted():
    child = ("import os, signal\nfrom app.signals import EARLY_STOP, note_early_signals\n"
             "note_early_signals(exit_now=False)\nos.kill(os.getpid(), signal.SIGINT)\n"
             "import time; time.sleep(0.05)\nprint('noted', EARLY_STOP.is_set())\n")
    done = subprocess.run([sys.executable, "-c", child], cwd=REPO, capture_output=True, text=True, timeout=25,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0 and "noted True" in done.stdout
