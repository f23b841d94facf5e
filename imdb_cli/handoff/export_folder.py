"""What a folder written by `imdb export` holds, and how imdb reads one back.

    config.json         model.ImdbClassifierConfig: the base encoder's config, the
                        class names (id2label upper-cased, label_names as the run names
                        them), the run's truncation, where the model came from
    model.safetensors   --format hf: encoder.* and head.* weights
    modeling_imdb.py    --format hf: the model code transformers runs (trust_remote_code)
    model.onnx          --format onnx: inputs input_ids, attention_mask (right-padded);
                        outputs logits, pooled; config.json says which graph (onnx_graph:
                        optimized or plain, onnx_fusions) and int8 (onnx_quantization)
    tokenizer files     the run's tokenizer
    README.md           the model card
    .imdb-export        what wrote the folder (imdb's version, format, run): only a folder
                        holding it is replaced by `imdb export --force`

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
from imdb_cli.config import MIN_MAX_LENGTH, TRUNCATIONS
from imdb_cli.errors import ImdbError, first_line, install_hint, shown
from imdb_cli.model import MODEL_TYPE, EncoderForClassification
from imdb_cli.runs.run import Run

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
ONNX_NAME = "model.onnx"
CARD_NAME = "README.md"
MARKER_NAME = ".imdb-export"
# imdb_cli/model.py, copied under the name transformers' custom models go by.
MODELING_NAME = "modeling_imdb.py"
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


def write_marker(folder: Path, fmt: str, run: Run) -> None:
    """The file that says `imdb export` wrote `folder` (what --force may replace)."""
    from imdb_cli import __version__

    marker = {
        "written_by": "imdb export",
        "imdb_version": __version__,
        "format": fmt,
        "run": f"{run.model}/{run.run_id}",
    }
    (folder / MARKER_NAME).write_text(json.dumps(marker) + "\n", encoding="utf-8")


def is_export_dir(folder: Path) -> bool:
    try:
        config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("model_type") == MODEL_TYPE


def read_export(folder: Path) -> Export:
    """An export's config.json, checked: every value imdb reads has its type and fits the
    others (refused naming the file and key), so that it cannot shift or cut predictions."""
    path = folder / CONFIG_NAME
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ImdbError(f"{path}: cannot read ({first_line(exc)})") from exc
    if not isinstance(config, dict):
        raise ImdbError(f"{path}: not a JSON object (not written by `imdb export`?)")
    for key in ("encoder", "label_names", "truncation"):
        if not config.get(key):
            raise ImdbError(f"{path}: key {key!r} is missing (not written by `imdb export`?)")
    _check_config(config, path)
    is_onnx = (folder / ONNX_NAME).is_file()
    if not is_onnx and not (folder / WEIGHTS_NAME).is_file():
        raise ImdbError(f"{folder}: neither {WEIGHTS_NAME} nor {ONNX_NAME} is there")
    return Export(config, is_onnx)


def _whole(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _check_config(config: dict[str, Any], path: Path) -> None:
    names, cut, encoder = config["label_names"], config["truncation"], config["encoder"]
    if not (
        isinstance(names, list)
        and len(names) >= 2
        and all(isinstance(n, str) and n.strip() for n in names)
        and len(set(names)) == len(names)
    ):
        raise ImdbError(
            f"{path}: key 'label_names' should list two or more distinct class names as text "
            f"(got {shown(names)})"
        )
    id2label = config.get("id2label")
    if isinstance(id2label, dict) and len(id2label) != len(names):
        raise ImdbError(
            f"{path}: key 'id2label' has {len(id2label)} classes, 'label_names' {len(names)}"
        )
    if not isinstance(cut, dict):
        raise ImdbError(f"{path}: key 'truncation' should be a mapping (got {shown(cut)})")
    for key, low in (("max_length", MIN_MAX_LENGTH), ("prefix_tokens", 0), ("suffix_tokens", 0)):
        if (key in cut or key == "max_length") and not _whole(cut.get(key), low):
            raise ImdbError(
                f"{path}: key 'truncation.{key}' should be a whole number >= {low} "
                f"(got {shown(cut.get(key))})"
            )
    if cut.get("strategy") not in TRUNCATIONS:
        raise ImdbError(
            f"{path}: key 'truncation.strategy' should be one of {', '.join(TRUNCATIONS)} "
            f"(got {shown(cut.get('strategy'))})"
        )
    if not isinstance(encoder, dict):
        raise ImdbError(f"{path}: key 'encoder' should be a mapping (got {shown(encoder)})")
    positions = encoder.get("max_position_embeddings")
    if positions is not None:
        if not _whole(positions, 1):
            raise ImdbError(
                f"{path}: key 'encoder.max_position_embeddings' should be a whole number "
                f"(got {shown(positions)})"
            )
        if cut["max_length"] > positions:
            raise ImdbError(
                f"{path}: key 'truncation.max_length' {cut['max_length']} is more than the "
                f"encoder's {positions} positions ('encoder.max_position_embeddings')"
            )
    quantization = config.get("quantization")
    if quantization not in (None, "int8"):
        raise ImdbError(
            f"{path}: key 'quantization' should be null or int8 (got {shown(quantization)})"
        )


def check_classes(folder: Path, export: Export, outputs: int | None, what: str) -> None:
    """The model's outputs are one per class name: more names than outputs would put a
    review's text where a probability belongs in a table, fewer would drop classes."""
    names = len(export.label_names)
    if outputs is not None and outputs != names:
        raise ImdbError(
            f"{folder / CONFIG_NAME}: key 'label_names' lists {names} classes but {what} has "
            f"{outputs} outputs"
        )


