"""What a reader of the t-SNE and attention figures relies on, checked on the figures."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.text import Annotation, Text

from imdb_cli.analysis import plotting
from imdb_cli.analysis.attention import NEAR_UNIFORM, EncodedReview, LayerAttention, ModelAttention

CLASSES = ("comedy", "drama", "horror")


def crowded_panel(name: str = "m") -> plotting.TsnePanel:
    """300 points, ten of them marked and packed into a tiny corner of the map."""
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(300, 2)) * 10
    coords[:10] = [5.0, 5.0] + rng.normal(size=(10, 2)) * 0.05
    labels = rng.integers(0, 3, size=300)
    correct = rng.random(300) < 0.8
    return plotting.TsnePanel(
        model=name,
        title=name,
        coords=coords,
        labels=labels,
        correct=correct,
        short_ids=[f"#{10000 + i}" for i in range(300)],
        boundary=list(range(5)),
        confident_errors=list(range(5, 10)),
        class_names=CLASSES,
    )


def test_id_labels_of_crowded_points_do_not_overlap() -> None:
    fig = plotting.tsne_figure([crowded_panel("a"), crowded_panel("b")])
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    for ax in fig.axes:
        labels = [t for t in ax.texts if isinstance(t, Annotation)]
        assert sorted(t.get_text() for t in labels) == [f"#{10000 + i}" for i in range(10)]
        # The label text itself (an annotation's own extent also spans its leader line).
        boxes = [Text.get_window_extent(t, renderer) for t in labels]
        for one, other in itertools.combinations(boxes, 2):
            assert not one.overlaps(other), (one, other)
        frame = ax.get_window_extent(renderer)
        assert all(frame.contains(b.x0, b.y0) and frame.contains(b.x1, b.y1) for b in boxes)


def test_misclassified_legend_entry_has_an_x_in_each_colour_drawn() -> None:
    panel = crowded_panel()
    fig = plotting.tsne_figure([panel])
    (ax,) = fig.axes
    drawn = set()
    error_edge = tuple(np.round(to_rgba(plotting.ERROR_COLOUR), 4))
    for collection in ax.collections:
        edges = {tuple(np.round(c, 4)) for c in collection.get_edgecolor()}
        faces = collection.get_facecolor()
        if edges == {error_edge} and len(faces):  # the X markers (rings have no face)
            drawn |= {tuple(np.round(c, 4)) for c in faces}
    handles, texts = plotting._tsne_legend(CLASSES, has_disagreements=False)
    entry = handles[texts.index("misclassified (X in its true class's colour)")]

    legend_colours = {tuple(np.round(to_rgba(h.get_markerfacecolor()), 4)) for h in entry}
    assert legend_colours == drawn
    assert len(legend_colours) == len(CLASSES)
    assert [t for t in texts if t.startswith("true class")] == [
        f"true class: {name}" for name in CLASSES
    ]


def sliding_layer(count: int, window: int) -> LayerAttention:
    """A local layer whose queries spread their attention evenly over what they see."""
    distance = np.abs(np.subtract.outer(np.arange(count), np.arange(count)))
    visible = (distance <= window).astype(np.float64)
    matrix = visible / visible.sum(axis=1, keepdims=True)
    return LayerAttention(1, "sliding_attention", window, None, matrix)


def test_received_attention_of_a_local_layer_is_normalised_by_coverage() -> None:
    layer = sliding_layer(60, 8)
    # The plain mean shows a hump: middle tokens are seen by 17 queries, the ends by 9.
    assert layer.received[30] > 1.3 * layer.received[0]
    assert layer.coverage[0] == 9 and layer.coverage[30] == 17
    # Per seeing query, the middle stands out no more than the ends (weights are even).
    spread = layer.received_per_query.max() / layer.received_per_query.min()
    assert spread < 1.6
    np.testing.assert_allclose(layer.received.sum(), 1.0)  # the shares still sum to 1


def test_even_attention_is_near_uniform_and_a_peaked_one_is_not() -> None:
    even = sliding_layer(40, 5)
    assert even.uniformity == pytest.approx(1.0)
    peaked = np.full((40, 40), 0.01 / 39)
    np.fill_diagonal(peaked, 0.99)
    sharp = LayerAttention(0, "full_attention", None, None, peaked)
    assert sharp.uniformity < NEAR_UNIFORM < even.uniformity


def test_near_uniform_attention_ranks_no_token() -> None:
    tokens = [f"w{i}" for i in range(40)]
    review = EncodedReview("text", list(range(40)), tokens, [False] * 40, 0)
    peaked = np.full((40, 40), 0.5 / 39)
    peaked[:, 7] = 0.5 + 0.5 / 39 - 0.5 / 39  # every query looks at token 7 half the time
    peaked[:, 7] = 0.5
    peaked = peaked / peaked.sum(axis=1, keepdims=True)
    for layer, ranked in (
        (sliding_layer(40, 5), False),
        (LayerAttention(0, "full_attention", None, None, peaked), True),
    ):
        probs, classes = np.array([0.5, 0.5]), ["a", "b"]
        result = ModelAttention("m", None, None, review, probs, classes, 1, 1, [layer])  # type: ignore[arg-type]
        top = result.top_tokens(3)
        assert result.near_uniform is not ranked
        assert (top[0]["token"] == "w7") if ranked else (top == [])
