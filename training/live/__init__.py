"""The shipped live model: corpora, feature extraction, pseudo-paired datasets and evaluation.

* :mod:`training.live.labels`: mapping of the corpus labels onto ``LIVE_EMOTIONS``;
* :mod:`training.live.corpora`: readers of FER2013, RAVDESS, EmoDB and MELD;
* :mod:`training.live.extract`: feature extraction with the app's extractors (``imer-train extract-live``);
* :mod:`training.live.dataset`: class-matched pseudo-pair tuples (data source kind ``live``);
* :mod:`training.live.evaluate`: the per-condition evaluation table with baselines (``imer-train live-eval``).

See ``docs/live_model.md``.
"""
