"""A `Comparison` (comparison.py) as rich tables, markdown, csv or json.

Every format gives the verdict first (the primary test named before any result, each
pair's sentence, the seeds a firmer answer needs), then what is compared (the warnings)
and the results with their intervals. Markdown and json carry everything (the verdict's
figures, recipes, learning curves, confusion matrices, per-class figures, calibration,
accuracy by length); the rich tables and csv carry what fits (readable at 80 columns).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imdb_cli.compare import recipes, stats, verdict
from imdb_cli.compare.comparison import (
    ALPHA,
    CALIBRATION_METHOD,
    CONFIDENCE,
    LENGTHS_METHOD,
    Comparison,
    ModelRow,
    format_p,
)
from imdb_cli.compare.verdict import LengthBucket
from imdb_cli.errors import ImdbError
from imdb_cli.files import write_atomic

FORMATS = ("table", "markdown", "csv", "json")
TABLE_MIN_WIDTH = 76


# --------------------------------------------------------------------------- cells


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


def format_best_val(row: ModelRow) -> str:
    if row.best_val_acc is None:
        return "—"
    if row.runs > 1 and row.best_val_acc_spread is not None:
        return f"{row.best_val_acc_spread.mean:.4f} mean"
    return f"{row.best_val_acc:.4f} @ {row.best_epoch}"


def format_ci(row: ModelRow) -> str:
    return f"{row.accuracy.low:.4f}–{row.accuracy.high:.4f}"


def format_test_acc(row: ModelRow) -> str:
    return f"{row.accuracy.mean:.4f}"


def format_loss(row: ModelRow) -> str:
    return f"{row.test_loss_spread.mean:.4f}"


def format_std(row: ModelRow) -> str:
    spread = row.test_acc_spread
    return "1 run" if spread.std is None else f"± {spread.std:.4f}\n(n={spread.n})"


def format_ece(row: ModelRow) -> str:
    c = row.errors.calibration
    return f"{c.ece:.4f}\n({c.ece_low:.3f}–{c.ece_high:.3f})"


def format_tokens(row: ModelRow) -> str:
    return f"{row.max_length if row.max_length is not None else '?'} {row.truncation or '?'}"


def format_bucket_interval(bucket: LengthBucket) -> str:
    """`0.812 (0.750–0.862, 120)`: accuracy, Wilson interval, reviews."""
    if bucket.accuracy is None or bucket.accuracy_low is None or bucket.accuracy_high is None:
        return "— (0)"
    return (
        f"{bucket.accuracy:.3f} ({bucket.accuracy_low:.3f}–{bucket.accuracy_high:.3f}, "
        f"{bucket.reviews})"
    )


def format_bucket(accuracy: float | None, reviews: int) -> str:
    return "—" if accuracy is None else f"{accuracy:.3f} ({reviews})"


def caption(comparison: Comparison) -> str:
    sizes = sorted({r.test_samples for r in comparison.rows})
    over = " / ".join(str(s) for s in sizes)
    parts = [
        f"Test figures are means over each model's seeds, on {over} test reviews. "
        f"{CONFIDENCE:.0%} CI: one run, {stats.CI_METHOD}; several seeds, a t interval "
        "with the seeds and the test reviews as its two variance parts.",
    ]
    if not _shows_tokens(comparison):
        first = comparison.rows[0]
        parts.append(f"All at {first.max_length} tokens, {first.truncation} truncation.")
    if _shows_seeds(comparison):
        parts.append("Over seeds: sample std (ddof=1) of test acc, n runs.")
    return " ".join(parts)


def verdict_lines(comparison: Comparison) -> list[str]:
    """The verdict, first in every format: the primary test, then one sentence a pair."""
    if not comparison.verdict.pairs:
        return []
    lines = [f"Verdict ({comparison.verdict.primary_test}):"]
    for pair in comparison.verdict.pairs:
        lines.append(f"  {pair.sentence()}")
        if pair.aso_eps_min is not None and pair.aso_first is not None:
            other = pair.b if pair.aso_first == pair.a else pair.a
            ordered = pair.aso_eps_min < verdict.ASO_THRESHOLD
            lines.append(
                f"    almost stochastic order of {pair.aso_first} over {other}: eps_min "
                f"{pair.aso_eps_min:.2f} ({'below' if ordered else 'not below'} "
                f"{verdict.ASO_THRESHOLD})"
            )
    if comparison.verdict.seeds_hint:
        lines.append(f"  To settle it: {comparison.verdict.seeds_hint}.")
    return lines


def warning_lines(comparison: Comparison) -> list[str]:
    return [f"Not like for like: {w}." for w in comparison.warnings]


def _shows_seeds(comparison: Comparison) -> bool:
    return any(r.runs > 1 for r in comparison.rows)


def _shows_tokens(comparison: Comparison) -> bool:
    return len({(r.max_length, r.truncation) for r in comparison.rows}) > 1


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class _Column:
    header: str
    cell: Callable[[ModelRow], str]
    numeric: bool = True
    # Cells never wrap (headers do); a column with max_width folds cells wider than that.
    max_width: int | None = None


def _columns(comparison: Comparison) -> list[_Column]:
    """The results table: what each model scored. Its setup is in `setup_rows`.

    Headers break where the rich table should wrap them (markdown joins the lines), so
    the table fits 80 columns without cutting a number."""
    columns = [
        _Column("model", lambda r: r.label, numeric=False, max_width=15),
        _Column("best val\nacc @ epoch", format_best_val),
        _Column("test\nloss", format_loss),
        _Column("test\nacc", format_test_acc),
        _Column(f"{CONFIDENCE:.0%} CI", format_ci),
    ]
    if _shows_seeds(comparison):
        columns.append(_Column("std over\nseeds", format_std))
    if _shows_tokens(comparison):
        columns.append(_Column("tokens", format_tokens, numeric=False))
    return columns


def _one_line(header: str) -> str:
    return header.replace("\n", " ")


def setup_rows(comparison: Comparison) -> list[tuple[str, list[str], bool]]:
    """The 'what is compared' table: (setting, value per model, whether the values differ)."""
    per_model = [recipes.setting_rows(row.recipe) for row in comparison.rows]
    names = [name for name, _ in per_model[0]]
    rows: list[tuple[str, list[str], bool]] = []
    for i, name in enumerate(names):
        values = [pairs[i][1] for pairs in per_model]
        rows.append((name, values, len(set(values)) > 1))
        if name == "weights":
            params = [format_params(r.parameters) for r in comparison.rows]
            rows.append(("parameters", params, len(set(params)) > 1))
    times = [format_seconds(r.train_seconds) for r in comparison.rows]
    speeds = [f"{r.train_samples_per_s:.1f}" for r in comparison.rows]
    rows += [("train time", times, False), ("train samples/s", speeds, False)]
    return rows


def error_columns(comparison: Comparison) -> list[_Column]:
    """Where the errors are, in a table that fits 80 columns (markdown and json hold all)."""
    columns = [
        _Column("model", lambda r: r.label, numeric=False, max_width=15),
        _Column("macro\nF1", lambda r: f"{r.errors.confusion.macro_f1:.4f}"),
        _Column(
            "lowest\nclass F1",
            lambda r: (
                f"{r.errors.confusion.worst_class().f1:.4f} "
                f"({r.errors.confusion.worst_class().name})"
            ),
        ),
        _Column(f"ECE ({CONFIDENCE:.0%} CI)", format_ece),
        _Column("Brier", lambda r: f"{r.errors.calibration.brier:.4f}"),
    ]
    return columns


def length_labels(comparison: Comparison) -> list[str]:
    for row in comparison.rows:
        if row.errors.lengths is not None:
            return [f"{bucket.label} tokens" for bucket in row.errors.lengths]
    return []


def sweep_rows(comparison: Comparison) -> list[list[str]]:
    """model, rate, mean val acc (seeds), whether selected: one row per rate of each sweep."""
    rows = []
    for row in comparison.rows:
        if row.sweep is None:
            continue
        for rate in row.sweep.rates:
            mean = "—" if rate.mean_val_acc is None else f"{rate.mean_val_acc:.4f}"
            if rate.low is not None and rate.high is not None:
                mean += f" ({rate.low:.3f}–{rate.high:.3f})"
            done = f"{len(rate.val_accs)}/{len(row.sweep.seeds)}"
            chosen = (
                "selected"
                if rate.lr == row.sweep.selected_lr
                else ("within noise" if rate.within_noise else "")
            )
            rows.append([row.label, f"{rate.lr:g}", mean, done, chosen])
    return rows


SWEEP_HEADER = ["model", "learning rate", f"val acc (mean, {CONFIDENCE:.0%} CI)", "seeds done", ""]
PAIR_HEADER = [
    "A",
    "B",
    "reviews",
    "b (A right, B wrong)",
    "c (A wrong, B right)",
    "p-value",
    "test",
    "acc A - B",
    f"{CONFIDENCE:.0%} bootstrap CI",
]
PAIR_ALIGN = ["l", "l", "r", "r", "r", "r", "l", "r", "r"]


def pair_rows(comparison: Comparison) -> list[list[str]]:
    """Each pair of latest runs: McNemar's test and the review bootstrap (PAIR_HEADER)."""
    return [
        [
            p.a,
            p.b,
            str(p.mcnemar.n),
            str(p.mcnemar.b),
            str(p.mcnemar.c),
            format_p(p.mcnemar.p_value),
            p.mcnemar.method,
            f"{p.bootstrap.difference:+.4f}",
            f"{p.bootstrap.low:+.4f} to {p.bootstrap.high:+.4f}",
        ]
        for p in comparison.pairs
    ]


