"""HiFi-GAN generator (V1/V2/V3/custom) and the multi-period / multi-scale discriminators.

Module names and the weight-norm / spectral-norm parametrisation are those of
jik876/hifi-gan so that its ``g_`` and ``do_`` state dicts load unchanged
(``weight_g``/``weight_v``; ``weight_orig``/``weight_u``/``weight_v`` for MSD
scale 0). The legacy ``torch.nn.utils.weight_norm`` hooks produce exactly those
keys; its deprecation warning is silenced here on purpose.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from modules.hifigan.options import GENERATOR_KEYS, GENERATOR_PRESETS  # noqa: F401 (sizes defined once, there)

LRELU_SLOPE = 0.1


def _wn(module: nn.Module) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nn.utils.weight_norm(module)


def _sn(module: nn.Module) -> nn.Module:
    return nn.utils.spectral_norm(module)


def _remove_wn(module: nn.Module) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nn.utils.remove_weight_norm(module)


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


def _scaled(channels: int, width: float, multiple: int) -> int:
    """Discriminator channels times ``width`` (1 = jik876's sizes; smaller only for quick tests)."""
    if width == 1.0:
        return channels
    return max(multiple, int(round(channels * width / multiple)) * multiple)


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d, nn.Conv2d)):
        m.weight.data.normal_(0.0, 0.01)


class ResBlock1(nn.Module):
    """Two dilated convolutions per residual branch (V1/V2)."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: Sequence[int] = (1, 3, 5)):
        super().__init__()
        self.convs1 = nn.ModuleList([
            _wn(nn.Conv1d(channels, channels, kernel_size, 1, dilation=d, padding=get_padding(kernel_size, d)))
            for d in dilation])
        self.convs2 = nn.ModuleList([
            _wn(nn.Conv1d(channels, channels, kernel_size, 1, dilation=1, padding=get_padding(kernel_size, 1)))
            for _ in dilation])
        self.convs1.apply(_init_weights)
        self.convs2.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
            x = xt + x
        return x

    def remove_weight_norm(self) -> None:
        for c in list(self.convs1) + list(self.convs2):
            _remove_wn(c)


class ResBlock2(nn.Module):
    """One dilated convolution per residual branch (V3)."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: Sequence[int] = (1, 3)):
        super().__init__()
        self.convs = nn.ModuleList([
            _wn(nn.Conv1d(channels, channels, kernel_size, 1, dilation=d, padding=get_padding(kernel_size, d)))
            for d in dilation])
        self.convs.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c in self.convs:
            x = c(F.leaky_relu(x, LRELU_SLOPE)) + x
        return x

    def remove_weight_norm(self) -> None:
        for c in self.convs:
            _remove_wn(c)


