#!/usr/bin/env bash
# Several 5-fold runs of the default recipe on the GPU machine, at once, then their joined ensembles
# on the validation set (benchmarks/run_ensembles.py). Run from the repository root there:
#   bash benchmarks/gpu_runs.sh CARRY OUT
# CARRY holds whl/ (transformers 4.57.6 and the other pins the device image lacks), minilm/ (the
# packaged all-MiniLM-L6-v2 with its weights stored as fp16 to fit one 64 MiB transfer; widened back
# to fp32 here) and data/ (the four official training and validation TSVs). Results go to OUT.
set -uo pipefail
CARRY=$1 OUT=$2
start=$SECONDS
export PYTHONPATH=/tmp/site:$PWD TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
# Once per machine: a warm machine keeps /tmp between calls, so a second call needs only CARRY/data.
[[ -d /tmp/site/transformers ]] ||
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$CARRY"/whl/*.whl || exit 1
[[ -f /tmp/minilm/model.safetensors ]] || python3 - "$CARRY/minilm" /tmp/minilm <<'PY' || exit 1
import shutil, sys, torch
from pathlib import Path
from safetensors.torch import load_file, save_file
source, target = Path(sys.argv[1]), Path(sys.argv[2])
shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.safetensors"), dirs_exist_ok=True)
weights = load_file(source / "model.fp16.safetensors")
save_file({k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in weights.items()},
          target / "model.safetensors")
PY
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/device.txt"
DATA=$CARRY/data
train() {  # NAME [options...]
    local name=$1; shift
    OMP_NUM_THREADS=4 python3 -c 'from argvalues.cli import main; main()' train --model /tmp/minilm \
        --arguments "$DATA/arguments-training.tsv" --labels "$DATA/labels-training.tsv" \
        --validation-arguments "$DATA/arguments-validation.tsv" --validation-labels "$DATA/labels-validation.tsv" \
        --output "runs/$name" "$@" > "$OUT/$name.log" 2>&1
    echo "$name: exit $? after $((SECONDS - start)) s"
}
wave() { for spec in "$@"; do train $spec & done; wait; }
pack() {
    find runs -name run-config.json -o -name cv-report.json -o -name cv-report.md -o -name oof-probabilities.tsv \
        -o -name validation-probabilities.tsv -o -name record.json -o -name '*probabilities.npy' \
        | tar czf "$OUT/runs.tgz" -T -
}
# A second call on the still-warm machine (WAVE=2) finds wave 1's runs in place.
if [[ ${WAVE:-1} == 1 ]]; then
    wave "s42 --seed 42" "s43 --seed 43" "s44 --seed 44" "s45 --seed 45"
    python3 benchmarks/run_ensembles.py runs/s42 runs/s43 runs/s44 runs/s45 --data "$DATA" | tee "$OUT/ensembles.md"
    echo "wave 1 and its ensembles: $((SECONDS - start)) s"
    pack
fi
if [[ ${WAVE:-1} == 2 ]] || (( SECONDS - start < 230 )); then
    wave "s46 --seed 46" "s47 --seed 47" "focal42 --seed 42 --loss focal" "model42 --seed 42 --pooling model"
    python3 benchmarks/run_ensembles.py runs/s42 runs/s43 runs/s44 runs/s45 runs/s46 runs/s47 --data "$DATA" \
        | tee -a "$OUT/ensembles.md"
    python3 benchmarks/run_ensembles.py runs/s42 runs/focal42 runs/model42 --data "$DATA" | tee -a "$OUT/ensembles.md"
    pack
fi
echo "done in $((SECONDS - start)) s"
