"""tortoise HiFi-GAN decoder fine-tune: latent extraction speed (clips/s) and training steps/s.

Both through the project's own code on a synthetic voice: the latents through
``teacher_forced_latents`` (one clip per call against ``--latent-batch`` clips per call), the
training through the real trainer core and decoder recipe (loader, mels on the device, HiFi-GAN
losses, fused AdamW on a GPU). The GPT and decoder are random (speed does not depend on the
weights); the tokenizer, mel norms and DVAE are the demo files built from the synthetic clips.

    python bench/train_hifidecoder.py                                        # tiny sizes on the CPU
    python bench/train_hifidecoder.py --device cuda --full --batch 16 --segment 32 --precision bf16
    python bench/train_hifidecoder.py --full --latents-only                    # full-size GPT on the CPU
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench._hifigan_common import make_dataset, run_timed
from modules.fileutil import atomic_write_json

WORDS = "the a voice clip speaks slowly while quiet rain falls over seven green hills and old roads".split()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_workspace(root: Path, clips: int, seconds: float, full: bool) -> dict:
    """A synthetic voice with varied texts, demo tokenizer / mel norms / DVAE and a random GPT export."""
    from modules.autoregressive.checkpoint import build_unified_voice, save_unified_voice
    from modules.autoregressive.demo_files import build_demo_files
    from modules.autoregressive.options import PRESETS, TORTOISE_FULL_SIZE
    from modules.fileutil import atomic_write_json

    ds = make_dataset(root, clips=clips, seconds=seconds)
    rng = np.random.default_rng(0)
    for name in ("train.txt", "validation.txt"):
        lines = (ds / name).read_text().splitlines()
        texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(4, 16)))) for _ in lines]
        (ds / name).write_text("".join(f"{ln.split('|')[0]}|{t}\n" for ln, t in zip(lines, texts)))
    files = build_demo_files(ds, root / "models" / "demo")
    hp = dict(TORTOISE_FULL_SIZE if full else PRESETS["tiny"]["autoregressive"])
    gpt = root / "models" / "ar" / "00000000_gpt.pth"
    gpt.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    save_unified_voice(build_unified_voice(hp), gpt)
    atomic_write_json(gpt.with_suffix(".json"), {"hyperparameters": hp, **{k: str(v) for k, v in files.items()}})
    return {"dataset": ds, "gpt": gpt}


def config(args, device: torch.device, steps: int):
    from modules.config.schema import apply_overrides, default_config

    sets = [f"max_steps={steps}", f"batch_size={args.batch}", f"num_workers={args.workers}",
            f"gpus={1 if device.type == 'cuda' else 0}", f"precision={args.precision}", "save_every_steps=null",
            "validate_every_steps=null", f"log_every_steps={steps}", "evaluation.enabled=false", "base=null",
            "hifidecoder.gpt_checkpoint=models/ar/00000000_gpt.pth", f"hifidecoder.segment_latents={args.segment}",
            f"hifidecoder.latent_batch_size={args.latent_batch}"]
    return apply_overrides(default_config("hifidecoder", "training/bench", preset=None if args.full else "tiny"),
                           sets)


def bench_latents(root: Path, args, device: torch.device) -> list[dict]:
    """clips/s of the teacher-forced latent pass, one clip per call and ``--latent-batch`` per call."""
    from modules.hifidecoder.latent_cache import teacher_forced_latents
    from modules.hifidecoder.recipe import HifidecoderRecipe

    recipe = HifidecoderRecipe(config(args, device, 1), root / "training" / "bench", device, root)
    latents, _, audio = recipe._latent_set("train.txt")  # codes and the cache: built once, not timed here
    src = recipe.source()
    from modules.autoregressive.checkpoint import load_dvae
    from modules.autoregressive.data import compute_codes

    codes = compute_codes(audio, load_dvae(src.dvae_path), src.mel, root / "training/bench/cache", src.dvae_path,
                          device)
    items = [(ids, codes[r]) for ids, r in zip(latents.text_ids, latents.rows)]
    cond = latents.conditioning.to(device)
    out = []
    for batch in sorted({1, args.latent_batch}):
        teacher_forced_latents(src.gpt, cond, items[:2], batch)  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        teacher_forced_latents(src.gpt, cond, items, batch)
        _sync(device)
        seconds = time.perf_counter() - t0
        groups = len({len(i[0]) for i in items})
        out.append({"name": f"latents batch {batch}", "clips_per_s": len(items) / seconds, "clips": len(items),
                    "text_lengths": groups, "device": str(device)})
        print(f"latent extraction, up to {batch} clip(s) per call ({len(items)} clips, {groups} text lengths): "
              f"{len(items) / seconds:.2f} clips/s")
    return out


def bench_training(root: Path, args, device: torch.device) -> dict:
    from modules.hifidecoder.data import crop_frames
    from modules.hifidecoder.recipe import HifidecoderRecipe
    from modules.trainer.core import Trainer
    from modules.workspace import Workspace

    times: list[float] = []

    class TimedRecipe(HifidecoderRecipe):
        def train_step(self, batch, models, ctx):
            out = super().train_step(batch, models, ctx)
            if len(times) + 1 in (max(args.warmup, 1), args.warmup + args.steps):  # the timed window's edges
                _sync(self.device)
            times.append(time.perf_counter())
            return out

    class _Trainer(Trainer):
        def save(self):  # the timed part is over
            return None

    cfg = config(args, device, args.warmup + args.steps)
    path = root / "training" / "bench" / "configs" / "decoder.yaml"
    from modules.config.schema import save_config

    save_config(cfg, path)
    run_timed(_Trainer(cfg, Workspace.open(root), path, recipe_cls=TimedRecipe), times, args.warmup + args.steps)
    steps_per_s = args.steps / (times[-1] - times[args.warmup - 1])
    frames = crop_frames(args.segment)
    rec = {"name": f"decoder {'full' if args.full else 'tiny'} batch {args.batch} segment {args.segment} "
                   f"{args.precision}", "batch": args.batch, "segment_latents": args.segment,
           "steps_per_s": steps_per_s, "segments_per_s": steps_per_s * args.batch,
           "audio_seconds_per_s": steps_per_s * args.batch * frames * 256 / 24000, "device": str(device)}
    print(f"training ({rec['name']}): {steps_per_s:.2f} steps/s, {rec['segments_per_s']:.1f} segments/s, "
          f"{rec['audio_seconds_per_s']:.1f} s of 24 kHz audio per second")
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--full", action="store_true", help="tortoise's sizes (GPT 30 x 1024, decoder 17.8 M)")
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--segment", type=int, default=8, help="crop in GPT latent frames (32 = 1.49 s)")
    ap.add_argument("--latent-batch", type=int, default=8)
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--latents-only", action="store_true", help="measure the latent extraction only")
    ap.add_argument("--json", default=None, metavar="FILE")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for sub in ("voices", "models"):
            (root / sub).mkdir(exist_ok=True)
        make_workspace(root, args.clips, args.seconds, args.full)
        records = bench_latents(root, args, device)
        if args.json:  # now and after training: a run stopped at a time limit keeps the latent figures
            atomic_write_json(Path(args.json), records)
        if not args.latents_only:
            records.append(bench_training(root, args, device))
    if args.json:
        atomic_write_json(Path(args.json), records)


if __name__ == "__main__":
    main()
