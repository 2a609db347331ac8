"""Learning-rate schedules and epoch arithmetic as pure functions (no torch).

The trainer wraps ``lr_factor`` in a ``LambdaLR`` and the UI plots it, so the
curve the user sees is the one that trains. ``step`` counts optimizer steps
from 0: optimizer step number ``k + 1`` runs with ``lr_factor(..., k, ...)``.
"""

from __future__ import annotations

import math
from typing import Any


def _get(schedule: Any, name: str, default: Any) -> Any:
    if isinstance(schedule, dict):
        return schedule.get(name, default)
    return getattr(schedule, name, default)


def lr_factor(schedule: Any, step: int, steps_per_epoch: int, total_steps: int | None = None) -> float:
    """Multiplier of the base learning rate for optimizer step ``step`` (0-based).

    ``schedule`` is an ``LRSchedule`` (or a dict with its keys). Epoch-based
    parts use whole epochs completed (``step // steps_per_epoch``), as jik876's
    per-epoch ExponentialLR and DLAS's MultiStep milestones do; cosine uses the
    fractional position inside its cycle. ``total_steps`` gives the cosine
    cycle when ``cycle_epochs`` is 0.
    """
    spe = max(1, int(steps_per_epoch))
    kind = _get(schedule, "type", "constant")
    warmup = int(_get(schedule, "warmup_steps", 0) or 0)
    factor = 1.0
    if warmup > 0 and step < warmup:
        factor = (step + 1) / warmup
    epoch = step // spe
    if kind == "exponential":
        factor *= float(_get(schedule, "gamma", 1.0)) ** epoch
    elif kind == "multistep":
        passed = sum(1 for m in _get(schedule, "milestones", []) or [] if epoch >= m)
        factor *= float(_get(schedule, "factor", 0.5)) ** passed
    elif kind == "cosine":
        cycle_epochs = int(_get(schedule, "cycle_epochs", 0) or 0)
        if cycle_epochs > 0:
            cycle = cycle_epochs * spe
        else:
            cycle = max(1, (total_steps or spe) - warmup)
        pos = max(0, step - warmup) % cycle / cycle
        lo = float(_get(schedule, "min_lr_ratio", 0.0) or 0.0)
        factor *= lo + (1.0 - lo) * 0.5 * (1.0 + math.cos(math.pi * pos))
    elif kind != "constant":
        raise ValueError(f"unknown lr_schedule.type {kind!r}")
    return factor


def lr_curve(schedule: Any, learning_rate: float, steps_per_epoch: int, total_steps: int,
             points: int = 400) -> list[tuple[int, float]]:
    """(step, learning rate) pairs over the run, at most ``points`` of them plus the last step."""
    total_steps = max(1, int(total_steps))
    stride = max(1, total_steps // max(1, points))
    steps = list(range(0, total_steps, stride))
    if steps[-1] != total_steps - 1:
        steps.append(total_steps - 1)
    return [(s, learning_rate * lr_factor(schedule, s, steps_per_epoch, total_steps)) for s in steps]


def steps_per_epoch(num_items: int, batch_size: int, accumulation: int, world_size: int = 1) -> int:
    """Optimizer steps in one epoch.

    Each of ``world_size`` processes gets ``ceil(num_items / world_size)`` items
    (the sampler pads by repeating), cut into whole micro-batches; micro-batches
    that do not fill a last accumulation window are skipped. This is the same
    count for every split of a global batch ``batch_size * accumulation * world_size``.
    """
    per_rank = -(-int(num_items) // max(1, int(world_size)))
    micro = per_rank // max(1, int(batch_size))
    return micro // max(1, int(accumulation))


def total_steps(epochs: int, steps_per_epoch_: int, max_steps: int | None) -> int:
    """Optimizer steps the run will take."""
    n = int(epochs) * int(steps_per_epoch_)
    return min(n, int(max_steps)) if max_steps else n
