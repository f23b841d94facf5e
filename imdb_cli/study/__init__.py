"""Studies: learning-rate sweeps, seeds, the whole study (reproduce), and the workers that
run their trials side by side.

- `sweep`: one run per (rate, seed), the rate selected on validation, the sweep's record;
- `reproduce`: prepare, train, compare, t-SNE, attention and `report.md` in one call;
- `workers`: the trials of sweeps side by side through a shared Optuna study;
- `storage`: the Optuna storage that queues them (journal file or PostgreSQL), heartbeats.
"""
