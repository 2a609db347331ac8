"""HiFi-GAN vocoding speed: real-time factor of ours against plain eager inference.

Plain: the generator with weight norm in place, ``torch.no_grad``, fp32 (what
jik876's inference script does). Ours: weight norm folded away,
``torch.inference_mode``, optionally bf16 autocast (--amp) and torch.compile
(--compile). Same weights, same mel (of a synthetic voiced signal).

    python bench/vocode.py --device cuda --seconds 10 --amp --compile
    python bench/vocode.py --device cpu --seconds 2 --repeats 2

Real-time factor = compute time / audio duration (lower is faster). Each line also gives the
generator's arithmetic rate (its FLOPs counted once with ``torch.utils.flop_counter``, over the call's
time); ``--ceiling`` adds, measured in the same run, the best fp32 rate of this device's convolution
library on large dense convolutions shaped like the generator's (the most any engine running the same
fp32 arithmetic through such kernels can expect).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _signal(seconds: float, rate: int = 22050) -> torch.Tensor:
    t = np.arange(int(seconds * rate)) / rate
    f0 = 140 * (1 + 0.1 * np.sin(2 * np.pi * 1.3 * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 12))
    return torch.from_numpy((0.3 * wave / np.abs(wave).max()).astype(np.float32))


def _time(fn, x: torch.Tensor, device: torch.device, repeats: int, warmup: int = 2) -> tuple[float, torch.Tensor]:
    for _ in range(warmup):
        y = fn(x)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        y = fn(x)
    _sync(device)
    return (time.perf_counter() - t0) / repeats, y


def _flops(model, x: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return counter.get_total_flops()


def _conv_ceiling(device: torch.device, repeats: int) -> tuple[float, str]:
    """Best fp32 GFLOP/s over dense Conv1d layers the size of the generator's (channels, kernel, frames)."""
    best, shape = 0.0, ""
    with torch.inference_mode():
        for channels, kernel, frames in ((512, 3, 8192), (256, 7, 16384), (128, 11, 32768)):
            conv = torch.nn.Conv1d(channels, channels, kernel, padding=kernel // 2).to(device)
            x = torch.randn(1, channels, frames, device=device)
            seconds, _ = _time(conv, x, device, repeats)
            rate = 2 * channels * channels * kernel * frames / seconds / 1e9
            if rate > best:
                best, shape = rate, f"{channels}->{channels} channels, kernel {kernel}, {frames} frames"
    return best, shape


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--preset", default="v1", choices=("v1", "v2", "v3"))
    p.add_argument("--checkpoint", default=None, help="a g_ file (default: random V1 weights)")
    p.add_argument("--seconds", type=float, default=10.0, help="audio length per call")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--amp", action="store_true", help="also time ours in bf16 autocast")
    p.add_argument("--compile", action="store_true", help="also time ours with torch.compile")
    p.add_argument("--onnx", action="store_true", help="also time the generator exported to ONNX (onnxruntime, CPU)")
    p.add_argument("--ceiling", action="store_true",
                   help="also measure the device's best fp32 convolution rate (large dense Conv1d layers)")
    args = p.parse_args()
    device = torch.device("cuda" if (args.device == "auto" and torch.cuda.is_available()) or args.device == "cuda"
                          else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    from modules.audio.mel import mel_spectrogram
    from modules.hifigan import hparams, load_generator
    from modules.hifigan.models import Generator

    h = hparams.resolve({"preset": args.preset})
    if args.checkpoint:
        plain = load_generator(args.checkpoint, device=str(device))
    else:
        torch.manual_seed(0)
        plain = Generator.from_config(h).to(device).eval()
    ours = Generator(**{k: v for k, v in plain.hparams.items()}).to(device)
    ours.load_state_dict(plain.state_dict())
    ours = ours.remove_weight_norm().eval()
    wave = _signal(args.seconds).to(device).repeat(args.batch, 1)
    mel = mel_spectrogram(wave, **hparams.mel_kwargs(h))
    audio_s = args.batch * mel.shape[-1] * 256 / 22050

    def run_plain(x):
        with torch.no_grad():
            return plain(x)

    def run_ours(x):
        with torch.inference_mode():
            return ours(x)

    def run_ours_bf16(x):
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
            return ours(x).float()

    cases = [("plain eager, weight norm, fp32, no_grad", run_plain),
             ("ours: weight norm folded, inference_mode, fp32", run_ours)]
    if args.amp:
        cases.append(("ours + bf16 autocast", run_ours_bf16))
    if args.compile:
        compiled = torch.compile(ours)

        def run_compiled(x):
            with torch.inference_mode():
                return compiled(x)

        cases.append(("ours + torch.compile (fp32)", run_compiled))
        if args.amp:
            def run_compiled_bf16(x):
                with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
                    return compiled(x).float()

            cases.append(("ours + torch.compile + bf16", run_compiled_bf16))

    if args.onnx and device.type == "cpu":
        import tempfile
        from pathlib import Path

        from modules.hifigan.onnx_engine import OnnxGenerator, export_onnx

        onnx_gen = OnnxGenerator(export_onnx(ours, {**h, "in_channels": 80},
                                             Path(tempfile.mkdtemp()) / "generator.onnx"), h)
        cases.append(("ours exported to ONNX, onnxruntime", lambda x: onnx_gen(x)))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"HiFi-GAN {args.preset.upper()} vocoding: {args.batch} x {args.seconds:g} s of audio per call on {device} "
          f"({name}), {args.repeats} timed calls")
    flops = _flops(ours, mel)
    ref = None
    base_rtf = None
    rtfs = {}
    for label, fn in cases:
        seconds, y = _time(fn, mel, device, args.repeats)
        rtf = seconds / audio_s
        base_rtf = base_rtf or rtf
        diff = "" if ref is None else f"  max |diff| vs plain {float((y.float() - ref).abs().max()):.2e}"
        ref = y.float() if ref is None else ref
        rtfs[label] = rtf
        folded = rtfs.get("ours: weight norm folded, inference_mode, fp32")
        vs = f", {folded / rtf:5.2f}x folded eager" if folded and label.startswith("ours exported") else ""
        print(f"{label:50s} RTF {rtf:.5f} ({1 / rtf:8.1f}x real time, {base_rtf / rtf:5.2f}x plain{vs}, "
              f"{flops / seconds / 1e9:6.1f} GFLOP/s){diff}")
    if args.ceiling:
        best, shape = _conv_ceiling(device, args.repeats)
        folded_rate = flops / (rtfs["ours: weight norm folded, inference_mode, fp32"] * audio_s) / 1e9
        print(f"{flops / 1e9:.1f} GFLOP per call. Best fp32 convolution rate on this device: {best:.1f} GFLOP/s "
              f"({shape}); the folded eager generator runs at {folded_rate / best:.0%} of it, so twice its speed "
              f"at the same arithmetic would need {2 * folded_rate / best:.2f}x that rate")


if __name__ == "__main__":
    main()
