"""The Configure tab's pure logic: form <-> config/YAML round trips and every Validate warning."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from app.configure_form import (
    config_path_for,
    config_to_form,
    default_form,
    form_fields,
    form_keys,
    form_to_config,
    load_form,
    preset_form,
    save_form,
    validate_form,
    yaml_preview,
)
from modules.config.schema import ConfigError, default_config, load_config
from modules.errors import UserError
from modules.hifigan.options import GENERATOR_PRESETS as HIFIGAN_PRESETS
from modules.workspace import Workspace, WorkspaceError
from tests.conftest import REPO, python_env


@pytest.fixture
def ws(workspace) -> Workspace:
    """A workspace with a small fake dataset: 10 train and 2 validation lines with real wav files."""
    import numpy as np

    from modules.audio.io import write_wav

    w = Workspace.open(workspace)
    ds = w.training / "demo"
    (ds / "audio").mkdir(parents=True)
    lines = []
    for i in range(12):
        write_wav(ds / "audio" / f"c{i}.wav", np.zeros(22050 // 2, dtype="float32"), 22050)
        lines.append(f"audio/c{i}.wav|clip {i}")
    (ds / "train.txt").write_text("\n".join(lines[:10]) + "\n")
    (ds / "validation.txt").write_text("\n".join(lines[10:]) + "\n")
    return w


def _tiny(form: dict) -> dict:
    """Edits a user makes for a tiny CPU model, typed as the widgets hold them (lists as text)."""
    form = dict(form)
    form.update({
        "hifigan.upsample_rates": "8, 8, 4", "hifigan.upsample_kernel_sizes": "[16, 16, 8]",
        "hifigan.upsample_initial_channel": 32, "hifigan.resblock_kernel_sizes": "[3]",
        "hifigan.resblock_dilation_sizes": "[[1, 3]]", "hifigan.segment_size": 2048,
        "batch_size": 2, "max_steps": "40", "num_workers": 0, "gpus": 0, "save_every_steps": "10",
        "validate_every_steps": "10", "log_every_steps": 1,
    })
    return form


def test_every_schema_key_has_a_widget():
    keys = set(form_keys())
    config = default_config("hifigan", "training/demo")
    flat = set()

    def walk(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                flat.add(prefix + k)

    from modules.config.schema import config_to_dict

    walk(config_to_dict(config))
    walk(config_to_dict(default_config("autoregressive", "training/demo")))
    assert flat <= keys, sorted(flat - keys)
    ar_only = {f.key for f in form_fields() if f.model == "autoregressive"}
    assert {"text_lr_weight", "mel_lr_weight", "autoregressive.conditioning_clips",
            "autoregressive.optimizer_8bit", "autoregressive.gradient_checkpointing",
            "autoregressive.freeze_layers", "autoregressive.tokenizer"} <= ar_only


def test_defaults_come_from_the_schema_and_match_the_cli(ws, tmp_path):
    """A default form saved by the UI is byte-identical to `python -m modules config`'s file."""
    form = default_form("hifigan", "training/demo")
    assert form_to_config(form) == default_config("hifigan", "training/demo")
    ui_path = save_form(ws, form, "defaults")
    assert ui_path == ws.training / "demo" / "configs" / "defaults.yaml"
    cli_path = tmp_path / "cli.yaml"
    subprocess.run([sys.executable, "-m", "modules", "--workspace", str(ws.root), "config", "hifigan",
                    "--dataset", "training/demo", "--out", str(cli_path)], cwd=REPO, env=python_env(),
                   check=True, capture_output=True, timeout=120)
    assert ui_path.read_text() == cli_path.read_text()


