"""Processes and data order: torchrun re-exec, process group, the epoch sampler.

``train --gpus N`` (N > 1) runs the same command under
``python -m torch.distributed.run --standalone --nproc_per_node N`` as a child
process and waits for it (see ``run_under_torchrun``); each worker
finds ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in its environment. Multi-node runs
call torchrun directly with a rendezvous endpoint (see the README). NCCL on
GPUs, gloo on the CPU.

``EpochBatchSampler`` is used for every world size (1 included), so the order
of clips depends only on (seed, epoch): a permutation like DistributedSampler's,
rank ``r`` taking every ``world``-th item, cut into micro-batches; a resumed run
skips the consumed micro-batches here, without loading them.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist

from modules.trainer.schedules import steps_per_epoch

TORCHRUN_ENV = "VOICETUNE_TORCHRUN"  # set in the re-executed command so it does not re-exec again
COMMAND_ENV = "VOICETUNE_COMMAND"  # the command the user typed (for command.txt)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_dist_info() -> DistInfo:
    """Rank and world size from torchrun's environment (1 process when absent)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or os.environ.get(TORCHRUN_ENV) == "1" or "LOCAL_RANK" in os.environ


def torchrun_command(nproc: int, module_args: list[str]) -> list[str]:
    """``python -m torch.distributed.run --standalone --nproc_per_node N -m modules ARGS``."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={int(nproc)}",
            "-m", "modules", *module_args]


def run_under_torchrun(nproc: int, module_args: list[str], status_path: Any = None) -> int:
    """Run the same command under torchrun as a child and wait for it; returns the exit code.

    This process stays the one the user (or the UI) started. SIGTERM/SIGINT reach
    torchrun through the process group; torchrun forwards them to its workers, which
    finish the step and save, then torchrun itself exits non-zero. So while
    waiting, signals are only noted here, and a run whose ``status.json`` says
    ``stopped`` afterwards exits 0 like a single-process run.
    """
    import json
    import signal
    import subprocess
    from pathlib import Path

    cmd = torchrun_command(nproc, module_args)
    env = dict(os.environ)
    env[TORCHRUN_ENV] = "1"
    env.setdefault(COMMAND_ENV, shlex.join([sys.executable, "-m", "modules", *module_args]))
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, nproc))))
    sys.stdout.flush()
    sys.stderr.flush()
    received: list[int] = []
    old = {sig: signal.signal(sig, lambda s, f: received.append(s)) for sig in (signal.SIGTERM, signal.SIGINT)}
    import time

    started = time.time()
    try:
        rc = subprocess.call(cmd, env=env)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if rc != 0 and status_path is not None:
        try:
            data = json.loads(Path(status_path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        if data.get("state") == "stopped" and float(data.get("updated", 0)) >= started:
            return 0
    return rc


def pick_device(info: DistInfo, gpus: int) -> torch.device:
    """``cuda:LOCAL_RANK`` when CUDA is present and ``gpus`` > 0, else the CPU."""
    if gpus > 0 and torch.cuda.is_available():
        torch.cuda.set_device(info.local_rank)
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def init_process_group(info: DistInfo, device: torch.device) -> None:
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"backend": backend}
        if device.type == "cuda":
            kwargs["device_id"] = device
        dist.init_process_group(**kwargs)


def destroy_process_group(clean: bool = False) -> None:
    """Leave the process group. After a clean finish every rank first meets the others (bounded wait):
    a rank tearing gloo down while its peer still holds the connection can abort with SIGABRT."""
    if dist.is_available() and dist.is_initialized():
        if clean:
            try:
                if dist.get_backend() == "gloo":
                    import datetime

                    dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
                else:
                    dist.barrier()
            except Exception:  # noqa: BLE001 - a peer that already failed: tear down anyway
                pass
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum floats over ranks (identity in one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def first_over_ranks(step: int | None, device: torch.device) -> int | None:
    """The smallest ``step`` any rank reports (None where a rank has none; None when no rank has one)."""
    if not (dist.is_available() and dist.is_initialized()):
        return step
    none = float(2 ** 52)
    t = torch.tensor([none if step is None else float(step)], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    first = t.item()
    return None if first >= none else int(first)


class StopAgreement:
    """Whether any rank asked to stop, asked once per optimizer step.

    ``lagged``: the flags are summed by an all-reduce that runs behind the step, and each
    step reads the previous step's sum. Every rank reads the same sums, so all stop at the
    same step, one step after the request. No step waits for the GPU to finish itself, only
    for the step before it, so the host keeps one step queued ahead. Without ``lagged`` (or in
    one process) it is ``any_rank``."""

    def __init__(self, device: torch.device, lagged: bool):
        self.device = device
        self.lagged = lagged
        self._pending: tuple[Any, torch.Tensor] | None = None

    def poll(self, flag: bool) -> bool:
        if not self.lagged or not (dist.is_available() and dist.is_initialized()):
            return any_rank(flag, self.device)
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        previous, self._pending = self._pending, (dist.all_reduce(t, async_op=True), t)
        if previous is None:
            return False
        previous[0].wait()
        return bool(previous[1].item() > 0)

    def close(self) -> None:
        """Wait for the last sum (every rank has one outstanding at the end of the loop)."""
        if self._pending is not None:
            self._pending[0].wait()
            self._pending = None


def any_rank(flag: bool, device: torch.device) -> bool:
    """True if ``flag`` is set on any rank (so every rank stops at the same step)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (a list of one in one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


class EpochBatchSampler:
    """Micro-batches of indices for one rank; order depends only on (seed, epoch).

    The permutation is ``torch.randperm(n)`` from a generator seeded with
    ``seed + epoch`` (as DistributedSampler), padded by repetition to a multiple
    of the world size; rank ``r`` takes items ``r, r + world, ...``. Only whole
    accumulation windows are yielded (``steps_per_epoch * accumulation`` micro-
    batches), and ``skip_steps`` optimizer steps' worth are skipped on resume.
    """

    def __init__(self, num_items: int, batch_size: int, accumulation: int, info: DistInfo, seed: int,
                 shuffle: bool = True):
        self.num_items = int(num_items)
        self.batch_size = int(batch_size)
        self.accumulation = int(accumulation)
        self.info = info
        self.seed = int(seed)
        self.shuffle = shuffle
        self.epoch = 0
        self.skip_steps = 0
        self.steps = steps_per_epoch(self.num_items, self.batch_size, self.accumulation, info.world_size)

    def set_epoch(self, epoch: int, skip_steps: int = 0) -> None:
        self.epoch = int(epoch)
        self.skip_steps = max(0, min(int(skip_steps), self.steps))

    def rank_indices(self) -> list[int]:
        n, world = self.num_items, self.info.world_size
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=g).tolist()
        else:
            order = list(range(n))
        total = -(-n // world) * world
        if total > n and n:
            order = (order * (-(-total // n)))[:total]
        return order[self.info.rank:total:world]

    def __iter__(self) -> Iterator[list[int]]:
        idx = self.rank_indices()
        first = self.skip_steps * self.accumulation
        last = self.steps * self.accumulation
        for b in range(first, last):
            yield idx[b * self.batch_size:(b + 1) * self.batch_size]

    def __len__(self) -> int:
        return (self.steps - self.skip_steps) * self.accumulation
