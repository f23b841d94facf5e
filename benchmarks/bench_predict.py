"""How fast `imdb predict` scores reviews, against the pipeline a user would otherwise run,
what the CPU runs it with, and how much memory it needs for large files.

    python benchmarks/bench_predict.py                        # minilm, trained here if needed
    python benchmarks/bench_predict.py --run PATH/TO/RUN      # a completed run of yours
    python benchmarks/bench_predict.py --skip-rss --skip-base # the MiniLM table only
    python benchmarks/bench_predict.py --help

Kernels. The CPU's flags, the int8 kernels onnxruntime (MLAS) picks for them, a probe of the
U8S8 kernel for saturation (handoff.onnx.int8_kernels), and one-thread GEMM throughput of
fp32 MatMul and MatMulInteger U8S8 / U8U8 / S8S8 ([1024 x 384] x [384 x 1536], rounds rotated).

Speed. On `--reviews` test reviews of the run (default 2,000) at the run's max length (128),
batch 64, `--threads` threads for torch and onnxruntime alike, in one process:

  - pipeline: `transformers.pipeline("text-classification", model=<the HF export>,
    trust_remote_code=True)` called as the export's model card says (whole reviews, the
    model cuts them; `top_k=None`, `batch_size`);
  - imdb predict (torch): `predict.load_predictor` on the run, then `predict_reviews`;
  - imdb predict on `imdb export --format onnx`: fp32 with `--onnx-graph plain` and with the
    default optimized (fused) graph; int8 on the optimized graph with `--quantize int8`
    (dynamic) and `--quantize int8-static` (calibrated on 256 validation reviews).

Each is timed from texts in to class probabilities out (tokenization included, loading the
model not), after an untimed warm-up. The reviews are cut into `--rounds` parts; every side
scores every part, in an order that rotates from part to part, so that a burst of other work
on the machine does not land on one side only, and each side scores each review once.
Reviews/s = reviews / total seconds; the 1-minute load average is recorded beside every
part. Accuracy is against the reviews' labels, with the paired bootstrap interval (95%) of
its difference from imdb predict (torch), the fp32 reference; "same labels" counts reviews
whose label equals torch's.

Torch switches (`--switch-reviews`, default 256 test reviews): imdb predict's torch forward
as it is, with bf16 autocast, and under `torch.compile(dynamic=True)` (its compile time
apart), rounds rotated, labels and probabilities against fp32.

Base-size models (`--base-models`, default bert-base-arch and modernbert-base-arch: random
weights, speed only): the same sides on `--base-reviews` reviews (default 128), from a run of
a few steps in `<workdir>/base`.

Memory. Peak RSS (`ru_maxrss`, through a small launcher process) of `python -m imdb_cli
predict RUN --file reviews.txt --format jsonl -o scored.jsonl` on files of `--rss-sizes`
reviews (default 10,000 and 100,000: the run's data set's reviews, cycled), with
`--rss-model` (default tiny-bert, trained here in seconds: memory, not the model's speed,
is what is measured), next to a 100-review file (imports + model).

Setup, when there is no `--run`: `imdb prepare --models minilm --limit 20000` (2,000 test
reviews) and `imdb train minilm --epochs 1 --limit-train 2400` in the benchmark's own
workspace (`--workdir`, default benchmarks/results/bench_predict; several minutes on a
CPU), then the exports. Everything is reused by a second run. Results:
benchmarks/results/bench_predict.json and tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("IMDB_DATA_DIR") or REPO.parent / "shared" / "data" / "imdb")
RESULTS = REPO / "benchmarks" / "results"
AIMS = {
    "torch_vs_pipeline": 1.3,
    "fp32_vs_pipeline": 1.5,
    "int8_vs_pipeline": 3.0,
    "int8_points_lost": 0.5,
}

sys.path.insert(0, str(REPO))

from imdb_cli.compare.stats import paired_bootstrap  # noqa: E402
from imdb_cli.console import set_verbosity  # noqa: E402
from imdb_cli.data.tokenized import load_texts  # noqa: E402
from imdb_cli.handoff import export_folder, predict  # noqa: E402
from imdb_cli.handoff import onnx as onnx_graphs  # noqa: E402
from imdb_cli.handoff.review_files import from_texts  # noqa: E402
from imdb_cli.runs.caches import cache_of_run  # noqa: E402
from imdb_cli.runs.run import Run, latest_run  # noqa: E402
from imdb_cli.runs.select import resolve_run  # noqa: E402
from imdb_cli.workspace import Workspace  # noqa: E402

PIPELINE = "pipeline"
TORCH = "imdb predict (torch)"
# Side name -> the export folder it scores (EXPORTS' keys).
ONNX_SIDES = {
    "ONNX fp32, plain graph": "onnx-plain",
    "ONNX fp32, optimized": "onnx",
    "ONNX int8 dynamic, optimized": "int8",
    "ONNX int8 static, optimized": "int8-static",
}
FP32 = "ONNX fp32, optimized"  # the default export
INT8 = "ONNX int8 dynamic, optimized"  # --quantize int8
EXPORTS = {
    "hf": [],
    "onnx-plain": ["--format", "onnx", "--onnx-graph", "plain"],
    "onnx": ["--format", "onnx"],
    "int8": ["--format", "onnx", "--quantize", "int8"],
    "int8-static": ["--format", "onnx", "--quantize", "int8-static"],
}


def load() -> float:
    return round(os.getloadavg()[0], 2)


def imdb(workdir: Path, *args: str) -> None:
    """`python -m imdb_cli --workdir WORKDIR ARGS`, its output shown; failure stops here."""
    command = [sys.executable, "-m", "imdb_cli", "--workdir", str(workdir), *args]
    print("$ imdb " + " ".join(args), flush=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if subprocess.run(command, cwd=REPO, env=env).returncode != 0:
        raise SystemExit(f"`imdb {' '.join(args)}` failed")


def trained_run(
    args: argparse.Namespace,
    workdir: Path,
    model: str,
    limit_train: int,
    limit: int | None = None,
) -> Run:
    workspace = Workspace(workdir)
    run = latest_run(workspace, model)
    if run is None:
        imdb(
            workdir,
            "prepare",
            "--models",
            model,
            "--limit",
            str(limit or args.limit),
            "--data-dir",
            str(args.data_dir),
        )
        imdb(workdir, "train", model, "--epochs", "1", "--limit-train", str(limit_train))
        run = latest_run(workspace, model)
    assert run is not None
    return run


def exports_of(run: Run, workdir: Path) -> dict[str, Path]:
    """The run's exports (EXPORTS), made once and reused when from this run and this version
    of the export (ONNX folders record their graph)."""
    folders = {}
    for name, flags in EXPORTS.items():
        folder = workdir / "exports" / f"{run.model}-{run.run_id}-{name}"
        fresh = False
        if export_folder.is_export_dir(folder):
            config = export_folder.read_export(folder).config
            fresh = config.get("source", {}).get("run_id") == run.run_id and (
                not flags or "onnx_graph" in config
            )
        if not fresh:
            imdb(workdir, "export", str(run.path), "--out", str(folder), "--force", *flags)
        folders[name] = folder
    return folders


# --------------------------------------------------------------------------- kernels


def gemm_throughput(rounds: int = 3, rows: int = 1024) -> dict[str, Any]:
    """GOP/s of one thread per kernel kind, [rows x 384] x [384 x 1536] (a MiniLM FFN)."""
    depth, width = 384, 1536
    kinds = tuple(onnx_graphs.GEMM_KINDS)
    rng = np.random.default_rng(1)
    weights = rng.integers(0, 100, size=(depth, width))
    sessions = {kind: onnx_graphs.gemm_session(kind, weights) for kind in kinds}
    inputs = {
        "fp32": rng.standard_normal((rows, depth)).astype(np.float32),
        "u8s8": rng.integers(0, 255, (rows, depth)).astype(np.uint8),
        "u8u8": rng.integers(0, 255, (rows, depth)).astype(np.uint8),
        "s8s8": rng.integers(-128, 127, (rows, depth)).astype(np.int8),
    }
    seconds: dict[str, float] = dict.fromkeys(kinds, 0.0)
    loads = []
    for kind in kinds:
        sessions[kind].run(None, {"A": inputs[kind]})
    for number in range(rounds):
        for kind in kinds[number % 4 :] + kinds[: number % 4]:
            started = time.perf_counter()
            sessions[kind].run(None, {"A": inputs[kind]})
            seconds[kind] += time.perf_counter() - started
        loads.append(load())
    operations = 2 * rows * depth * width * rounds
    return {
        "gop_per_s": {kind: round(operations / seconds[kind] / 1e9, 1) for kind in kinds},
        "shape": [rows, depth, width],
        "threads": 1,
        "load": loads,
    }


def kernel_report() -> dict[str, Any]:
    kernels = onnx_graphs.int8_kernels()
    return {
        "cpu": kernels.cpu,
        "flags": list(kernels.flags),
        "u8s8": kernels.u8s8,
        "u8u8": kernels.u8u8,
        "s8s8": kernels.s8s8,
        "u8s8_saturates": kernels.u8s8_saturates,
        "bf16": kernels.bf16,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "lines": kernels.lines(),
        "gemm": gemm_throughput(),
    }


# --------------------------------------------------------------------------- speed


class Side:
    """One way of scoring the reviews: a name, and a call from texts to probabilities."""

    def __init__(self, name: str, score: Callable[[list[str]], np.ndarray]) -> None:
        self.name = name
        self.score = score
        self.seconds: list[float] = []
        self.loads: list[float] = []
        self.parts: list[np.ndarray] = []

    @property
    def probs(self) -> np.ndarray:
        return np.concatenate(self.parts)


def imdb_side(name: str, workdir: Path, target: str, batch_size: int) -> Side:
    predictor = predict.load_predictor(
        Workspace(workdir), target, device="cpu", batch_size=batch_size
    )
    return predictor_side(name, predictor)


def predictor_side(name: str, predictor: predict.Predictor) -> Side:
    def score(texts: list[str]) -> np.ndarray:
        chunks = predict.predict_reviews(predictor, from_texts(texts))
        return np.concatenate([chunk.probs for chunk in chunks])

    return Side(name, score)


def pipeline_side(name: str, folder: Path, batch_size: int, **tokenizer: Any) -> Side:
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the long-review warnings: the model cuts them
    classify = pipeline("text-classification", model=str(folder), trust_remote_code=True)
    labels = [classify.model.config.id2label[i] for i in range(classify.model.config.num_labels)]

    def score(texts: list[str]) -> np.ndarray:
        rows = classify(texts, top_k=None, batch_size=batch_size, **tokenizer)
        return np.array(
            [[{r["label"]: r["score"] for r in row}[n] for n in labels] for row in rows]
        )

    return Side(name, score)


def run_rotated(sides: list[Side], texts: list[str], rounds: int) -> None:
    """Every side scores every part of `texts` once, the order rotating part by part."""
    for side in sides:  # warm-up: first calls allocate, load kernels, fill caches
        side.score(texts[:64])
    parts = [list(part) for part in np.array_split(np.asarray(texts, dtype=object), rounds)]
    for number, part in enumerate(parts):
        shift = number % len(sides)
        for side in sides[shift:] + sides[:shift]:
            started = time.perf_counter()
            side.parts.append(side.score(part))
            side.seconds.append(time.perf_counter() - started)
            side.loads.append(load())
            print(
                f"  part {number + 1}/{rounds}: {side.name}: "
                f"{len(part) / side.seconds[-1]:.1f} reviews/s (load {side.loads[-1]})",
                flush=True,
            )


def speed_rows(sides: list[Side], reviews: int, labels: np.ndarray | None) -> list[dict[str, Any]]:
    """Reviews/s per side; with labels, accuracy and its difference from torch (fp32)."""
    reference = next(side for side in sides if side.name == TORCH).probs.argmax(axis=1)
    rows = []
    for side in sides:
        predicted = side.probs.argmax(axis=1)
        row: dict[str, Any] = {
            "side": side.name,
            "reviews_per_s": round(reviews / sum(side.seconds), 2),
            "reviews_per_s_by_round": [
                round(len(part) / s, 2) for part, s in zip(side.parts, side.seconds, strict=True)
            ],
            "load_by_round": side.loads,
            "same_labels_as_torch": int((predicted == reference).sum()),
        }
        if labels is not None:
            right, torch_right = predicted == labels, reference == labels
            interval = paired_bootstrap(right, torch_right)
            row["accuracy"] = round(float(right.mean()), 4)
            row["points_vs_torch"] = {
                "difference": round(interval.difference * 100, 2),
                "low": round(interval.low * 100, 2),
                "high": round(interval.high * 100, 2),
            }
        rows.append(row)
    return rows


def onnx_sides(workdir: Path, folders: dict[str, Path], batch_size: int) -> list[Side]:
    return [
        imdb_side(name, workdir, str(folders[export]), batch_size)
        for name, export in ONNX_SIDES.items()
    ]


def fusions_of(folders: dict[str, Path]) -> dict[str, Any]:
    """What each ONNX export carries (its config.json)."""
    carried = {}
    for name, folder in folders.items():
        config = export_folder.read_export(folder).config
        if name != "hf":
            carried[name] = {
                "graph": config.get("onnx_graph"),
                "fusions": (config.get("onnx_fusions") or {}).get("fused"),
                "quantization": config.get("onnx_quantization"),
            }
    return carried


def measure_minilm(
    args: argparse.Namespace, workdir: Path, run: Run, texts: list[str], labels: np.ndarray
) -> dict[str, Any]:
    folders = exports_of(run, workdir)
    chosen, chosen_labels = texts[: args.reviews], labels[: args.reviews]
    print(f"speed: {len(chosen):,} test reviews in {args.rounds} parts", flush=True)
    sides = [
        pipeline_side(PIPELINE, folders["hf"], args.batch_size),
        imdb_side(TORCH, workdir, str(run.path), args.batch_size),
        *onnx_sides(workdir, folders, args.batch_size),
    ]
    run_rotated(sides, chosen, args.rounds)
    rows = speed_rows(sides, len(chosen), chosen_labels)
    return {
        "run": f"{run.model}/{run.run_id}",
        "reviews": len(chosen),
        "max_length": export_folder.read_export(folders["hf"]).max_length,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "exports": fusions_of(folders),
        "rows": rows,
        "summary": aims(rows),
    }


def measure_switches(
    args: argparse.Namespace, workdir: Path, run: Run, texts: list[str]
) -> dict[str, Any]:
    """imdb predict's torch forward: as is, bf16 autocast, torch.compile."""
    from imdb_cli.runs import checkpoints

    base = predict.load_predictor(
        Workspace(workdir), str(run.path), device="cpu", batch_size=args.batch_size
    )
    model, _ = checkpoints.load_classifier(run, "best")
    cpu = torch.device("cpu")
    bf16 = predict.Predictor(**{**vars(base), "forward": predict.torch_forward(model, cpu, "bf16")})
    compiled_model = torch.compile(model, dynamic=True)
    compiled = predict.Predictor(
        **{**vars(base), "forward": predict.torch_forward(compiled_model, cpu, "fp32")}  # type: ignore[arg-type]
    )
    chosen = texts[: args.switch_reviews]
    started = time.perf_counter()
    predictor_side("compile", compiled).score(chosen[:64])
    compile_seconds = time.perf_counter() - started
    sides = [
        predictor_side(TORCH, base),
        predictor_side("torch, bf16 autocast", bf16),
        predictor_side("torch, torch.compile", compiled),
    ]
    print(f"torch switches: {len(chosen)} reviews (compiling took {compile_seconds:.0f} s)")
    run_rotated(sides, chosen, args.switch_rounds)
    rows = speed_rows(sides, len(chosen), None)
    reference = sides[0].probs
    for side, row in zip(sides, rows, strict=True):
        row["max_prob_difference_vs_fp32"] = float(np.abs(side.probs - reference).max())
    return {
        "run": f"{run.model}/{run.run_id}",
        "reviews": len(chosen),
        "compile_seconds": round(compile_seconds, 1),
        "rows": rows,
    }


