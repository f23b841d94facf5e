"""What a comparison compares: each run's weights and training recipe, and what differs.

A results table alone reads as "model A is better than model B". Whether it says that
depends on what else differed: pretrained against random-init weights, another learning
rate or schedule, one seed, other test reviews, speed taken on a busy machine. This module
describes each compared run from its own files (ledger and config.yaml) and turns every
difference that is not like for like into one warning line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from imdb_cli import registry
from imdb_cli.config import NOT_RECIPE, TrainConfig, flag_name, read_yaml
from imdb_cli.errors import ImdbError
from imdb_cli.runs.ledger import Ledger
from imdb_cli.runs.run import CONFIG_NAME, Run

# A machine counts as loaded when others' work, measured as the 1-minute load average,
# reached this share of its cores at the start or the end of training.
LOADED_SHARE = 0.5


@dataclass(frozen=True)
class Machine:
    """Where a run was trained, and how busy the machine was."""

    device: str
    hostname: str | None
    cpu_count: int | None
    load_start: float | None  # 1-minute load average when training started
    load_end: float | None  # ... and when it ended
    threads: int | None  # the run's own torch threads, part of the load at the end

    @property
    def others_load(self) -> float | None:
        """Load from other work: at the start, and at the end less the run's own threads."""
        values = []
        if self.load_start is not None:
            values.append(self.load_start)
        if self.load_end is not None:
            values.append(self.load_end - (self.threads or 0))
        return max(values) if values else None

    @property
    def loaded(self) -> bool | None:
        """None when the ledger records no load average (runs from before it did)."""
        others = self.others_load
        if others is None or not self.cpu_count:
            return None
        return others >= LOADED_SHARE * self.cpu_count

    def describe(self) -> str:
        host = f" on {self.hostname}" if self.hostname else ""
        text = f"{self.device}{host}"
        if self.load_start is not None and self.load_end is not None:
            cores = f" on {self.cpu_count} cores" if self.cpu_count else ""
            text += f"; load {self.load_start:.1f} → {self.load_end:.1f}{cores}"
        if self.loaded:
            text += " (loaded)"
        return text


@dataclass(frozen=True)
class Recipe:
    """One compared run: its starting weights and everything that set how it learned."""

    weights: str  # the Hub id, folder or package it started from; or "random init"
    pretrained: bool
    settings: dict[str, Any]  # TrainConfig fields that change what a run learns
    precision: str  # as trained (the ledger's environment), not "auto"
    seeds: list[int]  # of every run the row's numbers are over
    train_reviews: int | None
    machine: Machine
    lr_selection: str | None = None  # how the learning rate was chosen, when by a sweep
    lr_grid: list[float] | None = None  # the rates that sweep tried

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["machine"]["loaded"] = self.machine.loaded
        return data


def run_weights(run: Run) -> str | None:
    """What the run's encoder started from: its config.yaml's `pretrained` (None: random
    init). Runs without a config.yaml fall back to the model's YAML."""
    path = run.path / CONFIG_NAME
    document = read_yaml(path) if path.exists() else None
    if isinstance(document, dict) and "pretrained" in document:
        value = document["pretrained"]
        return str(value) if value is not None else None
    try:
        return registry.load_spec(run.model).pretrained
    except ImdbError:
        return None


def machine_of(ledger: Ledger) -> Machine:
    env = ledger.environment
    return Machine(
        device=env.device or "unknown device",
        hostname=env.hostname or None,
        cpu_count=env.cpu_count or None,
        load_start=env.load_average_start,
        load_end=env.load_average_end,
        threads=env.torch_threads or None,
    )


def recipe_of(run: Run, seeds: Sequence[int]) -> Recipe:
    ledger = run.ledger
    weights = run_weights(run)
    return Recipe(
        weights=weights if weights is not None else "random init",
        pretrained=weights is not None,
        settings=ledger.config.recipe(),
        precision=ledger.environment.precision or ledger.config.precision,
        seeds=list(seeds),
        train_reviews=ledger.data.sizes.get("train_used"),
        machine=machine_of(ledger),
    )


# --------------------------------------------------------------------------- describing


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def format_optimizer(s: dict[str, Any]) -> str:
    betas = s.get("adam_betas")
    parts = [str(s.get("optimizer", "?"))]
    if isinstance(betas, list | tuple) and len(betas) == 2:
        parts.append(f"betas {_number(betas[0])}/{_number(betas[1])}")
    if "adam_eps" in s:
        parts.append(f"eps {_number(s['adam_eps'])}")
    if "weight_decay" in s:
        parts.append(f"wd {_number(s['weight_decay'])}")
    return ", ".join(parts)


def format_schedule(s: dict[str, Any]) -> str:
    warmup = s.get("warmup_ratio") or 0
    text = str(s.get("scheduler", "?"))
    return f"{text}, {warmup:.0%} warmup" if warmup else text


def format_batch(s: dict[str, Any]) -> str:
    accum = s.get("grad_accum") or 1
    return f"{s.get('batch_size', '?')}" + (f" × {accum} accumulated" if accum > 1 else "")


def format_epochs(s: dict[str, Any]) -> str:
    patience = s.get("early_stopping_patience")
    return f"{s.get('epochs', '?')}" + (f", early stop after {patience}" if patience else "")


