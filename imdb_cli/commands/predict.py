"""`imdb predict MODEL|RUN|EXPORT`: score new reviews with a trained model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from imdb_cli.commands.common import RunsDatasetOption, handles_errors, runs_dataset, workspace
from imdb_cli.console import info
from imdb_cli.errors import ImdbError
from imdb_cli.handoff import predict_output, review_files
from imdb_cli.handoff.predict import load_predictor, predict_reviews


@handles_errors
def predict(
    target: Annotated[
        str,
        typer.Argument(
            help="A model key (the run its latest sweep selected, else its latest completed "
            "run; the best epoch), MODEL/RUN-ID, a run "
            "folder, or a folder written by `imdb export` (HF or ONNX).",
            show_default=False,
        ),
    ],
    text: Annotated[
        list[str] | None,
        typer.Option("--text", help="A review to score (repeat for several).", show_default=False),
    ] = None,
    file: Annotated[
        str | None,
        typer.Option(
            "--file",
            help="Reviews to score: .txt (one a line), .csv, .tsv, .jsonl or .parquet "
            "(the review in --column), or - for standard input (one a line).",
            show_default=False,
        ),
    ] = None,
    column: Annotated[
        str, typer.Option(help="The column (or JSON key) holding the review in --file.")
    ] = "text",
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="table, jsonl, csv, tsv or json. Default: from -o's suffix, else table.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the scores to this file (written whole or not at all; a device or "
            "FIFO, such as /dev/stdout, as a stream). Never the --file being read.",
            show_default=False,
        ),
    ] = None,
    embeddings: Annotated[
        Path | None,
        typer.Option(
            "--embeddings",
            help="Also save each review's pooled vector, in output order, to this .npy file.",
            show_default=False,
        ),
    ] = None,
    skip_empty: Annotated[
        bool,
        typer.Option(
            "--skip-empty", help="Pass over empty reviews (and count them) instead of failing."
        ),
    ] = False,
    checkpoint: Annotated[
        str, typer.Option(help="Of a run: best (best validation epoch), last, or a file.")
    ] = "best",
    batch_size: Annotated[
        int | None,
        typer.Option(help="Reviews per batch (default: the run's eval batch size, 64)."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    dataset: RunsDatasetOption = None,
) -> None:
    """Score reviews: for each, in input order, its row (or the input's `id`), the predicted
    label and the probability of each class. Reviews are encoded exactly as the run was
    trained (tokenizer, max length, truncation)."""
    if text is None and file is None:
        raise ImdbError("no reviews to score: give --text REVIEW (one or more) or --file PATH")
    if text is not None and file is not None:
        raise ImdbError("give --text REVIEW (one or more) or --file PATH, not both")
    chosen_format = predict_output.format_for(output, fmt)
    rows_to, vectors_to = predict_output.output_targets(output, embeddings, file)
    if text is not None:
        source = review_files.from_texts(text, skip_empty=skip_empty)
    else:
        assert file is not None
        source = review_files.open_reviews(file, column, skip_empty=skip_empty)
    predictor = load_predictor(
        workspace(),
        target,
        checkpoint=checkpoint,
        device=device,
        batch_size=batch_size,
        dataset=runs_dataset(dataset),
    )
    info(f"scoring {source.name} with {predictor.description}")
    for written in (rows_to, vectors_to):
        predict_output.clean_leftovers(written)
    chunks = predict_reviews(predictor, source, keep_pooled=embeddings is not None)
    with (
        predict_output.opened(
            rows_to, chosen_format, source.key_name, predictor.label_names
        ) as rows,
        predict_output.embeddings_file(vectors_to, predictor.hidden_size) as vectors,
    ):
        count = predict_output.write_all(rows, vectors, chunks)
    if source.skipped:
        info(f"skipped {source.skipped:,} empty review(s) (--skip-empty)")
    if output is not None:
        info(f"{count:,} review(s) scored: {output}")
    if embeddings is not None:
        info(f"pooled vectors: {embeddings}")
