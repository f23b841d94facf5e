"""Figures for `imdb tsne` and `imdb attention`.

Figures are built with `matplotlib.figure.Figure` and the Agg canvas directly, never
pyplot: no window, no global figure state, safe on a machine without a display. Files are
written atomically and at a fixed size (figsize x DPI, no tight bounding box), so a test
can check the pixel size it expects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.transforms import Bbox

from imdb_cli.files import write_atomic

DPI = 100
# Class colours by class id: the first two as before (blue, orange), then tab10's others.
CLASS_COLOURS = (
    "#3b6fb6",
    "#e08a1e",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
)
REVIEW_COLOUR = CLASS_COLOURS[0]  # bars of review tokens in the attention chart
ERROR_COLOUR = "#c0392b"
BOUNDARY_COLOUR = "#111111"
DISAGREE_COLOUR = "#8e44ad"
SPECIAL_COLOUR = "#7f7f7f"
LABEL_FONT = 7
# Where an id label may go around its point, in points: near ones first, then farther
# ones (those get a thin leader line). The first that overlaps no placed label wins.
_NEAR = ((5, 3), (5, -9), (-5, 3), (-5, -9), (0, 8), (0, -14))
LABEL_OFFSETS = (
    *_NEAR,
    *((2.5 * x, 2.5 * y) for x, y in _NEAR),
    *((4.5 * x, 4.5 * y) for x, y in _NEAR),
)


def class_colour(class_id: int) -> str:
    return CLASS_COLOURS[class_id % len(CLASS_COLOURS)]


def save_figure(fig: Figure, path: Path) -> Path:
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
    return path


# t-SNE -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TsnePanel:
    """What one model's t-SNE panel shows."""

    model: str
    title: str
    coords: np.ndarray  # [n, 2]
    labels: np.ndarray  # [n] true class ids
    correct: np.ndarray  # [n] bool
    short_ids: Sequence[str]  # "#123" per point
    boundary: Sequence[int]  # row indices: smallest margin
    confident_errors: Sequence[int]  # row indices: errors with the largest margin
    class_names: Sequence[str]  # by class id (the run's label names)
    disagree: np.ndarray | None = None  # [n] bool: models predict differently


def _draw_tsne(ax: Axes, panel: TsnePanel) -> None:
    x, y = panel.coords[:, 0], panel.coords[:, 1]
    for label in range(len(panel.class_names)):
        ok = (panel.labels == label) & panel.correct
        wrong = (panel.labels == label) & ~panel.correct
        colour = class_colour(label)
        ax.scatter(x[ok], y[ok], s=10, c=colour, alpha=0.55, linewidths=0)
        ax.scatter(
            x[wrong], y[wrong], s=28, c=colour, marker="X", edgecolors=ERROR_COLOUR, linewidths=0.6
        )
    if panel.disagree is not None and panel.disagree.any():
        d = panel.disagree
        ax.scatter(x[d], y[d], s=70, facecolors="none", edgecolors=DISAGREE_COLOUR, linewidths=0.9)
    for rows, colour in (
        (list(panel.boundary), BOUNDARY_COLOUR),
        (list(panel.confident_errors), ERROR_COLOUR),
    ):
        ax.scatter(x[rows], y[rows], s=60, facecolors="none", edgecolors=colour, linewidths=1.2)
    ax.set_title(panel.title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("t-SNE 1 (distances between clusters mean little)", fontsize=8)
    ax.set_ylabel("t-SNE 2", fontsize=8)


def _id_labels(panel: TsnePanel) -> list[tuple[int, str]]:
    """(row, colour) of each labelled point, each point once (boundary first)."""
    seen: dict[int, str] = {}
    for rows, colour in (
        (panel.boundary, BOUNDARY_COLOUR),
        (panel.confident_errors, ERROR_COLOUR),
    ):
        for row in rows:
            seen.setdefault(int(row), colour)
    return list(seen.items())


def _overlap(a: Bbox, b: Bbox) -> float:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(width, 0.0) * max(height, 0.0)


def place_id_labels(fig: Figure, axes: Sequence[Axes], panels: Sequence[TsnePanel]) -> None:
    """Label the marked points so that no two labels overlap, where the room allows.

    Needs the final layout: the figure is drawn once, then each label takes the first of
    LABEL_OFFSETS around its point whose box overlaps no label placed before it and stays
    inside the axes (else the one overlapping least). Labels sit outside the layout, so
    placing them moves nothing.
    """
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    scale = fig.dpi / 72.0
    for ax, panel in zip(axes, panels, strict=True):
        frame = ax.get_window_extent(renderer)
        placed: list[Bbox] = []
        for row, colour in _id_labels(panel):
            anchor = ax.transData.transform(panel.coords[row])
            probe = ax.text(0, 0, panel.short_ids[row], fontsize=LABEL_FONT)
            extent = probe.get_window_extent(renderer)
            probe.remove()
            best: tuple[float, int, Bbox] | None = None
            for number, (dx, dy) in enumerate(LABEL_OFFSETS):
                left = anchor[0] + dx * scale - (extent.width if dx < 0 else 0)
                left -= extent.width / 2 if dx == 0 else 0
                bottom = anchor[1] + dy * scale
                box = Bbox.from_bounds(left, bottom, extent.width, extent.height)
                inside = frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1)
                cost = sum(_overlap(box, other) for other in placed) + (0 if inside else 1e6)
                if best is None or cost < best[0]:
                    best = (cost, number, box)
                if cost == 0:
                    break
            assert best is not None
            _, number, box = best
            far = number >= len(_NEAR)
            text_x, text_y = ax.transData.inverted().transform((box.x0, box.y0))
            label = ax.annotate(
                panel.short_ids[row],
                panel.coords[row],
                xytext=(float(text_x), float(text_y)),
                textcoords="data",
                ha="left",
                va="bottom",
                fontsize=LABEL_FONT,
                color=colour,
                arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.5} if far else None,
                annotation_clip=False,
            )
            label.set_in_layout(False)
            placed.append(box)


