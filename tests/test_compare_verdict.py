"""`imdb compare`'s verdict across seeds, from handmade ledgers with known per-review
correctness: one seed, several seeds, several pairs (Holm), a tuned-vs-untuned pair."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from handmade_ledgers import write_run
from test_compare import LABELS, N, as_json, imdb

from imdb_cli.compare import verdict
from imdb_cli.compare.comparison import compare
from imdb_cli.workspace import Workspace


def seeds_of(accuracy: float, seeds: int, seed: int, flip: float = 0.08) -> np.ndarray:
    """seeds x reviews correctness: a model right on `accuracy` of the reviews, each seed
    flipping a share `flip` of them (seed-to-seed variation)."""
    rng = np.random.default_rng(seed)
    base = rng.random(N) < accuracy
    return np.asarray([np.where(rng.random(N) < flip, ~base, base) for _ in range(seeds)])


def write_seeds(
    workspace: Workspace, model: str, correct: np.ndarray, run_id: str = "s", **kwargs: object
) -> list[str]:
    """One run per seed (42, 43, ...), the latest last; returns their run ids."""
    ids = []
    for number, right in enumerate(correct):
        run_id_n = f"{run_id}{number + 1}"
        write_run(
            workspace,
            model,
            run_id_n,
            labels=LABELS,
            right=right.tolist(),
            seed=42 + number,
            created_at=f"2026-01-0{number + 1}T00:00:00+00:00",
            **kwargs,  # type: ignore[arg-type]
        )
        ids.append(run_id_n)
    return ids


def test_several_seeds_a_clear_gap_beats_across_seeds_using_every_seed(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    bert, modernbert = seeds_of(0.70, 3, 1), seeds_of(0.92, 3, 2)
    write_seeds(workspace, "bert", bert)
    write_seeds(workspace, "modernbert", modernbert)
    data = as_json(workspace, "bert", "modernbert")
    (pair,) = data["verdict"]["pairs"]
    expected = verdict.across_seeds(bert.astype(float), modernbert.astype(float))
    assert pair["level"] == "encoders" and pair["test"] == "t-test across seeds"
    assert (pair["seeds_a"], pair["seeds_b"], pair["reviews"]) == (3, 3, N)
    # Every seed's run, not only the latest: the difference is the mean over all of them.
    assert pair["difference"] == pytest.approx(bert.mean() - modernbert.mean())
    assert pair["p_value"] == pytest.approx(expected.p_value)
    assert (pair["low"], pair["high"]) == pytest.approx((expected.low, expected.high))
    assert pair["winner"] == "modernbert" and pair["p_adjusted"] < 0.05
    assert pair["verdict"].startswith("modernbert beats bert across seeds: mean test accuracy")
    assert pair["aso_first"] == "modernbert" and pair["aso_eps_min"] < verdict.ASO_THRESHOLD
    assert pair["bootstrap"]["low"] < pair["difference"] < pair["bootstrap"]["high"]
    rows = {row["label"]: row for row in data["models"]}
    assert rows["modernbert"]["best"] and not rows["bert"]["best"]
    assert rows["bert"]["accuracy"]["mean"] == pytest.approx(bert.mean())
    assert rows["bert"]["accuracy"]["seeds"] == 3
    assert not any("one seed" in w for w in data["warnings"])
    assert data["verdict"]["primary_test"].startswith("with two or more seeds per model, a t-test")
    markdown = imdb(workspace, "compare", "bert", "modernbert", "-f", "markdown").stdout
    assert markdown.startswith("## Verdict")
    assert f"**{pair['verdict']}**" in markdown
    assert "| **" in markdown  # the row that beats every other is bold


def test_several_seeds_of_equal_models_say_no_difference_with_the_power(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    write_seeds(workspace, "bert", seeds_of(0.8, 3, 5))
    write_seeds(workspace, "modernbert", seeds_of(0.8, 3, 6))
    data = as_json(workspace, "bert", "modernbert")
    (pair,) = data["verdict"]["pairs"]
    assert pair["winner"] is None and pair["p_adjusted"] >= 0.05
    power = pair["power"]
    assert power["detectable"] > abs(pair["difference"])
    assert pair["verdict"].startswith("bert vs modernbert: no difference detected across seeds")
    assert f"it could find {power['detectable']:.4f} with probability 80%" in pair["verdict"]
    assert not any(row["best"] for row in data["models"])
    table = " ".join(imdb(workspace, "compare", "bert", "modernbert").stdout.split())
    assert table.startswith("Verdict (with two or more seeds per model")
    assert "no difference detected across seeds" in table and "beats" not in table
    # The hint to add seeds follows the power figure.
    hint = data["verdict"]["seeds_hint"]
    assert hint is not None and "imdb reproduce --models bert,modernbert" in hint


def test_several_pairs_are_holm_adjusted_and_the_report_says_so(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    for model, accuracy, seed in (("bert", 0.75, 1), ("modernbert", 0.80, 2), ("minilm", 0.9, 3)):
        write_seeds(workspace, model, seeds_of(accuracy, 3, seed))
    data = as_json(workspace, "bert", "modernbert", "minilm")
    pairs = data["verdict"]["pairs"]
    assert len(pairs) == 3 and data["verdict"]["adjustment"].startswith("Holm")
    from statsmodels.stats.multitest import multipletests

    raw = [p["p_value"] for p in pairs]
    holm = multipletests(raw, alpha=0.05, method="holm")[1]
    assert [p["p_adjusted"] for p in pairs] == pytest.approx(list(holm))
    for pair in pairs:
        assert pair["pairs"] == 3
        assert (pair["winner"] is not None) == (pair["p_adjusted"] < 0.05)
        assert "Holm-adjusted p =" in pair["verdict"] and "over 3 pairs" in pair["verdict"]
    markdown = imdb(workspace, "compare", "bert", "modernbert", "minilm", "-f", "markdown").stdout
    assert "Holm-adjusted over the 3 pairs" in markdown
    assert "p-values Holm-adjusted over the 3 pairs" in data["verdict"]["primary_test"]


def test_runs_named_by_id_that_differ_by_seed_are_one_models_seeds(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    tiny = write_seeds(workspace, "tiny-bert", seeds_of(0.7, 2, 7))
    modern = write_seeds(workspace, "tiny-modernbert", seeds_of(0.7, 2, 8))
    named = [f"tiny-bert/{r}" for r in tiny] + [f"tiny-modernbert/{r}" for r in modern]
    data = as_json(workspace, *named)
    assert [(r["label"], r["runs"]) for r in data["models"]] == [
        ("tiny-bert", 2),
        ("tiny-modernbert", 2),
    ]
    assert not any("one seed" in w for w in data["warnings"])
    assert data["verdict"]["pairs"][0]["level"] == "encoders"
    # The same seed twice is not two seeds: those stay two rows.
    write_run(workspace, "bert", "a", labels=LABELS, right=[True] * N)
    write_run(workspace, "bert", "b", labels=LABELS, right=[True] * N)
    assert [r["label"] for r in as_json(workspace, "bert/a", "bert/b")["models"]] == [
        "bert/a",
        "bert/b",
    ]


def test_one_seed_on_one_side_compares_checkpoints_and_warns_of_seed_counts(
    tmp_path: Path,
) -> None:
    workspace = Workspace(tmp_path)
    write_seeds(workspace, "bert", seeds_of(0.8, 3, 9))
    write_seeds(workspace, "modernbert", seeds_of(0.8, 1, 10))
    data = as_json(workspace, "bert", "modernbert")
    (pair,) = data["verdict"]["pairs"]
    assert pair["level"] == "checkpoints" and pair["winner"] is None
    assert "not two encoders (one seed of modernbert)" in pair["verdict"]
    assert "different seed counts: bert 3, modernbert 1" in " ".join(data["warnings"])
    one_seed = [w for w in data["warnings"] if w.startswith("one seed: modernbert (seed 42)")]
    assert len(one_seed) == 1 and data["verdict"]["seeds_hint"] in one_seed[0]


def write_sweep(workspace: Workspace, model: str, rates: list[float], vals: list[float]) -> str:
    """A finished sweep of one seed per rate, its trials handmade runs."""
    sweep_id = "sweep-0000beef"
    trials = []
    for lr, val in zip(rates, vals, strict=True):
        name = f"{sweep_id}-lr{lr:g}-seed42"
        write_run(
            workspace,
            model,
            name,
            labels=LABELS,
            right=[True] * 170 + [False] * 30,
            best_val_acc=val,
            config={"lr": lr},
        )
        trials.append({"lr": lr, "seed": 42, "run_name": name})
    record = {
        "schema_version": 1,
        "sweep_id": sweep_id,
        "model": model,
        "rates": rates,
        "seeds": [42],
        "trials": trials,
        "updated_at": "2026-01-05T00:00:00+00:00",
    }
    folder = workspace.root / "sweeps" / model
    folder.mkdir(parents=True)
    (folder / f"{sweep_id}.json").write_text(json.dumps(record))
    return sweep_id


def test_a_rate_tuned_for_one_model_only_is_not_like_for_like(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    write_sweep(workspace, "bert", [1e-4, 1e-3], [0.90, 0.89])
    write_run(workspace, "modernbert", "r", labels=LABELS, right=[True] * 160 + [False] * 40)
    comparison = compare(workspace, ["bert", "modernbert"])
    tuned = [w for w in comparison.warnings if w.startswith("learning rate tuned")]
    assert tuned == [
        "learning rate tuned for some models only: bert's chosen by a sweep over 0.0001, "
        "0.001; modernbert's fixed at 0.0001; the tuned model had more tries at its recipe"
    ]
    (row, _) = comparison.rows
    assert row.sweep is not None and row.sweep.selected_lr == 1e-4
    # 300 validation reviews: 0.90 and 0.89 are within noise of each other, and it says so.
    assert row.sweep.val_reviews == 300
    (chosen, other) = row.sweep.rates
    assert chosen.low is not None and chosen.low < 0.9 < chosen.high  # type: ignore[operator]
    assert other.within_noise and not chosen.within_noise
    certainty = row.sweep.certainty()
    assert "chose 0.0001 on 300 validation reviews, 0.001 within noise of it" in certainty
    assert "the model's result is its test accuracy" in certainty
    # The row's result is the test accuracy, never the validation maximum.
    assert row.accuracy.mean == 0.85


def test_two_sweeps_over_different_grids_are_not_like_for_like(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    write_sweep(workspace, "bert", [1e-4, 1e-3], [0.90, 0.80])
    write_sweep(workspace, "modernbert", [1e-4, 3e-4, 1e-3], [0.85, 0.90, 0.80])
    warnings = compare(workspace, ["bert", "modernbert"]).warnings
    assert (
        "learning rates chosen from different grids: bert from 0.0001, 0.001; modernbert "
        "from 0.0001, 0.0003, 0.001" in warnings
    )
    assert not any(w.startswith("learning rate tuned") for w in warnings)


def test_csv_puts_the_verdict_first_on_stderr_and_its_figures_in_columns(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    write_seeds(workspace, "bert", seeds_of(0.70, 3, 1))
    write_seeds(workspace, "modernbert", seeds_of(0.92, 3, 2))
    result = imdb(workspace, "compare", "bert", "modernbert", "-f", "csv")
    assert result.exit_code == 0
    # Which run each model key means and why, then the verdict before anything else.
    said, verdict_first = result.stderr.split("\n", 2)[:2], result.stderr.split("\n", 2)[2]
    assert said == [
        "bert: bert/s3 (its latest completed run on imdb)",
        "modernbert: modernbert/s3 (its latest completed run on imdb)",
    ]
    assert " ".join(verdict_first.split()).startswith("Verdict (with two or more seeds")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    bert = next(r for r in rows if r["label"] == "bert")
    assert bert["acc_diff_vs"] == "modernbert" and float(bert["acc_diff_p_adjusted"]) < 0.05
    assert bert["acc_diff_verdict"].startswith("modernbert beats bert across seeds")


def test_a_seed_trained_twice_is_one_seed_not_two(tmp_path: Path) -> None:
    """Training seed 42 again gives the same run again: counting it twice would make a
    seed-to-seed variance of zero and a verdict "across seeds" from one seed."""
    workspace = Workspace(tmp_path)
    bert = seeds_of(0.70, 1, 1)
    write_seeds(workspace, "bert", bert, run_id="a")
    write_seeds(workspace, "bert", bert, run_id="b")  # seed 42 once more, later
    write_seeds(workspace, "modernbert", seeds_of(0.92, 2, 2))
    data = as_json(workspace, "bert", "modernbert")
    rows = {row["label"]: row for row in data["models"]}
    assert rows["bert"]["runs"] == 1 and rows["bert"]["run_id"] == "b1"
    assert rows["modernbert"]["runs"] == 2
    (pair,) = data["verdict"]["pairs"]
    assert pair["level"] == "checkpoints"  # one seed on a side: no claim about encoders
    assert (
        "bert: 1 completed run(s) repeating a seed already counted left out of mean ± std "
        "(the same seed again is not another seed)" in data["notes"]
    )
