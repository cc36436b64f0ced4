"""The desktop window of ``imer``: a PySide6 front end on the live pipeline.

The window adds no logic of its own: it drives the same
:class:`~imer_core.live.pipeline.LivePipeline` as ``imer run`` and renders
its results.  Qt is imported only inside this package.

* :mod:`.main` — :func:`~.main.launch` (the ``imer`` command without a subcommand);
* :mod:`.window` — :class:`~.window.MainWindow`;
* :mod:`.controller` — runs pipeline commands off the GUI thread;
* widgets: :mod:`.video_view`, :mod:`.modality_panel`, :mod:`.emotion_panel`,
  :mod:`.timeline`, :mod:`.transcript_view`, :mod:`.performance_panel`;
* menus: :mod:`.source_controls`, :mod:`.model_controls`, :mod:`.session_controls`;
* :mod:`.dialogs` — the about box (model card and licences);
* :mod:`.calibration_dialog` — the guided calibration (records acted emotions for a personal model);
* :mod:`.notify` — status-bar messages and at most one error dialog;
* :mod:`.settings` — the persistent settings (QSettings keys);
* :mod:`.style` — method names and emotion colours.
"""
