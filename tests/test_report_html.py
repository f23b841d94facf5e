"""`imdb report`: one self-contained HTML page, checked in a real browser.

One handmade study is built once for the module: three models with two seeds each (bert's
rate chosen by a sweep) as ledgers written the way the engine writes them, on the test
reviews of the session's prepared cache (so the page finds their texts as it would in a
real workspace), token counts for accuracy by length, a t-SNE folder written by `imdb
tsne`'s own writer and `imdb attention`'s JSON. `imdb report` turns it into a page once;
the browser tests open that page offline in Debian's chromium (browser_support).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser_support import (
    chromium,
    drawn_charts,
    hover_point,
    needs_browser,
    not_blank,
    open_offline,
)
from cli_support import assert_one_red_line
from handmade_ledgers import write_run
from training_support import copy_workspace
from typer.testing import CliRunner

from imdb_cli.analysis import attention, embeddings, folders
from imdb_cli.compare import html, html_data, html_figures
from imdb_cli.compare.comparison import compare
from imdb_cli.compare.review_lengths import counts_path
from imdb_cli.data.tokenized import TokenizedCache, load_texts, open_cache
from imdb_cli.errors import install_hint
from imdb_cli.files import write_json_atomic
from imdb_cli.runs.ledger import Ledger, read_ledger
from imdb_cli.runs.select import Run, resolve_run
from imdb_cli.workspace import Workspace

MODELS = {"bert": 0.82, "modernbert": 0.9, "minilm": 0.72}  # accuracy each aims at
SEEDS = (42, 43)
SWEEP = "sweep-handmade"
RATES = (1e-5, 3e-5)  # bert's sweep: 3e-5 wins on validation
TSNE_REVIEWS = 40
ATTENTION_TOKENS = 12
HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2"> '


@dataclass(frozen=True)
class Study:
    workspace: Workspace
    page: Path
    compared: dict[str, Any]  # `imdb compare --format json`
    texts: dict[int, str]  # the test reviews' texts (the data cache's)
    tsne_texts: dict[int, str]  # as the t-SNE folder holds them (one made hostile)


def imdb(workspace: Workspace, *args: str) -> Any:
    return CliRunner().invoke(
        __import__("imdb_cli.cli", fromlist=["app"]).app,
        ["--workdir", str(workspace.root), *args],
    )


def _cache(workspace: Workspace) -> TokenizedCache:
    (cache,) = [c for p in sorted(workspace.cache.glob("*/*")) if (c := open_cache(p))]
    return cache


def _curve(seed: int, best: int, accuracy: float) -> list[tuple[float, float, float, float]]:
    """Three epochs; validation accuracy peaks at `best`."""
    shift = (seed - 42) * 0.01
    return [
        (
            0.7 - 0.15 * e + shift,
            accuracy - 0.2 + 0.1 * e,
            0.6 - accuracy / 2 - 0.03 * e + shift,
            accuracy - 0.04 + (0.04 if e == best else 0.0) + shift,
        )
        for e in range(1, 4)
    ]


def handmade_study(root: Path, prepared_root: Path) -> Workspace:
    workspace = copy_workspace(prepared_root, root)
    cache = _cache(workspace)
    ids, texts, labels = load_texts(cache, "test")
    rng = np.random.default_rng(7)
    data = {"cache": str(cache.path), "tokenizer_key": cache.tokenizer_key}
    common = {
        "labels": labels.tolist(),
        "review_ids": ids.tolist(),
        "fingerprint": cache.data_fingerprint,
        "split_seed": cache.seed,
        "epochs": 3,
        "data": data,
    }
    for model, accuracy in MODELS.items():
        for day, seed in enumerate(SEEDS, start=1):
            right = (rng.random(len(ids)) < accuracy).tolist()
            if model == "bert":
                for rate in RATES:
                    write_run(
                        workspace,
                        model,
                        f"{SWEEP}-lr{rate:g}-seed{seed}",
                        right=right,
                        seed=seed,
                        best_epoch=2,
                        best_val_acc=0.85 if rate == 3e-5 else 0.8 + 0.01 * day,
                        curve=_curve(seed, 2, accuracy),
                        config={"lr": rate},
                        created_at=f"2026-01-0{day}T00:00:00+00:00",
                        **common,  # type: ignore[arg-type]
                    )
            else:
                write_run(
                    workspace,
                    model,
                    f"seed{seed}",
                    right=right,
                    seed=seed,
                    best_epoch=day + 1,
                    curve=_curve(seed, day + 1, accuracy),
                    created_at=f"2026-01-0{day}T00:00:00+00:00",
                    **common,  # type: ignore[arg-type]
                )
    write_json_atomic(
        workspace.root / "sweeps" / "bert" / f"{SWEEP}.json",
        {
            "schema_version": 1,
            "sweep_id": SWEEP,
            "model": "bert",
            "rates": list(RATES),
            "seeds": list(SEEDS),
            "trials": [
                {"lr": r, "seed": s, "run_name": f"{SWEEP}-lr{r:g}-seed{s}"}
                for r in RATES
                for s in SEEDS
            ],
            "updated_at": "2026-01-03T00:00:00+00:00",
        },
    )
    # Full token counts, as review_lengths keeps them: some reviews past 128 tokens.
    counts = np.asarray([3 * len(t.split()) for t in texts], dtype=np.int64)
    path = counts_path(workspace, resolve_run(workspace, "minilm"))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, review_ids=ids, token_counts=counts)
    _write_tsne(workspace, ids, texts, labels, cache.label_names)
    _write_attention(workspace, ids, texts)
    return workspace


def _shown_runs(workspace: Workspace) -> list[Run]:
    comparison = compare(workspace, list(MODELS))
    return [Run(Path(row.run_path), read_ledger(Path(row.run_path))) for row in comparison.rows]


def _write_tsne(
    workspace: Workspace, ids: np.ndarray, texts: list[str], labels: np.ndarray, classes: list[str]
) -> None:
    """A t-SNE folder through `imdb tsne`'s own writer (coordinates made up)."""
    rows = np.arange(0, len(ids), len(ids) // TSNE_REVIEWS)[:TSNE_REVIEWS]
    sample_texts = [texts[i] for i in rows]
    sample_texts[0] = HOSTILE + sample_texts[0]
    sample = embeddings.Sample(
        "test", ids[rows], sample_texts, labels[rows], len(ids), list(classes)
    )
    rng = np.random.default_rng(3)
    views = []
    for run in _shown_runs(workspace):
        test = run.ledger.test
        assert test is not None
        views.append(
            embeddings.ModelView(
                name=run.model,
                run=run,
                checkpoint=run.path / "checkpoints" / "epoch_2.safetensors",
                probs=test.prob_matrix()[rows],
                pooled=np.zeros((len(rows), 4), dtype=np.float32),
                coords=rng.normal(size=(len(rows), 2)) * 10,
            )
        )
    reviews = embeddings.review_rows(sample, views)
    result = embeddings.TsneResult(
        options=embeddings.TsneOptions(n_samples=len(rows), perplexity=5.0),
        sample=sample,
        views=views,
        boundary=embeddings.boundary_order(reviews),
        confident_errors={v.name: embeddings.confident_errors(reviews, v.name) for v in views},
        disagreements=embeddings.disagreements(reviews),
        out_dir=folders.new_output_dir(workspace, embeddings.KIND),
        files=[],
    )
    embeddings.write_results(result)
    folders.point_latest(result.out_dir)


def _write_attention(workspace: Workspace, ids: np.ndarray, texts: list[str]) -> None:
    """`imdb attention`'s JSON for the first test review, one per shown run."""
    out_dir = folders.new_output_dir(workspace, attention.KIND)
    tokens = ["[CLS]", *texts[0].split()[: ATTENTION_TOKENS - 2], "[SEP]"]
    rng = np.random.default_rng(5)
    for run in _shown_runs(workspace):
        logits = rng.normal(size=(len(tokens), len(tokens)))
        matrix = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        result = attention.ModelAttention(
            model=run.model,
            run=run,
            checkpoint=run.path / "checkpoints" / "epoch_2.safetensors",
            review=attention.EncodedReview(
                texts[0], list(range(len(tokens))), tokens, [t.startswith("[") for t in tokens], 0
            ),
            probs=np.asarray([0.3, 0.7]),
            classes=["negative", "positive"],
            num_layers=2,
            num_heads=2,
            layers=[attention.LayerAttention(1, attention.FULL, None, None, matrix)],
        )
        write_json_atomic(
            out_dir / f"review-{int(ids[0])}" / f"{run.model}_layer1.json",
            attention.to_json(result, review_id=int(ids[0])),
        )
    folders.point_latest(out_dir)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, prepared_root: Path) -> Study:
    workspace = handmade_study(tmp_path_factory.mktemp("report") / "ws", prepared_root)
    page = workspace.root / "page.html"
    result = imdb(workspace, "report", *MODELS, "-o", str(page))
    assert result.exit_code == 0, result.output
    compared = imdb(workspace, "compare", *MODELS, "--format", "json")
    assert compared.exit_code == 0, compared.output
    ids, texts, _ = load_texts(_cache(workspace), "test")
    summary = json.loads(
        (workspace.analysis / "tsne" / "latest" / embeddings.BOUNDARY_JSON).read_text()
    )
    return Study(
        workspace=workspace,
        page=page,
        compared=json.loads(compared.stdout),
        texts=dict(zip(ids.tolist(), texts, strict=True)),
        tsne_texts={int(r["review_id"]): r["text"] for r in summary["boundary"]},
    )


