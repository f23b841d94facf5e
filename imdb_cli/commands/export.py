"""`imdb export MODEL|RUN --out DIR`: a run's best checkpoint as a Hugging Face folder or ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from imdb_cli.commands.common import RunsDatasetOption, handles_errors, runs_dataset, workspace
from imdb_cli.console import info, out
from imdb_cli.handoff import export as exporting


@handles_errors
def export(
    target: Annotated[
        str,
        typer.Argument(
            help="A model key (the run its latest sweep selected, else its latest completed "
            "run), MODEL/RUN-ID, or a run folder.",
            show_default=False,
        ),
    ],
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="The folder to write (new, or empty), outside the workspace.",
            show_default=False,
        ),
    ],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="hf: a folder transformers loads (pipeline, AutoModelForSequenceClassification"
            " with trust_remote_code=True); onnx: model.onnx for onnxruntime.",
        ),
    ] = "hf",
    quantize: Annotated[
        str | None,
        typer.Option(
            "--quantize",
            help="int8: dynamic int8 quantization (with --format onnx); int8-static: "
            "activation ranges calibrated on 256 validation reviews. Its test accuracy next "
            "to fp32's goes into the model card.",
            show_default=False,
        ),
    ] = None,
    graph: Annotated[
        str,
        typer.Option(
            "--onnx-graph",
            help="optimized: attention, layer norms and GELU fused by onnxruntime's "
            "transformer optimizer (kept only when it gives torch's probabilities, else the "
            "plain graph is written); plain: torch.onnx's graph as exported.",
        ),
    ] = "optimized",
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace --out when it is an earlier `imdb export` (it holds .imdb-export); "
            "any other folder that is not empty stays as it is.",
        ),
    ] = False,
    dataset: RunsDatasetOption = None,
) -> None:
    """Export a run's best checkpoint, with a model card (README.md), for use without imdb."""
    exporting.check_options(fmt, quantize, graph)
    result = exporting.export(
        workspace(),
        target,
        out_dir,
        fmt=fmt,
        quantize=quantize,
        graph=graph,
        force=force,
        dataset=runs_dataset(dataset),
    )
    run = result.run
    if result.fusions is not None:
        info(f"fused graph: {result.fusions.describe()}")
    if result.onnx_difference is not None:
        info(f"onnxruntime vs torch: largest probability difference {result.onnx_difference:.1e}")
    for name, acc in result.accuracy.items():
        info(f"test accuracy of the ONNX {name} model: {acc:.4f} ({result.test_reviews:,} reviews)")
    out.print(
        f"{run.model}/{run.run_id} ({result.checkpoint.name}) -> {result.out} "
        f"({fmt}{', ' + result.written_graph + ' graph' if fmt == 'onnx' else ''}"
        f"{', ' + quantize if quantize else ''})",
        highlight=False,
        soft_wrap=True,
    )
