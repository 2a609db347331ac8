"""Generate Configuration tab: a form over the typed config schema, Validate, Save, Load.

The form is generated from ``modules.config.schema`` (every key, its type, range, choices
and help), so defaults are never written twice and a new schema key shows up by itself.
Form values go through ``form_to_config`` -> ``config_from_dict`` and are written with
``save_config``: the same code path as ``python -m modules config``. The pure functions
at the top (``form_fields``, ``form_to_config``, ``config_to_form``, ``validate_form``)
hold all the logic and are tested without a browser; ``build`` only wires widgets.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import yaml

from modules.config import presets
from modules.config.schema import (
    MODEL_SECTIONS,
    ConfigError,
    TrainConfig,
    apply_preset,
    config_from_dict,
    config_to_dict,
    config_to_yaml,
    default_config,
    load_config,
    save_config,
)
from modules.errors import UserError
from modules.workspace import Workspace, check_name

if TYPE_CHECKING:
    import gradio as gr
    import pandas as pd

MODEL_CHOICES = [("HiFi-GAN vocoder", "hifigan"), ("Autoregressive", "autoregressive")]
# top-level keys that only the autoregressive model uses (shown with its fields)
AUTOREGRESSIVE_TOP_KEYS = ("text_lr_weight", "mel_lr_weight")
# keys with their own widgets at the top of the form
SPECIAL_KEYS = ("model", "dataset", "base", "run_name")
GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("Length and learning rate", ("epochs", "max_steps", "learning_rate", "lr_schedule", "text_lr_weight",
                                  "mel_lr_weight", "grad_clip")),
    ("Batch and hardware", ("batch_size", "grad_accumulation", "precision", "gpus", "num_workers", "seed")),
    ("Saving and validation", ("save_every_steps", "save_every_epochs", "validate_every_steps",
                               "validate_every_epochs", "log_every_steps", "keep_states", "validation_samples")),
]
OTHER_GROUP = "Other"
# which lr_schedule fields matter for which schedule type (the others are hidden, still saved)
SCHEDULE_FIELDS = {
    "exponential": ("gamma",),
    "multistep": ("milestones", "factor"),
    "cosine": ("cycle_epochs", "min_lr_ratio"),
    "constant": (),
}


@dataclass(frozen=True)
class FormField:
    """One form widget for one dotted config key."""

    key: str
    kind: str  # bool | choice | int | float | list | text
    optional: bool
    choices: tuple | None
    help: str
    model: str | None  # None: every model; else only shown for that model
    group: str

    @property
    def elem_id(self) -> str:
        return "cfg-" + self.key.replace(".", "-")

    @property
    def label(self) -> str:
        name = self.key.split(".", 1)[-1] if self.key.startswith(tuple(MODEL_SECTIONS)) else self.key
        return name.replace("lr_schedule.", "schedule ").replace("_", " ").replace(".", " ")


def _kind(tp: Any) -> tuple[str, bool]:
    optional = False
    if typing.get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType")):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional, tp = True, args[0]
    if typing.get_origin(tp) is list:
        return "list", optional
    return {bool: "bool", int: "int", float: "float", str: "text"}.get(tp, "text"), optional


@functools.lru_cache(maxsize=1)
def form_fields() -> tuple[FormField, ...]:
    """Every schema key except the special top ones, in display order, with its widget kind."""
    group_of = {k: g for g, keys in GROUPS for k in keys}
    out: list[FormField] = []

    def walk(cls: type, prefix: str, model: str | None, group: str | None) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key = prefix + f.name
            if cls is TrainConfig and (f.name in SPECIAL_KEYS or f.name in MODEL_SECTIONS):
                continue
            tp = hints[f.name]
            g = group or group_of.get(f.name, OTHER_GROUP)
            if dataclasses.is_dataclass(tp):
                walk(tp, key + ".", model, g)
                continue
            kind, optional = _kind(tp)
            choices = f.metadata.get("choices")
            if choices:
                kind = "choice"
            m = model or ("autoregressive" if key in AUTOREGRESSIVE_TOP_KEYS else None)
            out.append(FormField(key, kind, optional, tuple(choices) if choices else None,
                                 f.metadata.get("help", ""), m, g))

    walk(TrainConfig, "", None, None)
    for model, cls in MODEL_SECTIONS.items():
        walk(cls, model + ".", model, model)
    order = [g for g, _ in GROUPS] + [OTHER_GROUP] + list(MODEL_SECTIONS)
    return tuple(sorted(out, key=lambda f: order.index(f.group)))


def form_keys() -> list[str]:
    """The order in which the UI passes widget values: special keys, then ``form_fields``."""
    return list(SPECIAL_KEYS) + [f.key for f in form_fields()]


def _parse_list(raw: Any, key: str) -> list:
    if isinstance(raw, list):
        return raw
    text = str(raw or "").strip()
    if not text:
        return []
    try:
        value = yaml.safe_load(text)
        if not isinstance(value, list):
            value = yaml.safe_load(f"[{text}]")
    except yaml.YAMLError as exc:
        raise ConfigError(f"{key}: {text!r} is not a list; write it like [8, 8, 2, 2] ({exc.problem})") from None
    return value


def widget_to_value(field: FormField, raw: Any) -> Any:
    """A widget's value as the config value (blank optional fields become null)."""
    if field.kind == "list":
        return _parse_list(raw, field.key)
    if field.kind == "bool":
        return bool(raw)
    if field.kind in ("int", "float"):
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        if isinstance(raw, str):
            try:
                raw = float(raw)
            except ValueError:
                raise ConfigError(f"{field.key}: {raw!r} is not a number") from None
        if field.kind == "int" and isinstance(raw, float) and raw.is_integer():
            return int(raw)
        return raw
    if isinstance(raw, str):
        raw = raw.strip()
        if field.optional and not raw:
            return None
    return raw


