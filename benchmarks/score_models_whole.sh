#!/bin/bash
# Whole `score` processes on validation x3 (5,688 rows) for each MODEL_DIR, alternating with the
# OpenVINO peer script on the first one, best of REPEATS (3); prints seconds per command and run.
#   bash benchmarks/score_models_whole.sh MODEL_DIR [MODEL_DIR ...]
# (benchmarks/README.md, "Outlier channels split off": export's int8 recipe against a candidate's.)
set -euo pipefail
BIN=${BIN:-.venv/bin}
DATA=${DATA:-../shared/data/valueeval23}
REPEATS=${REPEATS:-3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$BIN/python" -c "import sys; sys.path.insert(0, 'benchmarks'); from pathlib import Path
from scoring_speed import validation_copies; validation_copies(Path(sys.argv[1]), Path(sys.argv[2]))" \
    "$DATA" "$WORK/validation-x3.tsv"
"$BIN/python" -c "import sys; sys.path.insert(0, '.'); from argvalues.variants import cpu_flags, SPEED_FLAGS; print('CPU flags:', ' '.join(sorted(cpu_flags() & set(SPEED_FLAGS))))"
timed() {  # label, command...
    local label=$1; shift
    local started=$(date +%s.%N)
    "$@" > /dev/null
    echo "$label $(echo "$(date +%s.%N) - $started" | bc)"
}
for _ in $(seq "$REPEATS"); do
    for model in "$@"; do
        timed "score --model $model" "$BIN/score" --model "$model" --quiet "$WORK/validation-x3.tsv" -o "$WORK/out.tsv"
    done
    timed "OpenVINO script on $1" env PYTHONPATH=. "$BIN/python" benchmarks/peers/openvino_script.py "$1" \
        "$WORK/validation-x3.tsv" "$WORK/out.tsv"
done
