"""The report page's figures, drawn with plotly from the comparison and html_data.

Every figure has a title, labelled axes and colours from the Okabe-Ito palette (told apart
with the common colour-vision deficiencies); where colour carries meaning a marker shape or
line style carries it too. plotly.js is not in the figures: the page inlines it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

import numpy as np

from imdb_cli.compare.comparison import CONFIDENCE, Comparison, ModelRow
from imdb_cli.compare.verdict import ENCODERS, PairVerdict, format_p

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from imdb_cli.compare.html_data import AttentionMap, TsneMaps

# Okabe & Ito (2008), "Color Universal Design"; yellow last: it is faint on white.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
# True classes on the t-SNE maps: vermillion and blue first, apart from each other for all.
CLASS_COLOURS = ("#D55E00", "#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
GRID = "#e3e3e3"
SEED_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "pentagon")
CONFIG = {
    "responsive": True,
    "displaylogo": False,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"],
}


def plain(text: str) -> str:
    """A class name, token or review name as text in a figure: plotly reads `<b>`, `<br>`
    and `<a href>` in its labels, and a tokenizer's or a data set's strings may hold them."""
    return escape(str(text), quote=False)


def model_colour(index: int) -> str:
    return OKABE_ITO[index % len(OKABE_ITO)]


def class_colour(index: int) -> str:
    return CLASS_COLOURS[index % len(CLASS_COLOURS)]


@dataclass(frozen=True)
class Figure:
    """A figure of the page: its id (`fig-<name>`) and the plotly figure."""

    name: str
    figure: go.Figure

    @property
    def div_id(self) -> str:
        return f"fig-{self.name}"

    def to_html(self) -> str:
        return str(
            self.figure.to_html(
                full_html=False, include_plotlyjs=False, div_id=self.div_id, config=CONFIG
            )
        )


def _layout(title: str, height: int, **extra: Any) -> dict[str, Any]:
    """What every figure shares: no template (plotly.js's plain defaults, nothing repeated
    per figure), the page's font, a legend under the plot that wraps on a narrow page."""
    return {
        "template": "none",
        "title": {"text": title, "x": 0, "xanchor": "left", "font": {"size": 15}},
        "height": height,
        "font": {"family": FONT, "size": 12, "color": "#222"},
        "margin": {"l": 64, "r": 16, "t": 56, "b": 56},
        "legend": {"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0},
        "hoverlabel": {"align": "left", "font": {"family": FONT}},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        **extra,
    }


def _axis(title: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title},
        "gridcolor": GRID,
        "zerolinecolor": "#bbb",
        "linecolor": "#888",
        "showline": True,
        "automargin": True,
        **extra,
    }


def _go() -> Any:
    import plotly.graph_objects as go

    return go


# --------------------------------------------------------------------------- the verdict


@dataclass(frozen=True)
class Difference:
    """A row of the forest plot: the verdict's difference of a pair and its interval."""

    a: str
    b: str
    difference: float
    low: float
    high: float
    across_seeds: bool  # the difference of means over seeds (else of two checkpoints)
    called: bool  # the verdict's adjusted test says there is a difference
    test: str
    p_adjusted: float

    @property
    def label(self) -> str:
        return f"{self.a} − {self.b}"


def pairwise_differences(comparison: Comparison) -> list[Difference]:
    """What the forest plot draws: each pair of the verdict (Comparison.verdict): across
    seeds, the difference in mean test accuracy with the t interval of its two variance
    parts; with one seed on a side, the two checkpoints' difference with the review
    bootstrap interval."""
    return [_difference(pair) for pair in comparison.verdict.pairs]


def _difference(pair: PairVerdict) -> Difference:
    return Difference(
        pair.a,
        pair.b,
        pair.difference,
        pair.low,
        pair.high,
        pair.level == ENCODERS,
        pair.significant,
        pair.test,
        pair.p_adjusted,
    )


