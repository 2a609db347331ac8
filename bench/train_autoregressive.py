"""Training-step throughput and peak memory of UnifiedVoice (tortoise's autoregressive model).

GPU: the full-size model (421M parameters) at batch 8 with our settings (bf16 autocast,
gradient checkpointing, SDPA attention, fused AdamW) against a plain eager reference loop
(fp32, no checkpointing, the math attention kernel, AdamW) measured in the same run.
CPU: the tiny from-scratch model. Prints steps/s, tokens/s (batch x sequence x steps/s), peak
memory and model FLOPs utilisation (one step's FLOPs counted with torch.utils.flop_counter, over
step time and the GPU's dense peak); asserts nothing.

    python bench/train_autoregressive.py                # GPU when available, else CPU tiny
    python bench/train_autoregressive.py --batches 8,16 # each batch in turn
    python bench/train_autoregressive.py --device cpu --tiny
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench._throughput import peak_tflops
from modules.autoregressive.checkpoint import build_unified_voice

TINY = {"layers": 2, "model_dim": 64, "heads": 4, "max_text_tokens": 120, "max_mel_tokens": 250}


def make_batch(b: int, text_len: int, mel_len: int, device: torch.device, gen: torch.Generator):
    """A batch shaped like ai-voice-cloning's: 2 conditioning clips of 44,000 samples (172 frames)."""
    cond = torch.randn(b, 2, 80, 172, generator=gen).to(device)
    text = torch.randint(3, 255, (b, text_len), generator=gen).to(device)
    text_lengths = torch.full((b,), text_len, dtype=torch.long, device=device)
    codes = torch.randint(0, 8192, (b, mel_len), generator=gen).to(device)
    wav_lengths = torch.full((b,), mel_len * 1024 - 5, dtype=torch.long, device=device)
    return cond, text, text_lengths, codes, wav_lengths


