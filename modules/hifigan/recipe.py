"""The HiFi-GAN recipe for the trainer core: models, the paper's losses, data, validation, export.

One micro-batch: crops of raw audio arrive from the loader; both mels (the
generator input with ``fmax`` and the loss target with ``fmax_for_loss``) are
computed here, batched, on the training device. Then jik876's order: the
discriminator step on the detached output, then the generator step through
the (unwrapped, freshly updated) discriminators.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from modules.errors import UserError
from modules.hifigan import checkpoint as ckpt
from modules.hifigan import hparams
from modules.hifigan.data import HifiganDataset, build_cache, check_features, collate, read_list
from modules.hifigan.gan_step import LOSS_NAMES, adversarial_step
from modules.hifigan.metrics import multi_resolution_stft, pesq_wb
from modules.hifigan.models import Generator, MultiPeriodDiscriminator, MultiScaleDiscriminator
from modules.trainer.recipe import AudioSample, Recipe, StepContext, ValidationResult
from modules.trainer.state import TrainingState, is_state, model_weights
from modules.trainer.statedict import state_dict_problems

FEATURE_MODES = ("mel", "files", "tortoise_mel")


class HifiganRecipe(Recipe):
    name = "hifigan"
    main_loss = "mel_l1"  # what users watch: the mel error (jik876's "Mel-Spec. Error")
    main_metric = "mel_l1"
    compile_targets = ("generator", "mpd", "msd")  # fixed segment size: the training shapes never change

    def __init__(self, config: Any, dataset_dir: Path, device: torch.device, workspace_root: Path):
        super().__init__(config, dataset_dir, device, workspace_root)
        self.h = hparams.resolve(self.options)
        self.features = self.h["features"]
        if self.features not in FEATURE_MODES:
            raise UserError(f"hifigan.features {self.features!r} is unknown; use one of {', '.join(FEATURE_MODES)}")
        self.hop = int(np.prod(self.h["upsample_rates"]))
        if self.features in ("mel", "tortoise_mel") and self.hop != int(self.h["hop_size"]):
            raise UserError(f"the generator upsamples by {self.hop} (product of hifigan.upsample_rates) but "
                            f"hifigan.hop_size is {self.h['hop_size']}; make them equal")
        if self.features == "tortoise_mel" and (self.hop != 256 or int(self.h["sampling_rate"]) != 22050):
            # tortoise's mel is fixed (22,050 Hz, hop 256): anything else misaligns frames and audio
            raise UserError(f"hifigan.features: tortoise_mel needs hifigan.sampling_rate 22050 and upsample_rates "
                            f"multiplying to 256 (tortoise's mel); this config has {self.h['sampling_rate']} Hz and "
                            f"{self.hop}")
        if int(self.h["segment_size"]) % self.hop:
            raise UserError(f"hifigan.segment_size {self.h['segment_size']} must be a multiple of the hop "
                            f"({self.hop}); try {int(self.h['segment_size']) // self.hop * self.hop or self.hop}")
        self.seed = self.config.seed
        self.in_channels = int(self.h["num_mels"])
        self._feature_files: list[Path] | None = None
        self._train_cache = None
        self._base_do: dict[str, Any] | None = None
        self._tortoise_mel: nn.Module | None = None
        self._val_names: list[str] = []
        self._val_texts: dict[str, str] = {}  # clip stem -> transcript (what the scorer checks)
        if self.features == "files":
            self._prepare_feature_files()
        elif self.features == "tortoise_mel":
            self.in_channels = 80

    # --- configuration helpers ----------------------------------------------------------------
    def jik876_config(self) -> dict[str, Any]:
        h = dict(self.h)
        if self.options.lr_decay is None:
            h["lr_decay"] = self.config.lr_schedule.gamma
        return hparams.to_jik876(h, batch_size=self.config.batch_size,
                                 learning_rate=self.config.learning_rate, seed=self.seed,
                                 num_workers=self.config.num_workers,
                                 in_channels=self.in_channels)

    def _cache_dir(self) -> Path:
        return self.dataset_dir / "cache"

    def _cache(self, list_name: str):
        tag = "hifigan-" + Path(list_name).stem
        return build_cache(read_list(self.dataset_dir, list_name), int(self.h["sampling_rate"]), self._cache_dir(), tag)

    def _prepare_feature_files(self) -> None:
        self._train_cache = self._cache("train.txt")
        paths = [Path(n) for n in self._train_cache.names]
        self._feature_files, self.in_channels = check_features(paths, self._train_cache, self.h["feature_suffix"],
                                                               self.hop)

    # --- construction -------------------------------------------------------------------------
    def build_models(self) -> dict[str, nn.Module]:
        torch.manual_seed(self.seed)
        gen_kwargs = {k: self.h[k] for k in ("resblock", "upsample_rates", "upsample_kernel_sizes",
                                            "upsample_initial_channel", "resblock_kernel_sizes",
                                            "resblock_dilation_sizes")}
        generator = Generator(**gen_kwargs, in_channels=self.in_channels)
        width = self.options.discriminator_width
        mpd, msd = MultiPeriodDiscriminator(width=width), MultiScaleDiscriminator(width=width)
        base = self.config.base
        if base:
            self._load_base(Path(base), generator, mpd, msd)
        return {"generator": generator.to(self.device), "mpd": mpd.to(self.device), "msd": msd.to(self.device)}

    def _resolve_base(self, base: Path) -> Path:
        path = base if base.is_absolute() else self.workspace_root / base
        if not path.exists():
            raise UserError(f"base {base}: not found (looked at {path}); point config.base at a jik876 g_ file, "
                            "a state file or a run folder")
        if path.is_dir():
            found = ckpt.newest_in(path)
            if found is None:
                raise UserError(f"base {base}: the folder holds no states/step_*.pt and no g_ files")
            return found
        return path

    def _load_base(self, base: Path, generator: Generator, mpd: nn.Module, msd: nn.Module) -> None:
        path = self._resolve_base(base)
        fresh_d = self.options.fresh_discriminators
        data = ckpt.torch_load(path)
        if isinstance(data, dict) and "generator" in data and not is_state(data):
            g_state = ckpt.strip_prefixes(data["generator"])
            self._load_into(generator, g_state, path, "generator")
            do = ckpt.do_path_for(path) if path.name.startswith("g_") else None
            if not fresh_d:
                if do is None or not do.is_file():
                    raise UserError(f"base {path}: the discriminator file {do.name if do else 'do_XXXXXXXX'} is not "
                                    "beside it; copy it there or set hifigan.fresh_discriminators: true")
                self._base_do = ckpt.load_do(do)
                self._load_into(mpd, self._base_do["mpd"], do, "mpd")
                self._load_into(msd, self._base_do["msd"], do, "msd")
            return
        state = _as_state(data, path)
        self._load_into(generator, model_weights(state, "generator"), path, "generator")
        if not fresh_d:
            for name, module in (("mpd", mpd), ("msd", msd)):
                if name not in state.models:
                    raise UserError(f"base {path}: holds no {name}; set hifigan.fresh_discriminators: true")
                self._load_into(module, model_weights(state, name), path, name)
            opts = state.optimizers
            if opts:
                self._base_do = {"optim_g": opts.get("generator"), "optim_d": opts.get("discriminator")}

    def _load_into(self, module: nn.Module, state: dict, path: Path, what: str) -> None:
        state = ckpt.strip_prefixes(state)
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            hint = ""
            if what == "generator":
                cfg = ckpt.config_beside(path)
                if cfg is not None:
                    h = hparams.from_jik876(ckpt.read_config(cfg))
                    diffs = [f"{k}: {h[k]}" for k in ("resblock", "upsample_rates", "upsample_kernel_sizes",
                                                       "upsample_initial_channel", "resblock_kernel_sizes",
                                                       "resblock_dilation_sizes") if h[k] != self.h[k]]
                    if diffs:
                        hint = (f" Its {cfg.name} says {'; '.join(diffs)}: "
                                "set these under hifigan: (or the matching preset).")
                got = ckpt.in_channels_of(state) if any(k.startswith("conv_pre") for k in state) else None
                if got is not None and got != self.in_channels:
                    hint += f" It takes {got} input channels, this config feeds {self.in_channels}."
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"base {path}: its {what} does not fit this config's {what} ({first}).{hint}") from exc

    def optimizer_params(self, models: dict[str, nn.Module]) -> dict[str, list]:
        # jik876 order: optim_d = AdamW(chain(msd, mpd)) so its do_ optimizer states line up
        g = self.unwrap(models["generator"])
        d = list(self.unwrap(models["msd"]).parameters()) + list(self.unwrap(models["mpd"]).parameters())
        return {"generator": [{"params": list(g.parameters())}], "discriminator": [{"params": d}]}

    def build_optimizer(self, name: str, params: list) -> torch.optim.Optimizer:
        lr = float(self.config.learning_rate)
        betas = (float(self.h["adam_b1"]), float(self.h["adam_b2"]))
        first = next((p for g in params for p in (g["params"] if isinstance(g, dict) else [g])), None)
        fused = first is not None and first.device.type == "cuda"  # one kernel for ~85M parameters (V1 + MPD + MSD)
        # weight decay 0.01 (AdamW's default), as jik876
        return torch.optim.AdamW(params, lr, betas=betas, fused=fused or None)

    def on_base_loaded(self, models: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer]) -> None:
        """Carry a jik876 ``do_`` file's (or a state's) Adam moments and decayed rate, unless reset_lr."""
        if not self._base_do:
            return
        if self.options.reset_lr:
            self._base_do = None  # fresh Adam moments and our own learning rate
            return
        for key, name in (("optim_g", "generator"), ("optim_d", "discriminator")):
            state = self._base_do.get(key)
            if not state or name not in optimizers:
                continue
            opt = optimizers[name]
            try:
                opt.load_state_dict(state)
            except (ValueError, KeyError) as exc:
                raise UserError(f"base optimizer state for {name} does not fit ({exc}); "
                                "set hifigan.fresh_discriminators: true to start the optimizers fresh") from exc
            for group in opt.param_groups:
                group["initial_lr"] = group["lr"]  # the schedule continues from the base's decayed rate
        self._base_do = None

    # --- data ---------------------------------------------------------------------------------
    def train_dataset(self) -> Dataset:
        cache = self._train_cache if self._train_cache is not None else self._cache("train.txt")
        self._train_cache = cache
        return HifiganDataset(cache, int(self.h["segment_size"]), self.seed, self.hop, self._feature_files)

    def validation_dataset(self) -> Dataset:
        paths = read_list(self.dataset_dir, "validation.txt")
        if not paths:
            return HifiganDataset(build_cache([], int(self.h["sampling_rate"]), self._cache_dir(),
                                              "hifigan-validation"), None, self.seed, self.hop)
        cache = build_cache(paths, int(self.h["sampling_rate"]), self._cache_dir(), "hifigan-validation")
        self._val_names = [Path(n).stem for n in cache.names]
        self._val_texts = validation_texts(self.dataset_dir)
        files = None
        if self.features == "files":
            files, channels = check_features([Path(n) for n in cache.names], cache, self.h["feature_suffix"], self.hop)
            if channels != self.in_channels:
                raise UserError(f"validation features have {channels} channels, training features {self.in_channels}")
        return HifiganDataset(cache, None, self.seed, self.hop, files)

    def collate_fn(self) -> Callable | None:
        return collate

    # --- features -----------------------------------------------------------------------------
    def _mel(self, audio: torch.Tensor, for_loss: bool) -> torch.Tensor:
        from modules.audio.mel import mel_spectrogram

        return mel_spectrogram(audio, **hparams.mel_kwargs(self.h, for_loss))

    def _inputs(self, batch: dict[str, torch.Tensor], audio: torch.Tensor) -> torch.Tensor:
        """Generator input for ``audio`` ``[B, S]`` (S a multiple of the hop): ``[B, C, S // hop]``."""
        if self.features == "files":
            return batch["features"].to(self.device, non_blocking=True)
        if self.features == "tortoise_mel":
            return self._tortoise(audio)[..., :audio.shape[-1] // self.hop]
        return self._mel(audio, for_loss=False)

    def _tortoise(self, audio: torch.Tensor) -> torch.Tensor:
        if self._tortoise_mel is None:
            from modules.audio.tortoise_mel import TortoiseMel

            norms = self.workspace_root / "models" / "tortoise" / "mel_norms.pth"
            self._tortoise_mel = TortoiseMel(norms).to(audio.device)
        return self._tortoise_mel(audio)

    # --- steps --------------------------------------------------------------------------------
    def train_step(self, batch: Any, models: dict[str, nn.Module], ctx: StepContext) -> dict[str, float]:
        audio = batch["audio"].to(self.device, non_blocking=True)
        with torch.no_grad():
            x = self._inputs(batch, audio)
            y_mel = self._mel(audio, for_loss=True)
        y = audio.unsqueeze(1)
        generator, mpd, msd = models["generator"], models["mpd"], models["msd"]

        with ctx.autocast():
            y_g_hat = generator(x)
        y_g_hat = y_g_hat[..., :y.shape[-1]]

        values = adversarial_step(ctx, y, y_g_hat, y_mel, lambda w: self._mel(w, for_loss=True), mpd, msd,
                                  self.unwrap, float(self.h["mel_loss_weight"]), float(self.h["feature_loss_weight"]))
        return dict(zip(LOSS_NAMES, values.unbind()))  # device tensors: the trainer's ledger reads them

    @torch.no_grad()
    def validate(self, models: dict[str, nn.Module], loader, ctx: StepContext, step: int) -> ValidationResult:
        generator = self.unwrap(models["generator"])
        was_training = generator.training
        generator.eval()
        sr = int(self.h["sampling_rate"])
        limit = int(self.config.validation_samples)
        mel_l1, stft, pesqs, samples = [], [], [], []
        index = 0
        try:
            for batch in loader:
                for i in range(batch["audio"].shape[0]):
                    n = int(batch["lengths"][i]) // self.hop * self.hop
                    if n < self.hop * 4:
                        index += 1
                        continue
                    audio = batch["audio"][i:i + 1, :n].to(self.device)
                    item = {"features": batch["features"][i:i + 1, :, :n // self.hop]} if "features" in batch else {}
                    x = self._inputs(item, audio)
                    y_hat = generator(x).float().squeeze(1)[:, :n]
                    mel_hat = self._mel(y_hat, for_loss=True)
                    mel_l1.append(float(F.l1_loss(mel_hat, self._mel(audio, for_loss=True))))
                    stft.append(multi_resolution_stft(y_hat, audio))
                    ref, out = audio[0].cpu(), y_hat[0].clamp(-1, 1).cpu()
                    score = pesq_wb(out.numpy(), ref.numpy(), sr)
                    if score is not None:
                        pesqs.append(score)
                    if len(samples) < limit:
                        name = self._val_names[index] if index < len(self._val_names) else f"clip{index:03d}"
                        samples.append(AudioSample(name=name, wave=out, sample_rate=sr, reference=ref,
                                                   mel_image=mel_hat[0].cpu(), text=self._val_texts.get(name)))
                    index += 1
        finally:
            generator.train(was_training)
        metrics: dict[str, float] = {}
        if mel_l1:
            metrics["mel_l1"] = float(np.mean(mel_l1))
            metrics["mr_stft"] = float(np.mean(stft))
        if pesqs:
            metrics["pesq_wb"] = float(np.mean(pesqs))
        return ValidationResult(metrics=metrics, samples=samples)

    # --- export -------------------------------------------------------------------------------
    def export(self, models: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
               step: int, epoch: int, checkpoint_dir: Path) -> list[Path]:
        """jik876 ``g_``/``do_``/``config.json`` of this step (``modules.trainer.exports`` prunes older ones)."""
        checkpoint_dir = Path(checkpoint_dir)
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        g_path = ckpt.save_g(checkpoint_dir / f"g_{step:08d}", self.unwrap(models["generator"]))
        do_path = ckpt.save_do(checkpoint_dir / f"do_{step:08d}", self.unwrap(models["mpd"]),
                               self.unwrap(models["msd"]), optimizers.get("generator"),
                               optimizers.get("discriminator"), step, epoch)
        cfg_path = ckpt.write_config(checkpoint_dir / "config.json", self.jik876_config())
        return [g_path, do_path, cfg_path]  # which steps' files stay is the trainer's export policy


def check_base(config: Any, base_path: Path) -> list[str]:
    """Problems that stop ``base`` loading into the configured generator (the UI's Validate,
    before a run starts): missing or extra weights and shape mismatches, with the base's own
    ``config.json`` sizes when one sits beside it."""
    h = hparams.resolve(config.options)
    path = Path(base_path)
    if path.is_dir():
        found = ckpt.newest_in(path)
        if found is None:
            return [f"{path.name}: the folder holds no states/step_*.pt and no g_ files"]
        path = found
    data = ckpt.torch_load(path)
    if isinstance(data, dict) and "generator" in data and not is_state(data):
        state = ckpt.strip_prefixes(data["generator"])
    else:
        state = model_weights(_as_state(data, path), "generator")
    in_channels = ckpt.in_channels_of(state) if h["features"] == "files" else int(h["num_mels"])
    with torch.device("meta"):
        own = Generator(**{k: h[k] for k in ("resblock", "upsample_rates", "upsample_kernel_sizes",
                                              "upsample_initial_channel", "resblock_kernel_sizes",
                                              "resblock_dilation_sizes")}, in_channels=in_channels).state_dict()
    problems = state_dict_problems(own, state, path.name, "generator")
    cfg = ckpt.config_beside(path)
    if problems and cfg is not None:
        theirs = hparams.from_jik876(ckpt.read_config(cfg))
        diffs = [f"{k}: {theirs[k]}" for k in ("resblock", "upsample_rates", "upsample_initial_channel",
                                                "resblock_kernel_sizes") if theirs.get(k) != h[k]]
        if diffs:
            problems.append(f"its {cfg.name} says {'; '.join(diffs)}")
    return problems


def _as_state(data: Any, path: Path) -> TrainingState:
    """``data`` (a loaded file) as a training state, or a UserError saying what the file should be."""
    if not is_state(data):
        raise UserError(f"{path}: neither a jik876 g_ file nor a Voicetune HiFi-GAN training state")
    return TrainingState(Path(path), data)


def validation_texts(dataset_dir: Path) -> dict[str, str]:
    """Clip stem -> transcript of ``validation.txt`` (the intended words of each resynthesised clip)."""
    from modules.prepare.manifest import read_list as read_manifest

    return {Path(f).stem: t for f, t in read_manifest(Path(dataset_dir) / "validation.txt")}