def measure_base(args: argparse.Namespace, texts: list[str]) -> dict[str, Any]:
    """Speed only, random weights: each base model's run of a few steps, its exports."""
    workdir = args.workdir / "base"
    results = {}
    for model in args.base_models:
        run = trained_run(args, workdir, model, 8, limit=200)
        folders = exports_of(run, workdir)
        chosen = texts[: args.base_reviews]
        print(f"speed, {model} (random weights): {len(chosen)} reviews", flush=True)
        sides = [
            pipeline_side(PIPELINE, folders["hf"], args.batch_size),
            imdb_side(TORCH, workdir, str(run.path), args.batch_size),
            *onnx_sides(workdir, folders, args.batch_size),
        ]
        run_rotated(sides, chosen, args.base_rounds)
        results[model] = {
            "run": f"{run.model}/{run.run_id}",
            "reviews": len(chosen),
            "rounds": args.base_rounds,
            "exports": fusions_of(folders),
            "rows": speed_rows(sides, len(chosen), None),
        }
    return results


# --------------------------------------------------------------------------- memory


def review_file(path: Path, texts: list[str], count: int) -> Path:
    if not path.is_file():
        with open(path, "w", encoding="utf-8") as handle:
            for i in range(count):
                handle.write(" ".join(texts[i % len(texts)].split()) + "\n")
    return path


