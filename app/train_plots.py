"""Loss-plot data for the Run Training tab: which series to tick, their colours, and the frames a
Gradio LinePlot gets. Pure except ``plot_update``, which imports gradio when called."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

PLOT_POINTS = 1000  # per series: a 1400 px wide plot shows no more, and the browser redraws fast


# series a model's runs start with unticked: HiFi-GAN's total ``loss`` (~100, mostly mel L1 x 45)
# squashes every other curve to a flat line; the user can tick it back


def series_selection(names: list[str], known: list[str], shown: list[str] | None, model: str | None) -> list[str]:
    """The loss series to tick when the run's series list changes (``names``, in plot order).

    A series the user ticks stays ticked and one they unticked (``known`` but not ``shown``)
    stays hidden; a series new to the list is ticked unless the model hides it by default
    (the model spec's ``ui.hidden_series``)."""
    shown_set, known_set = set(shown or []), set(known or [])
    from modules import model_registry

    default_hidden = model_registry.get(model).ui.hidden_series if model in model_registry.SPECS else frozenset()
    return [n for n in names if n in shown_set or (n not in known_set and n not in default_hidden)]


def shown_series_frame(frame: "pd.DataFrame", shown: list[str] | None) -> "pd.DataFrame":
    """The loss plot's rows: those of the ticked series (train and validation alike)."""
    if frame is None or frame.empty:
        return frame
    return frame[frame["series"].isin(list(shown or []))]


# Tableau 20 order: distinct colours for up to 20 series, the first ten the familiar Vega ones
PALETTE = ["#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d",
           "#bab0ac", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]


def series_colours(names: list[str], frame: "pd.DataFrame | None") -> dict[str, str]:
    """A LinePlot ``color_map`` for the series drawn in ``frame``, coloured by their place in ``names``
    (all of the plot's series) so a series keeps its colour when others are ticked or unticked.

    Gradio 6's LinePlot fixes its colour domain when it builds the chart and later data-only updates
    keep it: a series new to the plot draws without a stroke and stays out of the legend. A changed
    ``color_map`` makes it rebuild the chart, so the map holds exactly the drawn series and changes
    whenever that set does."""
    if frame is None or frame.empty:
        return {}
    drawn = list(dict.fromkeys(frame["series"]))
    order = {n: i for i, n in enumerate(list(dict.fromkeys(list(names) + drawn)))}
    return {n: PALETTE[order[n] % len(PALETTE)] for n in drawn}


def plot_frame(frame: "pd.DataFrame", x: str) -> "pd.DataFrame | None":
    """A long frame for a LinePlot with the x column named ``x``; None when empty.

    An empty frame must never reach the plot: Gradio then loses the colour encoding and later
    points draw without a stroke."""
    if frame is None or frame.empty:
        return None
    return frame.rename(columns={x: "x"}) if x != "x" else frame


PLOT_TITLES = {"loss": "Losses", "quality": "Validation quality (val_wer: lower is better; the others: higher)",
               "lr": "Learning rate", "grad_norm": "Gradient norm"}


def plot_update(frame: "pd.DataFrame | None", x: str, title: str) -> dict:
    """A LinePlot update carrying the data and a label naming the x axis."""
    import gradio as gr

    # the x column is always "x" and its name goes into the label: changing the axis title in
    # the same update as the data makes Gradio keep the old data
    return gr.update(value=plot_frame(frame, x), label=f"{title} (x: {x})")
