"""The autoregressive (tortoise UnifiedVoice) recipe for the trainer core.

One micro-batch: text ids, cached DVAE codes, true wav lengths and the raw conditioning
clips arrive from the loader; the conditioning mels are computed here on the training
device, and the model's tortoise training forward gives the two cross-entropies, weighted
by ``text_lr_weight`` and ``mel_lr_weight`` as DL-Art-School does.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import Dataset

from modules.autoregressive import checkpoint as ckpt
from modules.autoregressive.data import ARDataset, collate, compute_codes, read_lines, select_entries, warn
from modules.errors import UserError
from modules.trainer.logs import get_logger
from modules.trainer.recipe import AudioSample, Recipe, StepContext, ValidationResult
from modules.trainer.statedict import state_dict_problems

log = get_logger("autoregressive")

# config.autoregressive keys that are UnifiedVoice constructor arguments
MODEL_KEYS = ("layers", "model_dim", "heads", "max_text_tokens", "max_mel_tokens", "max_conditioning_inputs",
              "number_text_tokens", "start_text_token", "number_mel_codes", "start_mel_token", "stop_mel_token",
              "mel_length_compression")


def resolve_base(base: Path, workspace_root: Path) -> Path:
    """A base file: autoregressive.pth, a ``_gpt.pth``, a state, or a run folder's newest of those."""
    path = Path(base).expanduser()
    path = path if path.is_absolute() else Path(workspace_root) / path
    if not path.exists():
        raise UserError(f"base {base}: not found (looked at {path}); point config.base at "
                        "models/tortoise/autoregressive.pth, a _gpt.pth file or an earlier run folder")
    if path.is_dir():
        gpts = sorted((path / "checkpoints").glob("*_gpt.pth")) or sorted(path.glob("*_gpt.pth"))
        if gpts:
            return gpts[-1]
        states = sorted((path / "states").glob("step_*.pt")) or sorted(path.glob("step_*.pt"))
        if states:
            return states[-1]
        raise UserError(f"base {base}: the folder holds no checkpoints/*_gpt.pth and no states/step_*.pt")
    return path


def read_base_state(path: Path) -> dict[str, torch.Tensor]:
    """UnifiedVoice weights from a tortoise state dict (``autoregressive.pth``, a ``_gpt.pth``) or
    from a Voicetune training state (``states/step_*.pt``, read through the trainer's state format)."""
    from modules.trainer.state import load_state, model_weights

    path = Path(path)
    if path.suffix == ".pt":
        return ckpt.strip_legacy_keys(model_weights(load_state(path), "gpt"))
    try:
        return ckpt.strip_legacy_keys(ckpt.read_state_dict(path, "autoregressive model"))
    except UserError as exc:
        raise UserError(f"{exc} (expected a tortoise autoregressive state dict or a Voicetune autoregressive "
                        "training state)") from None


def check_base(config: Any, base_path: Path) -> list[str]:
    """Problems that stop ``base`` loading into the configured model (for Validate, before a run)."""
    hp = {k: getattr(config.options, k) for k in MODEL_KEYS}
    path = resolve_base(Path(base_path), Path("."))
    sd = read_base_state(path)
    own = ckpt.build_unified_voice(hp, device="meta").state_dict()
    return state_dict_problems(own, sd, path.name, "model",
                               extra_hint="autoregressive.layers is probably smaller than the base's",
                               shape_hint="autoregressive.model_dim / max_*_tokens / number_*_tokens / "
                                          "number_mel_codes differ")


