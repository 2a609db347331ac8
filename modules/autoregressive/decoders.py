"""One decoding choice for every autoregressive sample: validation, Try it and ``synthesize``.

- ``fast``: tortoise's api_fast path, GPT latents -> ``hifidecoder.pth`` -> 24 kHz.
- ``standard``: tortoise's api.py path, fixed codes -> trimmed latents -> ``diffusion_decoder.pth``
  (respaced DDPM, conditioning-free guidance) -> 100-band mel -> ``vocoder.pth`` (UnivNet) -> 24 kHz.
- ``preview``: the DVAE's mel of the codes through Griffin-Lim or a tortoise-mel HiFi-GAN (22,050 Hz);
  a rough check that needs no decoder file, not what tortoise plays.
- ``auto``: fast when hifidecoder.pth is there, else standard when both of its files are, else preview.

Decoders are loaded once per process (``loaded_decoder`` caches them by file identity).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from modules.autoregressive.diffusion_sampler import PRESETS
from modules.autoregressive.options import AR_DECODERS
from modules.errors import UserError

DECODERS = AR_DECODERS  # the options module owns the names (it is importable without torch)
PRESET_NAMES = tuple(PRESETS)
DEFAULT_PRESET = "fast"
COND_FREE_K = 2.0
FILE_NAMES = {"hifidecoder": "hifidecoder.pth", "diffusion": "diffusion_decoder.pth", "vocoder": "vocoder.pth"}
NEEDS = {"fast": ("hifidecoder",), "standard": ("diffusion", "vocoder"), "preview": ()}


@dataclass(frozen=True)
class DecoderChoice:
    """What renders the audio, resolved: the kind, its files and the diffusion settings."""

    kind: str
    files: dict[str, Path] = field(default_factory=dict, hash=False)
    steps: int = 0
    cond_free: bool = True
    requested: str = "auto"

    def label(self) -> str:
        """For the sample label in the UI and the train.log line."""
        if self.kind == "fast":
            return f"tortoise fast decoder ({self.files['hifidecoder'].name})"
        if self.kind == "standard":
            guidance = "with" if self.cond_free else "without"
            return (f"tortoise standard decoder ({self.files['diffusion'].name}, {self.steps} diffusion steps "
                    f"{guidance} conditioning-free guidance, UnivNet {self.files['vocoder'].name})")
        return "preview (DVAE mel, not tortoise's decoder)"


def default_files(tortoise_dir: Path) -> dict[str, Path]:
    return {role: Path(tortoise_dir) / name for role, name in FILE_NAMES.items()}


def diffusion_settings(preset: str | None, steps: int | None) -> tuple[int, bool]:
    """(steps, conditioning-free guidance) of an api.py preset, ``steps`` overriding its count."""
    name = preset or DEFAULT_PRESET
    if name not in PRESETS:
        raise UserError(f"diffusion preset {name!r} is not one of {', '.join(PRESET_NAMES)}")
    preset_steps, cond_free = PRESETS[name]
    n = int(steps) if steps else preset_steps
    if not 1 <= n <= 4000:
        raise UserError(f"diffusion steps {n}: must be between 1 and 4000")
    return n, cond_free


def choose_decoder(requested: str, files: dict[str, Path], preset: str | None = None,
                   steps: int | None = None, setting: str = "--decoder") -> DecoderChoice:
    """Resolve ``auto`` and check that the files the choice needs exist (UserError naming them)."""
    if requested not in DECODERS:
        raise UserError(f"{setting} {requested!r} is not one of {', '.join(DECODERS)}")
    kind = requested
    if requested == "auto":
        kind = next((k for k in ("fast", "standard") if all(files[r].is_file() for r in NEEDS[k])), "preview")
    missing = [files[r] for r in NEEDS[kind] if not files[r].is_file()]
    if missing:
        raise UserError(f"{setting} {requested}: {', '.join(map(str, missing))} not found. Copy tortoise-tts's "
                        f"{', '.join(p.name for p in missing)} there (or set the path), or choose another decoder")
    n, cond_free = diffusion_settings(preset, steps) if kind == "standard" else (0, True)
    return DecoderChoice(kind, {r: files[r] for r in NEEDS[kind]}, n, cond_free, requested)


def check_choice(choice: DecoderChoice) -> list[str]:
    """Why the chosen decoder files would not load (shapes read without loading the weights)."""
    from modules.autoregressive.decoder_files import check_file

    return [p for role, path in choice.files.items() for p in check_file(role, path)]


@dataclass
class Voice:
    """A voice for one GPT: its conditioning latent, plus the diffusion decoder's (standard only)."""

    gpt_latent: torch.Tensor
    diffusion_latent: torch.Tensor | None = None


