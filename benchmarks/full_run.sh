#!/usr/bin/env bash
# The default path of the README, measured: `argvalues train` (5-fold CV grouped by conclusion on
# the official training set, then the fold ensemble distilled into one student, with the test
# arguments as unlabelled data), `argvalues export RUN` (the student and its fast variants), then `score` on
# the validation arguments and `evaluate`, checking that the exported model reproduces the trainer's
# figure for the student.
# Usage: bash benchmarks/full_run.sh [DATA_DIR] [RUN_DIR]    (about an hour on a 2-core CPU)
set -euo pipefail
DATA=${1:-../shared/data/valueeval23}
RUN=${2:-runs/full}
BIN=${BIN:-.venv/bin}
mkdir -p "$RUN"
stamp() { date +%s; }
t0=$(stamp)
"$BIN/argvalues" train --arguments "$DATA/arguments-training.tsv" --labels "$DATA/labels-training.tsv" \
    --unlabelled "$DATA/arguments-test.tsv" \
    --validation-arguments "$DATA/arguments-validation.tsv" --validation-labels "$DATA/labels-validation.tsv" \
    --output "$RUN" --resume
t1=$(stamp)
"$BIN/argvalues" export "$RUN" --output "$RUN/model"
t2=$(stamp)
"$BIN/score" --model "$RUN/model" --variant fp32 "$DATA/arguments-validation.tsv" -o "$RUN/validation-scores-fp32.tsv"
"$BIN/score" --model "$RUN/model" "$DATA/arguments-validation.tsv" -o "$RUN/validation-scores.tsv"
t3=$(stamp)
"$BIN/argvalues" evaluate "$RUN/validation-scores.tsv" "$DATA/labels-validation.tsv" | tee "$RUN/validation-evaluation.txt"
"$BIN/argvalues" evaluate --json "$RUN/validation-scores-fp32.tsv" "$DATA/labels-validation.tsv" > "$RUN/validation-evaluation-fp32.json"
"$BIN/python" - "$RUN" <<'PY'
import json, sys
run = sys.argv[1]
report = json.load(open(f"{run}/cv-report.json"))
trainer = report["student"]["validation"]["f1"]
onnx = json.load(open(f"{run}/validation-evaluation-fp32.json"))["f1"]
print(f"validation official F1: run's best/ {report['validation']['f1']:.4f}; student: trainer (PyTorch) "
      f"{trainer:.4f}, exported ONNX fp32 via score {onnx:.4f}")
assert round(trainer, 3) == round(onnx, 3), "the exported model does not reproduce the trainer's figure"
PY
echo "times: train (folds and student) $((t1 - t0)) s, export $((t2 - t1)) s, score (twice) $((t3 - t2)) s"
