"""Autoregressive samples rendered by tortoise's decoders: runs, Validate, synthesize, streaming."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from modules.errors import UserError
from tests.autoregressive.test_ar_recipe import make_ar_workspace, records, tiny_config, train
from tests.helpers.decoder_helpers import write_small_decoders

torch.set_num_threads(1)
RUNS = "training/demo/runs"


@pytest.fixture(scope="module")
def ws(tmp_path_factory, shared):
    root = make_ar_workspace(tmp_path_factory.mktemp("decws"))
    write_small_decoders(root / "models" / "tortoise")
    return root


@pytest.fixture(scope="module")
def runs(ws):
    sets = ["max_steps=2", "validate_every_steps=2", "save_every_steps=2", "validation_samples=2",
            "autoregressive.diffusion_steps=4"]
    return {kind: train(ws, f"dec_{kind}", sets + [f"autoregressive.decoder={kind}"])
            for kind in ("auto", "fast", "standard", "preview")}


@pytest.mark.parametrize("kind,rate,label", [("fast", 24000, "tortoise fast decoder (hifidecoder.pth)"),
                                             ("standard", 24000, "tortoise standard decoder (diffusion_decoder.pth, "
                                                                 "4 diffusion steps"),
                                             ("preview", 22050, "preview (DVAE mel"),
                                             ("auto", 24000, "tortoise fast decoder")])
def test_validation_samples_rendered_by_each_decoder(runs, kind, rate, label):
    run = runs[kind]
    folder = run / "samples" / "step_00000002"
    info = json.loads((folder / "samples.json").read_text())
    assert sorted(info) == ["sample00", "sample01"]
    for name, entry in info.items():
        assert entry["rendered_by"].startswith(label) and entry["sample_rate"] == rate, entry
        wave, sr = sf.read(folder / f"{name}.wav")
        ref, ref_sr = sf.read(folder / f"{name}_ref.wav")
        assert sr == rate and ref_sr == 22050  # the reference keeps the dataset's own rate
        assert len(wave) > 0 and np.isfinite(wave).all() and np.abs(wave).max() > 1e-4
        if kind in ("fast", "auto"):
            assert len(wave) % 256 == 0  # HiFi-GAN decoder: 256 samples per upsampled latent frame
    log = (run / "train.log").read_text()
    assert f"validation samples: rendered with {label}" in log
    assert f"validation samples (step 2): 2 rendered by {label}" in log
    assert any(r.get("validation") for r in records(run))


def test_decoders_are_loaded_once_per_process(ws):
    from modules.autoregressive.decoders import choose_decoder, default_files, loaded_decoder

    choice = choose_decoder("fast", default_files(ws / "models" / "tortoise"))
    assert loaded_decoder(choice) is loaded_decoder(choice)


def test_auto_falls_back_standard_then_preview(tmp_path):
    from modules.autoregressive.decoders import choose_decoder, default_files

    files = default_files(tmp_path)
    assert choose_decoder("auto", files).kind == "preview"
    write_small_decoders(tmp_path, ("diffusion",))
    assert choose_decoder("auto", files).kind == "preview"  # the diffusion decoder alone cannot make audio
    write_small_decoders(tmp_path, ("vocoder",))
    assert choose_decoder("auto", files, preset="ultra_fast").kind == "standard"
    assert choose_decoder("auto", files, preset="ultra_fast").steps == 30
    write_small_decoders(tmp_path, ("hifidecoder",))
    assert choose_decoder("auto", files).kind == "fast"
    with pytest.raises(UserError, match="hifidecoder.pth not found"):
        choose_decoder("fast", default_files(tmp_path / "none"))


def _decoder_errors(ws, sets):
    from modules.config.plan import plan_run

    cfg, _ = tiny_config(ws, "check_decoder", sets)
    return [w for w in plan_run(cfg, ws, gpus_available=0).warnings if "decoder" in w.key]


def test_validate_refuses_a_wrong_decoder_file_naming_it(ws, tmp_path):
    """A full-size-shaped expectation against the small file (no sidecar), and a missing file."""
    small = ws / "models" / "tortoise" / "hifidecoder.pth"
    bare = tmp_path / "hifidecoder.pth"
    bare.write_bytes(small.read_bytes())  # no .json beside it: the loader expects tortoise's full size
    found = _decoder_errors(ws, ["autoregressive.decoder=fast", f"autoregressive.hifi_decoder={bare}"])
    assert found and all(w.level == "error" for w in found), found
    assert str(bare) in found[0].message and "hifidecoder.pth" in found[0].message and "differ in shape" in \
        " ".join(w.message for w in found)
    missing = _decoder_errors(ws, ["autoregressive.decoder=standard",
                                   f"autoregressive.diffusion_decoder={tmp_path / 'nowhere.pth'}"])
    assert len(missing) == 1 and missing[0].level == "error" and "nowhere.pth not found" in missing[0].message
    assert _decoder_errors(ws, ["autoregressive.decoder=fast"]) == []
    assert _decoder_errors(ws, ["autoregressive.decoder=standard"]) == []


def test_validate_refuses_a_decoder_for_another_gpt_width(ws, tmp_path):
    other = tmp_path / "wide"
    from tests.helpers.decoder_helpers import SMALL

    SMALL_WIDE = {**SMALL["hifidecoder"], "in_channels": 32, "cond_channels": 32}
    from modules.autoregressive.decoder_files import build, write_sidecar

    path = other / "hifidecoder.pth"
    other.mkdir()
    torch.save(build("hifidecoder", SMALL_WIDE).state_dict(), path)
    write_sidecar(path, SMALL_WIDE)
    found = _decoder_errors(ws, ["autoregressive.decoder=fast", f"autoregressive.hifi_decoder={path}"])
    assert len(found) == 1 and "32-channel GPT latents" in found[0].message and "model_dim is 64" in found[0].message


def test_a_run_with_a_missing_decoder_stops_before_step_one(ws, tmp_path):
    with pytest.raises(UserError, match="nowhere.pth not found"):
        train(ws, "dec_missing", ["max_steps=2", "validate_every_steps=2", "autoregressive.decoder=fast",
                                  f"autoregressive.hifi_decoder={tmp_path / 'nowhere.pth'}"])


@pytest.mark.parametrize("decoder,rate", [("fast", 24000), ("standard", 24000), ("preview", 22050)])
def test_synthesize_command_with_each_decoder(ws, runs, decoder, rate, capsys):
    from modules.cli import main

    out = ws / "out" / f"{decoder}.wav"
    code = main(["--workspace", str(ws), "synthesize", "--checkpoint", f"{RUNS}/dec_fast", "--text", "Hello there.",
                 "--reference", "training/demo/audio", "--out", str(out), "--decoder", decoder, "--max-tokens", "10",
                 "--diffusion-steps", "3", "--device", "cpu"])
    assert code == 0
    wave, sr = sf.read(out)
    assert sr == rate and len(wave) > 0 and np.isfinite(wave).all()
    printed = capsys.readouterr().out
    assert "decoder: " + {"fast": "tortoise fast", "standard": "tortoise standard", "preview": "preview"}[decoder] \
        in printed


def test_synthesize_names_a_missing_decoder_file(ws, runs, tmp_path, capsys):
    from modules.cli import main

    code = main(["--workspace", str(ws), "synthesize", "--checkpoint", f"{RUNS}/dec_fast", "--text", "Hi.",
                 "--reference", "training/demo/audio/001.wav", "--out", str(tmp_path / "x.wav"),
                 "--decoder", "standard", "--diffusion-decoder", str(tmp_path / "gone.pth"), "--device", "cpu"])
    assert code == 2 and "gone.pth not found" in capsys.readouterr().err


def _models(ws, run, decoder: str):
    from modules.autoregressive.synthesize import DecoderOptions, load_models

    ckpt = sorted((run / "checkpoints").glob("*_gpt.pth"))[-1]
    return load_models(ckpt, ws / "models", decoding=DecoderOptions(decoder, diffusion_steps=3))


def test_fast_decoder_streams_before_the_utterance_is_done(ws, runs):
    """Chunks arrive while codes are still being sampled: count GPT steps at the first chunk."""
    from modules.autoregressive.synthesize import SamplingOptions, synthesize_stream, voice_for

    models = _models(ws, runs["fast"], "fast")
    voice = voice_for(models, [ws / "training/demo/audio/001.wav"])
    steps = {"n": 0}
    real = models.gpt.generate

    def counting(*a, **k):
        for out in real(*a, **k):
            steps["n"] += 1
            yield out

    models.gpt.generate = counting
    # a high temperature and no stop within the cap: exactly max_tokens codes
    sampling = SamplingOptions(temperature=1.0, top_p=1.0, repetition_penalty=1.0, max_tokens=30)
    at_chunk = []
    chunks = []
    for chunk in synthesize_stream(models, "Hello there, how are you?", voice, sampling, chunk_codes=8):
        at_chunk.append(steps["n"])
        chunks.append(chunk)
    total = steps["n"]
    assert len(chunks) >= 3, at_chunk
    assert at_chunk[0] < total, (at_chunk, total)  # the first chunk came before the last code was sampled
    assert at_chunk[0] == 8
    joined = torch.cat(chunks)
    from modules.autoregressive.hifi_decoder import output_samples

    assert len(joined) == output_samples(total)  # nothing lost at chunk borders, nothing doubled


def test_stream_equals_one_decode_away_from_the_borders(ws, runs):
    """Streamed audio is the whole-utterance decode except for cross-faded windows at chunk borders."""
    from modules.audio.crossfade import ChunkJoiner

    joiner = ChunkJoiner(overlap=4)
    full = torch.arange(40, dtype=torch.float32)
    parts = [joiner.add(full[:16]), joiner.add(full[:30]), joiner.add(full), joiner.finish()]
    torch.testing.assert_close(torch.cat(parts), full)  # identical decodes: the cross-fade changes nothing
    assert [len(p) for p in parts] == [12, 14, 10, 4]
