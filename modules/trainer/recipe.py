"""The contract between the trainer core and a model recipe (HiFi-GAN, autoregressive).

The core owns epochs, accumulation, precision, DDP, checkpoints/states, resume,
metrics and signals. A recipe owns its models, losses, data, one micro-batch of
training, validation and its export format. There is one training loop: the
core's ``Trainer``; recipes never loop over data themselves except in
``validate``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager

import torch
from torch import nn
from torch.utils.data import Dataset


@dataclass
class AudioSample:
    """One validation clip to save as ``samples/step_X/<name>.wav`` and show in TensorBoard/the UI."""

    name: str
    wave: torch.Tensor  # [samples] float in [-1, 1], CPU
    sample_rate: int
    reference: torch.Tensor | None = None  # saved as ``<name>_ref.wav`` when given
    mel_image: torch.Tensor | None = None  # [mels, frames] for a TensorBoard image, optional
    reference_rate: int | None = None  # the reference's rate when it differs from ``sample_rate``
    rendered_by: str | None = None  # what made the audio (shown beside the player and in train.log)
    text: str | None = None  # what the clip says (its word error rate is scored against it)
    comparison: bool = False  # another model's rendering shown beside the samples (the base's); never scored


@dataclass
class ValidationResult:
    metrics: dict[str, float]  # logged with ``"validation": true`` as ``val_<name>``
    samples: list[AudioSample] = field(default_factory=list)


class StepContext(ABC):
    """What the core hands a recipe for one micro-batch (implemented by the core)."""

    device: torch.device
    precision: str  # fp32 | bf16 | fp16
    micro_step: int  # index of this micro-batch inside the accumulation window
    accumulation: int
    global_step: int  # optimizer steps completed so far
    epoch: int

    @property
    def is_boundary(self) -> bool:
        """True on the last micro-batch of an accumulation window (``step`` really steps then)."""
        return self.micro_step == self.accumulation - 1

    @abstractmethod
    def autocast(self) -> ContextManager:
        """Autocast for the configured precision (a no-op context for fp32)."""

    @abstractmethod
    def backward(self, loss: torch.Tensor, optimizer: str) -> None:
        """Backward ``loss / accumulation`` (scaled for fp16), accumulating grads only into
        the parameters of the named optimizer (other models' grads are untouched:
        ``loss.backward(inputs=params)``)."""

    @abstractmethod
    def step(self, optimizer: str) -> None:
        """At an accumulation boundary: unscale, clip, (DDP-synced) optimizer step, zero grad.
        A no-op on other micro-batches, so recipes call it unconditionally. A non-finite
        gradient norm (fp32/bf16) stops training before the weights are touched.

        With ``grad_accumulation`` > 1, an optimizer stepped at the boundary changes its model
        for the rest of that micro-batch only: compute every loss that reads a model *before*
        stepping that model's optimizer if accumulation must equal one big batch exactly."""


class Recipe(ABC):
    """A model recipe. One instance per training process (rank).

    ``config`` is the validated ``TrainConfig``; ``dataset_dir`` the prepared
    ``training/NAME`` folder; ``device`` the training device.
    """

    name: str = ""
    # Optional knobs the core reads (override as class attributes):
    main_loss: str = "loss"  # train value stored in state sidecars (train_loss); else the first key
    main_metric: str = "loss"  # validation metric stored as val_loss; else the first key
    validation_batch_size: int = 1  # the validation loader's batch size (collate_fn as for training)
    ddp_find_unused_parameters: bool = False  # for models whose forward skips parameters under DDP

    def __init__(self, config: Any, dataset_dir: Path, device: torch.device, workspace_root: Path):
        from modules.config.schema import TrainConfig, config_from_dict

        # a plain dict (a config built in code) goes through the schema: recipes only see typed options
        self.config: TrainConfig = config if isinstance(config, TrainConfig) else config_from_dict(dict(config))
        self.options = self.config.options  # this model's section, typed
        self.dataset_dir = Path(dataset_dir)
        self.device = device
        self.workspace_root = Path(workspace_root)

    # --- construction -------------------------------------------------------------------------
    @abstractmethod
    def build_models(self) -> dict[str, nn.Module]:
        """Create the models (on CPU or device) and load ``config.base`` when set.
        Trainable models are wrapped in DDP by the core; frozen helpers (a DVAE) stay plain."""

    @abstractmethod
    def optimizer_params(self, models: dict[str, nn.Module]) -> dict[str, list]:
        """Optimizer name -> parameter groups; the core builds the optimizers through
        ``build_optimizer`` so recipes choose their kind (AdamW betas, weight decay)."""

    @abstractmethod
    def build_optimizer(self, name: str, params: list) -> torch.optim.Optimizer:
        """Create the optimizer ``name`` for ``params`` with the configured learning rate."""

    # models whose forward the ``compile`` key compiles (static shapes in training); () = never compiled
    compile_targets: tuple[str, ...] = ()

    def schedule_delay(self, optimizer: str) -> int:
        """Steps before the optimizer's learning-rate schedule starts (an optimizer that does not step
        during a warm-up of the others keeps its schedule for when it does)."""
        del optimizer
        return 0

    def on_base_loaded(self, models: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer]) -> None:
        """Hook after optimizers exist: e.g. load a jik876 ``do_`` file's optimizer states."""
        del models, optimizers

    # --- data ---------------------------------------------------------------------------------
    @abstractmethod
    def train_dataset(self) -> Dataset:
        """Items must be deterministic given (seed, epoch, index); the core calls
        ``dataset.set_epoch(epoch)`` (when defined) in whichever process loads the items
        (its persistent loader workers included) before the first item of each epoch.
        Loader workers ignore SIGTERM/SIGINT; the main process stops them."""

    @abstractmethod
    def validation_dataset(self) -> Dataset: ...

    def collate_fn(self) -> Callable | None:
        return None

    # --- steps --------------------------------------------------------------------------------
    @abstractmethod
    def train_step(self, batch: Any, models: dict[str, nn.Module], ctx: StepContext) -> dict[str, Any]:
        """One micro-batch: move to device, forward under ``ctx.autocast()``, ``ctx.backward``
        and ``ctx.step`` per optimizer. Returns the losses to log: floats, or detached 0-d tensors that
        the core reads back in one transfer per log line (``modules.trainer.ledger``). ``models`` holds the
        DDP-wrapped modules; ``self.unwrap(m)`` gives the plain module."""

    @abstractmethod
    def validate(self, models: dict[str, nn.Module], loader, ctx: StepContext, step: int) -> ValidationResult:
        """Eval-mode pass over the validation set; never counted as a training step.

        Runs on rank 0 only, with the *plain* (unwrapped) models already in eval mode and the
        RNGs forked and seeded with ``config.seed`` (sampling is repeatable; training RNG is
        untouched). ``loader`` iterates ``validation_dataset()`` with ``validation_batch_size``."""

    # --- export -------------------------------------------------------------------------------
    def export(self, models: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
               step: int, epoch: int, checkpoint_dir: Path) -> list[Path]:
        """Write the recipe's interchange files (jik876 ``g_``/``do_``, tortoise ``_gpt.pth``)."""
        return []

    @staticmethod
    def unwrap(module: nn.Module) -> nn.Module:
        if hasattr(module, "module") and isinstance(module, nn.parallel.DistributedDataParallel):
            return module.module
        return module
