"""`python -m imdb_cli ...` (and `torchrun -m imdb_cli train ...`)."""

from imdb_cli.cli import main

main()
