"""The typed training configuration (one YAML file per run) and its I/O.

Why typed: the UI, the CLI and the trainer all go through ``config_from_dict``,
so a config that loads is a config that trains; an unknown key or an
out-of-range value is refused with a message naming the key, never silently
ignored. Values missing from a YAML take the model's defaults
(``modules.config.presets``), and ``save_config`` always writes every key so a
saved file documents the run completely.

Key facts for other modules:

- ``config_hash(config)`` covers every key except ``RESUME_SAFE_KEYS`` (the
  keys that only say when to stop, log, save or validate); the trainer refuses
  to resume a state whose hash differs unless forced, naming the keys from
  ``changed_keys``.
- ``apply_overrides(config, ["hifigan.segment_size=4096", ...])`` is the
  ``--set`` of the CLI: dotted keys, values parsed as YAML.
- Paths (``dataset``, ``base``, tokenizer/dvae/mel_norms, vocoder) are stored as
  typed, relative to the workspace root; resolve them with ``Workspace.inside``.
- The model's section is ``config.options`` (typed: its spec's options dataclass); for
  convenience ``config.<model name>`` gives it too (None for another model's name). What each
  model's section holds lives in its package (``modules/<model>/options.py``).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from modules import model_registry as registry
from modules.config import presets
from modules.config.fields import ConfigError, option
from modules.evaluation.options import EvaluationOptions

SCHEDULE_TYPES = ("exponential", "multistep", "cosine", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
COMPILE_MODES = ("none", "default", "graphs")  # what each does: modules.trainer.compiling
_f = option  # the field declarations below are the generic (model-independent) keys


@dataclass
class LRSchedule:
    """Learning-rate factor over training (see ``modules.trainer.schedules.lr_factor``)."""

    type: str = _f("exponential", choices=SCHEDULE_TYPES,
                   help="exponential: gamma per epoch; multistep: x factor at each milestone epoch; "
                        "cosine: annealing with restarts every cycle_epochs; constant")
    gamma: float = _f(0.999, lo=0.0, hi=1.0, lo_open=True, help="exponential: factor applied after every epoch")
    milestones: list[int] = _f([], help="multistep: epochs after which the rate is multiplied by factor")
    factor: float = _f(0.5, lo=0.0, hi=1.0, lo_open=True, help="multistep: multiplier at each milestone")
    warmup_steps: int = _f(0, lo=0, help="linear warm-up from 0 over this many optimizer steps")
    cycle_epochs: int = _f(0, lo=0, help="cosine: epochs per restart cycle (0 = one cycle over the whole run)")
    min_lr_ratio: float = _f(0.0, lo=0.0, hi=1.0, help="cosine: lowest rate as a fraction of learning_rate")


@dataclass
class TrainConfig:
    """One training run. ``model`` picks the recipe and which option section is set."""

    model: str = _f("", help="which model this run trains (a name in modules.model_registry)")
    dataset: str = _f("", help="prepared dataset folder relative to the workspace, e.g. training/demo")
    run_name: Optional[str] = _f(None, help="run folder name under DATASET/runs/ (null: the config file's stem)")
    base: Optional[str] = _f(None, help="checkpoint to fine-tune from (models/... or an earlier run's file)")
    epochs: int = _f(100, lo=1)
    max_steps: Optional[int] = _f(None, lo=1, help="stop after this many optimizer steps (null: epochs decide)")
    batch_size: int = _f(16, lo=1, help="clips per micro-batch per GPU")
    grad_accumulation: int = _f(1, lo=1, help="micro-batches per optimizer step")
    learning_rate: float = _f(2e-4, lo=0.0, hi=1.0, lo_open=True)
    lr_schedule: LRSchedule = field(default_factory=LRSchedule, metadata={"help": "learning-rate schedule"})
    precision: str = _f("auto", choices=PRECISIONS,
                        help="auto: bf16 on GPUs that have it, fp16 on older CUDA GPUs, fp32 on the CPU; "
                             "bf16/fp16 use autocast; fp16 adds gradient scaling")
    compile: str = _f("none", choices=COMPILE_MODES,
                      help="none: eager; default: torch.compile of the model's networks; graphs: also CUDA "
                           "graphs (GPU only, runs as default on the CPU). The first steps include compiling")
    gpus: int = _f(1, lo=0, help="processes/GPUs (DDP); 0 forces the CPU")
    num_workers: int = _f(2, lo=0, help="data loader worker processes")
    seed: int = _f(1234, lo=0)
    save_every_steps: Optional[int] = _f(1000, lo=1, help="save a state every N steps (null: off)")
    save_every_epochs: Optional[int] = _f(None, lo=1, help="save a state every N epochs (null: off)")
    validate_every_steps: Optional[int] = _f(1000, lo=1, help="validate every N steps (null: off)")
    validate_every_epochs: Optional[int] = _f(None, lo=1, help="validate every N epochs (null: off)")
    log_every_steps: int = _f(10, lo=1)
    keep_states: int = _f(3, lo=1, help="newest training states kept in states/")
    grad_clip: Optional[float] = _f(None, lo=0.0, lo_open=True, help="max gradient norm (null: no clipping)")
    validation_samples: int = _f(4, lo=0, help="validation clips saved as audio at each validation")
    export_every_save: bool = _f(False, help="keep the interchange files (g_/do_, _gpt.pth) of every save; "
                                             "false: only of the newest state and the best validation")
    # top-level for every model as configs have always had them; only the autoregressive model reads them
    text_lr_weight: float = _f(0.01, lo=0.0, help="autoregressive: weight of the text cross-entropy")
    mel_lr_weight: float = _f(1.0, lo=0.0, help="autoregressive: weight of the mel cross-entropy")
    evaluation: EvaluationOptions = field(default_factory=EvaluationOptions,
                                          metadata={"help": "scoring of validation audio (modules.evaluation)"})
    # the model's own YAML section (its spec's options dataclass), written under the model's name
    section: Any = field(default=None, repr=False, compare=True, metadata={"section": True})

    @property
    def options(self) -> Any:
        """The model's own section, typed (``config.options.segment_size``)."""
        return self.section

    def __getattr__(self, name: str) -> Any:
        """``config.<model name>``: the section when it is this config's model, None for other models."""
        model = self.__dict__.get("model")
        if model is not None and name in registry.SPECS:
            return self.__dict__.get("section") if name == model else None
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def global_batch(self) -> int:
        """Clips per optimizer step on one process; multiply by the process count for the global batch."""
        return self.batch_size * self.grad_accumulation