def _marker(colour: str, marker: str = "o", edge: str = "none", face: str | None = None) -> Line2D:
    return Line2D(
        [],
        [],
        linestyle="none",
        marker=marker,
        markersize=7,
        markerfacecolor=face if face is not None else colour,
        markeredgecolor=edge,
    )


def _tsne_legend(
    class_names: Sequence[str], has_disagreements: bool
) -> tuple[list[Any], list[str]]:
    """Legend handles and texts; "misclassified" shows its X in every class colour, as drawn."""
    handles: list[Any] = [_marker(class_colour(i)) for i in range(len(class_names))]
    texts = [f"true class: {name}" for name in class_names]
    handles.append(
        tuple(
            _marker(class_colour(i), marker="X", edge=ERROR_COLOUR) for i in range(len(class_names))
        )
    )
    texts.append("misclassified (X in its true class's colour)")
    handles += [
        _marker("none", face="none", edge=BOUNDARY_COLOUR),
        _marker("none", face="none", edge=ERROR_COLOUR),
    ]
    texts += ["boundary: smallest margin", "most confident errors"]
    if has_disagreements:
        handles.append(_marker("none", face="none", edge=DISAGREE_COLOUR))
        texts.append("models disagree")
    return handles, texts


def tsne_figure(panels: Sequence[TsnePanel], suptitle: str | None = None) -> Figure:
    """One panel per model, side by side (one panel: a single model's figure)."""
    count = len(panels)
    fig = Figure(figsize=(7.0 * count, 7.4), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, count, squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=True):
        _draw_tsne(ax, panel)
    has_disagreements = any(p.disagree is not None and p.disagree.any() for p in panels)
    handles, texts = _tsne_legend(panels[0].class_names, has_disagreements)
    columns = len(handles) if count > 1 else 3  # one panel is too narrow for one row
    fig.legend(
        handles,
        texts,
        loc="outside lower center",
        ncol=columns,
        fontsize=8,
        frameon=False,
        handler_map={tuple: HandlerTuple(ndivide=None, pad=0.3)},
    )
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    place_id_labels(fig, list(axes), panels)
    return fig


# Attention ---------------------------------------------------------------------------

INCHES_PER_TOKEN = 0.16  # room for a readable label per token, up to the size caps
MAX_LABELLED_TOKENS = 160  # above this, label every k-th token so labels stay legible


def _tick_step(count: int) -> int:
    return 1 if count <= MAX_LABELLED_TOKENS else int(np.ceil(count / MAX_LABELLED_TOKENS))


def _token_ticks(
    ax: Axes, tokens: Sequence[str], special: Sequence[bool], axis: str, fontsize: float
) -> None:
    step = _tick_step(len(tokens))
    positions = list(range(0, len(tokens), step))
    labels = [tokens[i] for i in positions]
    if axis in ("x", "both"):
        ax.set_xticks(positions, labels, rotation=90, fontsize=fontsize)
        for tick, i in zip(ax.get_xticklabels(), positions, strict=True):
            if special[i]:
                tick.set_color(SPECIAL_COLOUR)
                tick.set_fontweight("bold")
    if axis in ("y", "both"):
        ax.set_yticks(positions, labels, fontsize=fontsize)
        for tick, i in zip(ax.get_yticklabels(), positions, strict=True):
            if special[i]:
                tick.set_color(SPECIAL_COLOUR)
                tick.set_fontweight("bold")