def value_to_widget(field: FormField, value: Any) -> Any:
    """A config value as the widget shows it (lists as YAML flow text, null text as blank)."""
    if field.kind == "list":
        return yaml.safe_dump(value if value is not None else [], default_flow_style=True, width=1000).strip()
    if value is None and (field.kind == "text" or field.optional):
        return ""
    if field.optional and field.kind in ("int", "float"):
        return str(value)
    return value


def _set(data: dict, key: str, value: Any) -> None:
    node = data
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def _get(data: Mapping, key: str) -> Any:
    node: Any = data
    for p in key.split("."):
        if not isinstance(node, Mapping) or p not in node:
            return None
        node = node[p]
    return node


def form_to_dict(values: Mapping[str, Any]) -> dict[str, Any]:
    """Widget values (dotted key -> value) to a config mapping for the chosen model only."""
    model = values.get("model") or "hifigan"
    data: dict[str, Any] = {"model": model}
    data["dataset"] = str(values.get("dataset") or "").strip()
    data["base"] = str(values.get("base") or "").strip() or None
    data["run_name"] = str(values.get("run_name") or "").strip() or None
    for f in form_fields():
        if f.key not in values or (f.model and f.model != model):
            continue
        _set(data, f.key, widget_to_value(f, values[f.key]))
    h = data.get("hifigan")
    if model == "hifigan" and h and h.get("preset") in presets.HIFIGAN_PRESETS:
        sizes = presets.HIFIGAN_PRESETS[h["preset"]]
        # edited generator sizes turn a named preset into a custom one instead of an error
        if any(k in h and _norm(h[k]) != _norm(sizes[k]) for k in presets.HIFIGAN_GENERATOR_KEYS):
            h["preset"] = "custom"
    return data


