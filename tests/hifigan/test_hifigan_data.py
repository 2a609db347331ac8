"""HiFi-GAN data: the int16 cache, deterministic crops, feature/audio alignment, collate."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from modules.audio import mel_spectrogram
from modules.errors import UserError
from modules.hifigan.data import HifiganDataset, build_cache, check_features, collate

MEL = dict(sample_rate=22050, n_fft=1024, num_mels=80, hop_size=256, win_size=1024, fmin=0, fmax=8000)


@pytest.fixture
def clips(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i, n in enumerate((22050, 9000, 1500)):  # the last is shorter than a segment
        p = tmp_path / "audio" / f"c{i}.wav"
        p.parent.mkdir(exist_ok=True)
        sf.write(p, (0.3 * rng.standard_normal(n)).astype(np.float32), 22050, subtype="PCM_16")
        paths.append(p)
    return paths


def test_cache_is_exact_and_reused(clips, tmp_path):
    cache = build_cache(clips, 22050, tmp_path / "cache", "t")
    for i, p in enumerate(clips):
        ref, _ = sf.read(p, dtype="float32")
        assert np.array_equal(cache.clip(i), ref)
    files = sorted((tmp_path / "cache").glob("t-*"))
    again = build_cache(clips, 22050, tmp_path / "cache", "t")
    assert sorted((tmp_path / "cache").glob("t-*")) == files and again.offsets.tolist() == cache.offsets.tolist()


def test_crops_depend_only_on_seed_epoch_index(clips, tmp_path):
    cache = build_cache(clips, 22050, tmp_path / "cache", "t")
    a, b = HifiganDataset(cache, 2048, seed=1, hop=256), HifiganDataset(cache, 2048, seed=1, hop=256)
    a.set_epoch(3)
    b.set_epoch(3)
    assert torch.equal(a[0]["audio"], b[0]["audio"])
    b.set_epoch(4)
    assert not torch.equal(a[0]["audio"], b[0]["audio"])
    short = a[2]["audio"]
    assert short.shape == (2048,) and torch.all(short[1500:] == 0)  # zero-padded like jik876
    batch = collate([a[0], a[1]])
    assert batch["audio"].shape == (2, 2048) and batch["lengths"].tolist() == [2048, 2048]
    whole = HifiganDataset(cache, None, seed=1, hop=256)
    batch = collate([whole[0], whole[1]])
    assert batch["audio"].shape == (2, 22050) and batch["lengths"].tolist() == [22050, 9000]


def test_feature_crops_stay_aligned_with_audio(clips, tmp_path):
    cache = build_cache(clips[:2], 22050, tmp_path / "cache", "t")
    for p in clips[:2]:
        wave, _ = sf.read(p, dtype="float32")
        np.save(p.with_suffix(".npy"), mel_spectrogram(torch.from_numpy(wave)[None], **MEL)[0].numpy())
    files, channels = check_features(clips[:2], cache, ".npy", 256)
    assert channels == 80
    ds = HifiganDataset(cache, 4096, seed=5, hop=256, feature_files=files)
    for epoch in range(3):
        ds.set_epoch(epoch)
        item = ds[0]
        assert item["features"].shape == (80, 16) and item["audio"].shape == (4096,)
        # the mel of the cropped audio matches the cropped features away from the crop edges
        mel = mel_spectrogram(item["audio"][None], **MEL)[0]
        assert torch.allclose(mel[:, 3:-3], item["features"][:, 3:-3], atol=1e-3)


def test_feature_mismatch_names_the_file(clips, tmp_path):
    cache = build_cache(clips[:1], 22050, tmp_path / "cache", "t")
    np.save(clips[0].with_suffix(".npy"), np.zeros((12, 22050 // 256 + 4), dtype=np.float32))
    with pytest.raises(UserError, match="c0.npy"):
        check_features(clips[:1], cache, ".npy", 256)
    clips[0].with_suffix(".npy").unlink()
    with pytest.raises(UserError, match="c0.npy.*missing"):
        check_features(clips[:1], cache, ".npy", 256)


def test_persistent_workers_see_set_epoch(clips, tmp_path):
    cache = build_cache(clips, 22050, tmp_path / "cache", "t")
    ds = HifiganDataset(cache, 2048, seed=1, hop=256)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=1, persistent_workers=True, collate_fn=collate)
    seen = []
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        seen.append(next(iter(loader))["audio"])
        expected = collate([ds[i] for i in range(3)])["audio"]
        assert torch.equal(seen[-1], expected)
    assert not torch.equal(seen[0], seen[1])
