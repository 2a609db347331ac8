"""``python -m modules synthesize``: text + reference clips -> audio through a UnifiedVoice.

The path every autoregressive sample takes (validation, Try it, this command): the voice's
conditioning latent from the clips (tortoise's 132,300-sample inference crops), mel codes
sampled with a KV cache (top-p, temperature, repetition penalty, a length cap), then the
chosen decoder (``modules.autoregressive.decoders``): tortoise's fast HiFi-GAN decoder, its
standard diffusion + UnivNet chain, or the DVAE preview.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from modules.errors import UserError


@dataclass
class SynthesisModels:
    """Everything synthesis needs, loaded once (the Run tab keeps one of these)."""

    gpt: Any
    tokenizer: Any
    mel: Any
    decoder: Any  # LoadedDecoder or PreviewDecoder
    device: Any


@dataclass
class SamplingOptions:
    """How codes are sampled (tortoise's api.py values by default)."""

    temperature: float = 0.8
    top_p: float = 0.8
    repetition_penalty: float = 2.0
    max_tokens: int = 500

    def kwargs(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p,
                "repetition_penalty": self.repetition_penalty, "max_tokens": self.max_tokens}


@dataclass
class DecoderOptions:
    """Which decoder renders the audio and where its files are (None: models/tortoise/)."""

    decoder: str = "auto"
    preset: str | None = None
    diffusion_steps: int | None = None
    hifi_decoder: Path | None = None
    diffusion_decoder: Path | None = None
    univnet: Path | None = None
    vocoder: Path | None = None  # the preview's HiFi-GAN (None: Griffin-Lim)


def sidecar(checkpoint: Path) -> dict[str, Any]:
    """The ``XXXXXXXX_gpt.json`` a training run writes beside each checkpoint ({} when absent)."""
    meta = checkpoint.with_suffix(".json")
    if checkpoint.suffix == ".pth" and meta.is_file():
        try:
            return json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
    return {}


def decoder_choice(options: DecoderOptions, models_dir: Path, setting: str = "--decoder"):
    """Resolve ``options`` (``auto`` included) into a checked ``DecoderChoice``."""
    from modules.autoregressive.decoders import choose_decoder, default_files

    files = default_files(Path(models_dir) / "tortoise")
    for role, given in (("hifidecoder", options.hifi_decoder), ("diffusion", options.diffusion_decoder),
                        ("vocoder", options.univnet)):
        if given:
            files[role] = Path(given)
    return choose_decoder(options.decoder, files, options.preset, options.diffusion_steps, setting)


def amp_dtype(precision: str, device: str):
    """The autocast dtype for decoding: ``auto`` is bf16 on GPUs that have it, fp16 on older ones."""
    import torch

    if str(device).startswith("cpu") or precision == "fp32":
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def make_decoder(choice, dvae_path: Path, mel_norms, vocoder: Path | None, device, amp_dtype=None):
    """The loaded decoder of ``choice``: tortoise's (cached per process) or the DVAE preview."""
    from modules.autoregressive.decoders import PreviewDecoder, loaded_decoder

    if choice.kind != "preview":
        return loaded_decoder(choice, device, amp_dtype)
    from modules.autoregressive.checkpoint import load_dvae
    from modules.autoregressive.vocoding import GriffinLimVocoder, HifiganVocoder

    voc = HifiganVocoder(vocoder, device) if vocoder else GriffinLimVocoder(mel_norms.cpu())
    return PreviewDecoder(load_dvae(dvae_path, device=device), voc, device)


def load_gpt(path: Path, hyperparameters: dict[str, Any] | None, device: str):
    """A UnifiedVoice from autoregressive.pth, a ``_gpt.pth`` export or a training state (read once)."""
    from modules.autoregressive.checkpoint import build_unified_voice, load_unified_voice, strip_legacy_keys

    if path.suffix != ".pt":
        return load_unified_voice(path, hyperparameters, device=device)
    from modules.autoregressive.recipe import MODEL_KEYS
    from modules.trainer.state import load_state, model_weights

    state = load_state(path)
    if hyperparameters is None:
        section = state.config.get("autoregressive") or {}
        hyperparameters = {k: section[k] for k in MODEL_KEYS if k in section} or None
    gpt = build_unified_voice(hyperparameters)
    gpt.load_state_dict(strip_legacy_keys(model_weights(state, "gpt")))
    return gpt.to(device).eval()


def load_models(checkpoint: str | Path, models_dir: Path, tokenizer: str | Path | None = None,
                dvae: str | Path | None = None, mel_norms: str | Path | None = None,
                device: str = "cpu", hyperparameters: dict[str, Any] | None = None,
                decoding: DecoderOptions | None = None, precision: str = "auto") -> SynthesisModels:
    """Load the GPT (with the hyperparameters its sidecar records), tokenizer, mel and decoder."""
    from modules.audio.tortoise_mel import TortoiseMel
    from modules.autoregressive.recipe import resolve_base
    from modules.autoregressive.tokenizer import VoiceTokenizer

    path = resolve_base(Path(checkpoint), models_dir.parent)
    meta = sidecar(path)
    tortoise = models_dir / "tortoise"
    tok = VoiceTokenizer(tokenizer or meta.get("tokenizer") or tortoise / "tokenizer.json")
    mel = TortoiseMel(mel_norms or meta.get("mel_norms") or tortoise / "mel_norms.pth").to(device)
    gpt = load_gpt(path, hyperparameters or meta.get("hyperparameters"), device)
    if tok.vocab_size > gpt.number_text_tokens:
        raise UserError(f"{tok.path}: {tok.vocab_size} tokens, but the model knows only {gpt.number_text_tokens}; "
                        "use the tokenizer the model was trained with")
    decoding = decoding or DecoderOptions()
    choice = decoder_choice(decoding, models_dir)
    dec = make_decoder(choice, Path(dvae or meta.get("dvae") or tortoise / "dvae.pth"), mel.mel_norms,
                       decoding.vocoder, device, amp_dtype(precision, device))
    return SynthesisModels(gpt, tok, mel, dec, device)


def read_clips(clips: Sequence[Path]) -> list:
    """The reference clips as 22,050 Hz float tensors."""
    import torch

    from modules.audio.io import AudioReadError, read_audio
    from modules.audio.tortoise_mel import SAMPLE_RATE

    if not clips:
        raise UserError("give at least one reference clip of the voice (--reference FILE)")
    out = []
    for clip in clips:
        try:
            wave, _ = read_audio(clip, sample_rate=SAMPLE_RATE)
        except AudioReadError as exc:
            raise UserError(str(exc)) from exc
        out.append(torch.from_numpy(wave))
    return out


def conditioning_latent(gpt, mel, waves: Sequence, seed: int = 0):
    """The GPT's conditioning latent ``[1, d]`` of the clips (22,050 Hz), from 132,300-sample crops
    as tortoise's inference makes them (the crops' random starts seeded by ``seed``)."""
    import torch

    from modules.audio.tortoise_mel import INFERENCE_CONDITIONING_SAMPLES, conditioning_mel

    rng = random.Random(seed)
    device = next(gpt.parameters()).device
    mels = [conditioning_mel(w.to(device), mel.to(device), INFERENCE_CONDITIONING_SAMPLES, rng) for w in waves]
    with torch.inference_mode():
        return gpt.get_conditioning(torch.stack(mels).unsqueeze(0)).float()


def voice_from_waves(gpt, mel, decoder, waves: Sequence, seed: int = 0, key: Any = None):
    """A ``Voice``: the GPT's latent of the clips (``conditioning_latent``) and, for the standard
    decoder, the diffusion conditioning of the same clips."""
    return decoder.voice(conditioning_latent(gpt, mel, waves, seed), list(waves), key)


def voice_for(models: SynthesisModels, clips: Sequence[Path], seed: int = 0):
    return voice_from_waves(models.gpt, models.mel, models.decoder, read_clips(clips), seed,
                            key=tuple(str(c) for c in clips))


def text_ids(models: SynthesisModels, text: str):
    """The tokenizer's ids for ``text``, refusing text the model cannot read."""
    import torch

    ids = models.tokenizer.encode(text)
    if not ids:
        raise UserError("the text is empty after cleaning")
    if models.tokenizer.has_unknown(ids):
        raise UserError(f"the text has characters the tokenizer does not know: {models.tokenizer.clean(text)!r}")
    limit = models.gpt.max_text_tokens - 1  # tortoise's latent pass appends a stop-text token to the ids
    if len(ids) > limit:
        raise UserError(f"the text is {len(ids)} tokens long; the model takes at most {limit}. "
                        "Split it into sentences.")
    return torch.tensor(ids)


def _sampling(models: SynthesisModels, sampling: SamplingOptions) -> dict[str, Any]:
    kw = sampling.kwargs()
    dvae = getattr(models.decoder, "dvae", None)
    if dvae is not None:
        kw["num_codes"] = dvae.num_tokens  # the preview can only decode DVAE codes
    return kw


def synthesize(models: SynthesisModels, text: str, voice, sampling: SamplingOptions | None = None, seed: int = 0):
    """One text -> (waveform tensor in [-1, 1], sample rate, number of mel codes)."""
    import torch

    ids = text_ids(models, text)
    gen = torch.Generator().manual_seed(seed)
    codes = models.gpt.sample_codes(voice.gpt_latent, ids, generator=gen,
                                    **_sampling(models, sampling or SamplingOptions()))[0]
    wave = models.decoder.render(models.gpt, ids, codes, voice, seed)
    return wave, models.decoder.sample_rate, len(codes)


def synthesize_stream(models: SynthesisModels, text: str, voice, sampling: SamplingOptions | None = None,
                      seed: int = 0, chunk_codes: int = 20) -> Iterator:
    """Audio chunks as they are decoded (the fast decoder streams; the others yield once)."""
    import torch

    ids = text_ids(models, text)
    gen = torch.Generator().manual_seed(seed)
    kw = _sampling(models, sampling or SamplingOptions())
    kw.pop("num_codes", None)
    yield from models.decoder.stream(models.gpt, ids, voice, kw, generator=gen, seed=seed, chunk_codes=chunk_codes)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("synthesize",
                              help="speak text in a voice with a (fine-tuned) tortoise autoregressive model",
                              description="Text + reference clips -> wav, through UnifiedVoice and tortoise's own "
                                          "decoders (fast: hifidecoder.pth; standard: diffusion_decoder.pth + "
                                          "vocoder.pth), or the DVAE preview.")
    p.add_argument("--checkpoint", default="models/tortoise/autoregressive.pth", metavar="PATH",
                   help="autoregressive.pth, a run's checkpoints/XXXXXXXX_gpt.pth, a state, or a run folder")
    p.add_argument("--text", required=True, action="append", help="text to speak (repeat for several files)")
    p.add_argument("--reference", nargs="+", required=True, metavar="FILE", help="clips of the voice (or a folder)")
    p.add_argument("--out", required=True, metavar="PATH", help="output wav (several texts: a folder)")
    p.add_argument("--decoder", default="auto", choices=("auto", "fast", "standard", "preview"),
                   help="auto: fast if models/tortoise/hifidecoder.pth exists, else standard if diffusion_decoder.pth "
                        "and vocoder.pth exist, else preview")
    p.add_argument("--preset", default=None, choices=("ultra_fast", "fast", "standard", "high_quality"),
                   help="standard decoder: tortoise's diffusion preset (default fast: 80 steps)")
    p.add_argument("--diffusion-steps", type=int, default=None, help="standard decoder: steps (overrides --preset)")
    p.add_argument("--hifi-decoder", default=None, help="hifidecoder.pth (default: models/tortoise/)")
    p.add_argument("--diffusion-decoder", default=None, help="diffusion_decoder.pth (default: models/tortoise/)")
    p.add_argument("--univnet", default=None, help="tortoise's vocoder.pth (default: models/tortoise/)")
    p.add_argument("--tokenizer", default=None, help="tokenizer.json (default: the run's, else models/tortoise/)")
    p.add_argument("--dvae", default=None, help="dvae.pth (preview; default: the run's, else models/tortoise/)")
    p.add_argument("--mel-norms", default=None, help="mel_norms.pth (default: the run's, else models/tortoise/)")
    p.add_argument("--vocoder", default=None, help="preview: HiFi-GAN trained with features tortoise_mel "
                                                   "(default: Griffin-Lim)")
    defaults = SamplingOptions()
    p.add_argument("--temperature", type=float, default=defaults.temperature)
    p.add_argument("--top-p", type=float, default=defaults.top_p)
    p.add_argument("--repetition-penalty", type=float, default=defaults.repetition_penalty)
    p.add_argument("--max-tokens", type=int, default=defaults.max_tokens,
                   help="cap on mel codes (each is ~46 ms of audio)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                   help="decoders on a GPU: auto is bf16 where supported, else fp16 (the CPU always uses fp32)")
    p.set_defaults(command="synthesize")
    return p


def _path(value: str | None, workspace) -> Path | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    if p.is_absolute() or p.exists():
        return p
    return workspace.root / p


def reference_clips(references: Sequence[str], workspace) -> list[Path]:
    """Files and folders given as ``--reference`` -> audio files."""
    from modules.audio.io import AUDIO_EXTENSIONS

    clips: list[Path] = []
    for ref in references:
        p = _path(ref, workspace)
        if p.is_dir():
            clips += sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS)
        elif p.is_file():
            clips.append(p)
        else:
            raise UserError(f"{ref}: reference clip not found")
    return clips


def run(args: argparse.Namespace, workspace) -> int:
    import torch

    from modules.audio.io import write_wav

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is visible; use --device cpu")
    if args.diffusion_steps is not None and args.diffusion_steps < 1:
        raise UserError("--diffusion-steps must be at least 1")
    clips = reference_clips(args.reference, workspace)
    decoding = DecoderOptions(args.decoder, args.preset, args.diffusion_steps, _path(args.hifi_decoder, workspace),
                              _path(args.diffusion_decoder, workspace), _path(args.univnet, workspace),
                              _path(args.vocoder, workspace))
    models = load_models(_path(args.checkpoint, workspace), workspace.models, _path(args.tokenizer, workspace),
                         _path(args.dvae, workspace), _path(args.mel_norms, workspace), device, decoding=decoding,
                         precision=args.precision)
    print(f"decoder: {models.decoder.label()}", flush=True)
    voice = voice_for(models, clips, args.seed)
    sampling = SamplingOptions(args.temperature, args.top_p, args.repetition_penalty, args.max_tokens)
    out = _path(args.out, workspace)
    for i, text in enumerate(args.text):
        started = time.perf_counter()
        wave, sr, n = synthesize(models, text, voice, sampling, args.seed + i)
        target = out if len(args.text) == 1 and out.suffix.lower() == ".wav" else out / f"{i + 1:03d}.wav"
        write_wav(target, wave.numpy(), sr)
        print(f"{target}: {len(wave) / sr:.1f} s at {sr} Hz from {n} mel codes in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
    return 0
