"""Pure helpers of the Run Training tab (no browser): resume list, status line, failure text, plot frames."""

from __future__ import annotations

import json

import pandas as pd

from app.train_tab import (
    FRESH,
    dataset_clips,
    failure_text,
    plot_frame,
    resolve_sample_step,
    resume_choices,
    run_dir_of,
    run_model,
    series_selection,
    status_html,
)
from modules.runs import RunStatus
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

    from app.train_tab import checkpoint_choices, speak_text, vocode_clip
    from modules.config.schema import config_from_dict, save_config
    from modules.trainer.core import Trainer
    from tests.test_ar_recipe import make_ar_workspace, train

    root = make_ar_workspace(tmp_path / "ws")
    ws = Workspace.open(root)
    run = train(root, "ar", ["max_steps=2", "save_every_steps=2", "validate_every_steps=null"])
    ckpt = [v for label, v in checkpoint_choices(ws, run) if "_gpt.pth" in v][0]
    clip = "training/demo/audio/" + sorted(p.name for p in (root / "training/demo/audio").iterdir())[0]
    out = speak_text(ws, ckpt, clip, "Hello there.")
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
