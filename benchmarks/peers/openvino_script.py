"""What a user who reaches for OpenVINO writes: the exported model.onnx at OpenVINO's default precision.

    python benchmarks/peers/openvino_script.py MODEL_DIR INPUT.tsv OUTPUT.tsv

Same tokenizer (tokenizer.json), template, max length, length-sorted batches of 64 and thresholds as
`score`; OpenVINO's defaults otherwise (one infer request; bf16 on a CPU with AMX or AVX512-BF16, f32 elsewhere).
"""

import csv
import json
import sys

import numpy as np
import openvino
from tokenizers import Tokenizer

model_dir, source, target = sys.argv[1:4]
config = json.load(open(f"{model_dir}/argvalues.json"))
tokenizer = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
tokenizer.no_padding()
tokenizer.enable_truncation(config["max_length"])
core = openvino.Core()
compiled = core.compile_model(core.read_model(f"{model_dir}/model.onnx"), "CPU")
request = compiled.create_infer_request()
names = {port.get_any_name() for port in compiled.inputs}

with open(source, newline="", encoding="utf-8") as handle:
    rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
template = config["template"]
texts = [template["text"].format(**row) for row in rows]
pairs = [template["text_pair"].format(**row) for row in rows] if template.get("text_pair") else None
encodings = tokenizer.encode_batch(list(zip(texts, pairs)) if pairs else texts)
lengths = np.array([len(e.ids) for e in encodings])
order = np.argsort(lengths, kind="stable")
probabilities = np.empty((len(rows), len(config["labels"])), dtype=np.float32)
for start in range(0, len(order), 64):
    batch = order[start:start + 64]
    width = int(lengths[batch].max())
    feeds = {"input_ids": np.zeros((len(batch), width), np.int64), "attention_mask": np.zeros((len(batch), width), np.int64),
             "token_type_ids": np.zeros((len(batch), width), np.int64)}
    for row, index in enumerate(batch):
        ids = encodings[index].ids
        feeds["input_ids"][row, :len(ids)] = ids
        feeds["attention_mask"][row, :len(ids)] = 1
        feeds["token_type_ids"][row, :len(ids)] = encodings[index].type_ids
    logits = request.infer({k: v for k, v in feeds.items() if k in names})[compiled.outputs[0]]
    probabilities[batch] = 1 / (1 + np.exp(-logits))
labels = (probabilities >= np.asarray(config["thresholds"])).astype(int)
with open(target, "w", newline="") as handle:
    writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
    writer.writerow(["Argument ID"] + config["labels"])
    for row, values in zip(rows, labels):
        writer.writerow([row["Argument ID"]] + values.tolist())
