"""Pure helpers of the Run Training tab (no browser): resume list, status line, failure text, plot frames."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from app.train_plots import plot_frame, series_colours, series_selection, shown_series_frame
from app.train_runs import FRESH, resolve_sample_step, resume_choices, run_dir_of, run_model
from app.train_status import failure_text, status_html
from app.try_it import dataset_clips, resolve_clip
from modules.errors import UserError
from modules.run_manager import RunStatus
from modules.run_manager.metrics import MetricsReader, metric_columns, metric_frames
from modules.workspace import Workspace


def _run(ws: Workspace):
    run = ws.training / "demo" / "runs" / "tiny"
    (run / "states").mkdir(parents=True)
    for step, val in ((4, 0.5), (8, 0.25)):
        (run / "states" / f"step_{step:08d}.pt").write_bytes(b"x")
        (run / "states" / f"step_{step:08d}.json").write_text(json.dumps(
            {"step": step, "epoch": step / 14, "time": 1.7e9, "train_loss": 2.0, "val_loss": val}))
    return run


def test_resume_choices_start_fresh_then_newest_state(workspace):
    ws = Workspace.open(workspace)
    run = _run(ws)
    choices = resume_choices(ws, run)
    assert choices[0] == ("start fresh", FRESH)
    assert [v for _, v in choices[1:]] == ["training/demo/runs/tiny/states/step_00000008.pt",
                                           "training/demo/runs/tiny/states/step_00000004.pt"]
    assert choices[1][0].startswith("step 8 · epoch 0.5714 · val loss 0.25 · ")
    assert resume_choices(ws, None) == [("start fresh", FRESH)]


def test_run_dir_of_a_config_label(workspace):
    ws = Workspace.open(workspace)
    cfg = ws.training / "demo" / "configs" / "tiny.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("model: hifigan\ndataset: training/demo\nrun_name: other\n")
    assert run_dir_of(ws, "demo/configs/tiny.yaml") == ws.training / "demo" / "runs" / "other"
    assert run_dir_of(ws, "demo/configs/missing.yaml") is None
    assert run_dir_of(ws, "../../../etc/passwd") is None


def test_status_line_and_failure_text():
    st = RunStatus("running", pid=42, step=30, epoch=2, total_steps=120)
    html = status_html(st, {"its": 2.0, "eta_s": 45.0, "fraction": 0.25}, "demo/tiny")
    assert 'data-state="running"' in html and 'data-step="30"' in html and 'data-pid="42"' in html
    assert "step 30 / 120" in html and "2.00 it/s" in html and "ETA 45s" in html and 'value="0.2500"' in html
    assert failure_text(st) == ""
    failed = RunStatus("failed", step=31, message="non-finite loss at step 31; lower the learning rate",
                       log_tail="step 30/120 loss 1.0")
    text = failure_text(failed)
    assert text.startswith("non-finite loss at step 31") and text.endswith("step 30/120 loss 1.0")
    assert "<b" in status_html(failed, None, "x") and "ETA" not in status_html(failed, None, "x")


def test_plot_frames_never_empty_and_x_renamed():
    assert plot_frame(pd.DataFrame(), "step") is None
    frame = pd.DataFrame({"epoch": [0.5, 1.0], "value": [1.0, 0.5], "series": ["mel_l1", "mel_l1"]})
    out = plot_frame(frame, "epoch")
    assert list(out.columns) == ["x", "value", "series"] and list(out["x"]) == [0.5, 1.0]


def test_hifigan_runs_start_with_the_total_loss_unticked(workspace):
    """HiFi-GAN's total loss (~100) would flatten the other curves: unticked by default, but a user's
    tick is kept; other models, other losses and validation series start ticked."""
    ws = Workspace.open(workspace)
    run = _run(ws)
    (run / "config.yaml").write_text("model: hifigan\ndataset: training/demo\n")
    names = ["loss", "gen_adv", "mel_l1", "disc", "val_mel_l1 (validation)"]
    model = run_model(run)
    assert model == "hifigan"
    first = series_selection(names, [], [], model)
    assert first == ["gen_adv", "mel_l1", "disc", "val_mel_l1 (validation)"]
    # the user ticks loss back and hides disc: a new series appearing later keeps both choices
    user = ["loss", "gen_adv", "mel_l1", "val_mel_l1 (validation)"]
    later = series_selection([*names, "feature"], names, user, model)
    assert later == ["loss", "gen_adv", "mel_l1", "val_mel_l1 (validation)", "feature"]
    # a reconnect (nothing known) keeps the user's tick on loss
    assert "loss" in series_selection(names, [], user, model)
    # autoregressive runs (and unknown ones) show everything new, loss included
    assert series_selection(["loss", "text_ce", "mel_ce"], [], [], "autoregressive") == ["loss", "text_ce", "mel_ce"]
    assert series_selection(["loss"], [], None, None) == ["loss"]


def _hifigan_metrics(path):
    """A HiFi-GAN-like metrics.jsonl: train records every step, a validation record every 2 steps."""
    lines = []
    for step in range(1, 7):
        lines.append({"step": step, "epoch": step / 14, "time": 1.7e9 + step, "lr": 2e-4, "grad_norm_generator": 300.0,
                      "loss": 120.0 - step, "loss_adv": 7.0 - 0.1 * step, "mel_l1": 2.5})
        if step % 2 == 0:
            lines.append({"step": step, "validation": True, "val_mel_l1": 2.4, "val_mr_stft": 4.0,
                          "val_pesq_wb": 1.0 + 0.01 * step, "val_mel_accuracy": 0.1})
    path.write_text("".join(json.dumps(rec) + "\n" for rec in lines))
    reader = MetricsReader(path)
    reader.update()
    return reader


def test_validation_rows_survive_the_series_selection(tmp_path):
    """The loss plot's frame after the default selection of a HiFi-GAN run: the total loss is gone,
    every validation series is there with all its points, and each drawn series has a colour."""
    reader = _hifigan_metrics(tmp_path / "metrics.jsonl")
    loss = metric_frames(reader, x="step", smoothing=0.6)["loss"]
    names = list(dict.fromkeys(loss["series"]))
    shown = series_selection(names, [], [], "hifigan")
    drawn = shown_series_frame(loss, shown)
    counts = drawn.groupby("series").size().to_dict()
    assert counts == {"loss_adv": 6, "mel_l1": 6, "val_mel_l1 (validation)": 3, "val_mr_stft (validation)": 3}
    assert list(drawn.loc[drawn["series"] == "val_mel_l1 (validation)", "step"]) == [2.0, 4.0, 6.0]
    colours = series_colours(names, drawn)
    assert set(colours) == set(counts) and len(set(colours.values())) == len(colours)
    # validation arriving after the first plot: the train-only selection grows and the colour map
    # changes (that change is what makes Gradio rebuild the chart), keeping the old series' colours
    train_only = shown_series_frame(loss, ["loss_adv", "mel_l1"])
    before = series_colours(names, train_only)
    assert before != colours and all(colours[k] == v for k, v in before.items())
    assert shown_series_frame(loss, None).empty


def test_quality_metrics_get_their_own_group(tmp_path):
    """Accuracies and PESQ (higher is better, 0..1 / 1..4.5) are not losses: their own plot."""
    frame = pd.DataFrame({"step": [1], "loss": [1.0], "text_ce": [2.0], "mel_accuracy": [0.2], "lr": [1e-4],
                          "lr_discriminator": [1e-4], "grad_norm": [3.0], "val_pesq_wb": [1.2],
                          "val_mel_accuracy": [0.3], "val_mel_ce": [4.0], "note": ["x"]})
    groups = metric_columns(frame)
    assert groups == {"loss": ["loss", "text_ce", "val_mel_ce"], "quality": ["mel_accuracy", "val_pesq_wb",
                                                                            "val_mel_accuracy"],
                      "lr": ["lr", "lr_discriminator"], "grad_norm": ["grad_norm"]}
    frames = metric_frames(_hifigan_metrics(tmp_path / "metrics.jsonl"))
    assert set(frames["quality"]["series"]) == {"val_pesq_wb (validation)", "val_mel_accuracy (validation)"}
    assert not frames["loss"]["series"].str.contains("pesq|accuracy").any()


def test_try_it_clip_paths(workspace, tmp_path, monkeypatch):
    """Try-it clips: workspace paths (relative or absolute) and uploads in Gradio's folder only."""
    ws = Workspace.open(workspace)
    uploads = tmp_path / "gradio-uploads"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(uploads))
    (uploads / "abc123").mkdir(parents=True)
    upload = uploads / "abc123" / "my voice.wav"
    upload.write_bytes(b"RIFF")
    inside = ws.training / "demo" / "audio" / "a.wav"
    inside.parent.mkdir(parents=True)
    inside.write_bytes(b"RIFF")
    outside = tmp_path / "elsewhere" / "secret.wav"
    outside.parent.mkdir()
    outside.write_bytes(b"RIFF")

    assert resolve_clip(ws, str(upload)) == upload.resolve()
    assert resolve_clip(ws, "training/demo/audio/a.wav") == inside.resolve()
    assert resolve_clip(ws, str(inside)) == inside.resolve()
    for bad in (str(outside), "../elsewhere/secret.wav", str(uploads / ".." / "elsewhere" / "secret.wav"),
                "/etc/hostname"):
        with pytest.raises(UserError, match="refused"):
            resolve_clip(ws, bad)
    with pytest.raises(UserError, match="not found"):
        resolve_clip(ws, "training/demo/audio/missing.wav")
    with pytest.raises(UserError, match="not found"):
        resolve_clip(ws, str(uploads / "abc123" / "gone.wav"))


