"""The Try it panel's helpers: which checkpoints and clips to offer, the path rule for clips, and
running ``vocode`` / ``synthesize`` on them.

Model code (``modules.hifigan``, ``modules.autoregressive``) is imported only inside the functions that
run it, so building the UI stays free of torch.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from app.evaluation_view import BEST, file_step
from app.train_runs import rel_path
from modules import run_manager as runs
from modules.errors import UserError
from modules.trainer.runfolder import RunPaths
from modules.workspace import Workspace


def dataset_clips(ws: Workspace, run_dir: Path | None) -> list[tuple[str, str]]:
    """Clips of the run's dataset for the Try-it panel: validation clips first, then training clips."""
    if run_dir is None:
        return []
    dataset = run_dir.parent.parent
    out = []
    for name in ("validation.txt", "train.txt"):
        try:
            lines = (dataset / name).read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for line in lines[:200]:
            rel = line.split("|", 1)[0].strip()
            if rel:
                text = line.split("|", 1)[1][:60] if "|" in line else ""
                out.append((f"{rel} ({name.split('.')[0]}) {text}".strip(), rel_path(ws, dataset / rel)))
    return out


def checkpoint_choices(ws: Workspace, run_dir: Path | None) -> list[tuple[str, str]]:
    """Exported checkpoints then training states of a run, newest first; the best-scored step's
    are marked (and listed first)."""
    from app.evaluation_view import best_step, mark_best

    if run_dir is None:
        return []
    best = best_step(run_dir)
    out = [(mark_best(f"{p.name} (export)", file_step(p), best), rel_path(ws, p))
           for p in runs.list_checkpoints(run_dir)]
    out += [(mark_best(f"state {s.label()}", s.step, best), rel_path(ws, s.path)) for s in runs.list_states(run_dir)]
    return sorted(out, key=lambda c: BEST not in c[0])  # stable: newest first within each group


def upload_root() -> Path:
    """Gradio's upload/cache folder: the only place outside the workspace a clip may come from."""
    base = os.environ.get("GRADIO_TEMP_DIR") or str(Path(tempfile.gettempdir()) / "gradio")
    return Path(base).expanduser().resolve()


def resolve_clip(ws: Workspace, clip: str) -> Path:
    """A Try-it clip as a file: an upload (absolute, under ``upload_root()``) or a path inside the
    workspace (relative to it or absolute). Anything else is refused with a UserError."""
    src = Path(str(clip)).expanduser()
    uploads = upload_root()
    if src.is_absolute() and uploads in src.resolve().parents:
        path = src.resolve()
    else:
        try:
            path = ws.inside(src)
        except ValueError:  # WorkspaceError: the path leaves the workspace
            raise UserError(f"{clip}: refused, a clip must be a dataset clip, a file inside the workspace "
                            f"{ws.root} or an upload") from None
    if not path.is_file():
        raise UserError(f"{clip}: clip not found")
    return path


def clip_list(clips: str | list[str] | None) -> list[str]:
    """One clip, a list of clips or nothing (what Gradio widgets send) as a list of non-empty names."""
    if not clips:
        return []
    return [clips] if isinstance(clips, (str, os.PathLike)) else [c for c in clips if c]


def _try_inputs(ws: Workspace, checkpoint: str, clips: str | list[str]) -> tuple[Path, list[Path], Path]:
    """(checkpoint, clips, output folder): the checkpoint inside the workspace, each clip a dataset
    clip / workspace file or an upload (``resolve_clip``), the output under ``RUN/try_it/``."""
    ckpt = ws.inside(checkpoint)
    names = clip_list(clips)
    if not names:
        raise UserError("pick a dataset clip or upload one")
    srcs = [resolve_clip(ws, c) for c in names]
    run_dir = ckpt.parent.parent  # RUN/checkpoints/FILE or RUN/states/FILE
    return ckpt, srcs, run_dir / "try_it" / time.strftime("%Y%m%d-%H%M%S")


def vocode_clip(ws: Workspace, checkpoint: str, clip: str, engine: str = "torch") -> Path:
    """Resynthesise one clip with a run's HiFi-GAN checkpoint (the ``vocode`` command's library
    function; the generator stays loaded for the next click on the same checkpoint). ``engine``
    "onnx" runs the generator exported to ONNX with onnxruntime on the CPU."""
    from modules.hifigan.vocode import VocodeOptions, vocode_files

    ckpt, srcs, out_dir = _try_inputs(ws, checkpoint, clip)
    options = VocodeOptions(ckpt, engine=engine, onnx_cache=ws.models / ".cache" / "onnx",
                            device="cpu" if engine == "onnx" else "auto")
    return vocode_files(options, [srcs[0]], out_dir, ws.models, log=lambda _: None)[0]


