"""A tiny random-weight openai-whisper checkpoint, for tests and benchmarks of the loading path.

It exercises ``whisper.load_model(path)`` and ``transcribe`` end to end without any download;
what it "hears" is noise. Real models go in ``models/whisper/``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path


def write_random_whisper(path: str | Path, seed: int = 0) -> Path:
    """Save a tiny random model as ``{"dims", "model_state_dict"}`` (the format ``load_model`` reads)."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(seed)
    # n_audio_ctx must stay 1500 (30 s windows); a short text context keeps random decoding fast
    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=1,
                           n_vocab=51864, n_text_ctx=24, n_text_state=64, n_text_head=2, n_text_layer=1)
    model = Whisper(dims)
    with torch.no_grad():
        # created with torch.empty: garbage (NaN) unless set; a wide spread varies the tokens by position
        model.decoder.positional_embedding.normal_(0, 1.0)
        # a confident decoder, so whisper's fallback does not re-decode at six temperatures (slow on 2 cores)
        model.decoder.ln.weight.mul_(30.0)
    path = Path(path)
    torch.save({"dims": asdict(dims), "model_state_dict": model.state_dict()}, path)
    return path
