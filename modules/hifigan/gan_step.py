"""The adversarial half of one HiFi-GAN micro-batch, shared by every recipe that trains a HiFi-GAN
generator (the vocoder, tortoise's latent decoder): jik876's order, the discriminator step on the
detached output, then the generator step through the (unwrapped, freshly updated) discriminators.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from modules.hifigan.losses import discriminator_loss, feature_loss, generator_loss
from modules.trainer.recipe import StepContext

LOSS_NAMES = ("loss", "loss_disc", "mel_l1", "loss_fm", "loss_adv")


def adversarial_step(ctx: StepContext, y: torch.Tensor, y_g_hat: torch.Tensor, y_mel: torch.Tensor,
                     mel_of: Callable[[torch.Tensor], torch.Tensor], mpd: nn.Module, msd: nn.Module,
                     unwrap: Callable[[nn.Module], nn.Module], mel_weight: float, feature_weight: float,
                     train_generator: bool = True) -> torch.Tensor:
    """Step the discriminators, then (unless ``train_generator`` is False: a discriminator warm-up)
    the generator. ``y`` is the real audio ``[B, 1, S]``, ``y_g_hat`` the generator's output cut to
    ``S``, ``y_mel`` the target's loss mel. Returns the detached losses in ``LOSS_NAMES`` order."""
    # discriminator phase (DDP-wrapped discriminators: their grads are all-reduced)
    with ctx.autocast():
        r, g, _, _ = mpd(y, y_g_hat.detach())
        loss_disc_f = discriminator_loss(r, g)
        r, g, _, _ = msd(y, y_g_hat.detach())
        loss_disc_s = discriminator_loss(r, g)
        loss_disc = loss_disc_f + loss_disc_s
    ctx.backward(loss_disc, "discriminator")
    ctx.step("discriminator")

    # generator phase through the plain discriminators (no DDP reducer for a second forward)
    with torch.set_grad_enabled(train_generator and torch.is_grad_enabled()):
        mel_fake = mel_of(y_g_hat.squeeze(1).float())
        loss_mel = F.l1_loss(mel_fake, y_mel)
        with ctx.autocast():
            _, g_f, fr_f, fg_f = unwrap(mpd)(y, y_g_hat)
            _, g_s, fr_s, fg_s = unwrap(msd)(y, y_g_hat)
            loss_fm = feature_loss(fr_f, fg_f) + feature_loss(fr_s, fg_s)
            loss_adv = generator_loss(g_f) + generator_loss(g_s)
        loss_gen = loss_adv + float(feature_weight) * loss_fm + float(mel_weight) * loss_mel
    if train_generator:
        ctx.backward(loss_gen, "generator")
        ctx.step("generator")
    return torch.stack([loss_gen, loss_disc, loss_mel, loss_fm, loss_adv]).detach().float()
