"""Label mapping of the four live-model corpora onto the live label space.

The live app predicts :data:`imer_core.config.LIVE_EMOTIONS` = neutral, happy,
sad, angry, fearful, disgusted, surprised.  Each corpus names its emotions in
its own way; :data:`CORPUS_LABEL_MAPS` maps every source label to a live label
or to ``None`` (the sample is dropped).

Two source labels have no counterpart in the live space:

* **RAVDESS "calm"** is mapped to **neutral**.  RAVDESS's calm is a
  low-arousal, neutral-valence delivery of the same two sentences; its
  authors introduced it next to neutral and many studies merge the two.
  Keeping it also balances RAVDESS (neutral has 96 clips, every other emotion
  192, because neutral was recorded at normal intensity only).
* **EmoDB "boredom"** is **dropped** (81 utterances).  Boredom is low arousal
  with negative valence: it is neither neutral nor sad, and mapping it to
  either would teach the model that one of those sounds bored.

Source labels are kept in the feature caches, so another mapping only needs a
new dataset build, not a new extraction.
"""

from __future__ import annotations

from collections.abc import Mapping

from imer_core.config import LIVE_EMOTIONS

LIVE_LABELS: tuple[str, ...] = LIVE_EMOTIONS
LIVE_INDEX: dict[str, int] = {name: i for i, name in enumerate(LIVE_LABELS)}

FER2013_MAP: dict[str, str | None] = {
    "angry": "angry", "disgust": "disgusted", "fear": "fearful", "happy": "happy",
    "neutral": "neutral", "sad": "sad", "surprise": "surprised",
}
MELD_MAP: dict[str, str | None] = {
    "neutral": "neutral", "joy": "happy", "sadness": "sad", "anger": "angry",
    "fear": "fearful", "disgust": "disgusted", "surprise": "surprised",
}
RAVDESS_CODES: dict[str, str] = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised",
}
RAVDESS_MAP: dict[str, str | None] = {
    "neutral": "neutral", "calm": "neutral", "happy": "happy", "sad": "sad",
    "angry": "angry", "fearful": "fearful", "disgust": "disgusted", "surprised": "surprised",
}
EMODB_CODES: dict[str, str] = {
    "W": "anger", "L": "boredom", "E": "disgust", "A": "fear",
    "F": "happiness", "T": "sadness", "N": "neutral",
}
EMODB_MAP: dict[str, str | None] = {
    "anger": "angry", "boredom": None, "disgust": "disgusted", "fear": "fearful",
    "happiness": "happy", "sadness": "sad", "neutral": "neutral",
}

CORPUS_LABEL_MAPS: dict[str, Mapping[str, str | None]] = {
    "fer2013": FER2013_MAP, "meld": MELD_MAP, "ravdess": RAVDESS_MAP, "emodb": EMODB_MAP,
}


def live_label(corpus: str, source_label: str) -> str | None:
    """Live label of a corpus label, or ``None`` when the sample is dropped.

    Raises:
        KeyError: unknown corpus or a label the corpus does not define.
    """
    mapping = CORPUS_LABEL_MAPS[corpus]
    if source_label not in mapping:
        raise KeyError(f"{corpus}: unknown emotion label {source_label!r}; known: {sorted(mapping)}")
    return mapping[source_label]


def live_index(corpus: str, source_label: str) -> int:
    """Index into :data:`LIVE_LABELS` of a corpus label, ``-1`` when dropped."""
    name = live_label(corpus, source_label)
    return -1 if name is None else LIVE_INDEX[name]


def mapping_table() -> list[dict[str, str]]:
    """Rows ``{corpus, source, live}`` of every mapping (``live`` is ``"(dropped)"`` when dropped)."""
    return [{"corpus": corpus, "source": source, "live": target or "(dropped)"}
            for corpus, mapping in CORPUS_LABEL_MAPS.items() for source, target in mapping.items()]
