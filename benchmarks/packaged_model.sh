#!/usr/bin/env bash
# Rebuilds the packaged model (argvalues/packaged_model, score's default model): the default recipe
# (README, "Training on the real data") on every labelled argument (the official training and
# validation sets, folds grouped by conclusion over both), then its student exported with the
# compact variant (fp32 arithmetic on fp16-stored weights: 45 MB where model.onnx is 90 MB), of which
# the package keeps the compact file alone, or, where its labels hold, the static int8 variant made
# from it (benchmarks/package_static_int8.py), and beside it, on a CPU with VNNI or AMX, OpenVINO's
# int8 (int8-openvino) where its labels hold too; the package stays within 70 MB. Run it on such a
# CPU to ship both (the GPU machine's CPU is one). About two hours on a 2-core CPU.
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
for file in "$RUN/model"/*; do  # every file but the ONNX models other than the compact one
    case "$(basename "$file")" in
        model_compact.onnx) cp -p "$file" "$staged"/ ;;
        model*.onnx | model*.onnx.data) ;;
        *) cp -p "$file" "$staged"/ ;;
    esac
done
# The card export wrote, under a header that says what the package holds and what judges it.
"$BIN/python" - "$RUN" "$staged" <<'PY'
import json, pathlib, sys
run, staged = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
report = json.loads((run / "cv-report.json").read_text())
crossfit = report["thresholds"]["crossfit_f1"][report["thresholds"]["strategy"]]
size = sum(p.stat().st_size for p in staged.iterdir()) / 2**20
header = (
    "# argvalues model: the human values behind arguments\n\n"
    "**The model packaged with argvalues** (`score`'s model when neither `--model`, `$ARGVALUES_MODEL` nor "
    f"`./argvalues-model` names another). To stay small ({size:.0f} MiB) the package holds its compact variant "
    "(`model_compact.onnx`: the fp32 model with its large weights stored as fp16, fp32 arithmetic) alone; "
    "`model.onnx` and the checks below were made by the export it was cut from. It was trained on every labelled "
    f"argument ({report['data']['rows']}: the official training and validation sets), so validation cannot judge "
    f"it: the fold models it was distilled from score {crossfit:.4f} out of fold (cross-fitted official F1). "
    "Rebuild it with `bash benchmarks/packaged_model.sh`.\n\n")
card = staged / "README.md"
body = card.read_text()
card.write_text(header + (body.split("\n\n", 1)[1] if body.startswith("# ") else body))
PY
chmod 755 "$staged"
rm -rf "$PACKAGE"
mv "$staged" "$PACKAGE"
du -sh "$PACKAGE"
# Static int8 in place of the compact file where its labels hold (made and judged here: the docstring says how).
"$BIN/python" benchmarks/package_static_int8.py "$PACKAGE" --data "$DATA"
