"""Voicetune's browser UI (Gradio). Kept free of model code so it starts fast.

``python -m app`` starts it; :func:`app.main.build_app` builds the Blocks for tests.
"""
