"""Typed configuration: a model entry (one YAML in model_configs/) and a training run.

A YAML file names its model and holds the study's training settings under `training:`;
CLI options override single fields. Every error names the file and key, or the flag.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from imdb_cli.errors import SHOWN_CHARS, ImdbError, cut, shown
from imdb_cli.records import STRICT, decode, encode

OPTIMIZERS = ("adam", "adamw")
SCHEDULERS = ("constant", "linear", "cosine")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
TRUNCATIONS = ("head", "tail", "head+tail")
ATTENTIONS = ("auto", "sdpa", "eager", "flash_attention_2")
MIN_MAX_LENGTH = 8
PACKAGE_PREFIX = "package:"  # a model source that names a pip package shipping the weights
# A model's name (its YAML's stem): it names a folder under runs/, so never a path.
ENTRY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Seeds go to numpy's legacy RNG (32 bits) and, scaled, to torch generators (64 bits).
MAX_SEED = 2**32 - 1


def setting(
    default: Any,
    help: str,
    *,
    reproduce: bool | str = False,
    prepare: bool | str = False,
    metavar: str | None = None,
) -> Any:
    """A TrainConfig field: its default, the help text of its `imdb train` option, whether
    `imdb reproduce` and `imdb prepare` take the option too (True: with the same help; a
    string: with that help), and how --help shows its value when the type does not say it
    well.

    The option is the field's name as a flag (`--batch-size`; booleans `--x/--no-x`); the
    YAML key is the field's name.
    """
    metadata = {"help": help, "reproduce": reproduce, "prepare": prepare, "metavar": metavar}
    return field(default=default, metadata=metadata)


FROM_THE_YAML = "Default: each model's YAML."
# Settings that do not change what a run learns (the seed is reported on its own).
NOT_RECIPE = frozenset({"seed", "eval_batch_size", "device", "compile", "attention", "tf32"})


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run. Defaults are the original study's recipe.

    Each field is one training option everywhere: a key of a model YAML's `training:`
    section, an option of `imdb train` (and of `imdb reproduce` where marked), a value of
    a run's ledger. Adding a field adds the option to all of them.
    """

    __pydantic_config__ = STRICT

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
        128,
        "Tokens per review (a cache must exist for it).",
        reproduce=FROM_THE_YAML,
        prepare="Tokens per review, special tokens included. Default: 128.",
    )
    truncation: str = setting(
        "head",
        "head, tail or head+tail: which tokens of a long review are kept (head+tail with "
        "--max-length 512 is the best published choice for IMDB). Default: the model's "
        "YAML (head).",
        reproduce=True,
        prepare="head, tail or head+tail: which tokens of a long review are kept (head+tail: "
        "the first quarter and the end, Sun et al. 2019). Default: head.",
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
        if not (self.lr > 0 and math.isfinite(self.lr)):
            bad["lr"] = f"must be positive (got {self.lr})"
        if not all(0 <= beta < 1 for beta in self.adam_betas):
            betas = " ".join(map(str, self.adam_betas))
            bad["adam_betas"] = f"must be two numbers in [0, 1) (got {betas})"
        if not (self.adam_eps > 0 and math.isfinite(self.adam_eps)):
            bad["adam_eps"] = f"must be positive (got {self.adam_eps})"
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            bad["weight_decay"] = f"must not be negative (got {self.weight_decay})"
        if not 0 <= self.warmup_ratio < 1:
            bad["warmup_ratio"] = f"must be in [0, 1) (got {self.warmup_ratio})"
        if self.max_length < MIN_MAX_LENGTH:
            bad["max_length"] = f"must be at least {MIN_MAX_LENGTH} (got {self.max_length})"
        if not 0 <= self.seed <= MAX_SEED:
            bad["seed"] = f"must be between 0 and {MAX_SEED} (got {self.seed})"
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
                bad[name] = (
                    f"must be one of {', '.join(allowed)} (got {shown(getattr(self, name))})"
                )
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
        values: dict[str, Any] = encode(self)
        return values

    def recipe(self) -> dict[str, Any]:
        """The settings that make the recipe: what the run learns, not where, how fast or
        from which seed (NOT_RECIPE)."""
        return {k: v for k, v in self.to_dict().items() if k not in NOT_RECIPE}

    @classmethod
    def from_dict(cls, values: Any, where: str, key: str = "training") -> TrainConfig:
        """A model YAML's `training:` mapping as a config, checked; errors name `where` (the
        file) and the key under `key`."""
        if not isinstance(values, dict):
            raise ImdbError(f"{where}: key '{key}' should be a mapping of training settings")
        config = decode(cls, values, where, prefix=key, noun="key")
        bad = config.problems()
        if bad:
            name, why = next(iter(bad.items()))
            raise ImdbError(f"{where}: key '{key}.{name}' {why}")
        return config


def _is_number(value: Any) -> bool:
    """An int or float that is finite (YAML's `.nan` and `.inf` are floats too)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Invocation:
    """An `imdb` command as the core suggests or records it: the command, its arguments, and
    its options by their Python names (`("max_length", 256)`, `("keep_duplicates", True)`).

    The core never writes a command line itself: `str(invocation)` is rendered by
    imdb_cli/commands/lines.py from the options the CLI declares (the CLI registers it when
    it loads), so a command that the core suggests is one the CLI takes.
    """

    command: str
    arguments: tuple[str, ...] = ()
    options: tuple[tuple[str, Any], ...] = ()
    workdir: Path | None = None
    # Variables set in front of the command (`IMDB_DATA_DIR=... imdb ...`).
    environment: tuple[tuple[str, str], ...] = ()

    def with_options(self, *options: tuple[str, Any]) -> Invocation:
        return replace(self, options=(*self.options, *options))

    def __str__(self) -> str:
        if _RENDER is None:
            raise RuntimeError("no command-line renderer: import imdb_cli.cli first")
        return _RENDER(self)


_RENDER: Callable[[Invocation], str] | None = None


def set_command_renderer(render: Callable[[Invocation], str]) -> None:
    """How Invocations become text: set by the CLI (commands/lines.py) when it loads."""
    global _RENDER
    _RENDER = render


def training_options_of(spec: ModelSpec, config: TrainConfig) -> tuple[tuple[str, Any], ...]:
    """The training options that turn the model's YAML settings into `config`."""
    options: list[tuple[str, Any]] = []
    for f in fields(TrainConfig):
        value, base = getattr(config, f.name), getattr(spec.training, f.name)
        if value == base:
            continue
        if value is None:  # the CLI cannot unset what the YAML sets
            raise ValueError(f"{flag_name(f.name)}: no option says 'none' (the YAML has {base})")
        options.append((f.name, value))
    return tuple(options)


def train_invocation(
    spec: ModelSpec, config: TrainConfig, workdir: Path | None = None, **extra: Any
) -> Invocation:
    """`imdb train KEY ...` that trains `config` (`extra`: options that are not training
    settings, such as `dataset`)."""
    extras = tuple((name, value) for name, value in extra.items() if value is not None)
    return Invocation("train", (spec.key,), training_options_of(spec, config) + extras, workdir)


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


# Bounds of a YAML file imdb reads (a model's or data set's entry, a run's config.yaml):
# entries are a few hundred bytes. Aliases (`*a`) repeat a node without copying it, so a
# small file can stand for billions of values ("billion laughs"), which any walk over the
# result (a check, a repr in a message, a copy) would expand; such a file is refused before
# anything is built from it. PyYAML has no such bound of its own, hence this one.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_VALUES = 100_000


def read_yaml(path: Path) -> Any:
    """The YAML document in `path` (safe types only), refused when it is over
    MAX_YAML_BYTES or its aliases expand to over MAX_YAML_VALUES values."""
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise ImdbError(f"{path}: refused, larger than {MAX_YAML_BYTES // 1024} kB")
        loader = yaml.SafeLoader(path.read_text(encoding="utf-8"))
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_expansion(node, path)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise ImdbError(f"{path}: malformed YAML{at}") from exc
    except RecursionError as exc:
        raise ImdbError(f"{path}: refused, nested too deeply") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ImdbError(f"{path}: cannot read ({exc})") from exc


def _check_expansion(root: yaml.Node, path: Path) -> None:
    """Count the values the node graph stands for, each alias expanded, without expanding
    it: a node's count is 1 + its children's, computed once per node (depth first, no
    recursion); a node that contains itself is refused too."""
    counts: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in counts:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        if children_done:
            open_nodes.discard(key)
            counts[key] = 1 + sum(counts[id(child)] for child in children)
            if counts[key] > MAX_YAML_VALUES:
                raise ImdbError(
                    f"{path}: refused, its aliases expand to more than {MAX_YAML_VALUES:,} values"
                )
            continue
        if key in open_nodes:
            raise ImdbError(f"{path}: refused, an alias refers to a value that holds it")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in counts)


