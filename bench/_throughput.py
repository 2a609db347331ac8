"""Units of the training benchmarks, counted the way the figures we compare with were counted.

NVIDIA DeepLearningExamples' HiFi-GAN reports "frames/s" from ``metrics['frames'] = x.size(0) *
x.size(1) * world_size`` per micro-batch, where ``x`` is the input mel ``[batch, n_mels, frames]``:
that is batch x n_mels per micro-batch, not mel frames. Their 15,579 on one A100 (AMP, batch 128) is
15,579 / (128 x 80) = 1.52 steps/s = 195 segments of 8,192 samples per second.
"""

from __future__ import annotations

from typing import Any, Callable

NVIDIA_A100_AMP_UNITS = 15579  # NVIDIA DeepLearningExamples HiFi-GAN, 1x A100 80GB, AMP, batch 128
NVIDIA_A100_AMP_BATCH = 128

# dense (no sparsity) peak TFLOPS: fp32 without tensor cores (TF32 off), TF32 tensor cores (what cuDNN uses for
# "fp32" convolutions by default), bf16/fp16 tensor cores; None where the chip has no TF32 (V100)
GPU_PEAK_TFLOPS = {  # name fragment -> (fp32, tf32, bf16)
    "H200": (67.0, 494.7, 989.0), "H100": (67.0, 494.7, 989.0), "A100": (19.5, 156.0, 312.0),
    "L40S": (91.6, 183.0, 362.0), "RTX 4090": (82.6, 82.6, 165.2), "RTX 3090": (35.6, 35.6, 71.0),
    "A10": (31.2, 62.5, 125.0), "V100": (15.7, None, 125.0),
}


def nvidia_units(batch: int, n_mels: int, steps_per_s: float, accumulation: int = 1) -> float:
    """NVIDIA's "frames/s": batch x n_mels per micro-batch, times micro-batches per second."""
    return float(batch) * float(n_mels) * float(steps_per_s) * int(accumulation)


def segments_per_s(batch: int, steps_per_s: float, accumulation: int = 1) -> float:
    return float(batch) * float(steps_per_s) * int(accumulation)


def peak_tflops(device_name: str, precision: str) -> float | None:
    """The GPU's dense peak for ``precision`` (fp32, tf32, or bf16/fp16), None when unknown (CPUs)."""
    for key, (fp32, tf32, half) in GPU_PEAK_TFLOPS.items():
        if key.lower() in device_name.lower():
            return {"fp32": fp32, "tf32": tf32 or fp32}.get(precision, half)
    return None


def count_flops(step: Callable[[], Any]) -> int:
    """FLOPs of one call of ``step`` (forward and backward), counted by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def describe(rec: dict[str, Any]) -> str:
    """One printed line of a measured configuration (the figures of ``measure_record``)."""
    parts = [f"{rec['steps_per_s']:7.3f} steps/s", f"{rec['segments_per_s']:7.1f} segments/s",
             f"{rec['audio_s_per_s']:6.1f} s of audio/s",
             f"NVIDIA units {rec['nvidia_frames_per_s']:8.0f} = {rec['batch']} x {rec['n_mels']} x "
             f"{rec['steps_per_s']:.3f} ({rec['nvidia_ratio']:.2f}x their 1xA100 AMP 15,579)"]
    if rec.get("gpu_util") is not None:
        parts.append(f"GPU busy {rec['gpu_util']:.0f}%")
    if rec.get("peak_memory_bytes"):
        parts.append(f"peak {rec['peak_memory_bytes'] / 2**30:.1f} GiB")
    if rec.get("tflops") is not None:
        parts.append(f"{rec['tflops']:.2f} TFLOP/s" + (f" = MFU {rec['mfu']:.1%} of the {rec['mfu_peak']} peak"
                                                          if rec.get("mfu") is not None else ""))
    return f"{rec['name']:48s} " + ", ".join(parts)


def measure_record(name: str, *, batch: int, segment: int, n_mels: int, sample_rate: int, steps_per_s: float,
                   device: str, precision: str, step_flops: int | None = None, gpu_util: float | None = None,
                   peak_memory_bytes: int | None = None, device_name: str = "",
                   peak_precision: str | None = None) -> dict[str, Any]:
    """Everything ``--json`` writes for one configuration (see the bench's contract). ``peak_precision``: the
    peak the utilisation is taken against, when the math runs in another than ``precision`` (fp32 on TF32)."""
    units = nvidia_units(batch, n_mels, steps_per_s)
    seg = segments_per_s(batch, steps_per_s)
    rec: dict[str, Any] = {
        "name": name, "batch": batch, "segment": segment, "n_mels": n_mels, "precision": precision,
        "steps_per_s": steps_per_s, "segments_per_s": seg, "audio_s_per_s": seg * segment / sample_rate,
        "nvidia_frames_per_s": units, "nvidia_ratio": units / NVIDIA_A100_AMP_UNITS, "device": device,
        "device_name": device_name, "gpu_util": gpu_util, "peak_memory_bytes": peak_memory_bytes,
        "step_flops": step_flops, "tflops": None, "mfu": None, "mfu_peak": None}
    if step_flops:
        rec["tflops"] = step_flops * steps_per_s / 1e12
        rec["mfu_peak"] = peak_precision or precision
        peak = peak_tflops(device_name, rec["mfu_peak"]) if device == "cuda" else None
        rec["mfu"] = rec["tflops"] / peak if peak else None
    return rec
