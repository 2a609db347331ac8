"""Validation split rules: seeded, >= 1 validation clip from 2 clips up, training never empty."""

from __future__ import annotations

import pytest

from modules.errors import UserError
from modules.prepare.split import split_files, validation_size


@pytest.mark.parametrize("n,percent,count,expected", [
    (1, 5, None, 0), (2, 5, None, 1), (2, 50, None, 1), (2, 99, None, 1), (20, 5, None, 1), (100, 5, None, 5),
    (100, 0, None, 1), (10, 5, 3, 3), (10, 5, 50, 9), (10, 5, 0, 1), (3, 90, None, 2),
])
def test_validation_size(n, percent, count, expected):
    assert validation_size(n, percent, count) == expected


def test_split_is_seeded_disjoint_and_complete():
    files = [f"audio/{i:03d}.wav" for i in range(40)]
    train, val = split_files(files, percent=10, seed=3)
    assert len(val) == 4 and len(train) == 36 and not set(train) & set(val)
    assert sorted(train + val) == sorted(files)
    assert split_files(list(reversed(files)), percent=10, seed=3) == (train, val)  # order of input does not matter
    assert split_files(files, percent=10, seed=4)[1] != val


def test_single_clip_goes_to_train_and_none_is_an_error():
    assert split_files(["audio/a.wav"]) == (["audio/a.wav"], [])
    with pytest.raises(UserError):
        split_files([])
