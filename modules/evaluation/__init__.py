"""Scores of validation audio: intelligibility (whisper WER) and speaker likeness (resemblyzer).

Why its own package: scoring runs in a process of its own (``python -m modules evaluate``), never on
the training step's path, and the same scores pick the best checkpoint, raise the overfitting alarm
and label states in the UI. Layout:

- ``options``: the ``evaluation:`` config section;
- ``text``: normalisation and word error rate;
- ``scorers``: the whisper and speaker-encoder scorers (loaded once per process);
- ``store``: per-sample caches, the run's scored records, reference statistics, status;
- ``best``: the combined score, the best step, the alarm;
- ``runner``: score a run's pending steps (once, or following a live trainer);
- ``export``: write the best (or a chosen) checkpoint's interchange files with its scores;
- ``cli``: the ``evaluate`` and ``export`` commands.
"""
