"""`imdb reproduce` (not implemented yet)."""

from __future__ import annotations

from imdb_cli.commands.common import not_implemented


def reproduce() -> None:
    """Not implemented yet."""
    raise not_implemented("reproduce")
