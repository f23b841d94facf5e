"""The comparison table: runs -> rows with confidence intervals, seeds and paired tests.

`compare` reads ledgers only (never checkpoints or caches): every number shown is a
ledger's number, except the statistics computed from them here (Wilson interval,
McNemar, mean ± std over seeds). The same `Comparison` renders as a rich table,
markdown, csv or json, and as the table of `imdb reproduce`'s report.md.

Selection rules (one place, so the help text, the report and the tests agree):
- a model key selects that model's latest completed run, the one shown and paired; its
  test accuracy, test loss and best validation accuracy are also given as mean ± std over
  every completed run of the model with the same settings (the seed aside) tested on the
  same test reviews;
- a run folder or `model/run-id` selects exactly that run (no aggregation);
- no argument selects every model of the workspace that has a completed run.
Runs that failed, are running, were interrupted or have no test result are listed as not
comparable, never shown as results.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from imdb_cli import registry, stats
from imdb_cli.errors import ImdbError
from imdb_cli.files import write_atomic
from imdb_cli.ledger import Ledger, TestRecord
from imdb_cli.runs import Run, latest_run, list_runs, resolve_run
from imdb_cli.workspace import Workspace

CONFIDENCE = 0.95
ALPHA = 0.05
FORMATS = ("table", "markdown", "csv", "json")
# Settings that do not change what a run learns, so runs differing only in them are seeds
# of the same experiment.
_NOT_SETTINGS = frozenset({"seed", "eval_batch_size", "device", "compile", "attention", "tf32"})


# --------------------------------------------------------------------------- data model


@dataclass(frozen=True)
class Spread:
    """A metric over several runs: mean and sample std (ddof=1; None for one run)."""

    mean: float
    std: float | None
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        mean, std = stats.mean_std(values)
        return cls(mean, std, len(values))


@dataclass(frozen=True)
class ModelRow:
    """One line of the table: the shown run of a model, plus its spread over seeds."""

    label: str  # model key, or model/run-id when a model has several rows
    model: str
    run_id: str
    run_path: str
    best_val_acc: float | None
    best_epoch: int | None
    test_epoch: int
    test_loss: float
    test_acc: float
    test_samples: int
    test_correct: int
    ci_low: float
    ci_high: float
    parameters: int
    train_seconds: float
    train_samples_per_s: float
    max_length: int | None
    truncation: str | None
    data_fingerprint: str | None
    split_seed: int | None
    seed: int | None  # the training seed of the shown run
    runs: int  # how many runs the spreads are over (the shown one included)
    run_ids: list[str]
    test_acc_spread: Spread
    test_loss_spread: Spread
    best_val_acc_spread: Spread | None
    best: bool = False  # highest test accuracy of the table

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PairResult:
    """McNemar's test of two rows scored on the same test reviews."""

    a: str
    b: str
    acc_a: float
    acc_b: float
    mcnemar: stats.McNemarResult

    @property
    def significant(self) -> bool:
        return self.mcnemar.p_value < ALPHA

    @property
    def winner(self) -> str | None:
        if not self.significant:
            return None
        return self.a if self.mcnemar.b > self.mcnemar.c else self.b

    def verdict(self) -> str:
        m = self.mcnemar
        p = format_p(m.p_value)
        if self.winner is None:
            return (
                f"{self.a} vs {self.b}: no significant difference at {ALPHA} "
                f"({self.acc_a:.4f} vs {self.acc_b:.4f}, McNemar p = {p}, b={m.b}, c={m.c})"
            )
        # Stated winner first, so b counts the reviews only the winner got right.
        if self.winner == self.a:
            win, lose, acc_w, acc_l, b, c = self.a, self.b, self.acc_a, self.acc_b, m.b, m.c
        else:
            win, lose, acc_w, acc_l, b, c = self.b, self.a, self.acc_b, self.acc_a, m.c, m.b
        return f"{win} beats {lose}: {acc_w:.4f} vs {acc_l:.4f}, McNemar p = {p} (b={b}, c={c})"

    def to_dict(self) -> dict[str, Any]:
        m = self.mcnemar
        return {
            "a": self.a,
            "b": self.b,
            "acc_a": self.acc_a,
            "acc_b": self.acc_b,
            "reviews": m.n,
            "a_right_b_wrong": m.b,
            "a_wrong_b_right": m.c,
            "p_value": m.p_value,
            "test": m.method,
            "chi2": m.statistic,
            "significant": self.significant,
            "winner": self.winner,
            "verdict": self.verdict(),
        }


