"""tortoise's discrete VAE (``dvae.pth``): mels -> codes for the GPT's targets, codes -> mels.

Layer layout and keys follow DL-Art-School's ``lucidrains_dvae.DiscreteVAE`` with the
1-D, no-transposed-conv configuration tortoise's DVAE was trained with. Used frozen.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResBlock(nn.Module):
    def __init__(self, chan: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(chan, chan, 3, padding=1), nn.ReLU(),
            nn.Conv1d(chan, chan, 3, padding=1), nn.ReLU(),
            nn.Conv1d(chan, chan, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) + x


class UpsampledConv(nn.Module):
    """Nearest-neighbour upsampling by ``stride`` then a same-size convolution."""

    def __init__(self, n_in: int, n_out: int, kernel_size: int, stride: int, padding: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(n_in, n_out, kernel_size, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=self.stride, mode="nearest"))


class Quantize(nn.Module):
    """Nearest-codebook-vector quantiser; buffers ``embed`` (dim, n), ``cluster_size``, ``embed_avg``."""

    def __init__(self, dim: int, n_embed: int):
        super().__init__()
        self.dim = dim
        self.n_embed = n_embed
        embed = torch.randn(dim, n_embed)
        self.register_buffer("embed", embed)
        self.register_buffer("cluster_size", torch.zeros(n_embed))
        self.register_buffer("embed_avg", embed.clone())

    def forward(self, x: torch.Tensor):
        """x (..., dim) -> (quantised with straight-through gradient, codes, commitment loss)."""
        flat = x.reshape(-1, self.dim)
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embed + self.embed.pow(2).sum(0, keepdim=True)
        codes = (-dist).max(1)[1].view(*x.shape[:-1])
        quant = self.embed_code(codes)
        diff = (quant.detach() - x).pow(2).mean()
        return x + (quant - x).detach(), codes, diff

    def embed_code(self, codes: torch.Tensor) -> torch.Tensor:
        return F.embedding(codes, self.embed.transpose(0, 1))


class DiscreteVAE(nn.Module):
    """1-D DiscreteVAE; only the configuration family tortoise uses (positional_dims=1)."""

    def __init__(self, channels: int = 80, codebook_dim: int = 512, hidden_dim: int = 512, kernel_size: int = 3,
                 num_layers: int = 2, num_resnet_blocks: int = 3, num_tokens: int = 8192, positional_dims: int = 1,
                 use_transposed_convs: bool = False, stride: int = 2):
        super().__init__()
        if positional_dims != 1 or use_transposed_convs or num_layers < 1:
            raise ValueError("only the 1-D DVAE without transposed convs (tortoise's dvae.pth) is supported")
        self.num_tokens = num_tokens
        self.num_layers = num_layers
        self.stride = stride
        enc_chans = [hidden_dim * 2 ** i for i in range(num_layers)]
        dec_chans = list(reversed(enc_chans))
        enc_io = list(zip([channels, *enc_chans][:-1], enc_chans))
        dec_first = dec_chans[0] if num_resnet_blocks > 0 else codebook_dim
        dec_io = list(zip([dec_first, *dec_chans][:-1], dec_chans))
        pad = (kernel_size - 1) // 2
        enc: list[nn.Module] = []
        dec: list[nn.Module] = []
        for (e_in, e_out), (d_in, d_out) in zip(enc_io, dec_io):
            enc.append(nn.Sequential(nn.Conv1d(e_in, e_out, kernel_size, stride=stride, padding=pad), nn.ReLU()))
            dec.append(nn.Sequential(UpsampledConv(d_in, d_out, kernel_size, stride, pad), nn.ReLU()))
        inner = dec_chans[0]
        for _ in range(num_resnet_blocks):
            dec.insert(0, ResBlock(inner))
            enc.append(ResBlock(inner))
        if num_resnet_blocks > 0:
            dec.insert(0, nn.Conv1d(codebook_dim, inner, 1))
        enc.append(nn.Conv1d(inner, codebook_dim, 1))
        dec.append(nn.Conv1d(dec_chans[-1], channels, 1))
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)
        self.codebook = Quantize(codebook_dim, num_tokens)

    @property
    def downsample(self) -> int:
        """Mel frames per code."""
        return self.stride ** self.num_layers

    @torch.no_grad()
    def get_codebook_indices(self, mel: torch.Tensor) -> torch.Tensor:
        """Normalised mel (b, 80, T) -> codes (b, ceil(T / 4)) (int64)."""
        was_training = self.training
        self.eval()
        try:
            latents = self.encoder(mel).permute(0, 2, 1)
            return self.codebook(latents)[1]
        finally:
            self.train(was_training)

    def decode(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes (b, n) -> (mel (b, 80, n * 4), the layer before the last)."""
        x = self.codebook.embed_code(codes).permute(0, 2, 1)
        prev = x
        for layer in self.decoder:
            prev, x = x, layer(x)
        return x, prev

    def forward(self, mel: torch.Tensor):
        """(elementwise MSE, commitment loss, reconstruction); eval mode decodes the hard codes."""
        latents = self.encoder(mel).permute(0, 2, 1)
        sampled, codes, commitment = self.codebook(latents)
        if self.training:
            out = self.decoder(sampled.permute(0, 2, 1))
        else:
            out, _ = self.decode(codes)
        return F.mse_loss(mel, out, reduction="none"), commitment, out