# Runs a command and prints its peak RSS (KiB). The command is started from this small
# process, not from the benchmark: a child forked from the benchmark (gigabytes of models
# and texts) keeps the parent's peak in ru_maxrss even after it execs.
RSS_LAUNCHER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[1:])\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def peak_rss(workdir: Path, run: Run, reviews: Path, out: Path) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one `imdb predict` process over `reviews`."""
    command = [
        sys.executable,
        "-m",
        "imdb_cli",
        "--workdir",
        str(workdir),
        "-q",
        "predict",
        str(run.path),
        "--file",
        str(reviews),
        "--format",
        "jsonl",
        "-o",
        str(out),
    ]
    started = time.perf_counter()
    launched = subprocess.run(
        [sys.executable, "-c", RSS_LAUNCHER, *command],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE,
        text=True,
    )
    seconds = time.perf_counter() - started
    if launched.returncode != 0:
        raise SystemExit(f"`imdb predict` on {reviews} failed:\n{launched.stderr}")
    out.unlink()
    kib = int(launched.stderr.strip().splitlines()[-1])  # ru_maxrss is in KiB on Linux
    return kib / 1024, seconds


def measure_memory(
    args: argparse.Namespace, workdir: Path, run: Run, texts: list[str]
) -> list[dict[str, Any]]:
    rows = []
    for count in [100, *args.rss_sizes]:
        reviews = review_file(workdir / f"reviews-{count}.txt", texts, count)
        mib, seconds = peak_rss(workdir, run, reviews, workdir / "scored.jsonl")
        rows.append(
            {
                "reviews": count,
                "peak_rss_mib": round(mib, 1),
                "seconds": round(seconds, 1),
                "reviews_per_s": round(count / seconds, 1),
            }
        )
        print(f"  {count:,} reviews: peak RSS {mib:,.0f} MiB in {seconds:.0f} s", flush=True)
    return rows


# --------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    cpu, _ = onnx_graphs.cpu_flags()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu if cpu != "unknown" else platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "versions": {
            name: version(name) for name in ("torch", "transformers", "onnxruntime", "imdb-cli")
        },
        "load_average_1m_at_start": load(),
    }


def aims(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's aims, from one run: each side's speed over the pipeline's, int8's
    accuracy points lost against fp32 (the default ONNX export) with its interval."""
    by = {row["side"]: row for row in rows}
    pipeline = by[PIPELINE]["reviews_per_s"]
    fp32, int8 = by[FP32], by[INT8]
    right_fp32 = fp32["points_vs_torch"]["difference"]
    return {
        "torch_vs_pipeline": round(by[TORCH]["reviews_per_s"] / pipeline, 2),
        "fp32_vs_pipeline": round(fp32["reviews_per_s"] / pipeline, 2),
        "int8_vs_pipeline": round(int8["reviews_per_s"] / pipeline, 2),
        "int8_points_lost": round(right_fp32 - int8["points_vs_torch"]["difference"], 2),
        "pipeline_labels_identical": by[PIPELINE]["same_labels_as_torch"]
        == by[TORCH]["same_labels_as_torch"],
        "aims": AIMS,
    }


