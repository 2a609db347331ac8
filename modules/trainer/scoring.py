"""The trainer's side of validation scoring (``modules.evaluation``): start the run's scorer process
after a validation, watch its scores for the overfitting alarm, keep the best-scored export.

Training never waits for the scorer: it reads whatever scores have arrived when it validates, so a
decision (the alarm, ``evaluation.stop_when_worse``) lags the scores by a validation or two.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from modules.trainer.logs import get_logger

log = get_logger("trainer")
MAX_WAITING_EXPORTS = 3  # exports of unscored validation steps kept while the scorer catches up


class ScoringHook:
    """Owned by the trainer on rank 0; every method is cheap (reads small JSON files)."""

    def __init__(self, trainer: Any):
        self.t = trainer
        self.options = trainer.config.evaluation
        self.proc: subprocess.Popen | None = None
        self.alarm_key: tuple | None = None
        self.reported_off: set[str] = set()
        self.stop_reason: str | None = None
        if self.enabled:  # an alarm raised before this start (e.g. the one that stopped it) is not news
            alarm = self._alarm()
            self.alarm_key = (alarm.best.step, alarm.worse[-1].step) if alarm else None

    @property
    def enabled(self) -> bool:
        return bool(self.options.enabled and self.t.config.validation_samples and self.t.main)

    def scorer_alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def after_validation(self, made_samples: bool) -> None:
        """Start the scorer when none runs (and there is audio to score), report a scorer that is
        off, check the alarm."""
        if not self.enabled:
            return
        if made_samples and not self.scorer_alive():
            self._start()
        self._report_off()
        self._check_alarm()

    def _start(self) -> None:
        from modules.evaluation import store

        run_dir = self.t.run_dir
        store.evaluation_dir(run_dir).mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "modules", "--workspace", str(self.t.workspace.root), "evaluate", str(run_dir),
               "--follow", str(os.getpid())]
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        env.pop("RANK", None)
        env.pop("WORLD_SIZE", None)
        env.pop("LOCAL_RANK", None)
        with open(store.evaluation_dir(run_dir) / "scorer.log", "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, cwd=str(Path(__file__).resolve().parents[2]))
        log.info(f"scoring validation audio in process {self.proc.pid} (evaluation/scorer.log)")

    def _report_off(self) -> None:
        from modules.evaluation import store

        for key, reason in (store.read_status(self.t.run_dir).get("off") or {}).items():
            if key not in self.reported_off:
                self.reported_off.add(key)
                log.warning(f"scoring: {reason}; training goes on")

    def _alarm(self):
        from modules.evaluation.best import overfitting_alarm, scored_series, train_curve
        from modules.evaluation.store import scored_steps
        from modules.trainer.metrics import read_metrics

        o = self.options
        series = scored_series(scored_steps(self.t.run_dir), o.wer_weight, o.speaker_weight)
        main = getattr(self.t.recipe, "main_loss", "loss")
        return overfitting_alarm(series, train_curve(read_metrics(self.t.paths.metrics), main), o.patience)

    def after_run(self) -> None:
        """At the end of the run: a scorer that is off is reported even when no validation followed."""
        if self.enabled:
            self._report_off()

    def _check_alarm(self) -> None:
        o = self.options
        alarm = self._alarm()
        if alarm is None:
            return
        key = (alarm.best.step, alarm.worse[-1].step)
        if key == self.alarm_key:
            return
        self.alarm_key = key
        log.warning(f"overfitting alarm: {alarm.message}")
        if self.t.status:
            self.t.status.update(alarm=alarm.message)
        if o.stop_when_worse:
            self.stop_reason = (f"stopped at step {self.t.step} by evaluation.stop_when_worse: {alarm.message}")

    def protected_steps(self) -> set[int]:
        """Exports pruning must keep: the best-scored step, and validated steps whose scores have
        not arrived while the scorer still works."""
        if not self.enabled:
            return set()
        from modules.evaluation.best import best_of, scored_series
        from modules.evaluation.store import sample_steps, scored_steps

        scored = scored_steps(self.t.run_dir)
        keep = set()
        best = best_of(scored_series(scored, self.options.wer_weight, self.options.speaker_weight))
        if best is not None:
            keep.add(best.step)
        if self.scorer_alive():  # the newest few only: a starved scorer must not keep every export
            waiting = [s for s in sample_steps(self.t.run_dir) if s not in scored and s <= self.t.step]
            keep |= set(waiting[-MAX_WAITING_EXPORTS:])
        return keep
