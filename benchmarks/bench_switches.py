"""Each switch of the fast path, off against on: how much faster `imdb train` gets.

    python benchmarks/bench_switches.py            # CPU: tiny-bert, 512 tokens, group_by_length
    python benchmarks/bench_switches.py --device cuda --models bert-base-arch,modernbert-base-arch \
        --switches group_by_length,compile,tf32 --max-length 512

For each model and switch, in one process: a warm-up run with the switch off and one with
it on (untimed), then `--rounds` timed runs of each, alternating which goes first. Each run
is `training.loop.train` as `imdb train` runs it, on the same `--steps x batch` training reviews;
its speed is the ledger's (training loop only). The defaults of the switches
(`imdb train --help`) are chosen from these figures.

For group_by_length it also counts, without training, the token positions an epoch over
the whole training split computes (each batch is trimmed to its longest review) with the
random order and with the length-grouped one: the share of them that is padding.

Results go to benchmarks/results/bench_switches-<device>.json and a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_train as bench

from imdb_cli import registry
from imdb_cli.config import TrainConfig
from imdb_cli.console import set_verbosity
from imdb_cli.data.tokenized import TokenizedSplit, load_split
from imdb_cli.device import choose_device, choose_precision
from imdb_cli.training.batches import batches, epoch_order, length_grouped
from imdb_cli.workspace import Workspace

SWITCHES = ("group_by_length", "compile", "tf32")
CPU_DEFAULTS = {"models": "tiny-bert", "switches": "group_by_length", "steps": 10, "rounds": 2}
GPU_DEFAULTS = {
    "models": "bert-base-arch,modernbert-base-arch",
    "switches": "group_by_length,compile",
    "steps": 100,
    "rounds": 1,
}


def padding_share(split: TokenizedSplit, config: TrainConfig, grouped: bool) -> float:
    """Share of the positions one epoch computes that are padding (order of epoch 1)."""
    lengths = np.asarray(split.lengths, dtype=np.int64)
    order = epoch_order(len(split), config.seed, 1)
    if grouped:
        order = length_grouped(order, lengths, config.batch_size, config.seed, 1)
    computed = sum(
        int(lengths[idx].max()) * len(idx) for idx in batches(len(order), config.batch_size, order)
    )
    return 1.0 - int(lengths.sum()) / computed


def measure(
    args: argparse.Namespace,
    workspace: Workspace,
    spec: Any,
    cache: Any,
    config: TrainConfig,
    switch: str,
    device: torch.device,
) -> dict[str, Any]:
    """Warm-up runs, then alternating timed runs with the switch off and on."""
    timed, warm = config.batch_size * args.steps, config.batch_size * max(2, args.steps // 5)
    variants = {
        "off": config.with_overrides(**{switch: False}),
        "on": config.with_overrides(**{switch: True}),
    }

    def once(name: str, samples: int) -> bench.Measurement:
        return bench.run_ours(workspace, spec, variants[name], cache, samples, device, False)

    for name in variants:
        once(name, warm)
    found: dict[str, list[bench.Measurement]] = {"off": [], "on": []}
    for round_ in range(args.rounds):
        for name in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
            found[name].append(once(name, timed))
    merged = {name: bench.merge(runs) for name, runs in found.items()}
    off, on = merged["off"].samples_per_s, merged["on"].samples_per_s
    result: dict[str, Any] = {
        "model": spec.key,
        "switch": switch,
        "batch_size": config.batch_size,
        "max_length": config.max_length,
        "precision": config.precision,
        "off_samples_per_s": round(off, 3),
        "on_samples_per_s": round(on, 3),
        "off_by_round": merged["off"].rounds,
        "on_by_round": merged["on"].rounds,
        "on_over_off": round(on / off, 3) if off else None,
    }
    if switch == "group_by_length":
        train = load_split(cache, "train")
        result["padding_share_random_order"] = round(padding_share(train, config, False), 4)
        result["padding_share_grouped"] = round(padding_share(train, config, True), 4)
    return result


def results_table(results: list[dict[str, Any]], device: torch.device) -> Table:
    table = Table(title=f"fast-path switches, off vs on ({device.type})")
    for column in ("model", "switch", "batch", "length", "off samples/s", "on samples/s"):
        table.add_column(column, justify="left" if column in ("model", "switch") else "right")
    table.add_column("on / off", justify="right")
    table.add_column("padding, random -> grouped", justify="right")
    for r in results:
        padding = ""
        if "padding_share_grouped" in r:
            padding = f"{r['padding_share_random_order']:.1%} -> {r['padding_share_grouped']:.1%}"
        table.add_row(
            r["model"],
            r["switch"],
            str(r["batch_size"]),
            str(r["max_length"]),
            f"{r['off_samples_per_s']:.1f}",
            f"{r['on_samples_per_s']:.1f}",
            f"{r['on_over_off']:.2f}x" if r["on_over_off"] else "-",
            padding,
        )
    return table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--device", default="auto", choices=("auto", "cpu", "cuda"))
    add("--models", help=f"CPU: {CPU_DEFAULTS['models']}; GPU: {GPU_DEFAULTS['models']}")
    add(
        "--switches",
        help=f"from {', '.join(SWITCHES)} (CPU: {CPU_DEFAULTS['switches']}; "
        f"GPU: {GPU_DEFAULTS['switches']})",
    )
    add("--batch-size", type=int, default=16)
    add("--max-length", type=int, default=512, help="tokens per review (default 512)")
    add("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    add("--steps", type=int, help="timed steps per run")
    add("--rounds", type=int, help="timed runs per variant")
    add("--limit", type=int, default=2000, help="reviews to prepare (default 2000)")
    add("--workdir", type=Path, default=bench.DEFAULT_WORKDIR)
    add(
        "--data-dir",
        type=Path,
        default=bench.DEFAULT_DATA_DIR if bench.DEFAULT_DATA_DIR.is_dir() else None,
    )
    add("--output", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 120)  # a wide table, also in a log
    set_verbosity(quiet=True, verbose=False)
    device = choose_device(args.device)
    defaults = GPU_DEFAULTS if device.type == "cuda" else CPU_DEFAULTS
    for name in ("models", "switches", "steps", "rounds"):
        if getattr(args, name) is None:
            setattr(args, name, defaults[name])
    switches = [s.strip() for s in str(args.switches).split(",") if s.strip()]
    unknown = sorted(set(switches) - set(SWITCHES))
    if unknown:
        raise SystemExit(f"--switches: unknown {', '.join(unknown)} (known: {', '.join(SWITCHES)})")
    precision = choose_precision(args.precision, device)
    output = args.output or bench.RESULTS / f"bench_switches-{device.type}.json"
    specs = [registry.load_spec(key) for key in registry.parse_model_list(args.models)]
    workspace = Workspace(args.workdir)
    console.print(f"preparing {args.limit} reviews at {args.max_length} tokens ...")
    caches = bench.prepare_cache(workspace, specs, args.data_dir, args.limit, args.max_length)
    report: dict[str, Any] = {
        "kind": "switches",
        "environment": bench.environment(device),
        "settings": {
            "models": [s.key for s in specs],
            "switches": switches,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "precision": precision,
            "steps": args.steps,
            "rounds": args.rounds,
            "prepared_reviews": args.limit,
        },
        "results": [],
        "errors": [],
    }
    for spec in specs:
        config = dataclasses.replace(
            bench.bench_config(spec, args.batch_size, precision, device.type),
            max_length=args.max_length,
            group_by_length=False,
            compile=False,
        )
        for switch in switches:
            console.print(f"{spec.key}: {switch} off vs on, {args.rounds} x {args.steps} steps")
            try:
                result = measure(args, workspace, spec, caches[spec.key], config, switch, device)
            except Exception as exc:  # one failure must not lose the other figures
                message = f"{spec.key} {switch}: {type(exc).__name__}: {exc}"
                console.print(f"[red]failed: {message}[/red]")
                report["errors"].append(message)
                bench.write_report(output, report)
                continue
            report["results"].append(result)
            bench.write_report(output, report)
            console.print(
                f"  off {result['off_samples_per_s']:.1f} | on {result['on_samples_per_s']:.1f} "
                f"samples/s | on / off {result['on_over_off']}x"
            )
    report["environment"]["load_average_1m_at_end"] = bench.load_average()
    bench.write_report(output, report)
    console.print(results_table(report["results"], device))
    console.print(f"results written to {output}")


if __name__ == "__main__":
    main()
