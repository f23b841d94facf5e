"""Training speed of `imdb train` against the Hugging Face `Trainer`, side by side.

    python benchmarks/bench_train.py                   # CPU: tiny-bert, minilm, batch 16, fp32
    python benchmarks/bench_train.py --device cuda     # GPU: bert-base-arch and
                                                       # modernbert-base-arch, batch 8, 64, bf16
    python benchmarks/bench_train.py --device cuda --full-recipe   # the study's recipe

For each model and batch size, in one process: a fresh model is trained for a few warm-up
steps on each side, then a fresh model for `--steps` timed steps on each side, ours first.
Ours is `imdb_cli.training.loop.train` exactly as `imdb train` calls it, on `--steps x batch`
training reviews (`limit_train`); its speed is what the run's ledger records (the training
loop only, validation and test excluded). The Trainer trains the same model class on the
same token ids from the same cache with the same batch, precision and optimizer math; its
clock runs from the Trainer's epoch start to epoch end. Repeat runs on a small CPU
differ by 10-15%, so compare only the ratio ours/Trainer measured in one run.

Results go to benchmarks/results/bench_train-<device>.json and a table on the terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere, without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

import hf_trainer_baseline as hf  # noqa: E402

from imdb_cli import registry  # noqa: E402
from imdb_cli.config import ModelSpec, TrainConfig  # noqa: E402
from imdb_cli.console import set_verbosity  # noqa: E402
from imdb_cli.data.entry import load_dataset_entry  # noqa: E402
from imdb_cli.data.prepare import prepare  # noqa: E402
from imdb_cli.data.sources import DataSource  # noqa: E402
from imdb_cli.data.split import MIN_LIMIT, SPLITS, SplitOptions  # noqa: E402
from imdb_cli.data.tokenized import load_split  # noqa: E402
from imdb_cli.device import choose_device, choose_precision, device_name  # noqa: E402
from imdb_cli.errors import ImdbError  # noqa: E402
from imdb_cli.model import EncoderForClassification  # noqa: E402
from imdb_cli.training.batches import limit_split  # noqa: E402
from imdb_cli.training.loop import train  # noqa: E402
from imdb_cli.training.optimizer import make_optimizer  # noqa: E402
from imdb_cli.workspace import Workspace  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
DEFAULT_WORKDIR = RESULTS / "workspace"  # its own workspace: bench runs never mix with yours
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data" / "imdb"

# CPU: 2 rounds x 15 = 30 timed steps per side after 5 warm-up steps: about 3 minutes
# on 2 cores. GPU: 150 timed steps per side after 20 warm-up steps, about 2 minutes for
# the four pairs (each training call also validates, tests and writes a checkpoint).
CPU_DEFAULTS = {
    "models": "tiny-bert,minilm",
    "batch_sizes": "16",
    "steps": 15,
    "rounds": 2,
    "warmup": 5,
}
GPU_DEFAULTS = {
    "models": "bert-base-arch,modernbert-base-arch",
    "batch_sizes": "8,64",
    "steps": 150,
    "rounds": 1,
    "warmup": 20,
}

# Dense bf16/fp16 tensor-core peak, TFLOP/s, from NVIDIA's datasheets (no sparsity).
# Matched against torch.cuda.get_device_name(); the first matching row wins.
PEAK_TFLOPS_16BIT = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),  # SXM
    ("H200", 989.4),  # same chip as H100 SXM
    ("A100", 312.0),
)


# --------------------------------------------------------------------------- FLOP and MFU


def train_flop_per_token(
    non_embedding_params: int, layers: int, hidden: int, seq_len: int
) -> float:
    """Training FLOP per token (forward + backward) of a transformer encoder.

    6 N + 12 L H T, with N the non-embedding parameters, L layers, H the hidden size and
    T the sequence length: 2 N per token for the forward matmuls and twice that for the
    backward (6 N), plus the attention scores Q K^T and the weighted sum A V, each 2 T H
    FLOP per token per layer forward (4 L H T), times 3 for forward + backward (12 L H T).
    Source: Chowdhery et al. 2022, "PaLM", Appendix B (model FLOPs utilisation), which
    follows Kaplan et al. 2020, "Scaling Laws for Neural Language Models", section 2.1.
    An encoder attends both ways, so no causal halving. Padded positions are computed like
    any other, so T is the padded length.
    """
    return 6.0 * non_embedding_params + 12.0 * layers * hidden * seq_len


def non_embedding_parameters(model: nn.Module) -> int:
    """Parameters outside nn.Embedding tables: lookups cost no matmul FLOP."""
    total = sum(p.numel() for p in model.parameters())
    embedding = sum(
        p.numel()
        for module in model.modules()
        if isinstance(module, nn.Embedding)
        for p in module.parameters(recurse=False)
    )
    return total - embedding


@dataclass(frozen=True)
class ModelShape:
    parameters: int
    non_embedding_parameters: int
    layers: int
    hidden: int


def model_shape(spec: ModelSpec) -> ModelShape:
    """Counted on the meta device: no memory, no weights, no download."""
    config = registry.architecture_config(spec)
    from transformers import AutoModel

    with torch.device("meta"):
        model = EncoderForClassification(AutoModel.from_config(config, trust_remote_code=False))
    return ModelShape(
        parameters=sum(p.numel() for p in model.parameters()),
        non_embedding_parameters=non_embedding_parameters(model),
        layers=int(config.num_hidden_layers),
        hidden=int(config.hidden_size),
    )


def peak_tflops(device: torch.device, precision: str, given: float | None) -> float | None:
    """The device's peak for this precision: --peak-tflops, else the datasheet table.

    Only 16-bit tensor-core peaks are tabled; fp32 and the CPU get no MFU unless given.
    """
    if given is not None:
        return given
    if device.type != "cuda" or precision not in ("bf16", "fp16"):
        return None
    name = torch.cuda.get_device_name(device)
    for pattern, peak in PEAK_TFLOPS_16BIT:
        if pattern in name:
            return peak
    return None


# --------------------------------------------------------------------------- memory


@contextlib.contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, Any]]:
    """Peak memory of the block: CUDA allocations on a GPU, resident set size on the CPU.

    On Linux the RSS high-water mark is reset by writing 5 to /proc/self/clear_refs, so
    the CPU figure belongs to this block, not to the whole process.
    """
    found: dict[str, Any] = {}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield found
        torch.cuda.synchronize(device)
        found["bytes"] = int(torch.cuda.max_memory_allocated(device))
        found["kind"] = "cuda max_memory_allocated"
        return
    reset = _reset_rss_peak()
    yield found
    peak = _rss_peak_bytes()
    if reset and peak is not None:
        found["bytes"], found["kind"] = peak, "peak RSS (VmHWM)"
    else:  # whole-process high-water mark: an upper bound for this block
        found["bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        found["kind"] = "peak RSS of the process so far"


def _reset_rss_peak() -> bool:
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _rss_peak_bytes() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# --------------------------------------------------------------------------- the two sides


@dataclass
class Measurement:
    side: str  # "ours" or "trainer"
    samples: int
    seconds: float
    peak_memory_bytes: int
    memory_kind: str
    rounds: list[float] = dataclasses.field(default_factory=list)  # samples/s of each run

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0


def bench_config(spec: ModelSpec, batch_size: int, precision: str, device: str) -> TrainConfig:
    """The model's training settings with the benchmark's batch and precision, a constant
    learning rate and AdamW without decay (= Adam): the same math on both sides."""
    return dataclasses.replace(
        spec.training,
        batch_size=batch_size,
        precision=precision,
        device=device,
        optimizer="adamw",
        weight_decay=0.0,
        scheduler="constant",
        warmup_ratio=0.0,
        grad_accum=1,
        epochs=1,
        early_stopping_patience=None,
    )


def run_ours(
    workspace: Workspace,
    spec: ModelSpec,
    config: TrainConfig,
    cache: Any,
    samples: int,
    device: torch.device,
    keep_runs: bool,
) -> Measurement:
    """`imdb train` on `samples` training reviews (its --limit-train), on the pinned cache;
    the speed its ledger records for the epoch."""
    config = dataclasses.replace(config, limit_train=samples, epochs=1)
    with peak_memory(device) as memory:
        run = train(workspace, spec, config, cache=cache)
    epoch = run.ledger.epochs[0]
    if not keep_runs:
        shutil.rmtree(run.path, ignore_errors=True)
    return Measurement(
        "ours", epoch.train_samples, epoch.train_seconds, memory["bytes"], memory["kind"]
    )


def run_trainer(
    spec: ModelSpec,
    train_split: Any,
    config: TrainConfig,
    samples: int,
    device: torch.device,
    fused: bool,
) -> Measurement:
    """The Trainer on the very reviews `imdb train --limit-train samples` picks."""
    rows = limit_split(train_split, samples, config.seed)
    with peak_memory(device) as memory:
        timing = hf.time_training(spec, rows, config, device, config.precision, fused)
    return Measurement("trainer", timing.samples, timing.seconds, memory["bytes"], memory["kind"])


def uses_fused_adam(device: torch.device, config: TrainConfig) -> bool:
    """Whether our engine steps with the fused Adam kernel on this device (probed on a
    tiny layer), so that the Trainer is given the same kernel."""
    probe = nn.Linear(2, 2).to(device)
    optimizer = make_optimizer(probe, config)
    return bool(optimizer.param_groups[0].get("fused"))


# --------------------------------------------------------------------------- results


@dataclass
class Pair:
    """Both sides' measurements for one model and batch size (a side may be absent)."""

    model: str
    batch_size: int
    precision: str
    seq_len: int
    flop_per_token: float
    shape: ModelShape
    ours: Measurement | None
    trainer: Measurement | None
    peak_tflops: float | None

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.trainer is None or not self.trainer.samples_per_s:
            return None
        return self.ours.samples_per_s / self.trainer.samples_per_s

    def figures(self, m: Measurement | None) -> dict[str, Any] | None:
        if m is None:
            return None
        tokens_per_s = m.samples_per_s * self.seq_len
        flops = tokens_per_s * self.flop_per_token
        return {
            "samples": m.samples,
            "seconds": round(m.seconds, 4),
            "samples_per_s": round(m.samples_per_s, 3),
            "samples_per_s_by_round": m.rounds,
            "tokens_per_s": round(tokens_per_s, 1),
            "achieved_tflops": round(flops / 1e12, 6),
            "mfu": round(flops / (self.peak_tflops * 1e12), 4) if self.peak_tflops else None,
            "peak_memory_bytes": m.peak_memory_bytes,
            "memory_kind": m.memory_kind,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "batch_size": self.batch_size,
            "precision": self.precision,
            "seq_len": self.seq_len,
            "parameters": self.shape.parameters,
            "non_embedding_parameters": self.shape.non_embedding_parameters,
            "train_flop_per_token": self.flop_per_token,
            "peak_tflops": self.peak_tflops,
            "ours": self.figures(self.ours),
            "trainer": self.figures(self.trainer),
            "ratio_ours_over_trainer": round(self.ratio, 3) if self.ratio else None,
        }

    def summary(self) -> str:
        def speed(m: Measurement | None) -> str:
            return f"{m.samples_per_s:.1f} samples/s" if m else "-"

        ratio = f" | ours / Trainer {self.ratio:.2f}x" if self.ratio else ""
        return f"  ours {speed(self.ours)} | Trainer {speed(self.trainer)}{ratio}"