def _rich_table(title: str, caption_text: str | None = None) -> Any:
    from rich import box
    from rich.table import Table

    return Table(
        title=title,
        caption=caption_text,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 0, 0, 1),  # one space and the (blank) rule between columns: 2 in all
        pad_edge=False,
        min_width=TABLE_MIN_WIDTH,  # room for the caption, which wraps at the table's width
    )


def _fill(table: Any, columns: Sequence[_Column], rows: Sequence[ModelRow]) -> Any:
    for column in columns:
        widest = max(len(line) for row in rows for line in column.cell(row).splitlines())
        table.add_column(
            column.header,
            justify="right" if column.numeric else "left",
            min_width=min(widest, column.max_width or widest),
            overflow="fold",
        )
    for row in rows:
        cells = [c.cell(row) for c in columns]
        if row.best and len(cells) > 3 and _one_line(columns[3].header) == "test acc":
            cells[3] = f"[bold]{cells[3]}[/bold]"
        table.add_row(*cells)
    return table


def table_title(comparison: Comparison) -> str:
    """`imdb: test results`: the data set(s) the rows were tested on."""
    datasets = dict.fromkeys(row.dataset for row in comparison.rows)
    return f"{', '.join(datasets) or 'no runs'}: test results"


def rich_tables(comparison: Comparison) -> list[Any]:
    """The results, what is compared, and where the errors are, as rich renderables."""
    from rich.text import Text

    results = _fill(
        _rich_table(
            table_title(comparison), "\n".join([*warning_lines(comparison), caption(comparison)])
        ),
        _columns(comparison),
        comparison.rows,
    )
    setup = _rich_table("What is compared")
    setup.add_column("")
    for row in comparison.rows:
        setup.add_column(row.label, overflow="fold")
    for name, values, differ in setup_rows(comparison):
        style = "yellow" if differ else None
        setup.add_row(name, *[Text(v, style=style or "") for v in values])
    errors = _fill(
        _rich_table("Where the errors are (test split)", CALIBRATION_METHOD + "."),
        error_columns(comparison),
        comparison.rows,
    )
    tables = [results, setup]
    if sweep_rows(comparison):
        grid = _rich_table(
            "Learning rates, chosen on validation accuracy (never test)",
            "\n".join(
                f"{r.label}: {r.sweep.reason}; {r.sweep.certainty()}."
                for r in comparison.rows
                if r.sweep
            ),
        )
        for number, header in enumerate(SWEEP_HEADER):
            grid.add_column(header, justify="left" if number in (0, 4) else "right")
        for cells in sweep_rows(comparison):
            grid.add_row(*cells)
        tables.append(grid)
    tables.append(errors)
    labels = length_labels(comparison)
    if labels:
        lengths = _rich_table("Test accuracy by review length (reviews)", LENGTHS_METHOD + ".")
        lengths.add_column("model")
        for label in labels:
            lengths.add_column(label, justify="right")
        for row in comparison.rows:
            buckets = row.errors.lengths or []
            lengths.add_row(row.label, *[format_bucket(b.accuracy, b.reviews) for b in buckets])
        tables.append(lengths)
    return tables


