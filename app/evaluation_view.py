"""What the Run Training tab shows of validation scoring: the scorer's state, the best step, the
overfitting alarm, labels that mark the best checkpoint, and the export of it. Pure helpers (no
Gradio); the scores are read from the run folder (``modules.evaluation``) on each call."""

from __future__ import annotations

import re
from pathlib import Path

from modules.errors import UserError
from modules.evaluation.best import RunVerdict, ScoredStep, run_verdict
from modules.workspace import Workspace

BEST = "★ best"


_VERDICTS: dict[str, tuple[tuple, RunVerdict]] = {}  # run folder -> (metrics file identity, verdict)


def verdict(run_dir: Path | None) -> RunVerdict | None:
    """The run's scores, best step and alarm (None without a run folder or an unreadable one);
    read again only when ``metrics.jsonl`` changed (the tab asks every two seconds)."""
    if run_dir is None or not Path(run_dir).is_dir():
        return None
    metrics = Path(run_dir) / "metrics.jsonl"
    try:
        st = metrics.stat()
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
    except OSError:
        key = ()
    hit = _VERDICTS.get(str(run_dir))
    if hit is not None and hit[0] == key:
        return hit[1]
    try:
        found = run_verdict(Path(run_dir))
    except (UserError, OSError, ValueError):
        return None
    if len(_VERDICTS) > 64:
        _VERDICTS.clear()
    _VERDICTS[str(run_dir)] = (key, found)
    return found


def best_step(run_dir: Path | None) -> ScoredStep | None:
    v = verdict(run_dir)
    return v.best if v else None


def file_step(path: Path) -> int:
    """The step of an export file (``g_00000300``, ``00000300_gpt.pth``); -1 when it names none."""
    m = re.search(r"(\d{8})", Path(path).name)
    return int(m.group(1)) if m else -1


def mark_best(label: str, step: int, best: ScoredStep | None) -> str:
    """``label`` with the best mark when ``step`` is the best-scored one."""
    return f"{label} · {BEST} ({best.describe()})" if best is not None and step == best.step else label


def best_summary(best: ScoredStep | None) -> str:
    """The runs list's "best" cell."""
    return f"step {best.step}: {best.describe()}" if best is not None else ""


def evaluation_markdown(run_dir: Path | None) -> str:
    """Scorer state, best step, reference ceiling and floor, and the alarm as a warning."""
    from modules.evaluation import store

    if run_dir is None:
        return ""
    status = store.read_status(run_dir)
    v = verdict(run_dir)
    lines = []
    if v is not None and v.alarm is not None:
        lines.append(f"⚠️ **Overfitting alarm:** {v.alarm.message}.")
    if v is not None and v.best is not None:
        lines.append(f"**Best checkpoint: step {v.best.step}** ({v.best.describe()}; "
                     f"{len(v.series)} validation step(s) scored).")
    ceiling, floor = status.get("speaker_sim_ceiling"), status.get("wer_floor")
    if ceiling is not None or floor is not None:
        parts = []
        if ceiling is not None:
            parts.append(f"likeness ceiling {ceiling:.3f}")
        if floor is not None:
            parts.append(f"WER floor {floor:.1%}")
        lines.append("The voice's own references: " + ", ".join(parts) + " (what a perfect model would score).")
    for reason in (status.get("off") or {}).values():
        lines.append(f"Scoring: {reason}.")
    if status.get("state") == "scoring":
        lines.append(f"Scorer: {status.get('message', 'scoring')}.")
    return "\n\n".join(lines)


def export_folder(ws: Workspace, run_dir: Path, step: int) -> Path:
    """Where the UI's export goes: ``models/exports/DATASET-RUN-step_N/`` (inside the workspace)."""
    return ws.models / "exports" / f"{run_dir.parent.parent.name}-{run_dir.name}-step_{step:08d}"


def export_best(ws: Workspace, run_dir: Path):
    """``export RUN --best`` into ``export_folder`` (the Export best button)."""
    from modules.evaluation.export import choose_step, export_checkpoint

    run_dir = ws.inside(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{ws.relative(run_dir)}: not a run folder; pick a run in the list")
    step, _, note = choose_step(run_dir, None, best=True)
    result = export_checkpoint(ws, run_dir, export_folder(ws, run_dir, step), step=step)
    result.note = note
    return result