def environment(device: torch.device) -> dict[str, Any]:
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": device_name(device),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "versions": {
            name: version(name) for name in ("torch", "transformers", "accelerate", "imdb-cli")
        },
        "git": commit or None,
        # Other processes on the machine skew CPU figures badly: say how busy it was.
        "load_average_1m_at_start": load_average(),
        "niceness": os.nice(0) if hasattr(os, "nice") else None,
    }


def load_average() -> float | None:
    """The 1-minute load average: above the core count, other work shared the CPU."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def _memory(m: Measurement | None) -> str:
    return f"{m.peak_memory_bytes / 2**30:.2f} GiB" if m else "-"


def results_table(pairs: list[Pair], device: torch.device) -> Table:
    gpu = device.type == "cuda"
    unit, scale = ("TFLOP/s", 1e12) if gpu else ("GFLOP/s", 1e9)
    table = Table(title=f"training speed, ours vs Hugging Face Trainer ({device_name(device)})")
    columns = (
        "model",
        "batch",
        "precision",
        "ours samples/s",
        "Trainer samples/s",
        "ours / Trainer",
        "ours tokens/s",
        f"ours {unit}",
        "ours MFU",
        "Trainer MFU",
        "ours peak mem",
        "Trainer peak mem",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "model" else "right")

    def cell(figures: dict[str, Any] | None, key: str, fmt: str) -> str:
        if figures is None or figures[key] is None:
            return "-"
        return format(figures[key], fmt)

    for pair in pairs:
        ours, trainer = pair.figures(pair.ours), pair.figures(pair.trainer)
        achieved = {"flops": ours["achieved_tflops"] * 1e12 / scale} if ours else None
        table.add_row(
            pair.model,
            str(pair.batch_size),
            pair.precision,
            cell(ours, "samples_per_s", ",.1f"),
            cell(trainer, "samples_per_s", ",.1f"),
            f"{pair.ratio:.2f}x" if pair.ratio else "-",
            cell(ours, "tokens_per_s", ",.0f"),
            cell(achieved, "flops", ",.1f"),
            cell(ours, "mfu", ".1%"),
            cell(trainer, "mfu", ".1%"),
            _memory(pair.ours),
            _memory(pair.trainer),
        )
    return table


# --------------------------------------------------------------------------- main


def prepare_cache(
    workspace: Workspace,
    specs: list[ModelSpec],
    data_dir: Path | None,
    limit: int | None,
    max_length: int,
) -> dict[str, Any]:
    """Tokenize (or reuse) the benchmark's reviews; model key -> its TokenizedCache."""
    entry = load_dataset_entry(None)  # IMDB
    source = DataSource.of(entry, data_dir)
    options = SplitOptions.of(entry.split, limit=limit)
    result = prepare(workspace, specs, source, options, max_length)
    return dict(result.caches)