class AutoregressiveRecipe(Recipe):
    """Fine-tune (or train from scratch) tortoise's UnifiedVoice; logs ``loss`` (the weighted
    total), ``text_ce`` and ``mel_ce``; validation adds ``mel_accuracy`` and audio samples."""

    name = "autoregressive"
    validation_batch_size = 4

    def __init__(self, config: Any, dataset_dir: Path, device: torch.device, workspace_root: Path):
        super().__init__(config, dataset_dir, device, workspace_root)
        if self.options.stop_text_token != 0:
            raise UserError("autoregressive.stop_text_token must be 0: tortoise hard-codes [STOP] = 0")
        self.seed = self.config.seed
        from modules.audio.tortoise_mel import TortoiseMel
        from modules.autoregressive.demo_files import is_demo
        from modules.autoregressive.tokenizer import VoiceTokenizer

        if is_demo(self._path("dvae")):
            log.warning("this is a DEMO autoregressive model: its tokenizer, mel norms and DVAE were built from the "
                        "dataset (no tortoise files), so it shows the training path but will not sound like tortoise")
        self.tokenizer = VoiceTokenizer(self._path("tokenizer"))
        self.mel = TortoiseMel(self._path("mel_norms"))
        self.hyperparameters = {k: getattr(self.options, k) for k in MODEL_KEYS}
        self.text_resized = False
        self._dvae = None
        self._decoder = None
        self._voice: list[torch.Tensor] | None = None
        self.mel_rate = 22050
        self._caches: dict[str, Any] = {}
        self._val_dataset: ARDataset | None = None

    # --- configuration helpers ----------------------------------------------------------------
    def _path(self, key: str) -> Path:
        value = getattr(self.options, key)
        if not value:
            raise UserError(f"autoregressive.{key} is not set in the config")
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.workspace_root / p

    def dvae(self):
        if self._dvae is None:
            self._dvae = ckpt.load_dvae(self._path("dvae"), device="cpu")
            start = self.options.start_mel_token
            if self._dvae.num_tokens > start:
                raise UserError(f"{self._path('dvae')}: the DVAE has {self._dvae.num_tokens} codes but "
                                f"autoregressive.start_mel_token is {start}; codes must stay below the start token")
        return self._dvae

    # --- construction -------------------------------------------------------------------------
    def build_models(self) -> dict[str, nn.Module]:
        torch.manual_seed(self.seed)
        hp = dict(self.hyperparameters, checkpointing=self.options.gradient_checkpointing)
        vocab = self.tokenizer.vocab_size
        base = self.config.base
        if base:
            model = ckpt.build_unified_voice(hp)
            path = resolve_base(Path(base), self.workspace_root)
            sd = read_base_state(path)
            ckpt.strict_load(model, sd, path, "UnifiedVoice",
                              "Set autoregressive.layers/model_dim/heads/max_*_tokens/number_text_tokens to the "
                              "values the base was trained with (tortoise's autoregressive.pth: the defaults).")
            if vocab != model.number_text_tokens:
                self._resize_text(model, vocab)
        else:
            if vocab != hp.get("number_text_tokens", vocab):
                log.info("tokenizer has %d tokens: building the text embedding for that size", vocab)
                hp.update(number_text_tokens=vocab, start_text_token=vocab)
            model = ckpt.build_unified_voice(hp)
        self._apply_freezing(model)
        model.train()
        return {"gpt": model.to(self.device)}

    def _resize_text(self, model: nn.Module, vocab: int) -> None:
        """A tokenizer of another size: new text embedding and head (their weights start fresh)."""
        warn(f"the tokenizer has {vocab} tokens but the base model's text embedding has "
             f"{model.number_text_tokens}: the text embedding and text head are re-initialised, so the text "
             "weights start fresh and need much more training data")
        dim = model.model_dim
        model.text_embedding = nn.Embedding(vocab + 1, dim)
        nn.init.normal_(model.text_embedding.weight, std=0.02)
        model.text_head = nn.Linear(dim, vocab + 1)
        model.number_text_tokens = vocab
        model.start_text_token = vocab
        self.text_resized = True

    def model_hyperparameters(self, model: nn.Module) -> dict[str, Any]:
        """Constructor arguments that rebuild ``model`` (written beside exported checkpoints)."""
        m = self.unwrap(model)
        return {"layers": m.layers, "model_dim": m.model_dim, "heads": m.heads, "max_text_tokens": m.max_text_tokens,
                "max_mel_tokens": m.max_mel_tokens, "max_conditioning_inputs": m.max_conditioning_inputs,
                "number_text_tokens": m.number_text_tokens, "start_text_token": m.start_text_token,
                "number_mel_codes": m.number_mel_codes, "start_mel_token": m.start_mel_token,
                "stop_mel_token": m.stop_mel_token, "mel_length_compression": m.mel_length_compression}

    def _apply_freezing(self, model: nn.Module) -> None:
        if self.options.freeze_conditioning_encoder:
            model.conditioning_encoder.requires_grad_(False)
        if self.options.freeze_text_embedding:
            if self.text_resized:
                raise UserError("autoregressive.freeze_text_embedding: the text embedding was just re-initialised "
                                "for a new tokenizer, so it must train; set it to false")
            model.text_embedding.requires_grad_(False)
            model.text_pos_embedding.requires_grad_(False)
        n = self.options.freeze_layers
        if n > len(model.gpt.h):
            raise UserError(f"autoregressive.freeze_layers {n} exceeds the model's {len(model.gpt.h)} layers")
        for block in model.gpt.h[:n]:
            block.requires_grad_(False)
        if not any(p.requires_grad for p in model.parameters()):
            raise UserError("every parameter is frozen; lower autoregressive.freeze_layers")

    def optimizer_params(self, models: dict[str, nn.Module]) -> dict[str, list]:
        """Weight decay on weight matrices only: not biases, norms or embeddings (as DLAS)."""
        model = self.unwrap(models["gpt"])
        no_decay_modules = (nn.Embedding, nn.LayerNorm, nn.GroupNorm)
        decay, no_decay = [], []
        for module in model.modules():
            for name, p in module.named_parameters(recurse=False):
                if not p.requires_grad:
                    continue
                if isinstance(module, no_decay_modules) or name == "bias" or p.dim() < 2:
                    no_decay.append(p)
                else:
                    decay.append(p)
        wd = self.options.weight_decay
        return {"gpt": [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]}

    def build_optimizer(self, name: str, params: list) -> torch.optim.Optimizer:
        lr = self.config.learning_rate
        betas = tuple(float(b) for b in self.options.betas)
        if self.options.optimizer_8bit:
            if self.device.type != "cuda":
                raise UserError("autoregressive.optimizer_8bit needs a CUDA GPU (bitsandbytes); set it to false")
            try:
                import bitsandbytes as bnb
            except ImportError as exc:
                raise UserError("autoregressive.optimizer_8bit needs the bitsandbytes package: "
                                "pip install bitsandbytes, or set it to false") from exc
            return bnb.optim.AdamW8bit(params, lr=lr, betas=betas)
        fused = {"fused": True} if self.device.type == "cuda" else {}  # one kernel for all parameters
        return torch.optim.AdamW(params, lr=lr, betas=betas, **fused)

    # --- data ---------------------------------------------------------------------------------
    def _audio_cache(self, list_name: str):
        if list_name not in self._caches:
            from modules.audio.tortoise_mel import SAMPLE_RATE
            from modules.hifigan.data import build_cache

            lines = read_lines(self.dataset_dir, list_name)
            cache = build_cache([ln.audio for ln in lines], SAMPLE_RATE, self.dataset_dir / "cache",
                                "ar-" + Path(list_name).stem)
            self._caches[list_name] = (lines, cache)
        return self._caches[list_name]

    def _dataset(self, list_name: str, cond_list: str) -> ARDataset:
        lines, cache = self._audio_cache(list_name)
        codes = compute_codes(cache, self.dvae(), self.mel, self.dataset_dir / "cache", self._path("dvae"),
                              self.device) if len(cache) else []
        entries, skipped = select_entries(lines, self.tokenizer, [cache.length(i) for i in range(len(cache))],
                                          self.options.max_text_tokens,
                                          self.options.max_mel_tokens, list_name)
        if list_name == "train.txt" and not entries:
            raise UserError(f"{self.dataset_dir / list_name}: no usable lines ({len(skipped)} skipped: "
                            f"{skipped[0] if skipped else 'the list is empty'})")
        _, cond_cache = self._audio_cache(cond_list)
        ds = ARDataset(entries, codes, cache, range(len(cond_cache)), cond_cache,
                       self.options.conditioning_clips, self.options.conditioning_samples, self.seed)
        ds.texts = [lines[e.index].text for e in entries]  # as written: what validation samples are scored against
        return ds

    def train_dataset(self) -> Dataset:
        return self._dataset("train.txt", "train.txt")

    def validation_dataset(self) -> Dataset:
        # conditioning comes from the training clips: the voice, never the validation clip itself
        self._val_dataset = self._dataset("validation.txt", "train.txt")
        if len(self._val_dataset) and self.config.validation_samples:
            # load the decoder now: a missing or wrong decoder file stops the run before step 1
            decoder = self.decoder()
            log.info(f"validation samples: rendered with {decoder.label()}")  # rank 0 only: RunLog's filter
        return self._val_dataset

    def collate_fn(self) -> Callable | None:
        return functools.partial(collate, stop_mel_token=self.options.stop_mel_token)

    # --- steps --------------------------------------------------------------------------------
    def _batch(self, batch: dict[str, torch.Tensor]):
        dev = self.device
        cond = batch["cond"].to(dev, non_blocking=True)
        b, n, s = cond.shape
        with torch.no_grad():
            mels = self.mel.to(dev)(cond.reshape(b * n, s))
        return (mels.reshape(b, n, *mels.shape[1:]), batch["text"].to(dev), batch["text_lengths"].to(dev),
                batch["codes"].to(dev), batch["wav_lengths"].to(dev))

    def _weights(self) -> tuple[float, float]:
        return self.config.text_lr_weight, self.config.mel_lr_weight

    def train_step(self, batch: Any, models: dict[str, nn.Module], ctx: StepContext) -> dict[str, float]:
        cond, text, text_lengths, codes, wav_lengths = self._batch(batch)
        tw, mw = self._weights()
        with ctx.autocast():
            loss_text, loss_mel, _ = models["gpt"](cond, text, text_lengths, codes, wav_lengths)
        total = tw * loss_text + mw * loss_mel  # non-finite values are caught by the core
        ctx.backward(total, "gpt")
        ctx.step("gpt")
        values = torch.stack([total, loss_text, loss_mel]).detach().float().unbind()  # read by the ledger
        return dict(zip(("loss", "text_ce", "mel_ce"), values))

    @torch.no_grad()
    def validate(self, models: dict[str, nn.Module], loader, ctx: StepContext, step: int) -> ValidationResult:
        model = self.unwrap(models["gpt"])
        was_training = model.training
        model.eval()
        tw, mw = self._weights()
        sums = {"text_ce": 0.0, "mel_ce": 0.0, "correct": 0.0, "count": 0.0, "items": 0}
        try:
            for batch in loader:
                cond, text, text_lengths, codes, wav_lengths = self._batch(batch)
                with ctx.autocast():
                    d = model(cond, text, text_lengths, codes, wav_lengths, return_details=True)
                b = text.shape[0]
                sums["text_ce"] += float(d["loss_text"]) * b
                sums["mel_ce"] += float(d["loss_mel"]) * b
                sums["items"] += b
                # accuracy over each clip's real codes and its first stop token
                targets = d["mel_targets"]
                real = (wav_lengths // model.mel_length_compression + 1).clamp(max=targets.shape[1] - 1)
                mask = torch.arange(targets.shape[1], device=targets.device)[None] <= real[:, None]
                hits = (d["mel_logits"].argmax(1) == targets) & mask
                sums["correct"] += float(hits.sum())
                sums["count"] += float(mask.sum())
            samples = self._samples(model, step)
        finally:
            model.train(was_training)
        metrics: dict[str, float] = {}
        if sums["items"]:
            metrics["text_ce"] = sums["text_ce"] / sums["items"]
            metrics["mel_ce"] = sums["mel_ce"] / sums["items"]
            metrics["loss"] = tw * metrics["text_ce"] + mw * metrics["mel_ce"]
            metrics["mel_accuracy"] = sums["correct"] / max(sums["count"], 1.0)
        return ValidationResult(metrics=metrics, samples=samples)

    def decoder(self):
        """The decoder of ``autoregressive.decoder`` (loaded once per process; see ``decoders``)."""
        if self._decoder is None:
            from modules.autoregressive.synthesize import DecoderOptions, decoder_choice, make_decoder

            vocoder = self.options.vocoder
            options = DecoderOptions(self.options.decoder, self.options.diffusion_preset,
                                     self.options.diffusion_steps, self._path("hifi_decoder"),
                                     self._path("diffusion_decoder"), self._path("univnet"),
                                     self._resolve(vocoder) if vocoder else None)
            choice = decoder_choice(options, self.workspace_root / "models", setting="autoregressive.decoder")
            from modules.trainer.precision import resolve_precision

            amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(resolve_precision(self.config.precision,
                                                                                        self.device))
            if choice.kind == "preview":
                from modules.autoregressive.decoders import PreviewDecoder
                from modules.autoregressive.vocoding import GriffinLimVocoder, HifiganVocoder

                voc = (HifiganVocoder(options.vocoder, self.device, setting="autoregressive.vocoder") if vocoder
                       else GriffinLimVocoder(self.mel.mel_norms))
                self._decoder = PreviewDecoder(self.dvae(), voc, self.device)
            else:
                self._decoder = make_decoder(choice, self._path("dvae"), self.mel.mel_norms, None, self.device, amp)
        return self._decoder

    def _resolve(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.workspace_root / p

    def _voice_waves(self) -> list[torch.Tensor]:
        """A fixed, seeded subset of the training clips: the voice every validation sample speaks in."""
        if self._voice is None:
            from modules.autoregressive.data import voice_rows

            _, cache = self._audio_cache("train.txt")
            picks = voice_rows(len(cache), self.options.conditioning_clips, self.seed)
            self._voice = [torch.from_numpy(cache.clip(r).copy()) for r in picks]
        return self._voice

    def _samples(self, model: nn.Module, step: int) -> list[AudioSample]:
        """Speak the first validation texts in the voice of a fixed subset of training clips, through
        the configured decoder, as tortoise would render this checkpoint."""
        from modules.autoregressive.synthesize import voice_from_waves

        limit = self.config.validation_samples
        ds = self._val_dataset
        if ds is None or not limit:
            return []
        decoder = self.decoder()
        voice = voice_from_waves(model, self.mel, decoder, self._voice_waves(), self.seed, key="train-voice")
        sampling = {"max_tokens": self.options.sample_max_mel_tokens,
                    "temperature": self.options.sample_temperature,
                    "top_p": self.options.sample_top_p}
        if getattr(decoder, "dvae", None) is not None:
            sampling["num_codes"] = decoder.dvae.num_tokens
        out = []
        for i in range(min(limit, len(ds))):
            item = ds[i]
            # one seed per text, the same at every step: the steps' samples differ by the model alone
            text = ds.texts[i]
            seed = text_seed(self.seed, text)
            gen = torch.Generator().manual_seed(seed)
            torch.manual_seed(seed)  # what the decoder draws too (the core forks the RNG around validation)
            codes = model.sample_codes(voice.gpt_latent, item["text"], generator=gen, **sampling)[0]
            wave = decoder.render(model, item["text"], codes, voice, seed=seed)
            ref = torch.from_numpy(ds.audio.clip(ds.entries[i].index))
            out.append(AudioSample(name=f"sample{i:02d}", wave=wave, sample_rate=decoder.sample_rate,
                                   reference=ref, reference_rate=self.mel_rate,
                                   mel_image=getattr(decoder, "last_mel", None), rendered_by=decoder.label(),
                                   text=text))
        return out

    # --- export -------------------------------------------------------------------------------
    def export(self, models: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
               step: int, epoch: int, checkpoint_dir: Path) -> list[Path]:
        """``XXXXXXXX_gpt.pth`` (tortoise's exact keys) plus a small JSON of its hyperparameters."""
        from modules.fileutil import atomic_write_json

        checkpoint_dir = Path(checkpoint_dir)
        model = self.unwrap(models["gpt"])
        pth = ckpt.save_unified_voice(model, checkpoint_dir / f"{step:08d}_gpt.pth")
        meta = atomic_write_json(checkpoint_dir / f"{step:08d}_gpt.json", {
            "step": step, "epoch": epoch, "hyperparameters": self.model_hyperparameters(model),
            "tokenizer": str(self._path("tokenizer")), "mel_norms": str(self._path("mel_norms")),
            "dvae": str(self._path("dvae"))})
        return [pth, meta]


def text_seed(seed: int, text: str) -> int:
    """The sampling seed of one validation text: fixed per (run seed, text), never per step."""
    import zlib

    return (int(seed) * 1_000_003 + zlib.crc32(text.encode("utf-8"))) % (2**31 - 1)
