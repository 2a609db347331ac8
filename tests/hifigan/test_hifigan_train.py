"""HiFi-GAN recipe on the real trainer core, on the CPU, with a tiny generator and 1/16-width discriminators."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from modules.errors import UserError
from modules.hifigan import load_generator
from tests.helpers.hifigan_helpers import (  # noqa: F401 (pytest fixtures)
    demo_src,
    read_metrics,
    run_dir,
    state_models,
    tiny_config,
    train,
    ws,
)


def test_tiny_training_run_on_demo(ws):
    cfg = tiny_config(max_steps=24, save_every_steps=12, validate_every_steps=24)
    assert train(ws, cfg) == 0
    run = run_dir(ws)
    records = read_metrics(run)
    train_recs = [r for r in records if not r.get("validation")]
    assert [r["step"] for r in train_recs] == list(range(1, 25))
    for r in train_recs:
        for key in ("loss", "loss_disc", "mel_l1", "loss_fm", "loss_adv"):
            assert math.isfinite(r[key]), (key, r)
    val = [r for r in records if r.get("validation")]
    assert val and math.isfinite(val[-1]["val_mel_l1"]) and math.isfinite(val[-1]["val_mr_stft"])
    # one validation clip saved with its reference
    wavs = sorted(p.name for p in (run / "samples" / "step_00000024").glob("*.wav"))
    assert len(wavs) == 2 and any(n.endswith("_ref.wav") for n in wavs)
    val_stem = (ws / "training" / "demo" / "validation.txt").read_text().split("|")[0].split("/")[-1][:-4]
    assert f"{val_stem}.wav" in wavs
    # jik876 exports of the newest state (the best validation is the same step here), with a config.json
    # other tools read; the step-12 export was pruned (export_every_save: false), its state is kept
    ck = run / "checkpoints"
    assert (ck / "g_00000024").is_file() and (ck / "do_00000024").is_file()
    assert not (ck / "g_00000012").exists() and (run / "states" / "step_00000012.pt").is_file()
    cfg_json = json.loads((ck / "config.json").read_text())
    assert cfg_json["upsample_rates"] == [8, 8, 4] and cfg_json["num_mels"] == 80 and cfg_json["batch_size"] == 2
    do = torch.load(ck / "do_00000024", map_location="cpu")
    assert set(do) == {"mpd", "msd", "optim_g", "optim_d", "steps", "epoch"} and do["steps"] == 24
    # the state and the exported g_ give the same generator
    state = run / "states" / "step_00000024.pt"
    mel = torch.randn(1, 80, 12)
    with torch.no_grad():
        a = load_generator(state)(mel)
        b = load_generator(ck / "g_00000024")(mel)
        c = load_generator(run)(mel)  # a run folder: its newest state
    assert a.shape == (1, 1, 12 * 256)
    assert torch.equal(a, b) and torch.equal(a, c)
    assert (ws / "training" / "demo" / "cache").is_dir()  # the decoded-audio cache


def test_mel_error_falls_when_overfitting_one_batch(ws):
    # a dataset of one clip exactly one segment long: every step sees the same batch
    wave, sr = sf.read(ws / "training" / "demo" / "audio" / sorted(
        p.name for p in (ws / "training" / "demo" / "audio").glob("*.wav"))[0], dtype="float32")
    start = len(wave) // 2 - 1024
    sf.write(ws / "training" / "demo" / "audio" / "one.wav", wave[start:start + 2048], sr, subtype="PCM_16")
    (ws / "training" / "demo" / "train.txt").write_text("audio/one.wav|one\n")
    cfg = tiny_config(batch_size=1, max_steps=40, save_every_steps=None, learning_rate=1e-3)
    assert train(ws, cfg) == 0
    mel = [r["mel_l1"] for r in read_metrics(run_dir(ws)) if not r.get("validation")]
    assert len(mel) == 40
    assert np.mean(mel[-5:]) < 0.7 * np.mean(mel[:5]), mel


def test_bit_exact_resume_and_truncated_state(ws):
    cfg = tiny_config(batch_size=4, max_steps=10, save_every_steps=5)  # 7 steps per epoch: crosses an epoch
    assert train(ws, cfg, name="straight") == 0
    straight = state_models(run_dir(ws, "straight") / "states" / "step_00000010.pt")

    assert train(ws, tiny_config(batch_size=4, max_steps=5, save_every_steps=5), name="halves") == 0
    assert train(ws, cfg, name="halves", resume="latest") == 0
    resumed = state_models(run_dir(ws, "halves") / "states" / "step_00000010.pt")
    for model in ("generator", "mpd", "msd"):
        for key, value in straight[model].items():
            assert torch.equal(value, resumed[model][key]), (model, key)
    assert torch.equal(
        torch.load(run_dir(ws, "straight") / "checkpoints" / "g_00000010")["generator"]["conv_pre.weight_v"],
        torch.load(run_dir(ws, "halves") / "checkpoints" / "g_00000010")["generator"]["conv_pre.weight_v"])

    # a truncated newest state: resume warns and continues from the previous one
    cfg12 = tiny_config(batch_size=4, max_steps=12, save_every_steps=5)
    newest = run_dir(ws, "halves") / "states" / "step_00000010.pt"
    newest.write_bytes(newest.read_bytes()[:4096])
    assert train(ws, cfg12, name="halves", resume="latest") == 0
    status = json.loads((run_dir(ws, "halves") / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == 12
    log = (run_dir(ws, "halves") / "train.log").read_text()
    assert "step_00000010.pt" in log and "truncated or corrupt" in log


def test_finetune_from_jik876_fixture(ws, shared):
    compat = shared / "compat" / "hifigan"
    base = ws / "models" / "hifigan" / "v2"
    base.mkdir(parents=True)
    shutil.copy(compat / "generator_v2" / "g_00001234", base / "g_00001234")
    shutil.copy(compat / "config_v2.json", base / "config.json")
    cfg = tiny_config(max_steps=2, save_every_steps=2, base="models/hifigan/v2/g_00001234")
    cfg["hifigan"] = {"preset": "v2", "segment_size": 2048, "discriminator_width": 0.0625}

    # no do_ beside the g_ file: a clear error unless fresh discriminators are asked for
    with pytest.raises(UserError, match="do_00001234"):
        train(ws, cfg, name="ft")
    cfg["hifigan"]["fresh_discriminators"] = True

    # the recipe starts from exactly the fixture's weights
    from modules.config.schema import config_from_dict
    from modules.hifigan.recipe import HifiganRecipe

    recipe = HifiganRecipe(config_from_dict(cfg), ws / "training" / "demo", torch.device("cpu"), ws)
    gen = recipe.build_models()["generator"].eval()
    mel = torch.from_numpy(np.load(compat / "generator_v2" / "mel_in.npy"))
    with torch.no_grad():
        assert np.abs(gen(mel).numpy() - np.load(compat / "generator_v2" / "wave_out.npy")).max() < 1e-4

    assert train(ws, cfg, name="ft2") == 0
    ck = run_dir(ws, "ft2") / "checkpoints"
    tuned = torch.load(ck / "g_00000002", map_location="cpu")["generator"]
    orig = torch.load(compat / "generator_v2" / "g_00001234", map_location="cpu")["generator"]
    assert set(tuned) == set(orig)
    assert not torch.equal(tuned["conv_pre.weight_v"], orig["conv_pre.weight_v"])
    assert json.loads((ck / "config.json").read_text())["upsample_initial_channel"] == 128

    # a preset that does not match the base: the error names config.json's values
    cfg_bad = tiny_config(max_steps=2, base="models/hifigan/v2/g_00001234",
                          hifigan={"fresh_discriminators": True})
    with pytest.raises(UserError, match="upsample_initial_channel: 128"):
        train(ws, cfg_bad, name="ft3")


def test_finetune_from_our_export_carries_optimizer_state(ws):
    assert train(ws, tiny_config(max_steps=3, save_every_steps=3), name="first") == 0
    g = "training/demo/runs/first/checkpoints/g_00000003"
    assert train(ws, tiny_config(max_steps=2, save_every_steps=2, base=g), name="second") == 0
    state = torch.load(run_dir(ws, "second") / "states" / "step_00000002.pt", map_location="cpu", weights_only=False)
    adam_steps = {float(s["step"]) for s in state["optimizers"]["generator"]["state"].values()}
    assert adam_steps == {5.0}  # 3 steps carried over from the do_ file + 2 here
    # reset_lr: fresh optimizers
    cfg = tiny_config(max_steps=2, save_every_steps=2, base=g, hifigan={"reset_lr": True})
    assert train(ws, cfg, name="third") == 0
    state = torch.load(run_dir(ws, "third") / "states" / "step_00000002.pt", map_location="cpu", weights_only=False)
    assert {float(s["step"]) for s in state["optimizers"]["generator"]["state"].values()} == {2.0}


def _write_features(ws, channels: int, mismatch: dict[str, int]) -> None:
    """Deterministic [C, T] features beside each clip (a fixed projection of its mel),
    T = samples // 256 (+ offsets)."""
    from modules.audio import mel_spectrogram

    proj = torch.randn(channels, 80, generator=torch.Generator().manual_seed(0)) / 9
    for wav in sorted((ws / "training" / "demo" / "audio").glob("*.wav")):
        wave, sr = sf.read(wav, dtype="float32")
        n = len(wave) // 256 * 256
        mel = mel_spectrogram(torch.from_numpy(wave[:n])[None], sample_rate=sr, n_fft=1024, num_mels=80,
                              hop_size=256, win_size=1024, fmin=0, fmax=8000)[0]
        feats = (proj @ mel).numpy()
        extra = mismatch.get(wav.stem, 0)
        if extra > 0:
            feats = np.concatenate([feats, feats[:, -extra:]], axis=1)
        elif extra < 0:
            feats = feats[:, :extra]
        np.save(wav.with_suffix(".npy"), feats.astype(np.float32))


