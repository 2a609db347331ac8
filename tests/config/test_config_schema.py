"""The typed config schema: defaults, presets, validation, --set, YAML round trip, resume hash."""

from __future__ import annotations

import json

import pytest
import yaml

from modules.config import schema
from modules.config.schema import ConfigError, apply_overrides, config_from_dict, default_config, load_config
from tests.conftest import SHARED

CONTRACT_SET_KEYS = {
    "epochs": 7, "max_steps": 99, "batch_size": 3, "grad_accumulation": 2, "learning_rate": 3e-4,
    "precision": "bf16", "seed": 5, "save_every_steps": 11, "validate_every_steps": 13, "keep_states": 4,
    "num_workers": 0, "text_lr_weight": 0.2, "mel_lr_weight": 0.5,
}


def test_hifigan_presets_match_jik876_configs(shared):
    for name in ("v1", "v2"):
        ref = json.loads((shared / "compat" / "hifigan" / f"config_{name}.json").read_text())
        h = default_config("hifigan", "training/x", name).hifigan
        for key in ("resblock", "upsample_rates", "upsample_kernel_sizes", "upsample_initial_channel",
                    "resblock_kernel_sizes", "resblock_dilation_sizes", "segment_size", "num_mels", "n_fft",
                    "hop_size", "win_size", "sampling_rate", "fmin", "fmax", "fmax_for_loss", "adam_b1", "adam_b2"):
            assert getattr(h, key) == ref[key], (name, key)
    v3 = default_config("hifigan", "training/x", "v3").hifigan
    assert (v3.resblock, v3.upsample_rates, v3.upsample_kernel_sizes, v3.upsample_initial_channel,
            v3.resblock_kernel_sizes, v3.resblock_dilation_sizes) == (
        "2", [8, 8, 4], [16, 16, 8], 256, [3, 5, 7], [[1, 2], [2, 6], [3, 12]])
    c = default_config("hifigan", "training/x")
    assert (c.learning_rate, c.batch_size, c.lr_schedule.type, c.lr_schedule.gamma) == (2e-4, 16, "exponential", 0.999)


def test_autoregressive_defaults_are_tortoise_full_size():
    facts = json.loads((SHARED / "compat" / "tortoise" / "unified_voice_manifest_full.json").read_text()) \
        if SHARED.is_dir() else None
    c = default_config("autoregressive", "training/x")
    a = c.autoregressive
    assert (a.layers, a.model_dim, a.heads, a.max_text_tokens, a.max_mel_tokens, a.max_conditioning_inputs,
            a.number_text_tokens, a.start_text_token, a.number_mel_codes, a.start_mel_token, a.stop_mel_token,
            a.mel_length_compression) == (30, 1024, 16, 402, 604, 2, 255, 255, 8194, 8192, 8193, 1024)
    if facts:
        for k, v in facts["hyperparameters"].items():
            if hasattr(a, k):
                assert getattr(a, k) == v, k
    assert (c.learning_rate, c.text_lr_weight, c.mel_lr_weight, c.lr_schedule.type) == (1e-5, 0.01, 1.0, "multistep")
    assert c.hifigan is None and "hifigan" not in schema.config_to_dict(c)


@pytest.mark.parametrize("model", ["hifigan", "autoregressive"])
def test_contract_set_keys_are_accepted(model):
    c = default_config(model, "training/x")
    items = [f"{k}={v}" for k, v in CONTRACT_SET_KEYS.items()]
    items += ["hifigan.segment_size=4096"] if model == "hifigan" else [
        "autoregressive.layers=2", "autoregressive.model_dim=64", "autoregressive.heads=4"]
    out = apply_overrides(c, items)
    for k, v in CONTRACT_SET_KEYS.items():
        assert getattr(out, k) == v, k
    if model == "hifigan":
        assert out.hifigan.segment_size == 4096
    else:
        assert (out.autoregressive.layers, out.autoregressive.model_dim, out.autoregressive.heads) == (2, 64, 4)
    assert c.epochs != 7, "apply_overrides must not change its argument"


