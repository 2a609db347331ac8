"""tortoise's UnivNet vocoder (``vocoder.pth``, weights under ``model_g``): 100-band 24 kHz mel -> audio.

Location-variable convolutions whose kernels a small network predicts from the mel, one kernel
per hop window (FACTS.md part B, "UnivNetGenerator"). Names follow tortoise's class so its
file loads strictly; weight norm is folded after loading, as tortoise's ``eval(inference=True)``.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

UNIVNET_HYPERPARAMETERS: dict[str, Any] = {
    "noise_dim": 64, "channel_size": 32, "dilations": [1, 3, 9, 27], "strides": [8, 8, 4], "lReLU_slope": 0.2,
    "kpnet_conv_size": 3, "hop_length": 256, "n_mel_channels": 100,
}
PAD_FRAMES = 10
PAD_VALUE = -11.5129


def _wn(module: nn.Module) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nn.utils.weight_norm(module)


class KernelPredictor(nn.Module):
    """Mel -> per-frame kernels ``[B, layers, in, out, k, T]`` and biases ``[B, layers, out, T]``."""

    def __init__(self, cond_channels: int, conv_in: int, conv_out: int, conv_layers: int, kernel_size: int = 3,
                 hidden: int = 64, kpnet_conv_size: int = 3, slope: float = 0.1):
        super().__init__()
        self.conv_in, self.conv_out, self.kernel_size, self.conv_layers = conv_in, conv_out, kernel_size, conv_layers
        pad = (kpnet_conv_size - 1) // 2
        self.input_conv = nn.Sequential(_wn(nn.Conv1d(cond_channels, hidden, 5, padding=2)), nn.LeakyReLU(slope))
        self.residual_convs = nn.ModuleList([
            nn.Sequential(nn.Dropout(0.0), _wn(nn.Conv1d(hidden, hidden, kpnet_conv_size, padding=pad)),
                          nn.LeakyReLU(slope), _wn(nn.Conv1d(hidden, hidden, kpnet_conv_size, padding=pad)),
                          nn.LeakyReLU(slope))
            for _ in range(3)])
        self.kernel_conv = _wn(nn.Conv1d(hidden, conv_in * conv_out * kernel_size * conv_layers, kpnet_conv_size,
                                         padding=pad))
        self.bias_conv = _wn(nn.Conv1d(hidden, conv_out * conv_layers, kpnet_conv_size, padding=pad))

    def forward(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, frames = c.shape
        c = self.input_conv(c)
        for block in self.residual_convs:
            c = c + block(c)
        kernels = self.kernel_conv(c).reshape(b, self.conv_layers, self.conv_in, self.conv_out, self.kernel_size,
                                              frames)
        bias = self.bias_conv(c).reshape(b, self.conv_layers, self.conv_out, frames)
        return kernels, bias


def location_variable_convolution(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor, hop: int) -> torch.Tensor:
    """Each ``hop``-sample window of ``x`` ``[B, in, T*hop]`` convolved with its own frame's kernel."""
    b, _, length = x.shape
    _, _, out_channels, k, frames = kernel.shape
    if length != frames * hop:
        raise ValueError(f"signal of {length} samples does not match {frames} frames of hop {hop}")
    pad = (k - 1) // 2
    x = F.pad(x, (pad, pad)).unfold(2, hop + 2 * pad, hop)  # [B, in, frames, hop + 2 pad]
    x = x.unfold(3, k, 1)  # [B, in, frames, hop, k]
    o = torch.einsum("bilsk,biokl->bols", x, kernel) + bias.unsqueeze(-1)
    return o.reshape(b, out_channels, -1)


class LVCBlock(nn.Module):
    def __init__(self, channels: int, cond_channels: int, stride: int, dilations: Sequence[int], slope: float,
                 cond_hop: int, kpnet_conv_size: int):
        super().__init__()
        self.cond_hop = cond_hop
        self.channels = channels
        self.kernel_predictor = KernelPredictor(cond_channels, channels, 2 * channels, len(dilations),
                                                kpnet_conv_size=kpnet_conv_size, slope=slope)
        self.convt_pre = nn.Sequential(nn.LeakyReLU(slope), _wn(nn.ConvTranspose1d(
            channels, channels, 2 * stride, stride=stride, padding=stride // 2 + stride % 2,
            output_padding=stride % 2)))
        self.conv_blocks = nn.ModuleList([
            nn.Sequential(nn.LeakyReLU(slope), _wn(nn.Conv1d(channels, channels, 3, padding=d, dilation=d)),
                          nn.LeakyReLU(slope))
            for d in dilations])

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        x = self.convt_pre(x)
        kernels, bias = self.kernel_predictor(c)
        for i, conv in enumerate(self.conv_blocks):
            y = location_variable_convolution(conv(x), kernels[:, i], bias[:, i], self.cond_hop)
            x = x + torch.sigmoid(y[:, :self.channels]) * torch.tanh(y[:, self.channels:])
        return x


class UnivNetGenerator(nn.Module):
    """tortoise's UnivNet: noise ``z`` shaped by the mel through LVC blocks, 256 samples per frame."""

    sample_rate = 24000

    def __init__(self, noise_dim: int = 64, channel_size: int = 32, dilations: Sequence[int] = (1, 3, 9, 27),
                 strides: Sequence[int] = (8, 8, 4), lReLU_slope: float = 0.2, kpnet_conv_size: int = 3,  # noqa: N803
                 hop_length: int = 256, n_mel_channels: int = 100):
        super().__init__()
        self.mel_channel = n_mel_channels
        self.noise_dim = noise_dim
        self.hop_length = hop_length
        self.res_stack = nn.ModuleList()
        hop = 1
        for stride in strides:
            hop *= stride
            self.res_stack.append(LVCBlock(channel_size, n_mel_channels, stride, dilations, lReLU_slope, hop,
                                           kpnet_conv_size))
        self.conv_pre = _wn(nn.Conv1d(noise_dim, channel_size, 7, padding=3, padding_mode="reflect"))
        self.conv_post = nn.Sequential(nn.LeakyReLU(lReLU_slope),
                                       _wn(nn.Conv1d(channel_size, 1, 7, padding=3, padding_mode="reflect")),
                                       nn.Tanh())

    def forward(self, c: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        z = self.conv_pre(z)
        for block in self.res_stack:
            z = block(z, c)
        return self.conv_post(z)

    def remove_weight_norm(self) -> "UnivNetGenerator":
        """Fold every weight-normed layer into a plain weight (tortoise's ``eval(inference=True)``)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for module in self.modules():
                if hasattr(module, "weight_g"):
                    nn.utils.remove_weight_norm(module)
        return self

    def inference(self, mel: torch.Tensor, z: torch.Tensor | None = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
        """Mel ``[B, 100, T]`` -> ``[B, 1, T*256]`` in [-1, 1]. ``z`` ``[B, 64, T+10]`` is the noise
        tortoise draws here (drawn from ``generator`` or the global RNG when not given)."""
        param = self.conv_pre.bias
        mel = mel.to(device=param.device, dtype=param.dtype)
        pad = torch.full((mel.shape[0], self.mel_channel, PAD_FRAMES), PAD_VALUE, device=mel.device, dtype=mel.dtype)
        mel = torch.cat([mel, pad], dim=2)
        if z is None:
            z = torch.randn(mel.shape[0], self.noise_dim, mel.shape[2], generator=generator)
        audio = self(mel, z.to(device=mel.device, dtype=mel.dtype))
        return audio[:, :, : -(self.hop_length * PAD_FRAMES)].clamp(-1.0, 1.0)
