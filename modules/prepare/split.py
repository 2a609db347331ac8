"""Seeded train/validation split and the rules that keep it usable.

At least one validation clip when there are two or more clips; the training list is never empty.
"""

from __future__ import annotations

import random

from modules.errors import UserError


def validation_size(n: int, percent: float = 5.0, count: int | None = None) -> int:
    """How many of ``n`` clips go to validation: ``count`` if given else ``percent`` of n (rounded),
    clamped to 1..n-1 when n >= 2, and 0 when n < 2."""
    if n < 2:
        return 0
    want = int(count) if count is not None else int(round(n * float(percent) / 100.0))
    return max(1, min(n - 1, want))


def split_files(files: list[str], percent: float = 5.0, count: int | None = None,
                seed: int = 0) -> tuple[list[str], list[str]]:
    """(train, validation) lists; the same files and seed always give the same split."""
    if not files:
        raise UserError("no clips to split: nothing usable was prepared")
    ordered = sorted(files)
    k = validation_size(len(ordered), percent, count)
    chosen = set(random.Random(seed).sample(ordered, k)) if k else set()
    train = [f for f in ordered if f not in chosen]
    validation = [f for f in ordered if f in chosen]
    return train, validation