def setting_rows(recipe: Recipe) -> list[tuple[str, str]]:
    """(row name, value) of the 'what is compared' table, in reading order."""
    s = recipe.settings
    lr = _number(s.get("lr", "?"))
    if recipe.lr_selection:
        lr += f" ({recipe.lr_selection})"
    reviews = f"{recipe.train_reviews:,}" if recipe.train_reviews is not None else "?"
    return [
        ("weights", recipe.weights if recipe.pretrained else "random init"),
        ("optimizer", format_optimizer(s)),
        ("learning rate", lr),
        ("schedule", format_schedule(s)),
        ("batch", format_batch(s)),
        ("epochs", format_epochs(s)),
        ("tokens", f"{s.get('max_length', '?')}, {s.get('truncation', '?')} truncation"),
        ("precision", recipe.precision),
        ("train reviews", reviews),
        ("seeds", ", ".join(map(str, sorted(recipe.seeds)))),
        ("trained on", recipe.machine.describe()),
    ]


# --------------------------------------------------------------------------- warnings


def differing_settings(recipes: Sequence[Recipe], *, ignore: Sequence[str] = ()) -> list[str]:
    """`--lr 0.0001 vs 0.001`, one per setting that differs between the recipes."""
    names = [f.name for f in TrainConfig.__dataclass_fields__.values() if f.name not in NOT_RECIPE]
    found = []
    for name in [*names, "precision"]:
        if name in ignore:
            continue
        values: list[Any] = (
            [r.precision for r in recipes]
            if name == "precision"
            else [r.settings.get(name) for r in recipes]
        )
        if len({repr(v) for v in values}) > 1:
            shown = " vs ".join(_number(v) if v is not None else "none" for v in values)
            found.append(f"{flag_name(name)} {shown}")
    return found


def _start(names: Sequence[str]) -> str:
    return f"{names[0]} starts" if len(names) == 1 else f"{', '.join(names)} start"


def _lr_warnings(labels: Sequence[str], recipes: Sequence[Recipe]) -> list[str]:
    """A rate chosen by a sweep is part of the recipe: the tuned model had more tries."""
    swept = [(label, r) for label, r in zip(labels, recipes, strict=True) if r.lr_grid]
    fixed = [(label, r) for label, r in zip(labels, recipes, strict=True) if not r.lr_grid]
    lines = []
    if swept and fixed:
        lines.append(
            "learning rate tuned for some models only: "
            + "; ".join(
                f"{label}'s chosen by a sweep over {', '.join(map(_number, r.lr_grid or []))}"
                for label, r in swept
            )
            + "; "
            + "; ".join(f"{label}'s fixed at {_number(r.settings.get('lr'))}" for label, r in fixed)
            + "; the tuned model had more tries at its recipe"
        )
    grids = {tuple(r.lr_grid or ()) for _, r in swept}
    if len(grids) > 1:
        lines.append(
            "learning rates chosen from different grids: "
            + "; ".join(
                f"{label} from {', '.join(map(_number, r.lr_grid or []))}" for label, r in swept
            )
        )
    return lines


def warnings(
    labels: Sequence[str], recipes: Sequence[Recipe], *, seeds_hint: str | None = None
) -> list[str]:
    """One line per way the compared runs are not like for like."""
    lines = []
    if len(recipes) > 1:
        pretrained = [label for label, r in zip(labels, recipes, strict=True) if r.pretrained]
        random = [label for label, r in zip(labels, recipes, strict=True) if not r.pretrained]
        if pretrained and random:
            lines.append(
                f"pretrained vs random init: {_start(pretrained)} from pretrained weights, "
                f"{_start(random)} from random init, so the gap measures pretraining as much "
                "as the architecture"
            )
        swept = all(r.lr_grid for r in recipes)
        differ = differing_settings(recipes, ignore=("lr",) if swept else ())
        if differ:
            lines.append(
                f"different recipes ({' / '.join(labels)}): {'; '.join(differ)}; the gap "
                "mixes the models with their settings"
            )
        lines += _lr_warnings(labels, recipes)
        counts = [len(r.seeds) for r in recipes]
        if len(set(counts)) > 1:
            lines.append(
                "different seed counts: "
                + ", ".join(f"{label} {n}" for label, n in zip(labels, counts, strict=True))
                + "; a model with more seeds shows its spread, the others may hide theirs"
            )
        machines = {r.machine.device for r in recipes}
        if len(machines) > 1:
            lines.append(
                "training time and speed were measured on different devices "
                f"({' / '.join(r.machine.device for r in recipes)}); compare them only as such"
            )
    single = [
        f"{label} (seed {r.seeds[0]})"
        for label, r in zip(labels, recipes, strict=True)
        if len(r.seeds) == 1
    ]
    if single:
        more = f" (to compare the encoders, {seeds_hint})" if seeds_hint else ""
        lines.append(
            f"one seed: {', '.join(single)}; no estimate of seed-to-seed variance, which "
            f"for fine-tuning is often a point or more, so the verdict compares checkpoints{more}"
        )
    loaded = [label for label, r in zip(labels, recipes, strict=True) if r.machine.loaded]
    if loaded:
        lines.append(
            f"speed of {', '.join(loaded)} measured on a loaded machine (others' load "
            f"reached {LOADED_SHARE:.0%} of its cores): time and samples/s are pessimistic"
        )
    return lines
