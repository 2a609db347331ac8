"""jik876/hifi-gan compatibility: generator output, state-dict keys, g_/do_/config.json round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from modules.errors import UserError
from modules.hifigan import checkpoint as ckpt
from modules.hifigan import load_generator
from modules.hifigan.models import Generator, MultiPeriodDiscriminator, MultiScaleDiscriminator


@pytest.fixture(scope="module")
def compat(shared):
    return shared / "compat" / "hifigan"


def test_generator_v2_reproduces_jik876(compat):
    gen = load_generator(compat / "generator_v2" / "g_00001234", compat / "config_v2.json")
    assert not gen.training
    mel = torch.from_numpy(np.load(compat / "generator_v2" / "mel_in.npy"))
    ref = np.load(compat / "generator_v2" / "wave_out.npy")
    with torch.no_grad():
        out = gen(mel)
    assert out.shape == ref.shape == (1, 1, 64 * 256)
    assert np.abs(out.numpy() - ref).max() < 1e-4
    gen.remove_weight_norm()  # folding weight norm away gives the same output
    assert not any(k.endswith("weight_g") for k in gen.state_dict())
    with torch.inference_mode():
        assert np.abs(gen(mel).numpy() - ref).max() < 1e-4


def test_load_generator_without_config_finds_preset(compat, tmp_path):
    # a g_ file with no config.json beside it: the V1/V2/V3 shapes identify the preset
    g = tmp_path / "g_00001234"
    g.write_bytes((compat / "generator_v2" / "g_00001234").read_bytes())
    gen = load_generator(g)
    assert gen.hparams["upsample_initial_channel"] == 128
    with pytest.raises(UserError, match="config"):
        load_generator(g, compat / "config_v1.json")  # V1 config for a V2 file: clear error


def test_state_dict_manifest(compat):
    manifest = json.loads((compat / "state_dict_manifest.json").read_text())
    config_v1 = json.loads((compat / "config_v1.json").read_text())
    for name, module in (("generator_v1", Generator.from_config(config_v1)), ("mpd", MultiPeriodDiscriminator()),
                         ("msd", MultiScaleDiscriminator())):
        shapes = {k: list(v.shape) for k, v in module.state_dict().items()}
        assert shapes == manifest[name], name
        # and a state dict of exactly those keys/shapes loads strictly
        module.load_state_dict({k: torch.randn(s) for k, s in manifest[name].items()}, strict=True)


def test_g_do_round_trip(compat, tmp_path):
    config = json.loads((compat / "config_v2.json").read_text())
    gen = load_generator(compat / "generator_v2" / "g_00001234", config)
    mpd, msd = MultiPeriodDiscriminator(), MultiScaleDiscriminator()
    optim_g = torch.optim.AdamW(gen.parameters(), 2e-4, betas=(0.8, 0.99))
    optim_d = torch.optim.AdamW(list(msd.parameters()) + list(mpd.parameters()), 2e-4, betas=(0.8, 0.99))
    ckpt.save_g(tmp_path / "g_00000007", gen)
    ckpt.save_do(tmp_path / "do_00000007", mpd, msd, optim_g, optim_d, steps=7, epoch=1)
    ckpt.write_config(tmp_path / "config.json", config)

    # plain torch.load, as jik876's own scripts read them
    g = torch.load(tmp_path / "g_00000007", map_location="cpu")
    assert set(g) == {"generator"}
    assert "conv_pre.weight_g" in g["generator"] and "conv_pre.weight_v" in g["generator"]
    do = torch.load(tmp_path / "do_00000007", map_location="cpu")
    assert set(do) == {"mpd", "msd", "optim_g", "optim_d", "steps", "epoch"}
    assert do["steps"] == 7 and do["epoch"] == 1
    assert "discriminators.0.convs.0.weight_orig" in do["msd"]
    assert "discriminators.1.convs.0.weight_g" in do["msd"]
    manifest = json.loads((compat / "state_dict_manifest.json").read_text())
    assert {k: list(v.shape) for k, v in do["mpd"].items()} == manifest["mpd"]

    again = load_generator(tmp_path / "g_00000007")  # config.json beside it
    mel = torch.from_numpy(np.load(compat / "generator_v2" / "mel_in.npy"))
    with torch.no_grad():
        assert torch.equal(again(mel), gen(mel))
    loaded = ckpt.load_do(tmp_path / "do_00000007")
    MultiScaleDiscriminator().load_state_dict(loaded["msd"], strict=True)
    torch.optim.AdamW(list(msd.parameters()) + list(mpd.parameters())).load_state_dict(loaded["optim_d"])


def test_truncated_checkpoint_is_a_user_error(compat, tmp_path):
    bad = tmp_path / "g_00000001"
    bad.write_bytes((compat / "generator_v2" / "g_00001234").read_bytes()[:5000])
    with pytest.raises(UserError, match="g_00000001"):
        load_generator(bad, compat / "config_v2.json")


def test_custom_generator_shapes():
    gen = Generator(resblock="2", upsample_rates=[4, 4], upsample_kernel_sizes=[8, 8], upsample_initial_channel=16,
                    resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 2]], in_channels=12).eval()
    with torch.no_grad():
        assert gen(torch.randn(2, 12, 10)).shape == (2, 1, 160)
