"""`imdb train MODEL`: fine-tune one model with its YAML settings, overridable by options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from imdb_cli import registry
from imdb_cli.commands.common import (
    GroupByLengthOption,
    TruncationOption,
    handles_errors,
    workspace,
)
from imdb_cli.console import out, verbosity
from imdb_cli.data.sources import DATA_DIR_ENV, DataSource
from imdb_cli.ledger import Ledger
from imdb_cli.training.distributed import world_from_env
from imdb_cli.training.loop import train as train_model


@handles_errors
def train(
    model: Annotated[str, typer.Argument(help="Model key (see `imdb models`).")],
    epochs: Annotated[int | None, typer.Option(help="Training epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Reviews per training batch.")] = None,
    eval_batch_size: Annotated[
        int | None, typer.Option(help="Reviews per validation/test batch.")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    optimizer: Annotated[str | None, typer.Option(help="adam or adamw.")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="Weight decay.")] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Learning-rate schedule: constant, linear or cosine.")
    ] = None,
    warmup_ratio: Annotated[
        float | None, typer.Option(help="Fraction of the steps spent warming up, in [0, 1).")
    ] = None,
    grad_accum: Annotated[
        int | None, typer.Option(help="Batches accumulated per optimizer step.")
    ] = None,
    max_length: Annotated[
        int | None, typer.Option(help="Tokens per review (a cache must exist for it).")
    ] = None,
    truncation: TruncationOption = None,
    precision: Annotated[
        str | None,
        typer.Option(help="auto (bf16 on a GPU that has it, else fp32), fp32, bf16, fp16."),
    ] = None,
    attention: Annotated[
        str | None,
        typer.Option(
            help="Attention kernel: auto, sdpa, eager or flash_attention_2. auto = sdpa, or for "
            "ModernBERT on a GPU in bf16/fp16 with flash-attn installed, flash attention "
            "with padding removed.",
            show_default=False,
        ),
    ] = None,
    tf32: Annotated[
        bool | None,
        typer.Option(
            "--tf32/--no-tf32",
            help="TF32 tensor cores for fp32 matrix products on a GPU (default on).",
            show_default=False,
        ),
    ] = None,
    compile: Annotated[
        bool | None,
        typer.Option(
            "--compile/--no-compile",
            help="torch.compile the training forward (default off; the first steps compile).",
            show_default=False,
        ),
    ] = None,
    group_by_length: GroupByLengthOption = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the init, dropout and data order.")
    ] = None,
    limit_train: Annotated[
        int | None, typer.Option(help="Train on a seeded random N reviews of the train split.")
    ] = None,
    early_stopping_patience: Annotated[
        int | None,
        typer.Option(help="Stop after N epochs without a better validation accuracy."),
    ] = None,
    run_name: Annotated[
        str | None, typer.Option(help="Run id (default: date-time-seed).", show_default=False)
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            help="`auto`: continue the newest unfinished run of MODEL (or start one); "
            "or a run folder to continue.",
            show_default=False,
        ),
    ] = None,
    wandb: Annotated[
        bool,
        typer.Option(
            "--wandb/--no-wandb",
            help="Log to Weights & Biases ($WANDB_PROJECT, default imdb; WANDB_MODE=offline).",
        ),
    ] = False,
    prepare: Annotated[
        bool,
        typer.Option("--prepare", help="Prepare the data cache first if it is missing."),
    ] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Local IMDB folder to prepare the cache from if it is missing (implies "
            f"--prepare; default: ${DATA_DIR_ENV}, else the Hub).",
            show_default=False,
        ),
    ] = None,
    data_set: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Data set fingerprint (the folder name under <workdir>/cache, as `imdb "
            "prepare` prints it) when several are prepared; default: the newest.",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars; only the result.")
    ] = False,
) -> None:
    """Fine-tune MODEL: checkpoint every epoch, then test the best-validation epoch.

    Defaults come from model_configs/MODEL.yaml (the original study's recipe); each option
    overrides one setting. The run lands in <workdir>/runs/MODEL/<run-id>/.
    """
    if quiet:
        verbosity.quiet = True
    spec = registry.load_spec(model)
    config = spec.training.with_overrides(
        epochs=epochs,
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        lr=lr,
        optimizer=optimizer,
        weight_decay=weight_decay,
        scheduler=scheduler,
        warmup_ratio=warmup_ratio,
        grad_accum=grad_accum,
        max_length=max_length,
        truncation=truncation,
        precision=precision,
        tf32=tf32,
        attention=attention,
        compile=compile,
        group_by_length=group_by_length,
        device=device,
        seed=seed,
        limit_train=limit_train,
        early_stopping_patience=early_stopping_patience,
    )
    wants_prepare = prepare or data_dir is not None
    source = DataSource.from_options(data_dir, None) if wants_prepare else None
    run = train_model(
        workspace(),
        spec,
        config,
        resume=resume,
        run_name=run_name,
        use_wandb=wandb,
        prepare_source=source,
        data_fingerprint=data_set,
    )
    if world_from_env().main:  # under torchrun, one summary, from the writer
        out.print(summary_line(run.ledger), highlight=False, soft_wrap=True)
        out.print(f"run: {run.path}", highlight=False, soft_wrap=True)


def summary_line(ledger: Ledger) -> str:
    """The study's table row: `bert | best val acc 0.8832 @ epoch 3 | test loss ... | ...`."""
    parts = [ledger.model]
    if ledger.best_epoch is not None and ledger.best_val_acc is not None:
        parts.append(f"best val acc {ledger.best_val_acc:.4f} @ epoch {ledger.best_epoch}")
    if ledger.test is not None:
        parts += [f"test loss {ledger.test.loss:.4f}", f"test acc {ledger.test.acc:.4f}"]
    return " | ".join(parts)