def synthesize_defaults() -> dict[str, Any]:
    """The sampling defaults of ``synthesize`` (its typed options), so the UI never drifts from the CLI."""
    from dataclasses import asdict

    from modules.autoregressive.synthesize import SamplingOptions

    return asdict(SamplingOptions())


_SPEECH: dict[tuple, Any] = {}  # the last checkpoint's loaded models: one click loads, the next reuses


def _run_section(ckpt: Path) -> dict[str, Any]:
    return _run_model_section(ckpt)[1]


def _run_model_section(ckpt: Path) -> tuple[str, dict[str, Any]]:
    """(the run's model, its own section of the config) for a checkpoint inside a run."""
    try:
        cfg = runs.read_config_yaml(RunPaths(ckpt.parent.parent).config)
        return str(cfg.get("model") or ""), cfg.get(cfg.get("model")) or {}
    except UserError:
        return "", {}


def _speech(ws: Workspace, ckpt: Path, section: dict[str, Any]):
    """The run's GPT and decoder, loaded once per checkpoint file (and decoder settings)."""
    import torch

    from modules.autoregressive.synthesize import DecoderOptions, load_models

    def path(key: str) -> Path | None:
        value = section.get(key)
        return ws.inside(value) if value else None

    decoding = DecoderOptions(section.get("decoder", "auto"), section.get("diffusion_preset"),
                              section.get("diffusion_steps"), path("hifi_decoder"), path("diffusion_decoder"),
                              path("univnet"), path("vocoder"))
    st = ckpt.stat()
    key = (str(ckpt), st.st_size, st.st_mtime_ns, repr(decoding), repr(sorted(section.items())))
    if key not in _SPEECH:
        from modules import model_registry
        from modules.model_spec import load_ref

        _SPEECH.clear()  # free the previous checkpoint first
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model = _run_model_section(ckpt)[0]
        spec = model_registry.get(model) if model in model_registry.SPECS else None
        if spec is not None and spec.synthesis:  # a model that speaks through another's GPT (a decoder run)
            _SPEECH[key] = load_ref(spec.synthesis)(ckpt, ws.models, section, device)
        else:
            _SPEECH[key] = load_models(ckpt, ws.models, device=device, decoding=decoding)
    return _SPEECH[key]


def _sampling(section: dict[str, Any], repetition_penalty: float | None):
    from modules.autoregressive.synthesize import SamplingOptions

    defaults = synthesize_defaults()
    return SamplingOptions(float(section.get("sample_temperature", defaults["temperature"])),
                           float(section.get("sample_top_p", defaults["top_p"])),
                           float(defaults["repetition_penalty"] if repetition_penalty is None else repetition_penalty),
                           int(section.get("sample_max_mel_tokens", 250)))


def speak_stream(ws: Workspace, checkpoint: str, clips: str | list[str], text: str,
                 repetition_penalty: float | None = None) -> Iterator[tuple[str, Any]]:
    """Text to speech with a run's autoregressive checkpoint, every clip in ``clips`` as a voice
    reference, the run's sampling settings and decoder. Yields ``("chunk", (rate, samples))`` as
    audio is decoded (the fast decoder streams), then ``("done", (wav path, decoder label))``."""
    import numpy as np

    from modules.audio.io import write_wav
    from modules.autoregressive.synthesize import synthesize_stream, voice_for

    if not (text or "").strip():
        raise UserError("type a sentence to speak")
    ckpt, srcs, out_dir = _try_inputs(ws, checkpoint, clips)
    section = _run_section(ckpt)
    models = _speech(ws, ckpt, section)
    voice = voice_for(models, srcs, 0)
    rate = models.decoder.sample_rate
    parts = []
    for chunk in synthesize_stream(models, text.strip(), voice, _sampling(section, repetition_penalty), seed=0):
        samples = chunk.numpy().astype(np.float32)
        parts.append(samples)
        yield "chunk", (rate, samples)
    out = out_dir / "speech.wav"
    write_wav(out, np.concatenate(parts) if parts else np.zeros(0, np.float32), rate)
    yield "done", (out, models.decoder.label())


def speak_text(ws: Workspace, checkpoint: str, clips: str | list[str], text: str,
               repetition_penalty: float | None = None) -> Path:
    """``speak_stream`` to the end: the wav file of the whole utterance."""
    out = None
    for kind, value in speak_stream(ws, checkpoint, clips, text, repetition_penalty):
        if kind == "done":
            out = value[0]
    assert out is not None
    return out
