"""UnifiedVoice against tortoise's own outputs (../shared/compat/tortoise fixtures)."""

from __future__ import annotations

import json

import pytest
import torch

from modules.autoregressive.checkpoint import (
    build_unified_voice,
    load_unified_voice,
    save_unified_voice,
    strip_legacy_keys,
)
from modules.errors import UserError

torch.set_num_threads(1)
TOL = 1e-4
CASES = ["unified_voice_small", "unified_voice_small/perturbed"]


def _case(shared, sub):
    d = shared / "compat" / "tortoise" / sub
    hp = json.loads((d / "hyperparameters.json").read_text())["tortoise_UnifiedVoice_kwargs"]
    return d, hp, torch.load(d / "io.pt", weights_only=True)


def _inputs(io):
    return (io["input.text_inputs"], io["input.text_lengths"], io["input.mel_codes"], io["input.wav_lengths"])


@pytest.mark.parametrize("sub", CASES)
def test_matches_tortoise_forward(shared, sub):
    d, hp, io = _case(shared, sub)
    model = load_unified_voice(d / "state_dict.pt", hp)
    assert not model.training
    inputs = [t.clone() for t in _inputs(io)]
    with torch.no_grad():
        latent = model.get_conditioning(io["input.cond_mels"])
        details = model(latent, *inputs, return_details=True)
        loss_text, loss_mel, mel_logits = model(latent, *inputs)
        latents = model(latent, *inputs, return_latent=True)
    # the caller's tensors are not modified (tortoise stop-fills its input in place; we do not)
    for a, b in zip(inputs, _inputs(io)):
        assert torch.equal(a, b)
    torch.testing.assert_close(latent, io["tortoise.cond_latent"], atol=TOL, rtol=0)
    for key in ("gpt_inputs_embeds", "gpt_last_hidden_state", "text_logits", "mel_logits"):
        assert details[key].shape == io[f"tortoise.{key}"].shape, key
        torch.testing.assert_close(details[key], io[f"tortoise.{key}"], atol=TOL, rtol=0, msg=key)
    assert torch.equal(details["text_targets"], io["tortoise.text_targets"])
    assert torch.equal(details["mel_targets"], io["tortoise.mel_targets"])
    assert abs(loss_text.item() - io["tortoise.loss_text"].item()) < TOL
    assert abs(loss_mel.item() - io["tortoise.loss_mel"].item()) < TOL
    torch.testing.assert_close(mel_logits, io["tortoise.mel_logits"], atol=TOL, rtol=0)
    assert latents.shape == io["tortoise.return_latent_output"].shape
    torch.testing.assert_close(latents, io["tortoise.return_latent_output"], atol=TOL, rtol=0)


def test_perturbed_fixture_exercises_attention(shared):
    """Guards the fixture itself: in the perturbed model the conditioning attention matters."""
    d, hp, io = _case(shared, "unified_voice_small/perturbed")
    model = load_unified_voice(d / "state_dict.pt", hp)
    with torch.no_grad():
        full = model.get_conditioning(io["input.cond_mels"])
        for block in model.conditioning_encoder.attn:
            block.proj_out.weight.zero_()
            block.proj_out.bias.zero_()
        without = model.get_conditioning(io["input.cond_mels"])
    assert (full - without).abs().max() > 1e-3


