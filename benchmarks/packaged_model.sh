#!/usr/bin/env bash
# Rebuilds the packaged model (argvalues/packaged_model, score's default model): the default recipe
# (docs/training.md) on every labelled argument (the official training and validation sets, folds
# grouped by conclusion over both), then its student exported with the compact variant (fp32
# arithmetic on fp16-stored weights: 45 MB where model.onnx is 90 MB). The package keeps the compact
# file alone (export.packaging: its records then name only what it holds), or, where their labels
# hold, the int8 variants made from it (benchmarks/package_int8.py): the fastest here of dynamic and
# static int8, then, on a CPU with VNNI or AMX, OpenVINO's int8 (int8-openvino), then the other, while
# the package stays within 70 MB. Run it on such a CPU to ship int8-openvino (the GPU machine's CPU
# is one). About two and a half hours on a 2-core CPU; `--resume` keeps the finished folds and
# student of an interrupted run.
# Usage: bash benchmarks/packaged_model.sh [DATA_DIR] [RUN_DIR] [PACKAGE_DIR]
set -euo pipefail
DATA=${1:-../shared/data/valueeval23}
RUN=${2:-runs/packaged}
PACKAGE=${3:-argvalues/packaged_model}
BIN=${BIN:-.venv/bin}
"$BIN/argvalues" train --arguments "$DATA/arguments-training.tsv" --labels "$DATA/labels-training.tsv" \
    --arguments "$DATA/arguments-validation.tsv" --labels "$DATA/labels-validation.tsv" \
    --unlabelled "$DATA/arguments-test.tsv" --output "$RUN" --resume
"$BIN/argvalues" export "$RUN" --compact --quantize --output "$RUN/model"
"$BIN/python" - "$RUN" "$PACKAGE" <<'PY'
import json, sys
from pathlib import Path
from export.model_card import training_data
from export.packaging import cut_model_dir
from trainer.run_dir import RunDir

run, package = Path(sys.argv[1]), Path(sys.argv[2])
manifest = json.loads((run / "model" / "manifest.json").read_text())
compact = manifest["variants"]["fp32-compact"]
print(f"fp32-compact: {100 * compact['label_agreement']:.2f}% of held-out labels as fp32, "
      f"F1 change {compact['f1_change']:+.4f}")
assert compact["default_ok"], "the compact variant did not hold the labels: not packaged"
note = ("**The model packaged with argvalues**: `score`'s model when neither `--model`, `$ARGVALUES_MODEL` nor "
        "`./argvalues-model` names another. Rebuild it with `bash benchmarks/packaged_model.sh`.")
cut_model_dir(run / "model", package, ["model_compact.onnx"], training_data(manifest, RunDir(run)), note)
PY
du -sh "$PACKAGE"
# int8 in place of the compact file where its labels hold (made and judged there: its docstring says how).
"$BIN/python" benchmarks/package_int8.py "$PACKAGE" --data "$DATA"