def result_lines(comparison: Comparison) -> list[str]:
    """Unpaired pairs, notes and not-comparable runs, one line each (the verdict comes
    first, from `verdict_lines`)."""
    lines = [u.message() for u in comparison.unpaired]
    lines += [f"note: {n}" for n in comparison.notes]
    for row in comparison.rows:
        if row.errors.lengths_note:
            lines.append(f"note: {row.label}: {row.errors.lengths_note}")
    lines += [f"not comparable: {n.message()}" for n in comparison.not_comparable]
    return lines


def print_comparison(console: Any, comparison: Comparison, *, skip_not_comparable: bool) -> None:
    from rich.padding import Padding
    from rich.text import Text

    for line in verdict_lines(comparison):
        # An indented line wraps under its own indent, so each sentence reads as one block.
        text = line.lstrip(" ")
        console.print(Padding(Text(text), (0, 0, 0, len(line) - len(text))), highlight=False)
    if comparison.verdict.pairs:
        console.print()
    for number, table in enumerate(rich_tables(comparison)):
        if number:
            console.print()
        console.print(table)
    for line in result_lines(comparison):
        if skip_not_comparable and line.startswith("not comparable:"):
            continue
        console.print(line, highlight=False, markup=False)


def render_text(comparison: Comparison, width: int = 80) -> str:
    """The rich tables and result lines as plain text (for --output of the table format)."""
    from rich.console import Console

    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    print_comparison(console, comparison, skip_not_comparable=False)
    return console.export_text()