def forest_figure(differences: Sequence[Difference]) -> Figure:
    go = _go()
    fig = go.Figure()
    labels = [d.label for d in differences]
    for called, name, colour, symbol in (
        (True, "a difference (adjusted test)", OKABE_ITO[0], "diamond"),
        (False, "no difference detected", "#555555", "circle-open"),
    ):
        chosen = [d for d in differences if d.called is called]
        if not chosen:
            continue
        fig.add_trace(
            go.Scatter(
                x=[d.difference for d in chosen],
                y=[d.label for d in chosen],
                mode="markers",
                name=name,
                marker={"color": colour, "size": 12, "symbol": symbol, "line": {"width": 2}},
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": [d.high - d.difference for d in chosen],
                    "arrayminus": [d.difference - d.low for d in chosen],
                    "thickness": 2,
                    "width": 6,
                    "color": colour,
                },
                customdata=[
                    [
                        d.low,
                        d.high,
                        "mean over seeds" if d.across_seeds else "two checkpoints (one seed)",
                        f"{d.test}, adjusted p = {format_p(d.p_adjusted)}",
                    ]
                    for d in chosen
                ],
                hovertemplate=(
                    "%{y}: %{x:+.4f} (%{customdata[2]})<br>"
                    f"{CONFIDENCE:.0%} interval %{{customdata[0]:+.4f}} to %{{customdata[1]:+.4f}}"
                    "<br>%{customdata[3]}<extra></extra>"
                ),
            )
        )
    fig.add_vline(x=0, line={"color": "#444", "dash": "dash", "width": 1})
    fig.update_layout(
        _layout(
            f"The verdict: difference in test accuracy, {CONFIDENCE:.0%} interval",
            height=150 + 48 * len(differences),
            xaxis=_axis(
                "first model minus the second (mean over seeds; one seed: the checkpoints)",
                tickformat="+.3f",
            ),
            yaxis=_axis(
                "",
                categoryorder="array",
                categoryarray=list(reversed(labels)),
                showgrid=False,
            ),
            legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 1, "xanchor": "right"},
            showlegend=True,  # also with one kind of marker: it says what the marker means
        )
    )
    return Figure("forest", fig)


# --------------------------------------------------------------------------- training


def curves_figure(rows: Sequence[ModelRow]) -> Figure:
    """Loss and accuracy per epoch of every seed: train dashed, validation solid; the
    tested (best validation) epoch of each run is a star on its validation curve."""
    from plotly.subplots import make_subplots

    go = _go()
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=("loss (cross-entropy)", "accuracy"),
    )
    for index, row in enumerate(rows):
        colour = model_colour(index)
        curves = row.seed_curves or []
        for number, curve in enumerate(curves):
            symbol = SEED_SYMBOLS[number % len(SEED_SYMBOLS)]
            epochs = [p.epoch for p in curve.points]
            who = f"{row.label} seed {curve.seed}" if curve.seed is not None else row.label
            for kind, dash, loss, acc in (
                (
                    "train",
                    "dash",
                    [p.train_loss for p in curve.points],
                    [p.train_acc for p in curve.points],
                ),
                (
                    "val",
                    "solid",
                    [p.val_loss for p in curve.points],
                    [p.val_acc for p in curve.points],
                ),
            ):
                for subplot, values, metric in ((1, loss, "loss"), (2, acc, "accuracy")):
                    fig.add_trace(
                        go.Scatter(
                            x=epochs,
                            y=values,
                            mode="lines+markers",
                            name=f"{row.label} {kind}",
                            legendgroup=f"{row.label} {kind}",
                            showlegend=number == 0 and subplot == 2,
                            line={"color": colour, "dash": dash, "width": 2},
                            marker={"size": 6, "symbol": symbol},
                            hovertemplate=(
                                f"{who} {kind} {metric}: %{{y:.4f}} at epoch %{{x}}<extra></extra>"
                            ),
                        ),
                        row=subplot,
                        col=1,
                    )
            tested = curve.tested_epoch
            point = next((p for p in curve.points if p.epoch == tested), None)
            if point is not None:
                for subplot, value, metric in (
                    (1, point.val_loss, "loss"),
                    (2, point.val_acc, "accuracy"),
                ):
                    fig.add_trace(
                        go.Scatter(
                            x=[point.epoch],
                            y=[value],
                            mode="markers",
                            name="tested epoch (best validation)",
                            legendgroup="tested",
                            showlegend=False,
                            marker={
                                "symbol": "star",
                                "size": 15,
                                "color": colour,
                                "line": {"color": "#111", "width": 1},
                            },
                            hovertemplate=(
                                f"{who}: tested epoch {point.epoch}, val {metric} "
                                "%{y:.4f}<extra></extra>"
                            ),
                        ),
                        row=subplot,
                        col=1,
                    )
    # Legend-only markers in grey: each model's are in its own colour.
    seeds = [[c.seed for c in row.seed_curves] for row in rows]
    same = all(s == seeds[0] for s in seeds)
    for number in range(max((len(s) for s in seeds), default=0)):
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=f"seed {seeds[0][number]}" if same else f"seed no. {number + 1}",
                marker={
                    "symbol": SEED_SYMBOLS[number % len(SEED_SYMBOLS)],
                    "size": 8,
                    "color": "#777",
                },
            ),
            row=2,
            col=1,
        )
    fig.add_trace(
        go.Scatter(
            x=[None],
            y=[None],
            mode="markers",
            name="tested epoch (best validation)",
            legendgroup="tested",
            marker={
                "symbol": "star",
                "size": 13,
                "color": "#999",
                "line": {"color": "#111", "width": 1},
            },
        ),
        row=2,
        col=1,
    )
    epochs_all = sorted({p.epoch for row in rows for c in row.seed_curves for p in c.points})
    fig.update_layout(
        _layout(
            "Learning curves of every seed (train dashed, validation solid)",
            height=640,
            legend={"orientation": "h", "yanchor": "top", "y": -0.1, "x": 0},
        )
    )
    fig.update_xaxes(_axis("", tickvals=epochs_all))
    fig.update_xaxes(title_text="epoch", row=2, col=1)
    fig.update_yaxes(_axis(""))
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", row=2, col=1)
    return Figure("curves", fig)


