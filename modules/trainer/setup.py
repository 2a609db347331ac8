"""Setting a run up: the run folder and its lock, models and optimizers, schedules, resume."""

from __future__ import annotations

import functools
import os
import socket
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modules import model_registry
from modules.config.schema import RESUME_SAFE_KEYS, changed_keys, config_to_dict, save_config
from modules.errors import UserError
from modules.fileutil import atomic_write_text, remove_temp_files
from modules.trainer import distributed as D
from modules.trainer.compiling import compile_models
from modules.trainer.context import seed_everything
from modules.trainer.logs import get_logger
from modules.trainer.precision import resolve_precision
from modules.trainer.runfolder import RunLock, RunPaths, list_states, lock_holder, run_dir_for
from modules.trainer.schedules import lr_factor, total_steps
from modules.trainer.state import remove_orphan_sidecars, resolve_resume

log = get_logger("trainer")


class TrainerSetup:
    """The set-up half of ``Trainer`` (see ``modules.trainer.core``)."""

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
        if self.run_dir.is_dir():
            from modules.evaluation.runner import stop_scorer

            if stop_scorer(self.run_dir):  # a scorer of an earlier start must not write into this one
                log.info("stopped the validation scorer of the previous start of this run")
        if self.fresh and self.resume is None and self.run_dir.exists() and any(self.run_dir.iterdir()):
            if lock_holder(self.run_dir) is not None:
                raise UserError(f"{self.run_dir}: a trainer is running there; stop it before starting fresh")
            moved = self.run_dir.with_name(f"{self.run_dir.name}-{time.strftime('%Y%m%d-%H%M%S')}")
            self.run_dir.rename(moved)
            log.info(f"moved the previous run to {moved}")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.lock = RunLock(self.paths.lock)
        self.lock.acquire({"pid": os.getpid(), "started": time.time(), "host": socket.gethostname(),
                           "command": self.command, "world_size": self.info.world_size})
        self.run_log.open_file(self.paths.log)
        log.info(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {self.command}")
        stale = remove_temp_files(self.run_dir) + remove_orphan_sidecars(self.paths.states)  # a killed run's leftovers
        if stale:
            log.info(f"removed {len(stale)} unfinished write(s) an interrupted run left behind")
        save_config(self.config, self.paths.config)
        atomic_write_text(self.paths.command, self.command + "\n")

    def _build(self) -> None:
        c = self.config
        seed_everything(c.seed)
        if self.device.type == "cuda":
            torch.set_float32_matmul_precision("high")
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        cls = self.recipe_cls or model_registry.get(c.model).recipe_class()
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
            delay = int(getattr(self.recipe, "schedule_delay", lambda _name: 0)(name))
            lam = self._lr_lambda if not delay else functools.partial(_delayed, self._lr_lambda, delay)
            self.schedulers[name] = torch.optim.lr_scheduler.LambdaLR(opt, lam)
        if resolve_precision(self.config.precision, self.device) == "fp16":
            for name in self.optimizers:
                self.scalers[name] = torch.amp.GradScaler(self.device.type)

    def _find_resume_state(self) -> tuple[Path, dict[str, Any]]:
        """The state ``--resume`` names, read and checked against the config *before* the run's
        ``status.json`` is touched: a refused resume leaves the run's last account as it was."""
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
        return path, state

    def _load_state(self) -> dict[str, Any] | None:
        if self.resume is None:
            self.recipe.on_base_loaded(self.plain, self.optimizers)
            self._make_schedulers()
            return None
        path, state = self._resume_found or self._find_resume_state()
        self._resume_found = None
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
        self._set_aside_newer_samples()
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
        self.log(f"moved {len(newer)} newer state(s) of the abandoned continuation "
                 f"to {folder.relative_to(self.run_dir)}")

    def _set_aside_newer_samples(self) -> None:
        """Validation audio of steps after the resumed one belongs to the abandoned continuation: moved
        to ``samples/abandoned-TIME/`` so neither the Run tab nor the scorer takes it for this run's."""
        if not self.main or not self.paths.samples.is_dir():
            return
        newer = [p for p in self.paths.samples.glob("step_*") if p.is_dir() and p.name[5:].isdigit()
                 and int(p.name[5:]) > self.step]
        if not newer:
            return
        folder = self.paths.samples / f"abandoned-{time.strftime('%Y%m%d-%H%M%S')}"
        folder.mkdir(parents=True, exist_ok=True)
        for p in newer:
            p.rename(folder / p.name)

    def _wrap(self) -> None:
        note = compile_models(self.plain, self.recipe.compile_targets, self.config.compile, self.device,
                              self.config.grad_accumulation)
        if note:
            log.info(note)
        self.models: dict[str, nn.Module] = dict(self.plain)
        if not self.info.enabled:
            return
        from torch.nn.parallel import DistributedDataParallel as DDP

        unused = bool(getattr(self.recipe, "ddp_find_unused_parameters", False))
        for name, m in self.plain.items():
            if any(p.requires_grad for p in m.parameters()):
                ids = [self.device.index] if self.device.type == "cuda" else None
                self.models[name] = DDP(m, device_ids=ids, find_unused_parameters=unused)


def _delayed(factor, delay: int, step: int) -> float:
    """An optimizer's schedule that starts ``delay`` steps late (it holds its first value until then)."""
    return factor(max(0, step - delay))
