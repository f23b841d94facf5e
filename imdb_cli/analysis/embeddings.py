"""Where the errors lie: pooled embeddings, their t-SNE map, and the reviews worth reading.

For each run: its best checkpoint embeds a seeded sample of one split (the same reviews for
every model) with training.inference.predict, so the probabilities and the pooled
embeddings come from the same forward pass per batch, and the probabilities are exactly what `imdb
evaluate` computes. t-SNE (scikit-learn, seeded, PCA init) maps each model's embeddings
to 2-d on their own; t-SNE distances are not meaningful, so nothing here is chosen by
them:

- boundary samples: smallest margin, the most probable class's probability minus the
  second's (for two classes 2|p - 0.5|, so the ranking is the one by |p - 0.5|);
- confident errors: misclassified with the largest margin;
- disagreements (two or more models): the models' predicted classes differ, largest
  spread of probabilities first (over the classes, the largest gap between two models).

Results go to `<workdir>/analysis/tsne/<timestamp>/` and `analysis/tsne/latest` names it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imdb_cli.analysis import folders, plotting
from imdb_cli.console import info, progress, warn
from imdb_cli.data.tokenized import TokenizedCache, TokenizedSplit, load_split, load_texts
from imdb_cli.device import choose_device, choose_precision
from imdb_cli.errors import ImdbError
from imdb_cli.files import write_atomic, write_json_atomic
from imdb_cli.runs import checkpoints
from imdb_cli.runs.caches import cache_of_run
from imdb_cli.runs.run import Run
from imdb_cli.training.inference import predict
from imdb_cli.workspace import Workspace

KIND = "tsne"
BOUNDARY_CSV = "boundary_samples.csv"
BOUNDARY_JSON = "boundary_samples.json"
DISAGREEMENTS_CSV = "disagreements.csv"
POINTS_CSV = "points.csv"
EXCERPT_CHARS = 120
MIN_SAMPLES = 5  # t-SNE needs a few points; perplexity must also be below the count
DEFAULT_PERPLEXITY = 30.0


def default_perplexity(count: int) -> float:
    """30, or a third of the sample for small ones: t-SNE needs fewer neighbours than
    points, and a small split (the demo's, a small data set's) should map, not fail."""
    return min(DEFAULT_PERPLEXITY, max(2.0, (count - 1) / 3))


@dataclass(frozen=True)
class TsneOptions:
    split: str = "test"
    n_samples: int = 1000
    perplexity: float | None = None  # None: default_perplexity of the sample's size
    seed: int = 42
    batch_size: int = 64
    device: str = "auto"
    annotate: int = 5  # boundary samples and confident errors labelled in each panel

    def check(self) -> None:
        if self.split not in ("val", "test"):
            raise ImdbError(f"--split must be val or test (got {self.split!r})")
        if self.n_samples < MIN_SAMPLES:
            raise ImdbError(f"--n-samples must be at least {MIN_SAMPLES} (got {self.n_samples})")
        if self.perplexity is not None and not self.perplexity > 0:
            raise ImdbError(f"--perplexity must be positive (got {self.perplexity})")
        if self.batch_size < 1:
            raise ImdbError(f"--batch-size must be at least 1 (got {self.batch_size})")
        if self.seed < 0:
            raise ImdbError(f"--seed must not be negative (got {self.seed})")


@dataclass(frozen=True)
class Sample:
    """The reviews every model is shown, in split order."""

    split: str
    review_ids: np.ndarray  # int64 [n]
    texts: list[str]
    labels: np.ndarray  # int64 [n]
    split_size: int
    classes: list[str]  # class names, by class id (the runs' label names)


def margins(probs: np.ndarray) -> np.ndarray:
    """Per row of class probabilities: the largest minus the second largest. How far the
    prediction is from changing; for two classes 2|p - 0.5|."""
    top = np.sort(np.asarray(probs, dtype=np.float64), axis=-1)
    return top[..., -1] - top[..., -2]


@dataclass(frozen=True)
class ModelView:
    """One run's view of the sample."""

    name: str  # model key, or model-runid when two runs of one model are compared
    run: Run
    checkpoint: Path
    probs: np.ndarray  # [n, classes] class probabilities
    pooled: np.ndarray  # masked-mean embeddings [n, hidden]
    coords: np.ndarray | None = None  # t-SNE [n, 2], once projected

    @property
    def xy(self) -> np.ndarray:
        if self.coords is None:
            raise RuntimeError(f"{self.name}: t-SNE has not been run")  # a bug, not user input
        return self.coords

    @property
    def predictions(self) -> np.ndarray:
        """The most probable class (ties to the lower id, as training's argmax)."""
        return self.probs.argmax(axis=1).astype(np.int64)

    @property
    def margins(self) -> np.ndarray:
        return margins(self.probs)