def sweep_figure(rows: Sequence[ModelRow]) -> Figure:
    """Validation accuracy per learning rate: each seed's best epoch as a dot, their mean
    as the line; the chosen rate ringed."""
    go = _go()
    fig = go.Figure()
    for index, row in enumerate(rows):
        if row.sweep is None:
            continue
        colour = model_colour(index)
        done = [r for r in row.sweep.rates if r.mean_val_acc is not None]
        fig.add_trace(
            go.Scatter(
                x=[r.lr for r in done],
                y=[r.mean_val_acc for r in done],
                mode="lines+markers",
                name=f"{row.label}: mean over {len(row.sweep.seeds)} seed(s)",
                line={"color": colour, "width": 2},
                marker={"size": 8},
                hovertemplate=f"{row.label} lr %{{x:g}}: mean val acc %{{y:.4f}}<extra></extra>",
            )
        )
        seeds_x = [r.lr for r in row.sweep.rates for _ in r.val_accs]
        seeds_y = [v for r in row.sweep.rates for v in r.val_accs]
        fig.add_trace(
            go.Scatter(
                x=seeds_x,
                y=seeds_y,
                mode="markers",
                name=f"{row.label}: each seed",
                marker={"color": colour, "size": 6, "symbol": "circle-open"},
                hovertemplate=(
                    f"{row.label} lr %{{x:g}}: a seed's val acc %{{y:.4f}}<extra></extra>"
                ),
            )
        )
        chosen = [r for r in done if r.lr == row.sweep.selected_lr]
        fig.add_trace(
            go.Scatter(
                x=[r.lr for r in chosen],
                y=[r.mean_val_acc for r in chosen],
                mode="markers+text",
                name=f"{row.label}: chosen rate",
                text=["chosen"] * len(chosen),
                textposition="top center",
                marker={"color": colour, "size": 22, "symbol": "circle-open", "line": {"width": 3}},
                hovertemplate=(
                    f"{row.label}: chosen lr %{{x:g}} (mean val acc %{{y:.4f}})<extra></extra>"
                ),
            )
        )
    rates = sorted({r.lr for row in rows if row.sweep for r in row.sweep.rates})
    fig.update_layout(
        _layout(
            "Learning rates tried: validation accuracy (the chosen rate ringed; test never used)",
            height=440,
            xaxis=_axis(
                "learning rate (log scale)",
                type="log",
                tickvals=rates,
                ticktext=[f"{rate:g}" for rate in rates],
            ),
            yaxis=_axis("validation accuracy (best epoch)"),
        )
    )
    return Figure("sweep", fig)


# --------------------------------------------------------------------------- errors


