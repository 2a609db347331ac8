"""Will the configured batch fit? Found before a run, not hours into it.

On a GPU this is a dry run: a few real training steps of the config (the trainer core and the
model's recipe, at the configured batch and precision) in a throw-away run folder, reporting peak
memory and step time; a search for the largest batch doubles the batch until a step runs out of
memory, then bisects. On the CPU the same steps run once at batch 1 while the tensors autograd
keeps for the backward pass are counted; the peak is estimated as weights + gradients + Adam's two
moments + batch x activations, and said to be an estimate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import shutil
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch

from modules.errors import UserError

OOM_TEST_ENV = "VOICETUNE_TEST_OOM_ABOVE_BATCH"  # tests: a step at a larger batch raises out-of-memory
MAX_SEARCH_BATCH = 1024


@dataclass
class Probe:
    """One dry run at one batch."""

    batch: int
    fits: bool
    peak_memory_bytes: int | None = None
    step_seconds: float | None = None
    weight_bytes: int = 0
    state_bytes: int = 0  # gradients and optimizer moments of the trainable weights
    activation_bytes: int = 0  # what autograd kept for the backward pass, per micro-batch


@dataclass
class FitResult:
    device: str
    estimated: bool
    batch: int
    peak_memory_bytes: int | None
    step_seconds: float | None
    largest_batch: int | None = None
    fits: bool = True
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _probe_config(config: Any, batch: int, steps: int, device: str) -> Any:
    from modules.config.schema import config_from_dict, config_to_dict

    data = config_to_dict(config)
    data.update(batch_size=batch, grad_accumulation=1, max_steps=steps, epochs=10_000, save_every_steps=None,
                save_every_epochs=None, validate_every_steps=None, validate_every_epochs=None,
                log_every_steps=steps, num_workers=0, gpus=1 if device == "cuda" else 0,
                compile="none",  # eager: compiling per probed batch would cost minutes and skew the memory figures
                run_name=f"_fit-check-{os.getpid()}-{batch}-{time.time_ns()}")
    data["evaluation"] = dict(data.get("evaluation") or {}, enabled=False)
    return config_from_dict(data)


def probe(config: Any, workspace: Any, batch: int, *, steps: int = 3, device: str | None = None,
          count_activations: bool = False) -> Probe:
    """A few real training steps at ``batch``; out of memory is a result (``fits=False``), not an error."""
    from modules import model_registry
    from modules.trainer.core import Trainer
    from modules.trainer.failures import EXIT_OOM

    device = device or ("cuda" if torch.cuda.is_available() and config.gpus else "cpu")
    cfg = _probe_config(config, batch, steps, device)
    times: list[float] = []
    counts = {"activations": 0, "weights": 0, "state": 0}
    oom_above = int(os.environ.get(OOM_TEST_ENV, "0") or 0)

    class Timed(model_registry.get(config.model).recipe_class()):
        """The model's recipe, timing each step (and counting what autograd saves when asked)."""

        def train_step(self, batch_data, models, ctx):
            if oom_above and batch > oom_above:
                raise torch.OutOfMemoryError(f"CUDA out of memory (test: batch {batch} > {oom_above})")
            if not counts["weights"]:
                params = {id(p): p for m in models.values() for p in m.parameters()}.values()
                counts["weights"] = sum(p.numel() * p.element_size() for p in params)
                counts["state"] = sum(3 * p.numel() * p.element_size() for p in params if p.requires_grad)
            seen: dict[tuple, int] = {}

            def pack(t: torch.Tensor):
                if count_activations:
                    key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
                    seen[key] = t.untyped_storage().nbytes()
                return t

            start = time.perf_counter()
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                out = super().train_step(batch_data, models, ctx)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            times.append(time.perf_counter() - start)
            counts["activations"] = max(counts["activations"], sum(seen.values()))
            return out

    class Dry(Trainer):
        def save(self):  # a dry run keeps nothing
            return None

    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    from modules.trainer.runfolder import run_dir_for

    dataset_dir = workspace.inside(cfg.dataset)
    run_dir = run_dir_for(dataset_dir, None, cfg.run_name)
    runs_existed = run_dir.parent.is_dir()
    console = io.StringIO()  # the dry run's own log lines: shown only when it fails
    try:
        with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
            code = Dry(cfg, workspace, None, recipe_cls=Timed, gpus=cfg.gpus).run()
    except torch.OutOfMemoryError:
        code = EXIT_OOM
    except UserError as exc:
        raise UserError(f"the dry run could not start: {exc}") from exc
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        if not runs_existed:
            with contextlib.suppress(OSError):
                run_dir.parent.rmdir()  # only when empty: the dry run leaves nothing behind
    peak = int(torch.cuda.max_memory_allocated()) if device == "cuda" else None
    if code == EXIT_OOM:
        return Probe(batch, False, peak)
    if code != 0 or not times:
        tail = "\n".join(console.getvalue().strip().splitlines()[-5:])
        raise UserError(f"the dry run at batch {batch} did not complete (exit {code}): {tail}")
    timed = times[1:] or times
    return Probe(batch, True, peak, statistics.median(timed), counts["weights"], counts["state"],
                 counts["activations"])


