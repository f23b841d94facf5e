"""How fast `imdb predict` scores reviews, against the pipeline a user would otherwise run,
and how much memory it needs for large files.

    python benchmarks/bench_predict.py                        # minilm, trained here if needed
    python benchmarks/bench_predict.py --run PATH/TO/RUN      # a completed run of yours
    python benchmarks/bench_predict.py --skip-rss             # speed only
    python benchmarks/bench_predict.py --help

Speed. On the same `--reviews` test reviews of the run (default 2,000) at the run's max
length (128), the same batch size (64) and torch/onnxruntime threads, in one process:

  - pipeline: `transformers.pipeline("text-classification", model=<the HF export>,
    trust_remote_code=True)` called as the export's model card says (whole reviews, the
    model cuts them; `top_k=None`, `batch_size`);
  - pipeline, cut by the tokenizer: the same with `truncation=True, max_length=<run's>`
    (the same result for a head-truncated run; the faster way a careful user might call it);
  - imdb predict (torch): `predict.load_predictor` on the run, then `predict_reviews`;
  - imdb predict on `imdb export --format onnx` (fp32) and `--quantize int8`.

Each is timed from texts in to class probabilities out (tokenization included, loading the
model not), after an untimed warm-up, over `--rounds` rounds whose order rotates, so that a
burst of other work on the machine does not land on one side only. Reviews/s = reviews x
rounds / total seconds. Accuracy is against the reviews' labels; "same labels" counts the
reviews whose predicted label equals imdb predict (torch)'s.

Memory. Peak RSS (`ru_maxrss`, through a small launcher process) of `python -m imdb_cli
predict RUN --file reviews.txt --format jsonl -o scored.jsonl` on files of `--rss-sizes`
reviews (default 10,000 and 100,000: the run's data set's reviews, cycled), with
`--rss-model` (default tiny-bert, trained here in seconds: memory, not the model's speed,
is what is measured), next to a 100-review file (imports + model).

Setup, when there is no `--run`: `imdb prepare --models minilm --limit 20000` (2,000 test
reviews) and `imdb train minilm --epochs 1 --limit-train 2400` in the benchmark's own
workspace (`--workdir`, default benchmarks/results/bench_predict; several minutes on a
CPU), then the three exports. Everything is reused by a second run. Results:
benchmarks/results/bench_predict.json and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
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
AIMS = {"torch_vs_pipeline": 1.3, "int8_vs_pipeline": 2.5, "int8_points_lost": 0.5}

sys.path.insert(0, str(REPO))

from imdb_cli.console import set_verbosity  # noqa: E402
from imdb_cli.data.tokenized import load_texts  # noqa: E402
from imdb_cli.handoff import export_folder, predict  # noqa: E402
from imdb_cli.handoff.review_files import from_texts  # noqa: E402
from imdb_cli.runs.caches import cache_of_run  # noqa: E402
from imdb_cli.runs.run import Run, latest_run  # noqa: E402
from imdb_cli.runs.select import resolve_run  # noqa: E402
from imdb_cli.workspace import Workspace  # noqa: E402


def imdb(workdir: Path, *args: str) -> None:
    """`python -m imdb_cli --workdir WORKDIR ARGS`, its output shown; failure stops here."""
    command = [sys.executable, "-m", "imdb_cli", "--workdir", str(workdir), *args]
    print("$ imdb " + " ".join(args), flush=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if subprocess.run(command, cwd=REPO, env=env).returncode != 0:
        raise SystemExit(f"`imdb {' '.join(args)}` failed")


def trained_run(args: argparse.Namespace, workdir: Path, model: str, limit_train: int) -> Run:
    workspace = Workspace(workdir)
    run = latest_run(workspace, model)
    if run is None:
        imdb(
            workdir,
            "prepare",
            "--models",
            model,
            "--limit",
            str(args.limit),
            "--data-dir",
            str(args.data_dir),
        )
        imdb(workdir, "train", model, "--epochs", "1", "--limit-train", str(limit_train))
        run = latest_run(workspace, model)
    assert run is not None
    return run


def exports_of(run: Run, workdir: Path) -> dict[str, Path]:
    """The run's HF, ONNX fp32 and int8 exports (made once, reused when from this run)."""
    folders = {}
    for name, flags in (
        ("hf", []),
        ("onnx", ["--format", "onnx"]),
        ("int8", ["--format", "onnx", "--quantize", "int8"]),
    ):
        folder = workdir / "exports" / f"{run.model}-{run.run_id}-{name}"
        fresh = export_folder.is_export_dir(folder) and (
            export_folder.read_export(folder).config.get("source", {}).get("run_id") == run.run_id
        )
        if not fresh:
            imdb(workdir, "export", str(run.path), "--out", str(folder), "--force", *flags)
        folders[name] = folder
    return folders


# --------------------------------------------------------------------------- speed


class Side:
    """One way of scoring the reviews: a name, and a call from texts to probabilities."""

    def __init__(self, name: str, score: Any) -> None:
        self.name = name
        self.score = score
        self.seconds: list[float] = []
        self.probs: np.ndarray | None = None


def imdb_side(name: str, workdir: Path, target: str, batch_size: int) -> Side:
    predictor = predict.load_predictor(
        Workspace(workdir), target, device="cpu", batch_size=batch_size
    )

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


