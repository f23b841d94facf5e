"""Training metrics of one epoch, counted per review and kept on the device.

Reading a device value is a host sync, so loss sums and correct counts are read every
LOG_EVERY batches (progress bar, finite-loss check, W&B) and at the epoch's end.
"""

from __future__ import annotations

import numpy as np
import torch

from imdb_cli.errors import ImdbError

LOG_EVERY = 20  # batches between reads of the device-side metrics (each read is a sync)


class NonFiniteLoss(ImdbError):
    pass


class TrainMeter:
    """Per-sample training metrics of one epoch.

    Batch losses and correct counts stay on the device until `read` (a host sync every
    LOG_EVERY batches); the sample count is known on the host from the batch sizes.
    """

    def __init__(self, epoch: int, batches_total: int, step_at_start: int, grad_accum: int):
        self.epoch = epoch
        self.batches_total = batches_total
        self.step_at_start = step_at_start
        self.grad_accum = grad_accum
        self.loss_sum = 0.0
        self.correct = 0
        self.samples = 0
        self.batches_read = 0
        self._losses: list[torch.Tensor] = []
        self._correct: list[torch.Tensor] = []
        self._sizes: list[int] = []

    @property
    def pending(self) -> int:
        return len(self._losses)

    def add(
        self, loss_sum: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, n: int
    ) -> None:
        self._losses.append(loss_sum)
        self._correct.append((logits.argmax(dim=-1) == labels).sum())
        self._sizes.append(n)

    def read(self) -> tuple[float, float]:
        """Fold the pending batches into the totals; mean loss and accuracy of the window."""
        if not self._losses:
            return float("nan"), float("nan")
        losses = torch.stack(self._losses).double().cpu().numpy()  # the sync point
        correct = torch.stack(self._correct).cpu().numpy()
        bad = ~np.isfinite(losses)
        if bad.any():
            at = int(np.argmax(bad))
            batch = self.batches_read + at + 1
            step = self.step_at_start + (batch - 1) // self.grad_accum + 1
            raise NonFiniteLoss(
                f"training loss is {losses[at]} at epoch {self.epoch}, step {batch} of "
                f"{self.batches_total} (global step {step}); stopped. Earlier checkpoints are "
                "intact; try a lower --lr or --precision fp32"
            )
        window = sum(self._sizes)
        self.loss_sum += float(losses.sum())
        self.correct += int(correct.sum())
        self.samples += window
        self.batches_read += len(self._losses)
        self._losses, self._correct, self._sizes = [], [], []
        return float(losses.sum()) / window, float(correct.sum()) / window