def _largest(config: Any, workspace: Any, start: Probe, limit: int, device: str) -> int | None:
    """Double from ``start`` until a step does not fit (or ``limit``), then bisect."""
    good = start.batch if start.fits else None
    bad = None if start.fits else start.batch
    while bad is None and good is not None and good * 2 <= limit:
        p = probe(config, workspace, good * 2, device=device)
        if p.fits:
            good = p.batch
        else:
            bad = p.batch
    while good is None and bad is not None and bad > 1:
        p = probe(config, workspace, max(1, bad // 2), device=device)
        if p.fits:
            good = p.batch
        else:
            bad = p.batch
    if good is None:
        return None
    while bad is not None and bad - good > max(1, good // 8):
        mid = (good + bad) // 2
        if probe(config, workspace, mid, device=device).fits:
            good = mid
        else:
            bad = mid
    return good


def dataset_limit(config: Any, workspace: Any) -> int:
    """The largest batch the dataset itself allows (one optimizer step per epoch)."""
    from modules.config.plan import count_list

    return max(1, min(MAX_SEARCH_BATCH, count_list(workspace.inside(config.dataset) / "train.txt")))


def _available_ram() -> int | None:
    try:
        for line in open("/proc/meminfo", encoding="ascii"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def fit_check(config: Any, workspace: Any, *, search: bool = False, device: str | None = None,
              dry_run: bool | None = None) -> FitResult:
    """The dry run (GPU) or the estimate (CPU) of ``config`` at its batch; ``search`` adds the largest
    batch that fits. ``dry_run=True`` runs the GPU procedure on the CPU too (real steps, no memory
    figures), which is how the tests drive the out-of-memory search. See the module docstring."""
    device = device or ("cuda" if torch.cuda.is_available() and config.gpus else "cpu")
    batch = int(config.batch_size)
    if dry_run if dry_run is not None else device == "cuda":
        first = probe(config, workspace, batch, device=device)
        largest = _largest(config, workspace, first, dataset_limit(config, workspace), device) if (
            search or not first.fits) else None
        if first.fits:
            memory = (f"peak {first.peak_memory_bytes / 2**30:.1f} GiB of "
                      f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB, "
                      if first.peak_memory_bytes is not None else "")
            msg = f"batch {batch} fits: {memory}{first.step_seconds:.3f} s per step"
        else:
            msg = (f"batch {batch} does not fit on this GPU (out of memory); "
                   + (f"batch {largest} does: set batch_size to {largest} and raise grad_accumulation to keep "
                      "the global batch" if largest else "not even batch 1 fits: lower segment_size or use bf16"))
        return FitResult(device, False, batch, first.peak_memory_bytes, first.step_seconds,
                         largest if (search or not first.fits) else None, first.fits, msg)
    one = probe(config, workspace, 1, steps=1, device="cpu", count_activations=True)
    fixed = one.weight_bytes + one.state_bytes
    peak = fixed + batch * one.activation_bytes
    ram = _available_ram()
    largest = None
    if search and ram and one.activation_bytes:
        largest = max(0, int((ram - fixed) // one.activation_bytes)) or None
    fits = ram is None or peak < ram
    msg = (f"estimated peak {peak / 2**30:.2f} GiB at batch {batch} (weights, gradients and Adam state "
           f"{fixed / 2**30:.2f} GiB + {one.activation_bytes / 2**20:.0f} MiB of activations per clip, counted "
           "at batch 1 on the CPU; an estimate, not a measurement)")
    return FitResult("cpu", True, batch, int(peak), None, largest, fits, msg)
