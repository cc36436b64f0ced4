"""The wheel works outside the source tree: it ships the runtime assets and runs ``imer run`` and ``imer analyze``.

The wheel is built offline (``pip wheel --no-deps --no-build-isolation``)
from a clean copy of the source tree and installed with ``--no-deps`` into a
fresh virtual environment in a temporary folder.  That environment sees the
test environment's third-party packages through a ``.pth`` line (a ``.pth``
line adds the folder only: the editable install of the checkout that may live
there is not activated), so nothing is downloaded; the commands run with
that folder as working directory and no ``PYTHONPATH``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", "runs",
                                "sessions", ".pytest_cache", "outputs", "*.whl")
RUNTIME_ASSETS = {"imer_assets/__init__.py", "imer_assets/face_landmarker.task", "imer_assets/MODEL_CARD.md",
                  "imer_assets/NOTICE-face_landmarker.md", "imer_assets/demo/demo_clip.mp4",
                  "imer_assets/demo/README.md", "imer_assets/models/live_cmarr.pt",
                  "imer_assets/models/face_net.pt"}  # the live vision feature runs the face network

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done


def _pip_has_python_option() -> bool:
    from importlib.metadata import version

    major, minor = (int(part) for part in version("pip").split(".")[:2])
    return (major, minor) >= (22, 3)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is needed to build the wheel offline (pip install setuptools)")
    root = tmp_path_factory.mktemp("wheel")
    source, wheels, venv = root / "source", root / "wheels", root / "venv"
    shutil.copytree(REPO, source, ignore=IGNORE)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "IMER_ASSETS",
                                                            "IMER_FACE_LANDMARKER_MODEL")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", OMP_NUM_THREADS="1")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
          str(source)], root, env)
    (wheel,) = wheels.glob("imer-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    missing = RUNTIME_ASSETS - names
    assert not missing, f"the wheel lacks {sorted(missing)}"
    assert not any(n.startswith("imer_core/") and "demo_clip" in n for n in names), "asset generator in runtime"
    python = venv / "bin" / "python"
    if _pip_has_python_option():  # pip >= 22.3 installs into another environment: no pip needed there
        _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root, env)
        _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
             root, env)
    else:
        _run([sys.executable, "-m", "venv", str(venv)], root, env)
        _run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], root, env)
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        root, env).stdout.strip())
    (purelib / "imer_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    shutil.rmtree(source)  # nothing of the source tree is left to fall back on
    return venv, env


def test_installed_wheel_runs_imer_and_analyze(installed, tmp_path):
    from matplotlib import cbook

    venv, env = installed
    bin_dir = venv / "bin"
    where = _run([str(bin_dir / "python"), "-c",
                  "import imer_core, imer_core.assets as a; print(imer_core.__file__); print(a.assets_dir()); "
                  "print(a.demo_clip_path())"], tmp_path, env).stdout.split()
    assert where[0].startswith(str(venv)) and where[1].startswith(str(venv)) and Path(where[2]).is_file()
    assert _run([str(bin_dir / "imer"), "--version"], tmp_path, env).stdout.startswith("imer 0.1.0")
    done = _run([str(bin_dir / "imer"), "run", "--source", where[2], "--duration", "4", "--disable", "text",
                 "--quiet", "--out", str(tmp_path / "sessions"), "--device", "cpu"], tmp_path, env)
    assert "session written to" in done.stderr
    (session,) = (tmp_path / "sessions").iterdir()
    assert (session / "predictions.jsonl").is_file()
    image = tmp_path / "face.jpg"
    shutil.copy(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), image)
    done = _run([str(bin_dir / "imer"), "analyze", str(image), "--modalities", "vision"], tmp_path, env)
    (row,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert row["face_found"] is True and row["error"] == "" and row["top_emotion"] and row["method"] == "cmarr"
