"""Autoregressive samples rendered by a HiFi-GAN of this project trained on tortoise's mel space.

One workspace: the demo voice prepared for tortoise (tiny random DVAE), a tiny HiFi-GAN trained a
few steps with ``hifigan.features: tortoise_mel``, then a tiny UnifiedVoice whose validation samples
and ``synthesize`` output go through that HiFi-GAN instead of Griffin-Lim.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from modules.errors import UserError
from tests.autoregressive.test_ar_recipe import make_ar_workspace, records
from tests.autoregressive.test_ar_recipe import train as train_ar
from tests.helpers.hifigan_helpers import tiny_config as tiny_hifigan_config
from tests.helpers.hifigan_helpers import train as train_hifigan

torch.set_num_threads(1)

RUNS = "training/demo/runs"


@pytest.fixture(scope="module")
def ws(tmp_path_factory, shared) -> Path:
    return make_ar_workspace(tmp_path_factory.mktemp("arvoc"), n_train=6, n_val=1)


def _hifigan_run(ws: Path, name: str, features: str) -> Path:
    cfg = tiny_hifigan_config(max_steps=2, save_every_steps=2, hifigan={"features": features})
    assert train_hifigan(ws, cfg, name=name) == 0
    return ws / RUNS / name


@pytest.fixture(scope="module")
def voc_run(ws) -> Path:
    return _hifigan_run(ws, "voc", "tortoise_mel")


@pytest.fixture(scope="module")
def plain_run(ws) -> Path:
    return _hifigan_run(ws, "plain", "mel")


@pytest.fixture(scope="module")
def ar_run(ws, voc_run) -> Path:
    return train_ar(ws, "with_voc", ["max_steps=2", "validate_every_steps=2", f"autoregressive.vocoder={RUNS}/voc"])


def _hifigan_output_length(frames: int) -> int:
    return frames * 256  # HiFi-GAN: exactly one hop per frame (Griffin-Lim's iSTFT gives (frames - 1) * hop)


def test_validation_samples_use_the_hifigan_run(ar_run, voc_run):
    wave, sr = sf.read(ar_run / "samples" / "step_00000002" / "sample00.wav")
    assert sr == 22050  # the HiFi-GAN's sampling_rate (tortoise's mel space is 22,050 Hz)
    assert len(wave) > 0 and np.isfinite(wave).all() and np.abs(wave).max() > 0
    # each DVAE code decodes to 4 mel frames; the HiFi-GAN turns each into 256 samples
    assert len(wave) % _hifigan_output_length(4) == 0, len(wave)
    log = (ar_run / "train.log").read_text()
    assert "HiFi-GAN" in log and str(voc_run / "states") in log and "Griffin-Lim" not in log
    assert any(r.get("validation") for r in records(ar_run))


def test_griffin_lim_is_the_default_preview(ws):
    """Without tortoise's decoder files, auto falls back to the preview, rendered by Griffin-Lim."""
    from modules.autoregressive.decoders import PreviewDecoder
    from modules.autoregressive.recipe import AutoregressiveRecipe
    from modules.autoregressive.vocoding import GriffinLimVocoder
    from tests.autoregressive.test_ar_recipe import tiny_config as tiny_ar_config

    cfg, _ = tiny_ar_config(ws, "no_voc", [])
    recipe = AutoregressiveRecipe(cfg, ws / "training/demo", torch.device("cpu"), ws)
    decoder = recipe.decoder()
    assert isinstance(decoder, PreviewDecoder) and "Griffin-Lim" in decoder.label()
    voc = decoder.vocoder
    assert isinstance(voc, GriffinLimVocoder)
    n = len(voc(torch.zeros(80, 8)))
    assert n % 1024 != 0  # the length check above tells the two vocoders apart


def test_hifigan_vocoder_matches_the_generator(voc_run):
    """The vocoder is the trained generator applied to the tortoise mel, nothing else."""
    from modules.autoregressive.vocoding import HifiganVocoder
    from modules.hifigan import load_generator

    mel = torch.randn(80, 12)
    voc = HifiganVocoder(voc_run / "checkpoints" / "g_00000002")
    with torch.no_grad():
        expected = load_generator(voc_run / "states" / "step_00000002.pt")(mel[None]).reshape(-1).clamp(-1, 1)
    assert voc.sample_rate == 22050
    assert torch.allclose(voc(mel), expected)


