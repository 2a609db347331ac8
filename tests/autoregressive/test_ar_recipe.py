"""The autoregressive recipe on the real trainer core: a tiny UnifiedVoice trained on the demo voice."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import DEMO_VOICE, REPO, SHARED, python_env

torch.set_num_threads(1)

TINY_SETS = ["gpus=0", "num_workers=0", "precision=fp32", "batch_size=4", "learning_rate=0.001",
             "lr_schedule.type=constant", "log_every_steps=2", "save_every_steps=null", "validate_every_steps=null",
             "validation_samples=1", "autoregressive.sample_max_mel_tokens=12",
             "autoregressive.gradient_checkpointing=false",
             "evaluation.enabled=false"]  # validation scoring has its own tests (tests/evaluation/)


def make_ar_workspace(root: Path, n_train: int = 10, n_val: int = 2, extra_line: str | None = None) -> Path:
    """A workspace with training/demo (demo voice clips as 22,050 Hz wav) and models/tortoise/
    holding tortoise's tokenizer and mel norms plus a tiny random DVAE (codebook seeded from
    encoder frames so its codes vary)."""
    from modules.audio.io import read_audio, write_wav
    from modules.audio.tortoise_mel import TortoiseMel
    from modules.autoregressive.checkpoint import save_dvae
    from modules.autoregressive.dvae import DiscreteVAE

    ds = root / "training" / "demo"
    (ds / "audio").mkdir(parents=True)
    rows = [line.split("|") for line in (DEMO_VOICE / "metadata.csv").read_text(encoding="utf-8").splitlines()]
    lines = []
    for stem, text, *_ in rows[: n_train + n_val]:
        wave, _ = read_audio(DEMO_VOICE / f"{stem}.flac", sample_rate=22050)
        write_wav(ds / "audio" / f"{stem}.wav", wave, 22050)
        lines.append(f"audio/{stem}.wav|{text}")
    train = lines[:n_train] + ([extra_line] if extra_line else [])
    (ds / "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (ds / "validation.txt").write_text("\n".join(lines[n_train:]) + "\n", encoding="utf-8")
    tt = root / "models" / "tortoise"
    tt.mkdir(parents=True, exist_ok=True)
    shutil.copy(SHARED / "compat/tortoise/tokenizer.json", tt)
    shutil.copy(SHARED / "compat/tortoise/mel_norms.pth", tt)
    torch.manual_seed(0)
    dvae = DiscreteVAE(channels=80, codebook_dim=32, hidden_dim=32, num_layers=2, num_resnet_blocks=1, num_tokens=64)
    mel = TortoiseMel(tt / "mel_norms.pth")
    with torch.no_grad():
        frames = torch.cat([dvae.encoder(mel(torch.from_numpy(read_audio(ds / "audio" / f"{r[0]}.wav")[0])[None]))[0].T
                            for r in rows[:3]])
        pick = frames[torch.randperm(len(frames), generator=torch.Generator().manual_seed(1))[:64]]
        dvae.codebook.embed.copy_(pick.T)
        dvae.codebook.embed_avg.copy_(pick.T)
    save_dvae(dvae, tt / "dvae.pth")
    return root


def tiny_config(root: Path, name: str, sets: list[str]):
    from modules.config.schema import apply_overrides, default_config, save_config

    cfg = apply_overrides(default_config("autoregressive", "training/demo", preset="tiny"), TINY_SETS + sets)
    path = root / "training" / "demo" / "configs" / f"{name}.yaml"
    save_config(cfg, path)
    return cfg, path


def train(root: Path, name: str, sets: list[str], resume: str | None = None) -> Path:
    from modules.trainer.core import Trainer
    from modules.workspace import Workspace

    cfg, path = tiny_config(root, name, sets)
    code = Trainer(cfg, Workspace.open(root), config_path=path, resume=resume).run()
    assert code == 0
    return root / "training" / "demo" / "runs" / name


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def ar_root(tmp_path_factory, shared) -> Path:
    return make_ar_workspace(tmp_path_factory.mktemp("arws"), extra_line="audio/001.wav|Tom & Jerry")


@pytest.fixture(scope="module")
def scratch_run(ar_root) -> Path:
    return train(ar_root, "scratch", ["max_steps=40", "validate_every_steps=40", "save_every_steps=20"])


def test_tiny_model_from_scratch_losses_fall(scratch_run):
    recs = records(scratch_run)
    train_recs = [r for r in recs if not r.get("validation")]
    assert len(train_recs) >= 10
    for key in ("text_ce", "mel_ce"):
        first = np.mean([r[key] for r in train_recs[:3]])
        last = np.mean([r[key] for r in train_recs[-3:]])
        assert last < first - 0.3, (key, first, last)
    for r in train_recs:  # the total is the weighted sum (text 0.01, mel 1.0)
        assert r["loss"] == pytest.approx(0.01 * r["text_ce"] + r["mel_ce"], rel=1e-4)
    val = [r for r in recs if r.get("validation")]
    assert val and {"val_text_ce", "val_mel_ce", "val_loss", "val_mel_accuracy"} <= set(val[-1])
    assert 0.0 <= val[-1]["val_mel_accuracy"] <= 1.0


def test_validation_writes_playable_audio(scratch_run):
    folder = scratch_run / "samples" / "step_00000040"
    wave, sr = sf.read(folder / "sample00.wav")
    ref, ref_sr = sf.read(folder / "sample00_ref.wav")
    assert sr == ref_sr == 22050
    assert len(wave) >= 1024 and np.abs(wave).max() > 1e-3 and np.isfinite(wave).all()
    assert len(ref) > 22050  # the validation clip itself


def test_exported_checkpoint_is_a_tortoise_state_dict(scratch_run):
    from modules.autoregressive.checkpoint import build_unified_voice, load_unified_voice

    ckpts = sorted((scratch_run / "checkpoints").glob("*_gpt.pth"))
    assert [p.name for p in ckpts] == ["00000040_gpt.pth"]  # newest = best; step 20's export pruned
    meta = json.loads(ckpts[-1].with_suffix(".json").read_text())
    sd = torch.load(ckpts[-1], weights_only=True)
    fresh = build_unified_voice(meta["hyperparameters"], device="meta").state_dict()
    assert list(sd) == list(fresh) and all(sd[k].shape == fresh[k].shape for k in sd)
    model = load_unified_voice(ckpts[-1], meta["hyperparameters"])
    assert not model.training and model.layers == 2 and model.model_dim == 64


def test_unknown_characters_are_skipped_not_trained(ar_root, scratch_run):
    log = (scratch_run / "train.log").read_text()
    assert "Tom & Jerry" in log and "does not know" in log
    assert "10 train items" in log


def test_fine_tune_from_an_earlier_run(ar_root, scratch_run):
    """The base is an earlier run: its newest _gpt.pth loads strictly, and training continues from it."""
    run = train(ar_root, "finetune", ["max_steps=4", "base=training/demo/runs/scratch",
                                      "autoregressive.freeze_layers=1",
                                      "autoregressive.freeze_conditioning_encoder=true"])
    base = torch.load(scratch_run / "checkpoints" / "00000040_gpt.pth", weights_only=True)
    tuned = torch.load(run / "checkpoints" / "00000004_gpt.pth", weights_only=True)
    frozen = [k for k in base if k.startswith(("gpt.h.0.", "conditioning_encoder."))]
    assert frozen and all(torch.equal(base[k], tuned[k]) for k in frozen)
    assert not torch.equal(base["gpt.h.1.mlp.c_fc.weight"], tuned["gpt.h.1.mlp.c_fc.weight"])
    first = [r for r in records(run) if not r.get("validation")][0]
    scratch_first = [r for r in records(scratch_run) if not r.get("validation")][0]
    assert first["mel_ce"] < scratch_first["mel_ce"]  # it starts where the base left off


def test_check_base_reports_mismatched_sizes(ar_root, scratch_run):
    from modules.autoregressive.recipe import check_base

    cfg, _ = tiny_config(ar_root, "check_ok", [])
    ckpt = scratch_run / "checkpoints" / "00000040_gpt.pth"
    assert check_base(cfg, ckpt) == []
    bad, _ = tiny_config(ar_root, "check_bad", ["autoregressive.model_dim=32", "autoregressive.layers=3"])
    problems = check_base(bad, ckpt)
    assert any("lacks" in p and "gpt.h.2" in p for p in problems)
    assert any("model_dim" in p for p in problems)


def test_weight_decay_groups(ar_root):
    from modules.autoregressive.recipe import AutoregressiveRecipe

    cfg, _ = tiny_config(ar_root, "groups", [])
    recipe = AutoregressiveRecipe(cfg, ar_root / "training/demo", torch.device("cpu"), ar_root)
    models = recipe.build_models()
    decay, no_decay = recipe.optimizer_params(models)["gpt"]
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    model = models["gpt"]
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert "gpt.h.0.attn.c_attn.weight" in decayed and "mel_head.weight" in decayed
    assert not any(n.endswith("bias") or "embedding" in n or "ln_" in n or "norm" in n for n in decayed)
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    opt = recipe.build_optimizer("gpt", [decay, no_decay])
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["betas"] == (0.9, 0.96)


def test_items_depend_only_on_seed_epoch_index(ar_root):
    from modules.autoregressive.recipe import AutoregressiveRecipe

    cfg, _ = tiny_config(ar_root, "items", [])
    recipe = AutoregressiveRecipe(cfg, ar_root / "training/demo", torch.device("cpu"), ar_root)
    ds = recipe.train_dataset()
    ds.set_epoch(3)
    a = ds[2]
    ds.set_epoch(4)
    b = ds[2]
    ds.set_epoch(3)
    again = ds[2]
    assert a["cond"].shape == (2, 44000)
    assert torch.equal(a["cond"], again["cond"]) and not torch.equal(a["cond"], b["cond"])
    assert torch.equal(a["codes"], b["codes"]) and len(a["codes"]) == a["wav_length"] // 1024 + 1
    # conditioning never uses the item's own clip when others exist
    own = torch.from_numpy(ds.audio.clip(ds.entries[2].index))
    for clip in a["cond"]:
        windows = own.unfold(0, 1000, 1000)
        assert not any(torch.equal(clip[:1000], w) for w in windows)


def test_resume_is_bit_exact(ar_root):
    straight = train(ar_root, "straight", ["max_steps=6", "save_every_steps=3"])
    shutil.copytree(straight, ar_root / "training/demo/runs/resumed")
    for p in (ar_root / "training/demo/runs/resumed/states").glob("step_00000006*"):
        p.unlink()
    for p in (ar_root / "training/demo/runs/resumed/checkpoints").glob("00000006*"):
        p.unlink()
    resumed = train(ar_root, "resumed", ["max_steps=6", "save_every_steps=3", "run_name=resumed"], resume="latest")
    a = torch.load(straight / "checkpoints/00000006_gpt.pth", weights_only=True)
    b = torch.load(resumed / "checkpoints/00000006_gpt.pth", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.skipif(sys.platform != "linux", reason="gloo test run on Linux only")
def test_two_process_gloo_run(tmp_path, shared):
    root = make_ar_workspace(tmp_path / "ws", n_train=8, n_val=1)
    _, cfg_path = tiny_config(root, "ddp", ["max_steps=3", "batch_size=2", "validate_every_steps=3"])
    env = python_env()
    proc = subprocess.run([sys.executable, "-m", "modules", "--workspace", str(root), "train", str(cfg_path),
                           "--gpus", "2"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = root / "training/demo/runs/ddp"
    assert (run / "checkpoints/00000003_gpt.pth").is_file()
    assert (run / "samples/step_00000003/sample00.wav").is_file()
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished"


def test_synthesize_command_from_a_run(ar_root, scratch_run):
    from modules.cli import main

    out = ar_root / "out" / "hello.wav"
    code = main(["--workspace", str(ar_root), "synthesize", "--checkpoint", "training/demo/runs/scratch",
                 "--text", "Hello there.", "--reference", "training/demo/audio/001.wav", "training/demo/audio/002.wav",
                 "--out", str(out), "--max-tokens", "16", "--device", "cpu"])
    assert code == 0
    wave, sr = sf.read(out)
    assert sr == 22050 and 0 < len(wave) <= 16 * 1024 and np.isfinite(wave).all()
    # a text the tokenizer cannot spell is refused with a message, not synthesised
    assert main(["--workspace", str(ar_root), "synthesize", "--checkpoint", "training/demo/runs/scratch",
                 "--text", "a & b", "--reference", "training/demo/audio/001.wav", "--out", str(out),
                 "--device", "cpu"]) == 2


def test_new_tokenizer_resizes_the_text_embedding(ar_root, scratch_run, capsys):
    from modules.autoregressive.checkpoint import load_unified_voice
    from modules.autoregressive.tokenizer import train_bpe_tokenizer

    texts = [line.split("|", 1)[1] for line in (ar_root / "training/demo/train.txt").read_text().splitlines()]
    train_bpe_tokenizer(texts, 90, ar_root / "training/demo/tokenizer.json", language="other")
    run = train(ar_root, "newtok", ["max_steps=2", "base=training/demo/runs/scratch",
                                    "autoregressive.tokenizer=training/demo/tokenizer.json"])
    assert "text weights start fresh" in (run / "train.log").read_text()
    ckpt = run / "checkpoints" / "00000002_gpt.pth"
    meta = json.loads(ckpt.with_suffix(".json").read_text())
    vocab = meta["hyperparameters"]["number_text_tokens"]
    assert vocab <= 90 and vocab != 255 and meta["hyperparameters"]["start_text_token"] == vocab
    model = load_unified_voice(ckpt, meta["hyperparameters"])
    assert model.text_embedding.weight.shape[0] == vocab + 1 == model.text_head.weight.shape[0]
    base = torch.load(scratch_run / "checkpoints" / "00000040_gpt.pth", weights_only=True)
    # the rest came from the base
    assert torch.allclose(model.mel_embedding.weight, base["mel_embedding.weight"], atol=0.05)


def _codes_files(root: Path) -> list[Path]:
    return sorted((root / "training/demo/cache").glob("ar-codes-*.pt"))


def test_dvae_codes_are_cached_per_dataset_content_and_dvae(tmp_path, shared, monkeypatch):
    """Codes are computed once per (audio content, DVAE): a rebuild reuses them without the DVAE;
    new DVAE weights or re-prepared audio (same name and length) compute fresh ones."""
    from modules.audio.io import read_audio, write_wav
    from modules.autoregressive.checkpoint import save_dvae
    from modules.autoregressive.dvae import DiscreteVAE
    from modules.autoregressive.recipe import AutoregressiveRecipe

    root = make_ar_workspace(tmp_path / "ws", n_train=3, n_val=1)
    cfg, _ = tiny_config(root, "codes", [])

    def codes() -> list[torch.Tensor]:
        ds = AutoregressiveRecipe(cfg, root / "training/demo", torch.device("cpu"), root).train_dataset()
        return [ds[i]["codes"] for i in range(len(ds))]

    def refuse(self, mel):
        raise AssertionError("the DVAE ran although its codes were cached")

    first = codes()
    files = _codes_files(root)
    assert len(files) == 1 and len(first) == 3
    with monkeypatch.context() as m:
        m.setattr(DiscreteVAE, "get_codebook_indices", refuse)
        again = codes()
    assert _codes_files(root) == files
    assert all(torch.equal(a, b) for a, b in zip(first, again))

    # other DVAE weights under the same file name and size
    dvae_path = root / "models/tortoise/dvae.pth"
    old_size = dvae_path.stat().st_size
    torch.manual_seed(7)
    save_dvae(DiscreteVAE(channels=80, codebook_dim=32, hidden_dim=32, num_layers=2, num_resnet_blocks=1,
                          num_tokens=64), dvae_path)
    assert dvae_path.stat().st_size == old_size
    codes()
    after_dvae = _codes_files(root)
    assert len(after_dvae) == 2

    # the first clip re-prepared: same name, same length, other samples
    wav = root / "training/demo" / (root / "training/demo/train.txt").read_text().split("|", 1)[0]
    wave, sr = read_audio(wav)
    write_wav(wav, np.ascontiguousarray(wave[::-1]), sr)
    assert read_audio(wav)[0].shape == wave.shape
    changed = codes()
    assert len(_codes_files(root)) == 3
    assert len(changed[0]) == len(first[0]) and not torch.equal(changed[0], again[0])


def test_codes_key_follows_samples_not_names(tmp_path, shared):
    """Two audio caches with the same clip names and lengths but other samples get other keys."""
    from modules.audio.tortoise_mel import TortoiseMel
    from modules.autoregressive.data import codes_key
    from modules.hifigan.data import AudioCache

    dvae = tmp_path / "dvae.pth"
    dvae.write_bytes(b"weights")
    mel = TortoiseMel(SHARED / "compat/tortoise/mel_norms.pth")
    offsets = np.array([0, 3, 5], dtype=np.int64)
    a = AudioCache(np.array([1, 2, 3, 4, 5], dtype=np.int16), offsets, ["/x/a.wav", "/x/b.wav"], 22050)
    b = AudioCache(np.array([1, 2, 3, 4, 6], dtype=np.int16), offsets, ["/x/a.wav", "/x/b.wav"], 22050)
    same = AudioCache(np.array([1, 2, 3, 4, 5], dtype=np.int16), offsets.copy(), ["/x/a.wav", "/x/b.wav"], 22050)
    assert codes_key(a, mel, dvae) == codes_key(same, mel, dvae)
    assert codes_key(a, mel, dvae) != codes_key(b, mel, dvae)
    before = codes_key(a, mel, dvae)
    dvae.write_bytes(b"weightz")  # same name and size, other bytes
    assert codes_key(a, mel, dvae) != before


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_run_on_the_cpu(ar_root, precision):
    """A 2-step run under CPU autocast (fp16 adds the gradient scaler) exits 0 with finite losses."""
    run = train(ar_root, f"precision_{precision}", ["max_steps=2", f"precision={precision}"])
    train_recs = [r for r in records(run) if not r.get("validation")]
    assert train_recs and train_recs[-1]["step"] == 2
    for r in train_recs:
        assert np.isfinite(r["text_ce"]) and np.isfinite(r["mel_ce"]), r
    assert json.loads((run / "status.json").read_text())["state"] == "finished"


def test_optimizer_8bit_is_refused_without_cuda_or_bitsandbytes(ar_root, monkeypatch):
    """8-bit AdamW needs CUDA and bitsandbytes: the run stops with a UserError naming the key."""
    from modules.autoregressive.recipe import AutoregressiveRecipe
    from modules.errors import UserError
    from modules.trainer.core import Trainer
    from modules.workspace import Workspace

    cfg, path = tiny_config(ar_root, "adam8", ["max_steps=2", "autoregressive.optimizer_8bit=true"])
    with pytest.raises(UserError, match="optimizer_8bit needs a CUDA GPU"):
        Trainer(cfg, Workspace.open(ar_root), config_path=path).run()
    assert not list((ar_root / "training/demo/runs/adam8").glob("states/*.pt"))

    # on a CUDA device but without the package (simulated as not installed): the install hint
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    recipe = AutoregressiveRecipe(cfg, ar_root / "training/demo", torch.device("cpu"), ar_root)
    params = recipe.optimizer_params(recipe.build_models())["gpt"]
    recipe.device = torch.device("cuda")
    with pytest.raises(UserError, match="needs the bitsandbytes package"):
        recipe.build_optimizer("gpt", params)


def test_validation_samples_use_one_seed_per_text_at_every_step(ar_root):
    """Steps' samples are comparable: the same weights render the same audio at any step, and each
    sample says (and is scored against) its validation text."""
    from modules.autoregressive.recipe import AutoregressiveRecipe, text_seed

    cfg, _ = tiny_config(ar_root, "seeds", ["validation_samples=2"])
    recipe = AutoregressiveRecipe(cfg, ar_root / "training/demo", torch.device("cpu"), ar_root)
    model = recipe.build_models()["gpt"].eval()
    recipe.validation_dataset()
    early, late = recipe._samples(model, 2), recipe._samples(model, 4000)
    assert [s.text for s in early] == recipe._val_dataset.texts[:2] and all(early[0].text)
    for a, b in zip(early, late):
        assert torch.equal(a.wave, b.wave)
    assert text_seed(1, "one text") == text_seed(1, "one text") != text_seed(1, "another text")
    assert text_seed(1, "one text") != text_seed(2, "one text")
