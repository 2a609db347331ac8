"""DiscreteVAE against DL-Art-School's outputs and dvae.pth's manifest."""

from __future__ import annotations

import json

import pytest
import torch

from modules.autoregressive.checkpoint import DVAE_HYPERPARAMETERS, infer_dvae_hyperparameters, load_dvae, save_dvae
from modules.autoregressive.dvae import DiscreteVAE
from modules.errors import UserError

torch.set_num_threads(1)
TOL = 1e-4


@pytest.fixture
def small(shared):
    d = shared / "compat/tortoise/dvae_small"
    hp = json.loads((d / "hyperparameters.json").read_text())["kwargs"]
    return d, hp, torch.load(d / "io.pt", weights_only=True)


def test_codes_and_decode_match(small):
    d, hp, io = small
    dvae = load_dvae(d / "state_dict.pt", hp)
    assert not dvae.training and not any(p.requires_grad for p in dvae.parameters())
    mel = io["input.mel"]
    with torch.no_grad():
        torch.testing.assert_close(dvae.encoder(mel), io["encoder_out"], atol=TOL, rtol=0)
        codes = dvae.get_codebook_indices(mel)
        recon, pre_final = dvae.decode(io["codes"])
        recon_loss, commitment, out = dvae(mel)
    assert codes.dtype == torch.int64 and torch.equal(codes, io["codes"])
    assert codes.unique().numel() > 5  # the fixture's codes are diverse, so equality means something
    torch.testing.assert_close(recon, io["decode.recon"], atol=TOL, rtol=0)
    torch.testing.assert_close(pre_final, io["decode.pre_final"], atol=TOL, rtol=0)
    torch.testing.assert_close(out, io["forward_eval.out"], atol=TOL, rtol=0)
    torch.testing.assert_close(recon_loss, io["forward_eval.recon_loss"], atol=TOL, rtol=0)
    assert abs(commitment.item() - io["forward_eval.commitment_loss"].item()) < 1e-6


def test_code_count_for_frames(small):
    d, hp, io = small
    dvae = load_dvae(d / "state_dict.pt", hp)
    for frames, expected in [(64, 16), (65, 17), (63, 16), (1000, 250)]:
        assert dvae.get_codebook_indices(torch.randn(1, 80, frames)).shape == (1, expected)


def test_full_size_matches_manifest(shared):
    manifest = json.loads((shared / "compat/tortoise/dvae_manifest_full.json").read_text())
    with torch.device("meta"):
        dvae = DiscreteVAE(**DVAE_HYPERPARAMETERS)
    sd = dvae.state_dict()
    assert list(sd) == list(manifest["state_dict"])
    for key, shape in manifest["state_dict"].items():
        assert list(sd[key].shape) == shape, key
        assert str(sd[key].dtype).removeprefix("torch.") == manifest["state_dict_dtypes"][key], key
    assert len(sd) == manifest["num_state_dict_keys"]
    inferred = infer_dvae_hyperparameters(sd)
    assert inferred == {k: v for k, v in manifest["hyperparameters"].items() if k in inferred}
    assert sum(p.numel() for p in dvae.parameters()) == manifest["num_parameters"]


def test_save_load_roundtrip_and_errors(small, tmp_path):
    d, hp, io = small
    dvae = load_dvae(d / "state_dict.pt", hp)
    save_dvae(dvae, tmp_path / "dvae.pth")
    again = load_dvae(tmp_path / "dvae.pth", hp)
    assert torch.equal(again.get_codebook_indices(io["input.mel"]), io["codes"])
    with pytest.raises(UserError, match="dvae_small.*shape mismatch"):
        load_dvae(d / "state_dict.pt", DVAE_HYPERPARAMETERS)  # full-size sizes against the small file
    inferred = load_dvae(d / "state_dict.pt")  # without hyperparameters they are read off the file
    assert torch.equal(inferred.get_codebook_indices(io["input.mel"]), io["codes"])
