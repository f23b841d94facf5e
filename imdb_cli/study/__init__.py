"""Studies: learning-rate sweeps, seeds, the whole study (reproduce), and the workers that
run their trials side by side."""
