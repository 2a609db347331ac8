"""jik876's full-size discriminators and GAN losses against jik876's own outputs
(../shared/compat/hifigan/discriminators/), and the logged total against its weighted parts."""

from __future__ import annotations

import json
import zlib

import numpy as np
import torch

from modules.hifigan.losses import discriminator_loss, feature_loss, generator_loss
from modules.hifigan.models import MultiPeriodDiscriminator, MultiScaleDiscriminator
from tests.helpers.hifigan_helpers import demo_src, read_metrics, run_dir, tiny_config, train, ws  # noqa: F401

torch.set_num_threads(1)


def _formula_state(prefix: str, module: torch.nn.Module, vectors: dict) -> dict:
    """Every entry as info.json spells it out (CRC-32 seeded normals, scaled by kind)."""
    out = {}
    for key, value in module.state_dict().items():
        full = prefix + key
        if full in vectors:
            out[key] = vectors[full]
            continue
        z = np.random.default_rng(zlib.crc32(full.encode("utf-8"))).standard_normal(tuple(value.shape))
        z = z.astype(np.float32)
        if key.endswith("weight_g"):
            z = 1 + 0.1 * z
        elif key.endswith("bias"):
            z = 0.02 * z
        else:
            z = z / np.sqrt(value.numel() / value.shape[0])
        out[key] = torch.from_numpy(z.astype(np.float32))
    return out


def _close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    scale = float(b.abs().max()) or 1.0
    assert a.shape == b.shape, (what, a.shape, b.shape)
    assert float((a - b).abs().max()) <= 1e-4 * scale, (what, float((a - b).abs().max()), scale)


def test_discriminators_and_losses_match_jik876(shared):
    d = shared / "compat" / "hifigan" / "discriminators"
    io = torch.load(d / "io.pt", weights_only=False)
    vectors = torch.load(d / "spectral_norm_vectors.pt", weights_only=False)
    expected = json.loads((d / "info.json").read_text())["losses"]
    mpd, msd = MultiPeriodDiscriminator(), MultiScaleDiscriminator()
    mpd.load_state_dict(_formula_state("mpd.", mpd, vectors), strict=True)
    msd.load_state_dict(_formula_state("msd.", msd, vectors), strict=True)
    mpd.eval(), msd.eval()
    y, y_hat = io["input.y"], io["input.y_hat"]
    with torch.no_grad():
        f_r, f_g, fm_fr, fm_fg = mpd(y, y_hat)
        s_r, s_g, fm_sr, fm_sg = msd(y, y_hat)
    for i in range(5):
        _close(f_r[i], io[f"jik876.mpd_real.{i}"], f"mpd real {i}")
        _close(f_g[i], io[f"jik876.mpd_gen.{i}"], f"mpd gen {i}")
    for i in range(3):
        _close(s_r[i], io[f"jik876.msd_real.{i}"], f"msd real {i}")
        _close(s_g[i], io[f"jik876.msd_gen.{i}"], f"msd gen {i}")
    _close(fm_fr[0][0], io["jik876.mpd_fmap_real.0.0"], "mpd fmap")
    _close(fm_sg[2][-1], io["jik876.msd_fmap_gen.2.last"], "msd fmap")
    ours = {
        "loss_disc_f": discriminator_loss(f_r, f_g), "loss_disc_s": discriminator_loss(s_r, s_g),
        "loss_fm_f": 2 * feature_loss(fm_fr, fm_fg), "loss_fm_s": 2 * feature_loss(fm_sr, fm_sg),  # jik876's x2
        "loss_gen_f": generator_loss(f_g), "loss_gen_s": generator_loss(s_g),
    }
    for name, value in ours.items():
        assert abs(float(value) - expected[name]) <= 1e-4 * abs(expected[name]), (name, float(value), expected[name])
        assert abs(float(value) - float(io[f"jik876.{name}"])) <= 1e-4 * abs(expected[name]), name


def test_the_logged_total_is_the_weighted_sum_of_its_parts(ws):
    """loss = loss_adv + feature_loss_weight x loss_fm + mel_loss_weight x mel_l1, in every logged record."""
    cfg = tiny_config(max_steps=3, save_every_steps=None)
    assert train(ws, cfg) == 0
    records = [r for r in read_metrics(run_dir(ws)) if not r.get("validation")]
    assert len(records) == 3
    for rec in records:
        total = rec["loss_adv"] + 2.0 * rec["loss_fm"] + 45.0 * rec["mel_l1"]  # jik876's weights, the defaults
        assert abs(rec["loss"] - total) <= 1e-4 * abs(total), rec