def test_sample_step_and_dataset_clips(workspace):
    ws = Workspace.open(workspace)
    run = _run(ws)
    assert resolve_sample_step(run, "latest") is None
    for step in (4, 8):
        d = run / "samples" / f"step_{step:08d}"
        d.mkdir(parents=True)
        (d / "a.wav").write_bytes(b"x")
    assert resolve_sample_step(run, "latest") == 8
    assert resolve_sample_step(run, "4") == 4
    assert resolve_sample_step(run, "5") == 8  # a step that is gone falls back to the newest
    ds = ws.training / "demo"
    (ds / "validation.txt").write_text("audio/v.wav|A validation line.\n")
    (ds / "train.txt").write_text("audio/t.wav|A training line.\n")
    clips = dataset_clips(ws, run)
    assert [v for _, v in clips] == ["training/demo/audio/v.wav", "training/demo/audio/t.wav"]
    assert "validation" in clips[0][0]


def test_try_it_vocodes_and_speaks_with_real_checkpoints(tmp_path, shared):
    """Try it on real runs: a tiny HiFi-GAN resynthesises a clip; a tiny autoregressive model speaks
    a sentence with a dataset clip as reference (content is noise at this size; the path is tested)."""
    import soundfile as sf

    from app.try_it import checkpoint_choices, speak_text, vocode_clip
    from modules.config.schema import config_from_dict, save_config
    from modules.trainer.core import Trainer
    from tests.autoregressive.test_ar_recipe import make_ar_workspace, train

    root = make_ar_workspace(tmp_path / "ws")
    ws = Workspace.open(root)
    run = train(root, "ar", ["max_steps=2", "save_every_steps=2", "validate_every_steps=null"])
    ckpt = [v for label, v in checkpoint_choices(ws, run) if "_gpt.pth" in v][0]
    audio = sorted(p.name for p in (root / "training/demo/audio").iterdir())
    clip = "training/demo/audio/" + audio[0]
    out = speak_text(ws, ckpt, [clip, "training/demo/audio/" + audio[1]], "Hello there.", repetition_penalty=1.5)
    wave, rate = sf.read(out)
    assert rate == 22050 and len(wave) > 0 and out.parent.parent == run / "try_it"

    hifigan = {"model": "hifigan", "dataset": "training/demo", "batch_size": 2, "max_steps": 2, "num_workers": 0,
               "gpus": 0, "save_every_steps": 2, "validate_every_steps": None, "log_every_steps": 1,
               "hifigan": {"preset": "custom", "segment_size": 2048, "upsample_rates": [8, 8, 4],
                           "upsample_kernel_sizes": [16, 16, 8], "upsample_initial_channel": 16,
                           "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1]],
                           "discriminator_width": 0.0625}}
    cfg = config_from_dict(hifigan)
    path = save_config(cfg, root / "training/demo/configs/voc.yaml")
    assert Trainer(cfg, ws, path).run() == 0
    voc_run = root / "training/demo/runs/voc"
    g = checkpoint_choices(ws, voc_run)[0][1]
    assert g.endswith("g_00000002")
    out = vocode_clip(ws, g, clip)
    wave, rate = sf.read(out)
    assert rate == 22050 and abs(len(wave) - sf.info(root / clip).frames) <= 256
    import time

    time.sleep(1.1)  # Try it names its output folder by the second
    onnx_wave, _ = sf.read(vocode_clip(ws, g, clip, "onnx"))  # the same generator on onnxruntime
    assert onnx_wave.shape == wave.shape and abs(onnx_wave - wave).max() < 2 / 32768 + 1e-4


def test_a_second_try_it_does_not_reload_the_models(tmp_path, shared, monkeypatch):
    """Try it keeps the last checkpoint's models (one entry): a second click reuses them, another
    checkpoint replaces them."""
    from app import try_it
    from modules.autoregressive import synthesize
    from tests.autoregressive.test_ar_recipe import make_ar_workspace, train

    root = make_ar_workspace(tmp_path / "ws")
    ws = Workspace.open(root)
    run = train(root, "ar", ["max_steps=2", "save_every_steps=1", "keep_states=2", "export_every_save=true",
                             "validate_every_steps=null"])
    loads = []
    real = synthesize.load_models
    monkeypatch.setattr(synthesize, "load_models", lambda *a, **k: loads.append(a[0]) or real(*a, **k))
    ckpts = [v for label, v in try_it.checkpoint_choices(ws, run) if "_gpt.pth" in v]
    assert len(ckpts) == 2
    clip = "training/demo/audio/" + sorted(p.name for p in (root / "training/demo/audio").iterdir())[0]
    for ckpt in (ckpts[0], ckpts[0], ckpts[1], ckpts[1]):
        try_it.speak_text(ws, ckpt, [clip], "Hello.")
    assert len(loads) == 2 and len(try_it._SPEECH) == 1
