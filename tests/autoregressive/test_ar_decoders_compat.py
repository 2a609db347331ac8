"""tortoise's decoders against tortoise's own outputs (../shared/compat/tortoise_decoders/)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from modules.autoregressive import (
    diffusion_mel,
    fix_codes,
    kept_latent_frames,
    load_diffusion_decoder,
    load_hifi_decoder,
    load_unified_voice,
    load_univnet,
)
from modules.autoregressive.latents import gpt_latents

torch.set_num_threads(1)
TOL = 1e-4


def _dir(shared, name):
    return shared / "compat" / "tortoise_decoders" / name


def _case(shared, name):
    d = _dir(shared, name)
    hp = json.loads((d / "hyperparameters.json").read_text())["constructor_kwargs"]
    return d, hp, torch.load(d / "io.pt", weights_only=True)


def close(actual, expected, tol=TOL, what=""):
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    torch.testing.assert_close(actual.float(), expected.float(), atol=tol, rtol=0, msg=what)


@pytest.fixture(scope="module")
def gpt(shared):
    d, hp, io = _case(shared, "unified_voice")
    return load_unified_voice(d / "state_dict.pt", hp), io


def test_latents_of_the_training_forward(gpt):
    model, io = gpt
    args = [io[f"input.train.{k}"].clone() for k in ("text_inputs", "text_lengths", "mel_codes", "wav_lengths")]
    with torch.no_grad():
        for flag in (True, False):
            latents = model(io["input.train.cond_latent"], *args, return_latent=True, clip_inputs=flag)
            close(latents, io[f"tortoise.train.latents_clip_inputs_{str(flag).lower()}"], what=str(flag))


def test_latents_as_both_apis_make_them(gpt):
    model, io = gpt
    with torch.no_grad():
        cond = model.get_conditioning(io["input.cond_mels"])
    close(cond, io["tortoise.auto_latent"], what="auto latent")
    ids = io["input.api.text_tokens"][0, :-1]  # the API appends the stop-text 0 itself (so does gpt_latents)
    assert int(io["input.api.text_tokens"][0, -1]) == 0
    close(gpt_latents(model, cond, ids, io["input.api.codes_raw"]), io["tortoise.api_fast.latents"], what="fast")
    fixed = fix_codes(io["input.api.codes_padded"][0])
    assert torch.equal(fixed, io["tortoise.api.codes_fixed"][0])
    full = gpt_latents(model, cond, ids, fixed.unsqueeze(0))
    close(full, io["tortoise.api.latents_full"], what="standard, untrimmed")
    kept = kept_latent_frames(fixed)
    assert kept == io["tortoise.api.latents_trimmed"].shape[1] == 39
    close(full[:, :kept], io["tortoise.api.latents_trimmed"], what="standard, trimmed")


def test_fix_output_examples_exactly(shared):
    examples = json.loads((_dir(shared, ".") / "fix_output.json").read_text())["examples"]
    assert len(examples) == 11
    for e in examples:
        codes = torch.tensor(e["codes_in"])
        before = codes.clone()
        out = fix_codes(codes)
        assert torch.equal(codes, before), e["name"]  # a new tensor; the input is untouched
        assert out.tolist() == e["codes_out"], e["name"]
        assert kept_latent_frames(out) == e["api_latent_frames_kept"], e["name"]


def test_hifi_decoder_matches_tortoise(shared):
    d, hp, io = _case(shared, "hifidecoder")
    model = load_hifi_decoder(d / "state_dict.pt", hp)
    assert not model.training
    from modules.autoregressive.hifi_decoder import output_samples, upsample_latents

    with torch.no_grad():
        up = upsample_latents(io["input.latents"])
        close(up, io["tortoise.upsampled_input"], what="interpolation")
        g = io["input.cond"].reshape(1, -1, 1)
        close(model.conv_pre(up) + model.cond_layer(g), io["tortoise.conv_pre_plus_cond"], what="conv_pre + cond")
        wave = model.inference(io["input.latents"], io["input.cond"])
    close(wave, io["tortoise.wave"], what="wave")
    assert wave.shape[-1] == output_samples(io["input.latents"].shape[1])


def test_hifi_decoder_batches_unlike_tortoise(shared):
    """tortoise's reshape only works for batch 1; ours gives each row its own conditioning."""
    d, hp, io = _case(shared, "hifidecoder")
    model = load_hifi_decoder(d / "state_dict.pt", hp)
    lat = torch.cat([io["input.latents"], io["input.latents"].flip(1)])
    cond = torch.cat([io["input.cond"], -io["input.cond"]])
    with torch.no_grad():
        both = model.inference(lat, cond)
        one = model.inference(lat[1:], cond[1:])
    close(both[:1], io["tortoise.wave"], what="row 0")
    close(both[1:], one, tol=1e-5, what="row 1")


