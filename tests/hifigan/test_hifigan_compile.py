"""The ``compile`` key on the CPU: torch.compile'd HiFi-GAN steps give eager's losses, and resume works with it on.

``graphs`` (CUDA graphs) cannot run without a GPU; on the CPU it runs as ``default`` and the run log says
so. The GPU comparison (first 20 steps of eager against graphs in bf16) is in scripts/gpu_checks.sh.
"""

from __future__ import annotations

import numpy as np
import torch
from torch._dynamo.testing import CompileCounter

from modules.config.plan import validate_config
from modules.config.schema import config_from_dict
from modules.trainer.compiling import eager_validation, effective_mode, traceable_weight_norm
from tests.helpers.hifigan_helpers import (  # noqa: F401 (pytest fixtures)
    demo_src,
    read_metrics,
    run_dir,
    state_models,
    tiny_config,
    train,
    ws,
)

LOSSES = ("loss", "loss_disc", "mel_l1", "loss_fm", "loss_adv")


def _losses(run) -> np.ndarray:
    recs = [r for r in read_metrics(run) if not r.get("validation")]
    assert [r["step"] for r in recs] == [1, 2, 3, 4], recs
    return np.array([[r[k] for k in LOSSES] for r in recs])


def test_compiled_steps_match_eager_and_resume_with_compile_on(ws):
    val = {"validate_every_steps": 4}
    assert train(ws, tiny_config(max_steps=4, save_every_steps=2, **val), name="eager") == 0
    # compiled: two steps, a state, then a resumed run (compiling again) for two more
    assert train(ws, tiny_config(max_steps=2, save_every_steps=2, compile="graphs", **val), name="compiled") == 0
    assert train(ws, tiny_config(max_steps=4, save_every_steps=2, compile="graphs", **val), name="compiled",
                 resume="latest") == 0

    eager, compiled = _losses(run_dir(ws, "eager")), _losses(run_dir(ws, "compiled"))
    np.testing.assert_allclose(compiled, eager, rtol=1e-4, atol=1e-5)  # measured: 1.2e-7 relative
    # validation runs the compiled modules eagerly (no graph per clip length) and scores the same
    val_e, val_c = ([r for r in read_metrics(run_dir(ws, n)) if r.get("validation")] for n in ("eager", "compiled"))
    assert val_e[-1]["step"] == val_c[-1]["step"] == 4  # (the compiled run also validated as its first half ended)
    assert np.isclose(val_c[-1]["val_mel_l1"], val_e[-1]["val_mel_l1"], rtol=1e-4)
    log = (run_dir(ws, "compiled") / "train.log").read_text()
    assert log.count("torch.compile of generator, mpd, msd") == 2, log  # the fresh run and the resumed one
    assert "no CUDA graphs without a GPU" in log

    # the states hold the modules' own keys (no _orig_mod. prefix) and nearly the same weights
    a = state_models(run_dir(ws, "eager") / "states" / "step_00000004.pt")
    b = state_models(run_dir(ws, "compiled") / "states" / "step_00000004.pt")
    for model in ("generator", "mpd", "msd"):
        assert set(a[model]) == set(b[model]), model
        for key, value in a[model].items():
            if value.is_floating_point():
                assert torch.allclose(value, b[model][key], rtol=1e-3, atol=1e-4), (model, key)


def test_plan_warns_about_graphs_on_the_cpu(ws):
    cfg = config_from_dict(tiny_config(compile="graphs"))
    warnings = validate_config(cfg, ws, gpus_available=0)
    assert any(w.key == "compile" and "CUDA graphs need a GPU" in w.message for w in warnings), warnings
    eager = validate_config(config_from_dict(tiny_config()), ws, gpus_available=0)
    assert not any(w.key == "compile" for w in eager)
    accumulating = config_from_dict(tiny_config(compile="graphs", gpus=1, grad_accumulation=2))
    warnings = validate_config(accumulating, ws, gpus_available=1)
    assert any(w.key == "compile" and "cannot accumulate" in w.message for w in warnings), warnings


def test_graphs_need_cuda_and_one_micro_step_and_validation_runs_eagerly():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert effective_mode("graphs", cuda) == "graphs"
    assert effective_mode("graphs", cpu) == effective_mode("graphs", cuda, accumulation=2) == "default"
    counter = CompileCounter()

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.utils.weight_norm(torch.nn.Conv1d(2, 2, 3))

        def forward(self, x):
            return torch.tanh(self.conv(x))

    net = Net()
    reference = net.conv.weight_v.detach().clone()
    x = torch.randn(1, 2, 16)
    eager_out = net(x)
    assert traceable_weight_norm(net) == 1  # same parameters, same output
    assert torch.allclose(net(x), eager_out, atol=1e-6) and torch.equal(net.conv.weight_v, reference)
    net.compile(backend=counter)
    net(x)
    assert counter.frame_count == 1
    with eager_validation("default"):
        net(torch.randn(1, 2, 40))  # another length: no new graph
        net(torch.randn(1, 2, 64))
    assert counter.frame_count == 1
    net(torch.randn(1, 2, 40))
    assert counter.frame_count == 2  # outside validation the new length compiles

