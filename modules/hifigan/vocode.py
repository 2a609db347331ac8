"""``python -m modules vocode``: resynthesise wav files or vocode mel ``.npy`` files with a HiFi-GAN.

Weight norm is folded away and inference runs under ``torch.inference_mode``,
so vocoding is as fast as the model allows.
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from modules.errors import UserError

FEATURE_EXTENSIONS = (".npy", ".pt")
ENGINES = ("torch", "onnx")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("vocode",
                              help="turn wav files (resynthesis) or mel .npy files into audio with a HiFi-GAN",
                              description="Resynthesise audio files or vocode mel/feature files ([C, T] .npy/.pt).")
    p.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="jik876 g_ file, a training state states/step_*.pt, or a run folder")
    p.add_argument("--config", metavar="PATH", default=None,
                   help="jik876 config.json (default: the one beside a g_ file)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files, .npy/.pt feature files, or folders of them")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for NAME.wav files")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--engine", default="torch", choices=ENGINES,
                   help="torch (default), or onnx: onnxruntime on the CPU (the generator exported once and "
                        "cached in models/.cache/onnx/, or a .onnx file from `export --onnx` as --checkpoint)")
    p.set_defaults(command="vocode")
    return p


def _resolve(path: str, workspace) -> Path:
    p = Path(path).expanduser()
    if p.exists() or p.is_absolute():
        return p
    cand = workspace.root / p
    return cand if cand.exists() else p


def _expand(inputs: list[Path]) -> list[Path]:
    from modules.audio.io import AUDIO_EXTENSIONS

    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS + FEATURE_EXTENSIONS)
        elif p.is_file():
            files.append(p)
        else:
            raise UserError(f"{p}: input not found")
    if not files:
        raise UserError("no audio or .npy/.pt files among the inputs")
    return files


@dataclass(frozen=True)
class VocodeOptions:
    """What to vocode with: a checkpoint (g_ file, state or run folder), its config.json, the device."""

    checkpoint: Path
    config: Path | None = None
    device: str = "auto"
    engine: str = "torch"  # or "onnx" (onnxruntime, CPU)
    onnx_cache: Path | None = None  # where exported .onnx files are kept (models/.cache/onnx)


@dataclass
class LoadedVocoder:
    generator: Any
    h: dict
    device: str


_LOADED: dict[tuple, LoadedVocoder] = {}  # one entry: the last checkpoint used (a new one evicts it)
_LOCK = threading.Lock()


def load_vocoder(options: VocodeOptions) -> LoadedVocoder:
    """The generator for ``options`` (weight norm folded), loaded once per checkpoint file."""
    import torch

    from modules.hifigan import checkpoint as ckpt
    from modules.hifigan import load_generator_with_config

    if options.engine == "onnx":
        return _load_onnx(options)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if options.device == "auto" else options.device
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is visible; use --device cpu")
    path = ckpt.resolve_checkpoint(options.checkpoint)
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, str(options.config), device)
    with _LOCK:
        if key not in _LOADED:
            _LOADED.clear()
            generator, h = load_generator_with_config(path, options.config, device)
            _LOADED[key] = LoadedVocoder(generator.remove_weight_norm(), h, device)
        return _LOADED[key]


def _load_onnx(options: VocodeOptions) -> LoadedVocoder:
    """The onnxruntime generator of ``options`` (exported and cached on first use; CPU only)."""
    from modules.hifigan.onnx_engine import OnnxGenerator, cached_onnx

    if options.device == "cuda":
        raise UserError("--engine onnx runs on the CPU; use --device auto or cpu (or --engine torch on a GPU)")
    path = Path(options.checkpoint)
    st = path.stat() if path.exists() else None
    key = ("onnx", str(path), st.st_size if st else 0, st.st_mtime_ns if st else 0, str(options.config))
    with _LOCK:
        if key not in _LOADED:
            _LOADED.clear()
            cache = options.onnx_cache or path.parent / ".onnx-cache"
            onnx_path, h = cached_onnx(path, options.config, cache)
            h.setdefault("in_channels", int(h["num_mels"]))
            _LOADED[key] = LoadedVocoder(OnnxGenerator(onnx_path, h), h, "cpu")
        return _LOADED[key]


def vocode_files(options: VocodeOptions, inputs: list[Path], out_dir: Path, models_dir: Path,
                 log: Callable[[str], None] = print) -> list[Path]:
    """Resynthesise audio files / vocode feature files into ``out_dir/NAME.wav``; returns the files."""
    import numpy as np
    import torch

    from modules.audio.io import AudioReadError, read_audio, write_wav
    from modules.hifigan import hparams
    from modules.hifigan.data import load_features

    voc = load_vocoder(options)
    generator, h, device = voc.generator, voc.h, voc.device
    sr, channels = int(h["sampling_rate"]), int(h["in_channels"])
    features = h.get("features", "mel")
    out_dir.mkdir(parents=True, exist_ok=True)
    tortoise = None
    written: list[Path] = []
    total_audio, started = 0.0, time.perf_counter()
    with torch.inference_mode():
        for f in _expand(inputs):
            if f.suffix.lower() in FEATURE_EXTENSIONS:
                x = torch.from_numpy(np.array(load_features(f), dtype=np.float32))
                if x.shape[0] != channels:
                    raise UserError(f"{f}: has {x.shape[0]} channels but the generator takes {channels}")
            else:
                try:
                    wave, _ = read_audio(f, sample_rate=sr)
                except AudioReadError as exc:
                    raise UserError(str(exc)) from exc
                w = torch.from_numpy(wave).to(device).unsqueeze(0)
                if features == "tortoise_mel":
                    if tortoise is None:
                        from modules.audio.tortoise_mel import TortoiseMel

                        tortoise = TortoiseMel(models_dir / "tortoise" / "mel_norms.pth").to(device)
                    x = tortoise(w)[0, :, :w.shape[-1] // generator.hop_size]
                elif features == "mel" and channels == int(h["num_mels"]):
                    from modules.audio.mel import mel_spectrogram

                    x = mel_spectrogram(w, **hparams.mel_kwargs(h))[0]
                else:
                    raise UserError(f"{f}: this generator takes {features} features ({channels} channels), "
                                    "so it cannot resynthesise audio; pass its feature files instead")
            y = generator(x.unsqueeze(0).to(device)).float().reshape(-1).clamp(-1, 1).cpu().numpy()
            target = out_dir / (f.stem + ".wav")
            write_wav(target, y, sr)
            written.append(target)
            total_audio += len(y) / sr
            log(f"{f.name} -> {target}")
    took = time.perf_counter() - started
    log(f"vocoded {total_audio:.1f} s of audio in {took:.1f} s (real-time factor {took / max(total_audio, 1e-9):.3f})")
    return written


def run(args: argparse.Namespace, workspace) -> int:
    options = VocodeOptions(_resolve(args.checkpoint, workspace),
                            _resolve(args.config, workspace) if args.config else None, args.device, args.engine,
                            workspace.models / ".cache" / "onnx")
    vocode_files(options, [_resolve(p, workspace) for p in args.inputs], _resolve(args.out, workspace),
                 workspace.models)
    return 0
