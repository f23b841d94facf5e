"""The private APIs imdb still relies on, where no public one does the job; each is used in
one place only, and this test fails loudly the day one moves (the code itself falls back
without crashing, so nothing else would notice).

- typer has no hook for how --help lays out a default: commands/help_format.py wraps
  `typer.rich_utils._get_parameter_help`.
- huggingface_hub and datasets read HF_HUB_OFFLINE once, at import: registry.py sets their
  module settings when the Hub turns out to be unreachable after they were imported.
- torch has no public "can torch.compile work here" check: device.compile_problem asks
  dynamo, Triton and inductor's C++ builder, and is_compile_error knows their modules.
"""

from __future__ import annotations

import importlib
import inspect

import typer.rich_utils

from imdb_cli import registry
from imdb_cli.commands import help_format


def test_typers_parameter_help_is_there_and_wrapped() -> None:
    current = typer.rich_utils._get_parameter_help  # type: ignore[attr-defined]
    assert getattr(current, "imdb_joined", False), "help_format no longer wraps typer's help"
    original = inspect.unwrap(current)
    assert {"param", "ctx"} <= set(inspect.signature(original).parameters)
    assert help_format.Command is not None


def test_the_hubs_offline_settings_are_where_registry_sets_them() -> None:
    for name in registry.OFFLINE_SETTINGS:
        module = importlib.import_module(name)
        assert isinstance(module.HF_HUB_OFFLINE, bool), name


def test_the_compile_checks_find_what_they_call() -> None:
    import torch._dynamo
    from torch._inductor import cpp_builder
    from torch.utils._triton import has_triton

    assert callable(torch._dynamo.eval_frame.check_if_dynamo_supported)
    assert callable(cpp_builder.get_cpp_compiler) and callable(has_triton)
    assert torch._dynamo.exc.BackendCompilerFailed.__module__.startswith("torch._dynamo")
