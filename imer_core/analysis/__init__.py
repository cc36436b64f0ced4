"""Offline analysis of images, audio, video and text with the live model (``imer analyze``).

::

    from imer_core import analyze
    rows = analyze(["face.jpg", "speech.wav", "clips/"], text="I can't believe it!")
    rows[0].top_emotion, rows[0].probabilities, rows[0].observed, rows[0].error

* :func:`analyze` / :func:`iter_analyze` — rows (:class:`AnalysisRow`), see :mod:`.core`;
* :func:`collect_inputs` — what a list of paths and texts expands to, see :mod:`.inputs`;
* :func:`evaluate_labels` — accuracy, macro-F1, UAR, per-class recall and the
  confusion matrix of rows against a ``path,label`` CSV, see :mod:`.evaluate`;
* :func:`write_rows` — JSON, JSON Lines or CSV, see :mod:`.output`.

Importing this package loads numpy only; torch, MediaPipe, PyAV, the speech
recogniser and the sentence embedder load when an analysis starts.
"""

from __future__ import annotations

from .core import AnalysisOptions, AnalysisRow, analyze, iter_analyze
from .evaluate import LabelEvaluation, evaluate_labels, read_label_map, read_labels
from .inputs import AnalysisInput, CollectedInputs, collect_inputs
from .output import FORMATS, write_rows

__all__ = ["AnalysisInput", "AnalysisOptions", "AnalysisRow", "CollectedInputs", "FORMATS", "LabelEvaluation",
           "analyze", "collect_inputs", "evaluate_labels", "iter_analyze", "read_label_map", "read_labels",
           "write_rows"]
