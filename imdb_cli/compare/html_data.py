"""What the report page shows beside the comparison, gathered in one place.

- the reviews the models disagree on: every test review of the compared runs' ledgers
  (so the whole test split, not a sample), with texts from the runs' data cache;
- the t-SNE maps: a `TsneResult` handed over in memory (`imdb reproduce`) or a t-SNE folder
  read back (`imdb report`: `analysis/tsne/latest` unless told otherwise);
- the attention maps: `imdb attention`'s JSON, in memory or read from its folder;
- how to reproduce: commands, versions, the data and the machines.

A run of an analysis is matched to a row of the comparison by its run folder's
`<model>/<run-id>`, so a workspace that was copied elsewhere still matches. Analyses of
other runs are left out and the page says which command makes them for these runs.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from imdb_cli.compare.comparison import Comparison, ModelRow
from imdb_cli.config import Invocation
from imdb_cli.errors import ImdbError
from imdb_cli.runs.ledger import Ledger, read_ledger
from imdb_cli.runs.run import Run
from imdb_cli.workspace import Workspace

if TYPE_CHECKING:
    from imdb_cli.analysis.attention import SavedAttention
    from imdb_cli.analysis.embeddings import ReviewRow, TsneResult
    from imdb_cli.compare.study_report import StudyReport

# The page's budget (at most 6 MB for three models with two seeds, of which plotly.js is
# 4.8): the table holds the disagreements with the largest spread of probabilities, a
# review's text is cut where a person stops reading in a table cell or a hover panel, and
# the attention maps (some 100 kB per model and review) are the first review's.
MAX_DISAGREEMENTS = 100
TABLE_TEXT_CHARS = 2000
MAP_TEXT_CHARS = 280
MAX_ATTENTION_REVIEWS = 1


def run_key(path: str | Path) -> tuple[str, str]:
    """`(model, run-id)` of a run folder: what matches an analysis to a row."""
    folder = Path(path)
    return folder.parent.name, folder.name


def row_by_run(comparison: Comparison) -> dict[tuple[str, str], ModelRow]:
    return {run_key(row.run_path): row for row in comparison.rows}


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# --------------------------------------------------------------------------- disagreements


@dataclass(frozen=True)
class Disagreements:
    """The test reviews on which the compared models predict different classes."""

    models: list[str]  # row labels, in the comparison's order
    classes: list[str]
    rows: list[ReviewRow]  # largest spread of probabilities first, at most MAX_DISAGREEMENTS
    total: int  # disagreements among `reviews`
    reviews: int  # test reviews every model in `models` was scored on
    notes: list[str] = field(default_factory=list)  # models left out, texts missing

    def right(self, row: ReviewRow) -> list[int]:
        """Indices into `models` of the models that got `row` right."""
        return [i for i, name in enumerate(self.models) if row.correct[name]]


def ledgers_of(comparison: Comparison) -> dict[str, Ledger]:
    """Each row's ledger (row label -> ledger), read again from its run folder."""
    return {row.label: read_ledger(Path(row.run_path)) for row in comparison.rows}


def test_texts(workspace: Workspace, ledger: Ledger) -> tuple[dict[int, str], str | None]:
    """Test review id -> text from the run's data cache, or why there are none."""
    from imdb_cli.data.tokenized import load_texts
    from imdb_cli.runs.caches import cache_of_run

    try:
        cache = cache_of_run(workspace, ledger)
        ids, texts, _ = load_texts(cache, "test")
    except (ImdbError, OSError, KeyError) as exc:
        reason = exc.message if isinstance(exc, ImdbError) else str(exc)
        return {}, f"review texts not shown: {reason}"
    return dict(zip((int(i) for i in ids.tolist()), texts, strict=True)), None


