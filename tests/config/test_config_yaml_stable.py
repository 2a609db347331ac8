"""Saved YAML stays byte-identical: files written by the code before the model-package refactor."""

from __future__ import annotations

from pathlib import Path

import pytest

from modules.config import presets
from modules.config.schema import default_config, load_config, save_config

EXPECTED = Path(__file__).resolve().parents[1] / "data" / "expected_yaml"
CASES = sorted(p.stem for p in EXPECTED.glob("*.yaml"))


def test_every_model_and_preset_has_an_expected_file():
    want = {f"{m}_{p or 'default'}" for m in presets.models() for p in [None, *presets.preset_names(m)]}
    assert want <= set(CASES), sorted(want - set(CASES))


@pytest.mark.parametrize("case", CASES)
def test_saved_yaml_is_byte_identical(case, tmp_path):
    model, preset = case.split("_", 1)
    cfg = default_config(model, "training/demo", preset=None if preset == "default" else preset)
    out = save_config(cfg, tmp_path / "x.yaml")
    assert out.read_bytes() == (EXPECTED / f"{case}.yaml").read_bytes()


@pytest.mark.parametrize("case", CASES)
def test_existing_files_load_and_save_unchanged(case, tmp_path):
    cfg = load_config(EXPECTED / f"{case}.yaml")
    assert save_config(cfg, tmp_path / "y.yaml").read_bytes() == (EXPECTED / f"{case}.yaml").read_bytes()
