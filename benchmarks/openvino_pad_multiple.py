"""int8-openvino with rows padded up to a multiple of N tokens, side by side: fewer input shapes against padding.

    .venv/bin/python benchmarks/openvino_pad_multiple.py --model-dir DIR [--data ../shared/data/valueeval23]
        [--multiples 1,2,4,8,16] [--long-multiples 1,4] [--repeats 2] [--hint THROUGHPUT|LATENCY]

DIR: a model directory with ``model_int8_openvino.onnx`` (``argvalues export`` where the variant is
usable). OpenVINO prepares its kernels for every new input shape; the scorer's batches hold rows of
one width, so every distinct width (and rows per call) is a new shape. Each multiple is run by the
scorer's own code (``ScoringModel(pad_to_multiple=N)``), each in a process of its own (oneDNN
keeps the kernels it prepared for the whole process, so a second model in one process is not cold):

- one chunk, cold: the validation arguments x3 (5,688, what the whole-process benchmark scores),
  tokenized, batched and scored once, as a short `score` run does; best of --repeats, interleaved;
- chunked, shuffled: the validation arguments x15 (28,440) shuffled, in `score`'s default chunks of 8,192,
  as a long run meets them (each chunk brings rows-per-call counts not seen before); best of --repeats.

Labels and probabilities are compared with the unpadded run (multiple 1) at the model's thresholds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from argvalues.contract import read_arguments  # noqa: E402
from argvalues.metrics import apply_thresholds  # noqa: E402
from argvalues.variants import OPENVINO_INT8, SPEED_FLAGS, cpu_flags, cpu_name  # noqa: E402
from scorer.model import ScoringModel  # noqa: E402

CHUNK_ROWS = 8192


def scored(model_dir: Path, arguments: pd.DataFrame, multiple: int, hint: str | None) -> tuple[np.ndarray, float, int]:
    """Probabilities, seconds (tokenizing, batching, scoring; compile excluded) and distinct input shapes."""
    model = ScoringModel(model_dir, device="cpu", variant=OPENVINO_INT8, openvino_hint=hint, pad_to_multiple=multiple)
    parts, shapes = [], set()
    started = time.perf_counter()
    for start in range(0, len(arguments), CHUNK_ROWS):
        batches = model.prepare(arguments.iloc[start:start + CHUNK_ROWS], batch_size=64)
        shapes |= {feeds["input_ids"].shape for _, feeds in batches}
        parts.append(model.infer(batches))
    return np.concatenate(parts), time.perf_counter() - started, len(shapes)


def arguments_of(data: Path, copies: int) -> pd.DataFrame:
    """The validation arguments ``copies`` times over; shuffled (fixed seed) when more than one chunk."""
    arguments = pd.concat([read_arguments(data / "arguments-validation.tsv")] * copies, ignore_index=True)
    return arguments.sample(frac=1.0, random_state=0) if len(arguments) > CHUNK_ROWS else arguments


def in_own_process(args: argparse.Namespace, copies: int, multiple: int, scratch: Path) -> tuple[np.ndarray, float, int]:
    target = scratch / f"{copies}-{multiple}.npy"
    command = [sys.executable, __file__, "--model-dir", str(args.model_dir), "--data", str(args.data),
               "--one", f"{copies},{multiple},{target}"] + (["--hint", args.hint] if args.hint else [])
    result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
    return np.load(target), result["seconds"], result["shapes"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "valueeval23")
    parser.add_argument("--multiples", default="1,2,4,8,16")
    parser.add_argument("--long-multiples", default="1,4")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--hint", default=None, help="OpenVINO's performance hint (default: as export recorded)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # COPIES,MULTIPLE,TARGET.npy: one run
    args = parser.parse_args()
    if args.one:
        copies, multiple, target = args.one.split(",")
        probabilities, seconds, shapes = scored(args.model_dir, arguments_of(args.data, int(copies)), int(multiple),
                                                args.hint)
        np.save(target, probabilities)
        print(json.dumps({"seconds": seconds, "shapes": shapes}))
        return
    print(f"CPU: {cpu_name()}; flags: {' '.join(sorted(cpu_flags() & set(SPEED_FLAGS)))}")
    thresholds = ScoringModel(args.model_dir, device="cpu", variant=OPENVINO_INT8).thresholds
    runs = {"one chunk, cold": (3, [int(m) for m in args.multiples.split(",")], args.repeats),
            "chunked, shuffled": (15, [int(m) for m in args.long_multiples.split(",")], args.repeats)}
    with tempfile.TemporaryDirectory() as scratch:
        for title, (copies, multiples, repeats) in runs.items():
            best = dict.fromkeys(multiples, float("inf"))
            results, shapes = {}, {}
            for _ in range(repeats):
                for multiple in multiples:
                    results[multiple], seconds, shapes[multiple] = in_own_process(args, copies, multiple, Path(scratch))
                    best[multiple] = min(best[multiple], seconds)
            reference = results[multiples[0]]
            labels = apply_thresholds(reference, thresholds)
            print(f"\n{title}: {len(reference)} arguments, best of {repeats}, interleaved, each run a process of its own\n")
            print(f"{'multiple':>8} {'shapes':>7} {'seconds':>8} {'rows/s':>7} {'vs ' + str(multiples[0]):>6} "
                  f"{'labels as ' + str(multiples[0]):>12} {'largest change':>15}")
            for multiple in multiples:
                same = (apply_thresholds(results[multiple], thresholds) == labels).mean()
                change = np.abs(results[multiple] - reference).max()
                print(f"{multiple:8d} {shapes[multiple]:7d} {best[multiple]:8.2f} {len(reference) / best[multiple]:7.0f} "
                      f"{best[multiples[0]] / best[multiple]:5.2f}x {100 * same:11.3f}% {change:15.1e}", flush=True)


if __name__ == "__main__":
    main()
