#!/usr/bin/env bash
# The recipe levers of issue 13, measured in one GPU call (benchmarks/README.md, "Recipe levers"):
# the default recipe and each lever, one 5-fold run each on the training set with the official
# validation set as the judge, each distilled into its student (--distill, the test arguments as
# unlabelled data), plus the default recipe on 60% and 80% of the training conclusions (a learning
# curve). Then each run's ensemble on validation (run_ensembles.py), and the student of the run with
# the highest out-of-fold F1 (chosen without the validation labels) packed into OUT for the
# package. Run on the device from a copy of the repository, with benchmarks/gpu_carry.sh's part:
#   GPU_ROOT=/tmp/labels bash benchmarks/gpu_levers.sh PART OUT
set -uo pipefail
PART=$1 OUT=$2
export GPU_ROOT=${GPU_ROOT:-/tmp/labels} RUNS=${GPU_ROOT:-/tmp/labels}/runs LOGS=${GPU_ROOT:-/tmp/labels}/logs
export THREADS=${THREADS:-2} DEADLINE=${DEADLINE:-500}
# EXTRA: options for every run, STUDENT: the student's (a quick trial here: EXTRA="--limit 60 --folds 2
# --epochs 1" STUDENT=--distill).
STUDENT=${STUDENT:-"--distill --unlabelled @DATA/arguments-test.tsv"} EXTRA=${EXTRA:-}
LEVEL1="--level1-labels @DATA/level1-labels-training.tsv"
DESCRIPTIONS="--descriptions @DATA/value-categories.json"
bash benchmarks/gpu_runs.sh "$PART" "$OUT" \
    "base --seed 42 $STUDENT $EXTRA" \
    "level1 --seed 42 $LEVEL1 $STUDENT $EXTRA" \
    "descriptions --seed 42 $DESCRIPTIONS $STUDENT $EXTRA" \
    "level1-descriptions --seed 42 $LEVEL1 $DESCRIPTIONS $STUDENT $EXTRA" \
    "conclusions60 --seed 42 --conclusions-fraction 0.6 $EXTRA" \
    "conclusions80 --seed 42 --conclusions-fraction 0.8 $EXTRA"
chosen=$(python3 - "$RUNS" <<'PY'
import json, sys
from pathlib import Path
runs = [Path(sys.argv[1]) / name for name in ("base", "level1", "descriptions", "level1-descriptions")]
oof = {}
for run in runs:
    if (run / "cv-report.json").is_file() and (run / "student" / "best" / "argvalues.json").is_file():
        thresholds = json.loads((run / "cv-report.json").read_text())["thresholds"]
        oof[run.name] = thresholds["crossfit_f1"][thresholds["strategy"]]
        print(f"{run.name}: out-of-fold F1 (cross-fitted) {oof[run.name]:.4f}", file=sys.stderr)
print(max(oof, key=oof.get))
PY
)
echo "chosen by out-of-fold F1: $chosen" | tee "$OUT/chosen.txt"
python3 benchmarks/student_parts.py pack "$RUNS/$chosen/student/best" "$OUT" --records "$RUNS/$chosen"