class Generator(nn.Module):
    """Mel (or any ``[B, C, T]`` feature) -> waveform ``[B, 1, T * prod(upsample_rates)]``."""

    def __init__(self, resblock: str = "1", upsample_rates: Sequence[int] = (8, 8, 2, 2),
                 upsample_kernel_sizes: Sequence[int] = (16, 16, 4, 4), upsample_initial_channel: int = 512,
                 resblock_kernel_sizes: Sequence[int] = (3, 7, 11),
                 resblock_dilation_sizes: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
                 in_channels: int = 80, cond_channels: int = 0):
        super().__init__()
        if str(resblock) not in ("1", "2"):
            raise ValueError(f"resblock must be '1' or '2', got {resblock!r}")
        if len(upsample_rates) != len(upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes must have the same length")
        if len(resblock_kernel_sizes) != len(resblock_dilation_sizes):
            raise ValueError("resblock_kernel_sizes and resblock_dilation_sizes must have the same length")
        self.hparams = dict(resblock=str(resblock), upsample_rates=list(upsample_rates),
                            upsample_kernel_sizes=list(upsample_kernel_sizes),
                            upsample_initial_channel=int(upsample_initial_channel),
                            resblock_kernel_sizes=list(resblock_kernel_sizes),
                            resblock_dilation_sizes=[list(d) for d in resblock_dilation_sizes],
                            in_channels=int(in_channels), cond_channels=int(cond_channels))
        self.num_kernels = len(resblock_kernel_sizes)
        self.num_upsamples = len(upsample_rates)
        self.hop_size = 1
        for u in upsample_rates:
            self.hop_size *= int(u)
        block = ResBlock1 if str(resblock) == "1" else ResBlock2
        ch0 = int(upsample_initial_channel)
        self.conv_pre = _wn(nn.Conv1d(in_channels, ch0, 7, 1, padding=3))
        self.ups = nn.ModuleList([
            _wn(nn.ConvTranspose1d(ch0 // (2 ** i), ch0 // (2 ** (i + 1)), k, u, padding=(k - u) // 2))
            for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes))])
        self.resblocks = nn.ModuleList()
        ch = ch0
        for i in range(len(self.ups)):
            ch = ch0 // (2 ** (i + 1))
            for k, d in zip(resblock_kernel_sizes, resblock_dilation_sizes):
                self.resblocks.append(block(ch, k, d))
        self.conv_post = _wn(nn.Conv1d(ch, 1, 7, 1, padding=3))
        self.ups.apply(_init_weights)
        self.conv_post.apply(_init_weights)
        # tortoise's hifidecoder: a speaker vector added after conv_pre (a plain conv, no weight norm);
        # registered last, where tortoise's state dict has it
        self.cond_layer = nn.Conv1d(int(cond_channels), ch0, 1) if cond_channels else None

    @classmethod
    def from_config(cls, h: Mapping[str, Any], in_channels: int | None = None) -> "Generator":
        """Build from a jik876 ``config.json`` dict (or any mapping with the generator keys)."""
        missing = [k for k in GENERATOR_KEYS if k not in h]
        if missing:
            raise KeyError(f"generator config lacks {', '.join(missing)}")
        channels = in_channels if in_channels is not None else int(h.get("in_channels", h.get("num_mels", 80)))
        return cls(**{k: h[k] for k in GENERATOR_KEYS}, in_channels=channels,
                   cond_channels=int(h.get("cond_channels", 0) or 0))

    def forward(self, x: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``[B, C, T]``; ``g`` ``[B, cond_channels, 1]`` when the generator is conditioned."""
        x = self.conv_pre(x)
        if self.cond_layer is not None:
            if g is None:
                raise ValueError("this generator is conditioned: pass g [B, cond_channels, 1]")
            x = x + self.cond_layer(g)
        for i in range(self.num_upsamples):
            x = self.ups[i](F.leaky_relu(x, LRELU_SLOPE))
            xs = self.resblocks[i * self.num_kernels](x)
            for j in range(1, self.num_kernels):
                xs = xs + self.resblocks[i * self.num_kernels + j](x)
            x = xs / self.num_kernels
        x = self.conv_post(F.leaky_relu(x))  # jik876 uses the default 0.01 slope here
        return torch.tanh(x)

    def remove_weight_norm(self) -> "Generator":
        """Fold weight norm into plain weights for inference (same output, less work per call)."""
        for m in self.ups:
            _remove_wn(m)
        for b in self.resblocks:
            b.remove_weight_norm()
        _remove_wn(self.conv_pre)
        _remove_wn(self.conv_post)
        return self


class DiscriminatorP(nn.Module):
    """Looks at the waveform folded into ``period`` columns (2-D convolutions)."""

    def __init__(self, period: int, kernel_size: int = 5, stride: int = 3, use_spectral_norm: bool = False,
                 width: float = 1.0):
        super().__init__()
        self.period = period
        norm = _sn if use_spectral_norm else _wn
        pad = (get_padding(kernel_size, 1), 0)
        c = [1] + [_scaled(n, width, 4) for n in (32, 128, 512, 1024)]
        self.convs = nn.ModuleList(
            [norm(nn.Conv2d(c[i], c[i + 1], (kernel_size, 1), (stride, 1), padding=pad)) for i in range(4)]
            + [norm(nn.Conv2d(c[4], c[4], (kernel_size, 1), 1, padding=(2, 0)))])
        self.conv_post = norm(nn.Conv2d(c[4], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = x.shape
        if t % self.period:
            n_pad = self.period - (t % self.period)
            x = F.pad(x, (0, n_pad), "reflect")
            t = t + n_pad
        x = x.view(b, c, t // self.period, self.period)
        return _conv_stack(self.convs, self.conv_post, x)


def _conv_stack(convs: nn.ModuleList, conv_post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The discriminators' shared body: leaky-ReLU convs, then the output conv; returns the flattened
    scores and every layer's output (the feature maps of the feature-matching loss)."""
    fmap = []
    for layer in convs:
        x = F.leaky_relu(layer(x), LRELU_SLOPE)
        fmap.append(x)
    x = conv_post(x)
    fmap.append(x)
    return torch.flatten(x, 1, -1), fmap


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11), width: float = 1.0):
        super().__init__()
        self.discriminators = nn.ModuleList([DiscriminatorP(p, width=width) for p in periods])

    def forward(self, y: torch.Tensor, y_hat: torch.Tensor):
        """Scores and feature maps for real ``y`` and generated ``y_hat`` (``[B, 1, samples]``)."""
        b, x = _pair(y, y_hat)
        y_d_rs, y_d_gs, fmap_rs, fmap_gs = [], [], [], []
        for d in self.discriminators:
            _split(d(x), b, y_d_rs, y_d_gs, fmap_rs, fmap_gs)
        return y_d_rs, y_d_gs, fmap_rs, fmap_gs


