"""What a user of Optimum writes: ORTModelForSequenceClassification on the exported model.onnx.

    python benchmarks/peers/ortmodel_script.py MODEL_DIR INPUT.tsv OUTPUT.tsv

Optimum's defaults (ONNX Runtime, CPU, all cores); the transformers tokenizer of MODEL_DIR, batches
of 64 in input order; template, max length and thresholds from argvalues.json.
"""

import csv
import json
import sys

import numpy as np
from optimum.onnxruntime import ORTModelForSequenceClassification
from transformers import AutoTokenizer

model_dir, source, target = sys.argv[1:4]
config = json.load(open(f"{model_dir}/argvalues.json"))
tokenizer = AutoTokenizer.from_pretrained(model_dir)
model = ORTModelForSequenceClassification.from_pretrained(model_dir, file_name="model.onnx")
with open(source, newline="", encoding="utf-8") as handle:
    rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
template = config["template"]
texts = [template["text"].format(**row) for row in rows]
pairs = [template["text_pair"].format(**row) for row in rows] if template.get("text_pair") else None
outputs = []
for start in range(0, len(texts), 64):
    encoded = tokenizer(texts[start:start + 64], pairs[start:start + 64] if pairs else None, padding=True,
                        truncation=True, max_length=config["max_length"], return_tensors="np")
    outputs.append(1 / (1 + np.exp(-np.asarray(model(**encoded).logits, dtype=np.float32))))
labels = (np.concatenate(outputs) >= np.asarray(config["thresholds"])).astype(int)
with open(target, "w", newline="") as handle:
    writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
    writer.writerow(["Argument ID"] + config["labels"])
    for row, values in zip(rows, labels):
        writer.writerow([row["Argument ID"]] + values.tolist())
