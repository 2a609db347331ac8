"""tortoise's respaced DDPM sampler for the diffusion decoder (api.py's ``do_spectrogram_diffusion``).

4,000 trained linear-beta steps respaced to K, epsilon prediction with a learned-range
variance, x0 clamped to [-1, 1], and conditioning-free guidance whose weight ramps with the
respaced index. Tables are float64 and cast to float32 when a step reads them, as tortoise's
``_extract_into_tensor`` does (../shared/compat/tortoise_decoders/FACTS.md, "Sampler").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

TRAINED_STEPS = 4000
MEL_MIN = -11.512925148010254  # tortoise's TACOTRON_MEL_MIN / MAX: the diffusion output's range
MEL_MAX = 2.3143386840820312

# api.py's presets: (diffusion steps, conditioning-free guidance)
PRESETS: dict[str, tuple[int, bool]] = {
    "ultra_fast": (30, False),
    "fast": (80, True),
    "standard": (200, True),
    "high_quality": (400, True),
}


def space_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """The K trained steps a respaced sampler keeps (Python's round, half to even)."""
    if steps < 1 or steps > num_timesteps:
        raise ValueError(f"diffusion steps must be between 1 and {num_timesteps}, got {steps}")
    if steps == 1:
        return [0]
    stride = (num_timesteps - 1) / (steps - 1)
    counter = 0.0
    taken = set()
    for _ in range(steps):
        taken.add(round(counter))
        counter += stride
    return sorted(taken)


@dataclass
class RespacedSchedule:
    """Float64 tables of the respaced chain; ``timestep_map[i]`` is what the network sees at index i."""

    timestep_map: np.ndarray
    betas: np.ndarray

    @classmethod
    def build(cls, steps: int, num_timesteps: int = TRAINED_STEPS) -> "RespacedSchedule":
        base = np.linspace(0.25 * 1e-4, 0.25 * 0.02, num_timesteps, dtype=np.float64)  # scale 1000/4000
        cumprod = np.cumprod(1.0 - base)
        kept = space_timesteps(num_timesteps, steps)
        betas, last = [], 1.0
        for t in kept:
            betas.append(1.0 - cumprod[t] / last)
            last = cumprod[t]
        return cls(np.array(kept, dtype=np.int64), np.array(betas, dtype=np.float64))

    def __post_init__(self) -> None:
        b = self.betas
        ac = np.cumprod(1.0 - b)
        ac_prev = np.append(1.0, ac[:-1])
        self.sqrt_recip_ac = np.sqrt(1.0 / ac)
        self.sqrt_recipm1_ac = np.sqrt(1.0 / ac - 1.0)
        post_var = b * (1.0 - ac_prev) / (1.0 - ac)
        self.post_log_var = np.log(np.append(post_var[1], post_var[1:]) if len(b) > 1 else post_var)
        self.coef1 = b * np.sqrt(ac_prev) / (1.0 - ac)
        self.coef2 = (1.0 - ac_prev) * np.sqrt(1.0 - b) / (1.0 - ac)
        self.log_betas = np.log(b)

    @property
    def steps(self) -> int:
        return len(self.betas)

    def at(self, table: np.ndarray, i: int, device: torch.device) -> torch.Tensor:
        return torch.tensor(float(table[i]), dtype=torch.float32, device=device)


NoiseSource = Callable[[torch.Tensor], torch.Tensor]


def sample_loop(denoiser: Callable[..., torch.Tensor], x: torch.Tensor, schedule: RespacedSchedule,
                embeddings: torch.Tensor, cond_free: bool, cond_free_k: float, noise: NoiseSource,
                on_step: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Run the chain from ``x`` (the initial noise) to the normalised mel in [-1, 1].

    ``noise(x)`` supplies each step's draw (one per step, the last one masked out, as tortoise
    draws it); ``on_step(i, x_t)`` sees what the network is fed at respaced index i.
    """
    device = x.device
    k = schedule.steps
    channels = x.shape[1]
    for i in reversed(range(k)):
        if on_step is not None:
            on_step(i, x)
        t = torch.full((x.shape[0],), int(schedule.timestep_map[i]), dtype=torch.long, device=device)
        out = denoiser(x, t, precomputed_aligned_embeddings=embeddings).float()
        eps, var_values = out[:, :channels], out[:, channels:]
        if cond_free:
            uncond = denoiser(x, t, precomputed_aligned_embeddings=embeddings, conditioning_free=True).float()
            w = cond_free_k * (1.0 - i / k)
            eps = (1.0 + w) * eps - w * uncond[:, :channels]
        frac = (var_values + 1.0) / 2.0
        log_var = frac * schedule.at(schedule.log_betas, i, device) + (1.0 - frac) * schedule.at(
            schedule.post_log_var, i, device)
        x0 = (schedule.at(schedule.sqrt_recip_ac, i, device) * x
              - schedule.at(schedule.sqrt_recipm1_ac, i, device) * eps).clamp(-1.0, 1.0)
        mean = schedule.at(schedule.coef1, i, device) * x0 + schedule.at(schedule.coef2, i, device) * x
        z = noise(x)
        x = mean + (torch.exp(0.5 * log_var) * z if i != 0 else 0.0)
    return x


def denormalize_mel(mel: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> tortoise's natural-log mel range (UnivNet's input)."""
    return (mel + 1.0) / 2.0 * (MEL_MAX - MEL_MIN) + MEL_MIN


def output_frames(num_latents: int) -> int:
    """24 kHz mel frames for ``num_latents`` GPT latents (22,050 Hz codes of 1024 samples)."""
    return num_latents * 4 * 24000 // 22050


def recorded_noise(initial: torch.Tensor, steps: Sequence[torch.Tensor]) -> tuple[torch.Tensor, NoiseSource]:
    """Replay noise recorded from tortoise: the initial tensor, then each step's draw in order."""
    queue = list(steps)

    def draw(x: torch.Tensor) -> torch.Tensor:
        if not queue:
            raise ValueError("the recorded noise has fewer steps than the sampler takes")
        return queue.pop(0).to(device=x.device, dtype=x.dtype)

    return initial, draw


@torch.inference_mode()
def diffusion_mel(model: torch.nn.Module, latents: torch.Tensor, conditioning_latent: torch.Tensor, steps: int,
                  cond_free: bool = True, cond_free_k: float = 2.0, temperature: float = 1.0,
                  noise: tuple[torch.Tensor, Sequence[torch.Tensor]] | None = None, seed: int = 0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """tortoise's ``do_spectrogram_diffusion``: latents ``[B, T, d]`` -> denormalised mel ``[B, 100, L]``.

    ``noise`` is ``(initial, [per-step draws])`` as recorded in the fixture (initial before the
    temperature is applied); otherwise noise comes from ``generator`` (default: seeded with ``seed``).
    """
    param = next(model.parameters())
    device = param.device
    latents = latents.to(device=device, dtype=torch.float32)  # float latents, never token ids
    conditioning_latent = conditioning_latent.to(device=device, dtype=param.dtype)
    length = output_frames(latents.shape[1])
    shape = (latents.shape[0], 100, length)
    embeddings = model.timestep_independent(latents.to(param.dtype), conditioning_latent, length, False)
    if noise is not None:
        initial, draw = recorded_noise(*noise)
        initial = initial.to(device=device, dtype=torch.float32)
    else:
        gen = generator or torch.Generator(device="cpu").manual_seed(seed)

        def draw(x: torch.Tensor) -> torch.Tensor:
            return torch.randn(x.shape, generator=gen, dtype=torch.float32).to(x.device)

        initial = torch.randn(shape, generator=gen, dtype=torch.float32)
    schedule = RespacedSchedule.build(int(steps))
    x = (initial * temperature).to(device)

    def denoiser(x_t: torch.Tensor, t: torch.Tensor, **kwargs) -> torch.Tensor:
        return model(x_t.to(param.dtype), t, **kwargs)

    mel = sample_loop(denoiser, x, schedule, embeddings, cond_free, cond_free_k, draw)
    return denormalize_mel(mel)[:, :, :length]
