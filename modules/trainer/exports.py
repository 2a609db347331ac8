"""Which interchange files (jik876 ``g_``/``do_``, tortoise ``_gpt.pth``) a run keeps.

A state already holds everything; the recipe's export files exist so other tools can load the
result. Writing them at every save doubles disk use for the same information, so by default a
run keeps the exports of its newest state, of its best validation (lowest main metric) and, when
validation audio is scored, of the best-scored step and of steps whose scores are still coming only;
``export_every_save: true`` keeps every one. ``checkpoints/exports.json`` records what was written
at which step, so a kill between the state and its export is noticed and repaired at the next
start (the export is written again from that state).
"""

from __future__ import annotations

from pathlib import Path

from modules.fileutil import atomic_write_json, read_json_dict

RECORD = "exports.json"


def _record(ckpt_dir: Path) -> dict:
    data = read_json_dict(Path(ckpt_dir) / RECORD) or {}
    data.setdefault("exports", {})
    return data


def _step_files(paths: list[Path], step: int) -> list[str]:
    """The files of this step only (shared files such as config.json are never pruned)."""
    tag = f"{step:08d}"
    return sorted(Path(p).name for p in paths if tag in Path(p).name)


def record(ckpt_dir: Path, step: int, paths: list[Path], val_loss: float | None) -> None:
    """Note an export of ``step`` (and whether its validation is the best so far)."""
    data = _record(ckpt_dir)
    data["exports"][str(step)] = _step_files(paths, step)
    best = data.get("best")
    if val_loss is not None and (best is None or val_loss < float(best["value"])):
        data["best"] = {"step": step, "value": float(val_loss)}
    atomic_write_json(Path(ckpt_dir) / RECORD, data)


def missing(ckpt_dir: Path, step: int) -> bool:
    """True when the export of ``step`` was never completed (or a file of it is gone)."""
    names = _record(ckpt_dir)["exports"].get(str(step))
    return not names or not all((Path(ckpt_dir) / n).is_file() for n in names)


def prune(ckpt_dir: Path, newest: int, keep_every: bool, also_keep: set[int] | frozenset[int] = frozenset()
          ) -> list[Path]:
    """Delete the exports of steps other than the newest, the best validation loss and ``also_keep``
    (the best-scored step and steps still waiting for their scores), unless ``keep_every``."""
    if keep_every:
        return []
    data = _record(ckpt_dir)
    keep = {str(newest)} | ({str(data["best"]["step"])} if data.get("best") else set()) | {str(s) for s in also_keep}
    removed = []
    for step, names in list(data["exports"].items()):
        if step in keep:
            continue
        for name in names:
            p = Path(ckpt_dir) / name
            if p.is_file():
                p.unlink()
                removed.append(p)
        del data["exports"][step]
    atomic_write_json(Path(ckpt_dir) / RECORD, data)
    return removed
