"""`imdb models`: the registry as a table."""

from __future__ import annotations

from rich.table import Table

from imdb_cli import registry
from imdb_cli.commands.common import handles_errors
from imdb_cli.console import out


@handles_errors
def models() -> None:
    """List the registered models (one YAML each in model_configs/)."""
    table = Table(title=f"models in {registry.configs_dir()}")
    table.add_column("key", no_wrap=True)
    table.add_column("weights", overflow="fold")
    table.add_column("tokenizer", overflow="fold")
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("token_type_ids", no_wrap=True)
    for spec in registry.all_specs():
        accepted = registry.accepted_inputs(registry.encoder_class(spec))
        with_types = "yes" if "token_type_ids" in accepted else "no"
        table.add_row(
            spec.key,
            spec.pretrained or "random init",
            spec.tokenizer,
            f"{registry.count_parameters(spec) / 1e6:.1f}M",
            with_types,
        )
    out.print(table)