@dataclass(frozen=True)
class ReviewRow:
    """One sampled review and what every model made of it."""

    review_id: int
    label: int  # the true class
    text: str
    probs: dict[str, np.ndarray]  # model name -> class probabilities
    classes: Sequence[str]  # class names, by class id

    @property
    def predicted(self) -> dict[str, int]:
        return {name: int(np.argmax(p)) for name, p in self.probs.items()}

    @property
    def correct(self) -> dict[str, bool]:
        return {name: guess == self.label for name, guess in self.predicted.items()}

    @property
    def margins(self) -> dict[str, float]:
        return {name: float(margins(p)) for name, p in self.probs.items()}

    @property
    def margin(self) -> float:
        """The smallest margin over the models: how close the review is to some boundary."""
        return min(self.margins.values())

    @property
    def disagree(self) -> bool:
        return len(set(self.predicted.values())) > 1

    @property
    def spread(self) -> float:
        """The largest gap between two models' probabilities of one class."""
        stacked = np.stack(list(self.probs.values()))
        return float((stacked.max(axis=0) - stacked.min(axis=0)).max())

    @property
    def excerpt(self) -> str:
        return excerpt(self.text)

    def to_dict(self, *, with_text: bool = True) -> dict[str, Any]:
        row: dict[str, Any] = {
            "review_id": self.review_id,
            "label": self.label,
            "label_name": self.classes[self.label],
            "excerpt": self.excerpt,
            "margin": round(self.margin, 6),
            "disagree": self.disagree,
            "spread": round(self.spread, 6),
        }
        for name, p in self.probs.items():
            row[f"predicted_{name}"] = self.classes[self.predicted[name]]
            for class_id, class_name in enumerate(self.classes):
                row[f"prob_{class_name}_{name}"] = round(float(p[class_id]), 6)
            row[f"margin_{name}"] = round(self.margins[name], 6)
            row[f"correct_{name}"] = self.correct[name]
        if with_text:
            row["text"] = self.text
        return row


@dataclass(frozen=True)
class TsneResult:
    options: TsneOptions
    sample: Sample
    views: list[ModelView]
    boundary: list[ReviewRow]  # every sampled review, smallest margin first
    confident_errors: dict[str, list[ReviewRow]]  # model name -> its errors, surest first
    disagreements: list[ReviewRow]  # largest spread first; empty with one model
    out_dir: Path
    files: list[Path]

    def accuracy(self, view: ModelView) -> float:
        return float((view.predictions == self.sample.labels).mean())

    @property
    def dataset(self) -> str:
        """The data set the sample is from (every view's: check_same_reviews made sure)."""
        return self.views[0].run.ledger.dataset


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    flat = re.sub(r"\s+", " ", re.sub(r"<br\s*/?>", " ", text)).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def short_id(review_id: int) -> str:
    return f"#{review_id}"


# --------------------------------------------------------------------------- inputs