@dataclass(frozen=True)
class Unpaired:
    a: str
    b: str
    reason: str

    def message(self) -> str:
        return f"{self.a} and {self.b} {self.reason}: shown unpaired"


@dataclass(frozen=True)
class NotComparable:
    run: str  # model/run-id
    path: str
    status: str
    reason: str

    def message(self) -> str:
        return f"{self.run}: {self.reason}"


@dataclass
class Comparison:
    rows: list[ModelRow]
    pairs: list[PairResult] = field(default_factory=list)
    unpaired: list[Unpaired] = field(default_factory=list)
    not_comparable: list[NotComparable] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "confidence": CONFIDENCE,
            "ci_method": stats.CI_METHOD,
            "alpha": ALPHA,
            "paired_test": stats.MCNEMAR_METHOD,
            "models": [r.to_dict() for r in self.rows],
            "pairs": [p.to_dict() for p in self.pairs],
            "unpaired": [asdict(u) | {"message": u.message()} for u in self.unpaired],
            "not_comparable": [asdict(n) for n in self.not_comparable],
            "notes": self.notes,
        }


@dataclass(frozen=True)
class Selection:
    """A run to show, and the runs its spread over seeds may draw on."""

    run: Run
    seed_candidates: tuple[Run, ...] = ()


# --------------------------------------------------------------------------- selection


def select_runs(
    workspace: Workspace, targets: Sequence[str]
) -> tuple[list[Selection], list[NotComparable]]:
    """Resolve what the user typed (model keys, `model/run-id`, run folders) into runs."""
    if not targets:
        targets = _models_with_completed_runs(workspace)
        if not targets:
            raise ImdbError(
                f"no completed runs in {workspace.runs}; make one with `imdb train MODEL`"
            )
    selections: list[Selection] = []
    rejected: list[NotComparable] = []
    seen: set[Path] = set()
    for target in targets:
        is_model_key = (
            "/" not in target
            and not Path(target).is_dir()
            and target in registry.known_model_keys()
        )
        run = resolve_run(workspace, target)  # raises with the runs that exist
        if run.path.resolve() in seen:
            continue
        seen.add(run.path.resolve())
        problem = why_not_comparable(run)
        if problem is not None:
            rejected.append(problem)
            continue
        candidates = tuple(list_runs(workspace, run.model)) if is_model_key else (run,)
        selections.append(Selection(run, candidates))
    return selections, rejected


def _models_with_completed_runs(workspace: Workspace) -> list[str]:
    if not workspace.runs.is_dir():
        return []
    keys = sorted(p.name for p in workspace.runs.iterdir() if p.is_dir())
    known = set(registry.known_model_keys())
    return [k for k in keys if k in known and latest_run(workspace, k) is not None]


def why_not_comparable(run: Run) -> NotComparable | None:
    ledger = run.ledger
    name = f"{ledger.model}/{ledger.run_id}"
    done = len(ledger.epochs)
    reason: str | None
    if ledger.status == "running":
        reason = f"still running ({done} epoch(s) done); not a result yet"
    elif ledger.status == "failed":
        reason = f"failed ({ledger.error or 'no error recorded'}); not a result"
    elif ledger.status == "interrupted":
        reason = (
            f"interrupted after {done} epoch(s); finish it with "
            f"`imdb train {ledger.model} --resume {run.path}`"
        )
    elif ledger.test is None:
        reason = "completed but its ledger holds no test result"
    else:
        reason = None
    if reason is None:
        return None
    return NotComparable(name, str(run.path), ledger.status, reason)


