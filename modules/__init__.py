"""Voicetune engine: dataset preparation, configuration, training and inference.

Importable without Gradio; ``python -m modules ...`` is the command line.
"""

__version__ = "0.1.0"
