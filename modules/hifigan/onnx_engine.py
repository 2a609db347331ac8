"""A HiFi-GAN generator as ONNX, run with onnxruntime: for vocoding where there is no PyTorch or no GPU.

``export_onnx`` folds weight norm, exports with a dynamic batch and length (opset 17), writes the
jik876 ``config.json`` beside the ``.onnx`` file, and checks onnxruntime's output against the eager
generator on a random mel (refused above 1e-4). ``OnnxGenerator`` is called like the torch
generator: a ``[batch, channels, frames]`` tensor in, ``[batch, 1, samples]`` out.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from modules.errors import UserError

OPSET = 17
TOLERANCE = 1e-4


def _session(path: Path):
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise UserError(f"onnxruntime is not installed ({exc}); pip install -r requirements.txt") from exc
    opts = ort.SessionOptions()
    threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def export_onnx(generator: Any, h: dict, out: Path) -> Path:
    """``generator`` (weight norm folded, eval) as ``out`` (``.onnx``) plus ``config.json`` beside it."""
    import torch

    from modules.fileutil import atomic_replace, atomic_write_json
    from modules.hifigan import hparams

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    generator = generator.cpu().eval()
    channels = int(h.get("in_channels") or h["num_mels"])
    probe = torch.randn(1, channels, 64, generator=torch.Generator().manual_seed(0))
    try:
        import onnx  # noqa: F401 - the exporter needs it
    except ImportError as exc:
        raise UserError(f"the onnx package is not installed ({exc}); pip install -r requirements.txt") from exc
    # the TorchScript exporter: it needs no onnxscript, and handles the generator's convolutions exactly
    with atomic_replace(out) as fh, torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(generator, (probe,), fh, dynamo=False, opset_version=OPSET, input_names=["mel"],
                          output_names=["audio"], dynamic_axes={"mel": {0: "batch", 2: "frames"},
                                                                "audio": {0: "batch", 2: "samples"}})
    check = torch.randn(2, channels, 97, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want = generator(check).numpy()
    got = _session(out).run(None, {"mel": check.numpy()})[0]
    diff = float(np.abs(got - want).max())
    if diff > TOLERANCE:
        out.unlink(missing_ok=True)
        raise UserError(f"{out.name}: onnxruntime differs from the generator by {diff:.2e} (> {TOLERANCE}); "
                        "not written")
    cfg = out.with_name("config.json")
    if not cfg.is_file():
        atomic_write_json(cfg, hparams.to_jik876(h, batch_size=16, learning_rate=2e-4, seed=1234, num_workers=0,
                                                 in_channels=channels))
    return out


class OnnxGenerator:
    """onnxruntime behind the torch generator's call (tensor in, tensor out) and ``hop_size``."""

    def __init__(self, path: Path, h: dict):
        self.path = Path(path)
        self.session = _session(self.path)
        self.hop_size = int(np.prod(h["upsample_rates"]))

    def __call__(self, x: Any) -> Any:
        import torch

        out = self.session.run(None, {"mel": x.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(out)


def cached_onnx(checkpoint: Path, config: Path | None, cache_dir: Path) -> tuple[Path, dict]:
    """The ``.onnx`` of a g_ file or state (exported once, cached by the file's content) and its hyperparameters."""
    from modules.hifigan import checkpoint as ckpt
    from modules.hifigan import hparams, load_generator_with_config

    checkpoint = Path(checkpoint)
    if checkpoint.suffix == ".onnx":
        cfg = Path(config) if config else checkpoint.with_name("config.json")
        if not cfg.is_file():
            raise UserError(f"{checkpoint}: no config.json beside it (pass --config)")
        return checkpoint, hparams.from_jik876(ckpt.read_config(cfg))
    path = ckpt.resolve_checkpoint(checkpoint)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    key = hashlib.sha256(json.dumps([digest, str(config)]).encode()).hexdigest()[:16]
    target = Path(cache_dir) / key / "generator.onnx"
    generator, h = load_generator_with_config(path, config, "cpu")
    if not target.is_file():
        export_onnx(generator.remove_weight_norm(), h, target)
    return target, h
