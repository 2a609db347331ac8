"""Dataset preparation: voice recordings -> sliced, transcribed, checked and split dataset.

Public entry points: :func:`modules.prepare.pipeline.prepare_voice` (engine),
:mod:`modules.prepare.editor` (table for the UI), :mod:`modules.prepare.cli` (command line).
"""

from modules.prepare.options import PrepareOptions

__all__ = ["PrepareOptions"]
