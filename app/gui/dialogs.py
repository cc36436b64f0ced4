"""The about box: what this is, the model card, and the licences."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTabWidget, QTextBrowser, QVBoxLayout, QWidget

from imer_core.assets import assets_dir, licence_path

from .style import EMOTION_COLORS, MODALITY_COLORS, PANEL_ORDER, STATE_COLORS, STATE_MEANINGS, method_name

ABOUT = """# IMER — incomplete multimodal emotion recognition

Version {version}. Live emotion recognition from a camera, a microphone and the transcribed speech.
When a modality is switched off or failing, a recovery method (IMDer, RoHyDR or CM-ARR) generates
it from the others, and the badges say so.

**Model in use:** {models}

**Device:** {device}

Research software: the predictions are estimates of displayed emotion, not of what anyone feels.
Read the model card before relying on them.
"""

NO_MODEL_CARD = """# No model card

`{path}` is not there. This copy of IMER ships no documented trained model: without a checkpoint
(`--checkpoint` or *Model ▸ Load checkpoints...*) the window shows the modality states and features
but **no emotion prediction**.
"""


def licence_files() -> list[Path]:
    """The licence texts shown in the about box (the project's, then third-party notices)."""
    assets = assets_dir()
    return [licence_path(), *sorted(assets.glob("NOTICE-*.md")), assets / "demo" / "README.md"]


def model_card_markdown() -> str:
    """``assets/MODEL_CARD.md``, or a note that it is missing."""
    path = assets_dir() / "MODEL_CARD.md"
    return path.read_text(encoding="utf-8") if path.is_file() else NO_MODEL_CARD.format(path=path)


def licences_markdown() -> str:
    """The licence texts of :func:`licence_files` as one Markdown document (a note for each missing file)."""
    parts = []
    for path in licence_files():
        if not path.is_file():
            parts.append(f"## {path.name}\n\n*({path} is not part of this installation.)*")
            continue
        text = path.read_text(encoding="utf-8")
        parts.append(text if path.suffix == ".md" else f"## {path.name}\n\n```\n{text}\n```")
    return "\n\n---\n\n".join(parts)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("imer")
    except PackageNotFoundError:
        return "development"


class AboutDialog(QDialog):
    """Tabs: About, Model card (``assets/MODEL_CARD.md``), Licences."""

    def __init__(self, checkpoints: Mapping[str, Path], device: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About IMER")
        self.resize(720, 560)
        models = ", ".join(f"{method_name(m)} (`{p.name}`)" for m, p in checkpoints.items()) or "none loaded"
        self.tabs = QTabWidget()
        for title, text in (("About", ABOUT.format(version=_version(), models=models, device=device.upper())),
                            ("Model card", model_card_markdown()), ("Licences", licences_markdown())):
            browser = QTextBrowser()
            browser.setOpenExternalLinks(True)
            browser.setMarkdown(text)
            self.tabs.addTab(browser, title)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(buttons)

    def tab_text(self, title: str) -> str:
        """Plain text of a tab (for tests)."""
        for k in range(self.tabs.count()):
            if self.tabs.tabText(k) == title:
                widget = self.tabs.widget(k)
                if isinstance(widget, QTextBrowser):
                    return widget.toPlainText()
        raise KeyError(title)


class HelpDialog(QDialog):
    """A small non-modal help window (keyboard shortcuts, legend)."""

    def __init__(self, title: str, html: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.resize(520, 420)
        self.browser = QTextBrowser()
        self.browser.setHtml(html)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)


def shortcuts_html(rows: list[tuple[str, str]]) -> str:
    """A table of ``(key, what it does)``."""
    body = "".join(f"<tr><td><b>{key}</b></td><td>{what}</td></tr>" for key, what in rows)
    return f"<h3>Keyboard shortcuts</h3><table cellpadding='3'>{body}</table>"


def legend_html(method: str | None) -> str:
    """What the badge states and the timeline's colours mean."""
    states = "".join(
        f"<tr><td><span style='background:{STATE_COLORS[key]}; color:white; padding:2px 6px'>&nbsp;"
        f"{key if key != 'recovered' else f'… · recovered by {method_name(method)}'}&nbsp;</span></td>"
        f"<td>{meaning}</td></tr>" for key, meaning in STATE_MEANINGS.items())
    emotions = " ".join(f"<span style='color:{color}'>━━</span> {label}" for label, color in EMOTION_COLORS.items())
    strips = " ".join(f"<span style='color:{MODALITY_COLORS[name]}'>■■</span> {name}" for name in PANEL_ORDER)
    return (f"<h3>Modality states</h3><table cellpadding='3'>{states}</table>"
            f"<h3>Timeline</h3><p>Curves: {emotions}</p>"
            f"<p>Strips under the curves (a modality's strip is filled while it was recovered, not observed): "
            f"{strips}</p><p>A curve is broken where there was no prediction (every modality off, a source "
            "switch). The bars and curves show smoothed probabilities unless Smoothing is off.</p>"
            "<h3>Compare</h3><p>While a modality is missing, the Emotion panel also shows the same network's "
            "prediction <i>without recovery</i> (the missing input at its training mean) and how often the two "
            "agreed in the last minute. With every modality observed, <i>Hide to compare</i> shows the "
            "prediction with one modality hidden and recovered beside the observed one.</p>")
