"""The live pipeline, GUI-free: capture → features → modality health → inference.

* :mod:`.sources` — camera, microphone and media-file sources (own threads).
* :mod:`.workers` / :mod:`.speech_worker` — face, voice and speech→text workers.
* :mod:`.health` — observed / disabled / failing states with reasons.
* :mod:`.engine` — the inference thread and its immutable :class:`~.engine.LiveResult`.
* :mod:`.pipeline` — :class:`~.pipeline.LivePipeline`, what ``imer run`` and the app drive.
* :mod:`.session` / :mod:`.recording` — session folders (JSONL/CSV, transcript, raw media).

Importing this package imports nothing heavy; import the submodules you need.
"""
