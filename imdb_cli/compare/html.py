"""`report.html`: a comparison as one self-contained page (`imdb report`, `imdb reproduce`).

One file that opens offline, years later, without a server: plotly.js, the styles and the
few lines of script are inlined once; no font, script or image is fetched from anywhere.
The page is a Jinja2 template with autoescaping on, so review texts (which hold HTML) and
every other value are escaped unless a value is marked safe here: the figures' HTML that
plotly writes (its JSON escapes `<`, `>` and `/`) and the JSON data island (escaped below).

Order of the page: what was compared and how fairly; the verdict with its interval and the
per-model table; learning curves and the learning-rate sweep; where the errors are; the
reviews the models disagree on; the t-SNE maps; attention maps; how to reproduce. Tables
are HTML tables that read without JavaScript; the script only sorts and filters the
disagreement table and fills the t-SNE hover panel.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imdb_cli import __version__
from imdb_cli.compare import formats, html_data, html_figures
from imdb_cli.compare.comparison import (
    CALIBRATION_METHOD,
    CONFIDENCE,
    LENGTHS_METHOD,
    Comparison,
)
from imdb_cli.compare.html_data import (
    AttentionMap,
    Disagreements,
    HowToReproduce,
    TsneMaps,
    shorten,
)
from imdb_cli.compare.verdict import WHY_OTHERS_DIFFER
from imdb_cli.config import Invocation
from imdb_cli.errors import ImdbError, install_hint
from imdb_cli.files import write_atomic

if TYPE_CHECKING:
    from imdb_cli.analysis.attention import SavedAttention
    from imdb_cli.analysis.embeddings import TsneResult
    from imdb_cli.compare.study_report import StudyReport
    from imdb_cli.workspace import Workspace

REPORT_NAME = "report.html"
TEMPLATE = "report.html.j2"


def require_libraries() -> None:
    """plotly and jinja2 (the `report` extra), or one line saying how to install them."""
    missing = []
    for module in ("plotly", "jinja2"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ImdbError(
            f"the HTML report needs {' and '.join(missing)} (not installed): "
            f"{install_hint('report')}"
        )


@dataclass
class HtmlReport:
    """Everything the page shows."""

    title: str
    comparison: Comparison
    disagreements: Disagreements
    reproduce: HowToReproduce
    tsne: TsneMaps | None = None
    attention: list[AttentionMap] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # section -> why it is empty
    made_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def page_title(comparison: Comparison) -> str:
    datasets = ", ".join(dict.fromkeys(row.dataset for row in comparison.rows))
    return f"{' vs '.join(row.label for row in comparison.rows)} on {datasets}"


# --------------------------------------------------------------------------- gathering


def for_workspace(
    workspace: Workspace,
    comparison: Comparison,
    *,
    made_by: Invocation,
    tsne_dir: Path | None,
    attention_dir: Path | None,
) -> HtmlReport:
    """`imdb report`: the comparison and what the workspace holds about its runs (texts
    from the data cache, the t-SNE and attention folders given or the latest ones)."""
    from imdb_cli.analysis import folders

    ledgers = html_data.ledgers_of(comparison)
    texts, texts_note = html_data.test_texts(workspace, ledgers[comparison.rows[0].label])
    refs = tuple(run_ref(workspace, row.run_path) for row in comparison.rows)
    notes: dict[str, str] = {}
    tsne = None
    tsne_dir = tsne_dir or folders.latest_dir(workspace, "tsne")
    if tsne_dir is None:
        notes["tsne"] = f"no t-SNE in {workspace.analysis / 'tsne'}"
    else:
        tsne, note = html_data.read_tsne(tsne_dir, comparison)
        if note:
            notes["tsne"] = note
    if "tsne" in notes:
        make = Invocation("tsne", refs, workdir=workspace.root)
        notes["tsne"] += f"; make one with `{make}`, then run this again"
    attention: list[AttentionMap] = []
    attention_dir = attention_dir or folders.latest_dir(workspace, "attention")
    if attention_dir is None:
        notes["attention"] = f"no attention maps in {workspace.analysis / 'attention'}"
    else:
        attention, note = html_data.read_attention(attention_dir, comparison, ledgers)
        if note:
            notes["attention"] = note
    if "attention" in notes and not attention:
        make = Invocation(
            "attention",
            options=(("from_errors", 1), ("models", ",".join(refs))),
            workdir=workspace.root,
        )
        notes["attention"] += f"; make them with `{make}` (after the t-SNE), then run this again"
    if tsne is not None:
        # Reviews the data cache no longer holds still have their text in the t-SNE.
        texts = {**dict(zip(tsne.review_ids.tolist(), tsne.texts, strict=True)), **texts}
    disagreements = html_data.find_disagreements(comparison, ledgers, texts)
    if texts_note and not all(r.text for r in disagreements.rows):
        disagreements.notes.append(texts_note)
    compare_json = Invocation("compare", refs, (("fmt", "json"),), workspace.root)
    return HtmlReport(
        title=page_title(comparison),
        comparison=comparison,
        disagreements=disagreements,
        reproduce=html_data.for_comparison(workspace, comparison, ledgers, made_by, compare_json),
        tsne=tsne,
        attention=attention,
        notes=notes,
    )


def for_study(
    workspace: Workspace,
    study: StudyReport,
    tsne: TsneResult | None,
    attention: list[SavedAttention],
) -> HtmlReport:
    """`imdb reproduce`: its comparison and the analyses it just computed, in memory."""
    comparison = study.comparison
    assert comparison is not None
    ledgers = html_data.ledgers_of(comparison)
    texts, texts_note = html_data.test_texts(workspace, ledgers[comparison.rows[0].label])
    notes = {
        step.name: step.skipped or step.failed or ""
        for step in study.analyses
        if step.skipped or step.failed
    }
    maps = html_data.tsne_from_result(tsne, comparison) if tsne is not None else None
    disagreements = html_data.find_disagreements(comparison, ledgers, texts)
    if texts_note and not all(r.text for r in disagreements.rows):
        disagreements.notes.append(texts_note)
    if not study.analyses:
        notes["tsne"] = notes["attention"] = "not run (--no-analysis)"
    maps_of_attention, more = html_data.attention_from_saved(attention, comparison, ledgers)
    if more:
        notes["attention"] = more
    return HtmlReport(
        title=page_title(comparison),
        comparison=comparison,
        disagreements=disagreements,
        reproduce=html_data.for_study(study, ledgers, study.command),
        tsne=maps,
        attention=maps_of_attention,
        notes={("tsne" if k == "t-SNE" else k): v for k, v in notes.items()},
    )


def run_ref(workspace: Workspace, path: str) -> str:
    """`model/run-id` for a run of this workspace, else its folder."""
    try:
        return Path(path).resolve().relative_to(workspace.runs.resolve()).as_posix()
    except ValueError:
        return path


# --------------------------------------------------------------------------- rendering


def figures(report: HtmlReport) -> dict[str, list[html_figures.Figure]]:
    """The page's figures by section, in page order."""
    comparison = report.comparison
    rows = comparison.rows
    found: dict[str, list[html_figures.Figure]] = {
        "verdict": [],
        "curves": [html_figures.curves_figure(rows)],
        "sweep": [],
        "confusion": [html_figures.confusion_figure(row, i) for i, row in enumerate(rows)],
        "reliability": [html_figures.reliability_figure(rows)],
        "lengths": [],
        "tsne": [],
        "attention": [],
    }
    differences = html_figures.pairwise_differences(comparison)
    if differences:
        found["verdict"].append(html_figures.forest_figure(differences))
    if any(row.sweep for row in rows):
        found["sweep"].append(html_figures.sweep_figure(rows))
    if any(row.errors.lengths for row in rows):
        found["lengths"].append(html_figures.lengths_figure(rows))
    if report.tsne is not None:
        found["tsne"] = [
            html_figures.tsne_figure(report.tsne, i) for i in range(len(report.tsne.maps))
        ]
    found["attention"] = [
        html_figures.attention_figure(item, i) for i, item in enumerate(report.attention)
    ]
    return found


