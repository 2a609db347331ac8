"""tortoise's HiFi-GAN decoder fine-tuned on a GPT's teacher-forced latents, on the real trainer core."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.autoregressive.test_ar_recipe import make_ar_workspace
from tests.helpers.decoder_helpers import write_small_decoders

torch.set_num_threads(1)
GPT = "models/ar/00000000_gpt.pth"
TINY_SETS = ["gpus=0", "num_workers=0", "precision=fp32", "log_every_steps=2", "save_every_steps=null",
             "validate_every_steps=null", "validation_samples=1", "hifidecoder.sample_max_mel_tokens=12",
             f"hifidecoder.gpt_checkpoint={GPT}", "evaluation.enabled=false", "learning_rate=0.001",
             "lr_schedule.type=constant", "hifidecoder.segment_latents=4"]


def write_tiny_gpt(root: Path, rel: str = GPT, seed: int = 0) -> Path:
    """A random tiny UnifiedVoice exported the way an autoregressive run exports one (+ its .json)."""
    from modules.autoregressive.checkpoint import build_unified_voice, save_unified_voice
    from modules.autoregressive.options import PRESETS
    from modules.fileutil import atomic_write_json

    hp = PRESETS["tiny"]["autoregressive"]
    torch.manual_seed(seed)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    save_unified_voice(build_unified_voice(hp), path)
    atomic_write_json(path.with_suffix(".json"), {"step": 0, "hyperparameters": hp})
    return path


@pytest.fixture(scope="module")
def dec_root(tmp_path_factory) -> Path:
    root = make_ar_workspace(tmp_path_factory.mktemp("decws"), n_train=8, n_val=2)
    write_tiny_gpt(root)
    write_small_decoders(root / "models" / "tortoise", ("hifidecoder",))
    return root


def tiny(root: Path, name: str, sets: list[str]):
    from modules.config.schema import apply_overrides, default_config, save_config

    cfg = apply_overrides(default_config("hifidecoder", "training/demo", preset="tiny"), TINY_SETS + sets)
    path = root / "training" / "demo" / "configs" / f"{name}.yaml"
    save_config(cfg, path)
    return cfg, path


def train(root: Path, name: str, sets: list[str], resume: str | None = None) -> Path:
    from modules.trainer.core import Trainer
    from modules.workspace import Workspace

    cfg, path = tiny(root, name, sets)
    assert Trainer(cfg, Workspace.open(root), config_path=path, resume=resume).run() == 0
    return root / "training" / "demo" / "runs" / name


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def recipe_for(root: Path, sets: list[str]):
    from modules.hifidecoder.recipe import HifidecoderRecipe

    cfg, _ = tiny(root, "probe", sets)
    return HifidecoderRecipe(cfg, root / "training" / "demo", torch.device("cpu"), root)


def test_latents_are_the_fast_api_latents_of_the_fixture(shared):
    """A clip's teacher-forced latents are tortoise's api_fast latent pass over its codes + stop token."""
    from modules.autoregressive import load_unified_voice
    from modules.hifidecoder.latent_cache import teacher_forced_latents

    d = shared / "compat" / "tortoise_decoders" / "unified_voice"
    hp = json.loads((d / "hyperparameters.json").read_text())["constructor_kwargs"]
    io = torch.load(d / "io.pt", weights_only=True)
    gpt = load_unified_voice(d / "state_dict.pt", hp)
    ids = io["input.api.text_tokens"][0, :-1]
    raw = io["input.api.codes_raw"][0]
    assert int(raw[-1]) == gpt.stop_mel_token
    [latents] = teacher_forced_latents(gpt, io["tortoise.auto_latent"], [(ids, raw[:-1])])
    torch.testing.assert_close(latents, io["tortoise.api_fast.latents"][0], atol=1e-4, rtol=0)

    # batched with another clip of the same text length and fewer codes: each as its own call gives
    other = (ids.flip(0), raw[:-1][:20])
    batched = teacher_forced_latents(gpt, io["tortoise.auto_latent"], [(ids, raw[:-1]), other], batch_size=2)
    alone = teacher_forced_latents(gpt, io["tortoise.auto_latent"], [other])
    assert batched[1].shape == (21, 64)
    torch.testing.assert_close(batched[0], latents, atol=1e-5, rtol=0)
    torch.testing.assert_close(batched[1], alone[0], atol=1e-5, rtol=0)


def test_latent_cache_follows_the_checkpoint(dec_root, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(dec_root, root, ignore=shutil.ignore_patterns("runs"))
    cache = root / "training" / "demo" / "cache"
    first, _, audio_22k = recipe_for(root, [])._latent_set("train.txt")
    files = sorted(cache.glob("hifidecoder-latents-train-*.pt"))
    assert [f.name for f in files] == [f"hifidecoder-latents-train-{first.key}.pt"]
    assert len(first.latents) == len(first.rows) == 8
    for row, lat in zip(first.rows, first.latents):  # one per code (wav // 1024 + 1) + the stop token's
        assert lat.shape == (audio_22k.length(row) // 1024 + 2, 64)
    again = recipe_for(root, [])._latent_set("train.txt")[0]
    assert again.key == first.key and torch.equal(again.latents[0], first.latents[0])

    write_tiny_gpt(root, "models/ar/00000010_gpt.pth", seed=1)  # another checkpoint
    other = recipe_for(root, ["hifidecoder.gpt_checkpoint=models/ar/00000010_gpt.pth"])._latent_set("train.txt")[0]
    assert other.key != first.key
    assert not torch.allclose(other.latents[0], first.latents[0])
    # both GPTs' latents stay cached (two decoder runs on one dataset do not evict each other)
    assert sorted(f.name for f in cache.glob("hifidecoder-latents-train-*.pt")) == sorted(
        f"hifidecoder-latents-train-{k}.pt" for k in (first.key, other.key))
    # an edited transcript is other latents too
    lines = (root / "training/demo/train.txt").read_text().splitlines()
    lines[0] = lines[0].split("|")[0] + "|A different sentence altogether."
    (root / "training/demo/train.txt").write_text("\n".join(lines) + "\n")
    assert recipe_for(root, [])._latent_set("train.txt")[0].key not in (first.key, other.key)


def test_texts_too_long_for_the_latent_pass_are_skipped(dec_root, tmp_path):
    """The latent pass adds a stop-text token: a text at the GPT's full text length is skipped, not a crash."""
    root = tmp_path / "ws"
    shutil.copytree(dec_root, root, ignore=shutil.ignore_patterns("runs", "cache"))
    recipe = recipe_for(root, [])
    limit = recipe.source().gpt.max_text_tokens
    lines = (root / "training/demo/train.txt").read_text().splitlines()
    tok = recipe.source().tokenizer
    words, text = "one two three four five six seven eight nine ten".split(), "one"
    while len(tok.encode(text)) < limit:
        text += " " + words[len(text) % len(words)]
    while len(tok.encode(text)) > limit:
        text = text[:-1].rstrip()
    assert len(tok.encode(text)) == limit, len(tok.encode(text))
    lines[0] = lines[0].split("|")[0] + "|" + text
    (root / "training/demo/train.txt").write_text("\n".join(lines) + "\n")
    latents = recipe._latent_set("train.txt")[0]
    assert len(latents.rows) == 7 and 0 not in latents.rows


