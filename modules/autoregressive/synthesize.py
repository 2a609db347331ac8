"""``python -m modules synthesize``: text + reference clips -> audio through a UnifiedVoice.

The path validation samples take: conditioning latent from the clips (tortoise's 132,300-
sample inference crops), mel codes sampled with a KV cache (top-p, temperature, repetition
penalty, a length cap), DVAE decode to a tortoise mel, then a HiFi-GAN trained on that mel
space or Griffin-Lim. Without tortoise's diffusion decoder this is a preview, not tortoise's
final quality.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from modules.errors import UserError


@dataclass
class SynthesisModels:
    """Everything synthesis needs, loaded once (the Run tab keeps one of these)."""

    gpt: Any
    dvae: Any
    tokenizer: Any
    mel: Any
    vocoder: Any
    device: Any


def sidecar(checkpoint: Path) -> dict[str, Any]:
    """The ``XXXXXXXX_gpt.json`` a training run writes beside each checkpoint ({} when absent)."""
    meta = checkpoint.with_suffix(".json")
    if checkpoint.suffix == ".pth" and meta.is_file():
        try:
            return json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
    return {}


def load_models(checkpoint: str | Path, models_dir: Path, tokenizer: str | Path | None = None,
                dvae: str | Path | None = None, mel_norms: str | Path | None = None,
                vocoder: str | Path | None = None, device: str = "cpu",
                hyperparameters: dict[str, Any] | None = None) -> SynthesisModels:
    """Load the GPT (with the hyperparameters its sidecar records), DVAE, tokenizer, mel and vocoder."""
    from modules.audio.tortoise_mel import TortoiseMel
    from modules.autoregressive.checkpoint import load_dvae, load_unified_voice
    from modules.autoregressive.recipe import resolve_base
    from modules.autoregressive.tokenizer import VoiceTokenizer
    from modules.autoregressive.vocoding import GriffinLimVocoder, HifiganVocoder

    path = resolve_base(Path(checkpoint), models_dir.parent)
    meta = sidecar(path)
    hp = hyperparameters or meta.get("hyperparameters")
    tortoise = models_dir / "tortoise"
    tok = VoiceTokenizer(tokenizer or meta.get("tokenizer") or tortoise / "tokenizer.json")
    norms = mel_norms or meta.get("mel_norms") or tortoise / "mel_norms.pth"
    mel = TortoiseMel(norms).to(device)
    if path.suffix == ".pt":  # a training state: take its model weights and sizes
        import torch

        from modules.autoregressive.checkpoint import build_unified_voice
        from modules.autoregressive.recipe import MODEL_KEYS, read_base_state

        if hp is None:
            state = torch.load(path, map_location="cpu", weights_only=False)
            section = ((state.get("config") or {}).get("autoregressive") or {}) if isinstance(state, dict) else {}
            hp = {k: section[k] for k in MODEL_KEYS if k in section} or None
        gpt = build_unified_voice(hp)
        gpt.load_state_dict(read_base_state(path))
        gpt = gpt.to(device).eval()
    else:
        gpt = load_unified_voice(path, hp, device=device)
    if tok.vocab_size > gpt.number_text_tokens:
        raise UserError(f"{tok.path}: {tok.vocab_size} tokens, but the model knows only {gpt.number_text_tokens}; "
                        "use the tokenizer the model was trained with")
    dv = load_dvae(dvae or meta.get("dvae") or tortoise / "dvae.pth", device=device)
    voc = HifiganVocoder(vocoder, device) if vocoder else GriffinLimVocoder(mel.mel_norms.cpu())
    return SynthesisModels(gpt, dv, tok, mel, voc, device)


def conditioning_latent(models: SynthesisModels, clips: Sequence[Path], seed: int = 0):
    """Average latent of the reference clips (each padded/cropped to 132,300 samples, as tortoise)."""
    import torch

    from modules.audio.io import AudioReadError, read_audio
    from modules.audio.tortoise_mel import INFERENCE_CONDITIONING_SAMPLES, SAMPLE_RATE, conditioning_mel

    if not clips:
        raise UserError("give at least one reference clip of the voice (--reference FILE)")
    rng = random.Random(seed)
    mels = []
    for clip in clips:
        try:
            wave, _ = read_audio(clip, sample_rate=SAMPLE_RATE)
        except AudioReadError as exc:
            raise UserError(str(exc)) from exc
        mels.append(conditioning_mel(torch.from_numpy(wave).to(models.device), models.mel,
                                     INFERENCE_CONDITIONING_SAMPLES, rng))
    with torch.no_grad():
        return models.gpt.get_conditioning(torch.stack(mels).unsqueeze(0))


def synthesize(models: SynthesisModels, text: str, latent, temperature: float = 0.8, top_p: float = 0.8,
               repetition_penalty: float = 2.0, max_tokens: int = 500, seed: int = 0):
    """One text -> (waveform tensor in [-1, 1], sample rate, number of mel codes)."""
    import torch

    ids = models.tokenizer.encode(text)
    if not ids:
        raise UserError("the text is empty after cleaning")
    if models.tokenizer.has_unknown(ids):
        raise UserError(f"the text has characters the tokenizer does not know: {models.tokenizer.clean(text)!r}")
    if len(ids) > models.gpt.max_text_tokens:
        raise UserError(f"the text is {len(ids)} tokens long; the model takes at most {models.gpt.max_text_tokens}. "
                        "Split it into sentences.")
    gen = torch.Generator().manual_seed(seed)
    codes = models.gpt.sample_codes(latent, torch.tensor(ids), max_tokens=max_tokens, temperature=temperature,
                                    top_p=top_p, repetition_penalty=repetition_penalty, generator=gen,
                                    num_codes=models.dvae.num_tokens)[0]
    if len(codes) == 0:
        codes = torch.tensor([0])
    with torch.no_grad():
        mel, _ = models.dvae.decode(codes.to(models.device).unsqueeze(0))
        wave = models.vocoder(mel[0])
    return wave, models.vocoder.sample_rate, len(codes)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("synthesize", help="speak text in a voice with a (fine-tuned) tortoise autoregressive model",
                              description="Text + reference clips -> wav, through UnifiedVoice, the DVAE and a "
                                          "HiFi-GAN (tortoise_mel) or Griffin-Lim. A preview of the fine-tune.")
    p.add_argument("--checkpoint", default="models/tortoise/autoregressive.pth", metavar="PATH",
                   help="autoregressive.pth, a run's checkpoints/XXXXXXXX_gpt.pth, a state, or a run folder")
    p.add_argument("--text", required=True, action="append", help="text to speak (repeat for several files)")
    p.add_argument("--reference", nargs="+", required=True, metavar="FILE", help="clips of the voice (or a folder)")
    p.add_argument("--out", required=True, metavar="PATH", help="output wav (several texts: a folder)")
    p.add_argument("--tokenizer", default=None, help="tokenizer.json (default: the run's, else models/tortoise/)")
    p.add_argument("--dvae", default=None, help="dvae.pth (default: the run's, else models/tortoise/)")
    p.add_argument("--mel-norms", default=None, help="mel_norms.pth (default: the run's, else models/tortoise/)")
    p.add_argument("--vocoder", default=None, help="HiFi-GAN trained with features tortoise_mel (default: Griffin-Lim)")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-p", type=float, default=0.8)
    p.add_argument("--repetition-penalty", type=float, default=2.0)
    p.add_argument("--max-tokens", type=int, default=500, help="cap on mel codes (each is ~46 ms of audio)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.set_defaults(command="synthesize")
    return p


def _path(value: str | None, workspace) -> Path | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    if p.is_absolute() or p.exists():
        return p
    return workspace.root / p


def run(args: argparse.Namespace, workspace) -> int:
    import torch

    from modules.audio.io import AUDIO_EXTENSIONS, write_wav

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is visible; use --device cpu")
    clips: list[Path] = []
    for ref in args.reference:
        p = _path(ref, workspace)
        if p.is_dir():
            clips += sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS)
        elif p.is_file():
            clips.append(p)
        else:
            raise UserError(f"{ref}: reference clip not found")
    models = load_models(_path(args.checkpoint, workspace), workspace.models, _path(args.tokenizer, workspace),
                         _path(args.dvae, workspace), _path(args.mel_norms, workspace),
                         _path(args.vocoder, workspace), device)
    latent = conditioning_latent(models, clips, args.seed)
    out = _path(args.out, workspace)
    for i, text in enumerate(args.text):
        started = time.perf_counter()
        wave, sr, n = synthesize(models, text, latent, args.temperature, args.top_p, args.repetition_penalty,
                                 args.max_tokens, args.seed + i)
        target = out if len(args.text) == 1 and out.suffix.lower() == ".wav" else out / f"{i + 1:03d}.wav"
        write_wav(target, wave.numpy(), sr)
        print(f"{target}: {len(wave) / sr:.1f} s from {n} mel codes in {time.perf_counter() - started:.1f} s")
    return 0