def speed_table(
    title: str, rows: list[dict[str, Any]], accuracy: bool, against: str = "pipeline"
) -> Table:
    table = Table(title=title)
    columns = ["", "reviews/s", f"vs {against}", "load"]
    if accuracy:
        columns += ["accuracy", "points vs torch (95%)"]
    elif against == "fp32":
        columns += ["same labels", "max prob diff"]
    for column in columns:
        table.add_column(column, justify="left" if not column else "right")
    base = rows[0]["reviews_per_s"]
    for row in rows:
        loads = row["load_by_round"]
        cells = [
            row["side"],
            f"{row['reviews_per_s']:.1f}",
            f"{row['reviews_per_s'] / base:.2f}x",
            f"{min(loads):.1f}-{max(loads):.1f}",
        ]
        if accuracy:
            points = row["points_vs_torch"]
            cells += [
                f"{row['accuracy']:.4f}",
                f"{points['difference']:+.2f} ({points['low']:+.2f}, {points['high']:+.2f})",
            ]
        elif against == "fp32":
            cells += [
                f"{row['same_labels_as_torch']:,}",
                f"{row['max_prob_difference_vs_fp32']:.1e}",
            ]
        table.add_row(*cells)
    return table


def print_report(report: dict[str, Any]) -> None:
    console = Console(width=100)
    kernels = report.get("kernels")
    if kernels:
        for line in kernels["lines"]:
            console.print(line, highlight=False)
        gemm = kernels["gemm"]
        rates = ", ".join(f"{kind} {rate}" for kind, rate in gemm["gop_per_s"].items())
        console.print(
            f"GEMM {'x'.join(map(str, gemm['shape']))}, 1 thread, GOP/s: {rates} "
            f"(load {gemm['load']})",
            highlight=False,
        )
    speed = report.get("speed")
    if speed:
        title = (
            f"{speed['reviews']:,} test reviews of {speed['run']}, batch {speed['batch_size']}, "
            f"{report['machine']['torch_threads']} threads, {speed['rounds']} rotated parts"
        )
        console.print(speed_table(title, speed["rows"], accuracy=True))
        summary = speed["summary"]
        console.print(
            f"vs pipeline: torch {summary['torch_vs_pipeline']}x (aim {AIMS['torch_vs_pipeline']}"
            f"x), ONNX fp32 {summary['fp32_vs_pipeline']}x (aim {AIMS['fp32_vs_pipeline']}x), "
            f"int8 {summary['int8_vs_pipeline']}x (aim {AIMS['int8_vs_pipeline']}x) losing "
            f"{summary['int8_points_lost']} points (aim <= {AIMS['int8_points_lost']})",
            highlight=False,
        )
    switches = report.get("switches")
    if switches:
        title = (
            f"torch switches, {switches['reviews']} reviews (compiling "
            f"{switches['compile_seconds']} s, not counted)"
        )
        console.print(speed_table(title, switches["rows"], accuracy=False, against="fp32"))
    for model, base in (report.get("base") or {}).items():
        console.print(
            speed_table(f"{model} (random weights), {base['reviews']} reviews", base["rows"], False)
        )
    memory = report.get("memory")
    if memory:
        table = Table(title=f"peak RSS of imdb predict ({memory['run']}, jsonl to a file)")
        for column in ("reviews", "peak RSS", "seconds", "reviews/s"):
            table.add_column(column, justify="right")
        for row in memory["rows"]:
            table.add_row(
                f"{row['reviews']:,}",
                f"{row['peak_rss_mib']:,.0f} MiB",
                f"{row['seconds']:.0f}",
                f"{row['reviews_per_s']:,.0f}",
            )
        console.print(table)
    console.print(
        f"load average (1 min) at start {report['machine']['load_average_1m_at_start']}"
        f", at end {report['load_average_1m_at_end']}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", help="a completed run to measure (default: minilm, trained here)")
    parser.add_argument("--workdir", type=Path, default=RESULTS / "bench_predict")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=20_000, help="reviews to prepare")
    parser.add_argument("--reviews", type=int, default=2_000, help="test reviews to score")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4, help="rotated parts of --reviews")
    parser.add_argument("--switch-reviews", type=int, default=256)
    parser.add_argument("--switch-rounds", type=int, default=2)
    parser.add_argument("--base-models", default="bert-base-arch,modernbert-base-arch")
    parser.add_argument("--base-reviews", type=int, default=128)
    parser.add_argument("--base-rounds", type=int, default=2)
    parser.add_argument("--rss-sizes", default="10000,100000")
    parser.add_argument("--rss-model", default="tiny-bert")
    for part in ("kernels", "speed", "switches", "base", "rss"):
        parser.add_argument(f"--skip-{part}", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS / "bench_predict.json")
    args = parser.parse_args(argv)
    args.rss_sizes = [int(n) for n in args.rss_sizes.split(",") if n.strip()]
    args.base_models = [m.strip() for m in args.base_models.split(",") if m.strip()]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    set_verbosity(quiet=True, verbose=False)
    args.workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"machine": machine()}

    def save() -> None:  # after every part: an interrupted run keeps what it measured
        report["load_average_1m_at_end"] = load()
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    if not args.skip_kernels:
        report["kernels"] = kernel_report()
        save()
    if args.run:
        run = resolve_run(Workspace(args.workdir), args.run)
        workdir = run.path.parents[2]  # <workdir>/runs/<model>/<run-id>
    else:
        if not args.data_dir.is_dir():
            raise SystemExit(f"no IMDB at {args.data_dir}; pass --data-dir or set IMDB_DATA_DIR")
        workdir = args.workdir
        run = trained_run(args, workdir, "minilm", 2400)
    cache = cache_of_run(Workspace(workdir), run.ledger)
    _, texts, labels = load_texts(cache, "test")
    if not args.skip_speed:
        report["speed"] = measure_minilm(args, workdir, run, texts, np.asarray(labels))
        save()
    if not args.skip_switches:
        report["switches"] = measure_switches(args, workdir, run, texts)
        save()
    if not args.skip_base:
        _, train_texts, _ = load_texts(cache, "train")
        report["base"] = measure_base(args, train_texts)
        save()
    if not args.skip_rss:
        rss_run = trained_run(args, workdir, args.rss_model, 200)
        _, all_texts, _ = load_texts(cache, "train")
        print(f"memory: imdb predict {rss_run.model} on {args.rss_sizes} reviews", flush=True)
        report["memory"] = {
            "run": f"{rss_run.model}/{rss_run.run_id}",
            "rows": measure_memory(args, workdir, rss_run, all_texts),
        }
    save()
    print_report(report)
    print(f"results: {args.output}")


if __name__ == "__main__":
    main()
