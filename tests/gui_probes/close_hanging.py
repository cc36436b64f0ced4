"""Close the window while the pipeline cannot stop (an uninterruptible model call) and end the process.

Run in its own process by tests/test_gui_display_close.py.  Prints
``CLOSING <monotonic>`` just before the window is closed and
``SHUTDOWN <seconds> <stopped>`` once the window's shutdown returned; then
ends the process the way ``imer`` does.  A non-daemon thread that would
keep a normal interpreter exit waiting for a minute stands for a native
library's worker thread.
"""

from __future__ import annotations

import os
import sys
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from live_fakes import fake_rig  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.gui.main import _end_process  # noqa: E402
from app.gui.window import MainWindow  # noqa: E402
from imer_core.live.pipeline import LivePipeline, PipelineConfig  # noqa: E402


class StuckPipeline(LivePipeline):
    def stop(self) -> None:  # e.g. a speech-recognition call that cannot be interrupted
        time.sleep(60)


def main(settings_path: str) -> None:
    app = QApplication.instance() or QApplication([sys.argv[0]])
    rig = fake_rig()
    settings = QSettings(settings_path, QSettings.Format.IniFormat)
    window = MainWindow(PipelineConfig(use_shipped=False), pipeline_factory=lambda c: StuckPipeline(c, rig.parts()),
                        settings=settings, list_devices=False)
    window.show()
    window.start()
    threading.Thread(target=time.sleep, args=(60,), name="native-worker", daemon=False).start()
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)
    print(f"CLOSING {time.monotonic()}", flush=True)
    started = time.monotonic()
    window.close()
    stopped = window.shutdown()
    print(f"SHUTDOWN {time.monotonic() - started:.3f} {stopped}", flush=True)
    _end_process(0, stopped)


if __name__ == "__main__":
    main(sys.argv[1])
