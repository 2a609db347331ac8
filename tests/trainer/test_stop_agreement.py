"""The stop check of a multi-process run, in two real gloo processes: every rank stops at the same step.

Lagged (what the core uses on CUDA with lazy read-backs): the step after a rank asked, on every rank.
Not lagged (the CPU): the step a rank asked.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from modules.trainer.distributed import StopAgreement


def _rank(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    cpu = torch.device("cpu")
    lagged = StopAgreement(cpu, lagged=True)
    seen = [lagged.poll(rank == 1 and step >= 3) for step in range(6)]  # rank 1 asks from step 3 on
    lagged.close()
    eager = StopAgreement(cpu, lagged=False)
    now = [eager.poll(rank == 0 and step == 2) for step in range(4)]  # rank 0 asks at step 2 only
    Path(out, f"rank{rank}.json").write_text(json.dumps({"lagged": seen, "eager": now}))
    dist.barrier()
    dist.destroy_process_group()


def test_every_rank_stops_at_the_same_step(tmp_path, free_tcp_port):
    mp.spawn(_rank, args=(free_tcp_port, str(tmp_path)), nprocs=2, join=True)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert results[0] == results[1]
    assert results[0]["lagged"] == [False, False, False, False, True, True]
    assert results[0]["eager"] == [False, False, True, False]


def test_one_process_answers_its_own_flag():
    agreement = StopAgreement(torch.device("cpu"), lagged=True)
    assert agreement.poll(False) is False and agreement.poll(True) is True
