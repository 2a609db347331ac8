"""The section values an autoregressive base checkpoint fixes, read from its shapes (the Configure
tab shows them read-only when a base is chosen: a config that disagrees cannot load the base)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

TYPES = 1  # tortoise's text embedding has number_text_tokens * types + 1 rows


def base_values(base_path: Path, workspace_root: Path) -> dict[str, Any]:
    """Sizes and token counts of the base (``autoregressive.pth``, a ``_gpt.pth``, a state or a run).

    The conditioning input count is taken as tortoise's 1 when the shapes alone cannot tell it
    apart from the mel length; heads are not fixed by any shape and stay editable."""
    from modules.autoregressive.recipe import read_base_state, resolve_base
    from modules.fileutil import read_json_dict

    path = resolve_base(Path(base_path), Path(workspace_root))
    side = read_json_dict(path.with_suffix(".json")) or {}
    given = side.get("hyperparameters") or {}
    sd = read_base_state(path)
    layers = {int(m.group(1)) for k in sd if (m := re.match(r"gpt\.h\.(\d+)\.", k))}
    text_rows, dim = sd["text_embedding.weight"].shape
    mel_rows = int(sd["mel_embedding.weight"].shape[0])
    conditioning = int(given.get("max_conditioning_inputs", 1))
    out = {"layers": len(layers), "model_dim": int(dim), "number_text_tokens": (int(text_rows) - 1) // TYPES,
           "number_mel_codes": mel_rows,
           "max_text_tokens": int(sd["text_pos_embedding.emb.weight"].shape[0]) - 2,
           "max_mel_tokens": int(sd["mel_pos_embedding.emb.weight"].shape[0]) - 2 - conditioning,
           "max_conditioning_inputs": conditioning}
    for key in ("start_text_token", "start_mel_token", "stop_mel_token", "mel_length_compression", "heads"):
        if key in given:
            out[key] = given[key]
    return out
