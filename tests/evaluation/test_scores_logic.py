"""Text normalisation, word error rate, the combined score, the best step and the alarm (pure)."""

from __future__ import annotations

import pytest

from modules.evaluation.best import (
    ScoredStep,
    best_of,
    combined_score,
    overfitting_alarm,
    scored_series,
    train_curve,
)
from modules.evaluation.text import normalise, word_error_rate


def test_normalise_spells_numbers_and_drops_punctuation():
    assert normalise("Dr. Smith paid $21, didn't he?") == "doctor smith paid twenty one dollars didnt he"
    assert normalise("Twenty-one.") == normalise("21")


def test_word_error_rate_counts_edits_over_reference_words():
    assert word_error_rate("The quick brown fox.", "the quick brown fox") == 0.0
    assert word_error_rate("the quick brown fox", "the quick fox") == pytest.approx(0.25)  # one deletion
    assert word_error_rate("a b", "a b c d") == pytest.approx(1.0)  # two insertions over two words
    assert word_error_rate("hello", "") == 1.0
    assert word_error_rate("", "") == 0.0


def test_combined_score_formula_and_weights():
    assert combined_score(0.2, 0.9) == pytest.approx(0.7)
    assert combined_score(3.0, 0.9) == pytest.approx(-0.1)  # WER counts at most 1
    assert combined_score(0.2, 0.9, wer_weight=2.0, speaker_weight=0.5) == pytest.approx(0.05)
    assert combined_score(None, 0.8) == pytest.approx(0.8)


def _series(scores):
    return [ScoredStep(step, None, s, s) for step, s in scores]


def test_best_of_prefers_highest_then_earliest_and_respects_available():
    s = _series([(100, 0.5), (200, 0.8), (300, 0.8), (400, 0.6)])
    assert best_of(s).step == 200
    assert best_of(s, available={300, 400}).step == 300
    assert best_of([], None) is None


def test_alarm_needs_patience_worse_scores_and_a_falling_loss():
    s = _series([(100, 0.5), (200, 0.8), (300, 0.7), (400, 0.6), (500, 0.55)])
    falling = [(st, 10.0 - st / 100) for st in range(10, 510, 10)]
    alarm = overfitting_alarm(s, falling, patience=3)
    assert alarm is not None and alarm.best.step == 200 and [w.step for w in alarm.worse] == [300, 400, 500]
    assert "step 200" in alarm.message
    assert overfitting_alarm(s, falling, patience=4) is None  # only three validations after the best
    rising = [(st, st / 100) for st in range(10, 510, 10)]
    assert overfitting_alarm(s, rising, patience=3) is None  # loss rising too: divergence, not overfitting
    recovered = s + _series([(600, 0.9)])
    assert overfitting_alarm(recovered, falling, patience=3) is None


def test_series_and_train_curve_from_records():
    records = {300: {"step": 300, "val_wer": 0.5, "val_speaker_sim": 0.7}, 100: {"step": 100, "val_wer": 0.1}}
    series = scored_series(records)
    assert [s.step for s in series] == [300]  # a WER-only score is not comparable with a complete one
    assert series[0].score == pytest.approx(0.2)
    partial = scored_series({100: {"step": 100, "val_wer": 0.1}, 200: {"step": 200, "val_wer": 0.3}})
    assert [(s.step, round(s.score, 3)) for s in partial] == [(100, -0.1), (200, -0.3)]
    curve = train_curve([{"step": 1, "mel_l1": 2.0}, {"step": 1, "validation": True, "mel_l1": 9.0},
                         {"step": 2, "loss": 1.0}], "mel_l1")
    assert curve == [(1, 2.0)]


def test_validate_warns_when_validation_texts_are_training_texts(tmp_path):
    from modules.config.schema import default_config
    from modules.evaluation.checks import evaluation_warnings

    (tmp_path / "train.txt").write_text("audio/a.wav|Hello there, world.\naudio/b.wav|Another line\n")
    (tmp_path / "validation.txt").write_text("audio/c.wav|hello there world\naudio/d.wav|Something new\n")
    warnings = evaluation_warnings(default_config("hifigan", "training/x"), tmp_path, tmp_path)
    assert [(k, "1 validation text(s)" in m) for k, m, _ in warnings] == [("dataset", True)]
    (tmp_path / "validation.txt").write_text("audio/d.wav|Something new\n")
    assert evaluation_warnings(default_config("hifigan", "training/x"), tmp_path, tmp_path) == []
