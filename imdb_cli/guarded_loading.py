"""Loading configs, tokenizers and models from folders on disk without running their code.

A run, cache or export folder is data: transformers would import Python files from it, or
from a Hub repo it names, when a config names classes under `auto_map` (at the top or in a
nested config), and it asks on standard input whether to do so. Everything imdb reads from
such a folder goes through here:

- a folder whose JSON asks for code anywhere (`auto_map`, `custom_pipelines`, at any
  depth) or that holds .py files is refused with one line; the only exception is the
  top-level `auto_map` of the config.json that `imdb export` writes for transformers users,
  which imdb itself never follows (it builds its own model from the config's values);
- every transformers call that builds a config, tokenizer or model passes
  `trust_remote_code=False` (`from_pretrained`, `from_config`); `AutoConfig.for_model` takes
  no such argument (it would store it in the config) and only looks up transformers' own
  config classes, so its values are checked for code requests first;
- standard input is out of transformers' reach while it loads (`no_stdin`): should a
  prompt slip through, it reads an empty answer, never a review piped to `imdb predict`.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from imdb_cli.errors import ImdbError, first_line

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

# Keys of a config that make transformers import code from the folder or a Hub repo.
_CODE_KEYS = ("auto_map", "custom_pipelines")
_REFUSED = "imdb never runs code from a run, cache or export folder"
T = TypeVar("T")


def code_key(value: Any, prefix: str = "") -> str | None:
    """The dotted path of the first key in a JSON value, at any depth, that asks for code."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _CODE_KEYS and item:
                return f"{prefix}{key}"
        for key, item in value.items():
            found = code_key(item, f"{prefix}{key}.")
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = code_key(item, f"{prefix}{i}.")
            if found is not None:
                return found
    return None


def code_request(
    folder: Path, skip: Collection[str] = (), own_auto_map: Collection[str] = ()
) -> str | None:
    """What in `folder` would make a loader run code, or None.

    `skip`: .py files the loader is kept from (an export's modeling file, there for
    transformers users). `own_auto_map`: JSON files whose top-level `auto_map` imdb wrote
    itself and never follows (an export's config.json); the rest of them is checked."""
    for path in sorted(folder.glob("*.json")):
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # unreadable: the loader itself reports it, naming the file
        if isinstance(content, dict) and path.name in own_auto_map:
            content = {k: v for k, v in content.items() if k != "auto_map"}
        found = code_key(content)
        if found is not None:
            return f"{path.name} has '{found}'"
    scripts = sorted(p.name for p in folder.glob("*.py") if p.name not in skip)
    if scripts:
        return f"it holds Python code ({', '.join(scripts[:3])})"
    return None


def refuse_code(
    folder: Path, skip: Collection[str] = (), own_auto_map: Collection[str] = ()
) -> None:
    """One red line if loading `folder` would run code from it."""
    reason = code_request(folder, skip, own_auto_map)
    if reason is not None:
        raise ImdbError(f"{folder}: refused to load, {reason}; {_REFUSED}")


@contextlib.contextmanager
def no_stdin() -> Iterator[None]:
    """Standard input replaced by an empty stream while transformers loads: its "run the
    custom code? [y/N]" prompt must never take a review piped to `imdb predict --file -` as
    the answer. (An empty answer is an EOFError, which transformers turns into a refusal.)"""
    saved = sys.stdin
    sys.stdin = io.StringIO()
    try:
        yield
    finally:
        sys.stdin = saved


def _guarded(what: str, where: object, load: Callable[[], T]) -> T:
    """`load()` without standard input; what transformers raises for a file that does not
    make a config, tokenizer or model (many types, also huggingface_hub's validation errors)
    is one line naming `where`."""
    try:
        with no_stdin():
            return load()
    except ImdbError:
        raise
    except Exception as exc:
        raise ImdbError(f"{where}: cannot load its {what} ({first_line(exc)})") from exc


def _loaded(
    what: str,
    folder: Path,
    load: Callable[[], T],
    skip: Collection[str] = (),
    own_auto_map: Collection[str] = (),
) -> T:
    refuse_code(folder, skip, own_auto_map)
    return _guarded(what, folder, load)


def load_config(folder: Path) -> PretrainedConfig:
    from transformers import AutoConfig

    return _loaded(
        "config", folder, lambda: AutoConfig.from_pretrained(folder, trust_remote_code=False)
    )


def load_tokenizer(
    folder: Path,
    *,
    config: PretrainedConfig | None = None,
    skip: Collection[str] = (),
    own_auto_map: Collection[str] = (),
) -> PreTrainedTokenizerBase:
    """The folder's tokenizer. With `config`, transformers does not read the folder's
    config.json (whose top-level auto_map `own_auto_map` may then allow)."""
    from transformers import AutoTokenizer

    given = {} if config is None else {"config": config}
    return _loaded(
        "tokenizer",
        folder,
        lambda: AutoTokenizer.from_pretrained(folder, trust_remote_code=False, **given),
        skip,
        own_auto_map,
    )


def load_model(folder: Path, model_class: Any = None, **kwargs: Any) -> PreTrainedModel:
    """`model_class.from_pretrained(folder)` (default AutoModel), never running its code."""
    if model_class is None:
        from transformers import AutoModel

        model_class = AutoModel
    return _loaded(
        "model",
        folder,
        lambda: model_class.from_pretrained(folder, trust_remote_code=False, **kwargs),
    )


def config_for_model(values: Any, where: str) -> PretrainedConfig:
    """A transformers config from a mapping of its values (`model_type` and the rest), as
    an export's config.json or a model YAML's `architecture:` holds it; `where` names the
    file and key in messages."""
    from transformers import AutoConfig

    if not isinstance(values, dict):
        raise ImdbError(f"{where}: expected a mapping of config values")
    found = code_key(values)
    if found is not None:
        raise ImdbError(f"{where}: refused, it has '{found}'; {_REFUSED}")
    values = dict(values)
    model_type = values.pop("model_type", None)
    if not isinstance(model_type, str) or not model_type:
        raise ImdbError(f"{where}: 'model_type' should name a transformers model type")
    # No trust_remote_code here: for_model only looks model_type up in transformers' own
    # CONFIG_MAPPING (an unknown type is a ValueError, never code), and the keyword would be
    # stored on the config as an attribute and written into every export's config.json.
    return _guarded("config", where, lambda: AutoConfig.for_model(model_type, **values))


def model_from_config(config: PretrainedConfig, where: object, **kwargs: Any) -> PreTrainedModel:
    """`AutoModel.from_config` (random weights, no file read) with code refused: a config
    read from a folder may name remote code in `auto_map`, which transformers would offer to
    run for a model type it has no class of its own for."""
    from transformers import AutoModel

    found = code_key(config.to_dict())
    if found is not None:
        raise ImdbError(f"{where}: refused, its config has '{found}'; {_REFUSED}")
    return _guarded(
        "model",
        where,
        lambda: AutoModel.from_config(config, trust_remote_code=False, **kwargs),
    )
