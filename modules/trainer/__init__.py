"""The trainer core: one training loop for every model recipe.

Light to import: ``modules.trainer.schedules`` and ``modules.trainer.runfolder``
need no torch (the UI uses them); ``modules.trainer.core.Trainer`` is the loop.
"""