def find_disagreements(
    comparison: Comparison,
    ledgers: Mapping[str, Ledger],
    texts: Mapping[int, str],
    *,
    limit: int = MAX_DISAGREEMENTS,
) -> Disagreements:
    """The reviews the first row and the rows paired with it disagree on."""
    from imdb_cli.analysis.embeddings import ReviewRow, disagreements

    first = comparison.rows[0]
    paired = {p.b for p in comparison.pairs if p.a == first.label}
    paired |= {p.a for p in comparison.pairs if p.b == first.label}
    models = [
        row.label for row in comparison.rows if row.label == first.label or row.label in paired
    ]
    notes = [
        f"{row.label} is not in the table: it was not tested on the same reviews as {first.label}"
        for row in comparison.rows
        if row.label not in models
    ]
    base = ledgers[first.label].test
    assert base is not None
    classes = ledgers[first.label].label_names
    probs: dict[str, dict[int, np.ndarray]] = {}
    for name in models:
        test = ledgers[name].test
        assert test is not None
        probs[name] = dict(zip((int(r) for r in test.review_ids), test.prob_matrix(), strict=True))
    rows = [
        ReviewRow(
            review_id=int(review_id),
            label=int(label),
            text=texts.get(int(review_id), ""),
            probs={name: probs[name][int(review_id)] for name in models},
            classes=classes,
        )
        for review_id, label in zip(base.review_ids, base.labels, strict=True)
    ]
    found = disagreements(rows) if len(models) > 1 else []
    return Disagreements(models, classes, found[:limit], len(found), len(rows), notes)


# --------------------------------------------------------------------------- t-SNE


@dataclass(frozen=True)
class TsneMap:
    """One model's own t-SNE of the sampled reviews."""

    label: str  # the comparison row's label
    coords: np.ndarray  # [n, 2]
    probs: np.ndarray  # [n, classes]

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(axis=1)


@dataclass(frozen=True)
class TsneMaps:
    source: str  # the folder it was read from, or what computed it
    split: str
    perplexity: float | None
    seed: int | None
    review_ids: np.ndarray  # [n]
    labels: np.ndarray  # [n] true classes
    texts: list[str]
    classes: list[str]
    maps: list[TsneMap]

    @property
    def disagree(self) -> np.ndarray:
        """[n] bool: the mapped models predict different classes."""
        predicted = np.stack([m.predicted for m in self.maps])
        return (predicted != predicted[0]).any(axis=0)


def tsne_from_result(result: TsneResult, comparison: Comparison) -> TsneMaps | None:
    """The maps of a t-SNE just computed, for the runs the comparison shows."""
    rows = row_by_run(comparison)
    maps = [
        TsneMap(rows[run_key(view.run.path)].label, view.xy, view.probs)
        for view in result.views
        if run_key(view.run.path) in rows
    ]
    if not maps:
        return None
    sample = result.sample
    return TsneMaps(
        source=str(result.out_dir),
        split=sample.split,
        perplexity=result.options.perplexity,
        seed=result.options.seed,
        review_ids=np.asarray(sample.review_ids),
        labels=np.asarray(sample.labels),
        texts=list(sample.texts),
        classes=list(sample.classes),
        maps=maps,
    )


def read_tsne(folder: Path, comparison: Comparison) -> tuple[TsneMaps | None, str | None]:
    """A t-SNE folder of `imdb tsne` (boundary_samples.json, points.csv), for the compared
    runs; or None and why not."""
    from imdb_cli.analysis.embeddings import BOUNDARY_JSON, POINTS_CSV

    try:
        summary = json.loads((folder / BOUNDARY_JSON).read_text(encoding="utf-8"))
        with (folder / POINTS_CSV).open(encoding="utf-8", newline="") as handle:
            points = list(csv.DictReader(handle))
        classes = [str(c) for c in summary["classes"]]
        names = {name: run_key(info["run"]) for name, info in summary["models"].items()}
        reviews = sorted(summary["boundary"], key=lambda r: int(r["review_id"]))
        review_ids = np.asarray([int(r["review_id"]) for r in reviews], dtype=np.int64)
        position = {int(r): i for i, r in enumerate(review_ids.tolist())}
        rows = row_by_run(comparison)
        maps = []
        for name, key in names.items():
            if key not in rows:
                continue
            coords = np.full((len(review_ids), 2), np.nan)
            for point in points:
                if point["model"] == name:
                    coords[position[int(point["review_id"])]] = (
                        float(point["x"]),
                        float(point["y"]),
                    )
            if np.isnan(coords).any():
                raise ValueError(f"{POINTS_CSV} lacks points of {name}")
            probs = np.asarray(
                [[float(r[f"prob_{c}_{name}"]) for c in classes] for r in reviews], dtype=np.float64
            )
            maps.append(TsneMap(rows[key].label, coords, probs))
        labels = np.asarray([int(r["label"]) for r in reviews], dtype=np.int64)
        texts = [str(r.get("text", "")) for r in reviews]
        split = str(summary.get("split", "test"))
        perplexity = summary.get("perplexity")
        seed = summary.get("seed")
    except FileNotFoundError as exc:
        return None, f"no t-SNE in {folder} ({Path(str(exc.filename)).name} missing)"
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, csv.Error) as exc:
        return None, f"{folder}: cannot read the t-SNE ({exc}); rerun `imdb tsne`"
    if not maps:
        shown = ", ".join(f"{m}/{r}" for m, r in names.values())
        return None, f"the t-SNE in {folder} is of other runs ({shown})"
    return (
        TsneMaps(
            source=str(folder),
            split=split,
            perplexity=float(perplexity) if isinstance(perplexity, int | float) else None,
            seed=int(seed) if isinstance(seed, int) else None,
            review_ids=review_ids,
            labels=labels,
            texts=texts,
            classes=classes,
            maps=maps,
        ),
        None,
    )