def check_same_reviews(runs: Sequence[Run], caches: Sequence[TokenizedCache]) -> None:
    """Models are compared on the same reviews: same data, same split seed."""
    first_run, first = runs[0], caches[0]
    for run, cache in zip(runs[1:], caches[1:], strict=True):
        if (cache.data_fingerprint, cache.seed) != (first.data_fingerprint, first.seed):
            raise ImdbError(
                f"runs {first_run.describe()} and {run.describe()} were trained on different "
                f"data (fingerprint {first.data_fingerprint} seed {first.seed} vs "
                f"{cache.data_fingerprint} seed {cache.seed}); t-SNE compares models on the "
                "same reviews"
            )


def draw_sample(cache: TokenizedCache, options: TsneOptions) -> Sample:
    """A seeded sample of the split, kept in split order; the whole split if it is smaller."""
    review_ids, texts, labels = load_texts(cache, options.split)
    size = len(review_ids)
    count = options.n_samples
    if count > size:
        warn(f"--n-samples {count} is more than the {size} {options.split} reviews; using all")
        count = size
    if options.perplexity is not None and count <= options.perplexity:
        raise ImdbError(
            f"--perplexity {options.perplexity:g} must be less than the number of samples "
            f"({count}); lower it or raise --n-samples"
        )
    rng = np.random.default_rng(options.seed)
    rows = np.sort(rng.choice(size, size=count, replace=False))
    return Sample(
        split=options.split,
        review_ids=review_ids[rows],
        texts=[texts[i] for i in rows.tolist()],
        labels=labels[rows],
        split_size=size,
        classes=cache.label_names,
    )


def rows_of(split: TokenizedSplit, review_ids: np.ndarray, where: str) -> np.ndarray:
    """Positions in `split` of `review_ids`, in that order."""
    position = {int(r): i for i, r in enumerate(split.review_ids.tolist())}
    missing = [int(r) for r in review_ids.tolist() if int(r) not in position]
    if missing:
        raise ImdbError(f"{where}: review {missing[0]} is not in this split; rerun `imdb prepare`")
    return np.asarray([position[int(r)] for r in review_ids.tolist()], dtype=np.int64)


# --------------------------------------------------------------------------- computing


def embed(
    run: Run,
    name: str,
    cache: TokenizedCache,
    sample: Sample,
    options: TsneOptions,
    device: torch.device,
) -> ModelView:
    """Probabilities and pooled embeddings of the sample from the run's best checkpoint."""
    split = load_split(cache, sample.split)
    tokens = split.subset(rows_of(split, sample.review_ids, str(cache.path)))
    # The run's own precision, as `imdb evaluate` uses: the probabilities here are its.
    config = run.ledger.config
    model, checkpoint = checkpoints.load_classifier(run)
    model.to(device)
    predictions = predict(
        model,
        tokens,
        batch_size=options.batch_size,
        device=device,
        precision=choose_precision(config.precision, device),
        keep_pooled=True,
        description=f"embedding {name}",
    )
    if predictions.pooled is None:
        raise ImdbError(f"model '{name}': no pooled embeddings came back from the forward pass")
    if not np.array_equal(np.asarray(predictions.review_ids), sample.review_ids):
        raise ImdbError(f"model '{name}': predictions came back for other reviews than asked")
    return ModelView(
        name=name,
        run=run,
        checkpoint=checkpoint,
        probs=np.asarray(predictions.probs, dtype=np.float64),
        pooled=np.asarray(predictions.pooled, dtype=np.float32),
    )


def project(pooled: np.ndarray, perplexity: float, seed: int) -> np.ndarray:
    """2-d t-SNE of the embeddings: seeded, PCA init, so the same seed gives the same map."""
    from sklearn.manifold import TSNE  # slow to import; only this command needs it
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

    tsne = TSNE(
        n_components=2,
        perplexity=perplexity,
        init="pca",
        learning_rate="auto",
        random_state=seed,
    )
    # One OpenMP thread: torch's threads may still be spinning after the forward passes,
    # and t-SNE's threads competing with them are many times slower than one thread. The
    # map is bit-identical either way, so this costs nothing in reproducibility.
    with threadpool_limits(limits=1, user_api="openmp"):
        coords = tsne.fit_transform(pooled.astype(np.float64))
    return np.asarray(coords, dtype=np.float64)


