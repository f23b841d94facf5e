"""The ONNX graphs `imdb export --format onnx` writes, and the int8 kernels a CPU runs them with.

    classifier ──plain_graph (torch.onnx, dynamo)──────────────────────▶ model.onnx (plain)
    classifier, eager attention ──fused_graph (torch.onnx TorchScript
        exporter, then onnxruntime's transformer optimizer)──────────────▶ model.onnx (optimized)
    model.onnx ──quantize (dynamic, or static calibrated on reviews)─────▶ int8 model.onnx

Why two exporters. onnxruntime's transformer optimizer fuses a BERT layer's attention into
one `Attention` node, its residual adds and layer norms into `SkipLayerNormalization`, its
dense + GELU into `BiasGelu` and the embeddings into `EmbedLayerNormalization`, but only
where the graph matches the subgraphs it knows. Measured with torch 2.13 and onnxruntime
1.32: the graph the TorchScript exporter writes for eager attention matches (tiny-bert: 2
Attention, 4 SkipLayerNormalization for 2 layers); the dynamo exporter's graph, or any graph
of SDPA attention, gets no Attention at all. The plain graph stays the dynamo one: it exports
every encoder (the fallback when fusing fails) and was the only graph before.

Int8 kernels (onnxruntime's MLAS, chosen at start-up from CPUID): uint8 activations x int8
weights (U8S8) run a VNNI kernel on AVX512-VNNI / AVX-VNNI CPUs, and on AVX2 or AVX512 without
VNNI a `vpmaddubsw` kernel that adds pairs of products in int16 and so saturates; uint8 x
uint8 (U8U8) widens to int16 first and never saturates; int8 x int8 (S8S8) has an x86 kernel
only with AVX-VNNI-INT8, else a generic one. `int8_kernels` reads the CPU's flags and probes
the U8S8 kernel for saturation.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imdb_cli.errors import ImdbError
from imdb_cli.handoff.export_folder import ONNX_INPUTS, ONNX_OUTPUTS
from imdb_cli.model import EncoderForClassification

GRAPHS = ("optimized", "plain")  # --onnx-graph; the first is the default
OPSET = 17  # TorchScript exporter: LayerNormalization is a single op from opset 17
ONNX_PROTOBUF_LIMIT = 1_800_000_000  # bytes; larger weights go to a side file (2 GB limit)
# The fused ops onnxruntime's optimizer reports, in the order a card lists them.
FUSED_OPS = (
    "EmbedLayerNormalization",
    "Attention",
    "MultiHeadAttention",
    "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization",
    "LayerNormalization",
    "SimplifiedLayerNormalization",
    "BiasGelu",
    "FastGelu",
    "Gelu",
    "RotaryEmbedding",
)
# Encoder types whose fused graph must show one Attention and two SkipLayerNormalization per
# layer: onnxruntime's "bert" fusions are written for their layers.
BERT_LIKE = frozenset({"bert", "roberta", "distilbert", "electra", "xlm-roberta"})


class Exported(torch.nn.Module):
    """The classifier with the graph's inputs and outputs: token ids and mask in, logits and
    pooled vectors out (the mask always given; padding or not)."""

    def __init__(self, model: EncoderForClassification) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(input_ids, attention_mask)
        return out.logits, out.pooled


def _sample_tensors(
    input_ids: np.ndarray, lengths: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """A traced batch: with padding, and more than one review of more than one token (the
    exporters specialize dimensions of size 0 or 1, and a batch without padding would trace
    the classifier's no-mask path)."""
    width = int(lengths.max())
    ids = torch.from_numpy(np.asarray(input_ids[:, :width], dtype=np.int64))
    mask = (torch.arange(width)[None, :] < torch.from_numpy(lengths)[:, None]).long()
    return ids, mask


def _weights_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def plain_graph(
    model: EncoderForClassification, input_ids: np.ndarray, lengths: np.ndarray, path: Path
) -> None:
    """torch.onnx.export (dynamo) with dynamic batch and sequence length."""
    ids, mask = _sample_tensors(input_ids, lengths)
    dynamic = {0: "batch", 1: "sequence"}
    with _exporting("torch.onnx.export"), quiet():
        torch.onnx.export(
            Exported(model.cpu().eval()),
            (ids, mask),
            str(path),
            input_names=list(ONNX_INPUTS),
            output_names=list(ONNX_OUTPUTS),
            dynamic_shapes={name: dynamic for name in ONNX_INPUTS},
            dynamo=True,
            external_data=_weights_bytes(model) > ONNX_PROTOBUF_LIMIT,
            verbose=False,
        )


@dataclass(frozen=True)
class Fusions:
    """What onnxruntime's optimizer fused in a graph of `layers` encoder layers."""

    model_type: str  # the encoder's (bert, modernbert, ...)
    layers: int
    counts: dict[str, int]  # fused op -> nodes, only those found

    @property
    def complete(self) -> bool:
        """BERT-like: every layer's attention and both its layer norms fused. Other
        encoders have no such expectation (ModernBERT's attention does not match)."""
        if self.model_type not in BERT_LIKE:
            return True
        return (
            self.counts.get("Attention", 0) == self.layers
            and self.counts.get("SkipLayerNormalization", 0) == 2 * self.layers
        )

    def describe(self) -> str:
        found = ", ".join(f"{count} {op}" for op, count in self.counts.items())
        return f"{found or 'nothing fused'} ({self.layers} layers)"

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": self.model_type, "layers": self.layers, "fused": self.counts}


def fused_graph(
    model: EncoderForClassification, input_ids: np.ndarray, lengths: np.ndarray, path: Path
) -> Fusions:
    """The classifier (loaded with eager attention) through the TorchScript exporter and
    onnxruntime's transformer optimizer ("bert" fusions; onnxruntime's own graph
    optimizations are left to the session, which applies them for the CPU it runs on)."""
    from onnxruntime.transformers.optimizer import optimize_model

    config: Any = model.encoder.config  # type: ignore[union-attr]
    model_type = str(getattr(config, "model_type", ""))
    if getattr(config, "_attn_implementation", None) != "eager":
        raise ImdbError("the fused ONNX graph needs the model loaded with eager attention")
    ids, mask = _sample_tensors(input_ids, lengths)
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        traced = Path(scratch) / "traced.onnx"
        with _exporting("torch.onnx.export (TorchScript)"), quiet():
            torch.onnx.export(
                Exported(model.cpu().eval()),
                (ids, mask),
                str(traced),
                input_names=list(ONNX_INPUTS),
                output_names=list(ONNX_OUTPUTS),
                dynamic_axes={name: {0: "batch", 1: "sequence"} for name in ONNX_INPUTS},
                opset_version=OPSET,
                dynamo=False,
            )
        with _exporting("onnxruntime's transformer optimizer"), quiet():
            optimized = optimize_model(
                str(traced),
                model_type="bert",
                num_heads=int(config.num_attention_heads),
                hidden_size=int(config.hidden_size),
                opt_level=0,
            )
            statistics = optimized.get_fused_operator_statistics()
            optimized.save_model_to_file(
                str(path), use_external_data_format=_weights_bytes(model) > ONNX_PROTOBUF_LIMIT
            )
    counts = {op: int(statistics[op]) for op in FUSED_OPS if statistics.get(op)}
    return Fusions(model_type, int(config.num_hidden_layers), counts)


# --------------------------------------------------------------------------- int8


@dataclass(frozen=True)
class Quantization:
    """How an int8 model was made (for config.json and the card)."""

    method: str  # "dynamic" or "static"
    weights: str  # "int8" or "uint8"
    activations: str  # "uint8" (dynamic: quantized per batch at run time) or "int8"
    per_channel: bool
    reduce_range: bool
    format: str  # "QOperator" or "QDQ"
    calibration_reviews: int = 0

    def describe(self) -> str:
        if self.method == "dynamic":
            how = (
                "dynamic (activations quantized per batch at run time, so a review's "
                "probabilities depend on the reviews batched with it)"
            )
        else:
            how = f"static (activation ranges calibrated on {self.calibration_reviews} reviews)"
        scales = "per output channel" if self.per_channel else "per tensor"
        cut = ", 7-bit weights (reduce_range)" if self.reduce_range else ""
        return (
            f"{how}: {self.weights} weights {scales}{cut}, {self.activations} activations, "
            f"{self.format} format"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "weights": self.weights,
            "activations": self.activations,
            "per_channel": self.per_channel,
            "reduce_range": self.reduce_range,
            "format": self.format,
            "calibration_reviews": self.calibration_reviews,
        }


DYNAMIC = Quantization("dynamic", "int8", "uint8", True, False, "QOperator")


def quantize_dynamic(source: Path, target: Path, how: Quantization = DYNAMIC) -> None:
    """Dynamic int8 quantization of the matrix products' weights (onnxruntime).

    Fused graphs hold onnxruntime's own ops (Attention, SkipLayerNormalization), whose
    outputs ONNX shape inference cannot type: they are float32 (`DefaultTensorType`).
    """
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as quantize

    weights = QuantType.QInt8 if how.weights == "int8" else QuantType.QUInt8
    with _exporting("onnxruntime quantize_dynamic"), quiet():
        quantize(
            str(source),
            str(target),
            weight_type=weights,
            per_channel=how.per_channel,
            reduce_range=how.reduce_range,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


def quantize_static(
    source: Path,
    target: Path,
    batches: Iterable[dict[str, np.ndarray]],
    how: Quantization,
) -> None:
    """Static int8 quantization of the matrix products: activation ranges calibrated
    (min-max) on `batches` of the graph's inputs; QDQ or QOperator format. Only MatMul and
    Gemm: quantizing ModernBERT's softmax and the fused ops failed in onnxruntime 1.32."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
    )
    from onnxruntime.quantization import quantize_static as quantize

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.batches = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    def kind(name: str) -> Any:
        return QuantType.QInt8 if name == "int8" else QuantType.QUInt8

    with _exporting("onnxruntime quantize_static"), quiet():
        quantize(
            str(source),
            str(target),
            Reader(),
            quant_format=QuantFormat.QDQ if how.format == "QDQ" else QuantFormat.QOperator,
            activation_type=kind(how.activations),
            weight_type=kind(how.weights),
            per_channel=how.per_channel,
            reduce_range=how.reduce_range,
            op_types_to_quantize=["MatMul", "Gemm"],
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


# --------------------------------------------------------------------------- the CPU

# /proc/cpuinfo flags that decide onnxruntime's int8 and torch's bf16 kernels.
KERNEL_FLAGS = (
    "avx2",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx_vnni_int8",
    "avx512_bf16",
    "amx_bf16",
    "amx_int8",
)


@dataclass(frozen=True)
class Int8Kernels:
    """The CPU's flags and the MLAS int8 kernels they select (platform.cpp's rules)."""

    cpu: str
    flags: tuple[str, ...]  # those of KERNEL_FLAGS the CPU reports
    u8s8: str
    u8u8: str
    s8s8: str
    u8s8_saturates: bool | None  # the probe's answer (None: not probed)
    bf16: str  # what a bf16 matrix product runs on (torch, oneDNN)
    extra: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        saturates = {True: "saturates (probed)", False: "exact (probed)", None: "not probed"}
        flags = " ".join(self.flags) or "none of " + ", ".join(KERNEL_FLAGS)
        return [
            f"CPU: {self.cpu}; flags: {flags}",
            f"int8 U8S8 (uint8 activations x int8 weights): {self.u8s8}; "
            f"{saturates[self.u8s8_saturates]}",
            f"int8 U8U8: {self.u8u8}; int8 S8S8: {self.s8s8}",
            f"bf16 matrix products: {self.bf16}",
        ]


def cpu_flags() -> tuple[str, tuple[str, ...]]:
    """(model name, the KERNEL_FLAGS it has) from /proc/cpuinfo ("unknown", () elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "unknown", ()
    name, flags = "unknown", set[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and name == "unknown":
            name = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return name, tuple(flag for flag in KERNEL_FLAGS if flag in flags)


def kernels_for(flags: Iterable[str]) -> tuple[str, str, str, str]:
    """(U8S8, U8U8, S8S8, bf16) kernels selected for these CPU flags."""
    have = set(flags)
    if {"amx_int8"} <= have:
        u8s8 = "AMX"
    elif {"avx512bw", "avx512_vnni"} <= have:
        u8s8 = "AVX512-VNNI (vpdpbusd)"
    elif "avx512bw" in have:
        u8s8 = "AVX512 core (vpmaddubsw: int16 pair sums, saturating)"
    elif "avx_vnni" in have:
        u8s8 = "AVX-VNNI (vpdpbusd)"
    elif "avx2" in have:
        u8s8 = "AVX2 (vpmaddubsw: int16 pair sums, saturating)"
    else:
        u8s8 = "SSE (generic x86)"
    if "avx_vnni_int8" in have:
        u8u8 = s8s8 = "AVX-VNNI-INT8"
    else:
        u8u8 = (
            "AVX512 core (widened to int16, exact)"
            if "avx512bw" in have
            else "AVX2 (widened to int16, exact)"
            if "avx2" in have
            else "SSE"
        )
        s8s8 = "no x86 SIMD kernel without AVX-VNNI-INT8 (generic C++)"
    if "amx_bf16" in have:
        bf16 = "AMX-BF16"
    elif "avx512_bf16" in have:
        bf16 = "AVX512-BF16"
    else:
        bf16 = "no bf16 instructions: converted to fp32 and back (slower than fp32)"
    return u8s8, u8u8, s8s8, bf16


# Kinds of one matrix product: (input element type, weight dtype, op, output element type).
GEMM_KINDS = {
    "fp32": ("FLOAT", np.float32, "MatMul", "FLOAT"),
    "u8s8": ("UINT8", np.int8, "MatMulInteger", "INT32"),
    "u8u8": ("UINT8", np.uint8, "MatMulInteger", "INT32"),
    "s8s8": ("INT8", np.int8, "MatMulInteger", "INT32"),
}


def gemm_session(kind: str, weights: np.ndarray, threads: int = 1) -> Any:
    """An onnxruntime session of one matrix product by constant `weights` (a GEMM_KINDS
    kind): what MLAS runs for that kind, alone."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    a_type, b_dtype, op, out_type = GEMM_KINDS[kind]
    depth, width = weights.shape
    graph = helper.make_graph(
        [helper.make_node(op, ["A", "B"], ["Y"])],
        kind,
        [helper.make_tensor_value_info("A", getattr(TensorProto, a_type), ["rows", depth])],
        [helper.make_tensor_value_info("Y", getattr(TensorProto, out_type), ["rows", width])],
        [numpy_helper.from_array(weights.astype(b_dtype), "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def u8s8_saturates() -> bool | None:
    """Whether onnxruntime's U8S8 kernel saturates here: one MatMulInteger of uint8 255 by
    int8 127 over 64 terms (exact: 2,072,640; a pairwise int16 sum clips every pair of
    products to 32,767: 1,048,544). None when onnxruntime is not installed."""
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    depth = 64
    session = gemm_session("u8s8", np.full((depth, 16), 127, dtype=np.int8))
    rows = np.full((16, depth), 255, dtype=np.uint8)  # more than one row: the GEMM, not GEMV
    got = int(session.run(None, {"A": rows})[0][0, 0])
    return got != depth * 255 * 127


def int8_kernels(probe: bool = True) -> Int8Kernels:
    cpu, flags = cpu_flags()
    u8s8, u8u8, s8s8, bf16 = kernels_for(flags)
    return Int8Kernels(cpu, flags, u8s8, u8u8, s8s8, u8s8_saturates() if probe else None, bf16)


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _exporting(step: str) -> Iterator[None]:
    """An exporter's or optimizer's failure as one line naming the step (they raise many
    types; the first line of the message says what went wrong)."""
    try:
        yield
    except ImdbError:
        raise
    except Exception as exc:
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise ImdbError(f"{step} failed: {first[:300]}") from exc


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The exporters print progress bars, steps and warnings of their own; imdb reports
    its own progress instead (errors still raise)."""
    import transformers

    hf_logging = transformers.utils.logging
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxruntime", "root")]
    levels = [logger.level for logger in loggers]
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