def measure_speed(
    sides: list[Side], texts: list[str], labels: np.ndarray, rounds: int
) -> list[dict[str, Any]]:
    for side in sides:  # warm-up: first calls allocate, load kernels, fill caches
        side.score(texts[:64])
    for number in range(rounds):
        shift = number % len(sides)
        for side in sides[shift:] + sides[:shift]:
            started = time.perf_counter()
            probs = side.score(texts)
            side.seconds.append(time.perf_counter() - started)
            side.probs = probs
            print(
                f"  round {number + 1}: {side.name}: {len(texts) / side.seconds[-1]:.1f} reviews/s",
                flush=True,
            )
    reference = next(s for s in sides if s.name == "imdb predict (torch)").probs
    assert reference is not None
    rows = []
    for side in sides:
        assert side.probs is not None
        predicted = side.probs.argmax(axis=1)
        rows.append(
            {
                "side": side.name,
                "reviews_per_s": round(len(texts) * rounds / sum(side.seconds), 2),
                "reviews_per_s_by_round": [round(len(texts) / s, 2) for s in side.seconds],
                "accuracy": round(float((predicted == labels).mean()), 4),
                "same_labels_as_torch": int((predicted == reference.argmax(axis=1)).sum()),
                "max_prob_difference_vs_torch": float(np.abs(side.probs - reference).max()),
            }
        )
    return rows


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
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "versions": {
            name: version(name) for name in ("torch", "transformers", "onnxruntime", "imdb-cli")
        },
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }


def aims(rows: list[dict[str, Any]], reviews: int) -> dict[str, Any]:
    by = {row["side"]: row for row in rows}
    pipeline = by["pipeline"]["reviews_per_s"]
    torch_row, int8 = by["imdb predict (torch)"], by["imdb predict (ONNX int8)"]
    lost = (torch_row["accuracy"] - int8["accuracy"]) * 100
    return {
        "torch_vs_pipeline": round(torch_row["reviews_per_s"] / pipeline, 2),
        "torch_vs_truncating_pipeline": round(
            torch_row["reviews_per_s"] / by["pipeline, cut by the tokenizer"]["reviews_per_s"], 2
        ),
        "pipeline_labels_identical": by["pipeline"]["same_labels_as_torch"] == reviews,
        "int8_vs_pipeline": round(int8["reviews_per_s"] / pipeline, 2),
        "int8_points_lost": round(lost, 2),
        "aims": AIMS,
    }


def print_report(report: dict[str, Any]) -> None:
    console = Console(width=100)
    speed = report.get("speed")
    if speed:
        table = Table(
            title=f"{speed['reviews']:,} test reviews of {speed['run']}, batch "
            f"{speed['batch_size']}, {report['machine']['torch_threads']} threads"
        )
        for column in ("", "reviews/s", "vs pipeline", "accuracy", "same labels"):
            table.add_column(column, justify="left" if not column else "right")
        base = speed["rows"][0]["reviews_per_s"]
        for row in speed["rows"]:
            table.add_row(
                row["side"],
                f"{row['reviews_per_s']:.1f}",
                f"{row['reviews_per_s'] / base:.2f}x",
                f"{row['accuracy']:.4f}",
                f"{row['same_labels_as_torch']:,}",
            )
        console.print(table)
        summary = speed["summary"]
        console.print(
            f"imdb predict (torch) / pipeline: {summary['torch_vs_pipeline']}x "
            f"(aim {AIMS['torch_vs_pipeline']}x), labels identical: "
            f"{summary['pipeline_labels_identical']}; ONNX int8 / pipeline: "
            f"{summary['int8_vs_pipeline']}x (aim {AIMS['int8_vs_pipeline']}x), accuracy "
            f"points lost {summary['int8_points_lost']} (aim <= {AIMS['int8_points_lost']})"
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
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rss-sizes", default="10000,100000")
    parser.add_argument("--rss-model", default="tiny-bert")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS / "bench_predict.json")
    args = parser.parse_args(argv)
    args.rss_sizes = [int(n) for n in args.rss_sizes.split(",") if n.strip()]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    set_verbosity(quiet=True, verbose=False)
    args.workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"machine": machine()}
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
        folders = exports_of(run, workdir)
        chosen, chosen_labels = texts[: args.reviews], np.asarray(labels[: args.reviews])
        length = export_folder.read_export(folders["hf"]).max_length
        print(f"speed: {len(chosen):,} test reviews, {args.rounds} rounds", flush=True)
        sides = [
            pipeline_side("pipeline", folders["hf"], args.batch_size),
            pipeline_side(
                "pipeline, cut by the tokenizer",
                folders["hf"],
                args.batch_size,
                truncation=True,
                max_length=length,
            ),
            imdb_side("imdb predict (torch)", workdir, str(run.path), args.batch_size),
            imdb_side("imdb predict (ONNX fp32)", workdir, str(folders["onnx"]), args.batch_size),
            imdb_side("imdb predict (ONNX int8)", workdir, str(folders["int8"]), args.batch_size),
        ]
        rows = measure_speed(sides, chosen, chosen_labels, args.rounds)
        report["speed"] = {
            "run": f"{run.model}/{run.run_id}",
            "reviews": len(chosen),
            "max_length": length,
            "truncation": run.ledger.config.truncation,
            "batch_size": args.batch_size,
            "rounds": args.rounds,
            "rows": rows,
            "summary": aims(rows, len(chosen)),
        }
    if not args.skip_rss:
        rss_run = trained_run(args, workdir, args.rss_model, 200)
        _, all_texts, _ = load_texts(cache, "train")
        print(f"memory: imdb predict {rss_run.model} on {args.rss_sizes} reviews", flush=True)
        report["memory"] = {
            "run": f"{rss_run.model}/{rss_run.run_id}",
            "rows": measure_memory(args, workdir, rss_run, all_texts),
        }
    report["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_report(report)
    print(f"results: {args.output}")


if __name__ == "__main__":
    main()