# --------------------------------------------------------------------------- markdown


def md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _md_table(
    header: Sequence[str], align: Sequence[str], rows: Sequence[Sequence[str]]
) -> list[str]:
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |",
    ]
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(
    comparison: Comparison,
    heading_level: int = 2,
    figures: dict[str, str] | None = None,
    *,
    with_verdict: bool = True,
) -> str:
    """Everything in the comparison; `figures`: name -> link of the PNGs to show;
    `with_verdict`: False where the verdict is already given above (the study report)."""
    h = "#" * heading_level
    figures = figures or {}
    lines = markdown_verdict(comparison, h) if with_verdict else []
    columns = _columns(comparison)
    cells = []
    for row in comparison.rows:
        values = [_one_line(c.cell(row)) for c in columns]
        if row.best:
            values[3] = f"**{values[3]}**"
        cells.append(values)
    lines += [f"{h} Results", ""]
    lines += _md_table(
        [_one_line(c.header) for c in columns], ["r" if c.numeric else "l" for c in columns], cells
    )
    lines += ["", caption(comparison)]
    if comparison.warnings:
        lines += ["", *[f"- **{w}**" for w in warning_lines(comparison)]]
    lines += ["", f"{h} What is compared", ""]
    setup = setup_rows(comparison)
    lines += _md_table(
        ["", *[r.label for r in comparison.rows]],
        ["l"] * (len(comparison.rows) + 1),
        [
            [f"**{name}**" if differ else name, *[f"**{v}**" if differ else v for v in values]]
            for name, values, differ in setup
        ],
    )
    lines += ["", "Settings in bold differ between the models."]
    if comparison.pairs:
        lines += ["", f"{h} The latest runs, checkpoint by checkpoint", ""]
        lines += [
            "Not the verdict: McNemar's test and the review bootstrap of each model's "
            "latest run, which ignore seed-to-seed variation (unadjusted p-values).",
            "",
        ]
        lines += _md_table(PAIR_HEADER, PAIR_ALIGN, pair_rows(comparison))
    others = [u.message() for u in comparison.unpaired] + [f"note: {n}" for n in comparison.notes]
    if others:
        lines += ["", *[f"- {line}" for line in others]]
    if sweep_rows(comparison):
        lines += ["", f"{h} Learning rates, chosen on validation", ""]
        lines += _figure(figures, "lr_grid", "validation accuracy by learning rate")
        lines += _md_table(SWEEP_HEADER, ["l", "r", "r", "r", "l"], sweep_rows(comparison))
        lines.append("")
        lines += [
            f"- {r.label}: {r.sweep.reason}; {r.sweep.certainty()} (sweep record `{r.sweep.path}`)"
            for r in comparison.rows
            if r.sweep
        ]
    lines += ["", *_markdown_curves(comparison, h, figures)]
    lines += _markdown_errors(comparison, h, figures)
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