def needed_reviews(batch_sizes: list[int], steps: int, warmup: int) -> int:
    """Reviews to prepare so that the training split (80%) holds the longest timed run."""
    train = max(batch_sizes) * max(steps, warmup)
    return max(MIN_LIMIT, math.ceil(train / 0.8 / 100) * 100 + 100)


def parse_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise SystemExit(f"{what}: expected comma-separated integers, got {text!r}") from exc
    if not values or min(values) < 1:
        raise SystemExit(f"{what}: expected positive integers, got {text!r}")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cpu, gpu = CPU_DEFAULTS, GPU_DEFAULTS
    parser = argparse.ArgumentParser(
        description="Training speed of `imdb train` vs the Hugging Face Trainer, side by side.",
    )
    add = parser.add_argument
    add("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: auto")
    add("--models", help=f"model keys (CPU: {cpu['models']}; GPU: {gpu['models']})")
    add("--batch-sizes", help=f"CPU: {cpu['batch_sizes']}; GPU: {gpu['batch_sizes']}")
    add(
        "--steps",
        type=int,
        help=f"timed steps per side per round (CPU: {cpu['steps']}; GPU: {gpu['steps']})",
    )
    add(
        "--rounds",
        type=int,
        help="timed runs per side, alternating which side goes first "
        f"(CPU: {cpu['rounds']}; GPU: {gpu['rounds']})",
    )
    add(
        "--warmup-steps",
        type=int,
        help=f"untimed steps per side first (CPU: {cpu['warmup']}; GPU: {gpu['warmup']})",
    )
    add(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16", "fp16"),
        help="default auto: bf16 on a GPU, fp32 on the CPU",
    )
    add("--max-length", type=int, default=128, help="tokens per review (default 128)")
    add(
        "--peak-tflops",
        type=float,
        help="the device's peak TFLOP/s for MFU (default: datasheet table, H100/H200/A100 "
        "bf16/fp16 dense; none for fp32 or the CPU)",
    )
    add("--only", choices=("both", "ours", "trainer"), default="both", help="sides to run")
    add(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help=f"the benchmark's own workspace (default {DEFAULT_WORKDIR.relative_to(REPO)})",
    )
    add(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR if DEFAULT_DATA_DIR.is_dir() else None,
        help="local IMDB folder (default ../shared/data/imdb if present, else "
        "$IMDB_DATA_DIR, else the Hub)",
    )
    add(
        "--limit",
        type=int,
        help="reviews to prepare (default: just enough for the timed runs; "
        "all 50k for --full-recipe)",
    )
    add("--output", type=Path, help="results JSON (default benchmarks/results/...)")
    add("--keep-runs", action="store_true", help="keep our timed runs' folders")
    add(
        "--full-recipe",
        action="store_true",
        help="the study's recipe end to end (batch 8, 5 epochs over 40k reviews, validation "
        "every epoch, test), ours vs Trainer; GPU only, or the CPU with a small --limit",
    )
    add("--recipe-epochs", type=int, help="epochs for --full-recipe (default: the YAML's, 5)")
    add("--recipe-model", default="bert-base-arch", help="model for --full-recipe")
    args = parser.parse_args(argv)
    for name in ("steps", "rounds", "warmup_steps", "recipe_epochs", "limit", "max_length"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def apply_defaults(args: argparse.Namespace, device: torch.device) -> None:
    """Fill what was not given with the device's defaults."""
    defaults = GPU_DEFAULTS if device.type == "cuda" else CPU_DEFAULTS
    args.models = args.models or defaults["models"]
    args.batch_sizes = args.batch_sizes or defaults["batch_sizes"]
    args.steps = args.steps or defaults["steps"]
    args.rounds = args.rounds or defaults["rounds"]
    args.warmup_steps = args.warmup_steps or defaults["warmup"]


def measure_pair(
    args: argparse.Namespace,
    workspace: Workspace,
    spec: ModelSpec,
    cache: Any,
    train_split: Any,
    config: TrainConfig,
    device: torch.device,
    fused: bool,
) -> tuple[Measurement | None, Measurement | None]:
    """Warm both sides up, then `--rounds` timed runs each, alternating which goes first
    (ours, Trainer, Trainer, ours, ...) so that a slow drift of the machine hits both."""
    batch = config.batch_size
    timed, warm = batch * args.steps, batch * args.warmup_steps
    sides = [s for s in ("ours", "trainer") if args.only in ("both", s)]

    def once(side: str, samples: int, keep: bool) -> Measurement:
        if side == "ours":
            return run_ours(workspace, spec, config, cache, samples, device, keep)
        return run_trainer(spec, train_split, config, samples, device, fused)

    for side in sides:
        once(side, warm, keep=False)
    found: dict[str, list[Measurement]] = {side: [] for side in sides}
    for round_ in range(args.rounds):
        for side in sides if round_ % 2 == 0 else sides[::-1]:
            found[side].append(once(side, timed, keep=args.keep_runs))
    merged = {side: merge(found[side]) for side in sides}
    return merged.get("ours"), merged.get("trainer")


def merge(measurements: list[Measurement]) -> Measurement:
    """Several timed runs of one side as one: samples and seconds add up, memory peaks."""
    first = measurements[0]
    return Measurement(
        first.side,
        sum(m.samples for m in measurements),
        sum(m.seconds for m in measurements),
        max(m.peak_memory_bytes for m in measurements),
        first.memory_kind,
        [round(m.samples_per_s, 3) for m in measurements],
    )


def throughput(
    args: argparse.Namespace, device: torch.device, console: Console, output: Path
) -> dict:
    precision = choose_precision(args.precision, device)
    keys = registry.parse_model_list(args.models)
    specs = [registry.load_spec(key) for key in keys]
    batch_sizes = parse_list(args.batch_sizes, "--batch-sizes")
    # Just enough reviews: every training call also validates and tests on its cache.
    limit = args.limit or needed_reviews(batch_sizes, args.steps, args.warmup_steps)
    workspace = Workspace(args.workdir)
    console.print(f"preparing {limit} reviews in {workspace.root} ...")
    caches = prepare_cache(workspace, specs, args.data_dir, limit, args.max_length)
    fused = uses_fused_adam(device, bench_config(specs[0], 8, precision, device.type))
    peak = peak_tflops(device, precision, args.peak_tflops)
    report: dict[str, Any] = {
        "kind": "throughput",
        "environment": environment(device),
        "settings": {
            "models": keys,
            "batch_sizes": batch_sizes,
            "steps": args.steps,
            "warmup_steps": args.warmup_steps,
            "rounds": args.rounds,
            "precision": precision,
            "max_length": args.max_length,
            "prepared_reviews": limit,
            "ours_fused_adam": fused,
            "trainer_optim": hf.trainer_optim(fused),
            "flop_formula": "6 * non_embedding_params + 12 * layers * hidden * seq_len",
        },
        "results": [],
        "errors": [],
    }

    pairs: list[Pair] = []
    for spec in specs:
        shape = model_shape(spec)
        flop = train_flop_per_token(
            shape.non_embedding_parameters, shape.layers, shape.hidden, args.max_length
        )
        train_split = load_split(caches[spec.key], "train", mmap=False)
        for batch_size in batch_sizes:
            config = bench_config(spec, batch_size, precision, device.type)
            needed = batch_size * max(args.steps, args.warmup_steps)
            if len(train_split) < needed:
                raise SystemExit(
                    f"{spec.key}: {needed} training reviews needed, the cache has "
                    f"{len(train_split)}; give a larger --limit or fewer --steps"
                )
            console.print(
                f"{spec.key} batch {batch_size} {precision}: {args.warmup_steps} warm-up steps, "
                f"then {args.rounds} x {args.steps} timed steps per side"
            )
            try:
                ours, trainer = measure_pair(
                    args, workspace, spec, caches[spec.key], train_split, config, device, fused
                )
            except Exception as exc:  # one broken pair must not lose the others' figures
                message = f"{spec.key} batch {batch_size}: {type(exc).__name__}: {exc}"
                console.print(f"[red]failed: {message}[/red]")
                report["errors"].append(message)
                write_report(output, report)
                continue
            pair = Pair(
                model=spec.key,
                batch_size=batch_size,
                precision=precision,
                seq_len=args.max_length,
                flop_per_token=flop,
                shape=shape,
                ours=ours,
                trainer=trainer,
                peak_tflops=peak,
            )
            pairs.append(pair)
            report["results"].append(pair.to_dict())
            write_report(output, report)  # a killed run keeps what it measured
            console.print(pair.summary())
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    console.print(results_table(pairs, device))
    per_token = modernbert_vs_bert(pairs)
    if per_token:
        report["modernbert_over_bert_tokens_per_s"] = per_token
        console.print(
            "ModernBERT-base / BERT-base tokens/s (ours): "
            + ", ".join(f"batch {b}: {r:.2f}x" for b, r in per_token.items())
        )
    return report


def modernbert_vs_bert(pairs: list[Pair]) -> dict[int, float]:
    """Issue 6 asks ModernBERT-base to be no slower per token than BERT-base: the ratio of
    our tokens/s, per batch size."""
    ours = {(p.model, p.batch_size): p.ours for p in pairs if p.ours is not None}
    ratios = {}
    for (model, batch), modern in ours.items():
        bert = ours.get(("bert-base-arch", batch))
        if model == "modernbert-base-arch" and bert is not None and bert.samples_per_s:
            ratios[batch] = round(modern.samples_per_s / bert.samples_per_s, 3)
    return ratios


def write_report(output: Path, report: dict[str, Any]) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def full_recipe(
    args: argparse.Namespace, device: torch.device, console: Console, output: Path
) -> dict:
    """The study's recipe end to end, ours then the Trainer: wall time and accuracy."""
    if device.type != "cuda" and args.limit is None:
        raise SystemExit(
            "--full-recipe trains 5 epochs over 40k reviews: GPU only "
            "(on the CPU give a small --limit to try it)"
        )
    precision = choose_precision(args.precision, device)
    spec = registry.load_spec(args.recipe_model)
    config = dataclasses.replace(spec.training, precision=precision, device=device.type)
    if args.recipe_epochs is not None:
        config = dataclasses.replace(config, epochs=args.recipe_epochs)
    workspace = Workspace(args.workdir)
    caches = prepare_cache(workspace, [spec], args.data_dir, args.limit, config.max_length)
    cache = caches[spec.key]
    fused = uses_fused_adam(device, config)
    report: dict[str, Any] = {
        "kind": "full_recipe",
        "environment": environment(device),
        "settings": {
            "model": spec.key,
            "config": config.to_dict(),
            "reviews": cache.sizes(),
            "ours_fused_adam": fused,
            "trainer_optim": hf.trainer_optim(fused),
        },
    }
    console.print(
        f"full recipe: {spec.key}, {cache.sizes()['train']:,} training reviews, batch "
        f"{config.batch_size}, {config.epochs} epoch(s), {precision}, {config.optimizer} "
        f"lr {config.lr} {config.scheduler}"
    )
    started = time.perf_counter()
    run = train(workspace, spec, config, cache=cache)
    ours_seconds = time.perf_counter() - started
    ledger = run.ledger
    ours: dict[str, Any] = {
        "seconds": round(ours_seconds, 2),
        "ledger_total_seconds": ledger.total_seconds,
        "train_seconds": round(ledger.train_seconds, 2),
        "epoch_seconds": [e.train_seconds for e in ledger.epochs],
        "val_acc": [e.val_acc for e in ledger.epochs],
        "test_acc": ledger.test.acc if ledger.test else None,
        "test_loss": ledger.test.loss if ledger.test else None,
    }
    report["ours"] = ours
    write_report(output, report)
    if not args.keep_runs:
        shutil.rmtree(run.path, ignore_errors=True)
    console.print(f"  ours: {ours['seconds']:.1f}s end to end")
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    splits = {split: load_split(cache, split, mmap=False) for split in SPLITS}
    # Adam and AdamW without decay are the same update; the Trainer offers only AdamW.
    trainer_config = dataclasses.replace(config, weight_decay=0.0)
    trainer: dict[str, Any] = hf.full_recipe(spec, splits, trainer_config, device, precision, fused)
    report["trainer"] = trainer
    speedup = trainer["seconds"] / ours_seconds
    report["speedup_trainer_over_ours"] = round(speedup, 3)
    write_report(output, report)
    table = Table(title=f"the study's recipe end to end ({device_name(device)})")
    for column in ("side", "end to end", "training loop", "best val acc", "test acc"):
        table.add_column(column, justify="left" if column == "side" else "right")
    for name, side in (("ours", ours), ("Trainer", trainer)):
        table.add_row(
            name,
            f"{side['seconds']:.1f}s",
            f"{side['train_seconds']:.1f}s",
            f"{max(side['val_acc']):.4f}" if side["val_acc"] else "-",
            f"{side['test_acc']:.4f}" if side["test_acc"] is not None else "-",
        )
    table.caption = f"Trainer / ours wall time: {speedup:.2f}x"
    console.print(table)
    return report


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        device = choose_device(args.device)
        apply_defaults(args, device)
        set_verbosity(quiet=True, verbose=False)  # no progress bars between the figures
        # A log file or a pipe gets the whole table, not 80 columns of it.
        console = Console(width=None if sys.stdout.isatty() else 160)
        suffix = "-recipe" if args.full_recipe else ""
        output = args.output or RESULTS / f"bench_train-{device.type}{suffix}.json"
        run = full_recipe if args.full_recipe else throughput
        report = run(args, device, console, output)
    except ImdbError as exc:
        raise SystemExit(f"error: {exc.message}") from None
    report["environment"]["load_average_1m_at_end"] = load_average()
    write_report(output, report)
    console.print(f"results written to {output}")


if __name__ == "__main__":
    main()
