#!/usr/bin/env bash
# The main job as a user meets it: a fresh virtualenv, `pip install` of this checkout with no extras,
# the packaged model, `score FILE` with no flags, on 5,688 arguments (validation x3). Whole processes,
# alternating with the peers (same file, same machine, same run): the transformers pipeline (PyTorch
# fp32, benchmarks/peers/pipeline_script.py) and OpenVINO's default on an exported model.onnx of the
# same architecture (benchmarks/peers/openvino_script.py), both run from the dev install (BIN).
# Prints the install's size, each command's median, min and max over PAIRS rounds, and the ratios of
# the medians, with the CPU flags.
#   bash benchmarks/as_users_meet_it.sh CHECKPOINT ONNX_MODEL_DIR [PAIRS]
# CHECKPOINT: a checkpoint of the packaged model's architecture (MiniLM-L6) for the pipeline;
# ONNX_MODEL_DIR: an exported model directory of that architecture holding model.onnx.
set -euo pipefail
CHECKPOINT=$1
ONNX_DIR=$2
PAIRS=${3:-5}
BIN=${BIN:-.venv/bin}
DATA=${DATA:-../shared/data/valueeval23}
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$BIN/python" -c "import sys; sys.path.insert(0, '.')
from argvalues.variants import cpu_flags, cpu_name, SPEED_FLAGS
found = sorted(cpu_flags() & set(SPEED_FLAGS))
print('CPU:', cpu_name() + ';', 'flags:', ' '.join(found) or 'none', '(of', ' '.join(SPEED_FLAGS) + ')')"
started=$(date +%s)
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q --upgrade pip
"$WORK/venv/bin/python" -m pip install -q . 2> "$WORK/install.log" || { cat "$WORK/install.log"; exit 1; }
echo "fresh install: $(( $(date +%s) - started )) s; $(du -sm "$WORK/venv" | cut -f1) MB (virtualenv, pip included)"
"$WORK/venv/bin/python" -c "import importlib.util as u; print('torch installed:', u.find_spec('torch') is not None,
'| openvino installed:', u.find_spec('openvino') is not None)"
"$BIN/python" -c "import sys; sys.path.insert(0, 'benchmarks'); from pathlib import Path
from scoring_speed import validation_copies; validation_copies(Path(sys.argv[1]), Path(sys.argv[2]))" \
    "$DATA" "$WORK/corpus.tsv"
timed() {  # name, command...: appends the seconds to $WORK/NAME
    local name=$1; shift
    local began=$(date +%s.%N)
    "$@" > /dev/null 2> "$WORK/stderr" || { cat "$WORK/stderr"; exit 1; }
    echo "$(date +%s.%N) - $began" | bc >> "$WORK/$name"
}
cd "$WORK"  # the user's score runs where no ./argvalues-model is: the packaged model
for round in $(seq "$PAIRS"); do
    timed user "$WORK/venv/bin/score" corpus.tsv -o scores.tsv
    timed pipeline "$OLDPWD/$BIN/python" "$OLDPWD/benchmarks/peers/pipeline_script.py" "$OLDPWD/$CHECKPOINT" \
        "$OLDPWD/$ONNX_DIR" corpus.tsv pipeline.tsv
    timed openvino env PYTHONPATH="$OLDPWD" "$OLDPWD/$BIN/python" "$OLDPWD/benchmarks/peers/openvino_script.py" \
        "$OLDPWD/$ONNX_DIR" corpus.tsv openvino.tsv
    echo "round $round: user $(tail -1 user) s, pipeline $(tail -1 pipeline) s, OpenVINO $(tail -1 openvino) s"
done
"$WORK/venv/bin/python" - "$WORK" <<'PY'
import json, statistics, sys
from pathlib import Path
work = Path(sys.argv[1])
times = {name: [float(line) for line in (work / name).read_text().split()] for name in ("user", "pipeline", "openvino")}
meta = json.loads((work / "scores.tsv.meta.json").read_text())
print(f"rows: {meta['rows']['scored'] if isinstance(meta.get('rows'), dict) else meta.get('rows')}; the user's variant: "
      f"{meta['variant']}")
print("| command | median s | min | max | median vs the pipeline |")
print("| --- | --- | --- | --- | --- |")
labels = {"user": "`score corpus.tsv` (fresh `pip install .`, packaged model)",
          "pipeline": "transformers pipeline, PyTorch fp32", "openvino": "OpenVINO's default on model.onnx"}
pipeline = statistics.median(times["pipeline"])
for name, values in times.items():
    median = statistics.median(values)
    print(f"| {labels[name]} | {median:.1f} | {min(values):.1f} | {max(values):.1f} | {pipeline / median:.2f}x |")
print(f"the user's run vs OpenVINO's default: {statistics.median(times['openvino']) / statistics.median(times['user']):.2f}x")
PY
