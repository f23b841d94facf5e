"""benchmarks/bench_train.py: its FLOP formula, its options, and one tiny run end to end.

Not a timing test: figures from a shared 2-core machine mean nothing to a test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from benchmark_support import load_benchmark

bench = load_benchmark("bench_train")


def test_bert_base_costs_about_5_3e8_training_flop_per_token_at_128_tokens() -> None:
    shape = bench.model_shape(bench.registry.load_spec("bert-base-arch"))
    flop = bench.train_flop_per_token(
        shape.non_embedding_parameters, shape.layers, shape.hidden, 128
    )
    # ANCHORS.md: about 6 x 85M non-embedding parameters plus attention, ~5.3e8 per token.
    assert 84e6 < shape.non_embedding_parameters < 87e6
    assert flop == pytest.approx(5.3e8, rel=0.02)


def test_modernbert_base_costs_more_per_token_than_bert_base() -> None:
    flops = {}
    for key in ("bert-base-arch", "modernbert-base-arch"):
        shape = bench.model_shape(bench.registry.load_spec(key))
        flops[key] = bench.train_flop_per_token(
            shape.non_embedding_parameters, shape.layers, shape.hidden, 128
        )
    assert flops["modernbert-base-arch"] > flops["bert-base-arch"]


def test_embedding_tables_are_not_counted_as_matmul_parameters() -> None:
    model = torch.nn.Sequential(torch.nn.Embedding(100, 8), torch.nn.Linear(8, 4))
    assert bench.non_embedding_parameters(model) == 8 * 4 + 4


def test_the_cpu_gets_no_mfu_unless_a_peak_is_given() -> None:
    cpu = torch.device("cpu")
    assert bench.peak_tflops(cpu, "fp32", None) is None
    assert bench.peak_tflops(cpu, "fp32", 1.5) == 1.5


def test_cpu_defaults_are_tiny_bert_and_minilm_at_batch_16_for_30_timed_steps() -> None:
    args = bench.parse_args([])
    bench.apply_defaults(args, torch.device("cpu"))
    assert args.models == "tiny-bert,minilm"
    assert bench.parse_list(args.batch_sizes, "--batch-sizes") == [16]
    assert args.steps * args.rounds == 30
    assert args.warmup_steps == 5


def test_zero_steps_is_refused() -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(["--steps", "0"])


def test_ratio_and_mfu_come_from_the_two_sides_measurements() -> None:
    shape = bench.ModelShape(parameters=10, non_embedding_parameters=1_000, layers=1, hidden=1)
    pair = bench.Pair(
        model="m",
        batch_size=8,
        precision="bf16",
        seq_len=100,
        flop_per_token=6_000.0,
        shape=shape,
        ours=bench.Measurement("ours", 300, 1.0, 0, "x"),
        trainer=bench.Measurement("trainer", 300, 2.0, 0, "x"),
        peak_tflops=1e-6,  # 1 MFLOP/s
    )
    assert pair.ratio == pytest.approx(2.0)
    ours = pair.figures(pair.ours)
    assert ours["tokens_per_s"] == pytest.approx(30_000)
    assert ours["mfu"] == pytest.approx(30_000 * 6_000 / 1e6)


def test_a_tiny_cpu_run_writes_both_sides_and_their_ratio(
    tmp_path: Path, real_imdb_dir: Path
) -> None:
    output = tmp_path / "bench.json"
    bench.main(
        [
            "--device=cpu",
            "--models=tiny-bert",
            "--batch-sizes=4",
            "--steps=2",
            "--warmup-steps=1",
            "--rounds=1",
            "--limit=60",
            f"--workdir={tmp_path / 'ws'}",
            f"--data-dir={real_imdb_dir}",
            f"--output={output}",
        ]
    )
    report = json.loads(output.read_text())
    [result] = report["results"]
    assert result["ours"]["samples"] == 8
    assert result["trainer"]["samples"] == 8
    assert result["ratio_ours_over_trainer"] > 0
    assert report["settings"]["trainer_optim"] == "adamw_torch_fused"
    assert not list((tmp_path / "ws" / "runs").glob("*/*/ledger.json"))  # runs cleaned up
