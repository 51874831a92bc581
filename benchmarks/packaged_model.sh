#!/usr/bin/env bash
# Rebuilds the packaged model (argvalues/packaged_model, score's default model): the default recipe
# (README, "Training on the real data") on every labelled argument (the official training and
# validation sets, folds grouped by conclusion over both), then its student exported with the
# compact variant (fp32 arithmetic on fp16-stored weights: 45 MB where model.onnx is 90 MB), of which
# the package keeps the compact file alone. About two hours on a 2-core CPU.
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
"$BIN/python" - "$RUN/model" <<'PY'
import json, sys
variants = json.load(open(f"{sys.argv[1]}/manifest.json"))["variants"]
compact = variants["fp32-compact"]
print(f"fp32-compact: {100 * compact['label_agreement']:.2f}% of held-out labels as fp32, "
      f"F1 change {compact['f1_change']:+.4f}; int8: {100 * variants['int8']['label_agreement']:.2f}%")
assert compact["default_ok"], "the compact variant did not hold the labels: not packaged"
PY
staged=$(mktemp -d "$(dirname "$PACKAGE")/.packaged-XXXX")
cp -p "$RUN/model"/* "$staged"/
rm -f "$staged"/model.onnx "$staged"/model_quantized.onnx "$staged"/model_*.onnx.data
chmod 755 "$staged"
rm -rf "$PACKAGE"
mv "$staged" "$PACKAGE"
du -sh "$PACKAGE"
