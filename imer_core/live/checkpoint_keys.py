"""The metadata keys of a live checkpoint: written by training, read by the live engine.

One place for both sides (:mod:`training.live.dataset`, :mod:`training.finetune`
write them; :mod:`imer_core.live.models` and :mod:`imer_core.live.speaker_norm`
read them).
"""

from __future__ import annotations

#: ``True`` once the checkpoint was trained (the engine refuses anything else).
TRAINED = "trained"
#: Per modality ``{"mean": [...], "std": [...]}`` of the training features.
FEATURE_NORMALIZATION = "feature_normalization"
#: The class names the model was trained on (the live label space).
LABEL_SPACE = "label_space"
#: Per modality settings of the running per-speaker normalisation (:mod:`imer_core.live.speaker_norm`).
SPEAKER_NORMALIZATION = "speaker_normalization"
#: Summary of the training data (corpora, sizes).
DATA = "data"
#: Path of the model card shipped with the checkpoint.
MODEL_CARD = "model_card"
#: The evaluation table added when a checkpoint is shipped.
RESULTS = "results"