# --------------------------------------------------------------------------- building


def build_comparison(
    selections: Sequence[Selection], not_comparable: Sequence[NotComparable] = ()
) -> Comparison:
    if not selections:
        listed = "; ".join(n.message() for n in not_comparable)
        raise ImdbError(f"nothing to compare: {listed}" if listed else "nothing to compare")
    counts: dict[str, int] = {}
    for selection in selections:
        counts[selection.run.model] = counts.get(selection.run.model, 0) + 1
    comparison = Comparison(rows=[], not_comparable=list(not_comparable))
    ledgers: dict[str, Ledger] = {}
    for selection in selections:
        run = selection.run
        label = run.model if counts[run.model] == 1 else f"{run.model}/{run.run_id}"
        seeds, left_out = _same_experiment(run, selection.seed_candidates)
        if left_out:
            comparison.notes.append(
                f"{label}: {left_out} other completed run(s) with different settings or test "
                "reviews left out of mean ± std"
            )
        comparison.rows.append(_row(label, run, seeds))
        ledgers[label] = run.ledger
        mismatch = _prediction_mismatch(run.ledger)
        if mismatch is not None:
            comparison.notes.append(f"{label}: {mismatch}")
    top = max(r.test_acc for r in comparison.rows)
    comparison.rows = [replace(r, best=r.test_acc == top) for r in comparison.rows]
    labels = [r.label for r in comparison.rows]
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            pair = pair_runs(a, ledgers[a], b, ledgers[b])
            if isinstance(pair, PairResult):
                comparison.pairs.append(pair)
            else:
                comparison.unpaired.append(pair)
    return comparison


def _settings(ledger: Ledger) -> dict[str, Any]:
    return {k: v for k, v in ledger.config.items() if k not in _NOT_SETTINGS}


def _same_experiment(run: Run, candidates: Sequence[Run]) -> tuple[list[Run], int]:
    """The completed, tested runs that differ from `run` only by seed (run first)."""
    test = run.ledger.test
    assert test is not None
    reviews = sorted(test.review_ids)
    same = [run]
    left_out = 0
    for other in candidates:
        if other.path.resolve() == run.path.resolve() or other.ledger.status != "completed":
            continue
        other_test = other.ledger.test
        if (
            other_test is not None
            and _settings(other.ledger) == _settings(run.ledger)
            and other.ledger.data.get("data_fingerprint") == run.ledger.data.get("data_fingerprint")
            and sorted(other_test.review_ids) == reviews
        ):
            same.append(other)
        else:
            left_out += 1
    return same, left_out


def _row(label: str, run: Run, seeds: Sequence[Run]) -> ModelRow:
    ledger = run.ledger
    test = ledger.test
    assert test is not None
    if test.samples < 1:
        raise ImdbError(f"{run.path}: test result over 0 reviews")
    correct = round(test.acc * test.samples)
    low, high = stats.wilson_interval(correct, test.samples, CONFIDENCE)
    tests = [s.ledger.test for s in seeds if s.ledger.test is not None]
    vals = [s.ledger.best_val_acc for s in seeds if s.ledger.best_val_acc is not None]
    return ModelRow(
        label=label,
        model=ledger.model,
        run_id=ledger.run_id,
        run_path=str(run.path),
        best_val_acc=ledger.best_val_acc,
        best_epoch=ledger.best_epoch,
        test_epoch=test.epoch,
        test_loss=test.loss,
        test_acc=test.acc,
        test_samples=test.samples,
        test_correct=correct,
        ci_low=low,
        ci_high=high,
        parameters=ledger.parameters,
        train_seconds=ledger.train_seconds,
        train_samples_per_s=ledger.train_samples_per_s,
        max_length=_int_or_none(ledger.data.get("max_length", ledger.config.get("max_length"))),
        truncation=ledger.data.get("truncation", ledger.config.get("truncation")),
        data_fingerprint=ledger.data.get("data_fingerprint"),
        split_seed=_int_or_none(ledger.data.get("seed")),
        seed=_int_or_none(ledger.config.get("seed")),
        runs=len(seeds),
        run_ids=[s.run_id for s in seeds],
        test_acc_spread=Spread.of([t.acc for t in tests]),
        test_loss_spread=Spread.of([t.loss for t in tests]),
        best_val_acc_spread=Spread.of(vals) if len(vals) == len(seeds) else None,
    )


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def predicted_positive(prob: float) -> bool:
    """The training loop's prediction: argmax of two logits, so a tie (p = 0.5) is negative."""
    return prob > 0.5