def test_form_yaml_round_trip_hifigan(ws):
    form = _tiny(default_form("hifigan", "training/demo"))
    form["run_name"] = "my-run"
    form["base"] = ""
    form["grad_clip"] = ""  # blank optional -> null
    form["lr_schedule.type"] = "multistep"
    form["lr_schedule.milestones"] = "2, 5"
    config = form_to_config(form)
    assert config.hifigan.preset == "custom"  # edited generator sizes turn v1 into custom
    assert config.hifigan.upsample_rates == [8, 8, 4] and config.hifigan.resblock_dilation_sizes == [[1, 3]]
    assert config.max_steps == 40 and config.grad_clip is None and config.base is None
    assert config.lr_schedule.milestones == [2, 5] and config.run_name == "my-run"
    path = save_form(ws, form, "tiny")
    assert load_config(path) == config
    loaded, name = load_form(ws, "demo/configs/tiny.yaml")
    assert name == "tiny"
    assert form_to_config(loaded) == config
    assert loaded["hifigan.upsample_rates"] == "[8, 8, 4]" and loaded["max_steps"] == "40"
    assert loaded["grad_clip"] == "" and loaded["run_name"] == "my-run"
    # the preview is exactly what was saved
    assert yaml_preview(loaded) == path.read_text()
    assert yaml.safe_load(path.read_text())["hifigan"]["segment_size"] == 2048


def test_form_yaml_round_trip_autoregressive(ws):
    form = default_form("autoregressive", "training/demo", preset="tiny")
    form.update({"text_lr_weight": 0.05, "autoregressive.conditioning_clips": 1,
                 "autoregressive.freeze_layers": 1, "autoregressive.optimizer_8bit": True,
                 "autoregressive.gradient_checkpointing": False, "autoregressive.betas": "[0.9, 0.98]"})
    config = form_to_config(form)
    assert config.model == "autoregressive" and config.hifigan is None
    assert config.autoregressive.layers == 2 and config.text_lr_weight == 0.05
    assert config.autoregressive.betas == [0.9, 0.98] and config.autoregressive.optimizer_8bit
    path = save_form(ws, form, "ar")
    loaded, _ = load_form(ws, "demo/configs/ar.yaml")
    assert form_to_config(loaded) == config == load_config(path)
    assert "hifigan" not in yaml.safe_load(path.read_text())
    # hifigan-only keys given while the model is autoregressive are ignored, not saved
    assert "hifigan.segment_size" not in config_to_form(config)


def test_form_yaml_round_trip_hifidecoder(ws):
    from app.configure_form import model_choices

    assert ("Tortoise HiFi-GAN decoder", "hifidecoder") in model_choices()
    form = default_form("hifidecoder", "training/demo", preset="tiny")
    form.update({"hifidecoder.gpt_checkpoint": "training/demo/runs/gpt", "hifidecoder.segment_latents": 16})
    config = form_to_config(form)
    assert config.model == "hifidecoder" and config.base == "models/tortoise/hifidecoder.pth"
    assert config.hifidecoder.gpt_checkpoint == "training/demo/runs/gpt" and config.hifidecoder.segment_latents == 16
    path = save_form(ws, form, "decoder")
    loaded, _ = load_form(ws, "demo/configs/decoder.yaml")
    assert form_to_config(loaded) == config == load_config(path)


def test_presets_fill_the_form():
    form = default_form("hifigan", "training/demo")
    v2 = preset_form(form, "v2")
    assert v2["hifigan.preset"] == "v2"
    assert v2["hifigan.upsample_initial_channel"] == HIFIGAN_PRESETS["v2"]["upsample_initial_channel"]
    back = preset_form(_tiny(form), "v1")
    assert back["hifigan.upsample_rates"] == "[8, 8, 2, 2]" and back["hifigan.preset"] == "v1"
    assert back["batch_size"] == 2  # a preset only changes what it names


def test_bad_values_name_the_key():
    form = default_form("hifigan", "training/demo")
    with pytest.raises(ConfigError, match="hifigan.upsample_rates"):
        form_to_config({**form, "hifigan.upsample_rates": "[8, 8"})
    with pytest.raises(ConfigError, match="learning_rate"):
        form_to_config({**form, "learning_rate": -1})
    with pytest.raises(ConfigError, match="max_steps"):
        form_to_config({**form, "max_steps": "many"})
    with pytest.raises(ConfigError, match="epochs"):
        form_to_config({**form, "epochs": None})
    assert yaml_preview({**form, "batch_size": 0}).startswith("# not valid yet")


