"""What a notebook's user writes: the transformers text-classification pipeline, PyTorch fp32.

    python benchmarks/peers/pipeline_script.py CHECKPOINT MODEL_DIR INPUT.tsv OUTPUT.tsv

The stock pipeline cannot load a mean-pooled checkpoint (its class is argvalues' own); it is then
given the stock class of the same encoder (AutoModelForSequenceClassification: the checkpoint's
encoder weights, BERT's first-token pooler and a 20-label head), which costs the same per row
(one 384x384 layer on one token instead of a masked mean) but whose labels are not the model's.
Template, max length and thresholds come from MODEL_DIR's argvalues.json.
"""

import csv
import json
import sys

import numpy as np
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, pipeline

checkpoint, model_dir, source, target = sys.argv[1:5]
config = json.load(open(f"{model_dir}/argvalues.json"))
settings = json.load(open(f"{checkpoint}/config.json"))
tokenizer = AutoTokenizer.from_pretrained(checkpoint)
if settings.get("argvalues_pooling") == "mean":
    from safetensors.torch import load_file

    model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(checkpoint))
    model.load_state_dict({key.replace("encoder.", f"{settings['model_type']}.", 1): value
                           for key, value in load_file(f"{checkpoint}/model.safetensors").items()}, strict=False)
    model.eval()
else:
    model = checkpoint
classify = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu", top_k=None,
                    function_to_apply="sigmoid", truncation=True, max_length=config["max_length"])
with open(source, newline="", encoding="utf-8") as handle:
    rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
template = config["template"]
inputs = [{"text": template["text"].format(**row), "text_pair": template["text_pair"].format(**row)}
          if template.get("text_pair") else template["text"].format(**row) for row in rows]
column = {label: i for i, label in enumerate(config["labels"])}
column.update({f"LABEL_{i}": i for i in range(len(config["labels"]))})
probabilities = np.zeros((len(rows), len(config["labels"])), dtype=np.float32)
for row, scores in enumerate(classify(inputs, batch_size=64)):
    for item in scores:
        probabilities[row, column[item["label"]]] = item["score"]
labels = (probabilities >= np.asarray(config["thresholds"])).astype(int)
with open(target, "w", newline="") as handle:
    writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
    writer.writerow(["Argument ID"] + config["labels"])
    for row, values in zip(rows, labels):
        writer.writerow([row["Argument ID"]] + values.tolist())
