"""The HiFi-GAN paper's losses: least-squares GAN, feature matching and mel L1."""

from __future__ import annotations

from typing import Sequence

import torch


def discriminator_loss(real: Sequence[torch.Tensor], fake: Sequence[torch.Tensor]) -> torch.Tensor:
    """LSGAN: push real scores to 1 and generated scores to 0, summed over sub-discriminators."""
    total = real[0].new_zeros((), dtype=torch.float32)
    for dr, dg in zip(real, fake):
        total = total + torch.mean((1 - dr.float()) ** 2) + torch.mean(dg.float() ** 2)
    return total


def generator_loss(fake: Sequence[torch.Tensor]) -> torch.Tensor:
    """LSGAN: push the generated scores to 1."""
    total = fake[0].new_zeros((), dtype=torch.float32)
    for dg in fake:
        total = total + torch.mean((1 - dg.float()) ** 2)
    return total


def feature_loss(fmap_real: Sequence[Sequence[torch.Tensor]],
                 fmap_fake: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """L1 between real and generated discriminator activations (unweighted; the recipe applies ×2)."""
    total = None
    for dr, dg in zip(fmap_real, fmap_fake):
        for rl, gl in zip(dr, dg):
            term = torch.mean(torch.abs(rl.float() - gl.float()))
            total = term if total is None else total + term
    return total
