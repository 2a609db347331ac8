"""Score a run's validation steps: once (``evaluate RUN``) or following a live trainer (``--follow PID``).

One scorer per run holds ``evaluation/scorer.lock``; a second follower leaves at once and a
one-shot ``evaluate`` waits for the first to finish (then finds nothing left to do). Each sample's
scores are cached by the audio's SHA-1, each scored step appends one validation record to
``metrics.jsonl`` and goes to TensorBoard and to its state's sidecar. On the CPU the process runs
niced with one thread when the trainer starts it, so training keeps its cores.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from modules.errors import UserError
from modules.evaluation import store
from modules.evaluation.best import combined_score
from modules.evaluation.scorers import RATE, Intelligibility, ScorerUnavailable, SpeakerLikeness, cosine
from modules.evaluation.text import word_error_rate
from modules.fileutil import atomic_write_json, read_json_dict
from modules.trainer.metrics import MetricsLog
from modules.trainer.runfolder import RunPaths

FOLLOW_POLL_S = 2.0
# tests only: score each step's reference recordings as if the model had made them (a model that
# sounds right), with noise growing at every step from N on (a model getting worse)
DEGRADE_ENV = "VOICETUNE_TEST_DEGRADE_FROM_STEP"


def _alive(pid: int | None) -> bool:
    from modules.run_manager.probes import pid_alive

    return pid_alive(pid)


class Evaluator:
    """Scores of one run folder with the scorers its options (or the command line) ask for."""

    def __init__(self, run_dir: Path, workspace_root: Path, options: Any, *, seed: int = 1234,
                 dataset_dir: Path | None = None, log: Callable[[str], None] = print):
        self.run_dir = Path(run_dir)
        self.root = Path(workspace_root)
        self.options = options
        self.seed = seed
        self.dataset_dir = dataset_dir
        self.log = log
        self.whisper: Intelligibility | None = None
        self.speaker: SpeakerLikeness | None = None
        self.off: dict[str, str] = {}
        self._loaded = False
        self._refs: dict[str, Any] | None = None
        self._tb = None
        self._stop = False
        self._unscorable: set[int] = set()  # steps with nothing to score (no text, likeness off)

    # ---- scorers --------------------------------------------------------------------------------
    def device(self) -> str:
        from modules.prepare.transcribe import resolve_device

        return resolve_device(self.options.device)

    def load(self) -> None:
        """Load both scorers once; one that cannot load is noted in ``off`` and the status file. Without
        a whisper model nothing is scored (``evaluation.enabled``'s contract); without the speaker
        encoder the word error rate alone is."""
        if self._loaded:
            return
        self._loaded = True
        device = self.device()
        try:
            self.whisper = Intelligibility(self.options.whisper_model, self.options.transcriber, device,
                                           self._language(), self.root)
        except ScorerUnavailable as exc:
            self.off["val_wer"] = f"{exc}; scoring is skipped"
        try:
            if self.whisper is not None:
                self.speaker = SpeakerLikeness(device)
        except ScorerUnavailable as exc:
            self.off["val_speaker_sim"] = str(exc)
        for reason in self.off.values():
            self.log(f"scoring: {reason}")
        store.write_status(self.run_dir, off=self.off, device=device,
                           whisper=self.whisper.model_id if self.whisper else None)

    def _language(self) -> str:
        meta = read_json_dict(Path(self.dataset_dir or "") / "dataset.json") or {}
        return str((meta.get("settings") or {}).get("language") or "auto")

    @property
    def available(self) -> bool:
        return self.whisper is not None or self.speaker is not None

    def references(self) -> dict[str, Any]:
        from modules.evaluation.references import reference_stats

        if self._refs is None:
            if self.dataset_dir is None:
                raise UserError(f"{self.run_dir}: the run's dataset is unknown (no config.yaml in the run folder)")
            self._refs = reference_stats(self.run_dir, self.dataset_dir, self.options.reference_clips, self.seed,
                                         self.speaker, self.whisper, self.log)
            store.write_status(self.run_dir, speaker_sim_ceiling=self._refs.get("speaker_sim_ceiling"),
                               wer_floor=self._refs.get("wer_floor"))
        return self._refs

    # ---- one step ------------------------------------------------------------------------------
    def _audio(self, step: int, name: str) -> np.ndarray:
        from modules.audio import read_audio

        start = os.environ.get(DEGRADE_ENV, "").strip()
        folder = RunPaths(self.run_dir).sample_dir(step)
        audio, _ = read_audio(folder / (f"{name}_ref.wav" if start else f"{name}.wav"), RATE)
        if start and step >= int(start):
            # stronger noise at every later step, so each scores worse than the one before
            rank = len([s for s in store.sample_steps(self.run_dir) if int(start) <= s < step])
            level = min(1.0, 0.05 * 2 ** rank)
            noise = np.random.default_rng(step).standard_normal(len(audio)).astype(np.float32)
            audio = (1 - level) * audio + level * 0.3 * noise
        return audio

    def score_sample(self, step: int, name: str, text: str, centre: np.ndarray | None) -> dict[str, Any]:
        audio = self._audio(step, name)
        out: dict[str, Any] = {}
        if self.whisper is not None and text:
            heard = self.whisper.transcribe(audio)
            out.update(transcript=heard, wer=word_error_rate(text, heard), whisper=self.whisper.model_id)
        if self.speaker is not None and centre is not None:
            out["speaker_sim"] = cosine(self.speaker.embed(audio), centre)
        return out

    def score_step(self, step: int) -> dict[str, Any] | None:
        """Score every generated clip of ``step`` (cached ones are reused); the step's record."""
        refs = self.references()
        centre = np.asarray(refs["centre"]) if refs.get("centre") else None
        texts = store.sample_texts(self.run_dir, step, self.dataset_dir)
        cache_file = store.cache_path(self.run_dir, step)
        cache = read_json_dict(cache_file) or {}
        wers, sims = [], []
        for name in store.sample_names(self.run_dir, step):
            if self._stop:
                return None
            digest = store.file_digest(RunPaths(self.run_dir).sample_dir(step) / f"{name}.wav")
            hit = cache.get(name)
            whisper_id = self.whisper.model_id if self.whisper else None
            if not (hit and hit.get("sha1") == digest and hit.get("whisper") == whisper_id
                    and ("speaker_sim" in hit) == (self.speaker is not None)):
                hit = {"sha1": digest, "text": texts.get(name, ""), "whisper": whisper_id,
                       **self.score_sample(step, name, texts.get(name, ""), centre)}
                cache[name] = hit
                atomic_write_json(cache_file, cache)
            if "wer" in hit:
                wers.append(float(hit["wer"]))
            if "speaker_sim" in hit:
                sims.append(float(hit["speaker_sim"]))
        if not wers and not sims:
            return None
        rec: dict[str, Any] = {"step": step, "time": time.time(), "validation": True}
        epoch = next((r.get("epoch") for r in store.validation_records(self.run_dir)
                      if int(r["step"]) == step and "epoch" in r), None)
        if epoch is not None:
            rec["epoch"] = epoch
        wer = float(np.mean(wers)) if wers else None
        sim = float(np.mean(sims)) if sims else None
        if wer is not None:
            rec["val_wer"] = wer
        if sim is not None:
            rec["val_speaker_sim"] = sim
        rec["val_score"] = combined_score(wer, sim, self.options.wer_weight, self.options.speaker_weight)
        return rec

    def _publish(self, rec: dict[str, Any]) -> None:
        MetricsLog(RunPaths(self.run_dir).metrics).write(rec)
        scores = {k: v for k, v in rec.items() if k.startswith("val_")}
        store.update_sidecar(self.run_dir, int(rec["step"]), scores)
        tb = self._writer()
        if tb is not None:
            for k, v in scores.items():
                tb.add_scalar(f"val/{k[4:]}", v, int(rec["step"]))
            tb.flush()
        shown = " ".join(f"{k} {v:.4g}" for k, v in scores.items())
        self.log(f"scored step {rec['step']}: {shown}")

    def _writer(self):
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except Exception:  # noqa: BLE001 - TensorBoard is optional
                return None
            self._tb = SummaryWriter(str(RunPaths(self.run_dir).tensorboard), filename_suffix=".scores")
        return self._tb

    def sync_sidecars(self) -> None:
        """States saved after their step was scored get the scores now (the trainer writes sidecars
        without them when the scorer is still busy)."""
        for step, rec in store.scored_steps(self.run_dir).items():
            store.update_sidecar(self.run_dir, step, {k: v for k, v in rec.items() if k.startswith("val_")})

    # ---- the whole run -------------------------------------------------------------------------
    def run(self, steps: list[int] | None = None, follow_pid: int | None = None) -> int:
        """Score pending steps (and, with ``follow_pid``, new ones while that process lives);
        returns how many steps were scored."""
        scored = 0
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            while not self._stop:
                # asked before the steps are listed: a last validation written just before the trainer
                # finished is still found by this pass
                trainer_running = bool(follow_pid and self._trainer_running(follow_pid))
                pending = [s for s in store.pending_steps(self.run_dir, steps) if s not in self._unscorable]
                if pending:
                    self.load()
                    if not self.available:
                        store.write_status(self.run_dir, state="off", message="; ".join(self.off.values()))
                        return scored
                    pending = self._worth_scoring(pending)
                for step in pending:
                    if self._stop:
                        break
                    store.write_status(self.run_dir, state="scoring", message=f"scoring step {step}",
                                       pid=os.getpid(), updated=time.time())
                    try:
                        rec = self.score_step(step)
                    except Exception as exc:  # noqa: BLE001 - one bad step must not stop the others
                        self.log(f"scoring step {step} failed ({type(exc).__name__}: {exc}); the next steps go on")
                        store.write_status(self.run_dir, last_error=f"step {step}: {type(exc).__name__}: {exc}")
                        rec = None
                    self._release_gpu_cache()
                    if rec is not None:
                        self._publish(rec)
                        scored += 1
                    elif not self._stop:
                        self._unscorable.add(step)
                self.sync_sidecars()
                if not pending and not trainer_running:
                    break
                if not pending:
                    time.sleep(FOLLOW_POLL_S)
            store.write_status(self.run_dir, state="idle", message=f"{scored} step(s) scored", updated=time.time())
            return scored
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
            if self._tb is not None:
                self._tb.close()

    def _worth_scoring(self, pending: list[int]) -> list[int]:
        """Steps whose record lacks a part only because its scorer was off are scored again when that
        scorer is on now; steps whose record already holds every part the scorers here can give are
        left alone (``evaluate`` with a scorer still off does no work twice)."""
        can = {k for k, on in (("val_wer", self.whisper), ("val_speaker_sim", self.speaker)) if on is not None}
        have = store.scored_steps(self.run_dir)
        out = []
        for step in pending:
            if step in have and can <= set(have[step]):
                self._unscorable.add(step)
                continue
            out.append(step)
        return out

    def _release_gpu_cache(self) -> None:
        """On a shared GPU the scorer keeps no cached blocks between steps: training may need them."""
        import sys

        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _trainer_running(self, pid: int) -> bool:
        """The followed trainer still trains this run (it may live on after it, e.g. inside a test)."""
        from modules.trainer.runfolder import read_status

        status = read_status(self.run_dir) or {}
        return _alive(pid) and status.get("state") == "running" and int(status.get("pid") or 0) == pid

    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002
        self._stop = True


class ScorerLock:
    """``evaluation/scorer.lock``: one scorer per run folder (an flock, gone with its process)."""

    def __init__(self, run_dir: Path):
        self.path = store.evaluation_dir(run_dir) / "scorer.lock"
        self.fh = None

    def acquire(self, wait: bool) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            self.fh.close()
            self.fh = None
            return False
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(str(os.getpid()))
        self.fh.flush()
        return True

    def holder(self) -> int | None:
        """The pid written by the process holding the lock (None when nobody holds it)."""
        if not self.path.is_file():
            return None
        if self.acquire(wait=False):
            self.release()
            return None
        try:
            return int(self.path.read_text().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.fh is not None:
            fcntl.flock(self.fh, fcntl.LOCK_UN)
            self.fh.close()
            self.fh = None


def stop_scorer(run_dir: Path, timeout: float = 30.0) -> bool:
    """Stop the scorer working on ``run_dir`` (SIGTERM: it finishes its sample; SIGKILL after
    ``timeout``); True when one was running. A trainer calls this before it touches the folder."""
    lock = ScorerLock(run_dir)
    pid = lock.holder()
    if pid is None:
        return False
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        end = time.monotonic() + wait
        while time.monotonic() < end:
            if lock.holder() is None:
                return True
            time.sleep(0.1)
    return True

