"""The training loop shared by every recipe.

``Trainer(config, workspace, config_path=..., resume=None|"latest"|PATH).run()``
returns an exit code (0 finished or stopped by a signal, 3 non-finite loss,
4 out of memory). It owns: epochs and steps, gradient accumulation, precision,
DDP, LR schedules, validation, states, resume, metrics and signals. A recipe
(``modules.trainer.recipe.Recipe``) owns models, data and one micro-batch.

How a run goes (all ranks run the same code; rank 0 alone writes files):

1. seed python/numpy/torch with ``config.seed``; build the recipe, its models
   (moved to the device), optimizers; fresh run: ``recipe.on_base_loaded``;
   then one ``LambdaLR(lr_factor)`` per optimizer and, for fp16, one GradScaler
   per optimizer; resume: load the state into all of those and restore RNGs.
2. wrap models that have trainable parameters in DDP when world size > 1.
3. one DataLoader for the whole run (persistent workers; they ignore SIGTERM/
   SIGINT); per epoch: ``EpochBatchSampler`` (order from (seed, epoch) only,
   consumed micro-batches skipped on resume without loading them) and
   ``dataset.set_epoch(epoch)`` when defined, called in the loading process;
   per micro-batch ``recipe.train_step(batch, models, ctx)`` under DDP
   ``no_sync`` except on the last micro-batch of an accumulation window.
4. after each optimizer step: scheduler step, log every ``log_every_steps``,
   validate (unwrapped models, eval mode, forked RNG) and save when due, then
   stop on SIGTERM/SIGINT (after saving) or at the end. A signal before the
   first step (while building) exits 0 at once with status ``stopped``.

Optional recipe attributes read here: ``main_loss`` (train value shown in
state lists, default "loss"), ``main_metric`` (validation, default "loss"),
``validation_batch_size`` (1), ``ddp_find_unused_parameters`` (False),
``worker_init_fn(worker_id)``, ``state_dict()``/``load_state_dict(d)`` for
recipe state beyond models and optimizers.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import shlex
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, ContextManager

import numpy as np
import torch
from torch import nn

from modules import model_registry
from modules.config.schema import RESUME_SAFE_KEYS, TrainConfig, changed_keys, config_hash, config_to_dict, save_config
from modules.errors import UserError
from modules.fileutil import atomic_torch_save, atomic_write_json, atomic_write_text
from modules.trainer import distributed as D
from modules.trainer.metrics import MetricsLog, StatusFile, Tee, TensorBoard
from modules.trainer.recipe import Recipe, StepContext, ValidationResult
from modules.trainer.runfolder import (
    STARTUP_STOP_MESSAGE,
    RunLock,
    RunPaths,
    list_states,
    lock_holder,
    run_dir_for,
    state_name,
)
from modules.trainer.schedules import lr_factor, total_steps
from modules.trainer.signals import StartupStop, StopRequest
from modules.trainer.state import capture_rng, resolve_resume, restore_rng, save_state

EXIT_OK = 0
EXIT_NONFINITE = 3
EXIT_OOM = 4


class NonFiniteError(Exception):
    """A loss or gradient norm became NaN/inf."""

    def __init__(self, what: str, values: dict[str, float]):
        super().__init__(what)
        self.what = what
        self.values = values


class CoreStepContext(StepContext):
    """The core's ``StepContext``: accumulation-aware backward and step per optimizer."""

    def __init__(self, trainer: "Trainer"):
        self.t = trainer
        self.device = trainer.device
        self.precision = trainer.config.precision
        self.accumulation = trainer.config.grad_accumulation
        self.micro_step = 0
        self.global_step = 0
        self.epoch = 0
        if self.precision == "fp32":
            self._dtype = None
        else:
            self._dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16

    def autocast(self) -> ContextManager:
        if self._dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._dtype)

    def backward(self, loss: torch.Tensor, optimizer: str) -> None:
        params = self.t.opt_params[optimizer]
        loss = loss / self.accumulation
        scaler = self.t.scalers.get(optimizer)
        if scaler is not None:
            loss = scaler.scale(loss)
        loss.backward(inputs=params)

    def step(self, optimizer: str) -> None:
        if not self.is_boundary:
            return
        t = self.t
        opt = t.optimizers[optimizer]
        params = t.opt_params[optimizer]
        scaler = t.scalers.get(optimizer)
        if scaler is not None:
            scaler.unscale_(opt)
        grads = [p.grad for p in params if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
        norm_f = float(norm)
        if not math.isfinite(norm_f) and scaler is None:
            raise NonFiniteError(f"gradient norm of optimizer {optimizer!r}", {f"grad_norm_{optimizer}": norm_f})
        if t.config.grad_clip and grads and math.isfinite(norm_f):
            torch.nn.utils.clip_grads_with_norm_(params, t.config.grad_clip, norm)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)
        t.step_grad_norms[optimizer] = norm_f


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _ignore_signals_in_worker(worker_id: int, inner: Any = None) -> None:
    """Loader workers ignore SIGTERM/SIGINT: the main process stops them after saving.

    They are forked with these signals blocked (``_signals_blocked``), so a signal
    sent to the process group while a worker starts is discarded, not fatal.
    """
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    if inner is not None:
        inner(worker_id)


