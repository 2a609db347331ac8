"""Generate Configuration tab: widgets over ``app.configure_form`` (which holds all the logic)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.configure_form import (
    FIT_GROUP,
    SCHEDULE_FIELDS,
    FormField,
    auto_config_name,
    auto_form,
    base_choices,
    base_fixed_values,
    dataset_choices,
    default_form,
    default_model,
    fit_form,
    form_fields,
    form_keys,
    form_to_dict,
    group_open,
    group_title,
    load_form,
    model_choices,
    model_of_top_key,
    preset_form,
    save_form,
    saved_config_choices,
    section_of,
    validate_form,
    yaml_preview,
)
from modules import model_registry as registry
from modules.config import presets
from modules.config.schema import ConfigError
from modules.errors import UserError
from modules.workspace import Workspace

if TYPE_CHECKING:
    import gradio as gr


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
    first_model = default_model()
    initial = default_form(first_model, first_dataset)
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
                comps["model"] = gr.Radio(model_choices(), value=first_model, label="Model type", elem_id="cfg-model")
                preset = gr.Dropdown([""] + presets.preset_names(first_model), value="", label="Preset",
                                     info="lay a named preset over the form", elem_id="cfg-preset")
            with gr.Row():
                comps["dataset"] = gr.Dropdown(datasets, value=initial["dataset"] if datasets else None,
                                               label="Dataset", allow_custom_value=True, elem_id="cfg-dataset")
                comps["base"] = gr.Dropdown(base_choices(ws, first_model), value="", label="Base model",
                                            allow_custom_value=True, elem_id="cfg-base",
                                            info="fine-tune from this checkpoint (models/ or an earlier run)")
            with gr.Row():
                config_name = gr.Textbox(value=auto_config_name(first_model, initial.get("dataset")),
                                         label="Config name", elem_id="cfg-name",
                                         info="saved as training/DATASET/configs/NAME.yaml (follows the model and "
                                              "dataset until you type one)")
                comps["run_name"] = gr.Textbox(value="", label="Run name", elem_id="cfg-run_name",
                                               info="run folder under DATASET/runs/ (blank: the config name)")
            groups: dict[str, list[FormField]] = {}
            for f in fields:
                groups.setdefault(f.group, []).append(f)
            initial_sched = SCHEDULE_FIELDS.get(initial.get("lr_schedule.type") or "", ())
            for group, members in groups.items():
                section = section_of(group)
                is_section = section is not None
                with gr.Accordion(group_title(group), open=group_open(group),
                                  visible=_shown(not is_section or section == first_model),
                                  elem_id=f"cfg-group-{group.replace(' ', '-').replace(':', '-').lower()}") as box:
                    for start in range(0, len(members), 3):
                        with gr.Row():
                            for f in members[start:start + 3]:
                                visible = f.model in (None, first_model)
                                sub = f.key.split(".", 1)[1] if f.key.startswith("lr_schedule.") else None
                                if sub and sub != "type":
                                    visible = sub in initial_sched or sub == "warmup_steps"
                                comps[f.key] = _widget(gr, f, initial.get(f.key), _shown(visible))
                                if sub and sub != "type":
                                    schedule_widgets[sub] = comps[f.key]
                    if group == FIT_GROUP:  # the memory-fit check sits beside the batch it checks
                        with gr.Row():
                            fit_btn = gr.Button("Check memory fit", elem_id="cfg-fit-check", scale=1)
                            fit_md = gr.Markdown("", elem_id="cfg-fit")
                if is_section:
                    section_boxes[group] = (section, box)
        with gr.Column(scale=2):
            with gr.Row():
                auto_btn = gr.Button("Auto", variant="secondary", elem_id="cfg-auto")
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
    # top-level keys of one model (text/mel LR weights): shown only with that model
    model_top = [(model_of_top_key(k), comps[k]) for k in keys if model_of_top_key(k) and k in comps]

    def values_of(args: tuple) -> dict[str, Any]:
        return dict(zip(keys, args))

    def schedule_visibility(kind: str) -> list:
        shown = SCHEDULE_FIELDS.get(kind, tuple(schedule_widgets))
        return [gr.update(visible=_shown(name in shown or name == "warmup_steps")) for name in schedule_widgets]

    def fill(values: dict[str, Any]) -> list:
        """Updates for every input, visibility of model sections and schedule fields, preview."""
        model = values.get("model", first_model)
        ups = [gr.update(value=values[k]) if k in values else gr.update() for k in keys]
        vis = [gr.update(visible=_shown(m == model)) for m, _ in section_boxes.values()]
        vis += [gr.update(visible=_shown(m == model)) for m, _ in model_top]
        sched = schedule_visibility(values.get("lr_schedule.type") or "exponential")
        return ups + vis + sched

    fill_outputs = (inputs + [box for _, box in section_boxes.values()] + [w for _, w in model_top]
                    + list(schedule_widgets.values()))

    # a section's own size preset (hifigan.preset): editing sizes turns it to custom, picking one applies it
    size_presets = {f"{s.name}.preset": s.name for s in registry.all_specs() if f"{s.name}.preset" in comps}

    def on_edit(*args):
        values = values_of(args)
        try:
            data = form_to_dict(values)
        except (ConfigError, UserError):
            data = {}
        ups = []
        for key, model in size_presets.items():
            wanted = (data.get(model) or {}).get("preset")
            ups.append(gr.update(value=wanted) if wanted and wanted != values.get(key) else gr.update())
        return [yaml_preview(values), *ups]

    edit_outputs = [preview] + [comps[k] for k in size_presets]
    for k in keys:
        if k == "model" or k in size_presets:
            continue
        # one queue for every field's edits, in the order they were made: unqueued, a slow earlier edit could
        # answer after a later one and leave the preview showing the older form
        comps[k].input(on_edit, inputs, edit_outputs, show_progress="hidden", queue=True, concurrency_limit=1,
                       concurrency_id="cfg-edit", trigger_mode="always_last")

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
    for key, model in size_presets.items():
        def on_size_preset(*args, key=key, model=model):
            values = values_of(args)
            name = values.get(key)
            if not presets.section_preset(model, name):
                return fill({}) + [gr.update(), yaml_preview(values)]
            return on_preset(name, *args)

        comps[key].input(on_size_preset, inputs, fill_outputs + [message, preview])

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

    def on_auto(*args):
        """Length, cadence, warm-up, batch and precision from the dataset and the hardware."""
        try:
            new, text = auto_form(ws, values_of(args))
        except Exception as exc:  # noqa: BLE001
            return fill({}) + [describe_exception(exc, "Auto"), gr.update(), gr.update()]
        return fill(new) + [ok("Derived settings applied."), text, yaml_preview(new)]

    auto_btn.click(on_auto, inputs, fill_outputs + [message, report, preview])

    # a chosen base fixes its architecture: those fields show the base's values, read-only; no base frees them
    section_keys = [k for k in keys if section_of(k.split(".", 1)[0]) is not None and "." in k]

    def on_base(model, base):
        fixed = base_fixed_values(ws, model, base)
        ups = [gr.update(value=fixed[k], interactive=False) if k in fixed else gr.update(interactive=True)
               for k in section_keys]
        note = (f"The base fixes {len(fixed)} field(s) of the model (shown read-only with its values)." if fixed
                else gr.update())
        return ups + [note]

    comps["base"].change(on_base, [comps["model"], comps["base"]], [comps[k] for k in section_keys] + [message],
                         show_progress="hidden")

    # the config name follows model and dataset while it is one the form suggested (a typed one stays)
    def follow_name(model, dataset, current):
        suggested = {auto_config_name(m, d) for m in registry.names() for d in [dataset, *dataset_choices(ws), ""]}
        if current and current not in suggested:
            return gr.update()
        return gr.update(value=auto_config_name(model, dataset))

    for comp in (comps["model"], comps["dataset"]):
        comp.change(follow_name, [comps["model"], comps["dataset"], config_name], config_name, queue=False,
                    show_progress="hidden")

    def on_fit(*args):
        try:
            return fit_form(ws, values_of(args))
        except Exception as exc:  # noqa: BLE001
            return describe_exception(exc, "Check memory fit")

    fit_btn.click(on_fit, inputs, fit_md)

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
                gr.update(choices=base_choices(ws, model or first_model)))

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
