"""The tortoise HiFi-GAN decoder recipe: ``hifidecoder.pth`` fine-tuned on a GPT's own latents.

Data: teacher-forced GPT latents of each clip (``latent_cache``), interpolated as tortoise does and
cropped with their 24 kHz audio (``data``). Training: HiFi-GAN's losses (``modules.hifigan.gan_step``)
with fresh multi-period and multi-scale discriminators (tortoise ships none), optionally warmed up
alone first. Validation: texts spoken by the chosen GPT and rendered by this decoder, as tortoise's
fast API would, beside the base decoder's rendering of the same codes. Export: a plain state dict
that drops into tortoise unchanged.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from modules.errors import UserError
from modules.hifidecoder import files
from modules.hifidecoder.data import LatentCropDataset, collate
from modules.hifidecoder.options import GENERATOR_KEYS, SAMPLE_RATE
from modules.trainer.logs import get_logger
from modules.trainer.recipe import AudioSample, Recipe, StepContext, ValidationResult

log = get_logger("hifidecoder")


class HifidecoderRecipe(Recipe):
    name = "hifidecoder"
    main_loss = "mel_l1"
    main_metric = "mel_l1"

    def __init__(self, config: Any, dataset_dir: Path, device: torch.device, workspace_root: Path):
        super().__init__(config, dataset_dir, device, workspace_root)
        self.seed = self.config.seed
        self._source = None
        self._sets: dict[str, Any] = {}
        self._val: LatentCropDataset | None = None
        self._val_codes: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._base_rendered = False

    # --- the GPT and its latents ----------------------------------------------------------------
    def source(self):
        if self._source is None:
            from modules.hifidecoder.source import load_source

            self._source = load_source(self.options, self.workspace_root, self.device)
        return self._source

    def _gpt(self) -> nn.Module:
        """The GPT on the training device (validation samples); parked on the CPU between uses."""
        gpt = self.source().gpt
        return gpt.to(self.device)

    def _park_gpt(self) -> None:
        """The latents are cached: the GPT leaves the GPU until a validation needs it (1.7 GB at full size)."""
        if self.device.type == "cuda" and self._source is not None:
            self._source.gpt.cpu()
            torch.cuda.empty_cache()

    # --- what a state keeps (checked on resume) -------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The GPT this run learns from, by file and content, and whether the base was rendered."""
        src = self.source()
        return {"gpt_checkpoint": str(src.gpt_path), "gpt_digest": src.digest, "base_rendered": self._base_rendered}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """A resumed run keeps its GPT: refuse when ``gpt_checkpoint`` now resolves to another one
        (a run folder with a newer export, a replaced file), which would silently change the data."""
        src = self.source()
        if state.get("gpt_digest") and state["gpt_digest"] != src.digest:
            raise UserError(f"this run learned from the GPT {state.get('gpt_checkpoint')}, but "
                            f"hifidecoder.gpt_checkpoint now gives {src.gpt_path} (other weights). Set "
                            f"hifidecoder.gpt_checkpoint to {state.get('gpt_checkpoint')} to resume (export it again "
                            "with `python -m modules export GPT_RUN --step N` if it was pruned), or start a new run")
        self._base_rendered = bool(state.get("base_rendered", self._base_rendered))

    def schedule_delay(self, optimizer: str) -> int:
        """The generator's schedule starts after the discriminator warm-up (it does not step before)."""
        return int(self.options.discriminator_warmup_steps) if optimizer == "generator" else 0

    def _latent_set(self, list_name: str):
        """(latents of the list's usable clips, its 24 kHz audio cache)."""
        if list_name not in self._sets:
            from modules.autoregressive.checkpoint import load_dvae
            from modules.autoregressive.data import codes_key, compute_codes, read_lines
            from modules.hifidecoder.latent_cache import dataset_latents
            from modules.hifigan.data import build_cache

            src = self.source()
            cache_dir = self.dataset_dir / "cache"
            lines = read_lines(self.dataset_dir, list_name)
            tag = Path(list_name).stem
            paths = [ln.audio for ln in lines]
            audio_22k = build_cache(paths, 22050, cache_dir, "ar-" + tag)  # shared with autoregressive runs
            audio_24k = build_cache(paths, SAMPLE_RATE, cache_dir, "hifidecoder-" + tag)
            voice = audio_22k if list_name == "train.txt" else self._latent_set("train.txt")[2]
            codes = compute_codes(audio_22k, load_dvae(src.dvae_path), src.mel, cache_dir, src.dvae_path,
                                  self.device) if len(audio_22k) else []
            key = codes_key(audio_22k, src.mel, src.dvae_path)
            voice_key = key if voice is audio_22k else codes_key(voice, src.mel, src.dvae_path)
            latents = dataset_latents(src, lines, audio_22k, codes, voice, cache_dir, tag, self.options.voice_clips,
                                      self.seed, self.options.latent_batch_size, key, voice_key)
            if list_name == "train.txt" and not latents.rows:
                raise UserError(f"{self.dataset_dir / list_name}: no usable clips for the GPT "
                                f"{src.gpt_path.name} (see the skipped lines above)")
            self._sets[list_name] = (latents, audio_24k, audio_22k)
        return self._sets[list_name]

    # --- construction -------------------------------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        """tortoise's constructor arguments of this run's decoder (written beside each export)."""
        return files.tortoise_hyperparameters({k: getattr(self.options, k) for k in GENERATOR_KEYS},
                                              self.source().width)

    def build_models(self) -> dict[str, nn.Module]:
        from modules.autoregressive.hifi_decoder import build_hifi_decoder
        from modules.hifigan.models import MultiPeriodDiscriminator, MultiScaleDiscriminator

        torch.manual_seed(self.seed)
        generator = build_hifi_decoder(self.hyperparameters())
        width = self.options.discriminator_width
        mpd, msd = MultiPeriodDiscriminator(width=width), MultiScaleDiscriminator(width=width)
        if self.config.base:
            path = files.resolve_base(Path(self.config.base), self.workspace_root)
            files.load_into(generator, files.read_decoder_weights(path), path)
            log.info("decoder fine-tuned from %s; discriminators start fresh", path)
        return {"generator": generator.to(self.device), "mpd": mpd.to(self.device), "msd": msd.to(self.device)}

    def optimizer_params(self, models: dict[str, nn.Module]) -> dict[str, list]:
        g = self.unwrap(models["generator"])
        d = list(self.unwrap(models["msd"]).parameters()) + list(self.unwrap(models["mpd"]).parameters())
        return {"generator": [{"params": list(g.parameters())}], "discriminator": [{"params": d}]}

    def build_optimizer(self, name: str, params: list) -> torch.optim.Optimizer:
        betas = (float(self.options.adam_b1), float(self.options.adam_b2))
        fused = self.device.type == "cuda"
        return torch.optim.AdamW(params, float(self.config.learning_rate), betas=betas, fused=fused or None)

    # --- data ---------------------------------------------------------------------------------
    def train_dataset(self) -> Dataset:
        latents, audio_24k, _ = self._latent_set("train.txt")
        return LatentCropDataset(latents, audio_24k, self.options.segment_latents, self.seed)

    def validation_dataset(self) -> Dataset:
        latents, audio_24k, _ = self._latent_set("validation.txt")
        self._val = LatentCropDataset(latents, audio_24k, None, self.seed)
        self._park_gpt()  # both lists' latents exist now
        return self._val

    def collate_fn(self) -> Callable | None:
        return collate

    def _mel(self, audio: torch.Tensor) -> torch.Tensor:
        from modules.audio.mel import mel_spectrogram

        o = self.options
        return mel_spectrogram(audio, sample_rate=SAMPLE_RATE, n_fft=o.n_fft, num_mels=o.num_mels,
                               hop_size=o.hop_size, win_size=o.win_size, fmin=o.fmin,
                               fmax=o.fmax if o.fmax is not None else SAMPLE_RATE / 2)

    # --- steps --------------------------------------------------------------------------------
    def train_step(self, batch: Any, models: dict[str, nn.Module], ctx: StepContext) -> dict[str, float]:
        from modules.hifigan.gan_step import LOSS_NAMES, adversarial_step

        x = batch["latents"].to(self.device, non_blocking=True)
        g = batch["cond"].to(self.device, non_blocking=True).unsqueeze(-1)
        audio = batch["audio"].to(self.device, non_blocking=True)
        with torch.no_grad():
            y_mel = self._mel(audio)
        y = audio.unsqueeze(1)
        train_generator = ctx.global_step >= self.options.discriminator_warmup_steps
        with torch.set_grad_enabled(train_generator), ctx.autocast():
            y_g_hat = models["generator"](x, g)[..., :y.shape[-1]]
        values = adversarial_step(ctx, y, y_g_hat, y_mel, self._mel, models["mpd"], models["msd"], self.unwrap,
                                  self.options.mel_loss_weight, self.options.feature_loss_weight, train_generator)
        return dict(zip(LOSS_NAMES, values.unbind()))  # device tensors: the trainer's ledger reads them

    @torch.no_grad()
    def validate(self, models: dict[str, nn.Module], loader, ctx: StepContext, step: int) -> ValidationResult:
        from modules.hifigan.metrics import multi_resolution_stft

        generator = self.unwrap(models["generator"])
        mel_l1, stft = [], []
        for batch in loader:
            n = int(batch["length"][0])
            if n < 1024:
                continue
            audio = batch["audio"][:, :n].to(self.device)
            with ctx.autocast():
                wave = generator(batch["latents"].to(self.device), batch["cond"].to(self.device).unsqueeze(-1))
            y_hat = wave.float().squeeze(1)[:, :n]
            mel_l1.append(float(F.l1_loss(self._mel(y_hat), self._mel(audio))))
            stft.append(multi_resolution_stft(y_hat, audio))
        metrics = {"mel_l1": float(np.mean(mel_l1)), "mr_stft": float(np.mean(stft))} if mel_l1 else {}
        return ValidationResult(metrics=metrics, samples=self._samples(generator, step))

    def _codes(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(text ids, sampled codes) of each validation text: the GPT is fixed, so once per process,
        each text with its own seed (the one the autoregressive recipe gives it)."""
        if self._val_codes is None:
            from modules.autoregressive.recipe import text_seed

            src, latents = self.source(), self._latent_set("validation.txt")[0]
            self._val_codes = []
            t0 = time.perf_counter()
            for ids, text in list(zip(latents.text_ids, latents.texts))[: self.config.validation_samples]:
                gen = torch.Generator().manual_seed(text_seed(self.seed, text))
                codes = self._gpt().sample_codes(latents.conditioning.to(self.device).reshape(1, -1), torch.tensor(ids),
                                             generator=gen, max_tokens=self.options.sample_max_mel_tokens,
                                             temperature=self.options.sample_temperature,
                                             top_p=self.options.sample_top_p)[0]
                self._val_codes.append((torch.tensor(ids), codes.reshape(-1).cpu()))
            log.info("validation: %d texts sampled by %s in %.1f s", len(self._val_codes), src.gpt_path.name,
                     time.perf_counter() - t0)
        return self._val_codes

    def _render(self, decoder: nn.Module, ids: torch.Tensor, codes: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """tortoise's fast path: the raw codes with their stop token -> latents -> this decoder."""
        from modules.autoregressive.latents import gpt_latents
        from modules.hifidecoder.latent_cache import full_fp32

        gpt = self._gpt()
        raw = torch.cat([codes, torch.tensor([int(gpt.stop_mel_token)])])
        with full_fp32():
            latents = gpt_latents(gpt, cond, ids, raw.unsqueeze(0))
        was = decoder.training
        decoder.eval()
        try:
            return decoder.inference(latents, cond.reshape(1, -1)).float().reshape(-1).clamp(-1, 1).cpu()
        finally:
            decoder.train(was)

    def _samples(self, generator: nn.Module, step: int) -> list[AudioSample]:
        if not self.config.validation_samples or self._val is None or not len(self._val):
            return []
        latents, audio_24k, _ = self._latent_set("validation.txt")
        cond = latents.conditioning.to(self.device)
        gpt_name = self.source().gpt_path.name
        base = self._base_decoder() if not self._base_rendered else None
        out = []
        for i, (ids, codes) in enumerate(self._codes()):
            ref = torch.from_numpy(audio_24k.clip(latents.rows[i]))
            out.append(AudioSample(name=f"sample{i:02d}", wave=self._render(generator, ids, codes, cond),
                                   sample_rate=SAMPLE_RATE, reference=ref, text=latents.texts[i],
                                   rendered_by=f"this run's decoder at step {step} on {gpt_name}'s latents"))
            if base is not None:
                out.append(AudioSample(name=f"sample{i:02d}_base", wave=self._render(base, ids, codes, cond),
                                       sample_rate=SAMPLE_RATE, text=latents.texts[i], comparison=True,
                                       rendered_by=f"the base decoder {Path(self.config.base).name} (same codes)"))
        self._base_rendered = True
        self._park_gpt()
        return out

    def _base_decoder(self) -> nn.Module | None:
        """The decoder this run started from, for the first validation's comparison (None from scratch)."""
        if not self.config.base:
            return None
        from modules.autoregressive.hifi_decoder import build_hifi_decoder

        path = files.resolve_base(Path(self.config.base), self.workspace_root)
        decoder = build_hifi_decoder(self.hyperparameters())
        files.load_into(decoder, files.read_decoder_weights(path), path)
        return decoder.to(self.device).eval()

    # --- export -------------------------------------------------------------------------------
    def export(self, models: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
               step: int, epoch: int, checkpoint_dir: Path) -> list[Path]:
        """``XXXXXXXX_hifidecoder.pth`` (tortoise's keys, a plain state dict) and its sizes' ``.json``."""
        path = Path(checkpoint_dir) / f"{step:08d}_hifidecoder.pth"
        return files.save_decoder(self.unwrap(models["generator"]), path, self.hyperparameters(),
                                  {"step": step, "epoch": epoch, "gpt_checkpoint": str(self.source().gpt_path)})
