"""Typed configuration: a model entry (one YAML in model_configs/) and a training run.

A YAML file names its model and holds the study's training settings under `training:`;
CLI options override single fields. Every error names the file and key, or the flag.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from imdb_cli.errors import ImdbError

OPTIMIZERS = ("adam", "adamw")
SCHEDULERS = ("constant", "linear", "cosine")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
TRUNCATIONS = ("head", "tail", "head+tail")
ATTENTIONS = ("auto", "sdpa", "eager", "flash_attention_2")
MIN_MAX_LENGTH = 8


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run. Defaults are the original study's recipe."""

    epochs: int = 5
    batch_size: int = 8
    eval_batch_size: int = 64
    lr: float = 5e-5
    optimizer: str = "adam"
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    scheduler: str = "constant"
    warmup_ratio: float = 0.0
    grad_accum: int = 1
    max_length: int = 128
    truncation: str = "head"
    precision: str = "auto"
    device: str = "auto"
    seed: int = 42
    limit_train: int | None = None
    early_stopping_patience: int | None = None
    compile: bool = False
    group_by_length: bool = False
    tf32: bool = True
    attention: str = "auto"

    def problems(self) -> dict[str, str]:
        """Field name -> what is wrong with its value; empty when the config is valid."""
        bad: dict[str, str] = {}
        for name in ("epochs", "batch_size", "eval_batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                bad[name] = f"must be at least 1 (got {getattr(self, name)})"
        if not self.lr > 0:
            bad["lr"] = f"must be positive (got {self.lr})"
        if self.weight_decay < 0:
            bad["weight_decay"] = f"must not be negative (got {self.weight_decay})"
        if not 0 <= self.warmup_ratio < 1:
            bad["warmup_ratio"] = f"must be in [0, 1) (got {self.warmup_ratio})"
        if self.max_length < MIN_MAX_LENGTH:
            bad["max_length"] = f"must be at least {MIN_MAX_LENGTH} (got {self.max_length})"
        if self.limit_train is not None and self.limit_train < 1:
            bad["limit_train"] = f"must be at least 1 (got {self.limit_train})"
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            bad["early_stopping_patience"] = (
                f"must be at least 1 (got {self.early_stopping_patience})"
            )
        choices = {
            "optimizer": OPTIMIZERS,
            "scheduler": SCHEDULERS,
            "precision": PRECISIONS,
            "device": DEVICES,
            "truncation": TRUNCATIONS,
            "attention": ATTENTIONS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                bad[name] = f"must be one of {', '.join(allowed)} (got {getattr(self, name)!r})"
        return bad

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """Apply CLI options (None means 'not given'); errors name the flag."""
        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(given) - {f.name for f in fields(self)}
        if unknown:
            raise ImdbError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        updated = replace(self, **given)
        bad = updated.problems()
        if bad:
            name, why = next(iter(bad.items()))
            raise ImdbError(f"{flag_name(name)} {why}")
        return updated

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["adam_betas"] = list(self.adam_betas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> TrainConfig:
        """Build from a mapping (a YAML `training:` section or a saved run); errors name `where`."""
        if not isinstance(data, dict):
            raise ImdbError(f"{where}: expected a mapping of training settings")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ImdbError(
                f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(known)}"
            )
        values = dict(data)
        if "adam_betas" in values:
            betas = values["adam_betas"]
            if not (isinstance(betas, (list, tuple)) and len(betas) == 2):
                raise ImdbError(f"{where}.adam_betas: expected two numbers, like [0.9, 0.999]")
            values["adam_betas"] = (float(betas[0]), float(betas[1]))
        for name, value in values.items():
            expected = _scalar_type(known[name])
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                values[name] = float(value)
            elif expected is not None and value is not None and not isinstance(value, expected):
                raise ImdbError(f"{where}.{name}: expected {expected.__name__}, got {value!r}")
        config = cls(**values)
        bad = config.problems()
        if bad:
            name, why = next(iter(bad.items()))
            raise ImdbError(f"{where}.{name} {why}")
        return config


def _scalar_type(f: dataclasses.Field[Any]) -> type | None:
    annotation = str(f.type)
    for name, kind in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if annotation.startswith(name):
            return kind
    return None


def flag_name(field_name: str) -> str:
    """`batch_size` -> `--batch-size`: how the user typed it."""
    return "--" + field_name.replace("_", "-")


@dataclass(frozen=True)
class ModelSpec:
    """One registered model: what to build, which tokenizer, how to train it."""

    key: str
    path: Path
    description: str
    pretrained: str | None
    architecture: dict[str, Any]
    tokenizer: str
    training: TrainConfig = field(default_factory=TrainConfig)


def load_model_spec(path: Path) -> ModelSpec:
    """Read and check one model YAML; errors name the file and key."""
    where = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise ImdbError(f"{where}: malformed YAML{at}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ImdbError(f"{where}: cannot read ({exc})") from exc
    if not isinstance(data, dict):
        raise ImdbError(f"{where}: expected a mapping with keys name, tokenizer, ...")
    allowed = {"name", "description", "pretrained", "architecture", "tokenizer", "training"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ImdbError(f"{where}: unknown key(s) {', '.join(unknown)}")
    for key in ("name", "tokenizer"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ImdbError(f"{where}: missing or empty key '{key}'")
    if data["name"] != path.stem:
        raise ImdbError(f"{where}: key 'name' is {data['name']!r} but the file is {path.name}")
    pretrained = data.get("pretrained")
    architecture = data.get("architecture") or {}
    if pretrained is not None and not isinstance(pretrained, str):
        raise ImdbError(f"{where}: key 'pretrained' must be a model id or folder")
    if not isinstance(architecture, dict):
        raise ImdbError(f"{where}: key 'architecture' must be a mapping")
    if pretrained is None and not architecture.get("type"):
        raise ImdbError(f"{where}: key 'architecture.type' is required when 'pretrained' is absent")
    training = TrainConfig.from_dict(data.get("training") or {}, f"{where}: training")
    return ModelSpec(
        key=data["name"],
        path=path,
        description=str(data.get("description", "")),
        pretrained=pretrained,
        architecture=dict(architecture),
        tokenizer=data["tokenizer"],
        training=training,
    )