def markdown_verdict(comparison: Comparison, h: str) -> list[str]:
    """The verdict section, first: the primary test, each pair, its figures, the hint."""
    if not comparison.verdict.pairs:
        return []
    pairs = comparison.verdict.pairs
    lines = [f"{h} Verdict", "", f"Primary test: {comparison.verdict.primary_test}.", ""]
    lines += [f"- **{p.sentence()}**" for p in pairs]
    lines += [f"- **{c}**" for c in pretraining_caveats(comparison)]
    lines += [""]
    lines += _md_table(
        [
            "A",
            "B",
            "level",
            "seeds",
            "reviews",
            "A - B",
            f"{CONFIDENCE:.0%} CI",
            "test",
            "p",
            "adjusted p",
            "detectable (power 0.8)",
            "seeds for 1 point",
            "ASO eps_min",
            "two-level bootstrap CI",
        ],
        ["l", "l", "l", "r", "r", "r", "r", "l", "r", "r", "r", "r", "r", "r"],
        [
            [
                p.a,
                p.b,
                p.level,
                f"{p.seeds_a} / {p.seeds_b}",
                str(p.reviews),
                f"{p.difference:+.4f}",
                f"{p.low:+.4f} to {p.high:+.4f}",
                p.test,
                format_p(p.p_value),
                format_p(p.p_adjusted),
                f"{p.power.detectable:.4f}",
                _seeds_cell(p),
                "—" if p.aso_eps_min is None else f"{p.aso_eps_min:.2f} ({p.aso_first} first)",
                "—"
                if p.bootstrap is None
                else f"{p.bootstrap.low:+.4f} to {p.bootstrap.high:+.4f}",
            ]
            for p in pairs
        ],
    )
    notes = [
        f"Holm-adjusted over the {len(pairs)} pairs: a pair is called only when its adjusted "
        f"p-value is below {ALPHA}."
        if len(pairs) > 1
        else None,
        f"Why the other views can differ: {verdict.WHY_OTHERS_DIFFER}.",
        f"Second view: {verdict.ASO_METHOD}.",
        f"Interval beside the test: {verdict.BOOTSTRAP_METHOD}; a description, not the test (with "
        "few seeds it is too narrow, and it counts the seed-by-review noise more than once; "
        "benchmarks/null_calibration.py measures both).",
        f"Power: {pairs[0].power.basis}.",
        f"To settle it: {comparison.verdict.seeds_hint}."
        if comparison.verdict.seeds_hint
        else None,
    ]
    lines += [""] + [f"- {n}" for n in notes if n]
    return [*lines, ""]


def pretraining_caveats(comparison: Comparison) -> list[str]:
    """A pretrained model against a random-init one says nothing about encoders."""
    pretrained = [r.label for r in comparison.rows if r.recipe.pretrained]
    random = [r.label for r in comparison.rows if not r.recipe.pretrained]
    if not pretrained or not random:
        return []
    return [
        f"{', '.join(pretrained)} (pretrained) against {', '.join(random)} (random init) says "
        "nothing about the encoders: the gap is mostly pretraining, whatever the test says"
    ]


def _seeds_cell(pair: verdict.PairVerdict) -> str:
    seeds = pair.power.seeds_for_one_point
    if seeds is None:
        return f"> {verdict.MAX_SEEDS}"
    return f"≥ {seeds}" if pair.level == verdict.CHECKPOINTS else str(seeds)


def _figure(figures: dict[str, str], name: str, alt: str) -> list[str]:
    return [f"![{alt}]({figures[name]})", ""] if name in figures else []


