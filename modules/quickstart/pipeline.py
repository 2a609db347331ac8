"""The quick-start pipeline: prepare → review hint → configs → queued training → scores → what to try.

Its state is ``training/VOICE/quickstart.json`` (the stage reached, the configs and queue jobs it
made), so running it again after closing the UI or a crash continues where it was: a prepared
dataset is kept, configs are not written twice, finished jobs are not queued again, and scoring is
idempotent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from modules.errors import UserError
from modules.fileutil import atomic_write_json, read_json_dict
from modules.workspace import Workspace

STAGES = ("prepare", "review", "configs", "train", "scores", "done")
# demo sizes: the tiny HiFi-GAN the tests train on the CPU in seconds (not a useful vocoder)
DEMO_HIFIGAN = {"preset": "custom", "segment_size": 2048, "resblock": "1", "upsample_rates": [8, 8, 4],
                "upsample_kernel_sizes": [16, 16, 8], "upsample_initial_channel": 32, "resblock_kernel_sizes": [3],
                "resblock_dilation_sizes": [[1, 3]], "discriminator_width": 0.0625}
DEMO_STEPS = 12


@dataclass
class QuickstartOptions:
    models: list[str] = field(default_factory=lambda: ["hifigan", "autoregressive"])
    tiny: bool = False
    transcriber: str = "faster-whisper"
    whisper_model: str | None = None  # Prepare's and the scorer's model (None: their defaults)
    drop_flagged: bool = False  # the review stage removes the clips Prepare flagged


def state_path(ws: Workspace, voice: str) -> Path:
    return ws.training / voice / "quickstart.json"


def read_state(ws: Workspace, voice: str) -> dict[str, Any]:
    return read_json_dict(state_path(ws, voice)) or {"stage": "prepare", "configs": {}, "jobs": {}}


def _save(ws: Workspace, voice: str, state: dict[str, Any]) -> None:
    state["updated"] = time.time()
    atomic_write_json(state_path(ws, voice), state)


def _prepare(ws: Workspace, voice: str, options: QuickstartOptions, log: Callable[[str], None]) -> None:
    from modules.prepare.options import PrepareOptions
    from modules.prepare.pipeline import prepare_voice

    kw: dict[str, Any] = {"transcriber": options.transcriber, "skip_existing": True}
    if options.whisper_model:
        kw["model"] = options.whisper_model
    result = prepare_voice(ws, voice, PrepareOptions(**kw), log=log)
    log(f"prepared {result.clips} clips ({result.total_seconds / 60:.1f} min): {result.train} train, "
        f"{result.validation} validation")


def flagged_clips(ws: Workspace, voice: str) -> list[tuple[str, str]]:
    """(file, flags) of the clips Prepare flagged (silence, clipping, an odd text, ...)."""
    meta = read_json_dict(ws.training / voice / "dataset.json") or {}
    return [(c["file"], ", ".join(c["flags"])) for c in meta.get("clips", []) if c.get("flags")]


def drop_flagged(ws: Workspace, voice: str) -> list[str]:
    """Remove the flagged clips from the dataset (the Prepare editor's delete); the files dropped."""
    from modules.prepare.editor import load_table, save_table

    dataset = ws.training / voice
    table = load_table(dataset)
    flagged = table[table["flags"].astype(str).str.strip() != ""]
    if flagged.empty:
        return []
    save_table(dataset, table[table["flags"].astype(str).str.strip() == ""])
    return list(flagged["file"])


def _review(ws: Workspace, voice: str, options: QuickstartOptions, log: Callable[[str], None]) -> None:
    flagged = flagged_clips(ws, voice)
    if not flagged:
        log("review: no clip is flagged")
    elif options.drop_flagged:
        dropped = drop_flagged(ws, voice)
        log(f"review: dropped {len(dropped)} flagged clip(s): {', '.join(dropped[:5])}")
    else:
        log(f"review: {len(flagged)} clip(s) are flagged (e.g. {flagged[0][0]}: {flagged[0][1]}); drop them with "
            "--drop-flagged (the tab's checkbox) or in the Prepare tab's editor")


def base_for(ws: Workspace, model: str) -> str | None:
    """The model's base checkpoint in ``models/`` (the first the Configure tab would offer), or None."""
    from modules.run_manager.discovery import list_base_models

    own = [b for b in list_base_models(ws, model) if b.startswith("models/")]
    return own[0] if own else None


def _config(ws: Workspace, voice: str, model: str, options: QuickstartOptions, log: Callable[[str], None]) -> Path:
    from modules.config.auto import apply, derive
    from modules.config.schema import apply_overrides, default_config, save_config

    dataset = f"training/{voice}"
    base = base_for(ws, model)
    demo = model == "autoregressive" and not all((ws.models / "tortoise" / f).is_file()
                                                 for f in ("tokenizer.json", "dvae.pth", "mel_norms.pth"))
    # no base to fine-tune (or no tortoise files): a tiny model from scratch, labelled as a demo
    tiny = options.tiny or demo or base is None
    config = default_config(model, dataset, preset="tiny" if tiny and model == "autoregressive" else None)
    sets = [f"run_name=quickstart-{model}"]
    if demo:
        from modules.autoregressive.demo_files import build_demo_files

        folder = ws.training / voice / "runs" / f"quickstart-{model}" / "demo-files"
        files = build_demo_files(ws.training / voice, folder)
        sets += [f"autoregressive.{k}={ws.relative(p)}" for k, p in files.items()]
        base = None
        log(f"autoregressive: no tortoise files in models/tortoise/: a DEMO model built from this dataset (a BPE "
            f"tokenizer, mel norms and a small DVAE in {ws.relative(folder)}/), tiny, from scratch; it shows "
            "the whole path, it does not sound like tortoise")
    if base and not options.tiny:
        config.base = base
    if options.whisper_model:
        sets.append(f"evaluation.whisper_model={options.whisper_model}")
    config = apply_overrides(config, sets)
    if tiny:
        import json

        demo = [f"max_steps={DEMO_STEPS}", "validate_every_steps=4", "save_every_steps=4", "batch_size=2",
                "num_workers=0", "gpus=0", "validation_samples=1"]
        if model == "hifigan":
            demo += [f"hifigan.{k}={json.dumps(v)}" for k, v in DEMO_HIFIGAN.items()]
        config = apply_overrides(config, demo)
        why = "--tiny" if options.tiny else "no base checkpoint to fine-tune"
        log(f"{model}: demo sizes ({why}), {DEMO_STEPS} steps on the CPU: a demo, not a useful model")
    else:
        derived = derive(config, ws)
        config = apply(config, derived)
        for d in derived:
            log(f"{model}: {d.line()}")
    if not base:
        log(f"{model}: no base checkpoint in models/{model if model == 'hifigan' else 'tortoise'}/: trained from "
            "scratch")
    return save_config(config, ws.training / voice / "configs" / f"quickstart-{model}.yaml")


def _wait_for_jobs(ws: Workspace, ids: list[str], log: Callable[[str], None], poll: float = 2.0) -> dict[str, str]:
    """Run the queue here, or wait for the runner that has it (the UI's), until ``ids`` are finished."""
    from modules.run_manager import queue

    said: set[str] = set()

    def once(message: str) -> None:  # "another runner has the queue" would repeat every poll
        if message not in said:
            said.add(message)
            log(message)

    while True:
        queue.run_queue(ws, log=once)
        states = {j["id"]: j["state"] for j in queue.jobs(ws) if j["id"] in ids}
        if all(s in (queue.DONE, queue.FAILED) for s in states.values()):
            return states
        time.sleep(poll)


def run_quickstart(ws: Workspace, voice: str, options: QuickstartOptions,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every stage from the one the state file says; returns the final state."""
    from modules.run_manager import queue

    state = read_state(ws, voice)
    missing = [m for m in options.models if m not in state["configs"]]
    if missing and STAGES.index(state["stage"]) > STAGES.index("configs"):
        state["stage"] = "configs"  # models added (or skipped before): configure and train them too
    if STAGES.index(state["stage"]) <= STAGES.index("prepare"):
        if not (ws.training / voice / "train.txt").is_file() or state["stage"] == "prepare":
            _prepare(ws, voice, options, log)
        state["stage"] = "review"
        _save(ws, voice, state)
    if state["stage"] == "review":
        _review(ws, voice, options, log)
        state["stage"] = "configs"
        _save(ws, voice, state)
    if state["stage"] == "configs":
        for model in options.models:
            if model in state["configs"]:
                continue
            state.get("skipped", {}).pop(model, None)
            try:
                state["configs"][model] = ws.relative(_config(ws, voice, model, options, log))
            except UserError as exc:
                log(str(exc))
                state.setdefault("skipped", {})[model] = str(exc)
        state["stage"] = "train"
        _save(ws, voice, state)
    if state["stage"] == "train":
        queue.mark_interrupted(ws)  # a job whose runner died (a crash, a reboot) is failed, not running
        by_id = {j["id"]: j for j in queue.jobs(ws)}
        for model, config in state["configs"].items():
            job = by_id.get(state["jobs"].get(model, ""))
            if job is None or job["state"] == queue.FAILED:
                # again, continuing from the run's newest state when an earlier attempt saved one
                run = ws.training / voice / "runs" / f"quickstart-{model}" / "states"
                resume = "latest" if run.is_dir() and any(run.glob("step_*.pt")) else None
                state["jobs"][model] = queue.add(ws, config, resume=resume)["id"]
                _save(ws, voice, state)
        finished = _wait_for_jobs(ws, list(state["jobs"].values()), log)
        state["results"] = {model: finished.get(job) for model, job in state["jobs"].items()}
        state["stage"] = "scores"
        _save(ws, voice, state)
    if state["stage"] == "scores":
        state["best"] = _scores(ws, voice, state, log)
        state["stage"] = "done"
        _save(ws, voice, state)
    _next_steps(ws, voice, state, log)
    return state


def _scores(ws: Workspace, voice: str, state: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    from modules.config.schema import load_config
    from modules.evaluation.best import run_verdict
    from modules.evaluation.runner import Evaluator, ScorerLock

    best = {}
    for model in state["configs"]:
        run = ws.training / voice / "runs" / f"quickstart-{model}"
        if not (run / "config.yaml").is_file():
            continue
        config = load_config(run / "config.yaml")
        lock = ScorerLock(run)
        lock.acquire(wait=True)  # the run's own scorer finishes first
        try:
            Evaluator(run, ws.root, config.evaluation, seed=config.seed, dataset_dir=ws.training / voice,
                      log=log).run()
        finally:
            lock.release()
        verdict = run_verdict(run)
        best[model] = verdict.best.step if verdict.best else None
        log(f"{model}: " + (f"best checkpoint step {verdict.best.step} ({verdict.best.describe()})" if verdict.best
                            else "no scores (see the run's evaluation/status.json)"))
    return best


def _next_steps(ws: Workspace, voice: str, state: dict[str, Any], log: Callable[[str], None]) -> None:
    for model in state.get("configs", {}):
        run = ws.relative(ws.training / voice / "runs" / f"quickstart-{model}")
        log(f"{model}: listen in the Run tab's Try it, or `python -m modules export {run} --best --out "
            f"exports/{voice}-{model}`")
