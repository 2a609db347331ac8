"""``python -m modules tokenizer --dataset training/NAME``: train a BPE tokenizer on a dataset's text.

For languages tortoise's English vocabulary cannot spell (its lines map to [UNK] and are
skipped). Fine-tuning with the new tokenizer re-initialises the model's text embedding and
text head, so the text side starts from scratch and needs far more data than a fine-tune.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from modules.errors import UserError


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("tokenizer", help="train a BPE tokenizer on a dataset's transcripts (non-English voices)",
                              description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, help="prepared dataset folder, e.g. training/NAME")
    p.add_argument("--vocab-size", type=int, default=255, help="tokens incl. [STOP] [UNK] [SPACE] (tortoise: 255)")
    p.add_argument("--language", default="other",
                   help='"en" applies the English cleaners; anything else lowercases and keeps the script')
    p.add_argument("--out", default=None, help="output json (default: DATASET/tokenizer.json)")
    p.set_defaults(command="tokenizer")
    return p


def run(args: argparse.Namespace, workspace) -> int:
    from modules.autoregressive.tokenizer import VoiceTokenizer, train_bpe_tokenizer

    dataset = workspace.inside(args.dataset)
    texts = []
    for name in ("train.txt", "validation.txt"):
        lst = dataset / name
        if lst.is_file():
            texts += [line.split("|", 1)[1] for line in lst.read_text(encoding="utf-8").splitlines() if "|" in line]
    if not texts:
        raise UserError(f"{dataset}: no train.txt/validation.txt transcripts; prepare the dataset first")
    out = Path(args.out) if args.out else dataset / "tokenizer.json"
    if not out.is_absolute():
        out = workspace.root / out if args.out else out
    train_bpe_tokenizer(texts, args.vocab_size, out, language=args.language)
    tok = VoiceTokenizer(out)
    unknown = sum(tok.has_unknown(tok.encode(t)) for t in texts)
    try:
        shown = out.relative_to(workspace.root)
    except ValueError:
        shown = out
    print(f"wrote {shown}: {tok.vocab_size} tokens from {len(texts)} lines ({unknown} still with [UNK]).")
    print(f"use it with: --set autoregressive.tokenizer={shown}")
    print("warning: with a new tokenizer the model's text embedding and text head start fresh; "
          "expect to need much more data and training than a fine-tune")
    return 0
