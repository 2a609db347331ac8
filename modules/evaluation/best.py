"""The combined score, the best step and the overfitting alarm, from a run's scored records.

score = speaker_weight x val_speaker_sim - wer_weight x min(val_wer, 1)   (higher is better)

With the default weights 1 and 1 a perfectly intelligible sample in the reference speaker's voice
scores about the references' own ceiling (0.8-0.95 with resemblyzer); every word in ten wrong costs
0.1. A score whose part is missing (a scorer was off) counts that part as 0.

The alarm: the last ``patience`` scored validations are all worse than the best so far while the
training loss at the newest of them is lower than at the best step, i.e. the model keeps fitting
its training clips and its validation audio gets worse (overfitting, or a collapse into babble).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ScoredStep:
    step: int
    wer: float | None
    speaker_sim: float | None
    score: float

    def describe(self) -> str:
        parts = [f"score {self.score:.3f}"]
        if self.wer is not None:
            parts.append(f"WER {self.wer:.1%}")
        if self.speaker_sim is not None:
            parts.append(f"likeness {self.speaker_sim:.3f}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Alarm:
    best: ScoredStep
    worse: list[ScoredStep]
    message: str


def _float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f else None


def combined_score(wer: float | None, speaker_sim: float | None, wer_weight: float = 1.0,
                   speaker_weight: float = 1.0) -> float:
    """See the module docstring; a missing part counts as 0."""
    return (speaker_weight * (speaker_sim or 0.0)) - wer_weight * min(wer if wer is not None else 0.0, 1.0)


def scored_series(records: dict[int, dict[str, Any]], wer_weight: float = 1.0,
                  speaker_weight: float = 1.0) -> list[ScoredStep]:
    """Scored steps, oldest first, from ``store.scored_steps``'s step -> record map. Once some step
    holds both parts, steps holding only one are left out: a score missing its WER part is not
    comparable with one that has it."""
    complete = [s for s, r in records.items() if _float(r.get("val_wer")) is not None
                and _float(r.get("val_speaker_sim")) is not None]
    if complete:
        records = {s: records[s] for s in complete}
    out = []
    for step in sorted(records):
        rec = records[step]
        wer, sim = _float(rec.get("val_wer")), _float(rec.get("val_speaker_sim"))
        if wer is None and sim is None:
            continue
        out.append(ScoredStep(step, wer, sim, combined_score(wer, sim, wer_weight, speaker_weight)))
    return out


def best_of(series: list[ScoredStep], available: set[int] | None = None) -> ScoredStep | None:
    """The highest score (the earliest of equals); only steps in ``available`` when given."""
    pool = [s for s in series if available is None or s.step in available]
    return max(pool, key=lambda s: (s.score, -s.step)) if pool else None


def _loss_near(train: list[tuple[int, float]], step: int, window: int = 5) -> float | None:
    """Mean of the last ``window`` logged training losses at or before ``step``."""
    vals = [v for s, v in train if s <= step][-window:]
    return sum(vals) / len(vals) if vals else None


def overfitting_alarm(series: list[ScoredStep], train: list[tuple[int, float]], patience: int) -> Alarm | None:
    """The alarm of the module docstring, or None."""
    if len(series) < patience + 1:
        return None
    best = best_of(series)
    tail = series[-patience:]
    if best is None or any(s.step <= best.step or s.score >= best.score for s in tail):
        return None
    now, then = _loss_near(train, tail[-1].step), _loss_near(train, best.step)
    if now is None or then is None or now >= then:
        return None
    return Alarm(best, tail, f"validation score worse than step {best.step}'s for {patience} validations in a "
                             f"row (steps {', '.join(str(s.step) for s in tail)}) while the training loss kept "
                             f"falling ({then:.4g} -> {now:.4g}): the model may be overfitting; the best "
                             f"checkpoint so far is step {best.step} ({best.describe()})")


def train_curve(records: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    """(step, loss) of the training records that log ``key``."""
    out = []
    for r in records:
        if not r.get("validation") and _float(r.get(key)) is not None:
            out.append((int(r["step"]), float(r[key])))
    return out


def main_loss_of(model: str | None) -> str:
    """The training loss a model's recipe reports as its main one (what the alarm watches)."""
    from modules import model_registry

    if model not in model_registry.SPECS:
        return "loss"
    return str(getattr(model_registry.get(model).recipe_class(), "main_loss", "loss"))


@dataclass(frozen=True)
class RunVerdict:
    """What the UI and the export need to know about a run's scores."""

    series: list[ScoredStep]
    best: ScoredStep | None
    alarm: Alarm | None


def run_verdict(run_dir: Path, options: Any = None, model: str | None = None) -> RunVerdict:
    """Scores, best step and alarm of a run folder (weights and patience from its config)."""
    from modules.evaluation import store
    from modules.trainer.metrics import read_metrics
    from modules.trainer.runfolder import RunPaths

    if options is None:
        options, model = run_options(run_dir)
    series = scored_series(store.scored_steps(run_dir), options.wer_weight, options.speaker_weight)
    records = read_metrics(RunPaths(Path(run_dir)).metrics)
    alarm = overfitting_alarm(series, train_curve(records, main_loss_of(model)), options.patience)
    return RunVerdict(series, best_of(series), alarm)


def run_options(run_dir: Path) -> tuple[Any, str | None]:
    """The run's ``evaluation`` options and model from its ``config.yaml`` (defaults when unreadable)."""
    from modules.config.schema import load_config
    from modules.errors import UserError
    from modules.evaluation.options import EvaluationOptions
    from modules.trainer.runfolder import RunPaths

    try:
        config = load_config(RunPaths(Path(run_dir)).config)
    except (UserError, OSError, ValueError):
        return EvaluationOptions(), None
    return config.evaluation, config.model