def test_crops_line_up_latent_frames_and_audio(dec_root):
    from modules.autoregressive.hifi_decoder import upsample_latents
    from modules.hifidecoder.data import crop_frames

    recipe = recipe_for(dec_root, [])
    ds = recipe.train_dataset()
    assert crop_frames(32) == 139 and crop_frames(8) == 34 and crop_frames(4) == 17
    ds.set_epoch(3)
    item = ds[1]
    full = upsample_latents(ds.set.latents[1].unsqueeze(0))[0]
    assert item["latents"].shape == (64, 17) and item["audio"].shape == (17 * 256,)
    # the crop is a window of the whole clip's interpolated input, and its audio the same window
    starts = [s for s in range(full.shape[-1] - 16) if torch.equal(full[:, s:s + 17], item["latents"])]
    assert len(starts) == 1
    wave = torch.from_numpy(ds.audio.clip(ds.set.rows[1]))
    s = starts[0] * 256
    torch.testing.assert_close(item["audio"][: max(0, min(17 * 256, len(wave) - s))],
                               wave[s:s + 17 * 256], atol=0, rtol=0)
    assert torch.equal(ds[1]["latents"], item["latents"])  # (seed, epoch, index) decide the crop


@pytest.fixture(scope="module")
def run(dec_root) -> Path:
    return train(dec_root, "ft", ["max_steps=60", "validate_every_steps=30", "save_every_steps=30",
                                  "hifidecoder.discriminator_warmup_steps=4"])


def test_fine_tune_losses_fall_and_validates(run, dec_root):
    recs = [r for r in records(run) if not r.get("validation")]
    mel = [r["mel_l1"] for r in recs]
    assert len(mel) == 30
    assert np.mean(mel[-5:]) < 0.8 * np.mean(mel[:5]), mel
    val = [r for r in records(run) if r.get("validation")]
    assert [r["step"] for r in val] == [30, 60] and all(np.isfinite(r["val_mel_l1"]) for r in val)
    log = (run / "train.log").read_text()
    assert "discriminators start fresh" in log


