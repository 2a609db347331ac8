"""Progress text of the Run Training tab: the status line with its progress bar and a failed run's message."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from modules.run_manager.metrics import format_duration

if TYPE_CHECKING:
    from modules import run_manager as runs

STATE_COLOURS = {"running": "#2563eb", "starting": "#2563eb", "finished": "#15803d", "stopped": "#a16207",
                 "failed": "#b91c1c", "idle": "#6b7280"}


def status_html(st: "runs.RunStatus", prog: dict[str, Any] | None, run_label: str) -> str:
    """State badge, step/total, epoch, speed, ETA and a progress bar; data-* attributes for tests."""
    prog = prog or {}
    step = st.step if st.step is not None else prog.get("step")
    total = st.total_steps
    colour = STATE_COLOURS.get(st.state, "#6b7280")
    parts = [f'<b style="color:{colour}" class="vt-state">{html.escape(st.state)}</b>']
    if run_label:
        parts.append(html.escape(run_label))
    if step is not None:
        parts.append(f"step {step}" + (f" / {total}" if total else ""))
    if st.epoch is not None:
        parts.append(f"epoch {st.epoch:.4g}")
    if prog.get("its"):
        parts.append(f"{prog['its']:.2f} it/s")
    if st.active and prog.get("eta_s") is not None:
        parts.append(f"ETA {format_duration(prog['eta_s'])}")
    if st.pid and st.active:
        parts.append(f"pid {st.pid}")
    frac = prog.get("fraction")
    if frac is None and step is not None and total:
        frac = min(1.0, step / total)
    bar = (f'<progress max="1" value="{frac:.4f}" style="width:100%"></progress>' if frac is not None else "")
    return (f'<div id="train-progress" data-state="{html.escape(st.state)}"'
            f' data-step="{step if step is not None else ""}"'
            f' data-pid="{st.pid or ""}">{" · ".join(parts)}{bar}</div>')


def failure_text(st: "runs.RunStatus") -> str:
    """The trainer's own message for a failed run, then the tail of its log."""
    if st.state != "failed":
        return ""
    text = st.message or "The run failed."
    if st.log_tail:
        text += "\n\n--- last log lines ---\n" + st.log_tail
    return text
