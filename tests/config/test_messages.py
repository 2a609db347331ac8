"""Messages that say what is true and what to do (each once pointed the wrong way)."""

from __future__ import annotations

import pytest

from modules.config.plan import validate_config
from modules.config.schema import apply_overrides, default_config
from modules.errors import UserError
from modules.trainer.state import resolve_resume


def test_resume_with_a_config_file_says_so(tmp_path):
    cfg = tmp_path / "x.yaml"
    cfg.write_text("model: hifigan\n")
    with pytest.raises(UserError, match="a config file; --resume takes `latest`") as err:
        resolve_resume(tmp_path / "states", str(cfg))
    assert "truncated" not in str(err.value) and "--fresh" not in str(err.value)


def test_a_base_that_is_not_a_checkpoint_says_so(workspace):
    ds = workspace / "training" / "demo"
    ds.mkdir(parents=True)
    (ds / "train.txt").write_text("")
    (workspace / "notes.txt").write_text("my notes")
    cfg = apply_overrides(default_config("hifigan", "training/demo"), ["base=notes.txt"])
    found = [w for w in validate_config(cfg, workspace, 0) if w.key == "base"]
    assert len(found) == 1 and "is not a checkpoint this model can read" in found[0].message
    assert "matches the preset" not in found[0].fix and found[0].level == "error"