class DiscriminatorS(nn.Module):
    """Grouped 1-D convolutions over the raw (or average-pooled) waveform."""

    def __init__(self, use_spectral_norm: bool = False, width: float = 1.0):
        super().__init__()
        norm = _sn if use_spectral_norm else _wn
        c128, c256, c512, c1024 = (_scaled(n, width, 16) for n in (128, 256, 512, 1024))
        self.convs = nn.ModuleList([
            norm(nn.Conv1d(1, c128, 15, 1, padding=7)),
            norm(nn.Conv1d(c128, c128, 41, 2, groups=4, padding=20)),
            norm(nn.Conv1d(c128, c256, 41, 2, groups=16, padding=20)),
            norm(nn.Conv1d(c256, c512, 41, 4, groups=16, padding=20)),
            norm(nn.Conv1d(c512, c1024, 41, 4, groups=16, padding=20)),
            norm(nn.Conv1d(c1024, c1024, 41, 1, groups=16, padding=20)),
            norm(nn.Conv1d(c1024, c1024, 5, 1, padding=2)),
        ])
        self.conv_post = norm(nn.Conv1d(c1024, 1, 3, 1, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _conv_stack(self.convs, self.conv_post, x)


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, width: float = 1.0):
        super().__init__()
        self.discriminators = nn.ModuleList([
            DiscriminatorS(use_spectral_norm=True, width=width), DiscriminatorS(width=width),
            DiscriminatorS(width=width)])
        self.meanpools = nn.ModuleList([nn.AvgPool1d(4, 2, padding=2), nn.AvgPool1d(4, 2, padding=2)])

    def forward(self, y: torch.Tensor, y_hat: torch.Tensor):
        b, x = _pair(y, y_hat)
        y_d_rs, y_d_gs, fmap_rs, fmap_gs = [], [], [], []
        for i, d in enumerate(self.discriminators):
            if i:
                x = self.meanpools[i - 1](x)
            _split(d(x), b, y_d_rs, y_d_gs, fmap_rs, fmap_gs)
        return y_d_rs, y_d_gs, fmap_rs, fmap_gs


def _pair(y: torch.Tensor, y_hat: torch.Tensor) -> tuple[int, torch.Tensor]:
    """Real and generated audio as one batch: half the kernel launches, same per-clip results."""
    return y.shape[0], torch.cat([y, y_hat.to(y.dtype)], dim=0)


def _split(out: tuple[torch.Tensor, list[torch.Tensor]], b: int, rs: list, gs: list, frs: list, fgs: list) -> None:
    score, fmap = out
    rs.append(score[:b])
    gs.append(score[b:])
    frs.append([f[:b] for f in fmap])
    fgs.append([f[b:] for f in fmap])
