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

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from imdb_cli.files import write_atomic

DPI = 100
LABEL_COLOURS = {0: "#3b6fb6", 1: "#e08a1e"}  # negative blue, positive orange
ERROR_COLOUR = "#c0392b"
BOUNDARY_COLOUR = "#111111"
DISAGREE_COLOUR = "#8e44ad"
SPECIAL_COLOUR = "#7f7f7f"
LABEL_OFFSETS = ((5, 4), (5, -10), (-32, 4), (-32, -10))  # points, around the marked point


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
    labels: np.ndarray  # [n] true labels
    correct: np.ndarray  # [n] bool
    short_ids: Sequence[str]  # "#123" per point
    boundary: Sequence[int]  # row indices: smallest margin |p - 0.5|
    confident_errors: Sequence[int]  # row indices: errors with the largest margin
    disagree: np.ndarray | None = None  # [n] bool: models predict differently


def _draw_tsne(ax: Axes, panel: TsnePanel) -> None:
    x, y = panel.coords[:, 0], panel.coords[:, 1]
    for label in (0, 1):
        ok = (panel.labels == label) & panel.correct
        wrong = (panel.labels == label) & ~panel.correct
        colour = LABEL_COLOURS[label]
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
        for number, row in enumerate(rows):
            ax.annotate(
                panel.short_ids[row],
                (x[row], y[row]),
                # Rotate the label around its point so neighbouring labels collide less.
                xytext=LABEL_OFFSETS[number % len(LABEL_OFFSETS)],
                textcoords="offset points",
                fontsize=7,
                color=colour,
                # No leader lines: the ring marks the point, and arrows cost most of the
                # figure's drawing time.
            )
    ax.set_title(panel.title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("t-SNE 1 (distances between clusters mean little)", fontsize=8)
    ax.set_ylabel("t-SNE 2", fontsize=8)


def _tsne_legend(has_disagreements: bool) -> list[Line2D]:
    def dot(
        colour: str, marker: str = "o", edge: str = "none", face: str | None = None, label: str = ""
    ) -> Line2D:
        return Line2D(
            [],
            [],
            linestyle="none",
            marker=marker,
            markersize=7,
            markerfacecolor=face if face is not None else colour,
            markeredgecolor=edge,
            label=label,
        )

    handles = [
        dot(LABEL_COLOURS[0], label="true negative class"),
        dot(LABEL_COLOURS[1], label="true positive class"),
        dot("#999999", marker="X", edge=ERROR_COLOUR, label="misclassified"),
        dot("none", face="none", edge=BOUNDARY_COLOUR, label="boundary: smallest |p - 0.5|"),
        dot("none", face="none", edge=ERROR_COLOUR, label="most confident errors"),
    ]
    if has_disagreements:
        handles.append(dot("none", face="none", edge=DISAGREE_COLOUR, label="models disagree"))
    return handles


def tsne_figure(panels: Sequence[TsnePanel], suptitle: str | None = None) -> Figure:
    """One panel per model, side by side (one panel: a single model's figure)."""
    count = len(panels)
    fig = Figure(figsize=(7.0 * count, 7.4), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, count, squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=True):
        _draw_tsne(ax, panel)
    has_disagreements = any(p.disagree is not None and p.disagree.any() for p in panels)
    handles = _tsne_legend(has_disagreements)
    columns = len(handles) if count > 1 else 3  # one panel is too narrow for one row
    fig.legend(handles=handles, loc="outside lower center", ncol=columns, fontsize=8, frameon=False)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
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
    tokens: Sequence[str], special: Sequence[bool], received: np.ndarray, title: str
) -> Figure:
    """Bar chart of the attention each token receives; special tokens in grey, not dropped."""
    count = len(tokens)
    width = float(np.clip(INCHES_PER_TOKEN * count + 2.5, 10, 40))
    fig = Figure(figsize=(width, 4.8), dpi=DPI, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    flags = np.asarray(special, dtype=bool)
    colours = [SPECIAL_COLOUR if flag else LABEL_COLOURS[0] for flag in flags]
    ax.bar(np.arange(count), received, color=colours, width=0.85)
    _token_ticks(ax, tokens, special, "x", _font_for(count, width - 1.5))
    ax.set_xlim(-0.6, count - 0.4)
    ax.set_ylabel("attention received\n(mean over query tokens)", fontsize=9)
    special_share = float(received[flags].sum()) if flags.any() else 0.0
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
                markerfacecolor=LABEL_COLOURS[0],
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