def _norm(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    return str(v) if isinstance(v, (int, str)) and not isinstance(v, bool) else v


def form_to_config(values: Mapping[str, Any]) -> TrainConfig:
    """Widget values -> a validated ``TrainConfig`` (raises ``ConfigError`` naming the key)."""
    return config_from_dict(form_to_dict(values))


def config_to_form(config: TrainConfig) -> dict[str, Any]:
    """A config -> widget values for the special keys and the fields of its model (others untouched)."""
    data = config_to_dict(config)
    out: dict[str, Any] = {
        "model": config.model,
        "dataset": config.dataset,
        "base": config.base or "",
        "run_name": config.run_name or "",
    }
    for f in form_fields():
        if f.model and f.model != config.model:
            continue
        out[f.key] = value_to_widget(f, _get(data, f.key))
    return out


def default_form(model: str, dataset: str, preset: str | None = None) -> dict[str, Any]:
    """Widget values of a new config: the schema's defaults for the model (and a preset)."""
    return config_to_form(default_config(model, dataset or "training/NAME", preset))


def preset_form(values: Mapping[str, Any], preset: str) -> dict[str, Any]:
    """The form with a named preset laid over its current values."""
    return config_to_form(apply_preset(form_to_config(values), preset))


def config_path_for(ws: Workspace, config: TrainConfig, name: str) -> Path:
    """``training/NAME/configs/CONFIG.yaml`` of the config's dataset (inside the workspace)."""
    name = (name or "").strip()
    if name.endswith((".yaml", ".yml")):
        name = name.rsplit(".", 1)[0]
    check_name(name, "config")
    dataset_dir = ws.inside(config.dataset)
    if dataset_dir.parent != ws.training.resolve():
        raise UserError(f"dataset {config.dataset!r}: pick a prepared dataset under training/ to save the config")
    return dataset_dir / "configs" / f"{name}.yaml"


def save_form(ws: Workspace, values: Mapping[str, Any], name: str) -> Path:
    """Validate the form and write its YAML with the schema's ``save_config``."""
    config = form_to_config(values)
    path = config_path_for(ws, config, name)
    save_config(config, path)
    return path


def load_form(ws: Workspace, path: str) -> tuple[dict[str, Any], str]:
    """Read a saved YAML back into widget values; returns (values, config name)."""
    p = ws.inside(path if Path(path).is_absolute() or str(path).startswith("training/") else ws.training / path)
    return config_to_form(load_config(p)), p.stem


def yaml_preview(values: Mapping[str, Any]) -> str:
    """The YAML ``save_config`` would write, or the error (as a YAML comment) when invalid."""
    try:
        return config_to_yaml(form_to_config(values))
    except (ConfigError, UserError) as exc:
        return f"# not valid yet:\n# {exc}\n"


def validate_form(ws: Workspace, values: Mapping[str, Any], gpus_available: int | None = None
                  ) -> tuple[str, "pd.DataFrame", list]:
    """What the run will do: (Markdown report, LR curve frame, plan warnings)."""
    import pandas as pd

    from modules.config.plan import plan_run

    config = form_to_config(values)
    plan = plan_run(config, ws, gpus_available=gpus_available)
    lines = [
        "| | |", "|---|---|",
        f"| train / validation clips | {plan.train_items} / {plan.validation_items} |",
        f"| steps per epoch | {plan.steps_per_epoch} |",
        f"| total steps | {plan.total_steps} ({plan.epochs_run:.2f} epochs) |",
        f"| effective batch | {plan.global_batch} (batch {config.batch_size} × accumulation "
        f"{config.grad_accumulation} × {plan.world_size} process{'es' if plan.world_size > 1 else ''}) |",
    ]
    if plan.warnings:
        lines.append("")
        for w in plan.warnings:
            icon = "❌" if w.level == "error" else "⚠️"
            key = f"`{w.key}`: " if w.key else ""
            lines.append(f"- {icon} {key}{w.message} **Fix:** {w.fix}")
    else:
        lines.append("\n✅ No warnings.")
    frame = pd.DataFrame(plan.lr_points or [], columns=["step", "learning rate"])
    return "\n".join(lines), frame, plan.warnings


def dataset_choices(ws: Workspace) -> list[str]:
    return [f"training/{name}" for name in ws.list_datasets()]


def base_choices(ws: Workspace, model: str) -> list[tuple[str, str]]:
    from modules.run_manager import list_base_models

    return [("none (start from random weights)", "")] + [(p, p) for p in list_base_models(ws, model)]


def saved_config_choices(ws: Workspace) -> list[str]:
    from modules.run_manager import config_label, list_configs

    return [config_label(ws, p) for p in list_configs(ws)]


# --------------------------------------------------------------------------------------------
# Gradio wiring
# --------------------------------------------------------------------------------------------

def build(workspace: Workspace, demo: "gr.Blocks") -> None:
    """Create the tab's widgets inside the current ``gr.Tab``."""
    import gradio as gr
    from gradio.context import Context

    from app.common import describe_exception, error, ok, relative_to_root

    ws = workspace
    tab = Context.block if isinstance(Context.block, gr.Tab) else None
    fields = form_fields()
    datasets = dataset_choices(ws)
    first_dataset = datasets[0] if datasets else ""
    initial = default_form("hifigan", first_dataset)
    comps: dict[str, Any] = {}
    section_boxes: dict[str, Any] = {}
    schedule_widgets: dict[str, Any] = {}

    gr.Markdown("Build a training config from the recipe's defaults, check what it will do, and save it "
                "under `training/DATASET/configs/`. Everything here is also `python -m modules config`.")
    with gr.Row():
        saved = gr.Dropdown(saved_config_choices(ws), label="Saved configs", value=None, scale=4,
                            elem_id="cfg-saved", allow_custom_value=False)
        load_btn = gr.Button("Load", elem_id="cfg-load", scale=1)
        refresh_btn = gr.Button("Refresh lists", elem_id="cfg-refresh", scale=1)
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Row():
                comps["model"] = gr.Radio(MODEL_CHOICES, value="hifigan", label="Model type", elem_id="cfg-model")
                preset = gr.Dropdown([""] + presets.preset_names("hifigan"), value="", label="Preset",
                                     info="lay a named preset over the form", elem_id="cfg-preset")
            with gr.Row():
                comps["dataset"] = gr.Dropdown(datasets, value=initial["dataset"] if datasets else None,
                                               label="Dataset", allow_custom_value=True, elem_id="cfg-dataset")
                comps["base"] = gr.Dropdown(base_choices(ws, "hifigan"), value="", label="Base model",
                                            allow_custom_value=True, elem_id="cfg-base",
                                            info="fine-tune from this checkpoint (models/ or an earlier run)")
            with gr.Row():
                config_name = gr.Textbox(value="hifigan", label="Config name", elem_id="cfg-name",
                                         info="saved as training/DATASET/configs/NAME.yaml")
                comps["run_name"] = gr.Textbox(value="", label="Run name", elem_id="cfg-run_name",
                                               info="run folder under DATASET/runs/ (blank: the config name)")
            groups: dict[str, list[FormField]] = {}
            for f in fields:
                groups.setdefault(f.group, []).append(f)
            initial_sched = SCHEDULE_FIELDS.get(initial.get("lr_schedule.type") or "", ())
            for group, members in groups.items():
                title = {"hifigan": "HiFi-GAN", "autoregressive": "Autoregressive"}.get(group, group)
                with gr.Accordion(title, open=group != OTHER_GROUP, visible=_shown(group != "autoregressive"),
                                  elem_id=f"cfg-group-{group.replace(' ', '-').lower()}") as box:
                    for start in range(0, len(members), 3):
                        with gr.Row():
                            for f in members[start:start + 3]:
                                visible = f.model in (None, "hifigan")
                                sub = f.key.split(".", 1)[1] if f.key.startswith("lr_schedule.") else None
                                if sub and sub != "type":
                                    visible = sub in initial_sched or sub == "warmup_steps"
                                comps[f.key] = _widget(gr, f, initial.get(f.key), _shown(visible))
                                if sub and sub != "type":
                                    schedule_widgets[sub] = comps[f.key]
                if group in MODEL_SECTIONS:
                    section_boxes[group] = box
        with gr.Column(scale=2):
            with gr.Row():
                validate_btn = gr.Button("Validate", variant="secondary", elem_id="cfg-validate")
                save_btn = gr.Button("Save", variant="primary", elem_id="cfg-save")
            message = gr.Markdown("", elem_id="cfg-message")
            report = gr.Markdown("", elem_id="cfg-report")
            lr_plot = gr.LinePlot(None, x="step", y="learning rate", label="Learning rate over the run",
                                  height=220, elem_id="cfg-lr-plot")
            preview = gr.Code(yaml_preview(initial), language="yaml", interactive=False, label="YAML preview",
                              elem_id="cfg-preview", max_lines=40)

    keys = form_keys()
    inputs = [comps[k] for k in keys]
    ar_top = [comps[k] for k in AUTOREGRESSIVE_TOP_KEYS if k in comps]

    def values_of(args: tuple) -> dict[str, Any]:
        return dict(zip(keys, args))

    def schedule_visibility(kind: str) -> list:
        shown = SCHEDULE_FIELDS.get(kind, tuple(schedule_widgets))
        return [gr.update(visible=_shown(name in shown or name == "warmup_steps")) for name in schedule_widgets]

    def fill(values: dict[str, Any]) -> list:
        """Updates for every input, visibility of model sections and schedule fields, preview."""
        model = values.get("model", "hifigan")
        ups = [gr.update(value=values[k]) if k in values else gr.update() for k in keys]
        vis = [gr.update(visible=_shown(m == model)) for m in section_boxes]
        vis += [gr.update(visible=_shown(model == "autoregressive")) for _ in ar_top]
        sched = schedule_visibility(values.get("lr_schedule.type") or "exponential")
        return ups + vis + sched

    fill_outputs = inputs + list(section_boxes.values()) + ar_top + list(schedule_widgets.values())

    preset_widget = comps.get("hifigan.preset")

    def on_edit(*args):
        values = values_of(args)
        preset_up = gr.update()
        try:
            data = form_to_dict(values)
        except (ConfigError, UserError):
            data = {}
        wanted = (data.get("hifigan") or {}).get("preset")
        if preset_widget is not None and wanted and wanted != values.get("hifigan.preset"):
            preset_up = gr.update(value=wanted)  # edited generator sizes: the preset becomes custom
        return yaml_preview(values), preset_up

    edit_outputs = [preview, preset_widget] if preset_widget is not None else [preview]
    for k in keys:
        comp = comps[k]
        if k in ("model", "hifigan.preset"):
            continue
        comp.input(on_edit if preset_widget is not None else (lambda *a: on_edit(*a)[0]), inputs, edit_outputs,
                   show_progress="hidden", queue=False)

    def on_model(*args):
        values = values_of(args)
        model = values["model"]
        try:
            new = default_form(model, values.get("dataset") or "")
        except (ConfigError, UserError) as exc:
            return fill({}) + [gr.update(), gr.update(), error(str(exc)), gr.update()]
        new["dataset"] = values.get("dataset") or ""
        return fill(new) + [gr.update(choices=[""] + presets.preset_names(model), value=""),
                            gr.update(choices=base_choices(ws, model), value=""), "", yaml_preview(new)]

    comps["model"].input(on_model, inputs, fill_outputs + [preset, comps["base"], message, preview])

    def on_preset(name, *args):
        values = values_of(args)
        if not name:
            return fill({}) + ["", gr.update()]
        try:
            new = preset_form(values, name)
        except (ConfigError, UserError) as exc:
            return fill({}) + [error(f"cannot apply preset {name}: {exc}"), gr.update()]
        return fill(new) + [ok(f"Preset **{name}** applied."), yaml_preview(new)]

    preset.input(on_preset, [preset] + inputs, fill_outputs + [message, preview])
    if "hifigan.preset" in comps:
        def on_generator_preset(*args):
            values = values_of(args)
            name = values.get("hifigan.preset")
            if name not in presets.HIFIGAN_PRESETS:
                return fill({}) + [gr.update(), yaml_preview(values)]
            return on_preset(name, *args)

        comps["hifigan.preset"].input(on_generator_preset, inputs, fill_outputs + [message, preview])

    if "lr_schedule.type" in comps:
        comps["lr_schedule.type"].change(schedule_visibility, comps["lr_schedule.type"],
                                         list(schedule_widgets.values()), queue=False, show_progress="hidden")

    def on_validate(*args):
        try:
            text, frame, _ = validate_form(ws, values_of(args))
        except Exception as exc:  # noqa: BLE001 - shown as one line, console has the traceback
            return describe_exception(exc, "Validate"), "", None
        return ok("Validated."), text, frame

    validate_btn.click(on_validate, inputs, [message, report, lr_plot])

    def on_save(name, *args):
        try:
            path = save_form(ws, values_of(args), name)
        except Exception as exc:  # noqa: BLE001
            return describe_exception(exc, "Save"), gr.update()
        label = relative_to_root(ws, path)
        choices = saved_config_choices(ws)
        return (ok(f"Saved `{label}`. Start it in the Run Training tab, or run "
                   f"`python -m modules train {label}`."),
                gr.update(choices=choices, value=str(path.resolve().relative_to(ws.training))))

    save_btn.click(on_save, [config_name] + inputs, [message, saved])

    def on_load(label):
        if not label:
            return fill({}) + [gr.update(), error("pick a saved config first"), gr.update(), gr.update()]
        try:
            values, name = load_form(ws, label)
        except Exception as exc:  # noqa: BLE001
            return fill({}) + [gr.update(), describe_exception(exc, "Load"), gr.update(), gr.update()]
        model = values["model"]
        extra = [gr.update(choices=[""] + presets.preset_names(model), value=""),
                 ok(f"Loaded `training/{label}`."), name, yaml_preview(values)]
        ups = fill(values)
        # the loaded base/dataset may not be among the listed choices: offer them
        ups[keys.index("base")] = gr.update(choices=base_choices(ws, model), value=values["base"])
        return ups + extra

    load_btn.click(on_load, saved, fill_outputs + [preset, message, config_name, preview])

    def on_refresh(model):
        return (gr.update(choices=saved_config_choices(ws)), gr.update(choices=dataset_choices(ws)),
                gr.update(choices=base_choices(ws, model or "hifigan")))

    refresh_btn.click(on_refresh, comps["model"], [saved, comps["dataset"], comps["base"]])
    demo.load(on_refresh, comps["model"], [saved, comps["dataset"], comps["base"]])
    if tab is not None:  # configs saved or runs made elsewhere show up when the tab is opened
        tab.select(on_refresh, comps["model"], [saved, comps["dataset"], comps["base"]], show_progress="hidden")


def _shown(flag: bool) -> bool | str:
    """Gradio never mounts the children of a container created with ``visible=False``, so hidden
    parts of the form are rendered and hidden with CSS (``"hidden"``) instead."""
    return True if flag else "hidden"


def _widget(gr, f: FormField, value: Any, visible: bool | str = True):
    """The Gradio component for one field."""
    common = dict(label=f.label, info=f.help or None, elem_id=f.elem_id, visible=visible)
    if f.kind == "bool":
        return gr.Checkbox(value=bool(value), **common)
    if f.kind == "choice":
        return gr.Dropdown(list(f.choices or ()), value=value, **common)
    if f.kind in ("int", "float") and f.optional:
        # gr.Number cannot be blank (it shows and sends 0); blank text means null here
        return gr.Textbox(value="" if value is None else str(value), placeholder="blank: off / null", **common)
    if f.kind in ("int", "float"):
        return gr.Number(value=value, precision=0 if f.kind == "int" else None, **common)
    if f.kind == "list":
        return gr.Textbox(value=value, **common)
    return gr.Textbox(value=value if value is not None else "", **common)
