"""HiFi-GAN training throughput: our trainer core + recipe against a plain jik876-style eager loop.

Both loops train the same generator and discriminators on the same synthetic
dataset in the same run, so the ratio holds on a noisy machine. The plain loop
is jik876's: each loader worker reads a wav, crops it and computes both mels
on the CPU; fp32; eager. Ours: int16 cache, mels on the device in batches,
fused AdamW, optional bf16 autocast (--amp) and the config's ``compile`` key
(--compile none,graphs measures each mode in the same run).

    python bench/train_hifigan.py --device cuda --steps 50 --amp          # V1, batch 16, segment 8192
    python bench/train_hifigan.py --device cpu --preset v2 --batch 2 --segment 4096 --steps 3 --warmup 1

    python bench/train_hifigan.py --device cuda --sweep --json sweep.json   # batch 128..16 x bf16/fp32

Prints, per configuration: steps/s, segments/s (and seconds of audio per second), NVIDIA's unit
(batch x n_mels x steps/s, what their "frames/s" counts; see bench/_throughput.py) against their
15,579 on one A100 with AMP, and on a GPU the mean utilisation, peak memory and model FLOPs
utilisation (one step's FLOPs from torch.utils.flop_counter x steps/s / the GPU's dense peak; for
fp32 the TF32 peak, since cuDNN runs fp32 convolutions on TF32 tensor cores by default). The
plain loop runs at the same batch in the same run. ``--json FILE`` writes one object per
configuration (name, batch, segment, n_mels, steps_per_s, segments_per_s, nvidia_frames_per_s,
device, ...).
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench._hifigan_common import GpuSampler, RunCutShort, make_dataset, run_timed
from bench._throughput import count_flops, describe, measure_record
from modules.fileutil import atomic_write_json


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------------------ ours
def run_ours(ws: Path, args, device: torch.device) -> dict:
    from modules.config.schema import config_from_dict, save_config
    from modules.hifigan.recipe import HifiganRecipe
    from modules.trainer.core import Trainer
    from modules.workspace import Workspace

    times: list[float] = []
    activities = [torch.profiler.ProfilerActivity.CPU] + (
        [torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda" else [])
    prof = torch.profiler.profile(activities=activities)

    class TimedRecipe(HifiganRecipe):
        """The real recipe, stamping the time after each step; only the timed window's two edges wait for
        the GPU, so the queue of kernels runs ahead as in training (no host read-back per step)."""

        def train_step(self, batch, models, ctx):
            if args.profile and len(times) == args.warmup:
                prof.__enter__()
            out = super().train_step(batch, models, ctx)
            if len(times) + 1 in (max(args.warmup, 1), total) or args.profile:
                _sync(self.device)
            times.append(time.time())
            if args.profile and len(times) == args.warmup + args.profile:
                prof.__exit__(None, None, None)
            return out

    total = args.warmup + args.steps
    hifigan = {"preset": args.preset, "segment_size": args.segment, "discriminator_width": args.disc_width}
    cfg = config_from_dict({
        "model": "hifigan", "dataset": "training/bench", "batch_size": args.batch, "epochs": 10_000,
        "max_steps": total, "num_workers": args.workers, "gpus": 1 if device.type == "cuda" else 0,
        "precision": "bf16" if args.amp else "fp32", "compile": args.compile_mode, "seed": 1, "save_every_steps": None,
        "validate_every_steps": None, "log_every_steps": max(total, 1), "keep_states": 1, "hifigan": hifigan})
    path = ws / "training" / "bench" / "configs" / f"ours-{time.time_ns()}.yaml"
    save_config(cfg, path)
    wall = [0.0, 0.0]

    class _Trainer(Trainer):
        def save(self):  # the timed part is over; skip writing a ~1 GB state
            return None

    run_timed(_Trainer(cfg, Workspace.open(ws), path, recipe_cls=TimedRecipe), times, total)
    wall[0], wall[1] = times[args.warmup - 1] if args.warmup else times[0], times[-1]
    n = args.steps if args.warmup else args.steps - 1
    if args.profile:
        events = prof.key_averages()
        calls = sum(e.count for e in events)
        print(f"profile of {args.profile} steps: {calls / args.profile:.0f} profiled op calls per step")
        print(events.table(sort_by="self_cpu_time_total", row_limit=25))
        if device.type == "cuda":
            print(events.table(sort_by="self_cuda_time_total", row_limit=15))
    return {"steps_per_s": n / (wall[1] - wall[0]), "t0": wall[0], "t1": wall[1]}


# ------------------------------------------------------------------------------------------ plain
class PlainMelDataset(torch.utils.data.Dataset):
    """jik876's MelDataset in spirit: read the wav, random crop, both mels on the CPU, in the worker."""

    def __init__(self, files: list[Path], segment: int, h: dict):
        self.files, self.segment, self.h = files, segment, h

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        import soundfile as sf

        from modules.audio.mel import mel_spectrogram
        from modules.hifigan.hparams import mel_kwargs

        audio, _ = sf.read(self.files[i], dtype="int16")
        audio = torch.from_numpy(audio.astype(np.float32) / 32768.0).unsqueeze(0)
        if audio.shape[1] >= self.segment:
            start = random.randint(0, audio.shape[1] - self.segment)
            audio = audio[:, start:start + self.segment]
        else:
            audio = torch.nn.functional.pad(audio, (0, self.segment - audio.shape[1]))
        mel = mel_spectrogram(audio, **mel_kwargs(self.h))
        mel_loss = mel_spectrogram(audio, **mel_kwargs(self.h, for_loss=True))
        return mel.squeeze(0), audio.squeeze(0), mel_loss.squeeze(0)


