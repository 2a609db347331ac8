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
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

from modules.config.schema import TrainConfig
from modules.errors import UserError
from modules.fileutil import DiskFullError
from modules.trainer import distributed as D
from modules.trainer import exports
from modules.trainer.compiling import mark_step
from modules.trainer.context import (  # noqa: F401 (re-exported: the loop's helpers)
    CoreStepContext,
    NonFiniteError,
    _EpochDataset,
    _EpochTagged,
    _signals_blocked,
    _WorkerInit,
    describe_batch,
    seed_everything,
)
from modules.trainer.failures import EXIT_DISK_FULL, EXIT_NONFINITE, EXIT_OK, EXIT_OOM, TrainerFailures  # noqa: F401
from modules.trainer.ledger import Ledger
from modules.trainer.logs import RunLog, get_logger
from modules.trainer.metrics import MetricsLog, StatusFile, TensorBoard
from modules.trainer.precision import describe as precision_name
from modules.trainer.recipe import Recipe
from modules.trainer.reporting import TrainerReporting
from modules.trainer.scoring import ScoringHook
from modules.trainer.setup import TrainerSetup
from modules.trainer.signals import StartupStop, StopRequest
from modules.trainer.state import restore_rng

log = get_logger("trainer")


class Trainer(TrainerSetup, TrainerReporting, TrainerFailures):
    """One training run of ``config`` (see the module docstring)."""

    # losses and gradient norms read back once per flush (``modules.trainer.ledger``); None: on CUDA only
    lazy_readback: bool | None = None

    def __init__(self, config: TrainConfig, workspace: Any, config_path: str | os.PathLike | None = None, *,
                 resume: str | None = None, force: bool = False, fresh: bool = False,
                 recipe_cls: type[Recipe] | None = None, gpus: int | None = None, command: str | None = None,
                 export_only: bool = False):
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
        self.run_log = RunLog(self.info.rank)
        self._elapsed_before = 0.0
        self._resume_rng: dict[str, Any] | None = None
        self._resume_found: tuple[Path, dict[str, Any]] | None = None
        self._validated_at: int | None = None  # the step the last validation ran at
        self.export_only = export_only
        self.scoring: ScoringHook | None = None  # rank 0: the validation scorer process and its alarm

    # ------------------------------------------------------------------ helpers
    @property
    def main(self) -> bool:
        return self.info.is_main

    def log(self, msg: str) -> None:
        log.info(msg)  # rank 0 only: RunLog's rank filter

    def _epoch_progress(self) -> float:
        return round(self.epoch + self.step_in_epoch / max(1, self.spe), 4)

    def _elapsed(self) -> float:
        return self._elapsed_before + (time.time() - self._t0)

    # ------------------------------------------------------------------ saving / reporting
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
                self.run_log.write_traceback()  # the console gets it from the re-raise
                self._fail(f"{type(exc).__name__}: {exc} (traceback in train.log)")
            raise
        finally:
            self._close()

    def _open_status(self) -> None:
        self.status = StatusFile(self.paths.status, world_size=self.info.world_size, run=str(self.run_dir),
                                 config=str(self.config_path or ""), last_state=None)

    def _close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if getattr(self, "lock", None) is not None:
            self.lock.release()
        D.destroy_process_group(clean=sys.exc_info()[0] is None)
        self.run_log.close()

    def _run(self, stop: StopRequest) -> int:
        c = self.config
        if self.resume is not None:
            self._resume_found = self._find_resume_state()  # refused here: status.json is untouched
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
            # purge only what comes after the resumed state: the step it was saved at stays in TensorBoard
            self.tb = TensorBoard(self.paths.tensorboard, purge_step=self.step + 1)
            self.scoring = ScoringHook(self)
            self.status.update(step=self.step, epoch=self._epoch_progress(), total_steps=self.total,
                               steps_per_epoch=self.spe, message="training")
            gb = c.batch_size * c.grad_accumulation * self.info.world_size
            log.info(f"{c.model}: {len(self.train_ds)} train items, {self.val_items} validation items, "
                  f"{self.spe} steps/epoch, {self.total} steps, global batch {gb}, "
                  f"{precision_name(c.precision, self.device)}, "
                  f"device {self.device}, {self.info.world_size} process(es)")
        if self.resume is not None and self.main and exports.missing(self.paths.checkpoints, self.step):
            # a kill between the state and its export (or --export-only): write it from the state now
            self.export()
            self.log(f"wrote the missing exports of step {self.step} from its state")
        if self.export_only:
            if self.main:
                self.status.update(state="finished", message=f"exports of step {self.step} written")
            return EXIT_OK
        if self.step >= self.total:
            self.log(f"already at step {self.step} of {self.total}: raise epochs or max_steps to train further")
            if self.main:
                self.status.update(state="finished", message="finished")
            return EXIT_OK
        lazy = self.device.type == "cuda" if self.lazy_readback is None else self.lazy_readback
        self.ledger = Ledger(c.grad_accumulation, self.device, lazy=lazy)
        self.ctx = CoreStepContext(self)
        self._stop_agreement = D.StopAgreement(self.device, lagged=lazy)  # lazy: no per-step wait in DDP either
        if self._resume_rng is not None:
            restore_rng(self._resume_rng)  # last, so nothing in the set-up shifts the streams
        stop.defer()  # training begins: a signal now finishes the step and saves a state
        try:
            outcome = self._loop(stop)
        except NonFiniteError as exc:
            return self._nonfinite(exc)
        except DiskFullError as exc:
            return self._disk_full(exc)
        except torch.OutOfMemoryError:
            return self._oom()
        except RuntimeError as exc:
            if "can't allocate memory" in str(exc) or "out of memory" in str(exc):
                return self._oom()  # the CPU allocator's and some backends' wording
            raise
        self._stop_agreement.close()
        if self.main:
            if self.scoring is not None:
                self.scoring.after_run()
            reason = self.scoring.stop_reason if self.scoring is not None else None
            self.status.update(state=outcome, message=outcome if outcome == "finished" else
                               reason or f"stopped by {stop.signal_name or 'a signal'} at step {self.step}",
                               step=self.step, epoch=self._epoch_progress())
        self.log(f"{outcome} at step {self.step}")
        if outcome == "stopped" and self.scoring is not None and self.scoring.stop_reason:
            self.log(self.scoring.stop_reason)
        return EXIT_OK

    def _loop(self, stop: StopRequest) -> str:
        c = self.config
        A = c.grad_accumulation
        window_t = time.time()
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
                mark_step(c.compile, self.device, A)
                with sync:
                    losses = self.recipe.train_step(batch, self.models, ctx)
                self._losses = losses
                self.ledger.add_losses(self.step + 1, losses)  # eager: checked now; lazy: at the next flush
                micro += 1
                if not ctx.is_boundary:
                    continue
                # ---- one optimizer step is complete
                self.ledger.end_step(self.step + 1, self.step_grad_norms)
                for s in self.schedulers.values():
                    s.step()
                self.step += 1
                self.step_in_epoch += 1
                epoch_end = self.step_in_epoch >= self.spe
                if epoch_end:
                    self.epoch += 1
                    self.step_in_epoch = 0
                finished = self.step >= self.total
                stopping = self._stop_agreement.poll(stop.requested)
                validating = self._due(c.validate_every_steps, c.validate_every_epochs, epoch_end) or (
                    finished and bool(c.validate_every_steps or c.validate_every_epochs))
                saving = self._due(c.save_every_steps, c.save_every_epochs, epoch_end) or finished or stopping
                if validating or saving:
                    self.ledger.flush()  # a lazily found non-finite step stops the run before it is saved
                if self.step % c.log_every_steps == 0 or finished or stopping:
                    window, norms, window_steps = self.ledger.take_window()
                    self._log_train(window, norms, window_steps, lr_used, time.time() - window_t)
                    window_t = time.time()
                if validating:
                    self.validate()
                    if c.evaluation.stop_when_worse and not finished:  # every rank asks: one stops, all stop
                        wants = bool(self.scoring is not None and self.scoring.stop_reason)
                        stopping = D.any_rank(wants, self.device) or stopping
                if saving or stopping:
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