# --------------------------------------------------------------------------- the file


Attributes = dict[str, str | None]


class Cells(HTMLParser):
    """Every start tag's attributes; for each cell with a data-value, its table's and its
    row's attributes too."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, Attributes]] = []
        self.values: list[tuple[Attributes, Attributes, Attributes]] = []
        self._table: Attributes = {}
        self._row: Attributes = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append((tag, found))
        if tag == "table":
            self._table = found
        elif tag == "tr":
            self._row = found
        elif "data-value" in found:
            self.values.append((self._table, self._row, found))

    def cells(self, **table: str) -> list[tuple[Attributes, Attributes]]:
        """(row, cell) of the tables whose attributes include `table`."""
        return [
            (row, cell)
            for found, row, cell in self.values
            if all(
                table_value in (found.get(key) or "").split() for key, table_value in table.items()
            )
        ]


def parse(page: Path) -> Cells:
    cells = Cells()
    cells.feed(page.read_text(encoding="utf-8"))
    return cells


def test_the_page_is_one_file_that_fetches_nothing(study: Study) -> None:
    text = study.page.read_text(encoding="utf-8")
    tags = parse(study.page).tags
    # Nothing loaded from elsewhere: no script, style, font or image by address.
    assert not [t for t, a in tags if t == "script" and a.get("src")]
    assert not [t for t, a in tags if t in ("link", "img", "iframe", "object", "embed")]
    assert "@import" not in text and "url(http" not in text and "@font-face" not in text
    # plotly.js once, not once per figure.
    import plotly.offline

    assert text.count(plotly.offline.get_plotlyjs()[:200]) == 1
    figures = [a for t, a in tags if t == "div" and "data-figure" in a]
    main = next(a for t, a in tags if t == "main")
    assert len(figures) == int(main["data-figures"] or 0) > 0


def test_the_pages_tables_hold_compare_jsons_numbers(study: Study) -> None:
    """The same comparison as `imdb compare --format json`, to the last digit."""
    compared = study.compared
    page = parse(study.page)
    by_model = {m["label"]: m for m in compared["models"]}
    table = {
        (row["data-model"], cell["data-key"]): cell["data-value"] or "nan"
        for row, cell in page.cells(id="model-table")
    }
    assert {model for model, _ in table} == set(MODELS)
    for label, model in by_model.items():
        accuracy = model["accuracy"]
        assert float(table[(label, "test_acc")]) == accuracy["mean"]
        low, high = table[(label, "ci")].split()
        assert (float(low), float(high)) == (accuracy["low"], accuracy["high"])
        assert float(table[(label, "test_loss")]) == model["test_loss_spread"]["mean"]
        assert float(table[(label, "best_val_acc")]) == model["best_val_acc_spread"]["mean"]
        assert float(table[(label, "test_acc_std")]) == model["test_acc_spread"]["std"]
        assert int(table[(label, "runs")]) == model["runs"] == len(SEEDS)
        errors = model["errors"]
        assert float(table[(label, "macro_f1")]) == errors["confusion"]["macro_f1"]
        assert float(table[(label, "ece")]) == errors["calibration"]["ece"]
    per_class = [
        (row["data-model"], row["data-class"], float(cell["data-value"] or "nan"))
        for row, cell in page.cells(id="class-table")
    ]
    assert per_class == [
        (m["label"], c["name"], value)
        for m in compared["models"]
        for c in m["errors"]["confusion"]["per_class"]
        for value in (c["precision"], c["recall"], c["f1"], c["support"])
    ]
    counts = [
        int(cell["data-value"] or -1) for _, cell in page.cells(**{"class": "confusion-table"})
    ]
    assert counts == [
        v for m in compared["models"] for r in m["errors"]["confusion"]["matrix"] for v in r
    ]
    text = study.page.read_text(encoding="utf-8")
    for pair in compared["verdict"]["pairs"]:
        assert pair["verdict"] in text  # the markup escapes no character of a verdict
    for warning in compared["warnings"]:
        assert f"Not like for like: {warning}." in text.replace("&#39;", "'")


def test_a_review_that_holds_html_is_shown_as_text(tmp_path: Path) -> None:
    """Reviews contain HTML; on the page it is text in the table and in the hover data."""
    workspace = Workspace(tmp_path)
    labels = [0, 1, 0, 1]
    write_run(workspace, "bert", "r1", labels=labels, right=[True, True, False, True])
    write_run(workspace, "modernbert", "r2", labels=labels, right=[False, True, True, True])
    comparison = compare(workspace, ["bert", "modernbert"])
    ledgers = html_data.ledgers_of(comparison)
    texts = {0: HOSTILE + "bad <br /><br />film", 2: "</script><script>window.pwned = 3</script>"}
    page = html.HtmlReport(
        title=html.page_title(comparison),
        comparison=comparison,
        disagreements=html_data.find_disagreements(comparison, ledgers, texts),
        reproduce=html_data.HowToReproduce("imdb report <b>", [], [], [], []),
    )
    text = html.render_html(page)
    assert "window.pwned" in text  # the reviews are on the page ...
    assert "<script>window.pwned" not in text and "<img src=x" not in text  # ... as text
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;&lt;img src=x" in text
    assert "imdb report &lt;b&gt;" in text
    assert "bad \n\nfilm" in text  # IMDB's <br /> shown as line breaks
    # Tokens and class names are text in figures too (plotly reads tags in its labels).
    tokens = ["<s>", "<b>great</b>", "</s>"]
    heatmap = html_figures.attention_figure(
        html_data.AttentionMap(
            "bert",
            "review #0",
            0,
            "<i>neg</i>",
            "pos (P = 0.9)",
            tokens,
            [True, False, True],
            0,
            "full_attention",
            "mean",
            np.eye(3, dtype=np.float32),
            0,
            [],
            None,
        ),
        0,
    ).figure
    assert list(heatmap.data[0].x) == [
        "&lt;s&gt; ·0",
        "&lt;b&gt;great&lt;/b&gt; ·1",
        "&lt;/s&gt; ·2",
    ]
    assert "&lt;i&gt;neg&lt;/i&gt;" in heatmap.layout.title.text


def probs(ledger: Ledger) -> np.ndarray:
    assert ledger.test is not None
    return ledger.test.prob_matrix()


def test_three_models_with_two_seeds_make_a_page_under_6_mb(tmp_path: Path) -> None:
    """At the study's scale: 200 disagreements shown (the table's cap; a 5,000-review test
    split shows no more), 1,000 t-SNE points with texts as long as IMDB's, attention on
    128 tokens per model."""
    workspace = Workspace(tmp_path)
    n = 1000
    rng = np.random.default_rng(0)
    labels = (np.arange(n) % 2).tolist()
    for model, accuracy in MODELS.items():
        for seed in SEEDS:
            right = (rng.random(n) < accuracy).tolist()
            write_run(workspace, model, f"s{seed}", labels=labels, right=right, seed=seed, epochs=5)
    comparison = compare(workspace, list(MODELS))
    ledgers = html_data.ledgers_of(comparison)
    words = ["the", "film", "was", "surprisingly", "moving", "and", "the", "cast", "superb"]
    texts = {i: " ".join(rng.choice(words, size=230)) + " <br /><br />" for i in range(n)}
    maps = html_data.TsneMaps(
        source="handmade",
        split="test",
        perplexity=30.0,
        seed=42,
        review_ids=np.arange(n),
        labels=np.asarray(labels),
        texts=[texts[i] for i in range(n)],
        classes=["negative", "positive"],
        maps=[
            html_data.TsneMap(row.label, rng.normal(size=(n, 2)), probs(ledgers[row.label]))
            for row in comparison.rows
        ],
    )
    tokens = [*["[CLS]", *(words * 10)][:127], "[SEP]"]
    maps_of_attention = [
        html_data.AttentionMap(
            row.label,
            "review #0",
            0,
            "negative",
            "negative (P = 0.9)",
            tokens,
            [t == "[CLS]" or t == "[SEP]" for t in tokens],
            11,
            "full",
            "mean",
            rng.dirichlet(np.ones(128), size=128).astype(np.float32),
            0,
            words[:8],
            None,
        )
        for row in comparison.rows
    ]
    found = html_data.find_disagreements(comparison, ledgers, texts)
    assert len(found.rows) == html_data.MAX_DISAGREEMENTS < found.total
    page = html.HtmlReport(
        title=html.page_title(comparison),
        comparison=comparison,
        disagreements=found,
        reproduce=html_data.HowToReproduce("imdb report", ["imdb train bert"], [], [], []),
        tsne=maps,
        attention=maps_of_attention,
    )
    size = html.write_html(tmp_path / "report.html", page)
    assert size < 6_000_000, f"{size / 1e6:.2f} MB"


# --------------------------------------------------------------------------- the command


def test_report_refuses_what_is_not_a_page_and_folders_that_are_not_there(
    study: Study, tmp_path: Path
) -> None:
    assert_one_red_line(
        imdb(study.workspace, "report", "bert", "-o", str(tmp_path / "page.txt")),
        "--output",
        "ending in .html",
    )
    missing = tmp_path / "no-such-tsne"
    assert_one_red_line(
        imdb(
            study.workspace,
            "report",
            "bert",
            "--tsne",
            str(missing),
            "-o",
            str(tmp_path / "p.html"),
        ),
        f"--tsne {missing}: no such folder",
    )
    assert not (tmp_path / "p.html").exists()


def test_without_plotly_the_report_says_which_pip_install_brings_it(
    study: Study, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "plotly", None)  # import plotly raises ImportError
    result = imdb(study.workspace, "report", "bert", "-o", str(tmp_path / "p.html"))
    assert_one_red_line(result, "needs plotly", install_hint("report"))
    assert "plotly" in install_hint("report") or ".[report]" in install_hint("report")


def test_analyses_of_other_runs_are_left_out_with_the_command_that_makes_them(
    study: Study, tmp_path: Path
) -> None:
    page = tmp_path / "p.html"
    result = imdb(study.workspace, "report", "modernbert/seed42", "minilm/seed42", "-o", str(page))
    assert result.exit_code == 0, result.output
    text = page.read_text(encoding="utf-8")
    assert "No t-SNE on this page" in text and "is of other runs" in text
    workdir = f"<code>imdb --workdir {study.workspace.root}"
    assert f"{workdir} tsne modernbert/seed42 minilm/seed42</code>" in text
    assert "No attention maps on this page" in text
    models = "modernbert/seed42,minilm/seed42"
    assert f"{workdir} attention --from-errors 1 --models {models}</code>" in text


# --------------------------------------------------------------------------- in a browser


@pytest.fixture(scope="module")
def browser() -> Any:
    with chromium() as opened:
        yield opened


def expected_charts(study: Study) -> int:
    """forest, curves, sweep, reliability, lengths; a confusion matrix, a t-SNE map and an
    attention map per model."""
    return 5 + 3 * len(MODELS)


@needs_browser()
def test_the_page_opens_offline_draws_every_chart_and_logs_no_error(
    study: Study, browser: Any, tmp_path: Path
) -> None:
    with open_offline(browser, study.page, width=1280) as visit:
        assert visit.errors == []
        assert visit.requests == [visit.url]
        assert drawn_charts(visit.page) == expected_charts(study)
        assert visit.page.evaluate("window.pwned") is None  # the hostile review ran nothing
        shot = tmp_path / "page-1280.png"
        visit.page.screenshot(path=str(shot))
        assert not_blank(shot)


@needs_browser()
def test_the_disagreement_table_holds_the_right_reviews_and_filters_by_who_was_right(
    study: Study, browser: Any
) -> None:
    ledgers = {
        m: read_ledger(Path(r["run_path"])) for r in study.compared["models"] for m in [r["label"]]
    }
    tests = {model: ledger.test for model, ledger in ledgers.items()}
    predicted = {
        model: dict(zip(test.review_ids, test.predicted().tolist(), strict=True))
        for model, test in tests.items()
        if test is not None
    }
    bert = tests["bert"]
    assert bert is not None
    truth = dict(zip(bert.review_ids, bert.labels, strict=True))
    disagree = {r for r in truth if len({predicted[m][r] for m in MODELS}) > 1}
    with open_offline(browser, study.page, width=1280) as visit:
        page = visit.page

        def shown() -> set[int]:
            return {
                int(r)
                for r in page.eval_on_selector_all(
                    "#disagreements-table tbody tr:not([hidden])",
                    "rows => rows.map(r => r.dataset.review)",
                )
            }

        assert shown() == disagree and len(disagree) > 5
        first = page.eval_on_selector("#disagreements-table tbody tr", "r => r.dataset.review")
        text = page.inner_text(f"#disagreements-table tr[data-review='{first}'] td.text")
        assert study.texts[int(first)][:40] in text
        for number, model in enumerate(MODELS):
            page.click(f"#disagreement-filters button[data-filter='{number}']")
            assert shown() == {r for r in disagree if predicted[model][r] == truth[r]}
        page.click("#disagreement-filters button[data-filter='none']")
        assert shown() == {r for r in disagree if all(predicted[m][r] != truth[r] for m in MODELS)}
        page.click("#disagreement-filters button[data-filter='all']")
        assert shown() == disagree
        # Sorting by review id, then the other way.
        page.click("#disagreements-table th:first-child button")
        order = page.eval_on_selector_all(
            "#disagreements-table tbody tr", "rows => rows.map(r => +r.dataset.review)"
        )
        assert order == sorted(disagree)
        page.click("#disagreements-table th:first-child button")
        assert page.eval_on_selector_all(
            "#disagreements-table tbody tr", "rows => rows.map(r => +r.dataset.review)"
        ) == sorted(disagree, reverse=True)


@needs_browser()
def test_hovering_a_tsne_point_shows_its_review_label_and_predictions(
    study: Study, browser: Any
) -> None:
    with open_offline(browser, study.page, width=1280) as visit:
        page = visit.page
        page.locator("#fig-tsne-1").scroll_into_view_if_needed()
        index = page.evaluate("document.getElementById('fig-tsne-1')._fullData[0].customdata[0]")
        island = json.loads(page.inner_text("#tsne-reviews"))
        review_id, label, _, _ = island["reviews"][index]
        hover_point(page, "fig-tsne-1", trace=0, point=0)
        panel = page.locator("[data-figure='fig-tsne-1'] .tsne-panel")
        panel.get_by_text(f"review #{review_id}").wait_for(timeout=5000)
        text = panel.inner_text()
        assert study.tsne_texts[review_id][:40].strip() in text
        assert f"true label: {island['classes'][label]}" in text
        assert all(f"{model}: " in text for model in MODELS)
        assert f"true {island['classes'][label]}" in (
            page.text_content("#fig-tsne-1 .hoverlayer") or ""
        )
        assert visit.errors == []


@needs_browser()
def test_the_charts_draw_compare_jsons_numbers(study: Study, browser: Any) -> None:
    compared = study.compared
    with open_offline(browser, study.page, width=1280) as visit:
        forest = visit.page.evaluate(
            """() => document.getElementById('fig-forest').data.flatMap(t => t.y.map((y, i) => [
                y, t.x[i], t.x[i] - t.error_x.arrayminus[i], t.x[i] + t.error_x.array[i]]))"""
        )
        curves = visit.page.evaluate(
            """() => document.getElementById('fig-curves').data
                .filter(t => t.mode === 'lines+markers')
                .map(t => [t.hovertemplate, Array.from(t.y)])"""
        )
    drawn = {label: (x, low, high) for label, x, low, high in forest}
    pairs = compared["verdict"]["pairs"]
    assert len(drawn) == len(pairs) == 3
    for pair in pairs:  # the verdict's difference across seeds and its interval
        x, low, high = drawn[f"{pair['a']} − {pair['b']}"]
        assert (pair["level"], x) == ("encoders", pair["difference"])
        assert low == pytest.approx(pair["low"], abs=1e-12)
        assert high == pytest.approx(pair["high"], abs=1e-12)
    expected = [
        [p[key] for p in curve["points"]]
        for model in compared["models"]
        for curve in model["seed_curves"]
        for key in ("train_loss", "train_acc", "val_loss", "val_acc")
    ]
    assert [values for _, values in curves] == expected
    assert len(expected) == 4 * len(MODELS) * len(SEEDS)


@needs_browser()
def test_the_page_fits_800_pixels_and_reads_without_javascript(
    study: Study, browser: Any, tmp_path: Path
) -> None:
    with open_offline(browser, study.page, width=800) as visit:
        width = visit.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 800
        widest = visit.page.evaluate(
            """Math.max(...Array.from(document.querySelectorAll('.js-plotly-plot'))
                .map(e => e.getBoundingClientRect().right))"""
        )
        assert widest <= 800
        shot = tmp_path / "page-800.png"
        visit.page.screenshot(path=str(shot))
        assert not_blank(shot)
    context = browser.new_context(java_script_enabled=False, offline=True)
    try:
        page = context.new_page()
        page.goto(study.page.resolve().as_uri())
        assert page.locator("#model-table tbody tr").count() == len(MODELS)
        assert page.locator("#disagreements-table tbody tr").count() > 5
        assert page.locator("#disagreement-filters").is_hidden()
    finally:
        context.close()
