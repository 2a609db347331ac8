"""Quick start: from a voice folder to trained, scored checkpoints in one command (``quickstart VOICE``)."""
