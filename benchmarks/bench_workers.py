"""Trials side by side on this CPU: `imdb sweep --workers 2` (one torch thread each)
against `--workers 1` (all the cores' threads in one process), the same grid, wall clock.

    python benchmarks/bench_workers.py                   # 4 tiny-bert trials, 2 rounds
    python benchmarks/bench_workers.py --rounds 3 --limit-train 400

Each round runs both, alternating which goes first, each in a fresh copy of one prepared
workspace (neither finds the other's trials), as the `imdb sweep` command a user types,
process start-up included. The 1-minute load average is read before and after each run:
above the core count, other work shared the CPU and the figure says less.
Results: benchmarks/results/bench_workers.json and a table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_train as bench

from imdb_cli import registry
from imdb_cli.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
MODEL = "tiny-bert"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1e-4,1e-3", help="the sweep's --lr")
    parser.add_argument("--seeds", default="1,2", help="the sweep's --seeds")
    parser.add_argument("--limit-train", type=int, default=200, help="training reviews a trial")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--limit", type=int, default=1000, help="reviews prepared (IMDB)")
    parser.add_argument("--data-dir", type=Path, default=None, help="a local IMDB copy")
    parser.add_argument(
        "--output", type=Path, default=REPO / "benchmarks" / "results" / "bench_workers.json"
    )
    return parser.parse_args(argv)


def sweep(workdir: Path, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    """One `imdb sweep --workers N` in `workdir`, timed, with the load around it."""
    command = [
        sys.executable, "-m", "imdb_cli", "--workdir", str(workdir), "--quiet",
        "sweep", MODEL, "--lr", args.rates, "--seeds", args.seeds,
        "--epochs", str(args.epochs), "--limit-train", str(args.limit_train),
        "--device", "cpu", "--workers", str(workers),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    load_before = bench.load_average()
    started = time.perf_counter()
    ran = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if ran.returncode != 0:
        raise SystemExit(f"imdb sweep --workers {workers} failed:\n{ran.stderr[-2000:]}")
    return {
        "workers": workers,
        "seconds": round(seconds, 2),
        "load_before": load_before,
        "load_after": bench.load_average(),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    trials = len(args.rates.split(",")) * len(args.seeds.split(","))
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as folder:
        base = Workspace(Path(folder) / "base")
        bench.prepare_cache(base, [registry.load_spec(MODEL)], args.data_dir, args.limit, 128)
        runs: list[dict[str, Any]] = []
        for round_number in range(args.rounds):
            order = (1, 2) if round_number % 2 == 0 else (2, 1)
            for workers in order:
                workdir = Path(folder) / f"r{round_number}-w{workers}"
                shutil.copytree(base.cache, workdir / "cache")
                result = sweep(workdir, workers, args)
                runs.append({"round": round_number + 1, **result})
                print(
                    f"round {round_number + 1}: --workers {workers}: {result['seconds']:.1f} s "
                    f"(load {result['load_before']} -> {result['load_after']})",
                    flush=True,
                )
                shutil.rmtree(workdir)
    one = statistics.median(r["seconds"] for r in runs if r["workers"] == 1)
    two = statistics.median(r["seconds"] for r in runs if r["workers"] == 2)
    report = {
        "trials": trials,
        "cpu_cores": cores,
        "settings": vars(args) | {"data_dir": str(args.data_dir), "output": str(args.output)},
        "runs": runs,
        "median_seconds": {"workers_1": one, "workers_2": two},
        "speedup_of_2_workers": round(one / two, 3),
    }
    bench.write_report(args.output, report)
    table = Table(title=f"{trials} {MODEL} trials on {cores} CPU cores (median of {args.rounds})")
    for column in ("", "threads each", "wall clock", "load before -> after"):
        table.add_column(column, justify="right")
    for workers, median in ((1, one), (2, two)):
        mine = [r for r in runs if r["workers"] == workers]
        loads = ", ".join(f"{r['load_before']}->{r['load_after']}" for r in mine)
        threads = max(1, (cores or 1) // workers)
        table.add_row(f"--workers {workers}", str(threads), f"{median:.1f} s", loads)
    Console().print(table)
    print(f"--workers 2 is {one / two:.2f}x as fast as --workers 1; {args.output}")


if __name__ == "__main__":
    main()