# Keys that only say when to stop, log, save or validate: changing them keeps a state resumable.
# Each model's spec adds the section keys of its own (``ModelSpec.resume_safe``).
RESUME_SAFE_KEYS: frozenset[str] = frozenset({
    "run_name", "epochs", "max_steps", "num_workers", "compile",
    "save_every_steps", "save_every_epochs", "validate_every_steps", "validate_every_epochs",
    "log_every_steps", "keep_states", "validation_samples", "export_every_save",
})


def resume_safe(key: str) -> bool:
    """True when changing dotted ``key`` keeps a state resumable (scoring keys never change training)."""
    if key in RESUME_SAFE_KEYS or key == "evaluation" or key.startswith("evaluation."):
        return True
    section, _, rest = key.partition(".")
    return bool(rest) and section in registry.SPECS and rest in registry.get(section).resume_safe


# ---------------------------------------------------------------------------------------------
# dict -> typed config
# ---------------------------------------------------------------------------------------------

def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check/convert one YAML value to the annotated type, naming ``key`` on failure."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, args[0], key)
    if value is None:
        raise ConfigError(f"{key}: a value is required (got null)")
    if origin is list:
        (inner,) = typing.get_args(tp)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_convert(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or (isinstance(value, float) and not value.is_integer())):
            raise ConfigError(f"{key}: expected a whole number, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, str):
            try:  # YAML reads 1e-5 (no dot) as a string
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return value
    if tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. ``resblock: 1``
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected text, got {value!r}")
        return value
    raise TypeError(f"unsupported schema type {tp!r} for {key}")


def _check_range(value: Any, meta: dict, key: str) -> None:
    if value is None:
        return
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}")
    lo, hi = meta.get("lo"), meta.get("hi")
    items = value if isinstance(value, list) else [value]
    for v in items:
        if not isinstance(v, (int, float)):
            continue
        if lo is not None and (v < lo or (meta.get("lo_open") and v == lo)):
            op = ">" if meta.get("lo_open") else ">="
            raise ConfigError(f"{key}: {v!r} is out of range; it must be {op} {lo}")
        if hi is not None and v > hi:
            raise ConfigError(f"{key}: {v!r} is out of range; it must be <= {hi}")