def test_warm_up_leaves_the_generator_as_the_base(dec_root):
    from modules.autoregressive.checkpoint import read_state_dict

    base = read_state_dict(dec_root / "models" / "tortoise" / "hifidecoder.pth", "decoder")
    fresh_mpd = recipe_for(dec_root, []).build_models()["mpd"].state_dict()
    for name, warm in (("warm", 3), ("cold", 0)):
        r = train(dec_root, name, ["max_steps=3", "save_every_steps=3",
                                   f"hifidecoder.discriminator_warmup_steps={warm}"])
        state = torch.load(r / "states" / "step_00000003.pt", weights_only=False)["models"]
        same = all(torch.equal(v, state["generator"][k]) for k, v in base.items())
        assert same == (warm == 3), name  # warm-up: the generator is still exactly the base
        assert not all(torch.equal(v, state["mpd"][k]) for k, v in fresh_mpd.items()), name  # the MPD trained


def test_validation_samples_at_24k_with_the_base_rendering_first(run):
    first, second = run / "samples" / "step_00000030", run / "samples" / "step_00000060"
    wave, sr = sf.read(first / "sample00.wav")
    base, base_sr = sf.read(first / "sample00_base.wav")
    ref, ref_sr = sf.read(first / "sample00_ref.wav")
    assert sr == base_sr == ref_sr == 24000
    assert len(wave) == len(base) and len(wave) % 256 == 0 and np.isfinite(wave).all()
    assert not np.array_equal(wave, base)
    info = json.loads((first / "samples.json").read_text())
    assert info["sample00_base"]["comparison"] is True and "base decoder" in info["sample00_base"]["rendered_by"]
    assert info["sample00"]["text"] and "comparison" not in info["sample00"]
    # later validations: this run's decoder only, the same codes (same length) every time
    assert not (second / "sample00_base.wav").exists()
    assert len(sf.read(second / "sample00.wav")[0]) == len(wave)
    from modules.evaluation import store

    assert store.sample_names(run, 30) == ["sample00"]  # the base's rendering is never scored


def test_resume_refuses_a_different_gpt(dec_root, tmp_path):
    from modules.errors import UserError

    root = tmp_path / "ws"
    shutil.copytree(dec_root, root, ignore=shutil.ignore_patterns("runs"))
    (root / "models/ar2").mkdir()
    shutil.copy(root / GPT, root / "models/ar2/00000000_gpt.pth")
    shutil.copy(root / GPT.replace(".pth", ".json"), root / "models/ar2/00000000_gpt.json")
    sets = ["max_steps=2", "save_every_steps=2", "hifidecoder.gpt_checkpoint=models/ar2"]
    train(root, "pinned", sets)
    write_tiny_gpt(root, "models/ar2/00000004_gpt.pth", seed=5)  # the folder now has a newer GPT
    with pytest.raises(UserError, match="learned from the GPT .*00000000_gpt.pth"):
        train(root, "pinned", sets[1:] + ["max_steps=4"], resume="latest")


def test_the_generator_schedule_waits_for_the_warm_up(dec_root):
    r = train(dec_root, "sched", ["max_steps=6", "save_every_steps=6", "lr_schedule.type=exponential",
                                  "lr_schedule.gamma=0.5", "hifidecoder.discriminator_warmup_steps=4",
                                  "log_every_steps=1"])
    recs = [x for x in records(r) if not x.get("validation")]
    gen = [x["lr_generator"] for x in recs]
    disc = [x["lr_discriminator"] for x in recs]
    assert gen[:5] == [0.001] * 5 and disc[0] == 0.001 and disc[-1] < 0.001, (gen, disc)


def test_bit_exact_resume(dec_root):
    straight = train(dec_root, "straight", ["max_steps=8", "save_every_steps=4"])
    train(dec_root, "halves", ["max_steps=4", "save_every_steps=4"])
    halves = train(dec_root, "halves", ["max_steps=8", "save_every_steps=4"], resume="latest")
    a = torch.load(straight / "states" / "step_00000008.pt", weights_only=False)["models"]
    b = torch.load(halves / "states" / "step_00000008.pt", weights_only=False)["models"]
    for model in ("generator", "mpd", "msd"):
        for key, value in a[model].items():
            assert torch.equal(value, b[model][key]), (model, key)
    assert [r["mel_l1"] for r in records(straight) if not r.get("validation")] == \
        [r["mel_l1"] for r in records(halves) if not r.get("validation")]


