"""Fault injection, model YAMLs and options: a bad value is refused when the entry is read,
naming the file and key (or the flag), before any run folder exists, never mid-epoch."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cli_support import assert_one_red_line

from imdb_cli import registry

TINY = registry.load_spec("tiny-bert").path


def _entry(tmp_path: Path, name: str, change: dict) -> Path:
    """tiny-bert's YAML as `name`.yaml with `change` merged in (a None value drops the key)."""
    document = yaml.safe_load(TINY.read_text())
    document["name"] = name
    for section, values in change.items():
        if isinstance(values, dict):
            merged = {**document.get(section, {}), **values}
            document[section] = {k: v for k, v in merged.items() if v is not None}
        elif values is None:
            document.pop(section, None)
        else:
            document[section] = values
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


BAD_ENTRIES = {
    "hidden-not-integer": ({"architecture": {"hidden_size": "64x"}}, "architecture.hidden_size"),
    "hidden-fractional": ({"architecture": {"hidden_size": 64.5}}, "architecture.hidden_size"),
    "layers-bool": ({"architecture": {"num_hidden_layers": True}}, "num_hidden_layers"),
    "heads-not-dividing": (
        {"architecture": {"hidden_size": 64, "num_attention_heads": 3}},
        "not divisible by",
    ),
    "positions-too-short": (
        {"architecture": {"max_position_embeddings": 64}},
        "architecture.max_position_embeddings' 64 is less than 'training.max_length' 128",
    ),
    "dropout-not-probability": (
        {"architecture": {"hidden_dropout_prob": 1.5}},
        "architecture.hidden_dropout_prob",
    ),
    "type-not-text": ({"architecture": {"type": 3}}, "architecture.type"),
    "betas-not-numbers": ({"training": {"adam_betas": ["a", "b"]}}, "adam_betas"),
    "betas-one-number": ({"training": {"adam_betas": [0.9]}}, "adam_betas"),
    "epochs-bool": ({"training": {"epochs": True}}, "training.epochs"),
    "lr-nan": ({"training": {"lr": float("nan")}}, "lr"),
    "seed-negative": ({"training": {"seed": -1}}, "seed"),
    "seed-too-large": ({"training": {"seed": 2**40}}, "seed"),
    "pretrained-folder-missing": (
        {"pretrained": "./no/such/model/folder", "architecture": None},
        "key 'pretrained': no folder ./no/such/model/folder",
    ),
    "hub-id-without-type": (
        {"pretrained": "someone/some-model", "architecture": None},
        "is not a local folder",
    ),
}


@pytest.mark.parametrize("name", list(BAD_ENTRIES))
def test_a_bad_model_yaml_is_refused_naming_file_and_key_before_any_run(
    tmp_path: Path, run_cli, workdir: Path, name: str
) -> None:
    change, says = BAD_ENTRIES[name]
    path = _entry(tmp_path, name, change)
    result = run_cli("train", str(path), "--epochs", "1")
    assert_one_red_line(result, str(path), says)
    assert not (workdir / "runs").exists()


def test_a_vocabulary_smaller_than_the_tokenizers_is_refused_before_tokenizing(
    tmp_path: Path, run_cli, workdir: Path, synthetic_imdb_dir: Path
) -> None:
    path = _entry(tmp_path, "small-vocab", {"architecture": {"vocab_size": 1000}})
    result = run_cli("prepare", "--models", str(path), "--data-dir", str(synthetic_imdb_dir))
    assert_one_red_line(result, str(path), "architecture.vocab_size", "1000 token embeddings")
    result = run_cli("train", str(path), "--data-dir", str(synthetic_imdb_dir))
    assert_one_red_line(result, str(path), "architecture.vocab_size")
    assert not (workdir / "runs").exists()


@pytest.mark.parametrize("seed", ["-1", str(2**32), str(2**64)])
def test_train_refuses_a_seed_the_rngs_cannot_take(run_cli, workdir: Path, seed: str) -> None:
    result = run_cli("train", "tiny-bert", "--seed", seed)
    assert_one_red_line(result, "--seed", "between 0 and 4294967295")
    assert not (workdir / "runs").exists()
