"""Fine-tuning and evaluation; one module per job:

- `loop`: `train` (a new or resumed run, end to end) and the `Trainer` that runs its epochs;
- `build`: device, precision and attention kernel chosen, the seeded model, the splits;
- `batches`: the order of each epoch (seeded, length-grouped, sharded) and the batches;
- `metrics`: per-review training metrics kept on the device, the finite-loss check;
- `inference`: `predict` over a split and `evaluate` of a run's checkpoint;
- `optimizer`: Adam/AdamW and the learning rate as a function of the step;
- `rng`: seeding and the RNG states a checkpoint keeps;
- `resume`: which run `--resume` continues, with which settings, from which epoch;
- `environment`: the machine and versions a run records;
- `distributed`: torchrun's world, the process group and what the ranks exchange;
- `tracking`: Weights & Biases, imported only when `--wandb` is on.
"""