def _correctness(test: TestRecord) -> dict[int, tuple[int, bool]]:
    return {
        int(rid): (int(label), predicted_positive(prob) == bool(label))
        for rid, label, prob in zip(test.review_ids, test.labels, test.probs, strict=False)
    }


def _prediction_mismatch(ledger: Ledger) -> str | None:
    """The per-review predictions should reproduce the ledger's accuracy; say so if not."""
    test = ledger.test
    if test is None or not test.review_ids:
        return None
    if not len(test.review_ids) == len(test.labels) == len(test.probs) == test.samples:
        return (
            f"ledger holds {len(test.review_ids)} review ids, {len(test.labels)} labels and "
            f"{len(test.probs)} probabilities for {test.samples} test reviews"
        )
    correct = sum(ok for _, ok in _correctness(test).values())
    if correct != round(test.acc * test.samples):
        return (
            f"per-review predictions give test acc {correct / test.samples:.4f} but the "
            f"ledger says {test.acc:.4f}"
        )
    return None


def pair_runs(a: str, ledger_a: Ledger, b: str, ledger_b: Ledger) -> PairResult | Unpaired:
    """McNemar on the reviews both were tested on, or why they cannot be paired."""
    test_a, test_b = ledger_a.test, ledger_b.test
    assert test_a is not None and test_b is not None
    for label, test in ((a, test_a), (b, test_b)):
        if not test.review_ids or len(test.review_ids) != len(test.probs):
            return Unpaired(a, b, f"cannot be paired ({label} has no per-review test predictions)")
    data_a, data_b = ledger_a.data, ledger_b.data
    for key, what in (("data_fingerprint", "data fingerprint"), ("seed", "split seed")):
        va, vb = data_a.get(key), data_b.get(key)
        if va is not None and vb is not None and va != vb:
            return Unpaired(a, b, f"were tested on different test splits ({what} {va} vs {vb})")
    right_a, right_b = _correctness(test_a), _correctness(test_b)
    if set(right_a) != set(right_b):
        shared = len(set(right_a) & set(right_b))
        return Unpaired(
            a,
            b,
            f"were tested on different test reviews ({len(right_a)} vs {len(right_b)} "
            f"reviews, {shared} shared)",
        )
    disagree = sum(1 for rid in right_a if right_a[rid][0] != right_b[rid][0])
    if disagree:
        return Unpaired(a, b, f"disagree on the labels of {disagree} test reviews")
    ids = sorted(right_a)
    result = stats.mcnemar([right_a[i][1] for i in ids], [right_b[i][1] for i in ids])
    return PairResult(a, b, test_a.acc, test_b.acc, result)


def compare(workspace: Workspace, targets: Sequence[str]) -> Comparison:
    """The whole `imdb compare`: resolve runs, build the comparison."""
    selections, rejected = select_runs(workspace, targets)
    return build_comparison(selections, rejected)


def compare_runs(runs: Sequence[Run]) -> Comparison:
    """Compare given runs, grouping the runs of one model as seeds (used by reproduce).

    The latest run of each model is shown and paired; the others enter its mean ± std.
    """
    by_model: dict[str, list[Run]] = {}
    for run in runs:
        by_model.setdefault(run.model, []).append(run)
    selections: list[Selection] = []
    rejected: list[NotComparable] = []
    for model_runs in by_model.values():
        good = [r for r in model_runs if why_not_comparable(r) is None]
        rejected.extend(p for r in model_runs if (p := why_not_comparable(r)) is not None)
        if good:
            shown = max(good, key=lambda r: (r.ledger.created_at, r.run_id))
            selections.append(Selection(shown, tuple(good)))
    return build_comparison(selections, rejected)