def test_save_refuses_bad_names_and_outside_datasets(ws):
    form = default_form("hifigan", "training/demo")
    config = form_to_config(form)
    with pytest.raises(WorkspaceError):
        config_path_for(ws, config, "../escape")
    assert config_path_for(ws, config, "ok.yaml").name == "ok.yaml"
    with pytest.raises(WorkspaceError):
        save_form(ws, {**form, "dataset": "../../elsewhere"}, "x")
    with pytest.raises(UserError, match="under training/"):
        save_form(ws, {**form, "dataset": "models"}, "x")


def _warnings(ws, form, **kw):
    text, frame, warnings = validate_form(ws, form, **kw)
    return text, frame, {w.key: w for w in warnings}


def test_validate_reports_the_plan_and_lr_curve(ws):
    form = _tiny(default_form("hifigan", "training/demo"))
    form.update({"max_steps": "", "epochs": 4, "lr_schedule.type": "multistep", "lr_schedule.milestones": "[2]",
                 "lr_schedule.factor": 0.5})
    text, frame, warnings = _warnings(ws, form, gpus_available=0)
    assert "| steps per epoch | 5 |" in text and "| total steps | 20 (4.00 epochs) |" in text
    assert "effective batch | 2 " in text
    lr = form_to_config(form).learning_rate
    assert frame["learning rate"].iloc[0] == pytest.approx(lr)
    assert frame["learning rate"].iloc[-1] == pytest.approx(lr * 0.5)
    assert not warnings, warnings


def test_warning_batch_larger_than_dataset(ws):
    form = {**_tiny(default_form("hifigan", "training/demo")), "batch_size": 16}
    text, _, w = _warnings(ws, form, gpus_available=0)
    assert "larger than the dataset" in w["batch_size"].message and "batch_size" in w["batch_size"].fix
    assert "Fix:" in text and "❌" in text


def test_warning_accumulation_does_not_divide(ws):
    form = {**_tiny(default_form("hifigan", "training/demo")), "grad_accumulation": 3}
    _, _, w = _warnings(ws, form, gpus_available=0)
    assert "does not divide" in w["grad_accumulation"].message


def test_warning_milestones_past_last_epoch(ws):
    form = {**_tiny(default_form("hifigan", "training/demo")), "max_steps": "", "epochs": 3,
            "lr_schedule.type": "multistep", "lr_schedule.milestones": "[1, 5]"}
    _, _, w = _warnings(ws, form, gpus_available=0)
    assert "[5]" in w["lr_schedule.milestones"].message and "past the last epoch" in w["lr_schedule.milestones"].message


def test_warning_gpus_above_present(ws):
    form = {**_tiny(default_form("hifigan", "training/demo")), "gpus": 4}
    text, _, w = _warnings(ws, form, gpus_available=1)
    assert w["gpus"].level == "error" and "above the 1 GPU" in w["gpus"].message
    assert "set gpus to 1" in text


def test_warning_base_missing(ws):
    form = {**_tiny(default_form("hifigan", "training/demo")), "base": "models/hifigan/g_00000001"}
    _, _, w = _warnings(ws, form, gpus_available=0)
    assert "does not exist" in w["base"].message


def test_warning_base_shapes_do_not_fit_the_preset(ws, shared):
    """A V2 jik876 checkpoint as base of a V1 config: the recipe's base checker names the mismatch."""
    import shutil

    from modules import model_registry
    from modules.hifigan.recipe import check_base  # an import regression fails here, not silently skips
    from modules.model_spec import load_ref

    assert load_ref(model_registry.get("hifigan").base_check) is check_base
    base = ws.models / "hifigan" / "v2"
    base.mkdir(parents=True)
    shutil.copy(shared / "compat" / "hifigan" / "generator_v2" / "g_00001234", base / "g_00001234")
    form = {**default_form("hifigan", "training/demo"), "base": "models/hifigan/v2/g_00001234",
            "batch_size": 2, "gpus": 0}
    _, _, w = _warnings(ws, form, gpus_available=0)
    assert "base" in w and w["base"].level == "error"
    ok_form = preset_form(form, "v2")
    _, _, w2 = _warnings(ws, ok_form, gpus_available=0)
    assert "base" not in w2