def test_export_drops_into_tortoise(run, shared):
    from modules.autoregressive.hifi_decoder import build_hifi_decoder, load_hifi_decoder
    from modules.hifidecoder.files import tortoise_hyperparameters
    from modules.hifidecoder.options import PRESETS, TORTOISE_SIZE

    exported = run / "checkpoints" / "00000060_hifidecoder.pth"
    sd = torch.load(exported, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in sd.values())  # a plain state dict, as tortoise's file
    decoder = load_hifi_decoder(exported)  # strict, sizes from the .json beside it
    state = torch.load(run / "states" / "step_00000060.pt", weights_only=False)["models"]["generator"]
    assert set(decoder.state_dict()) == set(sd) == set(state)
    assert all(torch.equal(decoder.state_dict()[k], v) for k, v in state.items())
    meta = json.loads(exported.with_suffix(".json").read_text())
    assert meta["hyperparameters"]["in_channels"] == 64 and meta["step"] == 60

    # at tortoise's size the recipe builds exactly the full-size manifest's arguments, keys and shapes
    manifest = json.loads((shared / "compat/tortoise_decoders/hifidecoder/manifest_full.json").read_text())
    hp = tortoise_hyperparameters(PRESETS["tortoise"]["hifidecoder"], 1024)
    assert PRESETS["tortoise"]["hifidecoder"] == TORTOISE_SIZE and hp == manifest["constructor_kwargs"]
    full = build_hifi_decoder(hp, device="meta").state_dict()
    assert sorted(full) == sorted(manifest["state_dict"])
    assert all(list(full[k].shape) == m["shape"] for k, m in manifest["state_dict"].items())


def test_try_it_speaks_with_the_runs_gpt_and_this_decoder(run, dec_root):
    """Try it on a decoder run: the GPT it learned from samples the codes, its export (or a state) renders."""
    from app.try_it import _speech, speak_text
    from modules.workspace import Workspace

    ws = Workspace.open(dec_root)
    clip = "training/demo/audio/" + sorted(p.name for p in (dec_root / "training/demo/audio").glob("*.wav"))[0]
    for rel in ("checkpoints/00000060_hifidecoder.pth", "states/step_00000030.pt"):
        out = speak_text(ws, str(Path("training/demo/runs/ft") / rel), clip, "Hello there.")
        wave, sr = sf.read(out)
        assert sr == 24000 and len(wave) >= 256 and np.isfinite(wave).all(), rel
        models = _speech(ws, run / rel, {"gpt_checkpoint": GPT, "sample_max_mel_tokens": 12})
        assert models.decoder.choice.kind == "fast" and "hifidecoder" in models.decoder.label()
        assert Path(models.decoder.choice.files["hifidecoder"]).parent.name in ("checkpoints", "decoders")
    assert (run / "try_it" / "decoders" / "step_00000030_hifidecoder.pth").is_file()


def test_two_process_ddp_trains_the_same_decoder(dec_root):
    """torchrun (gloo) with 2 processes x batch 1 = 1 process x batch 2: the same exported decoder."""
    import subprocess
    import sys

    from tests.conftest import REPO, python_env

    env = {**python_env(), "OMP_NUM_THREADS": "1"}
    out = {}
    for name, sets, gpus in (("one", ["batch_size=2"], None), ("two", ["batch_size=1"], "2")):
        _, path = tiny(dec_root, name, sets + ["max_steps=3", "save_every_steps=3", "log_every_steps=1"])
        args = [sys.executable, "-m", "modules", "--workspace", str(dec_root), "train", str(path)]
        args += ["--gpus", gpus] if gpus else []
        proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        out[name] = torch.load(dec_root / "training/demo/runs" / name / "checkpoints/00000003_hifidecoder.pth",
                               weights_only=True)
    assert "2 process(es)" in (dec_root / "training/demo/runs/two/train.log").read_text()
    # the same data split and gradient averaging: the first step's losses agree ...
    first = {n: next(r for r in records(dec_root / "training/demo/runs" / n) if not r.get("validation"))
             for n in ("one", "two")}
    for key in ("mel_l1", "loss_disc", "loss_fm", "loss_adv"):
        assert first["two"][key] == pytest.approx(first["one"][key], rel=1e-5), key
    # ... and the weights stay together. Not bit for bit: Adam's first steps move each weight by about
    # the learning rate whatever its gradient's size, so summation-order noise in small gradients shows
    # up in the weights; unsynchronised ranks would differ by the steps themselves (mean ~ lr)
    from modules.autoregressive.checkpoint import read_state_dict

    base = read_state_dict(dec_root / "models" / "tortoise" / "hifidecoder.pth", "decoder")
    flat = {n: torch.cat([out[n][k].flatten() for k in sorted(base)]) for n in out}
    moved = float((flat["one"] - torch.cat([base[k].flatten() for k in sorted(base)])).abs().mean())
    apart = float((flat["two"] - flat["one"]).abs().mean())
    assert moved > 1e-3 and apart < 0.05 * moved, (moved, apart)