# --------------------------------------------------------------------------- formatting


def format_p(p: float) -> str:
    if p == 0:
        return "< 1e-300"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.2g}"


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def format_params(count: int) -> str:
    return f"{count / 1e6:.1f}M" if count >= 100_000 else f"{count / 1e3:.1f}k"


def format_spread(spread: Spread | None) -> str:
    if spread is None:
        return "—"
    if spread.std is None:
        return "1 run"
    return f"{spread.mean:.4f} ± {spread.std:.4f} (n={spread.n})"


def format_best_val(row: ModelRow) -> str:
    if row.best_val_acc is None:
        return "—"
    return f"{row.best_val_acc:.4f} @ {row.best_epoch}"


def format_ci(row: ModelRow) -> str:
    return f"{row.ci_low:.4f}–{row.ci_high:.4f}"


def format_tokens(row: ModelRow) -> str:
    return f"{row.max_length if row.max_length is not None else '?'} {row.truncation or '?'}"


def caption(comparison: Comparison) -> str:
    sizes = sorted({r.test_samples for r in comparison.rows})
    over = " / ".join(str(s) for s in sizes)
    parts = [
        f"{CONFIDENCE:.0%} CI: {stats.CI_METHOD} over {over} test reviews.",
        f"Paired test: {stats.MCNEMAR_METHOD}; significance at {ALPHA}; b counts the "
        "reviews only the first-named model got right, c those only the second got right.",
    ]
    if not _shows_tokens(comparison):
        first = comparison.rows[0]
        parts.append(f"All at {first.max_length} tokens, {first.truncation} truncation.")
    if _shows_seeds(comparison):
        parts.append("Over seeds: mean ± sample std (ddof=1) of test acc, n runs.")
    return " ".join(parts)


def _shows_seeds(comparison: Comparison) -> bool:
    return any(r.runs > 1 for r in comparison.rows)


def _shows_tokens(comparison: Comparison) -> bool:
    return len({(r.max_length, r.truncation) for r in comparison.rows}) > 1


@dataclass(frozen=True)
class _Column:
    header: str
    cell: Any  # Callable[[ModelRow], str]
    numeric: bool = True


def _columns(comparison: Comparison) -> list[_Column]:
    columns = [
        _Column("model", lambda r: r.label, numeric=False),
        _Column("best val acc @ epoch", format_best_val),
        _Column("test loss", lambda r: f"{r.test_loss:.4f}"),
        _Column("test acc", lambda r: f"{r.test_acc:.4f}"),
        _Column(f"{CONFIDENCE:.0%} CI", format_ci),
    ]
    if _shows_seeds(comparison):
        columns.append(_Column("test acc over seeds", lambda r: format_spread(r.test_acc_spread)))
    if _shows_tokens(comparison):
        columns.append(_Column("tokens", format_tokens, numeric=False))
    columns += [
        _Column("params", lambda r: format_params(r.parameters)),
        _Column("train time", lambda r: format_seconds(r.train_seconds)),
        _Column("train samples/s", lambda r: f"{r.train_samples_per_s:.1f}"),
    ]
    return columns


def rich_table(comparison: Comparison) -> Any:
    """The table as a rich renderable (imported here: the core stays cheap to import)."""
    from rich.table import Table

    table = Table(title="IMDB sentiment: test results", caption=caption(comparison))
    for column in _columns(comparison):
        table.add_column(
            column.header,
            justify="right" if column.numeric else "left",
            no_wrap=column.numeric,
        )
    for row in comparison.rows:
        cells = [c.cell(row) for c in _columns(comparison)]
        if row.best:
            cells[3] = f"[bold]{cells[3]}[/bold]"
        table.add_row(*cells)
    return table


