"""`imdb models`: the registry as a table."""

from __future__ import annotations

from imdb_cli import registry
from imdb_cli.commands.common import compact_table, handles_errors
from imdb_cli.console import out
from imdb_cli.model import accepted_inputs


@handles_errors
def models() -> None:
    """List the registered models (one YAML each in model_configs/).

    Weights are a Hub id, a local folder, package:<module> (a pip package that ships
    them) or random init; the tokenizer is named when it comes from elsewhere.
    """
    # Narrow by design (80 columns): the tokenizer shares the weights' cell, on a second
    # line only when it differs from them.
    table = compact_table(f"models in {registry.configs_dir()}")
    table.add_column("key", no_wrap=True)
    table.add_column("weights / tokenizer", overflow="fold")
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("type ids", no_wrap=True)
    for spec in registry.all_specs():
        accepted = accepted_inputs(registry.encoder_class(spec))
        source = spec.pretrained or "random init"
        if spec.tokenizer != spec.pretrained:
            source += f"\ntokenizer: {spec.tokenizer}"
        table.add_row(
            spec.key,
            source,
            f"{registry.count_parameters(spec) / 1e6:.1f}M",
            "yes" if "token_type_ids" in accepted else "no",
        )
    table.caption = "type ids: whether the encoder takes token_type_ids (BERT does)"
    table.caption_justify = "left"
    out.print(table)