@pytest.mark.parametrize("item,key", [
    ("batch_size=0", "batch_size"),
    ("epochs=-1", "epochs"),
    ("learning_rate=0", "learning_rate"),
    ("precision=fp8", "precision"),
    ("lr_schedule.type=linear", "lr_schedule.type"),
    ("lr_schedule.gamma=1.5", "lr_schedule.gamma"),
    ("hifigan.segment_size=100", "hifigan.segment_size"),
    ("hifigan.segment_size=5000", "hifigan.segment_size"),
    ("hifigan.segmnt_size=8192", "hifigan.segmnt_size"),
    ("bach_size=4", "bach_size"),
    ("keep_states=0", "keep_states"),
    ("batch_size=four", "batch_size"),
    ("batch_size=2.5", "batch_size"),
    ("hifigan.fresh_discriminators=maybe", "hifigan.fresh_discriminators"),
    ("autoregressive.layers=2", "autoregressive.layers"),
    ("hifigan.upsample_initial_channel=64", "hifigan.upsample_initial_channel"),
    ("lr_schedule.milestones=[5, 2]", "lr_schedule.milestones"),
])
def test_bad_values_are_refused_naming_the_key(item, key):
    c = default_config("hifigan", "training/x")
    with pytest.raises(ConfigError) as err:
        apply_overrides(c, [item])
    assert str(err.value).startswith(key), str(err.value)


def test_unknown_key_suggests_spelling():
    with pytest.raises(ConfigError, match="did you mean batch_size"):
        config_from_dict({"model": "hifigan", "dataset": "training/x", "bach_size": 3})


def test_custom_preset_and_preset_switch():
    c = default_config("hifigan", "training/x")
    custom = apply_overrides(c, ["hifigan.preset=custom", "hifigan.upsample_initial_channel=64"])
    assert custom.hifigan.upsample_initial_channel == 64
    v3 = apply_overrides(c, ["hifigan.preset=v3"])
    assert v3.hifigan.upsample_rates == [8, 8, 4] and v3.hifigan.resblock == "2"
    # a YAML that names only the preset gets its sizes
    only = config_from_dict({"model": "hifigan", "dataset": "training/x", "hifigan": {"preset": "v2"}})
    assert only.hifigan.upsample_initial_channel == 128
    with pytest.raises(ConfigError, match="upsample_rates"):
        apply_overrides(c, ["hifigan.preset=custom", "hifigan.upsample_rates=[8, 8, 2]"])  # product != hop


def test_section_of_other_model_is_refused():
    with pytest.raises(ConfigError, match="autoregressive"):
        config_from_dict({"model": "hifigan", "dataset": "training/x", "autoregressive": {"layers": 2}})
    with pytest.raises(ConfigError, match="model"):
        config_from_dict({"model": "wavenet", "dataset": "training/x"})


def test_yaml_round_trip_and_file_errors(tmp_path):
    c = apply_overrides(default_config("autoregressive", "training/demo", "tiny"),
                        ["lr_schedule.type=cosine", "lr_schedule.warmup_steps=5", "max_steps=40", "base=models/x.pth"])
    path = schema.save_config(c, tmp_path / "sub" / "a.yaml")
    assert load_config(path) == c
    data = yaml.safe_load(path.read_text())
    assert data["autoregressive"]["layers"] == 2 and "hifigan" not in data
    assert not list(path.parent.glob(".tmp-*")), "atomic write leaves no temp files"

    bad = tmp_path / "bad.yaml"
    bad.write_text("model: hifigan\ndataset: training/x\nbatch_size: 0\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert str(bad) in str(err.value) and "batch_size" in str(err.value)
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    # yaml's "1e-5" (a string for YAML 1.1) is read as a number
    sci = tmp_path / "sci.yaml"
    sci.write_text("model: autoregressive\ndataset: training/x\nlearning_rate: 1e-5\n")
    assert load_config(sci).learning_rate == 1e-5


def test_minimal_yaml_takes_model_defaults(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("model: autoregressive\ndataset: training/x\nepochs: 3\n")
    c = load_config(p)
    assert c.epochs == 3 and c.learning_rate == 1e-5 and c.autoregressive.layers == 30


def test_config_hash_ignores_resume_safe_keys():
    c = default_config("hifigan", "training/x")
    safe = apply_overrides(c, ["epochs=999", "max_steps=5", "save_every_steps=1", "validate_every_steps=2",
                               "log_every_steps=3", "keep_states=9", "num_workers=0", "run_name=other"])
    assert schema.config_hash(safe) == schema.config_hash(c)
    assert schema.changed_keys(c, safe) == []
    for item, key in [("learning_rate=1e-3", "learning_rate"), ("batch_size=2", "batch_size"),
                      ("hifigan.segment_size=4096", "hifigan.segment_size"), ("seed=1", "seed"),
                      ("lr_schedule.gamma=0.9", "lr_schedule.gamma")]:
        other = apply_overrides(c, [item])
        assert schema.config_hash(other) != schema.config_hash(c)
        assert schema.changed_keys(c, other) == [key]


def test_known_keys_and_help():
    keys = schema.known_keys("hifigan")
    assert "hifigan.segment_size" in keys and "lr_schedule.milestones" in keys
    assert not any(k.startswith("autoregressive.") for k in keys)
    assert "crop length" in schema.field_help("hifigan.segment_size")
    assert schema.field_help("no.such") == ""
