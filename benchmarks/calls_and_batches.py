"""What batching and the scorer's own work cost, on one exported model directory.

    .venv/bin/python benchmarks/calls_and_batches.py MODEL_DIR [FILE ...] [--rows 600] [--corpus CORPUS.tsv]

MODEL_DIR holds ``model.onnx`` (an export's directory): its fp32 ScoringModel tokenizes and builds the
feeds, as the scorer does (the template, length-sorted batches, a long row's windows), and the bare
ONNX Runtime sessions below run them.
1. One ONNX Runtime thread, the first --rows validation arguments: rows/s with one row per call (as
   `score` runs int8) and in length-sorted batches of 8 and 32 (as OpenVINO's peer runs), for each
   FILE of MODEL_DIR (default: model.onnx and model_quantized.onnx where present).
2. With --corpus: the bare runtime at `score`'s own schedule for dynamic int8 (one row per call, one
   single-threaded call per core side by side, tokenized beforehand), then `score CORPUS -o ...` with
   the same model and variant as a whole process, for `score`'s overhead around the model (start,
   reading, tokenizing, writing).
The CPU flags are printed first.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from argvalues.contract import read_arguments  # noqa: E402
from argvalues.variants import DYNAMIC_INT8, FP32, SPEED_FLAGS, VARIANT_FILES, cpu_flags, cpu_name  # noqa: E402
from scorer.model import ScoringModel  # noqa: E402


def session(path: Path) -> ort.InferenceSession:
    """One ONNX Runtime session on one thread, as `score` runs each of its side-by-side calls."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def batch_speeds(tokenizing: ScoringModel, files: list[str], data: Path, rows: int) -> None:
    arguments = read_arguments(data / "arguments-validation.tsv").iloc[:rows]
    print(f"1. one thread, {len(arguments)} validation arguments; best of 2")
    for name in files:
        runner = session(tokenizing.model_dir / name)
        for size in (1, 8, 32):
            feeds = [batch for _, batch in tokenizing.prepare(arguments, size)]
            for batch in feeds[:3]:
                runner.run(None, batch)
            best = float("inf")
            for _ in range(2):
                began = time.perf_counter()
                for batch in feeds:
                    runner.run(None, batch)
                best = min(best, time.perf_counter() - began)
            print(f"   {name}, {'one row per call' if size == 1 else f'batches of {size}'}: "
                  f"{len(arguments) / best:.1f} rows/s")


def overhead(tokenizing: ScoringModel, corpus: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    runner = session(tokenizing.model_dir / VARIANT_FILES[DYNAMIC_INT8])
    arguments = read_arguments(corpus)
    began = time.perf_counter()
    calls = [batch for _, batch in tokenizing.prepare(arguments, 1)]
    tokenized = time.perf_counter() - began
    with ThreadPoolExecutor(cores) as pool:
        list(pool.map(lambda batch: runner.run(None, batch), calls[:50]))
        began = time.perf_counter()
        list(pool.map(lambda batch: runner.run(None, batch), calls))
        bare = time.perf_counter() - began
    print(f"2. {DYNAMIC_INT8}, {len(arguments)} rows of {corpus.name} ({len(calls)} calls, a long row's windows "
          f"among them): tokenizing {tokenized:.2f} s; the bare runtime, {cores} single-threaded calls side by side: "
          f"{len(arguments) / bare:.1f} rows/s")
    with tempfile.TemporaryDirectory() as scratch:
        began = time.perf_counter()
        subprocess.run([str(Path(sys.executable).with_name("score")), str(corpus), "--model", str(tokenizing.model_dir),
                        "--variant", DYNAMIC_INT8, "--quiet", "-o", str(Path(scratch) / "scores.tsv")], check=True)
        whole = time.perf_counter() - began
    print(f"   `score` with the same variant (whole process, start to exit): {whole:.1f} s = "
          f"{len(arguments) / whole:.1f} rows/s")


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
    tokenizing = ScoringModel(args.model_dir, device="cpu", variant=FP32)
    files = args.files or [VARIANT_FILES[name] for name in (FP32, DYNAMIC_INT8)
                           if (args.model_dir / VARIANT_FILES[name]).exists()]
    batch_speeds(tokenizing, files, args.data, args.rows)
    if args.corpus:
        overhead(tokenizing, args.corpus)


if __name__ == "__main__":
    main()
