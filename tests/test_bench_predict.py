"""benchmarks/bench_predict.py: its input files, its aims arithmetic, and a tiny run end to end.

Not a timing test: figures from a shared 2-core machine mean nothing to a test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
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
    def row(side: str, speed: float, points: float, same: int = 100) -> dict:
        return {
            "side": side,
            "reviews_per_s": speed,
            "points_vs_torch": {"difference": points, "low": points - 1, "high": points + 1},
            "same_labels_as_torch": same,
        }

    rows = [
        row("pipeline", 10.0, 0.0),
        row("imdb predict (torch)", 15.0, 0.0),
        row("ONNX fp32, plain graph", 16.0, 0.0),
        row("ONNX fp32, optimized", 20.0, 0.05),
        row("ONNX int8 dynamic, optimized", 30.0, -0.35, same=97),
        row("ONNX int8 static, optimized", 25.0, -0.6, same=95),
    ]
    summary = bench.aims(rows)
    assert summary["torch_vs_pipeline"] == 1.5
    assert summary["fp32_vs_pipeline"] == 2.0
    assert summary["int8_vs_pipeline"] == 3.0
    assert summary["int8_points_lost"] == pytest.approx(0.4)  # against fp32, not torch
    assert summary["pipeline_labels_identical"] is True


def test_the_sides_score_every_review_once_in_rotated_order() -> None:
    calls: list[tuple[str, int]] = []

    def scorer(name: str):  # type: ignore[no-untyped-def]
        def score(texts: list[str]) -> np.ndarray:
            calls.append((name, len(texts)))
            return np.tile([0.25, 0.75], (len(texts), 1))

        return score

    sides = [bench.Side(name, scorer(name)) for name in ("a", "b", "c")]
    bench.run_rotated(sides, [f"review {i}" for i in range(10)], rounds=3)
    timed = calls[3:]  # after one warm-up call each
    assert [name for name, _ in timed] == list("abcbcacab")
    assert all(side.probs.shape == (10, 2) for side in sides)
    assert all(len(side.loads) == 3 for side in sides)


@pytest.mark.slow
def test_a_tiny_run_is_measured_end_to_end(trained_root: Path, tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    shutil.copytree(trained_root, workspace)
    run = next((workspace / "runs" / "tiny-bert").iterdir())
    output = tmp_path / "bench.json"
    args = ["--run", str(run), "--reviews", "20", "--rounds", "2", "--rss-sizes", "50"]
    args += ["--skip-switches", "--skip-base"]
    try:
        bench.main([*args, "--output", str(output)])
    finally:
        set_verbosity(quiet=False, verbose=False)  # main() quietens imdb's progress
    report = json.loads(output.read_text())
    sides = [row["side"] for row in report["speed"]["rows"]]
    assert sides[0] == "pipeline" and "ONNX int8 dynamic, optimized" in sides
    assert report["kernels"]["lines"][0].startswith("CPU: ")
    assert all(row["reviews_per_s"] > 0 for row in report["speed"]["rows"])
    assert [row["reviews"] for row in report["memory"]["rows"]] == [100, 50]