# --------------------------------------------------------------------------- attention


@dataclass(frozen=True)
class AttentionMap:
    """One model's attention on one review (one layer, mean over heads or one head)."""

    label: str  # the comparison row's label
    review: str  # "review #123", or the name the review was given
    review_id: int | None
    true_label: str | None
    prediction: str  # "positive (P = 0.912)"
    tokens: list[str]
    special: list[bool]
    layer: int
    layer_type: str
    head: str  # "mean" or a head number
    matrix: np.ndarray  # [queries, keys]
    cut_tokens: int
    top_tokens: list[str]  # the content tokens that receive the most attention
    note: str | None  # near-uniform attention: no token stands out


def attention_from_json(
    data: Mapping[str, Any], label: str, review: str, true_label: str | None
) -> AttentionMap:
    """`imdb attention`'s JSON (analysis.attention.to_json): its last layer listed."""
    layer = data["layers"][-1]
    prediction = data["prediction"]
    predicted = str(prediction["label"])
    return AttentionMap(
        label=label,
        review=review,
        review_id=data.get("review_id"),
        true_label=true_label,
        prediction=f"{predicted} (P = {float(prediction['probs'][predicted]):.3f})",
        tokens=[str(t) for t in data["tokens"]],
        special=[bool(s) for s in data["special"]],
        layer=int(layer["layer"]),
        layer_type=str(layer["layer_type"]),
        head=str(layer["head"]),
        matrix=np.asarray(layer["matrix"], dtype=np.float32),
        cut_tokens=int(data.get("cut_tokens", 0)),
        top_tokens=[str(t["token"]) for t in data.get("top_content_tokens", [])],
        note=data.get("top_tokens_note"),
    )


def _review_name(review_id: int | None, fallback: str) -> str:
    return f"review #{review_id}" if review_id is not None else fallback


def _true_label(ledgers: Mapping[str, Ledger], review_id: int | None) -> str | None:
    if review_id is None:
        return None
    for ledger in ledgers.values():
        test = ledger.test
        if test is not None and review_id in test.review_ids:
            return ledger.label_names[test.labels[test.review_ids.index(review_id)]]
    return None


def attention_from_saved(
    saved: Sequence[SavedAttention], comparison: Comparison, ledgers: Mapping[str, Ledger]
) -> tuple[list[AttentionMap], str | None]:
    """`imdb attention`'s results just computed, for the runs the comparison shows."""
    from imdb_cli.analysis.attention import to_json

    rows = row_by_run(comparison)
    found = []
    for item in saved:
        key = run_key(item.result.run.path)
        if key in rows:
            review_id = item.review.review_id
            found.append(
                attention_from_json(
                    to_json(item.result, review_id=review_id),
                    rows[key].label,
                    _review_name(review_id, item.review.name),
                    _true_label(ledgers, review_id),
                )
            )
    if not found:
        return [], None
    return first_reviews(found, saved[0].files[0].parent.parent)


