"""Device and numeric precision: chosen here, and only here.

`choose_device` and `choose_precision` turn the `--device` / `--precision` options into a
`torch.device` and one of fp32 / bf16 / fp16; `autocast` and `grad_scaler` are the only
places that act on that choice. Everything else passes the pair along.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
from collections.abc import Iterator

import torch

from imdb_cli.config import DEVICES
from imdb_cli.errors import ImdbError
from imdb_cli.model import PACKING_MODELS

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cuda_available() -> bool:
    return torch.cuda.is_available()


def choose_device(name: str) -> torch.device:
    """`auto` -> the GPU when there is one (this process's GPU under torchrun), else the CPU."""
    if name not in DEVICES:  # evaluate, tsne and attention pass their --device as typed
        raise ImdbError(f"--device must be one of {', '.join(DEVICES)} (got {name!r})")
    if name == "cpu" or (name == "auto" and not cuda_available()):
        return torch.device("cpu")
    if not cuda_available():
        raise ImdbError("--device cuda: no CUDA GPU is available here (use --device cpu)")
    # torchrun sets LOCAL_RANK: each process takes its own GPU.
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def choose_precision(name: str, device: torch.device) -> str:
    """`auto` -> bf16 on a GPU that has it, else fp32 (the original study's precision)."""
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


def use_tf32(device: torch.device, enabled: bool) -> None:
    """TF32 tensor cores for fp32 matrix products on the GPU (--tf32, the default).

    Under bf16/fp16 autocast the large products are already in half precision; TF32 speeds
    up what stays fp32 (and all of an fp32 run) at a 10-bit mantissa. No effect on the CPU.
    """
    if device.type != "cuda":
        return
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9; mixing it with allow_tf32 is an error
        matmul.fp32_precision = "tf32" if enabled else "ieee"
    else:
        matmul.allow_tf32 = enabled


def compile_problem(device: torch.device) -> str | None:
    """Why torch.compile cannot work here (None: it should), found before a run starts.

    The checks cover what is missing outright (Python support, Triton on a GPU, a C++
    compiler on the CPU); anything else fails at the first compiled step, and the training loop
    reports it the same way.
    """
    import torch._dynamo  # only with --compile: importing dynamo costs a second

    try:
        torch._dynamo.eval_frame.check_if_dynamo_supported()
    except Exception as exc:  # it raises a bare RuntimeError naming the reason
        return f"torch.compile is not supported here ({exc})"
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            return "torch.compile needs Triton on a GPU and it is not installed"
        return None
    from torch._inductor import cpp_builder

    try:
        cpp_builder.get_cpp_compiler()
    except Exception:  # InvalidCxxCompiler, or a platform-specific check failing
        compiler = os.environ.get("CXX", "g++")
        return f"torch.compile on the CPU needs a C++ compiler and {compiler!r} does not run"
    return None


def is_compile_error(exc: BaseException) -> bool:
    """Whether `exc` came out of torch.compile's tracing or code generation."""
    module = type(exc).__module__ or ""
    return module.startswith(("torch._dynamo", "torch._inductor"))


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on `device`. To a GPU it goes through pinned memory without waiting for
    the copy, so the host prepares the next batch while the GPU still computes."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    plural = "" if threads == 1 else "s"
    return f"cpu ({platform.processor() or platform.machine()}, {threads} thread{plural})"


def choose_attention(name: str, model_type: str, device: torch.device, precision: str) -> str:
    """The encoder's attention kernel (--attention): a transformers `attn_implementation`.

    `auto` is SDPA, except for models whose padded batches can be packed (PACKING_MODELS:
    ModernBERT) on a GPU in bf16/fp16 with flash-attn installed: there flash attention with
    packing ("unpadding") skips every padded position, in attention and in the MLPs.
    """
    flash_ok = importlib.util.find_spec("flash_attn") is not None
    half = precision in AUTOCAST_DTYPES
    if name == "auto":
        packs = model_type in PACKING_MODELS and device.type == "cuda" and half and flash_ok
        return "flash_attention_2" if packs else "sdpa"
    if name == "flash_attention_2":
        if device.type != "cuda":
            raise ImdbError("--attention flash_attention_2 needs a CUDA GPU (use sdpa)")
        if not half:
            raise ImdbError("--attention flash_attention_2 needs --precision bf16 or fp16")
        if not flash_ok:
            raise ImdbError(
                "--attention flash_attention_2: the flash-attn package is not installed "
                "(pip install flash-attn, or use sdpa)"
            )
    return name