def run_mode(name: str, hp: dict, device: torch.device, batch: int, text_len: int, mel_len: int, steps: int,
             warmup: int, bf16: bool, checkpointing: bool, math_attention: bool, fused: bool, tf32: bool) -> dict:
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    model = build_unified_voice(dict(hp, checkpointing=checkpointing)).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, betas=(0.9, 0.96), weight_decay=0.01,
                            **({"fused": True} if fused and device.type == "cuda" else {}))
    gen = torch.Generator().manual_seed(1)
    data = make_batch(batch, text_len, mel_len, device, gen)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    attn_ctx = contextlib.nullcontext()
    if math_attention:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        attn_ctx = sdpa_kernel(SDPBackend.MATH)
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    times, losses = [], []
    flops = None
    try:
        with attn_ctx:
            for i in range(warmup + steps):
                t0 = time.perf_counter()
                counter = FlopCounterMode(display=False) if i == 0 else contextlib.nullcontext()
                with counter:
                    with amp:
                        lt, lm, _ = model(*data)
                    loss = 0.01 * lt + lm
                    loss.backward()
                if i == 0:
                    flops = int(counter.get_total_flops())
                torch.nn.utils.clip_grad_norm_(params, 4.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i >= warmup:
                    times.append(time.perf_counter() - t0)
                    losses.append(float(loss.detach()))
        out = {"mode": name, "ok": True, "step_s": sum(times) / len(times), "loss": losses[-1], "flops": flops}
    except torch.OutOfMemoryError:
        out = {"mode": name, "ok": False}
    if device.type == "cuda":
        out["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    del model, opt, data
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def device_check(device: torch.device) -> None:
    """The same weights on ``device`` and the CPU agree (fp32), bf16 stays close, sampling runs."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    hp = dict(TINY, layers=3, model_dim=128, heads=8)
    cpu = build_unified_voice(hp).eval()
    for p in cpu.parameters():  # move away from the zero-initialised proj_out so attention matters
        p.data.add_(0.05 * torch.randn_like(p))
    dev = build_unified_voice(hp).to(device).eval()
    dev.load_state_dict(cpu.state_dict())
    data = make_batch(3, 40, 60, torch.device("cpu"), torch.Generator().manual_seed(3))
    data[1][2, 30:] = 0
    data[2][2] = 30
    data[4][1] = 40 * 1024 + 17
    with torch.no_grad():
        a = cpu(*data, return_details=True)
        b = dev(*[t.to(device) for t in data], return_details=True)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            c = dev(*[t.to(device) for t in data], return_details=True)
    diff = max(float((a[k] - b[k].cpu()).abs().max()) for k in ("mel_logits", "text_logits", "gpt_last_hidden_state"))
    print(f"check: fp32 {device.type} vs cpu max |diff| {diff:.2e}; losses cpu {float(a['loss_text']):.5f}/"
          f"{float(a['loss_mel']):.5f}, {device.type} {float(b['loss_text']):.5f}/{float(b['loss_mel']):.5f}, "
          f"bf16 {float(c['loss_text']):.5f}/{float(c['loss_mel']):.5f}")
    lat = dev.get_conditioning(data[0][:1].to(device))
    codes = dev.sample_codes(lat, data[1][0, :20], num_samples=2, max_tokens=30,
                             generator=torch.Generator().manual_seed(0))
    print(f"check: sampled {[len(c) for c in codes]} codes on {device.type}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="the tiny model (default on the CPU)")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--batches", default=None, metavar="B[,B...]", help="measure each of these batches in turn")
    ap.add_argument("--text-len", type=int, default=100, help="text tokens per item")
    ap.add_argument("--mel-len", type=int, default=250, help="mel codes per item (250 = 11.6 s, DLAS's cap)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--check", action="store_true", help="first compare the device's outputs with the CPU's")
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.check:
        device_check(device)
    tiny = args.tiny or device.type == "cpu"
    hp = TINY if tiny else {}
    batches = [int(b) for b in args.batches.split(",")] if args.batches else [args.batch or (4 if tiny else 8)]
    torch.set_num_threads(args.threads)
    for batch in batches:
        measure(args, device, hp, tiny, batch)


def measure(args, device: torch.device, hp: dict, tiny: bool, batch: int) -> None:
    if device.type == "cuda":
        print(f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    else:
        print(f"device: cpu ({args.threads} thread(s)), torch {torch.__version__}")
    n_params = sum(p.numel() for p in build_unified_voice(hp, device="meta").parameters())
    seq = 1 + (args.text_len + 2) + (args.mel_len + 2)
    print(f"model: {'tiny' if tiny else 'tortoise full size'} ({n_params / 1e6:.1f}M parameters), batch {batch}, "
          f"sequence {seq} tokens ({args.text_len} text + {args.mel_len} mel codes + cond/start/stop)")
    if device.type == "cuda":
        ours = dict(bf16=True, math_attention=False, fused=True, tf32=True)
        plain = dict(bf16=False, math_attention=True, fused=False, tf32=False)
        modes = [
            ("ours: bf16 + SDPA + fused AdamW + checkpointing", dict(ours, checkpointing=True)),
            ("ours: bf16 + SDPA + fused AdamW, no checkpointing", dict(ours, checkpointing=False)),
            ("reference: plain fp32 eager loop (math attention)", dict(plain, checkpointing=False)),
            ("reference: fp32 eager + checkpointing (as DLAS trains)", dict(plain, checkpointing=True)),
        ]
    else:
        modes = [("tiny fp32", dict(bf16=False, checkpointing=False, math_attention=False, fused=False, tf32=False))]
    results = []
    for name, kw in modes:
        r = run_mode(name, hp, device, batch, args.text_len, args.mel_len, args.steps, args.warmup, **kw)
        results.append(r)
        if not r["ok"]:
            print(f"{name}: out of memory" + (f" (peak {r['peak_gib']:.1f} GiB)" if "peak_gib" in r else ""))
            continue
        sps = 1.0 / r["step_s"]
        mem = f", peak {r['peak_gib']:.2f} GiB" if "peak_gib" in r else ""
        tflops = (r["flops"] or 0) * sps / 1e12
        peak = peak_tflops(torch.cuda.get_device_name(device), "bf16" if kw["bf16"] else "fp32") if (
            device.type == "cuda") else None
        mfu = f" = MFU {tflops / peak:.1%}" if peak else ""
        print(f"{name}: {sps:.2f} steps/s, {sps * batch * seq:,.0f} tokens/s, {sps * batch:.1f} items/s{mem}, "
              f"{tflops:.2f} TFLOP/s{mfu} (loss {r['loss']:.3f})")
    if device.type == "cuda":
        for i, ref in ((0, 3), (1, 2)):
            a, b = results[i], results[ref]
            if a["ok"] and b["ok"]:
                print(f"{a['mode']} vs {b['mode']}: {b['step_s'] / a['step_s']:.2f}x the speed, "
                      f"{a['peak_gib']:.2f} vs {b['peak_gib']:.2f} GiB peak "
                      f"({'fits' if a['peak_gib'] < 22 else 'does not fit'} a 24 GB card)")


if __name__ == "__main__":
    main()
