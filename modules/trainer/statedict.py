"""Why a checkpoint's weights would not load into a model, said before a run starts."""

from __future__ import annotations

from typing import Any, Mapping


def state_dict_problems(own: Mapping[str, Any], theirs: Mapping[str, Any], file_name: str, what: str,
                        extra_hint: str = "", shape_hint: str = "") -> list[str]:
    """Missing weights, extra weights and shape mismatches of ``theirs`` (a file's state dict)
    against ``own`` (the configured model's, e.g. built on the meta device), one line each."""
    problems = []
    missing = [k for k in own if k not in theirs]
    extra = [k for k in theirs if k not in own]
    if missing:
        problems.append(f"{file_name} lacks {len(missing)} weights of the configured {what} (first: {missing[0]})")
    if extra:
        problems.append(f"{file_name} has {len(extra)} weights the configured {what} lacks (first: {extra[0]})"
                        + (f"; {extra_hint}" if extra_hint else ""))
    shapes = [k for k in own if k in theirs and tuple(theirs[k].shape) != tuple(own[k].shape)]
    if shapes:
        k = shapes[0]
        problems.append(f"{len(shapes)} weights differ in shape, e.g. {k} is {tuple(theirs[k].shape)} in {file_name} "
                        f"but {tuple(own[k].shape)} in this config" + (f" ({shape_hint})" if shape_hint else ""))
    return problems