def _unknown_key_error(key: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], known, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return ConfigError(f"{key}: unknown key{hint}; remove it or fix its spelling")


def _build(cls: type, data: Any, prefix: str) -> Any:
    """Build dataclass ``cls`` from ``data`` (a dict), refusing unknown keys and bad values."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for k in data:
        if k not in names:
            raise _unknown_key_error(f"{prefix}{k}", names)
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        tp = hints[f.name]
        if f.name not in data:
            continue
        value = data[f.name]
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = _build(tp, value, key + ".")
            continue
        if f.metadata.get("section"):
            continue  # the model's section is built by config_from_dict
        value = _convert(value, tp, key)
        _check_range(value, f.metadata, key)
        kwargs[f.name] = value
    return cls(**kwargs)


def _merge(base: dict, over: dict) -> dict:
    """Deep-merge ``over`` into a copy of ``base`` (dicts merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def config_from_dict(data: dict[str, Any], source: str | os.PathLike | None = None) -> TrainConfig:
    """Validate ``data`` (a parsed YAML mapping) into a ``TrainConfig``.

    Missing keys take the model's defaults; unknown keys, wrong types and
    out-of-range values raise ``ConfigError`` naming the key (and ``source``).
    """
    try:
        return _config_from_dict(data)
    except ConfigError as exc:
        if source is not None:
            raise ConfigError(f"{source}: {exc}") from None
        raise


def _config_from_dict(data: dict[str, Any]) -> TrainConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping of config keys, got {type(data).__name__}")
    model = data.get("model")
    if model not in registry.SPECS:
        raise ConfigError(f"model: {model!r} is not one of {', '.join(registry.SPECS)}; set model: to one of them")
    spec = registry.get(model)
    for other in registry.SPECS:
        if other != model and data.get(other) is not None:
            raise ConfigError(f"{other}: this section is for model {other}, but model is {model}; remove it")
    merged = _merge(presets.model_defaults(model), data)
    section = merged.get(model) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{model}: expected a mapping of keys, got {section!r}")
    if spec.prepare_section is not None:
        section = spec.prepare_section(section, data.get(model) or {})
    config = _build(TrainConfig, {k: v for k, v in merged.items() if k not in registry.SPECS}, "")
    config.section = _build(spec.options, section, f"{model}.")
    _check_consistency(config)
    if spec.validate is not None:
        spec.validate(config.section)
    return config


def _check_consistency(c: TrainConfig) -> None:
    """Cross-key rules that make a config untrainable (warnings live in ``modules.config.plan``)."""
    s = c.lr_schedule
    if any(m < 1 for m in s.milestones):
        raise ConfigError("lr_schedule.milestones: epochs must be >= 1")
    if s.milestones != sorted(s.milestones):
        raise ConfigError(f"lr_schedule.milestones: {s.milestones} must be in increasing order")
    if not c.dataset:
        raise ConfigError("dataset: required; set it to a prepared dataset folder such as training/NAME")


# ---------------------------------------------------------------------------------------------
# typed config -> dict / YAML / files
# ---------------------------------------------------------------------------------------------

def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain dict in file order, holding only the model's own section."""
    out = {f.name: copy.deepcopy(getattr(config, f.name)) for f in dataclasses.fields(config)
           if not f.metadata.get("section")}
    for name, value in list(out.items()):
        if dataclasses.is_dataclass(value):
            out[name] = dataclasses.asdict(value)
    out[config.model] = dataclasses.asdict(config.section)
    return out


def config_to_yaml(config: TrainConfig) -> str:
    """The YAML text ``save_config`` writes (also the UI's preview)."""
    header = "# Voicetune training config (python -m modules train THIS_FILE)\n"
    return header + yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=None, width=100)


def save_config(config: TrainConfig, path: str | os.PathLike) -> Path:
    """Validate (round trip) and write ``config`` atomically to ``path``."""
    from modules.fileutil import atomic_write_text

    config_from_dict(config_to_dict(config))
    return atomic_write_text(path, config_to_yaml(config))