def test_precomputed_features_with_12_channels(ws):
    audio = sorted(p.stem for p in (ws / "training" / "demo" / "audio").glob("*.wav"))
    _write_features(ws, 12, {audio[0]: 2, audio[1]: -1})  # 1-2 frame mismatches are cropped
    cfg = tiny_config(max_steps=3, save_every_steps=3, validate_every_steps=3, hifigan={"features": "files"})
    assert train(ws, cfg) == 0
    run = run_dir(ws)
    ck = run / "checkpoints"
    assert json.loads((ck / "config.json").read_text())["num_mels"] == 12
    gen = load_generator(ck / "g_00000003")
    assert gen.conv_pre.weight_v.shape[1] == 12
    with torch.no_grad():
        assert gen(torch.randn(1, 12, 7)).shape == (1, 1, 7 * 256)
    assert any(r.get("validation") for r in read_metrics(run))

    _write_features(ws, 12, {audio[3]: 5})  # a 5-frame mismatch: clear error naming the file
    with pytest.raises(UserError, match=f"{audio[3]}.npy"):
        train(ws, cfg, name="bad")


def test_tortoise_mel_features(ws, shared):
    cfg = tiny_config(max_steps=2, save_every_steps=2, hifigan={"features": "tortoise_mel"})
    with pytest.raises(UserError, match="mel_norms.pth"):
        train(ws, cfg, name="tm")
    (ws / "models" / "tortoise").mkdir(parents=True)
    shutil.copy(shared / "compat" / "tortoise" / "mel_norms.pth", ws / "models" / "tortoise" / "mel_norms.pth")
    assert train(ws, cfg, name="tm2") == 0
    cfg_json = json.loads((run_dir(ws, "tm2") / "checkpoints" / "config.json").read_text())
    assert cfg_json["voicetune_features"] == "tortoise_mel"
