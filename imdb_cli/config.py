"""Typed configuration: a model entry (one YAML in model_configs/) and a training run.

A YAML file names its model and holds the study's training settings under `training:`;
CLI options override single fields. Every error names the file and key, or the flag.
"""

from __future__ import annotations

import dataclasses
import shlex
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


def setting(
    default: Any, help: str, *, reproduce: bool | str = False, metavar: str | None = None
) -> Any:
    """A TrainConfig field: its default, the help text of its `imdb train` option, whether
    `imdb reproduce` takes the option too (True: with the same help; a string: with that
    help), and how --help shows its value when the type does not say it well.

    The option is the field's name as a flag (`--batch-size`; booleans `--x/--no-x`); the
    YAML key is the field's name.
    """
    metadata = {"help": help, "reproduce": reproduce, "metavar": metavar}
    return field(default=default, metadata=metadata)


FROM_THE_YAML = "Default: each model's YAML."


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run. Defaults are the original study's recipe.

    Each field is one training option everywhere: a key of a model YAML's `training:`
    section, an option of `imdb train` (and of `imdb reproduce` where marked), a value of
    a run's ledger. Adding a field adds the option to all of them.
    """

    epochs: int = setting(5, "Training epochs.", reproduce=FROM_THE_YAML)
    batch_size: int = setting(8, "Reviews per training batch.", reproduce=FROM_THE_YAML)
    eval_batch_size: int = setting(64, "Reviews per validation/test batch.")
    lr: float = setting(5e-5, "Peak learning rate.")
    optimizer: str = setting("adam", "adam or adamw.")
    adam_betas: tuple[float, float] = setting(
        (0.9, 0.999), "Adam's two betas, e.g. --adam-betas 0.9 0.98.", metavar="<b1 b2>"
    )
    adam_eps: float = setting(1e-8, "Adam's epsilon.")
    weight_decay: float = setting(0.0, "Weight decay.")
    scheduler: str = setting("constant", "Learning-rate schedule: constant, linear or cosine.")
    warmup_ratio: float = setting(0.0, "Fraction of the steps spent warming up, in [0, 1).")
    grad_accum: int = setting(1, "Batches accumulated per optimizer step.")
    max_length: int = setting(
        128, "Tokens per review (a cache must exist for it).", reproduce=FROM_THE_YAML
    )
    truncation: str = setting(
        "head",
        "head, tail or head+tail: which tokens of a long review are kept (head+tail with "
        "--max-length 512 is the best published choice for IMDB). Default: the model's "
        "YAML (head).",
        reproduce=True,
    )
    precision: str = setting(
        "auto", "auto (bf16 on a GPU that has it, else fp32), fp32, bf16, fp16."
    )
    attention: str = setting(
        "auto",
        "Attention kernel: auto, sdpa, eager or flash_attention_2. auto = sdpa, or for "
        "ModernBERT on a GPU in bf16/fp16 with flash-attn installed, flash attention with "
        "padding removed.",
    )
    tf32: bool = setting(True, "TF32 tensor cores for fp32 matrix products on a GPU (default on).")
    compile: bool = setting(
        False, "torch.compile the training forward (default off; the first steps compile)."
    )
    group_by_length: bool = setting(
        False,
        "Batch reviews of similar length together, so batches carry less padding (worth it "
        "at --max-length 256-512). Default: the model's YAML (off).",
        reproduce=True,
    )
    device: str = setting(
        "auto",
        "auto, cpu or cuda.",
        reproduce="auto, cpu or cuda. Default: each model's YAML (auto).",
    )
    seed: int = setting(42, "Seed of the init, dropout and data order.")
    limit_train: int | None = setting(
        None, "Train on a seeded random N reviews of the train split."
    )
    early_stopping_patience: int | None = setting(
        None, "Stop after N epochs without a better validation accuracy."
    )

    def problems(self) -> dict[str, str]:
        """Field name -> what is wrong with its value; empty when the config is valid."""
        bad: dict[str, str] = {}
        for name in ("epochs", "batch_size", "eval_batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                bad[name] = f"must be at least 1 (got {getattr(self, name)})"
        if not self.lr > 0:
            bad["lr"] = f"must be positive (got {self.lr})"
        if not all(0 <= beta < 1 for beta in self.adam_betas):
            betas = " ".join(map(str, self.adam_betas))
            bad["adam_betas"] = f"must be two numbers in [0, 1) (got {betas})"
        if not self.adam_eps > 0:
            bad["adam_eps"] = f"must be positive (got {self.adam_eps})"
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
            try:
                values["adam_betas"] = (float(betas[0]), float(betas[1]))
            except (TypeError, ValueError) as exc:
                raise ImdbError(
                    f"{where}.adam_betas: expected two numbers, like [0.9, 0.999]"
                ) from exc
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


def option_args(name: str, value: Any) -> list[str]:
    """One training option as `imdb train` takes it: `--epochs 3`, `--no-tf32`,
    `--adam-betas 0.9 0.98` (floats as repr, so they parse back to the same number)."""
    flag = flag_name(name)
    if isinstance(value, bool):
        return [flag if value else f"--no-{flag.removeprefix('--')}"]
    if isinstance(value, tuple):
        return [flag, *(str(v) for v in value)]
    return [flag, str(value)]


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


def train_args(spec: ModelSpec, config: TrainConfig) -> list[str]:
    """`train KEY` and the options that turn the model's YAML settings into `config`."""
    args = ["train", spec.key]
    for f in fields(TrainConfig):
        value, base = getattr(config, f.name), getattr(spec.training, f.name)
        if value == base:
            continue
        if value is None:  # the CLI cannot unset what the YAML sets
            raise ValueError(f"{flag_name(f.name)}: no option says 'none' (the YAML has {base})")
        args += option_args(f.name, value)
    return args


def train_command(spec: ModelSpec, config: TrainConfig, workdir: Path | None = None) -> str:
    """The `imdb [--workdir DIR] train KEY ...` command line that trains `config`."""
    workspace = ["--workdir", str(workdir)] if workdir is not None else []
    return shlex.join(["imdb", *workspace, *train_args(spec, config)])
