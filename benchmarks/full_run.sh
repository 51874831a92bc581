#!/usr/bin/env bash
# The full run recorded in benchmarks/README.md: 5-fold CV on the official training set with the
# default recipe and base model, then export, score the validation arguments and evaluate them.
# Usage: bash benchmarks/full_run.sh [DATA_DIR] [RUN_DIR]    (about 40 minutes on a 2-core CPU)
set -euo pipefail
DATA=${1:-../shared/data/valueeval23}
RUN=${2:-runs/full}
BIN=${BIN:-.venv/bin}
mkdir -p "$RUN"
stamp() { date +%s; }
t0=$(stamp)
"$BIN/argvalues" train --arguments "$DATA/arguments-training.tsv" --labels "$DATA/labels-training.tsv" \
    --validation-arguments "$DATA/arguments-validation.tsv" --validation-labels "$DATA/labels-validation.tsv" \
    --folds 5 --output "$RUN"
t1=$(stamp)
"$BIN/argvalues" export "$RUN" --output "$RUN/model"
t2=$(stamp)
"$BIN/score" --model "$RUN/model" "$DATA/arguments-validation.tsv" -o "$RUN/validation-scores.tsv"
t3=$(stamp)
"$BIN/argvalues" evaluate "$RUN/validation-scores.tsv" "$DATA/labels-validation.tsv" | tee "$RUN/validation-evaluation.txt"
"$BIN/argvalues" evaluate --json "$RUN/validation-scores.tsv" "$DATA/labels-validation.tsv" > "$RUN/validation-evaluation.json"
"$BIN/python" - "$RUN" <<'PY'
import json, sys
run = sys.argv[1]
trainer = json.load(open(f"{run}/cv-report.json"))["validation"]["f1"]
onnx = json.load(open(f"{run}/validation-evaluation.json"))["f1"]
print(f"validation official F1: trainer (PyTorch, best checkpoint) {trainer:.4f}, exported ONNX via score {onnx:.4f}")
assert round(trainer, 3) == round(onnx, 3), "the exported model does not reproduce the trainer's figure"
PY
echo "times: train $((t1 - t0)) s, export $((t2 - t1)) s, score $((t3 - t2)) s"