def _markdown_curves(comparison: Comparison, h: str, figures: dict[str, str]) -> list[str]:
    lines = [f"{h} Learning curves", ""]
    lines += _figure(figures, "learning_curves", "learning curves")
    rows = [
        [
            row.label,
            str(p.epoch),
            f"{p.train_loss:.4f}",
            f"{p.train_acc:.4f}",
            f"{p.val_loss:.4f}",
            f"{p.val_acc:.4f}",
        ]
        for row in comparison.rows
        for p in row.curve
    ]
    lines += _md_table(
        ["model", "epoch", "train loss", "train acc", "val loss", "val acc"],
        ["l", "r", "r", "r", "r", "r"],
        rows,
    )
    return [*lines, "", "Train figures are over the epoch's reviews, counted per review.", ""]


def _markdown_errors(comparison: Comparison, h: str, figures: dict[str, str]) -> list[str]:
    lines = [f"{h} Where the errors are", "", "On the test split, of the run shown per model.", ""]
    lines += [f"{h}# Per class", ""]
    lines += _md_table(
        ["model", "class", "precision", "recall", "F1", "reviews"],
        ["l", "l", "r", "r", "r", "r"],
        [
            [
                row.label,
                c.name,
                f"{c.precision:.4f}",
                f"{c.recall:.4f}",
                f"{c.f1:.4f}",
                str(c.support),
            ]
            for row in comparison.rows
            for c in row.errors.confusion.per_class
        ],
    )
    lines += ["", f"{h}# Confusion matrices", ""]
    lines += _figure(figures, "confusion", "confusion matrices")
    for row in comparison.rows:
        confusion = row.errors.confusion
        lines += [f"{row.label} (rows: true class, columns: predicted class):", ""]
        lines += _md_table(
            ["true \\ predicted", *confusion.classes],
            ["l", *["r"] * len(confusion.classes)],
            [
                [name, *[str(v) for v in counts]]
                for name, counts in zip(confusion.classes, confusion.matrix, strict=True)
            ],
        )
        lines.append("")
    lines += [f"{h}# Calibration", ""]
    lines += _figure(figures, "reliability", "reliability diagram")
    lines += _md_table(
        [
            "model",
            "ECE",
            f"ECE {CONFIDENCE:.0%} CI",
            "Brier",
            "log loss",
            "mean confidence",
            "accuracy",
        ],
        ["l", "r", "r", "r", "r", "r", "r"],
        [
            [
                row.label,
                f"{c.ece:.4f}",
                f"{c.ece_low:.4f}–{c.ece_high:.4f}",
                f"{c.brier:.4f}",
                f"{c.log_loss:.4f}",
                f"{c.mean_confidence:.4f}",
                f"{c.accuracy:.4f}",
            ]
            for row in comparison.rows
            for c in (row.errors.calibration,)
        ],
    )
    lines += ["", "Each bin of the reliability diagram:", ""]
    lines += _md_table(
        ["model", "confidence", "mean confidence", "reviews", "accuracy", f"{CONFIDENCE:.0%} CI"],
        ["l", "r", "r", "r", "r", "r"],
        [
            [
                row.label,
                f"{b.low:.3f}–{b.high:.3f}",
                f"{b.confidence:.4f}",
                str(b.reviews),
                f"{b.accuracy:.4f}",
                f"{b.accuracy_low:.3f}–{b.accuracy_high:.3f}",
            ]
            for row in comparison.rows
            for b in row.errors.calibration.bins
        ],
    )
    lines += [
        "",
        f"{CALIBRATION_METHOD}. Confidence above accuracy is over-confidence.",
        "",
        f"{h}# Accuracy by review length",
        "",
    ]
    labels = length_labels(comparison)
    if labels:
        lines += _figure(figures, "lengths", "accuracy by review length")
        lines += _md_table(
            ["model", *labels],
            ["l", *["r"] * len(labels)],
            [
                [
                    row.label,
                    *[format_bucket_interval(b) for b in row.errors.lengths or []],
                ]
                for row in comparison.rows
            ],
        )
        lines += [
            "",
            f"{LENGTHS_METHOD}. Cells: accuracy ({CONFIDENCE:.0%} interval, reviews). Reviews "
            "longer than a run's max length were cut to it.",
        ]
    notes = [
        f"{row.label}: {row.errors.lengths_note}"
        for row in comparison.rows
        if row.errors.lengths_note
    ]
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    elif not labels:
        lines.append("Not computed here (`imdb compare --format markdown` or json computes it).")
    return lines


