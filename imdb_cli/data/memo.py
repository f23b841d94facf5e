"""The tokenizer memo: what a cache hit would otherwise load transformers (seconds) for.

The tokenizer key computed on a cache miss is remembered against a hash of the tokenizer's
files (plus library versions); so is each model's maximum number of positions. A model
whose files cannot be hashed (not on this machine yet) is simply not memoised.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

from imdb_cli import registry
from imdb_cli.config import ModelSpec
from imdb_cli.console import debug
from imdb_cli.data.store import FORMAT_VERSION
from imdb_cli.errors import ImdbError
from imdb_cli.files import write_json_atomic
from imdb_cli.workspace import Workspace

MEMO_FILE = "tokenizer-memo.json"
TOKENIZER_FILES = frozenset(
    {
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.txt",
        "vocab.json",
        "merges.txt",
        "spiece.model",
        "sentencepiece.bpe.model",
        "tokenizer.model",
        "config.json",
    }
)


def _versions() -> str:
    found = []
    for name in ("transformers", "tokenizers"):
        try:
            found.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name}=none")
    return ",".join(found)


def _local_folder(source: str) -> Path | None:
    """The folder a tokenizer or model source loads from, if already on this machine."""
    if source.startswith(registry.PACKAGE_PREFIX):
        try:
            return Path(registry.resolve_source(source))
        except ImdbError:
            return None
    if Path(source).is_dir():
        return Path(source)
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(source, "tokenizer_config.json")
    except Exception:
        return None
    return Path(found).parent if isinstance(found, str) else None


def _files_digest(folder: Path, names: frozenset[str], *extra: str) -> str | None:
    digest = hashlib.sha256("\0".join([*extra, _versions()]).encode("utf-8"))
    found = False
    try:
        for path in sorted(folder.iterdir()):
            if path.name in names and path.is_file():
                digest.update(path.name.encode("utf-8") + b"\0" + path.read_bytes())
                found = True
    except OSError:
        return None
    return digest.hexdigest() if found else None


def tokenizer_digest(spec: ModelSpec) -> str | None:
    folder = _local_folder(spec.tokenizer)
    if folder is None:
        return None
    return _files_digest(folder, TOKENIZER_FILES, "tokenizer", spec.tokenizer)


def spec_digest(spec: ModelSpec) -> str | None:
    try:
        text = spec.path.read_text(encoding="utf-8")
    except OSError:
        return None
    digest = hashlib.sha256(f"{text}\0{_versions()}".encode())
    if spec.pretrained is not None and registry.is_local(spec.pretrained):
        folder = _local_folder(spec.pretrained)
        config = folder / "config.json" if folder is not None else None
        if config is None or not config.is_file():
            return None
        digest.update(config.read_bytes())
    return digest.hexdigest()


class Memo:
    def __init__(self, workspace: Workspace) -> None:
        self.path = workspace.cache / MEMO_FILE
        self.data: dict[str, dict[str, Any]] = {"tokenizers": {}, "max_positions": {}}
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict) and loaded.get("format") == FORMAT_VERSION:
                for section in self.data:
                    if isinstance(loaded.get(section), dict):
                        self.data[section] = loaded[section]
        except (OSError, ValueError):
            pass
        self.changed = False

    def get(self, section: str, digest: str | None) -> Any:
        return None if digest is None else self.data[section].get(digest)

    def put(self, section: str, digest: str | None, value: Any) -> None:
        if digest is not None and self.data[section].get(digest) != value:
            self.data[section][digest] = value
            self.changed = True

    def save(self) -> None:
        if not self.changed:
            return
        try:
            write_json_atomic(self.path, {"format": FORMAT_VERSION, **self.data})
            self.changed = False
        except ImdbError as exc:  # only a speed-up: never fail a run for it
            debug(f"could not write {self.path}: {exc.message}")
