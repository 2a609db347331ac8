"""Turn DVAE-decoded tortoise mels into audio you can hear.

A HiFi-GAN of this project trained on ``tortoise_mel`` features gives real speech; without
one, Griffin-Lim on the inverted mel gives a rough but recognisable rendering so every
validation step still produces a listenable file.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from modules.audio.tortoise_mel import HOP, N_FFT, N_MELS, SAMPLE_RATE
from modules.errors import UserError


class GriffinLimVocoder:
    """Normalised tortoise log-mel (80, T) -> waveform at 22,050 Hz."""

    def __init__(self, mel_norms: torch.Tensor, n_iter: int = 32):
        import torchaudio

        self.mel_norms = mel_norms.reshape(N_MELS, 1).float()
        self.inverse_mel = torchaudio.transforms.InverseMelScale(
            n_stft=N_FFT // 2 + 1, n_mels=N_MELS, sample_rate=SAMPLE_RATE, f_min=0.0, f_max=8000.0,
            norm="slaney", mel_scale="htk")
        self.griffin_lim = torchaudio.transforms.GriffinLim(
            n_fft=N_FFT, win_length=N_FFT, hop_length=HOP, power=2.0, n_iter=n_iter)
        self.sample_rate = SAMPLE_RATE

    def describe(self) -> str:
        """What renders the audio, for the console and train.log."""
        return "Griffin-Lim (no HiFi-GAN configured)"

    @torch.no_grad()
    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        power_mel = torch.exp(mel.detach().float().cpu().reshape(N_MELS, -1) * self.mel_norms)
        spec = self.inverse_mel(power_mel).clamp(min=0.0)
        wave = self.griffin_lim(spec)
        peak = wave.abs().max()
        return (wave / peak * 0.9 if peak > 0.9 else wave).clamp(-1, 1)


class HifiganVocoder:
    """A HiFi-GAN trained by this project with ``features: tortoise_mel``.

    The DVAE decodes to tortoise's normalised log mel; a HiFi-GAN trained on jik876's plain mel
    (another scale, norm and log) would turn it into noise, so such a run is refused here rather
    than producing samples that sound broken for no visible reason.
    """

    def __init__(self, path: str | os.PathLike, device: torch.device | str = "cpu", setting: str = "--vocoder"):
        from modules.hifigan import load_generator_with_config
        from modules.hifigan.checkpoint import newest_in

        path = Path(path)
        if not path.exists():
            raise UserError(f"{setting} {path}: not found; give a HiFi-GAN run folder, its states/step_*.pt or "
                            f"a checkpoints/g_XXXXXXXX file (trained with hifigan.features: tortoise_mel)")
        self.path = (newest_in(path) or path) if path.is_dir() else path  # the file actually used, for the log
        self.generator, h = load_generator_with_config(self.path, None, str(device))
        problem = _mismatch(h)
        if problem:
            raise UserError(f"{setting} {path}: {problem}. {_why(setting)}")
        self.generator.eval()
        self.sample_rate = int(h.get("sampling_rate", SAMPLE_RATE))
        self.device = torch.device(device)

    def describe(self) -> str:
        """What renders the audio, for the console and train.log."""
        return f"HiFi-GAN {self.path}"

    @torch.no_grad()
    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        x = mel.detach().float().reshape(1, N_MELS, -1).to(self.device)
        return self.generator(x).float().reshape(-1).clamp(-1, 1).cpu()


def _mismatch(h: dict) -> str | None:
    """Why a HiFi-GAN with hyperparameters ``h`` cannot render tortoise mels (None when it can)."""
    features = h.get("features") or "mel"
    channels = h.get("in_channels", h.get("num_mels", N_MELS))
    if features != "tortoise_mel":
        return f"it was trained with hifigan.features: {features}"
    if int(channels) != N_MELS:
        return f"its generator takes {channels} input channels, not tortoise's {N_MELS} mel bins"
    if int(h.get("sampling_rate", SAMPLE_RATE)) != SAMPLE_RATE:
        return f"it was trained at {h.get('sampling_rate')} Hz, not tortoise's {SAMPLE_RATE} Hz"
    if _hop(h) != HOP:
        return f"its generator upsamples by {_hop(h)}, not tortoise's hop of {HOP}"
    return None


def _why(setting: str) -> str:
    return ("Autoregressive samples are tortoise mels, which need a HiFi-GAN trained with hifigan.features: "
            f"tortoise_mel (plain mels are another mel space); train one, or leave {setting} empty to use "
            "Griffin-Lim")


def vocoder_hparams(path: str | os.PathLike) -> tuple[Path, dict]:
    """``(checkpoint file, jik876-style hyperparameters)`` of a HiFi-GAN vocoder, read from its
    ``config.json`` or the state's saved config, without building the generator (cheap: a
    state is memory-mapped, its weights are never read). Raises UserError when unreadable."""
    from modules.hifigan import checkpoint as ckpt
    from modules.hifigan import hparams
    from modules.trainer.state import load_state

    path = ckpt.resolve_checkpoint(path)
    if path.suffix == ".pt":  # a training state of ours (a g_ file has no suffix): memory-mapped, weights unread
        try:
            return path, hparams.resolve(load_state(path).config.get("hifigan"))
        except UserError:
            pass  # not one of our states: judged by the config.json beside it, as a g_ file
    cfg_path = ckpt.config_beside(path)
    # a jik876 g_ file without its config.json is a plain-mel generator (jik876 knows no other)
    return path, hparams.from_jik876(ckpt.read_config(cfg_path) if cfg_path else {})


def check_vocoder(config: object, path: Path) -> list[str]:
    """Problems that make ``autoregressive.vocoder`` refuse at the start of a run, found before it
    (the UI's Validate and ``config check``; registered in modules.config.plan.VOCODER_CHECKERS)."""
    try:
        file, h = vocoder_hparams(path)
    except UserError as exc:
        return [str(exc)]
    problem = _mismatch(h)
    return [f"vocoder {file}: {problem}. {_why('autoregressive.vocoder')}"] if problem else []


def _hop(h: dict) -> int:
    rates = h.get("upsample_rates") or []
    out = 1
    for r in rates:
        out *= int(r)
    return out