def read_attention(
    folder: Path, comparison: Comparison, ledgers: Mapping[str, Ledger]
) -> tuple[list[AttentionMap], str | None]:
    """The JSON files of an `imdb attention` folder, for the compared runs."""
    rows = row_by_run(comparison)
    files = sorted(folder.glob("*/*.json"))
    if not files:
        return [], f"no attention maps in {folder}"
    found = []
    try:
        for path in files:
            data = json.loads(path.read_text(encoding="utf-8"))
            key = run_key(data["run"])
            if key in rows:
                review_id = data.get("review_id")
                found.append(
                    attention_from_json(
                        data,
                        rows[key].label,
                        _review_name(review_id, path.parent.name),
                        _true_label(ledgers, review_id),
                    )
                )
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError) as exc:
        return [], f"{folder}: cannot read the attention maps ({exc}); rerun `imdb attention`"
    if not found:
        return [], f"the attention maps in {folder} are of other runs"
    order = [row.label for row in comparison.rows]
    return first_reviews(sorted(found, key=lambda m: order.index(m.label)), folder)


def first_reviews(found: list[AttentionMap], folder: Path) -> tuple[list[AttentionMap], str | None]:
    """The maps of the first MAX_ATTENTION_REVIEWS reviews, and where the others are."""
    reviews = list(dict.fromkeys(m.review for m in found))
    shown = [m for review in reviews[:MAX_ATTENTION_REVIEWS] for m in found if m.review == review]
    others = reviews[MAX_ATTENTION_REVIEWS:]
    if not others:
        return shown, None
    return shown, f"the maps of {', '.join(others)} are in {folder}"


# --------------------------------------------------------------------------- reproducing


@dataclass(frozen=True)
class HowToReproduce:
    made_by: Invocation  # the command that wrote the page
    commands: list[Invocation]  # each step as its own command
    versions: list[tuple[str, str]]
    data: list[tuple[str, str]]
    machines: list[tuple[str, str]]  # row label -> machine and its load


def _machines(comparison: Comparison) -> list[tuple[str, str]]:
    return [(row.label, row.recipe.machine.describe()) for row in comparison.rows]


def _data_lines(comparison: Comparison) -> list[tuple[str, str]]:
    seen = dict.fromkeys(
        (row.dataset, row.data_fingerprint, row.split_seed, row.test_samples)
        for row in comparison.rows
    )
    return [
        ("data", f"{name}, fingerprint {fingerprint}, split seed {seed}, {tested:,} test reviews")
        for name, fingerprint, seed, tested in seen
    ]


def _run_versions(ledgers: Mapping[str, Ledger]) -> list[tuple[str, str]]:
    lines = []
    for label, ledger in ledgers.items():
        env = ledger.environment
        found = {"torch": env.torch, "transformers": env.transformers, "python": env.python}
        parts = [f"{name} {version}" for name, version in found.items() if version]
        if parts:
            lines.append((f"{label} trained with", ", ".join(parts)))
    return lines


def for_comparison(
    workspace: Workspace,
    comparison: Comparison,
    ledgers: Mapping[str, Ledger],
    made_by: Invocation,
    compare_command: Invocation,
) -> HowToReproduce:
    """How to make the compared runs again, each seed's, and this page (`imdb report`)."""
    from imdb_cli.runs.caches import prepare_invocation
    from imdb_cli.study.reproduce import versions

    commands: list[Invocation] = []
    for row in comparison.rows:
        prepare = replace(prepare_invocation(ledgers[row.label]), workdir=workspace.root)
        if prepare not in commands:
            commands.append(prepare)
        for curve in row.seed_curves:
            path = Path(row.run_path).parent / curve.run_id
            commands.append(Run(path, read_ledger(path)).train_invocation(workspace.root))
    commands.append(compare_command)
    return HowToReproduce(
        made_by=made_by,
        commands=commands,
        versions=[*versions().items(), *_run_versions(ledgers)],
        data=_data_lines(comparison),
        machines=_machines(comparison),
    )


def for_study(
    study: StudyReport, ledgers: Mapping[str, Ledger], made_by: Invocation
) -> HowToReproduce:
    """`imdb reproduce`'s command and steps, versions and data."""
    assert study.comparison is not None
    data = _data_lines(study.comparison)
    if study.data:
        d = study.data
        sizes = " / ".join(f"{split} {int(n):,}" for split, n in d.get("sizes", {}).items())
        sample = f", a seeded sample of {d['limit']:,} reviews" if d.get("limit") else ""
        data = [("source", f"{d.get('source')}{sample}"), ("reviews", sizes), *data]
    return HowToReproduce(
        made_by=made_by,
        commands=[study.command, *study.steps],
        versions=[*study.versions.items(), *_run_versions(ledgers)],
        data=data,
        machines=_machines(study.comparison),
    )