def test_diffusion_decoder_pieces(shared):
    d, hp, io = _case(shared, "diffusion")
    model = load_diffusion_decoder(d / "state_dict.pt", hp)
    from modules.audio.univnet_mel import conditioning_mels

    mels = conditioning_mels(io["input.clips_22k"])
    close(mels, io["input.cond_mel_24k"], what="24 kHz conditioning mels")
    with torch.no_grad():
        cond = model.get_conditioning(io["input.cond_mel_24k"])
        close(cond, io["tortoise.diffusion_cond_latent"], what="conditioning latent")
        pre = model.timestep_independent(io["input.latents"], cond, int(io["input.out_len"]), False)
        close(pre, io["tortoise.precomputed"], what="timestep_independent")
        out = model(io["input.probe.x_t"], io["input.probe.timestep"], precomputed_aligned_embeddings=pre)
        close(out, io["tortoise.model_out"], what="denoiser")
        free = model(io["input.probe.x_t"], io["input.probe.timestep"], precomputed_aligned_embeddings=pre,
                     conditioning_free=True)
        close(free, io["tortoise.model_out_cond_free"], what="denoiser, conditioning-free")


def test_sampler_schedule_and_full_loop(shared):
    d, hp, io = _case(shared, "diffusion")
    from modules.autoregressive.diffusion_sampler import RespacedSchedule, sample_loop, space_timesteps

    sched = RespacedSchedule.build(6)
    assert sched.timestep_map.tolist() == io["sampler.timestep_map"].tolist()
    np.testing.assert_allclose(sched.betas, io["sampler.betas"].numpy(), rtol=1e-12, atol=0)
    for k, expected in json.loads((d / "respacing_examples.json").read_text()).items():
        if k.isdigit():
            assert space_timesteps(4000, int(k)) == expected, k
    model = load_diffusion_decoder(d / "state_dict.pt", hp)
    mel = diffusion_mel(model, io["input.latents"], io["tortoise.diffusion_cond_latent"], 6,
                        noise=(io["noise.initial"], io["noise.steps"]))
    diff = (mel - io["tortoise.mel_out"]).abs()
    assert float(diff.max()) < 5e-3 and float(diff.mean()) < 1e-4, (float(diff.max()), float(diff.mean()))
    # what the network is fed at each step and the guidance weight, against tortoise's trace
    seen: list[tuple[int, torch.Tensor]] = []
    from modules.autoregressive.diffusion_sampler import recorded_noise

    x, draw = recorded_noise(io["noise.initial"], io["noise.steps"])
    with torch.inference_mode():
        pre = model.timestep_independent(io["input.latents"], io["tortoise.diffusion_cond_latent"],
                                         int(io["input.out_len"]), False)
        sample_loop(model, x, sched, pre, True, 2.0, draw, on_step=lambda i, xt: seen.append((i, xt.clone())))
    assert [i for i, _ in seen] == [5, 4, 3, 2, 1, 0]
    assert [int(sched.timestep_map[i]) for i, _ in seen] == io["trace.t_model"].tolist()
    for (_, xt), ref in zip(seen, io["trace.x_t"]):
        close(xt, ref, tol=5e-3, what="x_t")
    weights = [2.0 * (1 - i / 6) for i, _ in seen]
    np.testing.assert_allclose(weights, io["sampler.cfk_per_step"].numpy(), rtol=1e-12)


def test_univnet_matches_tortoise(shared):
    d, hp, io = _case(shared, "univnet")
    model = load_univnet(d / "state_dict.pt", hp)
    assert not any(hasattr(m, "weight_g") for m in model.modules())  # weight norm folded, as eval(inference=True)
    with torch.no_grad():
        close(model.inference(io["input.mel"], io["input.z"]), io["tortoise.wave"], what="primary")
        close(model.inference(io["chain.mel"], io["chain.z"]), io["chain.wave"], what="diffusion chain")


def test_univnet_loads_vocoder_pth_layout(shared, tmp_path):
    """tortoise's vocoder.pth keeps the weights under 'model_g'."""
    d, hp, io = _case(shared, "univnet")
    sd = torch.load(d / "state_dict.pt", weights_only=True)
    torch.save({"model_g": sd, "model_d": {}}, tmp_path / "vocoder.pth")
    model = load_univnet(tmp_path / "vocoder.pth", hp)
    with torch.no_grad():
        close(model.inference(io["input.mel"], io["input.z"]), io["tortoise.wave"], what="model_g")


def test_24khz_mel_front_end(shared):
    d = _dir(shared, "mel_24k")
    from modules.audio.univnet_mel import filterbank, univnet_mel

    audio = torch.from_numpy(np.load(d / "audio.npy"))
    close(filterbank(), torch.from_numpy(np.load(d / "filterbank.npy")), tol=1e-6, what="filterbank")
    close(univnet_mel(audio)[0], torch.from_numpy(np.load(d / "mel.npy")), what="mel")


@pytest.mark.parametrize("kind", ["hifidecoder", "diffusion", "univnet"])
def test_full_size_manifests(shared, kind):
    """Every key, shape and dtype of tortoise's full-size files, built on the meta device."""
    from modules.autoregressive.decoder_files import build

    manifest = json.loads((_dir(shared, kind) / "manifest_full.json").read_text())
    model = build("vocoder" if kind == "univnet" else kind, device="meta")
    own = model.state_dict()
    expected = manifest["state_dict"]
    assert sorted(own) == sorted(expected)
    for key, meta in expected.items():
        assert list(own[key].shape) == meta["shape"], key
        assert str(own[key].dtype).removeprefix("torch.") == meta["dtype"], key
    assert sum(v.numel() for v in own.values()) == manifest["num_parameters"]
    assert len(own) == manifest["num_state_dict_keys"]
