"""tortoise tokenizer and English cleaners against tortoise's own ids."""

from __future__ import annotations

import json

import pytest

from modules.autoregressive.cleaners import basic_cleaners, english_cleaners
from modules.autoregressive.tokenizer import VoiceTokenizer, train_bpe_tokenizer
from modules.errors import UserError


@pytest.fixture(scope="module")
def examples(shared):
    return json.loads((shared / "compat/tortoise/tokenizer_examples.json").read_text())


@pytest.fixture(scope="module")
def tok(shared):
    return VoiceTokenizer(shared / "compat/tortoise/tokenizer.json")


def test_vocabulary(tok, examples):
    assert tok.vocab_size == examples["vocab_size"] == 255
    assert tok.cleaners == "english"


def test_all_examples_exact(tok, examples):
    assert len(examples["examples"]) == 5
    for ex in examples["examples"]:
        assert english_cleaners(ex["text"]) == ex["english_cleaned"]
        ids = tok.encode(ex["text"])
        assert ids == ex["ids_english_cleaners"], ex["text"]
        assert tok.decode(ids) == ex["decoded"]
        assert tok.has_unknown(ids) == ("&" in ex["text"])
        assert basic_cleaners(ex["text"]) == ex["basic_cleaned"]


def test_basic_cleaner_ids(shared, examples):
    basic = VoiceTokenizer(shared / "compat/tortoise/tokenizer.json", cleaners="basic")
    for ex in examples["examples"]:
        assert basic.encode(ex["text"]) == ex["ids_basic_cleaners"]


@pytest.mark.parametrize("text,expected", [
    ("Mr. and Mrs. Smith", "mister and misess smith"),
    ("It costs $1.01, $2 or $0.05", "it costs one dollar, one cent, two dollars or five cents"),
    # tortoise transliterates before expanding numbers, so "£" has already become "PS"
    ("£20", "pstwenty"),
    ("In 2005 and 1,000,000", "in two thousand five and one million"),
    ("The 21st of 1900, 3.14", "the twenty-first of nineteen hundred, three point fourteen"),
])
def test_english_cleaner_rules(text, expected):
    assert english_cleaners(text) == expected


def test_train_bpe_tokenizer_for_other_languages(tmp_path):
    texts = ["привет мир, как дела?", "мир прекрасен. да!", "как дела у тебя?"] * 4
    path = train_bpe_tokenizer(texts, 80, tmp_path / "tokenizer.json", language="ru")
    tok = VoiceTokenizer(path)
    assert tok.cleaners == "basic"
    ids = tok.encode("Привет, как дела?")
    assert not tok.has_unknown(ids)
    assert ids[:0] == [] and 2 in ids  # [SPACE] keeps its id 2
    assert tok.decode(ids) == "привет, как дела?"
    assert tok.vocab_size <= 80
    assert tok.has_unknown(tok.encode("Zebra"))  # letters it never saw are reported
    with pytest.raises(UserError):
        train_bpe_tokenizer(["", "  "], 80, tmp_path / "x.json")


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        VoiceTokenizer(tmp_path / "tokenizer.json")


def test_tokenizer_command_trains_on_a_dataset(tmp_path):
    import argparse

    from modules.autoregressive import tokenizer_cli
    from modules.workspace import Workspace

    ds = tmp_path / "training" / "ru"
    ds.mkdir(parents=True)
    (ds / "train.txt").write_text("audio/a.wav|Привет, мир!\naudio/b.wav|Как дела у тебя?\n", encoding="utf-8")
    parser = argparse.ArgumentParser()
    tokenizer_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["tokenizer", "--dataset", "training/ru", "--vocab-size", "60"])
    assert tokenizer_cli.run(args, Workspace.open(tmp_path)) == 0
    tok = VoiceTokenizer(ds / "tokenizer.json")
    assert tok.cleaners == "basic" and not tok.has_unknown(tok.encode("Привет, как дела?"))