def review_rows(sample: Sample, views: Sequence[ModelView]) -> list[ReviewRow]:
    return [
        ReviewRow(
            review_id=int(review_id),
            label=int(sample.labels[i]),
            text=sample.texts[i],
            probs={view.name: view.probs[i] for view in views},
            classes=sample.classes,
        )
        for i, review_id in enumerate(sample.review_ids.tolist())
    ]


def boundary_order(rows: Sequence[ReviewRow]) -> list[ReviewRow]:
    """Smallest margin first; ties by review id so the order is reproducible."""
    return sorted(rows, key=lambda row: (row.margin, row.review_id))


def confident_errors(rows: Sequence[ReviewRow], name: str) -> list[ReviewRow]:
    wrong = [row for row in rows if not row.correct[name]]
    return sorted(wrong, key=lambda row: (-row.margins[name], row.review_id))


def disagreements(rows: Sequence[ReviewRow]) -> list[ReviewRow]:
    return sorted(
        (row for row in rows if row.disagree), key=lambda row: (-row.spread, row.review_id)
    )


def compute_tsne(workspace: Workspace, runs: Sequence[Run], options: TsneOptions) -> TsneResult:
    """Embed, project, rank and save; the one core function behind `imdb tsne`."""
    options.check()
    if not runs:
        raise ImdbError("give at least one model")
    names = folders.run_labels(runs)
    device = choose_device(options.device)
    caches = [cache_of_run(workspace, run.ledger) for run in runs]
    check_same_reviews(runs, caches)
    sample = draw_sample(caches[0], options)
    perplexity = options.perplexity
    if perplexity is None:
        perplexity = default_perplexity(len(sample.review_ids))
    options = replace(options, perplexity=perplexity)
    info(
        f"{len(sample.review_ids)} of {sample.split_size} {options.split} reviews "
        f"(seed {options.seed})"
    )
    views = [
        embed(run, name, cache, sample, options, device)
        for run, name, cache in zip(runs, names, caches, strict=True)
    ]
    with progress(unit="models") as bar:
        task = bar.add_task("t-SNE", total=len(views))
        projected = []
        for view in views:
            bar.update(task, description=f"t-SNE {view.name}")
            coords = project(view.pooled, perplexity, options.seed)
            projected.append(replace(view, coords=coords))
            bar.advance(task)
        bar.update(task, description="t-SNE")
    rows = review_rows(sample, projected)
    out_dir = folders.new_output_dir(workspace, KIND)
    result = TsneResult(
        options=options,
        sample=sample,
        views=projected,
        boundary=boundary_order(rows),
        confident_errors={view.name: confident_errors(rows, view.name) for view in projected},
        disagreements=disagreements(rows) if len(projected) > 1 else [],
        out_dir=out_dir,
        files=[],
    )
    result.files.extend(write_results(result))
    folders.point_latest(out_dir)
    return result


# --------------------------------------------------------------------------- writing


def _csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in columns})
    return buffer.getvalue()


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Path:
    text = _csv_text(rows, columns)

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    write_atomic(path, write)
    return path


def row_columns(names: Sequence[str], classes: Sequence[str]) -> list[str]:
    columns = ["rank", "review_id", "label", "label_name", "margin", "disagree", "spread"]
    for name in names:
        columns.append(f"predicted_{name}")
        columns += [f"prob_{class_name}_{name}" for class_name in classes]
        columns += [f"margin_{name}", f"correct_{name}"]
    return [*columns, "excerpt", "text"]


def _ranked(rows: Sequence[ReviewRow]) -> list[dict[str, Any]]:
    return [{"rank": rank, **row.to_dict()} for rank, row in enumerate(rows, start=1)]