def load_config(path: str | os.PathLike) -> TrainConfig:
    """Read and validate a YAML config; errors name the file and the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found; create one with `python -m modules config ...`") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty; it needs at least model: and dataset:")
    return config_from_dict(data, source=path)


def default_config(model: str, dataset: str, preset: str | None = None) -> TrainConfig:
    """A new config for ``model`` with its defaults (and ``preset`` laid over them)."""
    data: dict[str, Any] = {"model": model, "dataset": dataset}
    if preset:
        data = _merge(data, _preset(model, preset))
    return config_from_dict(data)


def _preset(model: str, name: str) -> dict[str, Any]:
    try:
        return presets.preset_values(model, name)
    except KeyError:
        names = ", ".join(presets.preset_names(model)) or "none"
        raise ConfigError(f"preset: {name!r} is not a {model} preset (choose from {names})") from None


def apply_preset(config: TrainConfig, name: str) -> TrainConfig:
    """Lay a named preset over ``config`` (a new config; the argument is not changed)."""
    return config_from_dict(_merge(config_to_dict(config), _preset(config.model, name)))


# ---------------------------------------------------------------------------------------------
# --set KEY=VALUE
# ---------------------------------------------------------------------------------------------

def known_keys(model: str) -> list[str]:
    """Every dotted key a config of ``model`` accepts (for ``--set`` help and suggestions)."""
    keys = []

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.metadata.get("section"):
                walk(registry.get(model).options, f"{model}.")
                continue
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], f"{prefix}{f.name}.")
            else:
                keys.append(f"{prefix}{f.name}")

    walk(TrainConfig, "")
    return keys


def field_help(key: str) -> str:
    """The help text of a dotted key ('' when none)."""
    cls: Any = TrainConfig
    parts = key.split(".")
    if parts[0] in registry.SPECS and len(parts) > 1:
        cls, parts = registry.get(parts[0]).options, parts[1:]
    for i, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            return ""
        f = fields[part]
        if i == len(parts) - 1:
            return f.metadata.get("help", "")
        cls = typing.get_type_hints(cls)[part]
    return ""


def parse_override(item: str) -> tuple[str, Any]:
    """``"a.b=value"`` -> (``"a.b"``, YAML-parsed value)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set epochs=10")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {item!r}: the key is empty")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML ({exc})") from None
    return key, value


def apply_overrides(config: TrainConfig, items: list[str]) -> TrainConfig:
    """Apply ``--set KEY=VALUE`` items in order and re-validate (a new config is returned).

    Setting ``hifigan.preset`` to v1/v2/v3 also sets that preset's generator sizes,
    so later items may still refine other keys.
    """
    data = config_to_dict(config)
    for item in items:
        key, value = parse_override(item)
        if key == "model" and value != data.get("model"):
            raise ConfigError("model: cannot be changed with --set; create a new config for the other model")
        valid = known_keys(data["model"])
        section = key.split(".", 1)[0]
        if section in registry.SPECS and section != data["model"]:
            raise ConfigError(f"{key}: this key is for model {section}, but this config's model is {data['model']}")
        if key not in valid and not any(k.startswith(key + ".") for k in valid):
            raise _unknown_key_error(key, [k.rsplit(".", 1)[-1] for k in valid])
        parts = key.split(".")
        node = data
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[parts[-1]] = value
        sizes = presets.section_preset(data["model"], value) if key == f"{data['model']}.preset" else None
        if sizes:  # naming a size preset (hifigan.preset: v2) also sets its sizes
            node.update(sizes)
    return config_from_dict(data)


# ---------------------------------------------------------------------------------------------
# resume compatibility
# ---------------------------------------------------------------------------------------------

def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _shaping(config: TrainConfig | dict[str, Any]) -> dict[str, Any]:
    data = config_to_dict(config) if isinstance(config, TrainConfig) else config
    return {k: v for k, v in _flatten(data).items() if not resume_safe(k)}


def config_hash(config: TrainConfig | dict[str, Any]) -> str:
    """Hash of every key that shapes the models, optimizer or data (16 hex digits)."""
    text = json.dumps(_shaping(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def changed_keys(old: TrainConfig | dict[str, Any], new: TrainConfig | dict[str, Any]) -> list[str]:
    """Dotted keys outside ``RESUME_SAFE_KEYS`` whose values differ between two configs."""
    a, b = _shaping(old), _shaping(new)
    return sorted(k for k in set(a) | set(b) if a.get(k, "<missing>") != b.get(k, "<missing>"))
