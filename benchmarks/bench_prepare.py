"""How long `imdb prepare` makes the user wait, and how much memory it takes.

Full IMDB (50k reviews) from a local copy, one tokenizer (minilm's, the bert-base-uncased
vocabulary), max length 128, a fresh workspace in a temp folder:

  - cold: the first `python -m imdb_cli prepare` (read, split, tokenize, write);
  - cache hit: the same command again, as a new process (what the user waits for);
  - CLI start-up: `python -m imdb_cli --version` (imports only), to show what the hit
    spends outside `prepare` itself;
  - peak RSS of each process (wait4's ru_maxrss), tokenization throughput from the manifest.

    python benchmarks/bench_prepare.py [--data-dir PATH] [--model minilm] [--max-length 128]

Targets: cold <= 60 s, cache hit <= 3 s, peak RSS <= 3 GB. Results are printed and written
to benchmarks/results/bench_prepare.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("IMDB_DATA_DIR") or REPO.parent / "shared" / "data" / "imdb")
RESULTS = REPO / "benchmarks" / "results" / "bench_prepare.json"
TARGETS = {"cold_s": 60.0, "cache_hit_s": 3.0, "peak_rss_gb": 3.0}


def run(args: list[str]) -> tuple[float, float, float, str]:
    """Run `python -m imdb_cli ARGS`; return (wall s, CPU s, peak RSS in GB, output)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "imdb_cli", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"`imdb {' '.join(args)}` failed ({process.returncode}):\n{output}")
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024**2, output  # ru_maxrss is in KiB on Linux


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--keep", action="store_true", help="keep the temp workspace")
    options = parser.parse_args()
    if not options.data_dir.is_dir():
        raise SystemExit(f"no IMDB at {options.data_dir}; pass --data-dir or set IMDB_DATA_DIR")

    workdir = Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    command = ["--workdir", str(workdir), "-q", "prepare", "--models", options.model]
    command += ["--data-dir", str(options.data_dir), "--max-length", str(options.max_length)]
    try:
        load_before = os.getloadavg()[0]
        startup_s, startup_cpu, startup_rss, _ = run(["--version"])
        cold_s, cold_cpu, cold_rss, _ = run(command)
        hit_s, hit_cpu, hit_rss, hit_output = run(command)
        load_after = os.getloadavg()[0]
        manifests = [
            json.loads(p.read_text()) for p in workdir.glob("cache/*/*-len*/manifest.json")
        ]
    finally:
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if len(manifests) != 1 or "reused" not in hit_output:
        raise SystemExit(f"expected one tokenized cache and a reused second run:\n{hit_output}")
    manifest = manifests[0]
    reviews = sum(manifest["sizes"].values())
    tokenize_s = float(manifest["tokenize_seconds"])
    tokenize_cpu = float(manifest.get("tokenize_cpu_seconds", float("nan")))
    results: dict[str, Any] = {
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            # Other work on the machine slows every wall time; CPU times are steadier.
            "load_average_1min_before_after": [round(load_before, 2), round(load_after, 2)],
        },
        "setup": {
            "data_dir": str(options.data_dir),
            "model": options.model,
            "tokenizer_key": manifest["tokenizer_key"],
            "max_length": options.max_length,
            "reviews": reviews,
            "duplicates_dropped": manifest["duplicates_dropped"],
        },
        "cold_s": round(cold_s, 2),
        "cold_cpu_s": round(cold_cpu, 2),
        "tokenize_s": round(tokenize_s, 2),
        "tokenize_cpu_s": round(tokenize_cpu, 2),
        "tokenize_reviews_per_s": round(reviews / tokenize_s, 1),
        "cache_hit_s": round(hit_s, 2),
        "cache_hit_cpu_s": round(hit_cpu, 2),
        "cli_startup_s": round(startup_s, 2),
        "cli_startup_cpu_s": round(startup_cpu, 2),
        "cache_hit_minus_startup_s": round(hit_s - startup_s, 2),
        "peak_rss_gb": round(max(cold_rss, hit_rss), 3),
        "peak_rss_cold_gb": round(cold_rss, 3),
        "peak_rss_hit_gb": round(hit_rss, 3),
        "peak_rss_startup_gb": round(startup_rss, 3),
        "targets": TARGETS,
    }
    results["met"] = {name: results[name] <= limit for name, limit in TARGETS.items()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")

    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"imdb prepare, {reviews:,} reviews, {options.model}, len {options.max_length}"
    )
    for column in ("measure", "wall", "CPU", "target"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    rows = [
        ("cold prepare", f"{cold_s:.1f} s", f"{cold_cpu:.1f} s", "cold_s"),
        ("  of which tokenizing", f"{tokenize_s:.1f} s", f"{tokenize_cpu:.1f} s", None),
        ("tokenization throughput", f"{reviews / tokenize_s:,.0f} reviews/s", "", None),
        ("cache hit (new process)", f"{hit_s:.2f} s", f"{hit_cpu:.2f} s", "cache_hit_s"),
        ("  CLI start-up alone", f"{startup_s:.2f} s", f"{startup_cpu:.2f} s", None),
        (
            "  hit minus start-up",
            f"{hit_s - startup_s:.2f} s",
            f"{hit_cpu - startup_cpu:.2f} s",
            None,
        ),
        ("peak RSS (cold / hit)", f"{cold_rss:.2f} / {hit_rss:.2f} GB", "", "peak_rss_gb"),
    ]
    for label, wall, cpu, target in rows:
        if target is None:
            table.add_row(label, wall, cpu, "")
        else:
            mark = "ok" if results["met"][target] else "MISSED"
            table.add_row(label, wall, cpu, f"<= {TARGETS[target]:g} ({mark})")
    Console().print(table)
    machine = results["machine"]
    print(
        f"machine: {machine['cpu']}, {machine['cores']} cores, load average "
        f"{load_before:.1f} -> {load_after:.1f}; results in {RESULTS}"
    )


if __name__ == "__main__":
    main()
