"""The ``hifigan:`` section of a config: typed options, jik876's generator presets and their rules.

Every default lives here once: the schema validates with these dataclass fields, the recipe reads
them typed, ``hparams`` derives jik876's flat hyperparameters from them, and the models module
takes the generator sizes from ``GENERATOR_PRESETS``. No torch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Optional

from modules.config.fields import ConfigError, option

HIFIGAN_FEATURES = ("mel", "files", "tortoise_mel")
GENERATOR_KEYS = ("resblock", "upsample_rates", "upsample_kernel_sizes", "upsample_initial_channel",
                  "resblock_kernel_sizes", "resblock_dilation_sizes")
_V1: dict[str, Any] = {
    "resblock": "1", "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
    "upsample_initial_channel": 512, "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
}
# jik876's published generator configurations (config_v1/v2/v3.json)
GENERATOR_PRESETS: dict[str, dict[str, Any]] = {
    "v1": _V1,
    "v2": {**copy.deepcopy(_V1), "upsample_initial_channel": 128},
    "v3": {"resblock": "2", "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
           "upsample_initial_channel": 256, "resblock_kernel_sizes": [3, 5, 7],
           "resblock_dilation_sizes": [[1, 2], [2, 6], [3, 12]]},
}


@dataclass
class HifiganOptions:
    """HiFi-GAN vocoder options (jik876 names for the generator, mel and optimizer values)."""

    preset: str = option("v1", choices=(*GENERATOR_PRESETS, "custom"),
                     help="generator size of jik876's V1/V2/V3, or custom sizes below")
    segment_size: int = option(8192, lo=256, help="training crop length in samples (a multiple of hop_size)")
    features: str = option("mel", choices=HIFIGAN_FEATURES,
                       help="mel: computed from the audio; files: precomputed [C, T] .npy/.pt beside each clip; "
                            "tortoise_mel: tortoise's normalised mel")
    feature_suffix: str = option(".npy", help="features=files: suffix replacing .wav (e.g. .npy, .pt, _ssl.npy)")
    fresh_discriminators: bool = option(False, help="start the discriminators from random weights even when "
                                                    "base has them")
    reset_lr: bool = option(False, help="ignore the base checkpoint's optimizer state and decayed learning rate")
    resblock: str = option(_V1["resblock"], choices=("1", "2"), help="residual block type")
    upsample_rates: list[int] = option(_V1["upsample_rates"], help="upsampling factors; their product is hop_size")
    upsample_kernel_sizes: list[int] = option(_V1["upsample_kernel_sizes"])
    upsample_initial_channel: int = option(_V1["upsample_initial_channel"], lo=1)
    resblock_kernel_sizes: list[int] = option(_V1["resblock_kernel_sizes"])
    resblock_dilation_sizes: list[list[int]] = option(_V1["resblock_dilation_sizes"])
    sampling_rate: int = option(22050, lo=1000)
    n_fft: int = option(1024, lo=16)
    num_mels: int = option(80, lo=1, help="input channels (mel bins, or C of precomputed features)")
    hop_size: int = option(256, lo=1)
    win_size: int = option(1024, lo=16)
    fmin: float = option(0.0, lo=0.0)
    fmax: Optional[float] = option(8000.0, lo=0.0, help="null: half the sampling rate")
    fmax_for_loss: Optional[float] = option(None, lo=0.0,
                                            help="mel loss upper frequency (null: half the sampling rate)")
    adam_b1: float = option(0.8, lo=0.0, hi=1.0)
    adam_b2: float = option(0.99, lo=0.0, hi=1.0)
    lr_decay: Optional[float] = option(None, lo=0.0, hi=1.0, lo_open=True,
                                   help="written to the exported jik876 config.json; null: lr_schedule.gamma")
    mel_loss_weight: float = option(45.0, lo=0.0)
    feature_loss_weight: float = option(2.0, lo=0.0)
    discriminator_width: float = option(1.0, lo=0.0, hi=1.0, lo_open=True,
                                    help="discriminator channel multiplier (1 = jik876's MPD/MSD, needed to load do_ "
                                         "files; smaller only for quick tests)")


# what a new HiFi-GAN config starts from (top-level keys and the section), and the named presets
DEFAULTS: dict[str, Any] = {  # the section's own defaults are the dataclass's (jik876's V1)
    "epochs": 200, "batch_size": 16, "grad_accumulation": 1, "learning_rate": 2e-4,
    "lr_schedule": {"type": "exponential", "gamma": 0.999}, "grad_clip": None,
}
PRESETS: dict[str, dict[str, Any]] = {
    **{name: {"hifigan": {"preset": name, **copy.deepcopy(v)}} for name, v in GENERATOR_PRESETS.items()},
    "custom": {"hifigan": {"preset": "custom"}},  # keeps the current sizes but frees them for editing
}


def _norm(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    return str(v) if isinstance(v, (int, str)) and not isinstance(v, bool) else v


def prepare_section(section: dict, given: dict) -> dict:
    """Fill generator sizes from the named preset; refuse given sizes that contradict it."""
    preset = section.get("preset", "v1")
    if preset in GENERATOR_PRESETS:
        sizes = GENERATOR_PRESETS[preset]
        for k in GENERATOR_KEYS:
            if k in given and given[k] is not None and _norm(given[k]) != _norm(sizes[k]):
                raise ConfigError(
                    f"hifigan.{k}: {given[k]!r} differs from preset {preset} ({sizes[k]!r}); "
                    "set hifigan.preset: custom to use your own generator sizes")
        section = {**section, **copy.deepcopy(sizes)}
    return section


def validate_generator_sizes(h: Any, section: str) -> int:
    """The rules every HiFi-GAN generator's sizes obey (this vocoder's, tortoise's decoder's);
    returns the product of the upsampling rates (the hop)."""
    lists = ("upsample_rates", "upsample_kernel_sizes", "resblock_kernel_sizes", "resblock_dilation_sizes")
    for k in lists:
        if not getattr(h, k):
            raise ConfigError(f"{section}.{k}: must not be empty")
    if len(h.upsample_rates) != len(h.upsample_kernel_sizes):
        raise ConfigError(f"{section}.upsample_kernel_sizes: needs one kernel size per entry of upsample_rates")
    if len(h.resblock_kernel_sizes) != len(h.resblock_dilation_sizes):
        raise ConfigError(f"{section}.resblock_dilation_sizes: needs one list per entry of resblock_kernel_sizes")
    if any(v < 1 for v in h.upsample_rates + h.upsample_kernel_sizes + h.resblock_kernel_sizes):
        raise ConfigError(f"{section}.upsample_rates/kernel sizes: values must be >= 1")
    prod = 1
    for r in h.upsample_rates:
        prod *= r
    if h.win_size > h.n_fft:
        raise ConfigError(f"{section}.win_size: {h.win_size} must be <= n_fft {h.n_fft}")
    if h.fmax is not None and h.fmax <= h.fmin:
        raise ConfigError(f"{section}.fmax: {h.fmax} must be above fmin {h.fmin}")
    return prod


def validate(h: HifiganOptions) -> None:
    """Cross-key rules that make a HiFi-GAN config untrainable."""
    prod = validate_generator_sizes(h, "hifigan")
    if h.features == "mel" and prod != h.hop_size:
        raise ConfigError(f"hifigan.upsample_rates: their product {prod} must equal hifigan.hop_size "
                          f"{h.hop_size}")
    if h.features == "tortoise_mel" and (prod != 256 or h.sampling_rate != 22050):
        raise ConfigError(f"hifigan.features: tortoise_mel needs hifigan.sampling_rate 22050 and upsample_rates "
                          f"multiplying to 256 (tortoise's mel), not {h.sampling_rate} Hz and {prod}")
    if h.segment_size % h.hop_size:
        raise ConfigError(f"hifigan.segment_size: {h.segment_size} must be a multiple of hop_size {h.hop_size}")


def memory_hints(h: HifiganOptions) -> tuple[list[str], list[str]]:
    """What to name and lower when a run is out of memory."""
    return [f"hifigan.segment_size {h.segment_size}"], ["lower hifigan.segment_size"]


# what the Configure tab keeps under "Advanced": architecture sizes (a base fixes them), STFT settings,
# optimiser and loss constants; preset, segment size and input features stay up front
ADVANCED_KEYS = frozenset({
    "feature_suffix", "fresh_discriminators", "reset_lr", "resblock", "upsample_rates", "upsample_kernel_sizes",
    "upsample_initial_channel", "resblock_kernel_sizes", "resblock_dilation_sizes", "sampling_rate", "n_fft",
    "num_mels", "hop_size", "win_size", "fmin", "fmax", "fmax_for_loss", "adam_b1", "adam_b2", "lr_decay",
    "mel_loss_weight", "feature_loss_weight", "discriminator_width"})

