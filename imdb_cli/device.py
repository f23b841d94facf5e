"""Device and numeric precision: chosen here, and only here.

`choose_device` and `choose_precision` turn the `--device` / `--precision` options into a
`torch.device` and one of fp32 / bf16 / fp16; `autocast` and `grad_scaler` are the only
places that act on that choice. Everything else passes the pair along.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator

import torch

from imdb_cli.errors import ImdbError

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cuda_available() -> bool:
    return torch.cuda.is_available()


def choose_device(name: str) -> torch.device:
    """`auto` -> the GPU when there is one (this process's GPU under torchrun), else the CPU."""
    if name not in ("auto", "cpu", "cuda"):
        raise ImdbError(f"--device must be one of auto, cpu, cuda (got {name!r})")
    if name == "cpu" or (name == "auto" and not cuda_available()):
        return torch.device("cpu")
    if not cuda_available():
        raise ImdbError("--device cuda: no CUDA GPU is available here (use --device cpu)")
    # torchrun sets LOCAL_RANK: each process takes its own GPU.
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def choose_precision(name: str, device: torch.device) -> str:
    """`auto` -> bf16 on a GPU that has it, else fp32 (the original study's precision)."""
    if name not in ("auto", "fp32", "bf16", "fp16"):
        raise ImdbError(f"--precision must be one of auto, fp32, bf16, fp16 (got {name!r})")
    on_cuda = device.type == "cuda"
    bf16_ok = on_cuda and torch.cuda.is_bf16_supported()
    if name == "auto":
        return "bf16" if bf16_ok else "fp32"
    if name == "bf16" and on_cuda and not bf16_ok:
        gpu = torch.cuda.get_device_name(device)
        raise ImdbError(f"--precision bf16: this GPU ({gpu}) has no bf16; use fp16 or fp32")
    if name == "fp16" and not on_cuda:
        raise ImdbError("--precision fp16 needs a CUDA GPU; on the CPU use fp32 or bf16")
    return name


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Mixed precision for the forward pass; fp32 runs as is."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[precision]):
        yield


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """fp16 gradients underflow without loss scaling; bf16 and fp32 need none (disabled)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
