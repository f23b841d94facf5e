"""Error analysis: where the models' errors lie, and what each model looks at.

- `embeddings`: pooled embeddings of a run's best checkpoint on a seeded sample of a split,
  their t-SNE projection, and the tables of boundary samples, confident errors and
  disagreements between models (`imdb tsne`).
- `attention`: attention maps of one review from an eager-attention copy of each model
  (`imdb attention`).
- `plotting`: the figures for both (matplotlib, Agg backend: files only, no window).
- `folders`: where the results go under `<workdir>/analysis/`.

Nothing here imports Typer; the commands in imdb_cli/commands/ are thin wrappers.
"""