class LoadedDecoder:
    """The decoder models of one choice on one device, with tortoise's rendering of a code sequence."""

    def __init__(self, choice: DecoderChoice, device: torch.device | str = "cpu", amp_dtype: torch.dtype | None = None):
        from modules.autoregressive import decoder_files as files
        from modules.autoregressive.hifi_decoder import load_hifi_decoder

        self.choice = choice
        self.device = torch.device(device)
        self.amp_dtype = amp_dtype if self.device.type == "cuda" else None
        self.sample_rate = 24000
        self.hifi = self.diffusion = self.univnet = None
        if choice.kind == "fast":
            self.hifi = load_hifi_decoder(choice.files["hifidecoder"], device=self.device)
        elif choice.kind == "standard":
            self.diffusion = files.load_diffusion_decoder(choice.files["diffusion"], device=self.device)
            self.univnet = files.load_univnet(choice.files["vocoder"], device=self.device)
        else:
            raise ValueError("the preview is rendered by PreviewDecoder")
        self._diffusion_voices: dict[tuple, torch.Tensor] = {}

    def label(self) -> str:
        return self.choice.label()

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    @torch.inference_mode()
    def voice(self, gpt_latent: torch.Tensor, clips_22k: list[torch.Tensor], key: Any = None) -> Voice:
        """The diffusion decoder's conditioning from the clips (cached under ``key``: it does not
        depend on the GPT), beside the GPT's latent."""
        if self.diffusion is None:
            return Voice(gpt_latent)
        if key is None or key not in self._diffusion_voices:
            from modules.audio.univnet_mel import conditioning_mels

            mels = conditioning_mels([c.float().cpu() for c in clips_22k]).to(self.device)
            latent = self.diffusion.get_conditioning(mels).float()
            if key is None:
                return Voice(gpt_latent, latent)
            self._diffusion_voices[key] = latent
        return Voice(gpt_latent, self._diffusion_voices[key])

    @torch.inference_mode()
    def render(self, gpt: torch.nn.Module, text_ids: torch.Tensor, codes: torch.Tensor, voice: Voice,
               seed: int = 0) -> torch.Tensor:
        """Sampled codes (1-D, cut before the stop token) -> 1-D waveform at 24 kHz on the CPU."""
        from modules.autoregressive import latents as lat

        stop = int(getattr(gpt, "stop_mel_token", lat.STOP_TOKEN))
        with self.autocast():
            if self.hifi is not None:  # api_fast: the raw codes with their stop token, no fix, no trim
                raw = torch.cat([codes.reshape(-1).cpu(), torch.tensor([stop])])
                latents = lat.gpt_latents(gpt, voice.gpt_latent, text_ids, raw.unsqueeze(0))
                wave = self.hifi.inference(latents, voice.gpt_latent)
            else:
                wave = self._standard(gpt, text_ids, codes, voice, seed, stop)
        return wave.float().reshape(-1).clamp(-1, 1).cpu()

    def _standard(self, gpt, text_ids, codes, voice: Voice, seed: int, stop: int) -> torch.Tensor:
        """api.py: pad with stop tokens, fix, latent pass, trim at the calm run, diffusion, UnivNet.

        tortoise pads to max_mel_tokens (500); the GPT is causal and the trim lands at most nine
        codes past the stop, so padding 12 past it gives the same kept latents for less work.
        """
        from modules.autoregressive import latents as lat
        from modules.autoregressive.diffusion_sampler import diffusion_mel

        codes = codes.reshape(-1).cpu()
        padded = lat.pad_codes(codes, len(codes) + 12, stop)
        fixed = lat.fix_codes(padded, stop)
        latents = lat.gpt_latents(gpt, voice.gpt_latent, text_ids, fixed.unsqueeze(0))
        latents = latents[:, : max(1, lat.kept_latent_frames(fixed))]
        gen = torch.Generator().manual_seed(int(seed))
        mel = diffusion_mel(self.diffusion, latents, voice.diffusion_latent, self.choice.steps,
                            cond_free=self.choice.cond_free, cond_free_k=COND_FREE_K, generator=gen)
        z = torch.randn(mel.shape[0], self.univnet.noise_dim, mel.shape[2] + 10, generator=gen)
        return self.univnet.inference(mel, z)

    @torch.inference_mode()
    def stream(self, gpt: torch.nn.Module, text_ids: torch.Tensor, voice: Voice, sampling: dict[str, Any],
               generator: torch.Generator | None = None, seed: int = 0, chunk_codes: int = 20,
               overlap: int = 1024) -> Iterator[torch.Tensor]:
        """api_fast's ``tts_stream``: decode the latents gathered so far every ``chunk_codes`` codes and
        yield the new audio, cross-faded over ``overlap`` samples with the previous decode. Only the
        fast decoder streams; the others yield the whole utterance once."""
        if self.hifi is None:
            codes = gpt.sample_codes(voice.gpt_latent, text_ids, generator=generator, **sampling)[0]
            yield self.render(gpt, text_ids, codes, voice, seed)
            return
        from modules.audio.crossfade import ChunkJoiner

        joiner = ChunkJoiner(overlap)
        latents: list[torch.Tensor] = []

        def decoded() -> torch.Tensor:
            with self.autocast():
                wave = self.hifi.inference(torch.stack(latents, dim=1), voice.gpt_latent)
            return joiner.add(wave.float().reshape(-1).clamp(-1, 1).cpu())

        pending = 0
        for token, latent in gpt.generate(voice.gpt_latent, text_ids, 1, generator=generator, **sampling):
            latents.append(latent[:1])
            pending += 1
            finished = int(token[0]) == int(gpt.stop_mel_token)
            if pending >= chunk_codes or finished:
                pending = 0
                chunk = decoded()
                if chunk.numel():
                    yield chunk
            if finished:
                break
        if pending:  # the length cap ended generation between chunks
            chunk = decoded()
            if chunk.numel():
                yield chunk
        tail = joiner.finish()
        if tail.numel():
            yield tail