def jik876_forward(disc, y: torch.Tensor, y_hat: torch.Tensor):
    """jik876's discriminator forward: every sub-discriminator called on real and generated audio separately."""
    rs, gs, frs, fgs = [], [], [], []
    pools = getattr(disc, "meanpools", None)
    for i, d in enumerate(disc.discriminators):
        if pools is not None and i:
            y, y_hat = pools[i - 1](y), pools[i - 1](y_hat)
        r, fr = d(y)
        g, fg = d(y_hat)
        rs.append(r)
        gs.append(g)
        frs.append(fr)
        fgs.append(fg)
    return rs, gs, frs, fgs


def run_plain(ds_dir: Path, args, device: torch.device) -> dict:
    import torch.nn.functional as F

    from modules.audio.mel import mel_spectrogram
    from modules.hifigan import hparams
    from modules.hifigan.losses import discriminator_loss, feature_loss, generator_loss
    from modules.hifigan.models import Generator, MultiPeriodDiscriminator, MultiScaleDiscriminator

    h = hparams.resolve({"preset": args.preset, "segment_size": args.segment})
    torch.manual_seed(1)
    generator = Generator.from_config(h).to(device)
    mpd = MultiPeriodDiscriminator(width=args.disc_width).to(device)
    msd = MultiScaleDiscriminator(width=args.disc_width).to(device)
    if args.compile_plain:
        from modules.trainer.compiling import compile_models

        compile_models({"g": generator, "mpd": mpd, "msd": msd}, ("g", "mpd", "msd"), "default", device)
    optim_g = torch.optim.AdamW(generator.parameters(), 2e-4, betas=(0.8, 0.99))
    optim_d = torch.optim.AdamW(list(msd.parameters()) + list(mpd.parameters()), 2e-4, betas=(0.8, 0.99))
    files = [ds_dir / line.split("|")[0] for line in (ds_dir / "train.txt").read_text().splitlines() if line]
    loader = torch.utils.data.DataLoader(PlainMelDataset(files, args.segment, h), batch_size=args.batch,
                                         shuffle=True, num_workers=args.plain_workers, drop_last=True,
                                         pin_memory=device.type == "cuda", persistent_workers=False)
    total = args.warmup + args.steps
    times: list[float] = []
    step = 0
    while step < total:
        for x, y, y_mel in loader:
            x, y, y_mel = (t.to(device, non_blocking=True) for t in (x, y, y_mel))
            y = y.unsqueeze(1)
            y_g_hat = generator(x)
            y_g_hat_mel = mel_spectrogram(y_g_hat.squeeze(1), **hparams.mel_kwargs(h, for_loss=True))
            optim_d.zero_grad()
            r, g, _, _ = jik876_forward(mpd, y, y_g_hat.detach())
            loss_d = discriminator_loss(r, g)
            r, g, _, _ = jik876_forward(msd, y, y_g_hat.detach())
            loss_d = loss_d + discriminator_loss(r, g)
            loss_d.backward()
            optim_d.step()
            optim_g.zero_grad()
            loss_mel = F.l1_loss(y_mel, y_g_hat_mel) * 45
            _, g_f, fr_f, fg_f = jik876_forward(mpd, y, y_g_hat)
            _, g_s, fr_s, fg_s = jik876_forward(msd, y, y_g_hat)
            loss_g = (generator_loss(g_f) + generator_loss(g_s) + 2 * (feature_loss(fr_f, fg_f)
                      + feature_loss(fr_s, fg_s)) + loss_mel)
            loss_g.backward()
            optim_g.step()
            _sync(device)
            times.append(time.time())
            step += 1
            if step >= total:
                break
    first = times[args.warmup - 1] if args.warmup else times[0]
    n = args.steps if args.warmup else args.steps - 1
    assert math.isfinite(float(loss_g.detach()))
    return {"steps_per_s": n / (times[-1] - first), "t0": first, "t1": times[-1]}