def load_tokenizer(folder: Path) -> Any:
    """The export's tokenizer, never running code from the folder.

    Its config.json names modeling_imdb.py under its top-level auto_map, for transformers
    users; imdb hands the tokenizer loader a plain config instead, so that file is never
    read as a config. Nothing else in the folder may ask for code, at any depth of any JSON
    file, config.json's nested encoder config included (guarded_loading)."""
    from transformers import PretrainedConfig

    return guarded_loading.load_tokenizer(
        folder, config=PretrainedConfig(), skip=(MODELING_NAME,), own_auto_map=(CONFIG_NAME,)
    )


def load_model(folder: Path, export: Export) -> EncoderForClassification:
    """The exported weights in imdb's own model class (the folder's modeling file is not run)."""
    from imdb_cli.runs.checkpoints import load_weights

    where = f"{folder / CONFIG_NAME}: key 'encoder'"
    check_classes(folder, export, _head_outputs(folder / WEIGHTS_NAME), WEIGHTS_NAME)
    config = guarded_loading.config_for_model(export.config["encoder"], where)
    encoder = guarded_loading.model_from_config(config, where)
    model = EncoderForClassification(encoder, len(export.label_names))
    load_weights(model, folder / WEIGHTS_NAME)
    return model.eval()


def _head_outputs(weights: Path) -> int | None:
    """Rows of the head in a weights file, read from its header (no tensor is loaded)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="pt") as tensors:
            if "head.weight" not in tensors.keys():  # noqa: SIM118 (the handle has no `in`)
                return None
            return int(tensors.get_slice("head.weight").get_shape()[0])
    except (SafetensorError, OSError, ValueError):
        return None  # a damaged file: loading it names it


def onnx_outputs(session: Any) -> int | None:
    """The class count of an ONNX export's logits (None when the graph leaves it open)."""
    width = session.get_outputs()[0].shape[-1]
    return width if isinstance(width, int) else None


def require_onnx(flag: str) -> None:
    """The optional ONNX packages are installed, or one line that says how to get them."""
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ImdbError(
            f"{flag} needs {', '.join(missing)} (not installed): {install_hint('onnx')}"
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
