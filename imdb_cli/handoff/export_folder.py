"""What a folder written by `imdb export` holds, and how imdb reads one back.

    config.json         modeling_imdb.ImdbClassifierConfig: the base encoder's config, the
                        class names (id2label upper-cased, label_names as the run names
                        them), the run's truncation, where the model came from
    model.safetensors   --format hf: encoder.* and head.* weights
    modeling_imdb.py    --format hf: the model code transformers runs (trust_remote_code)
    model.onnx          --format onnx: inputs input_ids, attention_mask (right-padded);
                        outputs logits, pooled; config.json says which graph (onnx_graph:
                        optimized or plain, onnx_fusions) and int8 (onnx_quantization)
    tokenizer files     the run's tokenizer
    README.md           the model card

imdb reads an export without running any code from it: the config as JSON, the weights
into its own EncoderForClassification, the tokenizer with trust_remote_code=False.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from imdb_cli import guarded_loading
from imdb_cli.errors import ImdbError
from imdb_cli.model import EncoderForClassification

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
ONNX_NAME = "model.onnx"
CARD_NAME = "README.md"
MODELING_NAME = "modeling_imdb.py"  # copied by save_pretrained: the module's own file name
MODEL_TYPE = "imdb-classifier"  # modeling_imdb.MODEL_TYPE (that file imports no imdb_cli)
ONNX_INPUTS = ("input_ids", "attention_mask")
ONNX_OUTPUTS = ("logits", "pooled")
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
DEFAULT_BATCH_SIZE = 64  # as a run's eval batch size


@dataclass(frozen=True)
class Export:
    """An export's config.json, as imdb needs it."""

    config: dict[str, Any]
    is_onnx: bool

    @property
    def label_names(self) -> list[str]:
        return [str(name) for name in self.config["label_names"]]

    @property
    def max_length(self) -> int:
        return int(self.config["truncation"]["max_length"])

    @property
    def truncation(self) -> str:
        return str(self.config["truncation"]["strategy"])

    @property
    def onnx_graph(self) -> str:
        """optimized (fused by onnxruntime's optimizer) or plain; exports from before the
        fused graph existed hold the plain one."""
        return str(self.config.get("onnx_graph") or "plain")

    @property
    def quantization(self) -> str | None:
        value = self.config.get("quantization")
        return str(value) if value else None


def is_export_dir(folder: Path) -> bool:
    try:
        config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("model_type") == MODEL_TYPE


def read_export(folder: Path) -> Export:
    path = folder / CONFIG_NAME
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ImdbError(f"{path}: cannot read ({exc})") from exc
    for key in ("encoder", "label_names", "truncation"):
        if not config.get(key):
            raise ImdbError(f"{path}: key {key!r} is missing (not written by `imdb export`?)")
    for key in ("max_length", "strategy"):
        if key not in config["truncation"]:
            raise ImdbError(f"{path}: key 'truncation.{key}' is missing")
    is_onnx = (folder / ONNX_NAME).is_file()
    if not is_onnx and not (folder / WEIGHTS_NAME).is_file():
        raise ImdbError(f"{folder}: neither {WEIGHTS_NAME} nor {ONNX_NAME} is there")
    return Export(config, is_onnx)


def load_tokenizer(folder: Path) -> Any:
    """The export's tokenizer, never running code from the folder.

    Its config.json names modeling_imdb.py under auto_map, for transformers users; imdb
    hands the tokenizer loader a plain config instead, so that file is never read, and the
    tokenizer's own files must ask for no code (guarded_loading)."""
    from transformers import PretrainedConfig

    skip = (CONFIG_NAME, MODELING_NAME)
    return guarded_loading.load_tokenizer(folder, config=PretrainedConfig(), skip=skip)


def load_model(folder: Path, export: Export) -> EncoderForClassification:
    """The exported weights in imdb's own model class (the folder's modeling file is not run)."""
    from transformers import AutoConfig, AutoModel

    from imdb_cli.runs.checkpoints import load_weights

    values = dict(export.config["encoder"])
    model_type = values.pop("model_type", None)
    try:
        config = AutoConfig.for_model(str(model_type), **values)
    except (ValueError, TypeError) as exc:
        raise ImdbError(
            f"{folder / CONFIG_NAME}: key 'encoder' is not a model config ({exc})"
        ) from exc
    model = EncoderForClassification(AutoModel.from_config(config), len(export.label_names))
    load_weights(model, folder / WEIGHTS_NAME)
    return model.eval()


def require_onnx(flag: str) -> None:
    """The optional ONNX packages are installed, or one line that says how to get them."""
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ImdbError(
            f"{flag} needs {', '.join(missing)} (not installed): pip install 'imdb-cli[onnx]'"
        )


def onnx_session(path: Path, device: str = "cpu", threads: int | None = None) -> Any:
    """An onnxruntime session of an ONNX file on the CPU, with as many threads as torch uses
    (so that torch and ONNX compare on the same threads)."""
    require_onnx(f"{path.parent} (an ONNX export)")
    import onnxruntime

    if device == "cuda":
        raise ImdbError("--device cuda: ONNX exports run on the CPU (use --device cpu or auto)")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for a damaged file
        raise ImdbError(f"{path}: onnxruntime cannot load it ({str(exc).strip()[:200]})") from exc