def _outline_window(ax: Axes, count: int, window: int) -> None:
    """Outline the band |query - key| <= window a sliding layer can see, cell edge by cell edge."""
    rows = np.arange(count)
    ys = np.repeat(rows, 2) + np.tile([-0.5, 0.5], count)
    for side in (1, -1):
        xs = np.repeat(rows + side * (window + 0.5), 2)
        ax.plot(xs, ys, color="white", linewidth=1.0, linestyle="--")
    ax.set_xlim(-0.5, count - 0.5)
    ax.set_ylim(count - 0.5, -0.5)


@dataclass(frozen=True)
class HeatmapPanel:
    title: str
    matrix: np.ndarray  # [tokens, tokens], rows = queries
    window: int | None  # sliding layers: outline what they can see


def _font_for(count: int, axis_inches: float) -> float:
    """A tick-label size that fits the space each labelled token gets on the axis."""
    points_per_label = axis_inches * 72 / max(count, 1) * _tick_step(count)
    return float(np.clip(0.7 * points_per_label, 4, 9))


def heatmap_figure(
    tokens: Sequence[str], special: Sequence[bool], panels: Sequence[HeatmapPanel], suptitle: str
) -> Figure:
    """Token-by-token attention: one large heatmap, or a grid of small ones (one per layer)."""
    count = len(tokens)
    if len(panels) == 1:
        side = float(np.clip(INCHES_PER_TOKEN * count + 2.5, 6, 24))
        fig = Figure(figsize=(side + 1.2, side + 0.6), dpi=DPI, layout="constrained")
        grid = [[fig.add_subplot(1, 1, 1)]]
        labelled, axis_inches = True, side - 2
    else:
        cols = min(4, len(panels))
        rows = int(np.ceil(len(panels) / cols))
        fig = Figure(figsize=(4.2 * cols, 4.2 * rows + 0.6), dpi=DPI, layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False)
        grid = [list(row) for row in axes]
        # A small panel has room for token labels only on short reviews.
        labelled, axis_inches = count <= 24, 3.4
    flat = [ax for row in grid for ax in row]
    image = None
    for ax, panel in zip(flat, panels, strict=False):
        image = ax.imshow(panel.matrix, cmap="viridis", vmin=0.0, interpolation="nearest")
        if panel.window is not None:
            _outline_window(ax, count, panel.window)
        ax.set_title(panel.title, fontsize=9 if len(panels) > 1 else 11)
        if labelled:
            _token_ticks(ax, tokens, special, "both", _font_for(count, axis_inches))
            ax.set_xlabel("key token (attended to)", fontsize=9)
            ax.set_ylabel("query token (attending)", fontsize=9)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax in flat[len(panels) :]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=flat[: len(panels)], shrink=0.6, label="attention weight")
    fig.suptitle(suptitle, fontsize=11)
    return fig


def received_figure(
    tokens: Sequence[str],
    special: Sequence[bool],
    received: np.ndarray,
    title: str,
    *,
    special_share: float,
) -> Figure:
    """Bar chart of the attention each token receives; special tokens in grey, not dropped.

    `special_share`: the share of all attention that went to special tokens (legend)."""
    count = len(tokens)
    width = float(np.clip(INCHES_PER_TOKEN * count + 2.5, 10, 40))
    fig = Figure(figsize=(width, 4.8), dpi=DPI, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    flags = np.asarray(special, dtype=bool)
    colours = [SPECIAL_COLOUR if flag else REVIEW_COLOUR for flag in flags]
    ax.bar(np.arange(count), received, color=colours, width=0.85)
    _token_ticks(ax, tokens, special, "x", _font_for(count, width - 1.5))
    ax.set_xlim(-0.6, count - 0.4)
    ax.set_ylabel("attention received\n(mean over the queries that see it)", fontsize=9)
    ax.legend(
        handles=[
            Line2D(
                [],
                [],
                linestyle="none",
                marker="s",
                markersize=8,
                markerfacecolor=SPECIAL_COLOUR,
                markeredgecolor="none",
                label=f"special tokens: {special_share:.1%} of the attention",
            ),
            Line2D(
                [],
                [],
                linestyle="none",
                marker="s",
                markersize=8,
                markerfacecolor=REVIEW_COLOUR,
                markeredgecolor="none",
                label=f"review tokens: {1 - special_share:.1%}",
            ),
        ],
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),  # outside the bars, so it hides none of them
        fontsize=8,
    )
    fig.suptitle(title, fontsize=11)  # on the figure: the axes are narrower than the title
    return fig