def test_synthesize_with_the_hifigan_run(ws, ar_run, voc_run):
    from modules.cli import main

    out = ws / "out" / "hello.wav"
    code = main(["--workspace", str(ws), "synthesize", "--checkpoint", f"{RUNS}/with_voc", "--text", "Hello there.",
                 "--reference", "training/demo/audio/001.wav", "--vocoder", f"{RUNS}/voc/checkpoints/g_00000002",
                 "--out", str(out), "--max-tokens", "8", "--device", "cpu"])
    assert code == 0
    wave, sr = sf.read(out)
    assert sr == 22050 and 0 < len(wave) <= 8 * 1024 and np.isfinite(wave).all()
    assert len(wave) % 1024 == 0


def test_a_plain_mel_vocoder_is_refused(ws, ar_run, plain_run, capsys):
    from modules.autoregressive.vocoding import HifiganVocoder
    from modules.cli import main

    plain = plain_run
    for path in (plain, plain / "checkpoints" / "g_00000002"):
        with pytest.raises(UserError, match="trained with hifigan.features: mel\\.") as err:
            HifiganVocoder(path)
        assert "hifigan.features: tortoise_mel" in str(err.value) and "--vocoder" in str(err.value)
    # the CLI says so without a traceback
    code = main(["--workspace", str(ws), "synthesize", "--checkpoint", f"{RUNS}/with_voc", "--text", "Hello.",
                 "--reference", "training/demo/audio/001.wav", "--vocoder", f"{RUNS}/plain",
                 "--out", str(ws / "out" / "x.wav"), "--device", "cpu"])
    assert code == 2 and "tortoise_mel" in capsys.readouterr().err
    # a training run configured with it stops before its first step, naming the setting
    with pytest.raises(UserError, match="autoregressive.vocoder"):
        train_ar(ws, "plain_voc", ["max_steps=2", "validate_every_steps=2", f"autoregressive.vocoder={RUNS}/plain"])


def test_tortoise_mel_hifigan_must_match_tortoise_rate_and_hop(ws):
    """tortoise's mel is fixed at 22,050 Hz and hop 256: other values are refused before training."""
    from modules.config.schema import ConfigError, config_from_dict
    from modules.hifigan.recipe import HifiganRecipe

    for over in ({"sampling_rate": 24000}, {"upsample_rates": [8, 8, 5], "hop_size": 320, "segment_size": 2560}):
        raw = tiny_hifigan_config(hifigan={"features": "tortoise_mel", **over})
        with pytest.raises(ConfigError, match="tortoise_mel needs hifigan.sampling_rate 22050"):
            config_from_dict(raw)
        with pytest.raises(UserError, match="tortoise_mel needs hifigan.sampling_rate 22050"):
            HifiganRecipe(raw, ws / "training/demo", torch.device("cpu"), ws)  # a config built without the schema


def test_validate_flags_a_plain_mel_vocoder_before_the_run(ws, voc_run, plain_run):
    """The UI's Validate / ``config check`` read the vocoder's features from its config, no generator built."""
    from modules.config.plan import plan_run
    from tests.autoregressive.test_ar_recipe import tiny_config as tiny_ar_config

    def vocoder_errors(path: str) -> list:
        cfg, _ = tiny_ar_config(ws, "check_voc", [f"autoregressive.vocoder={path}"])
        return [w for w in plan_run(cfg, ws, gpus_available=0).warnings if w.key == "autoregressive.vocoder"]

    for path in (f"{RUNS}/plain", f"{RUNS}/plain/states/step_00000002.pt", f"{RUNS}/plain/checkpoints/g_00000002"):
        found = vocoder_errors(path)
        assert len(found) == 1 and found[0].level == "error", (path, found)
        assert "hifigan.features: mel." in found[0].message and "tortoise_mel" in found[0].fix, found[0]
    for path in (f"{RUNS}/voc", f"{RUNS}/voc/states/step_00000002.pt", f"{RUNS}/voc/checkpoints/g_00000002"):
        assert vocoder_errors(path) == [], path
    missing = vocoder_errors(f"{RUNS}/nowhere")
    assert len(missing) == 1 and missing[0].level == "error" and "does not exist" in missing[0].message
