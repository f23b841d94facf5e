"""benchmarks/bench_predict.py: its input files, its aims arithmetic, and a tiny run end to end.

Not a timing test: figures from a shared 2-core machine mean nothing to a test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from benchmark_support import load_benchmark

from imdb_cli.console import set_verbosity

bench = load_benchmark("bench_predict")


def test_a_review_file_cycles_the_texts_one_review_a_line(tmp_path: Path) -> None:
    path = bench.review_file(tmp_path / "r.txt", ["first\nreview", "second  one"], 5)
    assert path.read_text(encoding="utf-8").splitlines() == [
        "first review",
        "second one",
        "first review",
        "second one",
        "first review",
    ]


def test_the_aims_compare_each_side_with_the_pipeline() -> None:
    def row(side: str, speed: float, acc: float, same: int = 100) -> dict:
        return {
            "side": side,
            "reviews_per_s": speed,
            "accuracy": acc,
            "same_labels_as_torch": same,
        }

    rows = [
        row("pipeline", 10.0, 0.85),
        row("pipeline, cut by the tokenizer", 12.5, 0.85),
        row("imdb predict (torch)", 15.0, 0.85),
        row("imdb predict (ONNX fp32)", 20.0, 0.85),
        row("imdb predict (ONNX int8)", 30.0, 0.846),
    ]
    summary = bench.aims(rows, 100)
    assert summary["torch_vs_pipeline"] == 1.5
    assert summary["torch_vs_truncating_pipeline"] == 1.2
    assert summary["int8_vs_pipeline"] == 3.0
    assert summary["int8_points_lost"] == pytest.approx(0.4)
    assert summary["pipeline_labels_identical"] is True


@pytest.mark.slow
def test_a_tiny_run_is_measured_end_to_end(trained_root: Path, tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    shutil.copytree(trained_root, workspace)
    run = next((workspace / "runs" / "tiny-bert").iterdir())
    output = tmp_path / "bench.json"
    args = ["--run", str(run), "--reviews", "20", "--rounds", "1", "--rss-sizes", "50"]
    try:
        bench.main([*args, "--output", str(output)])
    finally:
        set_verbosity(quiet=False, verbose=False)  # main() quietens imdb's progress
    report = json.loads(output.read_text())
    sides = [row["side"] for row in report["speed"]["rows"]]
    assert sides[0] == "pipeline" and "imdb predict (ONNX int8)" in sides
    assert all(row["reviews_per_s"] > 0 for row in report["speed"]["rows"])
    assert [row["reviews"] for row in report["memory"]["rows"]] == [100, 50]
