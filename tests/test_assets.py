"""Runtime assets: where they are found, the IMER_ASSETS override, and light imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from imer_core import assets
from imer_core.features.face import FACE_MODEL_ENV, default_face_model_path
from imer_core.live.models import shipped_checkpoints

REPO = Path(__file__).resolve().parents[1]


def test_checkout_uses_its_own_assets(monkeypatch):
    monkeypatch.delenv(assets.ASSETS_ENV, raising=False)
    assert assets.assets_dir() == REPO / "assets"
    assert assets.demo_clip_path().is_file()
    assert assets.licence_path() == REPO / "LICENSE"
    assert set(shipped_checkpoints()) == {"cmarr", "imder", "rohydr"}


def test_imer_assets_overrides_every_asset(monkeypatch, tmp_path):
    monkeypatch.delenv(FACE_MODEL_ENV, raising=False)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "live_cmarr.pt").write_bytes(b"")
    monkeypatch.setenv(assets.ASSETS_ENV, str(tmp_path))
    assert assets.assets_dir() == tmp_path
    assert default_face_model_path() == tmp_path / "face_landmarker.task"  # the face model follows it too
    assert shipped_checkpoints() == {"cmarr": tmp_path / "models" / "live_cmarr.pt"}
    assert assets.demo_clip_path() == tmp_path / "demo" / "demo_clip.mp4"
    monkeypatch.setenv(FACE_MODEL_ENV, str(tmp_path / "own.task"))  # the more specific variable wins
    assert default_face_model_path() == tmp_path / "own.task"


def test_installed_package_is_used_outside_a_checkout(monkeypatch, tmp_path):
    """Without a checkout around imer_core, the assets come from the imer_assets package."""
    package = tmp_path / "site" / "imer_assets"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    monkeypatch.delenv(assets.ASSETS_ENV, raising=False)
    monkeypatch.setattr(assets, "_SOURCE_ROOT", tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "imer_assets", raising=False)
    assert assets.source_assets_dir() is None
    assert assets.assets_dir() == package


def test_import_and_help_do_not_import_torch():
    code = ("import sys, contextlib, io\n"
            "import imer_core\n"
            "assert 'torch' not in sys.modules, 'import imer_core imported torch'\n"
            "from app.cli import build_parser\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    try:\n"
            "        build_parser().parse_args(['--help'])\n"
            "    except SystemExit:\n"
            "        pass\n"
            "assert 'analyze' in out.getvalue()\n"
            "assert 'torch' not in sys.modules, 'imer --help imported torch'\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_version_option(capsys):
    from app.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.startswith("imer 0.1.0")
