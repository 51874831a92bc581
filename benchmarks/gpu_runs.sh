#!/usr/bin/env bash
# 5-fold runs on the GPU machine, several at once, then their ensembles (each run alone and joined)
# on the validation set (benchmarks/run_ensembles.py). Run from the repository root there, once per
# part that benchmarks/gpu_carry.sh built, back to back:
#   bash benchmarks/gpu_runs.sh .carry/part-K OUT ["NAME OPTIONS" ...]
# and later calls on the same warm machine, carrying nothing, with PART "-".
# A part before the last is only stored (the warm machine keeps /tmp between calls). With the last
# one the parts are joined, the wheels installed (transformers 4.57.6 and the other pins the device
# image lacks), the base model's fp16 weights widened back to fp32, and the runs trained: each
# "NAME OPTIONS" is `argvalues train --output runs/NAME OPTIONS` on the carried data and model (the
# default: four seeds of the default recipe, then, with WAVE=2 in a later call, two more seeds, focal
# loss and the model's own pooling). DEADLINE (seconds, default 560) stops unfinished runs so that
# the finished ones are still scored and packed into OUT/runs.tgz.
# In OPTIONS, @DATA stands for the carried data folder; a leading "+val" trains on the training and
# validation pairs together (no validation judge then). GPU_ROOT (default /tmp) holds the carried
# files, the wheels and the base model on the device; RUNS (default runs) the runs; LOGS (default
# OUT) the runs' logs: another folder keeps OUT under the 8 files a call returns, and they go into
# runs.tgz instead.
set -uo pipefail
PART=$1 OUT=$2; shift 2
start=$SECONDS
ROOT=${GPU_ROOT:-/tmp} RUNS=${RUNS:-runs} LOGS=${LOGS:-$OUT}
mkdir -p "$LOGS"
export PYTHONPATH=$ROOT/site:$PWD TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
CARRY=$ROOT/carry
mkdir -p $CARRY/parts
[[ $PART == - ]] || cp "$PART"/all.tar.* $CARRY/parts/ || exit 1
if [[ ! -d $CARRY/data ]]; then
    have=$(ls $CARRY/parts | wc -l) want=$(cat "$PART/parts" 2>/dev/null || echo 0)
    if (( have < want )); then echo "stored part $have of $want"; exit 0; fi
    cat $CARRY/parts/all.tar.* | tar xf - -C $CARRY && rm -rf $CARRY/parts || exit 1
    for f in $CARRY/data/*.gz; do [[ -e $f ]] && gunzip -f "$f"; done
fi
[[ -d $ROOT/site/transformers ]] ||
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $ROOT/site $CARRY/whl/*.whl || exit 1
MODEL=$ROOT/model
[[ -f $MODEL/model.safetensors ]] || python3 - $CARRY/model $MODEL <<'PY' || exit 1
import shutil, sys
from pathlib import Path
from safetensors.torch import load_file, save_file
source, target = Path(sys.argv[1]), Path(sys.argv[2])
shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.safetensors"), dirs_exist_ok=True)
weights = load_file(source / "model.fp16.safetensors")
save_file({k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in weights.items()},
          target / "model.safetensors")
PY
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/device.txt"
echo "ready after $((SECONDS - start)) s"
DATA=$CARRY/data
train() {  # NAME [+val] [options...]
    local name=$1; shift
    local data=(--arguments "$DATA/arguments-training.tsv" --labels "$DATA/labels-training.tsv")
    if [[ ${1:-} == +val ]]; then
        shift; data+=(--arguments "$DATA/arguments-validation.tsv" --labels "$DATA/labels-validation.tsv")
    else
        data+=(--validation-arguments "$DATA/arguments-validation.tsv" --validation-labels "$DATA/labels-validation.tsv")
    fi
    OMP_NUM_THREADS=${THREADS:-4} timeout $(( ${DEADLINE:-560} - (SECONDS - start) )) \
        python3 -c 'from argvalues.cli import main; main()' train --model $MODEL "${data[@]}" \
        --output "$RUNS/$name" "${@//@DATA/$DATA}" > "$LOGS/$name.log" 2>&1
    echo "$name: exit $? after $((SECONDS - start)) s"
}
wave() { for spec in "$@"; do train $spec & done; wait; }
finished() { for spec in "$@"; do set -- $spec; [[ -f $RUNS/$1/oof-probabilities.tsv && ${2:-} != +val ]] && echo "$RUNS/$1"; done; }
ensembles() { local runs; runs=$(finished "$@"); [[ -n $runs ]] && python3 benchmarks/run_ensembles.py $runs --data "$DATA"; }
pack() {
    find $RUNS -name run-config.json -o -name distill-report.json -o -name 'cv-*' -o -name oof-probabilities.tsv -o -name argvalues.json \
        -o -name validation-probabilities.tsv -o -name record.json -o -name '*probabilities.npy' -o -name 'parity-*' \
        | { cat; [[ $LOGS != "$OUT" ]] && find "$LOGS" -name '*.log'; } | tar czf "$OUT/runs.tgz" -T -
}
if (( $# )); then
    wave "$@"
    ensembles "$@" | tee "$OUT/ensembles.md"
    pack
elif [[ ${WAVE:-1} == 1 ]]; then
    wave "s42 --seed 42" "s43 --seed 43" "s44 --seed 44" "s45 --seed 45"
    ensembles s42 s43 s44 s45 | tee "$OUT/ensembles.md"
    pack
else  # a second call on the still-warm machine finds wave 1's runs in place
    wave "s46 --seed 46" "s47 --seed 47" "focal42 --seed 42 --loss focal" "model42 --seed 42 --pooling model"
    ensembles s42 s43 s44 s45 s46 s47 | tee -a "$OUT/ensembles.md"
    ensembles s42 focal42 model42 | tee -a "$OUT/ensembles.md"
    pack
fi
echo "done in $((SECONDS - start)) s"
