"""The Prepare tab's clip table as plain pandas: merge what the user edited, filter, delete, tick.

No Gradio here, so every rule of the editor (rows matched by file name, never by position; only
the editable columns taken from the shown table) is testable without a browser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from modules.workspace import Workspace

DELETE_COLUMN = "delete"
VIEW_COLUMNS = [DELETE_COLUMN, "file", "split", "duration", "text", "flags"]
EDITABLE_COLUMNS = {DELETE_COLUMN, "split", "text"}


def empty_table() -> pd.DataFrame:
    """The editor's table with no clips (columns in place so the header still shows)."""
    return pd.DataFrame({c: pd.Series(dtype="bool" if c == DELETE_COLUMN else "object") for c in VIEW_COLUMNS})


def with_delete_column(table: pd.DataFrame) -> pd.DataFrame:
    """The engine's clip table plus the tick-box column the user marks clips for deletion in."""
    out = table.copy()
    out.insert(0, DELETE_COLUMN, False)
    return out[VIEW_COLUMNS + [c for c in out.columns if c not in VIEW_COLUMNS]]


def is_ticked(value: Any) -> bool:
    """Whether a 'delete' cell counts as ticked (the browser may send bools, strings or NaN)."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "x")
    try:
        return bool(value) and value == value  # NaN is not a tick
    except Exception:
        return False


def ticked_mask(full: pd.DataFrame) -> pd.Series:
    """Rows ticked for deletion."""
    return full[DELETE_COLUMN].map(is_ticked)


def flagged_mask(full: pd.DataFrame) -> pd.Series:
    """Rows the engine flagged as suspicious (a non-blank ``flags`` cell)."""
    return full["flags"].fillna("").astype(str).str.strip() != ""


def merge_view(full: pd.DataFrame, view: pd.DataFrame | None, only_flagged: bool = False) -> pd.DataFrame:
    """Carry what the user did in the shown table (maybe filtered) into the full table.

    Rows are matched by ``file`` (never by position), so a filtered or re-sorted view merges safely;
    only the editable columns are taken over. A row the user removed with the table's own row menu
    (present in what was shown, ``only_flagged`` telling which rows that was, but gone from ``view``)
    is removed here too, like a deleted clip; blank rows the user added are ignored.
    """
    if view is None or len(view) == 0 or "file" not in view.columns or len(full) == 0:
        return full
    out = full.copy()
    view_files = set(view["file"].astype(str))
    shown = set(visible_rows(full, only_flagged)["file"].astype(str))
    if view_files & shown:
        gone = shown - view_files
        if gone:
            out = out[~out["file"].astype(str).isin(gone)].reset_index(drop=True)
    index = {str(f): i for i, f in enumerate(out["file"].astype(str))}
    for _, row in view.iterrows():
        i = index.get(str(row["file"]))
        if i is None:
            continue
        for column in EDITABLE_COLUMNS:
            if column not in view.columns:
                continue
            value = row[column]
            if column == DELETE_COLUMN:
                out.iat[i, out.columns.get_loc(column)] = is_ticked(value)
            else:
                out.iat[i, out.columns.get_loc(column)] = "" if value is None or value != value else str(value)
    return out


def visible_rows(full: pd.DataFrame, only_flagged: bool) -> pd.DataFrame:
    """The rows to show: all clips, or only those with a flag (to review the suspicious ones)."""
    if not only_flagged or len(full) == 0:
        return full.reset_index(drop=True)
    return full[flagged_mask(full)].reset_index(drop=True)


def find_clip(full: pd.DataFrame, file: str) -> pd.Series | None:
    """The row of clip ``file``, or None when the table no longer has it."""
    match = full[full["file"].astype(str) == file]
    return None if match.empty else match.iloc[0]


def set_clip_text(full: pd.DataFrame, file: str, text: str | None) -> pd.DataFrame:
    """A copy with the transcript of ``file`` replaced (whitespace collapsed, as the engine writes it)."""
    out = full.copy()
    out.loc[out["file"].astype(str) == file, "text"] = " ".join(str(text or "").split())
    return out


def drop_clip(full: pd.DataFrame, file: str) -> pd.DataFrame:
    """The table without clip ``file``."""
    return full[full["file"].astype(str) != file].reset_index(drop=True)


def drop_ticked(full: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The table without the rows ticked for deletion, and how many were dropped."""
    ticked = ticked_mask(full)
    return full[~ticked].reset_index(drop=True), int(ticked.sum())


def tick_flagged(full: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """A copy with every flagged clip ticked for deletion, and how many clips are flagged."""
    out = full.copy()
    flagged = flagged_mask(out)
    out.loc[flagged, DELETE_COLUMN] = True
    return out, int(flagged.sum())


def clip_path(workspace: Workspace, dataset: str, file: str) -> Path:
    """Absolute path of a clip named in the table, refusing anything outside the dataset folder."""
    dataset_dir = workspace.dataset_dir(dataset)
    path = workspace.inside(dataset_dir / file)
    if dataset_dir.resolve() not in path.parents:
        raise ValueError(f"{file}: not inside {dataset_dir}")
    return path
