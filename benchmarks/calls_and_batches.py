"""What batching and the scorer's own work cost, on one model directory's ONNX files.

    .venv/bin/python benchmarks/calls_and_batches.py MODEL_DIR [FILE ...] [--rows 600] [--corpus CORPUS.tsv]

1. One ONNX Runtime thread, the first --rows validation arguments through the model's template:
   rows/s with one row per call (as `score` runs int8) and in length-sorted batches of 8 and 32 (as
   OpenVINO's peer runs), for each FILE of MODEL_DIR (default: model.onnx and model_quantized.onnx
   where present).
2. With --corpus: the bare runtime at `score`'s own schedule (one row per call, one single-threaded
   call per core side by side, pre-tokenized), then `score CORPUS -o ...` with the same model and
   variant in a subprocess, for `score`'s overhead around the model (reading, tokenizing, writing).
The CPU flags are printed first.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from argvalues.variants import SPEED_FLAGS, VARIANT_FILES, cpu_flags, cpu_name  # noqa: E402


def read_rows(path: Path, limit: int | None = None) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return rows[:limit] if limit else rows


def encode(model_dir: Path, rows: list[dict]) -> list:
    config = json.loads((model_dir / "argvalues.json").read_text())
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(config["max_length"])
    template = config["template"]
    texts = [template["text"].format(**row) for row in rows]
    if template.get("text_pair"):
        return tokenizer.encode_batch(list(zip(texts, [template["text_pair"].format(**row) for row in rows])))
    return tokenizer.encode_batch(texts)


def feeds(encodings: list, names: set[str]) -> dict:
    width = max(len(e.ids) for e in encodings)
    batch = {name: np.zeros((len(encodings), width), np.int64)
             for name in ("input_ids", "attention_mask", "token_type_ids")}
    for row, e in enumerate(encodings):
        batch["input_ids"][row, :len(e.ids)] = e.ids
        batch["attention_mask"][row, :len(e.ids)] = 1
        batch["token_type_ids"][row, :len(e.ids)] = e.type_ids
    return {name: value for name, value in batch.items() if name in names}


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def batch_speeds(model_dir: Path, files: list[str], data: Path, rows: int) -> None:
    encodings = encode(model_dir, read_rows(data / "arguments-validation.tsv", rows))
    order = np.argsort([len(e.ids) for e in encodings], kind="stable")
    print(f"1. one thread, {len(encodings)} validation arguments, "
          f"{np.mean([len(e.ids) for e in encodings]):.1f} tokens on average; best of 2")
    for name in files:
        runner = session(model_dir / name)
        names = {i.name for i in runner.get_inputs()}
        for size in (1, 8, 32):
            batches = [feeds([encodings[i] for i in order[start:start + size]], names)
                       for start in range(0, len(order), size)]
            for batch in batches[:3]:
                runner.run(None, batch)
            best = float("inf")
            for _ in range(2):
                began = time.perf_counter()
                for batch in batches:
                    runner.run(None, batch)
                best = min(best, time.perf_counter() - began)
            print(f"   {name}, {'one row per call' if size == 1 else f'batches of {size}'}: "
                  f"{len(order) / best:.1f} rows/s")


def overhead(model_dir: Path, corpus: Path) -> None:
    config = json.loads((model_dir / "argvalues.json").read_text())
    variant = "int8" if "int8" in config["variants"] else "fp32"
    cores = len(os.sched_getaffinity(0))
    runner = session(model_dir / VARIANT_FILES[variant])
    names = {i.name for i in runner.get_inputs()}
    began = time.perf_counter()
    calls = [feeds([e], names) for e in encode(model_dir, read_rows(corpus))]
    tokenized = time.perf_counter() - began
    with ThreadPoolExecutor(cores) as pool:
        list(pool.map(lambda batch: runner.run(None, batch), calls[:50]))
        began = time.perf_counter()
        list(pool.map(lambda batch: runner.run(None, batch), calls))
        bare = time.perf_counter() - began
    print(f"2. {variant}, {len(calls)} rows of {corpus.name}: tokenizing {tokenized:.2f} s; the bare runtime, "
          f"{cores} single-threaded calls side by side: {len(calls) / bare:.1f} rows/s")
    with tempfile.TemporaryDirectory() as scratch:
        began = time.perf_counter()
        subprocess.run([str(Path(sys.executable).with_name("score")), str(corpus), "--model", str(model_dir),
                        "--variant", variant, "--quiet", "-o", str(Path(scratch) / "scores.tsv")], check=True)
        whole = time.perf_counter() - began
    print(f"   `score` with the same variant (whole process, start to exit): {whole:.1f} s = "
          f"{len(calls) / whole:.1f} rows/s")

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("files", nargs="*")
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/valueeval23"))
    parser.add_argument("--corpus", type=Path)
    args = parser.parse_args()
    found = sorted(cpu_flags() & set(SPEED_FLAGS))
    print("CPU:", cpu_name() + ";", "flags:", " ".join(found) or "none", f"(of {' '.join(SPEED_FLAGS)})")
    files = args.files or [name for name in ("model.onnx", "model_quantized.onnx") if (args.model_dir / name).exists()]
    batch_speeds(args.model_dir, files, args.data, args.rows)
    if args.corpus:
        overhead(args.model_dir, args.corpus)


if __name__ == "__main__":
    main()
