"""Studies of several runs: learning-rate sweeps, seeds, and the whole study.

- `sweep`: one run per (rate, seed), the rate selected on validation, the sweep's record;
- `reproduce`: prepare, train, compare, t-SNE, attention and `report.md` in one call.
"""