def test_warning_autoregressive_base_shapes_do_not_fit(tmp_path, shared):
    """An autoregressive base trained with other sizes: Validate names the mismatch; the matching
    preset validates clean of it."""
    from tests.autoregressive.test_ar_recipe import make_ar_workspace, train

    root = make_ar_workspace(tmp_path / "ws")
    ws = Workspace.open(root)
    run = train(root, "base", ["max_steps=2", "save_every_steps=2"])
    base = str((run / "checkpoints" / "00000002_gpt.pth").relative_to(root))
    form = {**default_form("autoregressive", "training/demo", preset="tiny"), "base": base, "gpus": 0}
    _, _, w = _warnings(ws, form, gpus_available=0)
    assert "base" not in w
    bigger = {**form, "autoregressive.model_dim": 32, "autoregressive.layers": 3}
    text, _, w = _warnings(ws, bigger, gpus_available=0)
    assert w["base"].level == "error" and ("lacks" in w["base"].message or "model_dim" in w["base"].message)
    assert "pick a base that matches" in text


def test_each_model_shows_its_tuned_fields_up_front_and_the_rest_under_advanced():
    from app.configure_form import form_fields, group_open, group_title

    groups = {f.key: f.group for f in form_fields()}
    for upfront in ("hifigan.preset", "hifigan.segment_size", "autoregressive.decoder",
                    "autoregressive.conditioning_clips", "autoregressive.gradient_checkpointing",
                    "hifidecoder.gpt_checkpoint", "hifidecoder.segment_latents",
                    "hifidecoder.discriminator_warmup_steps"):
        model = upfront.split(".")[0]
        assert groups[upfront] == model and group_open(model), upfront
    for advanced in ("hifigan.upsample_rates", "hifigan.n_fft", "autoregressive.model_dim",
                     "autoregressive.start_text_token", "autoregressive.mel_length_compression",
                     "hifidecoder.upsample_initial_channel", "hifidecoder.num_mels"):
        model = advanced.split(".")[0]
        assert groups[advanced] == f"{model}:advanced" and not group_open(groups[advanced]), advanced
    assert group_title("autoregressive:advanced") == "Advanced: Autoregressive"
    for generic in ("epochs", "learning_rate", "text_lr_weight", "batch_size", "precision", "validate_every_steps"):
        assert group_open(groups[generic]), generic
    assert not group_open(groups["evaluation.whisper_model"])


def test_a_base_fixes_its_architecture_fields_with_its_own_values(tmp_path, shared):
    """jik876's V2 generator (config.json beside it) and a tiny autoregressive checkpoint: the form shows
    the values the base fixes; without a base nothing is fixed."""
    import shutil

    import torch

    from app.configure_form import base_fixed_values
    from modules.autoregressive.checkpoint import build_unified_voice, save_unified_voice
    from modules.workspace import Workspace

    ws = Workspace.open(tmp_path)
    g = tmp_path / "models" / "hifigan" / "g_00001234"
    g.parent.mkdir(parents=True)
    shutil.copy(shared / "compat" / "hifigan" / "generator_v2" / "g_00001234", g)
    shutil.copy(shared / "compat" / "hifigan" / "config_v2.json", g.parent / "config.json")
    fixed = base_fixed_values(ws, "hifigan", "models/hifigan/g_00001234")
    assert fixed["hifigan.preset"] == "v2" and fixed["hifigan.upsample_initial_channel"] == 128
    assert fixed["hifigan.upsample_rates"] == "[8, 8, 2, 2]" and fixed["hifigan.hop_size"] == 256
    assert base_fixed_values(ws, "hifigan", "") == {}
    hp = {"layers": 3, "model_dim": 64, "heads": 4, "max_text_tokens": 100, "max_mel_tokens": 200,
          "max_conditioning_inputs": 1, "number_text_tokens": 255}
    torch.manual_seed(0)
    ar = tmp_path / "models" / "tortoise" / "autoregressive.pth"
    ar.parent.mkdir(parents=True)
    save_unified_voice(build_unified_voice(hp), ar)
    fixed = base_fixed_values(ws, "autoregressive", "models/tortoise/autoregressive.pth")
    assert {k.split(".")[1]: v for k, v in fixed.items()} == {
        "layers": 3, "model_dim": 64, "number_text_tokens": 255, "number_mel_codes": 8194, "max_text_tokens": 100,
        "max_mel_tokens": 200, "max_conditioning_inputs": 1}