def result_lines(comparison: Comparison) -> list[str]:
    """Verdicts, unpaired pairs, notes and not-comparable runs, one line each."""
    lines = [p.verdict() for p in comparison.pairs]
    lines += [u.message() for u in comparison.unpaired]
    lines += [f"note: {n}" for n in comparison.notes]
    lines += [f"not comparable: {n.message()}" for n in comparison.not_comparable]
    return lines


def render_text(comparison: Comparison, width: int = 160) -> str:
    """The rich table and result lines as plain text (for --output of the table format)."""
    from rich.console import Console

    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(rich_table(comparison))
    for line in result_lines(comparison):
        console.print(line, highlight=False, markup=False)
    return console.export_text()


def render_markdown(comparison: Comparison, heading_level: int = 2) -> str:
    h = "#" * heading_level
    columns = _columns(comparison)
    lines = [
        "| " + " | ".join(c.header for c in columns) + " |",
        "| " + " | ".join("---:" if c.numeric else "---" for c in columns) + " |",
    ]
    for row in comparison.rows:
        cells = [_md_escape(c.cell(row)) for c in columns]
        if row.best:
            cells[3] = f"**{cells[3]}**"
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", caption(comparison)]
    if comparison.pairs:
        lines += [
            "",
            f"{h} Paired tests",
            "",
            "| A | B | reviews | b (A right, B wrong) | c (A wrong, B right) | p-value | test |",
            "| --- | --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for pair in comparison.pairs:
            m = pair.mcnemar
            lines.append(
                f"| {pair.a} | {pair.b} | {m.n} | {m.b} | {m.c} | {format_p(m.p_value)} | "
                f"{m.method} |"
            )
        lines.append("")
        lines += [f"- {p.verdict()}" for p in comparison.pairs]
    others = [u.message() for u in comparison.unpaired] + [f"note: {n}" for n in comparison.notes]
    if others:
        lines += ["", *[f"- {line}" for line in others]]
    if comparison.not_comparable:
        lines += ["", f"{h} Not comparable", ""]
        lines += [f"- {n.message()}" for n in comparison.not_comparable]
    lines += ["", f"{h} Runs", ""]
    for row in comparison.rows:
        seeds = f"; mean ± std over runs {', '.join(row.run_ids)}" if row.runs > 1 else ""
        lines.append(
            f"- {row.label}: `{row.run_path}` (seed {row.seed}, tested at epoch "
            f"{row.test_epoch}, {row.max_length} tokens, {row.truncation} truncation{seeds})"
        )
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


CSV_FIELDS = (
    "model",
    "label",
    "run_id",
    "run_path",
    "best_val_acc",
    "best_epoch",
    "test_loss",
    "test_acc",
    "test_samples",
    "ci_low",
    "ci_high",
    "runs",
    "test_acc_mean",
    "test_acc_std",
    "test_loss_mean",
    "test_loss_std",
    "best_val_acc_mean",
    "best_val_acc_std",
    "parameters",
    "train_seconds",
    "train_samples_per_s",
    "max_length",
    "truncation",
    "data_fingerprint",
    "split_seed",
    "seed",
    "best",
)


def render_csv(comparison: Comparison) -> str:
    """One line per model, full precision (the pairs are in json and markdown)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in comparison.rows:
        values = row.to_dict()
        val_spread = row.best_val_acc_spread
        values.update(
            test_acc_mean=row.test_acc_spread.mean,
            test_acc_std=row.test_acc_spread.std,
            test_loss_mean=row.test_loss_spread.mean,
            test_loss_std=row.test_loss_spread.std,
            best_val_acc_mean=val_spread.mean if val_spread else None,
            best_val_acc_std=val_spread.std if val_spread else None,
        )
        writer.writerow({k: "" if values[k] is None else values[k] for k in CSV_FIELDS})
    return buffer.getvalue()


def render_json(comparison: Comparison) -> str:
    return json.dumps(comparison.to_dict(), indent=2) + "\n"


def render(comparison: Comparison, fmt: str) -> str:
    check_format(fmt)
    renderers = {
        "table": render_text,
        "markdown": render_markdown,
        "csv": render_csv,
        "json": render_json,
    }
    return renderers[fmt](comparison)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ImdbError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return fmt


def check_output_path(path: Path) -> Path:
    if path.is_dir():
        raise ImdbError(f"--output {path}: is a folder; give a file name")
    if not path.parent.is_dir():
        raise ImdbError(f"--output {path}: folder {path.parent} does not exist")
    return path


def write_text(path: Path, text: str) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    write_atomic(path, write)


# --------------------------------------------------------------------------- study report


@dataclass
class AnalysisStep:
    """One analysis of `imdb reproduce`: its files, or why it did not run."""

    name: str
    command: str | None = None
    images: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    summary: str | None = None
    skipped: str | None = None  # could not run here (say why); not a failure
    failed: str | None = None


@dataclass
class StudyReport:
    """Everything `<workdir>/report.md` says."""

    workdir: Path
    command: str
    started_at: str
    versions: dict[str, str]
    models: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    devices: dict[str, str] = field(default_factory=dict)  # model -> device it trained on
    steps: list[str] = field(default_factory=list)  # each step as its own command
    comparison: Comparison | None = None
    analyses: list[AnalysisStep] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _link(path: Path, base: Path) -> str:
    """A relative link from report.md to `path` (markdown wants forward slashes)."""
    try:
        relative = Path(os.path.relpath(path.resolve(), base.resolve()))
    except ValueError:  # another drive on Windows
        relative = path
    return relative.as_posix().replace(" ", "%20")


def render_study_report(study: StudyReport) -> str:
    title = " vs ".join(study.models) if study.models else "IMDB"
    lines = [
        f"# IMDB sentiment study: {title}",
        "",
        f"Made by `imdb reproduce` on {study.started_at} in {format_seconds(study.seconds)}.",
    ]
    if study.failures:
        lines += ["", "**Incomplete.** " + " ".join(f"{f}." for f in study.failures)]
    lines += ["", "## Command", "", "```bash", study.command, "```", ""]
    if study.data:
        d = study.data
        sizes = d.get("sizes", {})
        sized = " / ".join(f"{split} {int(n):,}" for split, n in sizes.items())
        sample = f", a seeded sample of {d['limit']:,} reviews" if d.get("limit") else ""
        dropped = f"{d.get('duplicates_dropped', 0):,} duplicate texts dropped" + (
            " from the full data before sampling" if d.get("limit") else ""
        )
        lines += [
            "## Data",
            "",
            f"- source: {d.get('source')}{sample}",
            f"- data fingerprint `{d.get('data_fingerprint')}`, split seed {d.get('split_seed')}",
            f"- reviews: {sized}; {dropped}",
            "",
        ]
    lines += ["## Results", ""]
    if study.comparison is None:
        lines += ["No run completed, so there is no table.", ""]
    else:
        lines += [render_markdown(study.comparison, heading_level=3)]
    if study.analyses:
        lines += ["## Error analysis", ""]
        for step in study.analyses:
            lines += [f"### {step.name}", ""]
            if step.skipped:
                lines += [f"Skipped: {step.skipped}.", ""]
                continue
            if step.failed:
                lines += [f"**Failed:** {step.failed}", ""]
                continue
            if step.summary:
                lines += [step.summary + ".", ""]
            for image in step.images:
                lines += [f"![{image.stem}]({_link(image, study.workdir)})", ""]
            if step.files:
                links = ", ".join(f"[{p.name}]({_link(p, study.workdir)})" for p in step.files)
                lines += [f"Files: {links}", ""]
    lines += [
        "## Each step as its own command",
        "",
        "In a fresh --workdir: `imdb train` takes the newest data cache for the model's "
        "tokenizer and length, which here is the one `imdb prepare` makes.",
        "",
        "```bash",
        *study.steps,
        "```",
        "",
    ]
    lines += ["## Versions", "", "| | |", "| --- | --- |"]
    for name, version in study.versions.items():
        lines.append(f"| {name} | {_md_escape(version)} |")
    for model, device in study.devices.items():
        lines.append(f"| device ({model}) | {_md_escape(device)} |")
    return "\n".join(lines) + "\n"