def panels(result: TsneResult) -> list[plotting.TsnePanel]:
    sample = result.sample
    index = {int(r): i for i, r in enumerate(sample.review_ids.tolist())}
    disagreeing = {row.review_id for row in result.disagreements}
    disagree_mask = np.asarray([r in disagreeing for r in index], dtype=bool)
    k = result.options.annotate
    built = []
    for view in result.views:
        order = np.lexsort((sample.review_ids, view.margins))
        correct = view.predictions == sample.labels
        errors = result.confident_errors[view.name][:k]
        built.append(
            plotting.TsnePanel(
                model=view.name,
                title=(
                    f"{view.name} · {sample.split} · n={len(sample.review_ids)} · "
                    f"accuracy {result.accuracy(view):.1%}\n"
                    f"run {view.run.run_id}, {view.checkpoint.name}"
                ),
                coords=view.xy,
                labels=sample.labels,
                correct=correct,
                short_ids=[short_id(int(r)) for r in sample.review_ids.tolist()],
                boundary=[int(i) for i in order[:k]],
                confident_errors=[index[row.review_id] for row in errors],
                class_names=view.run.ledger.label_names,
                disagree=disagree_mask if len(result.views) > 1 else None,
            )
        )
    return built


def write_results(result: TsneResult) -> list[Path]:
    out = result.out_dir
    names = [view.name for view in result.views]
    classes = result.sample.classes
    columns = row_columns(names, classes)
    files = [write_csv(out / BOUNDARY_CSV, _ranked(result.boundary), columns)]
    if len(result.views) > 1:
        files.append(write_csv(out / DISAGREEMENTS_CSV, _ranked(result.disagreements), columns))
    points = []
    for view in result.views:
        for i, review_id in enumerate(result.sample.review_ids.tolist()):
            label = int(result.sample.labels[i])
            points.append(
                {
                    "model": view.name,
                    "review_id": review_id,
                    "label": label,
                    "label_name": classes[label],
                    "predicted": classes[int(view.predictions[i])],
                    **{
                        f"prob_{name}": round(float(view.probs[i, c]), 6)
                        for c, name in enumerate(classes)
                    },
                    "x": round(float(view.xy[i, 0]), 4),
                    "y": round(float(view.xy[i, 1]), 4),
                }
            )
    point_columns = ["model", "review_id", "label", "label_name", "predicted"]
    point_columns += [f"prob_{name}" for name in classes] + ["x", "y"]
    files.append(write_csv(out / POINTS_CSV, points, point_columns))
    options = result.options
    summary = {
        "dataset": result.dataset,
        "split": options.split,
        "n_samples": len(result.sample.review_ids),
        "split_size": result.sample.split_size,
        "classes": classes,
        "seed": options.seed,
        "perplexity": options.perplexity,
        "models": {
            view.name: {
                "model": view.run.model,
                "run": str(view.run.path),
                "checkpoint": str(view.checkpoint),
                "accuracy": round(result.accuracy(view), 6),
                "errors": int((view.predictions != result.sample.labels).sum()),
            }
            for view in result.views
        },
        "boundary": [row.to_dict() for row in result.boundary],
        "confident_errors": {
            name: [row.review_id for row in rows] for name, rows in result.confident_errors.items()
        },
        "disagreements": [row.review_id for row in result.disagreements],
    }
    write_json_atomic(out / BOUNDARY_JSON, summary)
    files.append(out / BOUNDARY_JSON)
    built = panels(result)
    for panel in built:
        fig = plotting.tsne_figure([panel])
        files.append(plotting.save_figure(fig, out / f"tsne_{folders.safe_name(panel.model)}.png"))
    if len(built) > 1:
        fig = plotting.tsne_figure(
            built,
            suptitle=(
                f"{' vs '.join(names)} on the same {len(result.sample.review_ids)} "
                f"{options.split} reviews ({len(result.disagreements)} disagreements); "
                "each map is its own t-SNE"
            ),
        )
        files.append(plotting.save_figure(fig, out / "tsne_side_by_side.png"))
    return files