def confusion_figure(row: ModelRow, index: int) -> Figure:
    """Counts, shaded by the share of each true class (rows sum to 100%)."""
    go = _go()
    confusion = row.errors.confusion
    counts = np.asarray(confusion.matrix, dtype=np.int64)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    text = [
        [f"{c:,}<br>{s:.0%}" for c, s in zip(r, sr, strict=True)]
        for r, sr in zip(counts, shares, strict=True)
    ]
    fig = go.Figure(
        go.Heatmap(
            z=shares,
            x=[plain(c) for c in confusion.classes],
            y=[plain(c) for c in confusion.classes],
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar={"title": {"text": "share"}, "tickformat": ".0%", "thickness": 12},
            hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>",
        )
    )
    fig.update_layout(
        _layout(
            f"{row.label}: confusion matrix (macro F1 {confusion.macro_f1:.3f})",
            height=360,
            xaxis=_axis("predicted class", side="bottom", showgrid=False),
            yaxis=_axis("true class", autorange="reversed", showgrid=False),
        )
    )
    return Figure(f"confusion-{index}", fig)


def reliability_figure(rows: Sequence[ModelRow]) -> Figure:
    """Accuracy against confidence in equal-mass bins of the predicted class's probability,
    each bin's accuracy with its Wilson interval."""
    go = _go()
    fig = go.Figure()
    lows = [b.low for row in rows for b in row.errors.calibration.bins if b.reviews]
    start = min(0.5, float(np.floor(min(lows, default=0.5) * 10) / 10))
    fig.add_trace(
        go.Scatter(
            x=[start, 1],
            y=[start, 1],
            mode="lines",
            name="perfectly calibrated",
            line={"color": "#777", "dash": "dot"},
            hoverinfo="skip",
        )
    )
    for index, row in enumerate(rows):
        calibration = row.errors.calibration
        filled = [b for b in calibration.bins if b.reviews]
        colour = model_colour(index)
        fig.add_trace(
            go.Scatter(
                x=[b.confidence for b in filled],
                y=[b.accuracy for b in filled],
                mode="lines+markers",
                name=f"{row.label} (ECE {calibration.ece:.3f})",
                line={"color": colour, "width": 2},
                marker={"size": 7, "symbol": SEED_SYMBOLS[index % len(SEED_SYMBOLS)]},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [b.accuracy_high - b.accuracy for b in filled],
                    "arrayminus": [b.accuracy - b.accuracy_low for b in filled],
                    "color": colour,
                    "thickness": 1,
                    "width": 3,
                },
                customdata=[[b.reviews, b.low, b.high] for b in filled],
                hovertemplate=(
                    f"{row.label}: confidence %{{x:.3f}}, accuracy %{{y:.3f}}<br>"
                    "%{customdata[0]} reviews with confidence %{customdata[1]:.3f} to "
                    "%{customdata[2]:.3f}<extra></extra>"
                ),
            )
        )
    fig.update_layout(
        _layout(
            "Reliability on the test split (below the diagonal: over-confident)",
            height=520,
            xaxis=_axis("confidence: probability of the predicted class", range=[start, 1.005]),
            yaxis=_axis(
                f"accuracy in the bin ({CONFIDENCE:.0%} Wilson interval)",
                range=[start - 0.05, 1.02],
            ),
        )
    )
    return Figure("reliability", fig)


def lengths_figure(rows: Sequence[ModelRow]) -> Figure:
    go = _go()
    fig = go.Figure()
    for index, row in enumerate(rows):
        buckets = row.errors.lengths
        if not buckets:
            continue
        fig.add_trace(
            go.Bar(
                x=[f"{b.label} tokens" for b in buckets],
                y=[b.accuracy for b in buckets],
                name=f"{row.label} (max {row.max_length} tokens)",
                marker={"color": model_colour(index)},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [(b.accuracy_high or 0) - (b.accuracy or 0) for b in buckets],
                    "arrayminus": [(b.accuracy or 0) - (b.accuracy_low or 0) for b in buckets],
                    "color": "#333",
                    "thickness": 1,
                    "width": 3,
                },
                customdata=[b.reviews for b in buckets],
                hovertemplate=(
                    f"{row.label}, %{{x}}: accuracy %{{y:.3f}} over %{{customdata}} reviews"
                    "<extra></extra>"
                ),
            )
        )
    fig.update_layout(
        _layout(
            "Test accuracy by review length (full token count before truncation; "
            f"{CONFIDENCE:.0%} Wilson intervals)",
            height=420,
            barmode="group",
            xaxis=_axis("full review length", showgrid=False),
            yaxis=_axis("test accuracy", range=[0, 1.05]),
        )
    )
    return Figure("lengths", fig)


