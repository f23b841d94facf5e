"""The environment record of a run's ledger: versions, machine, device, kernels, process."""

from __future__ import annotations

import os
import platform
import socket
import sys

import torch
import transformers

from imdb_cli.device import device_name
from imdb_cli.runs.ledger import EnvironmentRecord
from imdb_cli.training.build import Hardware


def load_average() -> float | None:
    """The machine's 1-minute load average (None where the OS has none, as on Windows):
    speed figures taken while other work competes for the cores are flagged by compare."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def environment(hardware: Hardware, world_size: int) -> EnvironmentRecord:
    """Recorded when training starts; `load_average_end` is set when it ends."""
    return EnvironmentRecord(
        python=platform.python_version(),
        torch=torch.__version__,
        transformers=transformers.__version__,
        platform=platform.platform(),
        device=device_name(hardware.device),
        device_type=hardware.device.type,
        precision=hardware.precision,
        attention=hardware.attention,
        world_size=world_size,
        torch_threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(),
        load_average_start=load_average(),
        hostname=socket.gethostname(),
        pid=os.getpid(),
        command=" ".join(sys.argv),
    )
