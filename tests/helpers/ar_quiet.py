"""The autoregressive recipe without dropout: runs that split the same global batch differently
(processes, accumulation) then compute the same updates, so they can be compared exactly."""

from __future__ import annotations

from torch import nn

from modules.autoregressive.recipe import AutoregressiveRecipe


class QuietAutoregressiveRecipe(AutoregressiveRecipe):
    def build_models(self) -> dict[str, nn.Module]:
        models = super().build_models()
        for module in models["gpt"].modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.0
            if hasattr(module, "attn_dropout"):
                module.attn_dropout = 0.0
        return models
