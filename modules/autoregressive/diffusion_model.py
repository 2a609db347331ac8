"""tortoise's diffusion decoder (``diffusion_decoder.pth``, class ``DiffusionTts``).

GPT latents + a voice's conditioning vector -> the denoiser of a 100-band 24 kHz mel. Module
names and constructor arguments are tortoise's so its file loads strictly; the forward follows
../shared/compat/tortoise_decoders/FACTS.md part B (scale-shift ResBlocks with 1x1 input
convs, attention with a T5-style relative position bias scaled by sqrt(head width)).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from modules.autoregressive.unified_voice import GroupNorm32, _norm_groups, qkv_attention

# the constructor arguments tortoise's api.py uses for diffusion_decoder.pth
DIFFUSION_HYPERPARAMETERS: dict[str, Any] = {
    "model_channels": 1024, "num_layers": 10, "in_channels": 100, "out_channels": 200,
    "in_latent_channels": 1024, "in_tokens": 8193, "dropout": 0, "use_fp16": False, "num_heads": 16,
    "layer_drop": 0, "unconditioned_percentage": 0,
}


def normalization(channels: int) -> GroupNorm32:
    return GroupNorm32(_norm_groups(channels), channels)


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: int = 10000) -> torch.Tensor:
    """Sinusoidal embedding: cosines then sines, frequencies exp(-ln(max_period) * i / half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half).to(timesteps.device)
    args = timesteps[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class RelativePositionBias(nn.Module):
    """T5 relative position buckets (non-causal), one learned bias per bucket and head."""

    def __init__(self, scale: float, heads: int, num_buckets: int = 32, max_distance: int = 64):
        super().__init__()
        self.scale = scale
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.relative_attention_bias = nn.Embedding(num_buckets, heads)

    def buckets(self, length_q: int, length_k: int, device: torch.device) -> torch.Tensor:
        rel = torch.arange(length_k, device=device)[None, :] - torch.arange(length_q, device=device)[:, None]
        n = -rel
        half = self.num_buckets // 2
        ret = (n < 0).long() * half
        n = n.abs()
        max_exact = half // 2
        large = max_exact + (torch.log(n.float() / max_exact) / math.log(self.max_distance / max_exact)
                             * (half - max_exact)).long()
        large = large.clamp(max=half - 1)
        return ret + torch.where(n < max_exact, n, large)

    def forward(self, qk: torch.Tensor) -> torch.Tensor:
        """``qk`` ``[B, heads, Tq, Tk]`` plus the scaled bias."""
        values = self.relative_attention_bias(self.buckets(qk.shape[-2], qk.shape[-1], qk.device))
        return qk + values.permute(2, 0, 1).unsqueeze(0) * self.scale


class AttentionBlock(nn.Module):
    """Self-attention over time with a relative position bias; residual to the input."""

    def __init__(self, channels: int, num_heads: int):
        super().__init__()
        self.heads = num_heads
        self.norm = normalization(channels)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)
        self.relative_pos_embeddings = RelativePositionBias(scale=(channels // num_heads) ** 0.5, heads=num_heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = qkv_attention(self.qkv(self.norm(x)), self.heads, self.relative_pos_embeddings)
        return x + self.proj_out(a)


class ResBlock(nn.Module):
    """Timestep-conditioned block: norm-SiLU-1x1 conv, then scale/shift from the embedding, k3 conv."""

    def __init__(self, channels: int, dropout: float = 0.0):
        super().__init__()
        self.in_layers = nn.Sequential(normalization(channels), nn.SiLU(), nn.Conv1d(channels, channels, 1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(channels, 2 * channels))
        self.out_layers = nn.Sequential(normalization(channels), nn.SiLU(), nn.Dropout(dropout),
                                        nn.Conv1d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        scale, shift = self.emb_layers(emb).type(h.dtype)[..., None].chunk(2, dim=1)
        h = self.out_layers[0](h) * (1 + scale) + shift
        return x + self.out_layers[1:](h)


class DiffusionLayer(nn.Module):
    def __init__(self, channels: int, dropout: float, num_heads: int):
        super().__init__()
        self.resblk = ResBlock(channels, dropout)
        self.attn = AttentionBlock(channels, num_heads)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.attn(self.resblk(x, emb))


class DiffusionTts(nn.Module):
    """tortoise's mel denoiser conditioned on aligned GPT latents and a voice vector."""

    def __init__(self, model_channels: int = 512, num_layers: int = 8, in_channels: int = 100,
                 in_latent_channels: int = 512, in_tokens: int = 8193, out_channels: int = 200, dropout: float = 0,
                 use_fp16: bool = False, num_heads: int = 16, layer_drop: float = 0.1,
                 unconditioned_percentage: float = 0.1):
        super().__init__()
        c = model_channels
        self.model_channels = c
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.inp_block = nn.Conv1d(in_channels, c, 3, 1, 1)
        self.time_embed = nn.Sequential(nn.Linear(c, c), nn.SiLU(), nn.Linear(c, c))
        self.code_embedding = nn.Embedding(in_tokens, c)  # token input (unused with GPT latents)
        self.code_converter = nn.Sequential(*[AttentionBlock(c, num_heads) for _ in range(3)])
        self.code_norm = normalization(c)
        self.latent_conditioner = nn.Sequential(nn.Conv1d(in_latent_channels, c, 3, padding=1),
                                                *[AttentionBlock(c, num_heads) for _ in range(4)])
        self.contextual_embedder = nn.Sequential(nn.Conv1d(in_channels, c, 3, padding=1, stride=2),
                                                 nn.Conv1d(c, c * 2, 3, padding=1, stride=2),
                                                 *[AttentionBlock(c * 2, num_heads) for _ in range(5)])
        self.unconditioned_embedding = nn.Parameter(torch.randn(1, c, 1))
        self.conditioning_timestep_integrator = nn.ModuleList(
            [DiffusionLayer(c, dropout, num_heads) for _ in range(3)])
        self.integrating_conv = nn.Conv1d(c * 2, c, kernel_size=1)
        self.mel_head = nn.Conv1d(c, in_channels, kernel_size=3, padding=1)
        self.layers = nn.ModuleList([DiffusionLayer(c, dropout, num_heads) for _ in range(num_layers)]
                                    + [ResBlock(c, dropout) for _ in range(3)])
        self.out = nn.Sequential(normalization(c), nn.SiLU(), nn.Conv1d(c, out_channels, 3, padding=1))

    def get_conditioning(self, conditioning_input: torch.Tensor) -> torch.Tensor:
        """Raw (not normalised) 24 kHz log mels ``[B, n, 100, F]`` -> ``[B, 2C]``, averaged over clips."""
        x = conditioning_input.unsqueeze(1) if conditioning_input.dim() == 3 else conditioning_input
        conds = torch.cat([self.contextual_embedder(x[:, j]) for j in range(x.shape[1])], dim=-1)
        return conds.mean(dim=-1)

    def timestep_independent(self, aligned_conditioning: torch.Tensor, conditioning_latent: torch.Tensor,
                             expected_seq_len: int, return_code_pred: bool):
        """The part of the conditioning that does not depend on the timestep (computed once per sample)."""
        if aligned_conditioning.is_floating_point():  # GPT latents [B, T, d]
            code_emb = self.latent_conditioner(aligned_conditioning.permute(0, 2, 1))
        else:  # DVAE codes [B, T]
            code_emb = self.code_converter(self.code_embedding(aligned_conditioning).permute(0, 2, 1))
        scale, shift = conditioning_latent.chunk(2, dim=1)
        code_emb = self.code_norm(code_emb) * (1 + scale.unsqueeze(-1)) + shift.unsqueeze(-1)
        expanded = F.interpolate(code_emb, size=int(expected_seq_len), mode="nearest")
        if not return_code_pred:
            return expanded
        return expanded, self.mel_head(expanded)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, aligned_conditioning: torch.Tensor | None = None,
                conditioning_latent: torch.Tensor | None = None,
                precomputed_aligned_embeddings: torch.Tensor | None = None, conditioning_free: bool = False,
                return_code_pred: bool = False) -> torch.Tensor:
        """``x`` ``[B, 100, L]`` at diffusion step ``timesteps`` -> ``[B, 200, L]`` (epsilon | variance value)."""
        if conditioning_free:
            code_emb = self.unconditioned_embedding.repeat(x.shape[0], 1, x.shape[-1])
        elif precomputed_aligned_embeddings is not None:
            code_emb = precomputed_aligned_embeddings
        else:
            if aligned_conditioning is None or conditioning_latent is None:
                raise ValueError("give precomputed_aligned_embeddings, or aligned_conditioning and conditioning_latent")
            code_emb = self.timestep_independent(aligned_conditioning, conditioning_latent, x.shape[-1], False)
        time_emb = self.time_embed(timestep_embedding(timesteps, self.model_channels)).to(x.dtype)
        for layer in self.conditioning_timestep_integrator:
            code_emb = layer(code_emb, time_emb)
        h = self.integrating_conv(torch.cat([self.inp_block(x), code_emb.to(x.dtype)], dim=1))
        for layer in self.layers:
            h = layer(h, time_emb)
        return self.out(h)