# --------------------------------------------------------------------------- csv, json


CSV_FIELDS = (
    "model",
    "label",
    "dataset",
    "run_id",
    "run_path",
    "best_val_acc",
    "best_epoch",
    "test_loss",
    "test_acc",
    "test_samples",
    "ci_low",
    "ci_high",
    "acc_mean",
    "acc_mean_ci_low",
    "acc_mean_ci_high",
    "acc_diff_vs",
    "acc_diff",
    "acc_diff_ci_low",
    "acc_diff_ci_high",
    "acc_diff_test",
    "acc_diff_p_adjusted",
    "acc_diff_verdict",
    "runs",
    "test_acc_mean",
    "test_acc_std",
    "test_loss_mean",
    "test_loss_std",
    "best_val_acc_mean",
    "best_val_acc_std",
    "macro_f1",
    "ece",
    "weights",
    "parameters",
    "optimizer",
    "lr",
    "scheduler",
    "warmup_ratio",
    "batch_size",
    "epochs",
    "precision",
    "seeds",
    "device",
    "load_start",
    "load_end",
    "loaded",
    "train_seconds",
    "train_samples_per_s",
    "max_length",
    "truncation",
    "data_fingerprint",
    "split_seed",
    "seed",
    "best",
)


def _difference_vs_top(comparison: Comparison, row: ModelRow) -> dict[str, Any]:
    """This row's mean accuracy minus the row with the highest mean, from their verdict."""
    top = max(comparison.rows, key=lambda r: r.accuracy.mean)
    if top.label == row.label:
        return {}
    for pair in comparison.verdict.pairs:
        if {pair.a, pair.b} == {row.label, top.label}:
            sign = 1 if pair.a == row.label else -1
            low, high = sign * pair.low, sign * pair.high
            return {
                "acc_diff_vs": top.label,
                "acc_diff": sign * pair.difference,
                "acc_diff_ci_low": min(low, high),
                "acc_diff_ci_high": max(low, high),
                "acc_diff_test": pair.test,
                "acc_diff_p_adjusted": pair.p_adjusted,
                "acc_diff_verdict": pair.sentence(),
            }
    return {}


def render_csv(comparison: Comparison) -> str:
    """One line per model, full precision: its mean over seeds with the interval, and its
    difference to the row with the highest mean with the verdict's interval, test and
    sentence (every pair is in json and markdown)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in comparison.rows:
        values = row.to_dict()
        val_spread = row.best_val_acc_spread
        settings, machine = row.recipe.settings, row.recipe.machine
        values.update(
            test_acc_mean=row.test_acc_spread.mean,
            test_acc_std=row.test_acc_spread.std,
            test_loss_mean=row.test_loss_spread.mean,
            test_loss_std=row.test_loss_spread.std,
            best_val_acc_mean=val_spread.mean if val_spread else None,
            best_val_acc_std=val_spread.std if val_spread else None,
            macro_f1=row.errors.confusion.macro_f1,
            ece=row.errors.calibration.ece,
            weights=row.recipe.weights,
            precision=row.recipe.precision,
            seeds=" ".join(map(str, row.recipe.seeds)),
            device=machine.device,
            load_start=machine.load_start,
            load_end=machine.load_end,
            loaded=machine.loaded,
            **{k: settings.get(k) for k in ("optimizer", "lr", "scheduler", "warmup_ratio")},
            **{k: settings.get(k) for k in ("batch_size", "epochs")},
            acc_mean=row.accuracy.mean,
            acc_mean_ci_low=row.accuracy.low,
            acc_mean_ci_high=row.accuracy.high,
            **_difference_vs_top(comparison, row),
        )
        writer.writerow({k: "" if values.get(k) is None else values[k] for k in CSV_FIELDS})
    return buffer.getvalue()


def render_json(comparison: Comparison) -> str:
    return json.dumps(comparison.to_dict(), indent=2) + "\n"


def render(comparison: Comparison, fmt: str) -> str:
    check_format(fmt)
    renderers: dict[str, Callable[[Comparison], str]] = {
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