class PreviewDecoder:
    """The DVAE's mel of the codes through a mel vocoder (Griffin-Lim or a tortoise-mel HiFi-GAN)."""

    def __init__(self, dvae: torch.nn.Module, vocoder: Any, device: torch.device | str = "cpu"):
        self.dvae = dvae
        self.vocoder = vocoder
        self.device = torch.device(device)
        self.sample_rate = vocoder.sample_rate
        self.choice = DecoderChoice("preview", requested="preview")

    def label(self) -> str:
        return f"preview (DVAE mel + {self.vocoder.describe()}; not tortoise's decoder)"

    def voice(self, gpt_latent: torch.Tensor, clips_22k: list[torch.Tensor], key: Any = None) -> Voice:
        return Voice(gpt_latent)

    @torch.inference_mode()
    def render(self, gpt: torch.nn.Module, text_ids: torch.Tensor, codes: torch.Tensor, voice: Voice,
               seed: int = 0) -> torch.Tensor:
        codes = codes.reshape(-1)
        if len(codes) == 0:
            codes = torch.tensor([0])  # the model stopped at once; still render something audible
        mel, _ = self.dvae.to(self.device).decode(codes.to(self.device).unsqueeze(0))
        self.last_mel = mel[0].float().cpu()
        return self.vocoder(mel[0]).float().reshape(-1).cpu()

    def stream(self, gpt, text_ids, voice: Voice, sampling: dict[str, Any], generator=None, seed: int = 0, **_: Any):
        codes = gpt.sample_codes(voice.gpt_latent, text_ids, generator=generator, num_codes=self.dvae.num_tokens,
                                 **sampling)[0]
        yield self.render(gpt, text_ids, codes, voice)


_CACHE: dict[tuple, LoadedDecoder] = {}
_LOCK = threading.Lock()


def _identity(path: Path) -> tuple:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def loaded_decoder(choice: DecoderChoice, device: torch.device | str = "cpu",
                   amp_dtype: torch.dtype | None = None) -> LoadedDecoder:
    """The decoder for ``choice`` on ``device``, loaded once per process (a changed file reloads)."""
    key = (choice.kind, tuple(sorted((r, _identity(p)) for r, p in choice.files.items())), choice.steps,
           choice.cond_free, str(torch.device(device)), amp_dtype)
    with _LOCK:
        if key not in _CACHE:
            for old in [k for k in _CACHE if k[0] == key[0] and k[4] == key[4]]:
                del _CACHE[old]  # one decoder of a kind per device: free the previous file's weights
            _CACHE[key] = LoadedDecoder(choice, device, amp_dtype)
        return _CACHE[key]


def config_files(options: Any, workspace_root: Path) -> dict[str, Path]:
    """The decoder files an ``autoregressive:`` config section names, resolved in the workspace."""
    def resolve(value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else Path(workspace_root) / p

    return {"hifidecoder": resolve(options.hifi_decoder), "diffusion": resolve(options.diffusion_decoder),
            "vocoder": resolve(options.univnet)}


def check_config(config: Any, workspace_root: Path) -> list[tuple[str, str, str]]:
    """``(key, problem, level)`` for the Validate button: the chosen decoder's files missing, not
    tortoise's files, or made for another GPT width; and a note when samples will be a preview."""
    from modules.autoregressive.decoder_files import latent_channels

    a = config.autoregressive
    if a is None:
        return []
    files = config_files(a, workspace_root)
    try:
        choice = choose_decoder(a.decoder, files, a.diffusion_preset, a.diffusion_steps, "autoregressive.decoder")
    except UserError as exc:
        return [("autoregressive.decoder", str(exc), "error")]
    key = {"fast": "autoregressive.hifi_decoder", "standard": "autoregressive.diffusion_decoder"}
    out = [(key.get(choice.kind, "autoregressive.decoder"), p, "error") for p in check_choice(choice)]
    for role in ("hifidecoder", "diffusion"):
        if role in choice.files and not out:
            width = latent_channels(role, choice.files[role])
            if width is not None and width != a.model_dim:
                out.append((key[choice.kind], f"{choice.files[role]} reads {width}-channel GPT latents but "
                            f"autoregressive.model_dim is {a.model_dim}: it belongs to another model size", "error"))
    if choice.kind == "preview" and a.decoder == "auto" and config.validation_samples:
        out.append(("autoregressive.decoder", "validation samples will be a preview (DVAE mel), not what tortoise "
                    f"plays: neither {files['hifidecoder']} nor {files['diffusion']} + {files['vocoder']} exist",
                    "warning"))
    return out
