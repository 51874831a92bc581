#!/usr/bin/env bash
# Two seeds of the default recipe joined into one ensemble, and one student distilled from it: the
# CPU figures of benchmarks/README.md, "More seeds in one ensemble". About 2 hours on a 2-core CPU
# (each run 43 min, the student 15 min; it also learns the ensemble's probabilities on the unlabelled
# test arguments). RUN_DIR/seed42 may be a finished `full_run.sh` run.
# Usage: bash benchmarks/joined_run.sh [DATA_DIR] [RUN_DIR]
set -euo pipefail
DATA=${1:-../shared/data/valueeval23}
RUNS=${2:-runs}
BIN=${BIN:-.venv/bin}
validation=(--validation-arguments "$DATA/arguments-validation.tsv" --validation-labels "$DATA/labels-validation.tsv")
for seed in 42 43; do
    [[ -f $RUNS/seed$seed/cv-report.json ]] && continue
    "$BIN/argvalues" train --arguments "$DATA/arguments-training.tsv" --labels "$DATA/labels-training.tsv" \
        "${validation[@]}" --folds 5 --seed $seed --no-distill --output "$RUNS/seed$seed"
done
"$BIN/argvalues" export "$RUNS/seed42" --ensemble --join "$RUNS/seed43" --output "$RUNS/joined-ensemble"
"$BIN/score" --model "$RUNS/joined-ensemble" "$DATA/arguments-validation.tsv" -o "$RUNS/joined-validation-scores.tsv"
"$BIN/argvalues" evaluate "$RUNS/joined-validation-scores.tsv" "$DATA/labels-validation.tsv"
"$BIN/argvalues" distill --run "$RUNS/seed42" --join "$RUNS/seed43" --arguments "$DATA/arguments-training.tsv" \
    --teacher "$RUNS/joined-ensemble" --unlabelled "$DATA/arguments-test.tsv" "${validation[@]}" \
    --output "$RUNS/joined-student"
"$BIN/argvalues" export "$RUNS/joined-student" --quantize --output "$RUNS/joined-student-model"
for variant in fp32 int8; do
    "$BIN/score" --model "$RUNS/joined-student-model" --variant $variant "$DATA/arguments-validation.tsv" \
        -o "$RUNS/joined-student-$variant-scores.tsv"
    "$BIN/argvalues" evaluate "$RUNS/joined-student-$variant-scores.tsv" "$DATA/labels-validation.tsv"
done
