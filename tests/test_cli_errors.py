"""User errors are one line; internal errors (bugs) always show their traceback."""

from __future__ import annotations

import io

import pytest

import training.cli
from imer_core import cli_errors
from imer_core.cli_errors import EXIT_INTERNAL_ERROR, EXIT_USER_ERROR, is_user_error, report_error
from imer_core.modalities import as_modality, subset_name
from training.cli import main as cli_main


def _raised(call, *args) -> BaseException:
    try:
        call(*args)
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return exc
    raise AssertionError("nothing raised")


def test_deliberate_errors_of_the_project_are_user_errors_and_library_or_lookup_failures_are_not(tmp_path):
    assert is_user_error(_raised(as_modality, "smell"))  # a `raise ValueError(...)` in imer_core
    assert is_user_error(_raised(open, tmp_path / "missing.txt"))  # a file the user named
    assert not is_user_error(_raised(subset_name, 5))  # TypeError from a line of ours that is no `raise`
    assert not is_user_error(_raised(lambda: {}["key"]))  # KeyError from a lookup outside the project
    assert not is_user_error(_raised(int, "x"))  # ValueError from inside Python itself


def test_imer_train_user_error_is_one_line_without_traceback(capsys):
    assert cli_main(["train", "--config", "no_such_config", "--synthetic"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith("imer-train: error: experiment config 'no_such_config' not found")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_imer_train_debug_shows_the_traceback_of_a_user_error(capsys):
    assert cli_main(["--debug", "train", "--config", "no_such_config", "--synthetic"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "FileNotFoundError" in err
    assert err.strip().splitlines()[-1].startswith("imer-train: error: experiment config 'no_such_config'")


@pytest.mark.parametrize("error", [KeyError("feature_normalization"), ValueError("operands could not be broadcast"),
                                   RuntimeError("mat1 and mat2 shapes cannot be multiplied")])
def test_imer_train_internal_error_keeps_its_traceback(monkeypatch, capsys, error):
    def buggy_command(args) -> int:
        raise error  # stands for a failure inside a library or a bug: raised outside the project's packages

    monkeypatch.setattr(training.cli, "cmd_synth", buggy_command)
    assert cli_main(["synth", "--out", "unused"]) == EXIT_INTERNAL_ERROR
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "buggy_command" in err
    assert "imer-train: internal error" in err and "please report it" in err
    assert "imer-train: error:" not in err


def test_report_error_formats_both_kinds():
    out = io.StringIO()
    assert report_error(_raised(as_modality, "smell"), "tool", out=out) == EXIT_USER_ERROR
    assert out.getvalue() == "tool: error: unknown modality 'smell'; expected one of text/audio/vision (or l/a/v)\n"
    out = io.StringIO()
    assert report_error(_raised(subset_name, 5), "tool", out=out) == EXIT_INTERNAL_ERROR
    assert "Traceback" in out.getvalue() and "tool: internal error (TypeError" in out.getvalue()


def test_imer_run_does_not_hide_a_bug_behind_a_one_line_message(monkeypatch, tmp_path, capsys):
    import imer_core.live.pipeline as pipeline_module
    from app.cli import main as imer_main

    def broken_pipeline(*args, **kwargs):
        return [][1]  # IndexError: a bug, not a user error

    def library_value_error(*args, **kwargs):
        return int("not a number")  # ValueError raised inside Python, not by the project

    monkeypatch.setattr(pipeline_module, "LivePipeline", broken_pipeline)
    with pytest.raises(IndexError):
        imer_main(["run", "--source", "webcam", "--out", str(tmp_path / "s")])
    monkeypatch.setattr(pipeline_module, "LivePipeline", library_value_error)
    with pytest.raises(ValueError, match="invalid literal"):
        imer_main(["run", "--source", "webcam", "--out", str(tmp_path / "s")])
    monkeypatch.undo()  # a user error keeps its one line (a deliberate `raise` in the project's code)
    assert imer_main(["run", "--source", "webcam", "--hop", "0", "--out", str(tmp_path / "s")]) == 2
    assert "imer:" in capsys.readouterr().err


def test_only_the_lines_of_a_raise_statement_count_as_one(tmp_path):
    source = tmp_path / "module.py"
    source.write_text('def f(d, ok):\n    if not ok:\n        raise ValueError(\n            "not ok")\n'
                      '    return d["missing"]\n')
    assert cli_errors._is_raise_statement(str(source), 3)  # the raise
    assert cli_errors._is_raise_statement(str(source), 4)  # its continuation line
    # a lookup right after a raise is a bug, not a deliberate error (the old look-back counted it)
    assert not cli_errors._is_raise_statement(str(source), 5)
    assert not cli_errors._is_raise_statement(str(source), 2)


@pytest.mark.parametrize(("settings", "words"), [
    (["model.d_model=8"], "score_channels[0] (32) must equal model.d_model (8)"),
    (["model.d_model=8", "model.options.score_channels=[8, 32]"], "every level must be a multiple of 32"),
])
def test_an_imder_width_its_score_network_cannot_run_is_a_user_error(tmp_path, capsys, settings, words):
    """Before: model.d_model=8 trained until the U-Net's first cross-attention failed with a size mismatch
    reported as an internal error."""
    sets = [arg for s in settings for arg in ("--set", s)]
    assert cli_main(["train", "--config", "quick_synthetic", "--synthetic", "--out", str(tmp_path / "r"),
                     "--no-progress", "--set", "data.synthetic_sizes=[16, 8, 8]", *sets]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and "internal error" not in err
