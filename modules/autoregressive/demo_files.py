"""The files an autoregressive run needs, built from the dataset when tortoise's are not there.

A demo, not tortoise: a BPE tokenizer trained on the dataset's texts (the ``tokenizer`` command's
trainer), mel norms as the per-channel mean of the dataset's log mels (what tortoise's
``mel_norms.pth`` holds for its data), and a small random DVAE whose codebook starts from encoder
frames of the dataset's clips (so the codes vary with the audio). With them the tiny
autoregressive preset trains and renders through the preview decoder, so the whole path can be
seen without tortoise's weights; nothing it makes sounds like tortoise.
"""

from __future__ import annotations

from pathlib import Path

import torch

DEMO_TOKENS = 64  # the small DVAE's codebook
DEMO_VOCAB = 255  # fits the default number_text_tokens
DEMO_MARKER = "demo.json"  # beside the files: what tells a run it trains a demo


def build_demo_files(dataset_dir: Path, out_dir: Path, seed: int = 0, clips: int = 16) -> dict[str, Path]:
    """``tokenizer.json``, ``mel_norms.pth`` and ``dvae.pth`` in ``out_dir`` (kept when already there)."""
    from modules.audio.io import read_audio
    from modules.audio.tortoise_mel import SAMPLE_RATE, TortoiseMel
    from modules.autoregressive.checkpoint import save_dvae
    from modules.autoregressive.dvae import DiscreteVAE
    from modules.autoregressive.tokenizer import train_bpe_tokenizer
    from modules.fileutil import atomic_torch_save, atomic_write_json
    from modules.prepare.manifest import read_list

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"tokenizer": out_dir / "tokenizer.json", "mel_norms": out_dir / "mel_norms.pth",
             "dvae": out_dir / "dvae.pth"}
    if all(p.is_file() for p in paths.values()):
        return paths
    rows = read_list(Path(dataset_dir) / "train.txt")
    train_bpe_tokenizer([t for _, t in rows], DEMO_VOCAB, paths["tokenizer"], language="en")
    waves = [torch.from_numpy(read_audio(Path(dataset_dir) / f, SAMPLE_RATE)[0])[None] for f, _ in rows[:clips]]
    plain = TortoiseMel()
    with torch.no_grad():
        logs = torch.cat([plain.log_mel(w)[0] for w in waves], dim=1)  # [80, frames]
        norms = logs.mean(dim=1)
        atomic_torch_save(norms, paths["mel_norms"])
        torch.manual_seed(seed)
        dvae = DiscreteVAE(channels=80, codebook_dim=32, hidden_dim=32, num_layers=2, num_resnet_blocks=1,
                           num_tokens=DEMO_TOKENS)
        mel = TortoiseMel(norms)
        frames = torch.cat([dvae.encoder(mel(w))[0].T for w in waves])
        if len(frames) < DEMO_TOKENS:  # a very short dataset: reuse frames to fill the codebook
            frames = frames.repeat(-(-DEMO_TOKENS // len(frames)), 1)
        pick = frames[torch.randperm(len(frames), generator=torch.Generator().manual_seed(seed))[:DEMO_TOKENS]]
        dvae.codebook.embed.copy_(pick.T)
        dvae.codebook.embed_avg.copy_(pick.T)
    save_dvae(dvae, paths["dvae"])
    atomic_write_json(out_dir / DEMO_MARKER, {"demo": True, "built_from": str(dataset_dir),
                                              "note": "a demo built from the dataset, not tortoise's files"})
    return paths


def is_demo(path: Path) -> bool:
    """True when ``path`` (a tokenizer, DVAE or mel norms file) was built by ``build_demo_files``."""
    return (Path(path).parent / DEMO_MARKER).is_file()