@contextlib.contextmanager
def _signals_blocked():
    """Block SIGTERM/SIGINT in this thread while loader workers fork (delivered afterwards)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class _EpochTagged:
    """Batch sampler yielding ``(epoch, index)`` so persistent workers learn the epoch per item."""

    def __init__(self, sampler: D.EpochBatchSampler):
        self.sampler = sampler

    def __iter__(self):
        e = self.sampler.epoch
        for batch in self.sampler:
            yield [(e, i) for i in batch]

    def __len__(self) -> int:
        return len(self.sampler)


class _EpochDataset(torch.utils.data.Dataset):
    """Calls the recipe dataset's ``set_epoch`` in whichever process fetches the item."""

    def __init__(self, ds: Any):
        self.ds = ds
        self.epoch: int | None = None
        self.has_set_epoch = hasattr(ds, "set_epoch")

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        if self.has_set_epoch and epoch != self.epoch:
            self.ds.set_epoch(epoch)
        self.epoch = epoch
        return self.ds[index]


class _WorkerInit:
    def __init__(self, inner: Any):
        self.inner = inner

    def __call__(self, worker_id: int) -> None:
        _ignore_signals_in_worker(worker_id, self.inner)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def describe_batch(batch: Any) -> Any:
    """Shapes and ranges of a batch, for diagnostics."""
    if isinstance(batch, torch.Tensor):
        d: dict[str, Any] = {"shape": list(batch.shape), "dtype": str(batch.dtype)}
        if batch.numel() and batch.is_floating_point():
            f = batch.detach().float()
            d.update(min=float(f.min()), max=float(f.max()), finite=bool(torch.isfinite(f).all()))
        return d
    if isinstance(batch, dict):
        return {str(k): describe_batch(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return [describe_batch(v) for v in batch[:16]]
    return repr(batch)[:200]


class Trainer:
    """One training run of ``config`` (see the module docstring)."""

    def __init__(self, config: TrainConfig, workspace: Any, config_path: str | os.PathLike | None = None, *,
                 resume: str | None = None, force: bool = False, fresh: bool = False,
                 recipe_cls: type[Recipe] | None = None, gpus: int | None = None, command: str | None = None):
        self.config = config
        self.workspace = workspace
        self.config_path = Path(config_path) if config_path else None
        self.resume = resume
        self.force = force
        self.fresh = fresh
        self.recipe_cls = recipe_cls
        self.gpus = config.gpus if gpus is None else int(gpus)
        self.command = command or os.environ.get(D.COMMAND_ENV) or shlex.join(
            [sys.executable, "-m", "modules", *sys.argv[1:]])
        self.info = D.env_dist_info()
        self.device = torch.device("cpu")
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.opt_params: dict[str, list[torch.nn.Parameter]] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        self.step_grad_norms: dict[str, float] = {}
        self.step = 0
        self.epoch = 0
        self.step_in_epoch = 0
        self.last_train_loss: float | None = None
        self.last_val_loss: float | None = None
        self.status: StatusFile | None = None
        self.metrics: MetricsLog | None = None
        self.tb: TensorBoard | None = None
        self._log_fh = None
        self._streams: tuple[Any, Any] | None = None
        self._elapsed_before = 0.0
        self._resume_rng: dict[str, Any] | None = None

    # ------------------------------------------------------------------ helpers
    @property
    def main(self) -> bool:
        return self.info.is_main

    def log(self, msg: str) -> None:
        if self.main:
            print(msg, flush=True)

    def _epoch_progress(self) -> float:
        return round(self.epoch + self.step_in_epoch / max(1, self.spe), 4)

    def _elapsed(self) -> float:
        return self._elapsed_before + (time.time() - self._t0)

    # ------------------------------------------------------------------ set-up
    def _prepare_run_dir(self) -> None:
        ws_root = Path(self.workspace.root)
        self.dataset_dir = self.workspace.inside(self.config.dataset)
        if not (self.dataset_dir / "train.txt").is_file():
            raise UserError(f"{self.config.dataset}: no train.txt there; prepare the dataset first "
                            "(python -m modules prepare VOICE) or fix `dataset:` in the config")
        self.run_dir = run_dir_for(self.dataset_dir, self.config_path, self.config.run_name)
        self.paths = RunPaths(self.run_dir)
        if self.resume is not None and self.resume != "latest":
            p = Path(self.resume)
            self.resume = str(p if p.is_absolute() or p.exists() else ws_root / p)
        has_states = bool(list_states(self.run_dir))
        if self.resume is None and has_states and not self.fresh:
            raise UserError(f"{self.run_dir} already holds training states: pass --resume latest to continue, "
                            "or --fresh to start over (the old run folder is kept under a new name)")
        if not self.main:
            return
        if self.fresh and self.resume is None and self.run_dir.exists() and any(self.run_dir.iterdir()):
            if lock_holder(self.run_dir) is not None:
                raise UserError(f"{self.run_dir}: a trainer is running there; stop it before starting fresh")
            moved = self.run_dir.with_name(f"{self.run_dir.name}-{time.strftime('%Y%m%d-%H%M%S')}")
            self.run_dir.rename(moved)
            print(f"moved the previous run to {moved}")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.lock = RunLock(self.paths.lock)
        self.lock.acquire({"pid": os.getpid(), "started": time.time(), "host": socket.gethostname(),
                           "command": self.command, "world_size": self.info.world_size})
        self._log_fh = open(self.paths.log, "a", encoding="utf-8")
        self._streams = (sys.stdout, sys.stderr)
        sys.stdout = Tee(sys.stdout, self._log_fh)
        sys.stderr = Tee(sys.stderr, self._log_fh)
        print(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {self.command}")
        save_config(self.config, self.paths.config)
        atomic_write_text(self.paths.command, self.command + "\n")

    def _build(self) -> None:
        c = self.config
        seed_everything(c.seed)
        if self.device.type == "cuda":
            torch.set_float32_matmul_precision("high")
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        cls = self.recipe_cls or _registry_recipe(c.model)
        self.recipe = cls(c, self.dataset_dir, self.device, Path(self.workspace.root))
        models = self.recipe.build_models()
        self.plain = {name: m.to(self.device) for name, m in models.items()}
        groups = self.recipe.optimizer_params(self.plain)
        for name, params in groups.items():
            opt = self.recipe.build_optimizer(name, params)
            self.optimizers[name] = opt
            self.opt_params[name] = [p for g in opt.param_groups for p in g["params"] if p.requires_grad]
        self.train_ds = self.recipe.train_dataset()
        n = len(self.train_ds)
        self.sampler = D.EpochBatchSampler(n, c.batch_size, c.grad_accumulation, self.info, c.seed)
        self.spe = self.sampler.steps
        if self.spe == 0:
            gb = c.batch_size * c.grad_accumulation * self.info.world_size
            raise UserError(f"the global batch ({gb} = batch_size {c.batch_size} x grad_accumulation "
                            f"{c.grad_accumulation} x {self.info.world_size} process(es)) is larger than the "
                            f"{n} training items: lower batch_size or grad_accumulation")
        self.total = total_steps(c.epochs, self.spe, c.max_steps)

    def _lr_lambda(self, step: int) -> float:
        return lr_factor(self.config.lr_schedule, step, self.spe, self.total)

    def _make_schedulers(self) -> None:
        for name, opt in self.optimizers.items():
            self.schedulers[name] = torch.optim.lr_scheduler.LambdaLR(opt, self._lr_lambda)
        if self.config.precision == "fp16":
            for name in self.optimizers:
                self.scalers[name] = torch.amp.GradScaler(self.device.type)

    def _load_state(self) -> dict[str, Any] | None:
        if self.resume is None:
            self.recipe.on_base_loaded(self.plain, self.optimizers)
            self._make_schedulers()
            return None
        path, state = resolve_resume(self.paths.states, self.resume, log=self.log)
        old_cfg = state.get("config") or {}
        changed = changed_keys(old_cfg, config_to_dict(self.config)) if old_cfg else []
        if state.get("world_size", 1) != self.info.world_size:
            changed.append(f"process count ({state.get('world_size', 1)} -> {self.info.world_size})")
        if changed and not self.force:
            safe = ", ".join(sorted(k for k in RESUME_SAFE_KEYS if "." not in k))
            raise UserError(f"{path}: the config changed since this state was saved: {', '.join(changed)}. "
                            f"Only {safe} may change on resume. Undo the change, start a new run (--fresh or "
                            "another run_name), or pass --force to resume anyway")
        if changed:
            self.log(f"warning: resuming with changed settings (--force): {', '.join(changed)}")
        self._make_schedulers()
        for name, sd in state["models"].items():
            if name in self.plain:
                self.plain[name].load_state_dict(sd)
        for name, sd in state["optimizers"].items():
            if name in self.optimizers:
                self.optimizers[name].load_state_dict(sd)
        for name, sd in state.get("schedulers", {}).items():
            if name in self.schedulers:
                self.schedulers[name].load_state_dict(sd)
        for name, sd in (state.get("scalers") or {}).items():
            if name in self.scalers:
                self.scalers[name].load_state_dict(sd)
        if state.get("recipe_state") is not None and hasattr(self.recipe, "load_state_dict"):
            self.recipe.load_state_dict(state["recipe_state"])
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.step_in_epoch = min(int(state.get("step_in_epoch", 0)), self.spe)
        if self.step_in_epoch >= self.spe:
            self.epoch, self.step_in_epoch = self.epoch + 1, 0
        rngs = state.get("rng") or []
        self._resume_rng = rngs[self.info.rank % len(rngs)] if rngs else None
        self._elapsed_before = float(state.get("elapsed", 0.0))
        self.last_train_loss = state.get("train_loss")
        self.last_val_loss = state.get("val_loss")
        self.log(f"resuming from {path} (step {self.step}, epoch {self.epoch}, step {self.step_in_epoch} "
                 f"of {self.spe} in the epoch)")
        self._set_aside_newer_states()
        return state

    def _set_aside_newer_states(self) -> None:
        """Resuming from an older state abandons the newer ones: move them to ``states/abandoned-TIME/``
        (kept, but no longer what ``--resume latest`` or the UI's list picks)."""
        if not self.main:
            return
        newer = [s for s in list_states(self.run_dir) if s.step > self.step]
        if not newer:
            return
        folder = self.paths.states / f"abandoned-{time.strftime('%Y%m%d-%H%M%S')}"
        folder.mkdir(parents=True, exist_ok=True)
        for info in newer:
            for p in (info.path, info.path.with_suffix(".json")):
                if p.exists():
                    p.rename(folder / p.name)
        self.log(f"moved {len(newer)} newer state(s) of the abandoned continuation to {folder.relative_to(self.run_dir)}")

    def _wrap(self) -> None:
        self.models: dict[str, nn.Module] = dict(self.plain)
        if not self.info.enabled:
            return
        from torch.nn.parallel import DistributedDataParallel as DDP

        unused = bool(getattr(self.recipe, "ddp_find_unused_parameters", False))
        for name, m in self.plain.items():
            if any(p.requires_grad for p in m.parameters()):
                ids = [self.device.index] if self.device.type == "cuda" else None
                self.models[name] = DDP(m, device_ids=ids, find_unused_parameters=unused)

    # ------------------------------------------------------------------ saving / reporting
    def _trainable_models(self) -> dict[str, nn.Module]:
        return {n: m for n, m in self.plain.items() if any(p.requires_grad for p in m.parameters())}

    def save(self) -> Path | None:
        """Write a state (all ranks' RNGs) and the recipe's export; rank 0 only writes."""
        rngs = D.gather_objects(capture_rng())
        if not self.main:
            return None
        state = {
            "recipe": self.config.model,
            "step": self.step,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "steps_per_epoch": self.spe,
            "world_size": self.info.world_size,
            "time": time.time(),
            "elapsed": self._elapsed(),
            "config": config_to_dict(self.config),
            "config_hash": config_hash(self.config),
            "models": {n: m.state_dict() for n, m in self._trainable_models().items()},
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
            "scalers": {n: s.state_dict() for n, s in self.scalers.items()},
            "rng": rngs,
            "recipe_state": self.recipe.state_dict() if hasattr(self.recipe, "state_dict") else None,
            "train_loss": self.last_train_loss,
            "val_loss": self.last_val_loss,
        }
        path = save_state(self.paths.state_file(self.step), state, self.config.keep_states,
                          sidecar_epoch=self._epoch_progress())
        self.recipe.export(self.plain, self.optimizers, self.step, self.epoch, self.paths.checkpoints)
        self.log(f"saved {path.relative_to(self.run_dir)}")
        if self.status:
            self.status.update(last_state=str(path))
        return path

    def _lr(self) -> dict[str, float]:
        return {n: float(o.param_groups[0]["lr"]) for n, o in self.optimizers.items()}

    def _log_train(self, window: dict[str, float], norms: dict[str, float], n_steps: int, lr: dict[str, float],
                   seconds: float) -> None:
        keys = sorted(window)
        summed = D.all_reduce_sum([window[k] for k in keys], self.device)
        losses = {k: v / n_steps / self.info.world_size for k, v in zip(keys, summed)}
        if not self.main:
            return
        main_key = getattr(self.recipe, "main_loss", "loss")
        self.last_train_loss = losses.get(main_key, next(iter(losses.values()), None))
        gb = self.config.batch_size * self.config.grad_accumulation * self.info.world_size
        rec: dict[str, Any] = {"step": self.step, "epoch": self._epoch_progress(), "time": time.time(),
                               "elapsed": round(self._elapsed(), 3)}
        names = list(lr)
        rec["lr"] = lr[names[0]]
        if len(names) > 1:
            rec.update({f"lr_{n}": v for n, v in lr.items()})
        if len(norms) == 1:
            rec["grad_norm"] = next(iter(norms.values())) / n_steps
        else:
            rec.update({f"grad_norm_{n}": v / n_steps for n, v in norms.items()})
        rec["samples_per_s"] = round(n_steps * gb / max(seconds, 1e-9), 3)
        rec.update(losses)
        self.metrics.write(rec)
        self.tb.scalars({k: v for k, v in rec.items() if k not in ("step", "epoch", "time", "elapsed")},
                        self.step, "train/")
        steps_per_s = n_steps / max(seconds, 1e-9)
        eta = (self.total - self.step) / steps_per_s if steps_per_s else None
        shown = " ".join(f"{k} {v:.4g}" for k, v in losses.items())
        print(f"step {self.step}/{self.total} epoch {rec['epoch']:.2f} {shown} lr {rec['lr']:.3g} "
              f"{rec['samples_per_s']:.1f} samples/s", flush=True)
        self.status.update(step=self.step, epoch=rec["epoch"], steps_per_s=round(steps_per_s, 4),
                           eta_s=round(eta, 1) if eta is not None else None, message="training")

    def validate(self) -> ValidationResult | None:
        """Validation on rank 0 (others wait), eval mode, RNG forked so training is unaffected."""
        result = None
        if self.main and self.val_items > 0:
            for m in self.plain.values():
                m.eval()
            py, npst = random.getstate(), np.random.get_state()
            devices = [self.device.index] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.config.seed)
                ctx = CoreStepContext(self)
                ctx.global_step, ctx.epoch = self.step, self.epoch
                result = self.recipe.validate(self.plain, self.val_loader, ctx, self.step)
            random.setstate(py)
            np.random.set_state(npst)
            self._restore_modes()
            self._report_validation(result)
        D.barrier()
        return result

    def _report_validation(self, result: ValidationResult) -> None:
        metrics = {f"val_{k}": float(v) for k, v in result.metrics.items()}
        main_key = getattr(self.recipe, "main_metric", "loss")
        if result.metrics:
            self.last_val_loss = float(result.metrics.get(main_key, next(iter(result.metrics.values()))))
        rec = {"step": self.step, "epoch": self._epoch_progress(), "time": time.time(),
               "elapsed": round(self._elapsed(), 3), "validation": True, **metrics}
        self.metrics.write(rec)
        self.tb.scalars(result.metrics, self.step, "val/")
        if result.samples:
            from modules.audio import write_wav

            folder = self.paths.sample_dir(self.step)
            for s in result.samples:
                write_wav(folder / f"{s.name}.wav", s.wave.detach().float().cpu().numpy(), s.sample_rate)
                if s.reference is not None:
                    write_wav(folder / f"{s.name}_ref.wav", s.reference.detach().float().cpu().numpy(),
                              s.reference_rate or s.sample_rate)
                self.tb.audio(f"val/{s.name}", s.wave.detach().float().cpu(), self.step, s.sample_rate)
                if s.mel_image is not None:
                    self.tb.mel_image(f"val_mel/{s.name}", s.mel_image, self.step)
        self.tb.flush()
        print("validation " + " ".join(f"{k} {v:.4g}" for k, v in metrics.items()), flush=True)
        if result.samples:
            self._describe_samples(result.samples)

    def _describe_samples(self, samples: list) -> None:
        """``samples/step_X/samples.json`` and a train.log line: what rendered each clip, at what rate."""
        info = {s.name: {"rendered_by": s.rendered_by, "sample_rate": s.sample_rate} for s in samples}
        atomic_write_json(self.paths.sample_info(self.step), info)
        by = sorted({f"{s.rendered_by or self.recipe.name} at {s.sample_rate} Hz" for s in samples})
        print(f"validation samples (step {self.step}): {len(samples)} rendered by {'; '.join(by)}", flush=True)

    def _restore_modes(self) -> None:
        for m in self.plain.values():
            m.train(any(p.requires_grad for p in m.parameters()))

    def _diagnose(self, err: NonFiniteError, batch: Any, losses: dict[str, float]) -> Path | None:
        if not self.main:
            return None
        self.paths.diagnostics.mkdir(parents=True, exist_ok=True)
        base = self.paths.diagnostics / f"nonfinite_{state_name(self.step + 1)}"
        info = {"what": err.what, "values": {k: str(v) for k, v in err.values.items()},
                "losses": {k: str(v) for k, v in losses.items()}, "step": self.step + 1,
                "epoch": self.epoch, "micro_step": self.ctx.micro_step, "lr": self._lr(),
                "config_hash": config_hash(self.config), "batch": describe_batch(batch)}
        atomic_write_json(base.with_suffix(".json"), info)
        try:
            atomic_torch_save({"batch": batch, "info": info}, base.with_suffix(".pt"))
        except Exception:  # noqa: BLE001 - the JSON report is what matters
            pass
        return base.with_suffix(".json")

    # ------------------------------------------------------------------ main loop
    def run(self) -> int:
        """Train; returns the process exit code.

        The stop handler goes in first: a SIGTERM while models and data are built exits 0
        with ``status.json`` saying stopped (nothing to save), instead of killing the process."""
        stop = StopRequest(at_startup=True)
        try:
            with stop:
                return self._run_guarded(stop)
        except StartupStop as exc:  # the instant before the guarded section: nothing opened yet
            return self._stopped_at_startup(exc.signal_name)

    def _run_guarded(self, stop: StopRequest) -> int:
        try:
            try:
                self._t0 = time.time()
                self.device = D.pick_device(self.info, self.gpus)
                D.init_process_group(self.info, self.device)
                self._t0 = time.time()
                self._prepare_run_dir()
                return self._run(stop)
            finally:
                stop.defer()  # failure handling and clean-up below are not interrupted by a signal
        except StartupStop as exc:
            return self._stopped_at_startup(exc.signal_name)
        except UserError as exc:
            self._fail(str(exc))
            self._log_error(str(exc))
            raise
        except BaseException as exc:
            if isinstance(exc, (SystemExit, KeyboardInterrupt)):
                self._fail(f"interrupted ({type(exc).__name__})")
            else:
                if self._log_fh is not None:
                    import traceback

                    traceback.print_exc(file=self._log_fh)  # the console gets it from the re-raise
                    self._log_fh.flush()
                self._fail(f"{type(exc).__name__}: {exc} (traceback in train.log)")
            raise
        finally:
            self._close()

    def _stopped_at_startup(self, signal_name: str) -> int:
        """Stopped before the first step: record it when this process owns the run folder
        (holds the lock; before that another trainer may own it), exit 0."""
        self.log(f"{signal_name} received during start-up: stopped, nothing to save")
        if self.main and getattr(self, "lock", None) is not None and self.lock.fd is not None:
            if self.status is None:
                self._open_status()
            self.status.update(state="stopped", message=STARTUP_STOP_MESSAGE, signal=signal_name, step=self.step)
        return EXIT_OK

    def _open_status(self) -> None:
        self.status = StatusFile(self.paths.status, world_size=self.info.world_size, run=str(self.run_dir),
                                 config=str(self.config_path or ""), last_state=None)

    def _fail(self, message: str) -> None:
        if self.main and self.status is not None and self.status.data.get("state") == "running":
            self.status.update(state="failed", message=message)

    def _log_error(self, message: str) -> None:
        """Append the CLI's one-line ``error: ...`` to ``train.log`` (rank 0, run folder present).

        The CLI prints UserErrors after the console tee is gone, so without this the Run tab's
        log tail and anyone reading the log would never see why the run stopped."""
        run_dir = getattr(self, "run_dir", None)
        if not self.main or run_dir is None or not Path(run_dir).is_dir():
            return
        owns_lock = getattr(self, "lock", None) is not None and self.lock.fd is not None
        if not owns_lock and lock_holder(run_dir) is not None:
            return  # another trainer runs there: its log is not ours to write
        line = f"error: {message}\n"
        try:
            if self._log_fh is not None:
                self._log_fh.write(line)
                self._log_fh.flush()
            else:
                with open(self.paths.log, "a", encoding="utf-8") as fh:
                    fh.write(line)
        except OSError:
            pass  # the log is a convenience; the error still reaches status.json and the console

    def _close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self._streams is not None:
            sys.stdout.flush()
            sys.stdout, sys.stderr = self._streams
            self._streams = None
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None
        if getattr(self, "lock", None) is not None:
            self.lock.release()
        D.destroy_process_group(clean=sys.exc_info()[0] is None)

    def _run(self, stop: StopRequest) -> int:
        c = self.config
        if self.main:
            self._open_status()
            self.status.update(message="building models")
        self._build()
        self._load_state()
        self._wrap()
        self._restore_modes()
        val_ds = self.recipe.validation_dataset()
        self.val_items = len(val_ds) if val_ds is not None else 0
        self.val_loader = None
        if self.val_items:
            self.val_loader = torch.utils.data.DataLoader(
                val_ds, batch_size=int(getattr(self.recipe, "validation_batch_size", 1)), shuffle=False,
                num_workers=0, collate_fn=self.recipe.collate_fn())
        if self.main:
            self.metrics = MetricsLog(self.paths.metrics)
            self.metrics.truncate_after(self.step)
            self.tb = TensorBoard(self.paths.tensorboard, purge_step=self.step)
            self.status.update(step=self.step, epoch=self._epoch_progress(), total_steps=self.total,
                               steps_per_epoch=self.spe, message="training")
            gb = c.batch_size * c.grad_accumulation * self.info.world_size
            print(f"{c.model}: {len(self.train_ds)} train items, {self.val_items} validation items, "
                  f"{self.spe} steps/epoch, {self.total} steps, global batch {gb}, {c.precision}, "
                  f"device {self.device}, {self.info.world_size} process(es)", flush=True)
        if self.step >= self.total:
            self.log(f"already at step {self.step} of {self.total}: raise epochs or max_steps to train further")
            if self.main:
                self.status.update(state="finished", message="finished")
            return EXIT_OK
        self.ctx = CoreStepContext(self)
        if self._resume_rng is not None:
            restore_rng(self._resume_rng)  # last, so nothing in the set-up shifts the streams
        stop.defer()  # training begins: a signal now finishes the step and saves a state
        try:
            outcome = self._loop(stop)
        except NonFiniteError as exc:
            return self._nonfinite(exc)
        except torch.OutOfMemoryError:
            return self._oom()
        except RuntimeError as exc:
            if "can't allocate memory" in str(exc) or "out of memory" in str(exc):
                return self._oom()  # the CPU allocator's and some backends' wording
            raise
        if self.main:
            self.status.update(state=outcome, message=outcome if outcome == "finished" else
                               f"stopped by {stop.signal_name or 'a signal'} at step {self.step}",
                               step=self.step, epoch=self._epoch_progress())
        self.log(f"{outcome} at step {self.step}")
        return EXIT_OK

    def _loop(self, stop: StopRequest) -> str:
        c = self.config
        A = c.grad_accumulation
        window: dict[str, float] = {}
        norms: dict[str, float] = {}
        window_steps, window_t = 0, time.time()
        lr_used = self._lr()
        self._batch: Any = None
        self._losses: dict[str, float] = {}
        loader = torch.utils.data.DataLoader(
            _EpochDataset(self.train_ds), batch_sampler=_EpochTagged(self.sampler), num_workers=c.num_workers,
            collate_fn=self.recipe.collate_fn(), pin_memory=self.device.type == "cuda",
            worker_init_fn=_WorkerInit(getattr(self.recipe, "worker_init_fn", None)) if c.num_workers else None,
            persistent_workers=c.num_workers > 0, generator=torch.Generator().manual_seed(c.seed * 100003))
        while self.step < self.total:
            self.sampler.set_epoch(self.epoch, skip_steps=self.step_in_epoch)
            if hasattr(self.train_ds, "set_epoch"):
                self.train_ds.set_epoch(self.epoch)
            with _signals_blocked():  # loader workers are forked here; they start with SIGTERM ignored
                batches = iter(loader)
            micro = 0
            step_sums: dict[str, float] = {}
            for batch in batches:
                ctx = self.ctx
                ctx.micro_step, ctx.global_step, ctx.epoch = micro % A, self.step, self.epoch
                if ctx.micro_step == 0:
                    lr_used = self._lr()
                    self.step_grad_norms = {}
                sync = contextlib.ExitStack()
                if self.info.enabled and not ctx.is_boundary:
                    for m in self.models.values():
                        if hasattr(m, "no_sync"):
                            sync.enter_context(m.no_sync())
                self._batch = batch
                with sync:
                    losses = self.recipe.train_step(batch, self.models, ctx)
                self._losses = losses
                bad = {k: v for k, v in losses.items() if not math.isfinite(float(v))}
                if D.any_rank(bool(bad), self.device):
                    raise NonFiniteError("training loss", bad or {"other rank": float("nan")})
                for k, v in losses.items():
                    step_sums[k] = step_sums.get(k, 0.0) + float(v) / A
                micro += 1
                if not ctx.is_boundary:
                    continue
                # ---- one optimizer step is complete
                for k, v in step_sums.items():
                    window[k] = window.get(k, 0.0) + v
                for k, v in self.step_grad_norms.items():
                    norms[k] = norms.get(k, 0.0) + v
                step_sums = {}
                window_steps += 1
                for s in self.schedulers.values():
                    s.step()
                self.step += 1
                self.step_in_epoch += 1
                epoch_end = self.step_in_epoch >= self.spe
                if epoch_end:
                    self.epoch += 1
                    self.step_in_epoch = 0
                finished = self.step >= self.total
                stopping = D.any_rank(stop.requested, self.device)
                if self.step % c.log_every_steps == 0 or finished or stopping:
                    self._log_train(window, norms, window_steps, lr_used, time.time() - window_t)
                    window, norms, window_steps, window_t = {}, {}, 0, time.time()
                if self._due(c.validate_every_steps, c.validate_every_epochs, epoch_end) or (
                        finished and (c.validate_every_steps or c.validate_every_epochs)):
                    self.validate()
                if self._due(c.save_every_steps, c.save_every_epochs, epoch_end) or finished or stopping:
                    self.save()
                if stopping:
                    return "stopped"
                if finished:
                    break
        return "finished"

    def _due(self, every_steps: int | None, every_epochs: int | None, epoch_end: bool) -> bool:
        if every_steps and self.step % every_steps == 0:
            return True
        return bool(every_epochs and epoch_end and self.epoch % every_epochs == 0)

    def _nonfinite(self, exc: NonFiniteError) -> int:
        diag = self._diagnose(exc, self._batch, self._losses)
        states = list_states(self.run_dir)
        last = f"the last good state is {states[0].path.relative_to(self.run_dir)}" if states else \
            "no state was saved before it"
        vals = ", ".join(f"{k}={v}" for k, v in exc.values.items())
        msg = (f"non-finite {exc.what} at step {self.step + 1} ({vals}); training stopped and {last}. "
               f"Diagnostic: {diag.relative_to(self.run_dir) if diag else 'n/a'}. Try a lower learning_rate "
               f"(now {self.config.learning_rate:g}), set grad_clip, or use precision bf16/fp32 "
               f"(now {self.config.precision}); then --resume latest")
        if self.main:
            print(f"error: {msg}", file=sys.stderr, flush=True)
            self.status.update(state="failed", message=msg)
        return EXIT_NONFINITE

    def _oom(self) -> int:
        c = self.config
        self._batch = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        spec = model_registry.get(c.model)
        knobs, advice = spec.memory_hints(c.options) if spec.memory_hints else ([], [])
        knobs = [f"batch_size {c.batch_size}", *knobs, f"precision {c.precision}",
                 f"grad_accumulation {c.grad_accumulation}"]
        msg = (f"out of {self.device.type.upper()} memory at step {self.step + 1} ({', '.join(knobs)}). Lower "
               "batch_size and raise grad_accumulation by the same factor to keep the global batch"
               + "".join(f", {a}" for a in advice) + ", or use precision bf16; then --resume latest")
        if self.main:
            print(f"error: {msg}", file=sys.stderr, flush=True)
            self.status.update(state="failed", message=msg)
        return EXIT_OOM


def _registry_recipe(model: str) -> type[Recipe]:
    return model_registry.get(model).recipe_class()
