"""Saving states and reporting: train log lines, validation metrics, samples, TensorBoard."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from modules.config.schema import config_hash, config_to_dict
from modules.fileutil import atomic_write_json
from modules.trainer import distributed as D
from modules.trainer import exports
from modules.trainer.compiling import eager_validation
from modules.trainer.context import CoreStepContext
from modules.trainer.logs import get_logger
from modules.trainer.recipe import ValidationResult
from modules.trainer.state import capture_rng, save_state

log = get_logger("trainer")


class TrainerReporting:
    """The saving and reporting half of ``Trainer`` (see ``modules.trainer.core``)."""

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
        self.export(self._validated_at == self.step)
        self.log(f"saved {path.relative_to(self.run_dir)}")
        if self.status:
            self.status.update(last_state=str(path))
        return path

    def export(self, validated_now: bool = False) -> None:
        """The recipe's interchange files for the current step, recorded; older ones pruned by policy."""
        if not self.main:
            return
        paths = self.recipe.export(self.plain, self.optimizers, self.step, self.epoch, self.paths.checkpoints) or []
        exports.record(self.paths.checkpoints, self.step, list(paths),
                       self.last_val_loss if validated_now else None)
        exports.prune(self.paths.checkpoints, self.step, self.config.export_every_save,
                      self.scoring.protected_steps() if self.scoring is not None else set())

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
        log.info(f"step {self.step}/{self.total} epoch {rec['epoch']:.2f} {shown} lr {rec['lr']:.3g} "
              f"{rec['samples_per_s']:.1f} samples/s")
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
            with torch.random.fork_rng(devices=devices), eager_validation(self.config.compile):
                torch.manual_seed(self.config.seed)
                ctx = CoreStepContext(self)
                ctx.global_step, ctx.epoch = self.step, self.epoch
                result = self.recipe.validate(self.plain, self.val_loader, ctx, self.step)
            random.setstate(py)
            np.random.set_state(npst)
            self._restore_modes()
            self._report_validation(result)
            if self.scoring is not None:
                self.scoring.after_validation(bool(result is not None and result.samples))
        D.barrier()
        return result

    def _report_validation(self, result: ValidationResult) -> None:
        metrics = {f"val_{k}": float(v) for k, v in result.metrics.items()}
        main_key = getattr(self.recipe, "main_metric", "loss")
        if result.metrics:
            self.last_val_loss = float(result.metrics.get(main_key, next(iter(result.metrics.values()))))
            self._validated_at = self.step
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
        log.info("validation " + " ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
        if result.samples:
            self._describe_samples(result.samples)

    def _describe_samples(self, samples: list) -> None:
        """``samples/step_X/samples.json`` and a train.log line: what rendered each clip, at what rate."""
        info = {s.name: {"rendered_by": s.rendered_by, "sample_rate": s.sample_rate, "text": s.text,
                         **({"comparison": True} if s.comparison else {})} for s in samples}
        atomic_write_json(self.paths.sample_info(self.step), info)
        by = sorted({f"{s.rendered_by or self.recipe.name} at {s.sample_rate} Hz" for s in samples})
        log.info(f"validation samples (step {self.step}): {len(samples)} rendered by {'; '.join(by)}")

    def _restore_modes(self) -> None:
        for m in self.plain.values():
            m.train(any(p.requires_grad for p in m.parameters()))