def test_single_clip_conditioning_and_averaging(shared):
    d, hp, io = _case(shared, "unified_voice_small/perturbed")
    model = load_unified_voice(d / "state_dict.pt", hp)
    mels = io["input.cond_mels"]
    with torch.no_grad():
        one = model.get_conditioning(mels[:, 0])
        each = [model.conditioning_encoder(mels[:, i]) for i in range(mels.shape[1])]
        both = model.get_conditioning(mels)
    torch.testing.assert_close(one, each[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(both, (each[0] + each[1]) / 2, atol=1e-5, rtol=0)


def test_full_size_model_matches_manifest(shared):
    manifest = json.loads((shared / "compat/tortoise/unified_voice_manifest_full.json").read_text())
    model = build_unified_voice(None, device="meta")
    sd = model.state_dict()
    assert list(sd) == list(manifest["state_dict"])
    for key, shape in manifest["state_dict"].items():
        assert list(sd[key].shape) == shape, key
        assert str(sd[key].dtype).removeprefix("torch.") == manifest["state_dict_dtypes"][key], key
    assert len(sd) == manifest["num_state_dict_keys"]
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"]
    assert model.gpt.n_positions == manifest["derived_defaults"]["gpt2_n_positions"]
    assert all(not k.startswith(("gpt.wte", "inference_model")) for k in sd)


def test_save_writes_exactly_tortoise_keys(shared, tmp_path):
    d, hp, io = _case(shared, "unified_voice_small/perturbed")
    original = torch.load(d / "state_dict.pt", weights_only=True)
    model = load_unified_voice(d / "state_dict.pt", hp)
    out = save_unified_voice(model, tmp_path / "00000010_gpt.pth")
    saved = torch.load(out, weights_only=True)
    expected = strip_legacy_keys(original)
    assert list(saved) == list(expected)
    for k in expected:
        assert torch.equal(saved[k], expected[k]), k
    # and it loads back strictly
    again = load_unified_voice(out, hp)
    assert torch.equal(again.mel_head.weight, model.mel_head.weight)


def test_legacy_keys_dropped_and_half_file_loads(shared, tmp_path):
    d, hp, io = _case(shared, "unified_voice_small/perturbed")
    original = torch.load(d / "state_dict.pt", weights_only=True)
    assert any(k.endswith("attn.masked_bias") for k in original)  # the fixture carries them, like the real file
    half = {k: v.half() for k, v in original.items()}  # ai-voice-cloning's autoregressive_half.pth
    torch.save(half, tmp_path / "autoregressive_half.pth")
    model = load_unified_voice(tmp_path / "autoregressive_half.pth", hp)
    assert model.mel_head.weight.dtype == torch.float32
    torch.testing.assert_close(model.mel_head.weight, original["mel_head.weight"].half().float())
    with torch.no_grad():
        lat = model.get_conditioning(io["input.cond_mels"])
        lt, lm, _ = model(lat, *_inputs(io))
    assert abs(lm.item() - io["tortoise.loss_mel"].item()) < 0.05


def test_wrong_hyperparameters_give_user_error(shared, tmp_path):
    d, hp, io = _case(shared, "unified_voice_small")
    with pytest.raises(UserError, match="state_dict.pt.*shape mismatch"):
        load_unified_voice(d / "state_dict.pt", dict(hp, model_dim=32, heads=4))
    sd = strip_legacy_keys(torch.load(d / "state_dict.pt", weights_only=True))
    del sd["final_norm.bias"]
    torch.save(sd, tmp_path / "broken.pth")
    with pytest.raises(UserError, match="missing: final_norm.bias"):
        load_unified_voice(tmp_path / "broken.pth", hp)
    with pytest.raises(UserError, match="not found"):
        load_unified_voice(tmp_path / "nope.pth", hp)


def test_gradient_checkpointing_gives_same_gradients(shared):
    d, hp, io = _case(shared, "unified_voice_small/perturbed")
    grads = []
    for ckpt in (False, True):
        model = load_unified_voice(d / "state_dict.pt", hp)
        model.train()
        for m in model.modules():  # dropout off so both runs are deterministic
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        for block in model.gpt.h:
            block.attn.attn_dropout = 0.0
        model.set_gradient_checkpointing(ckpt)
        lat = model.get_conditioning(io["input.cond_mels"])
        lt, lm, _ = model(lat, *_inputs(io))
        (0.01 * lt + lm).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 20
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], atol=1e-6, rtol=1e-5, msg=n)


def test_kv_cache_sampler_matches_uncached_greedy(shared):
    d, hp, io = _case(shared, "unified_voice_small/perturbed")
    model = load_unified_voice(d / "state_dict.pt", hp)
    text = io["input.text_inputs"][0, : int(io["input.text_lengths"][0])]
    with torch.no_grad():
        lat = model.get_conditioning(io["input.cond_mels"][:1])
        codes = model.sample_codes(lat, text, max_tokens=12, top_p=0.0, temperature=1.0)[0]
        # reference: recompute the whole sequence every step, no cache
        text_in = torch.nn.functional.pad(torch.nn.functional.pad(text, (0, 1), value=0), (1, 0), value=255)[None]
        seq = [model.start_mel_token]
        for _ in range(12):
            mel_in = torch.tensor([seq])
            emb = model.embed_inputs(lat, text_in, mel_in)
            hidden, _ = model.gpt(emb)
            tok = int(model.mel_head(model.final_norm(hidden[:, -1])).argmax(-1))
            if tok == model.stop_mel_token:
                break
            seq.append(tok)
    assert codes.tolist() == seq[1:]
    assert len(codes) > 0


def test_sampler_is_seeded_and_respects_length_cap(shared):
    d, hp, io = _case(shared, "unified_voice_small")
    model = load_unified_voice(d / "state_dict.pt", hp)
    text = io["input.text_inputs"][1, :9]
    lat = model.get_conditioning(io["input.cond_mels"][1:2])
    runs = [model.sample_codes(lat, text, num_samples=2, max_tokens=7, temperature=1.0, top_p=0.9,
                               repetition_penalty=2.0, generator=torch.Generator().manual_seed(5)) for _ in range(2)]
    assert [c.tolist() for c in runs[0]] == [c.tolist() for c in runs[1]]
    assert all(len(c) <= 7 for c in runs[0])
    assert all(int(c.max()) < model.stop_mel_token for c in runs[0] if len(c))