def read_yaml_entry(path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """An entry's YAML (a model's or a data set's) as a mapping of known `keys`; a file that
    cannot be read, is malformed, is no mapping or has unknown keys is an error naming it."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ImdbError(f"{path}: expected a mapping with keys {', '.join(keys)}")
    unknown = sorted(cut(str(k), SHOWN_CHARS) for k in set(data) - set(keys))
    if unknown:
        listed = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise ImdbError(f"{path}: unknown key(s) {listed}; known keys: {', '.join(keys)}")
    return data


MODEL_KEYS = ("name", "description", "pretrained", "architecture", "tokenizer", "training")


def load_model_spec(path: Path) -> ModelSpec:
    """Read and check one model YAML; errors name the file and key."""
    where = str(path)
    data = read_yaml_entry(path, MODEL_KEYS)
    for key in ("name", "tokenizer"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ImdbError(f"{where}: missing or empty key '{key}'")
    if data["name"] != path.stem:
        raise ImdbError(f"{where}: key 'name' is {shown(data['name'])} but the file is {path.name}")
    if not ENTRY_NAME.match(data["name"]):
        raise ImdbError(
            f"{where}: key 'name' {shown(data['name'])}: use letters, digits, '.', '_' or '-' "
            "(it names the model's folder under runs/)"
        )
    pretrained = data.get("pretrained")
    architecture = data.get("architecture") or {}
    if pretrained is not None and not (isinstance(pretrained, str) and pretrained):
        raise ImdbError(f"{where}: key 'pretrained' must be a model id or folder")
    if pretrained is not None and looks_like_folder(pretrained) and not Path(pretrained).is_dir():
        raise ImdbError(f"{where}: key 'pretrained': no folder {pretrained}")
    if not isinstance(architecture, dict):
        raise ImdbError(f"{where}: key 'architecture' must be a mapping")
    if pretrained is None and not architecture.get("type"):
        raise ImdbError(f"{where}: key 'architecture.type' is required when 'pretrained' is absent")
    training = TrainConfig.from_dict(data.get("training") or {}, where)
    check_architecture(architecture, where, training.max_length)
    return ModelSpec(
        key=data["name"],
        path=path,
        description=str(data.get("description", "")),
        pretrained=pretrained,
        architecture=dict(architecture),
        tokenizer=data["tokenizer"],
        training=training,
    )


# What `architecture:` keys hold, by the shape of their names (transformers' conventions);
# other keys go to the config class as they are, which checks them when the model is built.
_POSITIVE_INT = re.compile(
    r"^(num_\w+|\w+_size|max_position_embeddings|\w+_every_n_layers|"
    r"local_attention|head_dim)$"
)
_TOKEN_ID = re.compile(r"^\w+_token_id$")
_PROBABILITY = re.compile(r"^\w*(dropout|_prob)\w*$")
_POSITIVE_FLOAT = re.compile(r"^(\w+_eps|initializer_range|\w*rope_theta)$")


def check_architecture(architecture: dict[str, Any], where: str, max_length: int) -> None:
    """Value types and shapes of a model's `architecture:`, so that a bad entry is refused
    when it is read (naming the key), not when the model is built or mid-epoch."""
    for key, value in architecture.items():
        at = f"{where}: key 'architecture.{key}'"
        if key == "type":
            if not isinstance(value, str):
                raise ImdbError(f"{at}: expected a model type such as bert (got {shown(value)})")
        elif _POSITIVE_INT.match(key):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ImdbError(f"{at}: expected a positive integer (got {shown(value)})")
        elif _TOKEN_ID.match(key):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise ImdbError(f"{at}: expected a token id, an integer >= 0 (got {shown(value)})")
        elif _PROBABILITY.match(key):
            if value is not None and not (_is_number(value) and 0 <= value < 1):
                raise ImdbError(f"{at}: expected a probability in [0, 1) (got {shown(value)})")
        elif _POSITIVE_FLOAT.match(key) and not (_is_number(value) and value > 0):
            raise ImdbError(f"{at}: expected a positive number (got {shown(value)})")
    hidden, heads = architecture.get("hidden_size"), architecture.get("num_attention_heads")
    if isinstance(hidden, int) and isinstance(heads, int) and hidden % heads:
        raise ImdbError(
            f"{where}: key 'architecture.hidden_size' {hidden} is not divisible by "
            f"'architecture.num_attention_heads' {heads}"
        )
    positions = architecture.get("max_position_embeddings")
    if isinstance(positions, int) and positions < max_length:
        raise ImdbError(
            f"{where}: key 'architecture.max_position_embeddings' {positions} is less than "
            f"'training.max_length' {max_length}"
        )


def looks_like_folder(source: str) -> bool:
    """A model source written as a path, not a Hub id (`name` or `org/name`) nor a package."""
    if source.startswith(PACKAGE_PREFIX):
        return False
    return (
        source.startswith(("/", ".", "~"))
        or "\\" in source
        or source.count("/") > 1
        or Path(source).is_dir()
    )
