"""How fast each autoregressive decoder turns a checkpoint's codes into audio.

For N mel codes (each ~46 ms of speech) of a random-weight GPT, times:
- fast: GPT latent pass + tortoise's HiFi-GAN decoder (api_fast);
- standard: fix + latent pass + diffusion (each api.py preset) + UnivNet (api.py);
- preview: DVAE decode + Griffin-Lim;
and, for the whole utterance including code sampling, the time to first audio: the first
streamed chunk for fast, the finished file for the others.

Real-time factor (RTF) = seconds of compute / seconds of audio (lower is faster).

    python bench/decoders.py --size small --codes 100            # CPU, fixture-size weights
    python bench/decoders.py --size full --device cuda --amp     # tortoise's full size on a GPU
"""

from __future__ import annotations

import argparse
import time

import torch

from modules.autoregressive.decoder_files import build
from modules.autoregressive.decoders import DecoderChoice, LoadedDecoder, PreviewDecoder, Voice
from modules.autoregressive.diffusion_sampler import PRESETS

SMALL = {
    "gpt": {"layers": 2, "model_dim": 64, "heads": 4, "max_text_tokens": 120, "max_mel_tokens": 600},
    "hifidecoder": {"in_channels": 64, "cond_channels": 64, "upsample_initial_channel": 32,
                    "resblock_kernel_sizes": [3, 7], "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]]},
    "diffusion": {"model_channels": 32, "num_layers": 2, "in_latent_channels": 64, "num_heads": 4},
    "vocoder": {"channel_size": 4},
    "dvae": {"codebook_dim": 32, "hidden_dim": 32, "num_resnet_blocks": 1, "num_tokens": 8192},
}
FULL = {"gpt": {"max_mel_tokens": 604}, "hifidecoder": {}, "diffusion": {}, "vocoder": {}, "dvae": {}}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _decoder(kind: str, sizes: dict, device: torch.device, amp) -> LoadedDecoder:
    """A LoadedDecoder around freshly built random models (no files needed)."""
    dec = LoadedDecoder.__new__(LoadedDecoder)
    dec.choice = DecoderChoice(kind, {}, 0, True, kind)
    dec.device, dec.amp_dtype, dec.sample_rate = device, amp, 24000
    dec.hifi = dec.diffusion = dec.univnet = None
    dec._diffusion_voices = {}
    if kind == "fast":
        dec.hifi = build("hifidecoder", sizes["hifidecoder"]).to(device).eval()
    else:
        dec.diffusion = build("diffusion", sizes["diffusion"]).to(device).eval()
        dec.univnet = build("vocoder", sizes["vocoder"]).remove_weight_norm().to(device).eval()
    return dec


def _timed(fn, device) -> tuple[float, object]:
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="small", choices=("small", "full"))
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--codes", type=int, default=100, help="mel codes per utterance (~46 ms each)")
    p.add_argument("--presets", default=",".join(PRESETS), help="standard decoder presets to time")
    p.add_argument("--chunk-codes", type=int, default=20, help="fast decoder: codes per streamed chunk")
    p.add_argument("--amp", action="store_true", help="bf16 autocast on a GPU")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if (args.device == "auto" and torch.cuda.is_available()) or args.device == "cuda"
                          else "cpu")
    amp = torch.bfloat16 if args.amp and device.type == "cuda" else None
    sizes = SMALL if args.size == "small" else FULL
    from modules.audio.tortoise_mel import TortoiseMel
    from modules.autoregressive.checkpoint import build_unified_voice
    from modules.autoregressive.dvae import DiscreteVAE
    from modules.autoregressive.vocoding import GriffinLimVocoder

    torch.manual_seed(0)
    gpt = build_unified_voice(sizes["gpt"]).to(device).eval()
    with torch.no_grad():
        gpt.mel_head.bias[gpt.stop_mel_token] = -1e4  # never stop: every utterance has exactly --codes codes
    text = torch.randint(1, 200, (40,))
    codes = torch.randint(0, 8192, (args.codes,))
    cond_latent = torch.randn(1, gpt.model_dim, device=device)
    clips = [torch.randn(22050 * 4) * 0.1]
    seconds = args.codes * 1024 / 22050
    sampling = {"max_tokens": args.codes, "temperature": 0.8, "top_p": 0.8, "repetition_penalty": 2.0}
    print(f"device {device}{' bf16' if amp else ''}, size {args.size}, {args.codes} codes = {seconds:.2f} s of "
          f"speech, torch threads {torch.get_num_threads()}")
    rows = []

    def measure(name: str, dec, voice: Voice, stream: bool) -> None:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        dec.render(gpt, text, codes[:8], voice)  # warm-up
        t_dec, wave = _timed(lambda: dec.render(gpt, text, codes, voice), device)
        audio_s = wave.numel() / dec.sample_rate

        def first_audio():
            gen = torch.Generator().manual_seed(0)
            for _ in dec.stream(gpt, text, voice, sampling, generator=gen, chunk_codes=args.chunk_codes):
                return

        t_first, _ = _timed(first_audio, device)
        t_all, _ = _timed(lambda: list(dec.stream(gpt, text, voice, sampling, generator=torch.Generator()
                                                  .manual_seed(0), chunk_codes=args.chunk_codes)), device)
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
        rows.append((name, t_dec, audio_s, t_dec / audio_s, t_first, t_all, peak))

    fast = _decoder("fast", sizes, device, amp)
    measure("fast (hifidecoder)", fast, Voice(cond_latent), True)
    del fast
    standard = _decoder("standard", sizes, device, amp)
    voice = standard.voice(cond_latent, clips)
    for preset in [s for s in args.presets.split(",") if s]:
        steps, cond_free = PRESETS[preset]
        standard.choice = DecoderChoice("standard", {}, steps, cond_free, "standard")
        measure(f"standard {preset} ({steps} steps{', cfg' if cond_free else ''})", standard, voice, False)
    del standard
    torch.manual_seed(0)
    dvae = DiscreteVAE(**{"channels": 80, "num_layers": 2, **sizes["dvae"]}).to(device).eval()
    preview = PreviewDecoder(dvae, GriffinLimVocoder(TortoiseMel(torch.ones(80)).mel_norms), device)
    measure("preview (DVAE + Griffin-Lim)", preview, Voice(cond_latent), False)

    print(f"{'decoder':42s} {'decode s':>9s} {'audio s':>8s} {'RTF':>7s} {'first audio s':>14s} "
          f"{'utterance s':>12s} {'peak GiB':>9s}")
    for name, t_dec, audio_s, rtf, t_first, t_all, peak in rows:
        print(f"{name:42s} {t_dec:9.3f} {audio_s:8.2f} {rtf:7.3f} {t_first:14.3f} {t_all:12.3f} {peak:9.2f}")
    print("decode: latent pass + decoder for the fixed codes; first audio / utterance: code sampling included "
          f"(fast streams every {args.chunk_codes} codes; the others answer once at the end)")


if __name__ == "__main__":
    main()
