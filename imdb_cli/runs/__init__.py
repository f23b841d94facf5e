"""Runs on disk, `runs/<model>/<run-id>/`: the record, the weights, naming and locking.

- `ledger`: a run's JSON record (config, data, environment, epochs, test result), typed;
- `ledger_checks`: a ledger read back, checked against itself (recomputed test metrics);
- `checkpoints`: safetensors weights per epoch and the training state, checked on load;
- `select`: listing runs, naming new ones, and which run a model key or path means;
- `folder`: a new run's folder (config.yaml, encoder/, first ledger) and train.log;
- `lock`: one trainer per run (an OS lock), and tidying what killed runs left behind.
"""
