"""Loading configs, tokenizers and models from folders on disk without running their code.

A run, cache or export folder is data: transformers would import Python files from it
when its config.json or tokenizer_config.json names classes under `auto_map` (and ask,
or obey `trust_remote_code=True`). Everything imdb reads from such a folder goes through
here: the folder is refused with one line if it asks for code or holds .py files, and
every `from_pretrained` passes `trust_remote_code=False`.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imdb_cli.errors import ImdbError, first_line

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

# Keys of a folder's JSON files that make transformers import code from the folder or a repo.
_CODE_KEYS = ("auto_map", "custom_pipelines")


def code_request(folder: Path, skip: Collection[str] = ()) -> str | None:
    """What in `folder` would make a loader run code, or None.

    `skip`: files the loader is kept from reading (an export's config.json and modeling
    file, there for transformers users; imdb gives the loader a config of its own)."""
    for path in sorted(folder.glob("*.json")):
        if path.name in skip:
            continue
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # unreadable: the loader itself reports it, naming the file
        if isinstance(content, dict):
            for key in _CODE_KEYS:
                if content.get(key):
                    return f"{path.name} has '{key}'"
    scripts = sorted(p.name for p in folder.glob("*.py") if p.name not in skip)
    if scripts:
        return f"it holds Python code ({', '.join(scripts[:3])})"
    return None


def refuse_code(folder: Path, skip: Collection[str] = ()) -> None:
    """One red line if loading `folder` would run code from it."""
    reason = code_request(folder, skip)
    if reason is not None:
        raise ImdbError(
            f"{folder}: refused to load, {reason}; imdb never runs code from a run, cache "
            "or export folder"
        )


def _loaded(what: str, folder: Path, load: Any, skip: Collection[str] = ()) -> Any:
    refuse_code(folder, skip)
    try:
        return load()
    except (OSError, ValueError, KeyError) as exc:
        raise ImdbError(f"{folder}: cannot load its {what} ({first_line(exc)})") from exc


def load_config(folder: Path) -> PretrainedConfig:
    from transformers import AutoConfig

    return _loaded(
        "config", folder, lambda: AutoConfig.from_pretrained(folder, trust_remote_code=False)
    )


def load_tokenizer(
    folder: Path, *, config: PretrainedConfig | None = None, skip: Collection[str] = ()
) -> PreTrainedTokenizerBase:
    """The folder's tokenizer. With `config`, transformers does not read the folder's
    config.json (which `skip` may then name)."""
    from transformers import AutoTokenizer

    given = {} if config is None else {"config": config}
    return _loaded(
        "tokenizer",
        folder,
        lambda: AutoTokenizer.from_pretrained(folder, trust_remote_code=False, **given),
        skip,
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