def _json_island(data: Any) -> str:
    """JSON that cannot end its <script> element or open a comment."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _br_to_newlines(text: str) -> str:
    """IMDB reviews mark line breaks with `<br />`: shown as breaks, the rest escaped."""
    return re.sub(r"<br\s*/?>", "\n", text)


def tsne_reviews(maps: TsneMaps) -> dict[str, Any]:
    """The hover panel's data, compact: the models and classes once, then per sampled
    review [id, true class, text, [[predicted class, its probability] per model]]."""
    reviews = []
    for i, review_id in enumerate(maps.review_ids.tolist()):
        predictions = []
        for view in maps.maps:
            guess = int(view.predicted[i])
            predictions.append([guess, round(float(view.probs[i, guess]), 3)])
        text = shorten(_br_to_newlines(maps.texts[i]).strip(), html_data.MAP_TEXT_CHARS)
        reviews.append([int(review_id), int(maps.labels[i]), text, predictions])
    return {"models": [m.label for m in maps.maps], "classes": maps.classes, "reviews": reviews}


def _model_rows(comparison: Comparison) -> list[dict[str, Any]]:
    """The per-model table: display text and the raw number behind each cell (what the
    tests hold against `imdb compare --format json`)."""
    rows = []
    for row in comparison.rows:
        accuracy, spread = row.accuracy, row.test_acc_spread
        val = row.best_val_acc_spread
        confusion, calibration = row.errors.confusion, row.errors.calibration
        rows.append(
            {
                "label": row.label,
                "best": row.best,
                "cells": [
                    ("runs", str(row.runs), row.runs),
                    (
                        "best_val_acc",
                        formats.format_best_val(row),
                        val.mean if row.runs > 1 and val is not None else row.best_val_acc,
                    ),
                    ("test_loss", formats.format_loss(row), row.test_loss_spread.mean),
                    ("test_acc", formats.format_test_acc(row), accuracy.mean),
                    ("ci", formats.format_ci(row), f"{accuracy.low!r} {accuracy.high!r}"),
                    ("test_acc_std", _one_line(formats.format_std(row)), spread.std),
                    ("macro_f1", f"{confusion.macro_f1:.4f}", confusion.macro_f1),
                    ("ece", _one_line(formats.format_ece(row)), calibration.ece),
                ],
            }
        )
    return rows


def _one_line(text: str) -> str:
    return " ".join(text.split("\n"))


MODEL_HEADERS = (
    "runs (seeds)",
    "best val acc",
    "test loss",
    "test acc",
    f"{CONFIDENCE:.0%} CI",
    "std over seeds",
    "macro F1",
    f"ECE ({CONFIDENCE:.0%} CI)",
)


def _disagreement_rows(found: Disagreements) -> list[dict[str, Any]]:
    from imdb_cli.analysis.embeddings import excerpt

    rows = []
    for row in found.rows:
        cells = []
        for name in found.models:
            guess = row.predicted[name]
            probability = float(row.probs[name][guess])
            cells.append(
                {
                    "right": row.correct[name],
                    "label": found.classes[guess],
                    "probability": f"{probability:.2f}",
                    "sort": f"{probability:.6f}",
                }
            )
        text = _br_to_newlines(row.text).strip()
        rows.append(
            {
                "id": row.review_id,
                "label": found.classes[row.label],
                "right": " ".join(str(i) for i in found.right(row)),
                "excerpt": excerpt(row.text, 140) if row.text else "",
                "text": shorten(text, html_data.TABLE_TEXT_CHARS),
                "whole": len(text) <= 140,
                "models": cells,
                "spread": f"{row.spread:.3f}",
            }
        )
    return rows


def _code(text: str) -> Any:
    """Escaped text whose `backticked` commands show as code."""
    from markupsafe import Markup, escape

    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))


def _inline(name: str) -> str:
    return (resources.files("imdb_cli.compare") / name).read_text(encoding="utf-8")


def render_html(report: HtmlReport) -> str:
    """The whole page as one string."""
    import jinja2
    import plotly.offline
    from markupsafe import Markup

    comparison = report.comparison
    built = figures(report)
    environment = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: _inline(name)),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["code"] = _code
    environment.filters["sentence"] = lambda text: text[:1].upper() + text[1:]
    template = environment.get_template(TEMPLATE)
    found = report.disagreements
    return template.render(
        report=report,
        comparison=comparison,
        version=__version__,
        plotly_js=Markup(plotly.offline.get_plotlyjs()),
        style=Markup(_inline("report.css")),
        script=Markup(_inline("report.js")),
        figures={
            section: [(f.div_id, Markup(f.to_html())) for f in items]
            for section, items in built.items()
        },
        figure_count=sum(len(items) for items in built.values()),
        warnings=formats.warning_lines(comparison),
        verdict=comparison.verdict,
        caveats=formats.pretraining_caveats(comparison),
        why_others_differ=WHY_OTHERS_DIFFER,
        caption=formats.caption(comparison),
        setup=formats.setup_rows(comparison),
        model_headers=MODEL_HEADERS,
        model_rows=_model_rows(comparison),
        pair_header=formats.PAIR_HEADER,
        pair_align=formats.PAIR_ALIGN,
        pair_rows=formats.pair_rows(comparison),
        differences=html_figures.pairwise_differences(comparison),
        sweep_header=formats.SWEEP_HEADER,
        sweep_rows=formats.sweep_rows(comparison),
        length_labels=formats.length_labels(comparison),
        format_bucket=formats.format_bucket_interval,
        calibration_method=CALIBRATION_METHOD,
        lengths_method=LENGTHS_METHOD,
        result_lines=formats.result_lines(comparison),
        model_colours=[html_figures.model_colour(i) for i in range(len(comparison.rows))],
        disagreements=found,
        disagreement_rows=_disagreement_rows(found),
        tsne_reviews=Markup(_json_island(tsne_reviews(report.tsne)))
        if report.tsne is not None
        else None,
    )


def write_html(path: Path, report: HtmlReport) -> int:
    """Write the page atomically; its size in bytes."""
    data = render_html(report).encode("utf-8")

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    write_atomic(path, write)
    return len(data)
