"""int8-openvino's recipes side by side: labels as fp32's, and speed against OpenVINO's own bf16/f32.

    .venv/bin/python benchmarks/openvino_int8_recipes.py --model-dir DIR [--data ../shared/data/valueeval23]
        [--repeats 3]

DIR: a model directory with ``model.onnx`` (an ``argvalues export``). Each recipe of
:data:`export.openvino_int8.RECIPES` is made as export makes it (NNCF, calibrated on 512 training
arguments) in a temporary copy of DIR and run by the scorer's own code (``ScoringModel``,
``--variant int8-openvino``). Labels are compared with fp32's at the model's thresholds on the
validation arguments and on 2,500 training arguments outside the calibration sample. Speed: the
validation arguments, best of --repeats passes interleaved with OpenVINO's defaults on
``model.onnx`` (the peer: bf16 on a CPU with AMX or AVX512-BF16, f32 elsewhere; the scorer's
equal-length batches, throughput hint) and `score`'s bf16 where the CPU has it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from argvalues.contract import read_labelled_arguments  # noqa: E402
from argvalues.metrics import apply_thresholds, official_scores  # noqa: E402
from argvalues.variants import BF16, FP32, OPENVINO_INT8, SPEED_FLAGS, bf16_capable, cpu_flags  # noqa: E402
from export.openvino_int8 import RECIPES, make_openvino_int8  # noqa: E402
from scorer.model import ScoringModel  # noqa: E402
from scorer.runtimes import OpenVinoSession  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "valueeval23")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("CPU flags:", " ".join(sorted(cpu_flags() & set(SPEED_FLAGS))))
    validation, truth = read_labelled_arguments(args.data / "arguments-validation.tsv",
                                                args.data / "labels-validation.tsv")
    training, _ = read_labelled_arguments(args.data / "arguments-training.tsv", args.data / "labels-training.tsv")
    order = np.random.default_rng(0).permutation(len(training))
    calibration, judged = training.iloc[order[:512]], training.iloc[order[512:3012]]
    fp32 = ScoringModel(args.model_dir, device="cpu", variant=FP32)
    thresholds = fp32.thresholds
    reference = {"validation": apply_thresholds(fp32.probabilities(validation), thresholds),
                 "training": apply_thresholds(fp32.probabilities(judged), thresholds)}
    print(f"fp32: validation official F1 {official_scores(truth, reference['validation']).f1:.4f}")
    with tempfile.TemporaryDirectory() as scratch:
        methods, labels = {}, {}
        for index, (name, _) in enumerate(RECIPES):
            model_dir = shutil.copytree(args.model_dir, Path(scratch) / f"recipe-{index}")
            started = time.perf_counter()
            make_openvino_int8(model_dir, calibration, index)
            model = ScoringModel(model_dir, device="cpu", variant=OPENVINO_INT8)
            print(f"recipe '{name}': made in {time.perf_counter() - started:.0f} s", flush=True)
            labels[name] = apply_thresholds(model.probabilities(judged), thresholds)
            batches = model.prepare(validation)
            methods[name] = (lambda model=model, batches=batches: model.infer(batches))
        peer = OpenVinoSession(args.model_dir / "model.onnx", variant=None)
        peer_batches = [feeds for _, feeds in fp32.prepare(validation, equal_length=True)]
        peer_name = f"OpenVINO defaults ({peer.precision})"
        methods[peer_name] = lambda: peer.run_batches(peer_batches)
        if bf16_capable():
            bf16 = ScoringModel(args.model_dir, device="cpu", variant=BF16)
            bf16_batches = bf16.prepare(validation)
            methods["score --variant bf16"] = lambda: bf16.infer(bf16_batches)
        best, outputs = dict.fromkeys(methods, float("inf")), {}
        for _ in range(args.repeats):
            for name, run in methods.items():
                started = time.perf_counter()
                outputs[name] = run()
                best[name] = min(best[name], time.perf_counter() - started)
        print(f"\n{len(validation)} validation arguments, best of {args.repeats}, interleaved (inference only)\n")
        print(f"{'method':58} {'rows/s':>7} {'vs peer':>8} {'val labels':>10} {'train labels':>12} {'val F1':>7}")
        for name in methods:
            line = f"{name:58} {len(validation) / best[name]:7.1f} {best[peer_name] / best[name]:7.2f}x"
            if name in labels:
                mine = apply_thresholds(outputs[name], thresholds)
                line += (f" {100 * (mine == reference['validation']).mean():9.2f}%"
                         f" {100 * (labels[name] == reference['training']).mean():11.2f}%"
                         f" {official_scores(truth, mine).f1:7.4f}")
            print(line)


if __name__ == "__main__":
    main()