# --------------------------------------------------------------------------- maps


def tsne_figure(maps: TsneMaps, index: int) -> Figure:
    """One model's t-SNE: colour is the true class, a cross a wrong prediction, a ring a
    review the models disagree on. Each point's customdata is its index into the page's
    list of sampled reviews, from which the hover panel shows the review; the points carry
    nothing else, which keeps a map of 1,000 reviews at some 15 kB."""
    go = _go()
    view = maps.maps[index]
    correct = view.predicted == maps.labels
    disagree = maps.disagree if len(maps.maps) > 1 else np.zeros(len(maps.labels), dtype=bool)
    positions = np.arange(
        len(maps.labels), dtype=np.uint16 if len(maps.labels) < 65536 else np.int32
    )
    coords = view.coords.astype(np.float32)
    fig = go.Figure()
    for class_id, class_name in enumerate(plain(c) for c in maps.classes):
        for right, symbol, verdict in ((True, "circle", "right"), (False, "x", "wrong")):
            chosen = (maps.labels == class_id) & (correct == right)
            if not chosen.any():
                continue
            fig.add_trace(
                go.Scatter(
                    x=coords[chosen, 0],
                    y=coords[chosen, 1],
                    mode="markers",
                    name=f"{class_name}, {view.label} {verdict}",
                    marker={
                        "color": class_colour(class_id),
                        "symbol": symbol,
                        "size": 7 if right else 9,
                        "opacity": 0.75 if right else 1.0,
                        "line": {"width": 0 if right else 1.5, "color": class_colour(class_id)},
                    },
                    customdata=positions[chosen],
                    hovertemplate=(
                        f"true {class_name}, {view.label} {verdict}<br>"
                        "the review: below the map<extra></extra>"
                    ),
                )
            )
    if disagree.any():
        fig.add_trace(
            go.Scatter(
                x=coords[disagree, 0],
                y=coords[disagree, 1],
                mode="markers",
                name="models disagree",
                marker={"symbol": "circle-open", "size": 14, "color": "#111", "line": {"width": 1}},
                hoverinfo="skip",
            )
        )
    accuracy = float(correct.mean())
    fig.update_layout(
        _layout(
            f"{view.label}: t-SNE of {len(maps.labels)} {maps.split} reviews "
            f"(accuracy {accuracy:.1%})",
            height=520,
            xaxis=_axis("t-SNE 1 (no unit)", showticklabels=False),
            yaxis=_axis("t-SNE 2 (no unit)", showticklabels=False),
            hovermode="closest",
            legend={"orientation": "h", "yanchor": "top", "y": -0.14, "x": 0},
        )
    )
    return Figure(f"tsne-{index}", fig)


def attention_figure(item: AttentionMap, number: int) -> Figure:
    """Query tokens down, key tokens across; special tokens in brackets as the tokenizer
    writes them."""
    go = _go()
    labels = [f"{plain(token)} ·{i}" for i, token in enumerate(item.tokens)]
    head = "mean over heads" if item.head == "mean" else f"head {plain(item.head)}"
    truth = f", true {plain(item.true_label)}" if item.true_label else ""
    fig = go.Figure(
        go.Heatmap(
            z=item.matrix,
            x=labels,
            y=labels,
            colorscale="Viridis",
            zmin=0,
            colorbar={"title": {"text": "weight"}, "thickness": 12},
            hovertemplate="query %{y} → key %{x}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        _layout(
            f"{item.label} on {plain(item.review)}<br><sup>predicted {plain(item.prediction)}"
            f"{truth}; layer {item.layer} ({item.layer_type}), {head}, {len(item.tokens)} tokens"
            "</sup>",
            height=600,
            xaxis=_axis("key token (attended to)", showgrid=False, tickangle=-60, nticks=40),
            yaxis=_axis("query token", autorange="reversed", showgrid=False, nticks=40),
            margin={"l": 90, "r": 16, "t": 76, "b": 90},
        )
    )
    return Figure(f"attention-{number}", fig)