def step_flops(args, device: torch.device, batch: int) -> int:
    """FLOPs of one training step of these models (discriminator and generator, forward and backward)."""
    import torch.nn.functional as F

    from modules.audio.mel import mel_spectrogram
    from modules.hifigan import hparams
    from modules.hifigan.losses import discriminator_loss, feature_loss, generator_loss
    from modules.hifigan.models import Generator, MultiPeriodDiscriminator, MultiScaleDiscriminator

    h = hparams.resolve({"preset": args.preset, "segment_size": args.segment})
    gen = Generator.from_config(h).to(device)
    mpd = MultiPeriodDiscriminator(width=args.disc_width).to(device)
    msd = MultiScaleDiscriminator(width=args.disc_width).to(device)
    x = torch.randn(batch, int(h["num_mels"]), args.segment // int(h["hop_size"]), device=device)
    y = torch.randn(batch, 1, args.segment, device=device) * 0.1

    def one_step() -> None:
        y_hat = gen(x)
        r, g, _, _ = jik876_forward(mpd, y, y_hat.detach())
        loss_d = discriminator_loss(r, g)
        r, g, _, _ = jik876_forward(msd, y, y_hat.detach())
        (loss_d + discriminator_loss(r, g)).backward()
        mel = mel_spectrogram(y_hat.squeeze(1), **hparams.mel_kwargs(h, for_loss=True))
        _, g_f, fr_f, fg_f = jik876_forward(mpd, y, y_hat)
        _, g_s, fr_s, fg_s = jik876_forward(msd, y, y_hat)
        loss_g = generator_loss(g_f) + generator_loss(g_s) + 2 * (feature_loss(fr_f, fg_f) + feature_loss(
            fr_s, fg_s)) + F.l1_loss(mel, torch.zeros_like(mel)) * 45
        loss_g.backward()

    return count_flops(one_step)


def _configurations(args) -> list[tuple[int, bool]]:
    """Largest batch first and bf16 before fp32: a sweep cut short by a time limit keeps the figure that
    matters most (bf16 at NVIDIA's batch of 128); a batch that does not fit is skipped."""
    if args.sweep:
        return [(b, amp) for b in (128, 64, 32, 16) for amp in (True, False)]
    return [(args.batch, args.amp)]


def _peak_reset(device: torch.device) -> None:
    gc.collect()  # a finished trainer's models (and a CUDA-graph pool) must not count in the next peak
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device: torch.device) -> int | None:
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--steps", type=int, default=30, help="timed steps per loop")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (cudnn autotuning, compile)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--segment", type=int, default=8192)
    p.add_argument("--preset", default="v1", choices=("v1", "v2", "v3"))
    p.add_argument("--disc-width", type=float, default=1.0, help="discriminator width (1 = jik876's; both loops)")
    p.add_argument("--amp", action="store_true", help="ours in bf16 autocast (the plain loop stays fp32)")
    p.add_argument("--sweep", action="store_true",
                   help="batch 128/64/32/16 x bf16/fp32, largest first (one that does not fit is skipped)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the measured configurations here")
    p.add_argument("--compile", default="none",
                   help="the config's compile key for our loop (none, default, graphs); a comma list measures each")
    p.add_argument("--compile-plain", action="store_true", help="also torch.compile the plain loop's models")
    p.add_argument("--workers", type=int, default=2, help="our loader workers")
    p.add_argument("--plain-workers", type=int, default=4, help="plain loop's loader workers (jik876: 4)")
    p.add_argument("--clips", type=int, default=128, help="synthetic 2 s clips in the dataset")
    p.add_argument("--only", choices=("ours", "plain"), default=None)
    p.add_argument("--no-flops", action="store_true", help="skip counting one step's FLOPs")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="profile N of our steps after the warm-up (torch.profiler tables; slows those steps)")
    p.add_argument("--workdir", default=None, help="keep the synthetic dataset here (default: a temp folder)")
    args = p.parse_args()
    device = torch.device("cuda" if (args.device == "auto" and torch.cuda.is_available()) or args.device == "cuda"
                          else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(max(1, torch.get_num_threads()))
    from modules.hifigan import hparams

    h = hparams.resolve({"preset": args.preset, "segment_size": args.segment})
    ws = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-hifigan-"))
    ds = make_dataset(ws, clips=max(args.clips, 2 * max(b for b, _ in _configurations(args))))
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"HiFi-GAN training benchmark: {args.preset.upper()} segment {args.segment} on {device} ({device_name}), "
          f"{args.warmup} warm-up + {args.steps} timed steps per configuration")
    if device.type == "cuda":  # as jik876's train.py does, for both loops (the trainer sets it for ours)
        torch.backends.cudnn.benchmark = True
    tf32 = device.type == "cuda" and torch.backends.cudnn.allow_tf32  # on by default: "fp32" convolutions use TF32
    records, plain_done, flops_of = [], {}, {}
    if args.json:  # then again after each configuration: a run stopped at a time limit keeps what it measured
        atomic_write_json(Path(args.json), records)
    with GpuSampler(enabled=device.type == "cuda") as sampler:
        for batch, amp in _configurations(args):
            run_args = argparse.Namespace(**{**vars(args), "batch": batch, "amp": amp})
            if not args.no_flops and batch not in flops_of:
                flops_of[batch] = step_flops(run_args, device, batch)
            flops = flops_of.get(batch)
            todo = []
            if args.only in (None, "plain") and batch not in plain_done:
                todo.append(("plain jik876-style loop (fp32)", "fp32", None,
                             lambda a=run_args: run_plain(ds, a, device)))
            for mode in args.compile.split(",") if args.only in (None, "ours") else []:
                label = f"ours ({'bf16' if amp else 'fp32'}" + (f", compile {mode})" if mode != "none" else ")")
                a = argparse.Namespace(**{**vars(run_args), "compile_mode": mode})
                todo.append((label, "bf16" if amp else "fp32", mode, lambda a=a: run_ours(ws, a, device)))
            for label, precision, mode, fn in todo:
                _peak_reset(device)
                try:
                    r = fn()
                except torch.OutOfMemoryError:
                    print(f"{label} batch {batch}: out of memory; skipped", flush=True)
                    continue
                except (RunCutShort, KeyboardInterrupt) as exc:  # a time limit: keep what was measured
                    print(f"{label} batch {batch}: cut short ({str(exc) or 'interrupted'}); stopping", flush=True)
                    sys.exit(130)
                except Exception as exc:  # e.g. one compile mode failing: the others are still worth measuring
                    print(f"{label} batch {batch}: failed ({type(exc).__name__}: {exc}); skipped", flush=True)
                    continue
                rec = measure_record(f"{label} batch {batch}", batch=batch, segment=args.segment,
                                     n_mels=int(h["num_mels"]), sample_rate=int(h["sampling_rate"]),
                                     steps_per_s=r["steps_per_s"], device=device.type, precision=precision,
                                     step_flops=flops, gpu_util=sampler.mean(r["t0"], r["t1"]),
                                     peak_memory_bytes=_peak(device), device_name=device_name,
                                     peak_precision="tf32" if precision == "fp32" and tf32 else precision)
                rec["compile"] = mode  # None for the plain loop
                if label.startswith("plain"):
                    plain_done[batch] = rec
                elif batch in plain_done:
                    rec["vs_plain"] = rec["steps_per_s"] / plain_done[batch]["steps_per_s"]
                records.append(rec)
                if args.json:
                    atomic_write_json(Path(args.json), records)
                print(describe(rec) + (f", {rec['vs_plain']:.2f}x the plain loop" if "vs_plain" in rec else ""),
                      flush=True)
    if args.json:
        print(f"wrote {len(records)} configuration(s) to {args.json}")


if __name__ == "__main__":
    main()
