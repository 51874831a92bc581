"""Static int8 in one call at a time or two side by side, against fp32 and OpenVINO, in one process.

    .venv/bin/python benchmarks/int8_calls.py MODEL_DIR [--data ../shared/data/valueeval23]

MODEL_DIR needs model.onnx and model_static_int8.onnx (e.g. the scratch copy int8_recipes.py
writes, or `argvalues export RUN --static-int8`). The 1,896 validation arguments, best of two
passes interleaved; labels at the model's thresholds against fp32's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from argvalues.contract import read_arguments  # noqa: E402
from argvalues.metrics import apply_thresholds  # noqa: E402
from argvalues.variants import SPEED_FLAGS, cpu_flags  # noqa: E402
from scorer.model import ScoringModel  # noqa: E402


def main() -> None:
    import openvino

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "valueeval23")
    args = parser.parse_args()
    print("CPU flags:", " ".join(sorted(cpu_flags() & set(SPEED_FLAGS))))
    rows = read_arguments(args.data / "arguments-validation.tsv")
    models = {"fp32, one session": ScoringModel(args.model_dir, device="cpu", variant="fp32"),
              "int8-static, one call at a time": ScoringModel(args.model_dir, device="cpu", variant="int8-static",
                                                              parallel_calls=1),
              "int8-static, calls side by side": ScoringModel(args.model_dir, device="cpu", variant="int8-static")}
    fp32 = models["fp32, one session"]
    core = openvino.Core()
    compiled = core.compile_model(core.read_model(str(args.model_dir / "model.onnx")), "CPU")
    request, names = compiled.create_infer_request(), {port.get_any_name() for port in compiled.inputs}

    def openvino_defaults(arguments) -> None:
        for _, feeds in fp32.prepare(arguments, 64):
            request.infer({key: value for key, value in feeds.items() if key in names})

    methods = {**{name: model.probabilities for name, model in models.items()},
               "OpenVINO defaults, the scorer's batches of 64": openvino_defaults}
    best, results = {}, {}
    for _ in range(2):
        for name, method in methods.items():
            started = time.perf_counter()
            results[name] = method(rows)
            best[name] = max(best.get(name, 0.0), len(rows) / (time.perf_counter() - started))
    reference = apply_thresholds(results["fp32, one session"], fp32.thresholds)
    for name, speed in best.items():
        agreement = ("" if results[name] is None else
                     f", labels as fp32 {100 * (apply_thresholds(results[name], fp32.thresholds) == reference).mean():.2f}%")
        print(f"{name}: {speed:.1f} rows/s{agreement}")
    same = np.array_equal(results["int8-static, one call at a time"], results["int8-static, calls side by side"])
    print("int8-static probabilities identical both ways:", same)


if __name__ == "__main__":
    main()
