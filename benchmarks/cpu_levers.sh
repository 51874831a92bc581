#!/usr/bin/env bash
# Recipe levers on this CPU (issue 13, 2026-12-01): each a full default run (5 grouped folds, the
# student) with one change, two at a time, one thread each (on 2 cores two single-threaded
# trainings did 1.3x the work of one two-threaded one; measured in benchmarks/README.md).
# Usage: bash benchmarks/cpu_levers.sh [DATA_DIR] [RUNS_DIR] STAGE
#   STAGE losses: RUNS_DIR/base (the previous default, --loss bce-pos-weight) and RUNS_DIR/cbntr
#                 (--loss cb-ntr, the default since), side by side
#   STAGE views:  RUNS_DIR/view-premise (the premise alone: --template premise), then the student of
#                 the two views joined (distill --run RUNS_DIR/cbntr --join RUNS_DIR/view-premise)
#   STAGE views-pair: both teachers of the views stage (RUNS_DIR/cbntr and RUNS_DIR/view-premise,
#                 no students) one after the other with THREADS threads each (default 2: on an AMD
#                 EPYC with AVX2 only, a fold took 13.7 min on two threads alone against about 31
#                 min for each of two one-threaded runs side by side, 0.61 against 1.38 s per step),
#                 then the joined student
#   STAGE students: after views-pair, the default student of RUNS_DIR/cbntr (RUNS_DIR/cbntr/student)
#                 and the joined views' student reading the premise alone (RUNS_DIR/views-student-premise)
#   STAGE examples: RUNS_DIR/desc-examples, the default run with the value descriptions' 218 phrasings
#                 as extra training arguments in every fold (--description-examples), THREADS threads
#                 (default 2), its student included
#   STAGE table:  validation F1 of the runs' ensembles, alone and joined (benchmarks/run_ensembles.py)
set -euo pipefail
DATA=${1:-../shared/data/valueeval23}
RUNS=${2:-runs}
STAGE=${3:-losses}
BIN=${BIN:-.venv/bin}
mkdir -p "$RUNS/logs"
train() {  # NAME OPTIONS...: one default run with OPTIONS, THREADS threads (default 1), in the background
    local name=$1; shift
    OMP_NUM_THREADS=${THREADS:-1} MKL_NUM_THREADS=${THREADS:-1} "$BIN/argvalues" train \
        --arguments "$DATA/arguments-training.tsv" --labels "$DATA/labels-training.tsv" \
        --unlabelled "$DATA/arguments-test.tsv" \
        --validation-arguments "$DATA/arguments-validation.tsv" --validation-labels "$DATA/labels-validation.tsv" \
        --output "$RUNS/$name" --resume "$@" > "$RUNS/logs/$name.log" 2>&1 &
}
views_student() {  # [NAME FIRST SECOND]: the student of the two views joined, reading FIRST's template, two threads
    local name=${1:-views-student} first=${2:-cbntr} second=${3:-view-premise}
    OMP_NUM_THREADS=2 "$BIN/argvalues" distill --run "$RUNS/$first" --join "$RUNS/$second" \
        --unlabelled "$DATA/arguments-test.tsv" \
        --validation-arguments "$DATA/arguments-validation.tsv" --validation-labels "$DATA/labels-validation.tsv" \
        --output "$RUNS/$name" > "$RUNS/logs/$name.log" 2>&1
}
case "$STAGE" in
    losses)
        train base --loss bce-pos-weight
        train cbntr --loss cb-ntr
        wait ;;
    views)
        train view-premise --template premise --no-distill
        wait
        views_student ;;
    views-pair)
        THREADS=${THREADS:-2}
        train cbntr --loss cb-ntr --no-distill; wait
        train view-premise --template premise --no-distill; wait
        views_student ;;
    students)  # after views-pair: the default student of runs/cbntr (train --resume keeps its folds), and
               # the joined views' student reading the premise alone (started from the premise run's best fold)
        THREADS=2 train cbntr --loss cb-ntr; wait
        views_student views-student-premise view-premise cbntr ;;
    examples)
        THREADS=${THREADS:-2} train desc-examples --description-examples "$DATA/value-categories.json"; wait ;;
    table)
        "$BIN/python" benchmarks/run_ensembles.py "$RUNS/base" "$RUNS/cbntr" --data "$DATA"
        "$BIN/python" benchmarks/run_ensembles.py "$RUNS/cbntr" "$RUNS/view-premise" --data "$DATA" ;;
    *) echo "unknown stage $STAGE (losses, views, views-pair, students, examples, table)" >&2; exit 2 ;;
esac