# --------------------------------------------------------------------------- reading back


@dataclass(frozen=True)
class ListedReview:
    review_id: int
    text: str
    label: int
    disagree: bool


def latest_boundary_csv(workspace: Workspace) -> Path:
    latest = folders.latest_dir(workspace, KIND)
    path = latest / BOUNDARY_CSV if latest is not None else None
    if path is None or not path.is_file():
        raise ImdbError(
            f"--from-errors: no {BOUNDARY_CSV} in {workspace.analysis / KIND / folders.LATEST}; "
            "run `imdb tsne MODEL [MODEL ...]` first"
        )
    return path


def reviews_from_errors(workspace: Workspace, count: int) -> tuple[Path, list[ListedReview]]:
    """`count` reviews of the latest boundary_samples.csv: disagreements (largest spread
    first), then the rest by margin."""
    if count < 1:
        raise ImdbError(f"--from-errors must be at least 1 (got {count})")
    path = latest_boundary_csv(workspace)
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle, strict=True)
            rows = list(reader)
        missing = {"review_id", "text", "label", "disagree", "spread"} - set(
            reader.fieldnames or []
        )
        if missing or not rows:
            raise ImdbError(
                f"{path}: holds no reviews (truncated?; missing: "
                f"{', '.join(sorted(missing)) or 'rows'}); rerun `imdb tsne`"
            )
        short = next((n for n, row in enumerate(rows, 1) if None in row.values()), None)
        if short is not None:
            raise ImdbError(
                f"{path}: review row {short} is cut short (truncated?); rerun `imdb tsne`"
            )
        listed = [
            (
                float(row["spread"]),
                ListedReview(
                    review_id=int(row["review_id"]),
                    text=row["text"],
                    label=int(row["label"]),
                    disagree=row["disagree"] == "True",
                ),
            )
            for row in rows
        ]
    except (OSError, UnicodeDecodeError, KeyError, ValueError, TypeError, csv.Error) as exc:
        raise ImdbError(f"{path}: cannot read ({exc}); rerun `imdb tsne`") from exc
    chosen = _errors_first(listed, count)
    if len(chosen) < count:
        warn(f"--from-errors {count}: {path} lists only {len(chosen)} reviews")
    return path, chosen


def check_sampled_from(csv_path: Path, runs: Sequence[Run]) -> None:
    """Refuse runs of another data set than the t-SNE's sample (its labels mean other
    classes there), naming the `--dataset` that finds the right runs. A summary written
    before it recorded its data set is taken as it is."""
    try:
        summary = json.loads((csv_path.parent / BOUNDARY_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    sampled = summary.get("dataset") if isinstance(summary, dict) else None
    if not isinstance(sampled, str):
        return
    for run in runs:
        if run.ledger.dataset != sampled:
            raise ImdbError(
                f"--from-errors: the latest t-SNE ({csv_path.parent}) sampled reviews of "
                f"{sampled}, but {run.model}/{run.run_id} was trained on {run.ledger.dataset}; "
                f"add --dataset {sampled}, or run `imdb tsne` on these runs first"
            )


def reviews_of(result: TsneResult, count: int) -> list[ListedReview]:
    """What `reviews_from_errors` reads from the t-SNE's files, from the result itself (for
    a caller that just computed it: `imdb reproduce`)."""
    listed = [
        (row.spread, ListedReview(row.review_id, row.text, row.label, row.disagree))
        for row in result.boundary
    ]
    return _errors_first(listed, count)


def _errors_first(listed: list[tuple[float, ListedReview]], count: int) -> list[ListedReview]:
    """Disagreements (largest spread first), then the rest in their order (by margin)."""
    first = sorted((pair for pair in listed if pair[1].disagree), key=lambda pair: -pair[0])
    rest = [pair for pair in listed if not pair[1].disagree]
    return [review for _, review in [*first, *rest][:count]]
