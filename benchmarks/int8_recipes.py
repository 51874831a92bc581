"""Static int8 recipes side by side: labels as fp32's and speed against fp32, on one model.

    .venv/bin/python benchmarks/int8_recipes.py --model-dir DIR [--data ../shared/data/valueeval23]
        [--judge arguments-test.tsv] [--keep DIR] [--repeats N] [RECIPE ...]

DIR: a model directory with ``model.onnx``, or one holding only ``model_compact.onnx`` (the packaged
model until 2026-12-03; since, it ships static int8: ``git show 1bddd04:argvalues/packaged_model``
has the compact one), which gets an fp32 ``model.onnx`` with the same weights (widened from fp16)
in a temporary copy. Every recipe is ONNX
Runtime's ``quantize_static`` (QDQ, per-channel int8 weights, uint8 activations, MinMax ranges from
512 training arguments fed one row per call, as ``export`` calibrates); they differ in what stays
fp32, in the integer formats, in smoothing the quantized MatMuls' inputs first (SmoothQuant,
``export/smoothing.py``) or in splitting their outlier channels off into fp32 (``export/outliers.py``).
Labels are judged at the model's thresholds on the --judge arguments (the packaged model trained on
training + validation; the test arguments were only its unlabelled inputs). Speed: 256 of them,
fp32 and the recipe interleaved, best of --repeats passes (2), one thread.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from argvalues.contract import read_arguments  # noqa: E402
from argvalues.metrics import apply_thresholds  # noqa: E402
from argvalues.variants import COMPACT, FP32, SPEED_FLAGS, STATIC_INT8, VARIANT_FILES, cpu_flags  # noqa: E402
from export.calibration import LAYER_INDEX, after_gelu, in_first_layers, quantize_static_int8  # noqa: E402
from export.compact import widened_model  # noqa: E402
from export.outliers import split_outliers  # noqa: E402
from export.smoothing import smooth_model, weight_matmuls  # noqa: E402


def widened_copy(model_dir: Path, into: Path) -> Path:
    """``model_dir`` with an fp32 model.onnx made from its compact file."""
    shutil.copytree(model_dir, into)
    widened_model(into / VARIANT_FILES[COMPACT], into / VARIANT_FILES[FP32])
    return into


def recipes(graph) -> dict[str, dict]:
    gelu = set(after_gelu(graph))
    layers = {node.name: int(m.group(1)) for node in graph.graph.node
              if node.op_type == "MatMul" and (m := LAYER_INDEX.search(node.name))}
    last = max(layers.values())
    kept = lambda chosen: sorted(gelu | {name for name, layer in layers.items() if layer in chosen})  # noqa: E731
    kept_layers = lambda chosen: sorted(name for name, layer in layers.items() if layer in chosen)  # noqa: E731
    return {
        "every MatMul with weights": {"exclude": []},
        "GELU outputs fp32 (the previous recipe)": {"exclude": sorted(gelu)},
        "... reduce_range (7-bit weights: AVX2's u8s8 saturation)": {"exclude": sorted(gelu), "reduce_range": True},
        "... uint8 weights (u8u8: no saturation)": {"exclude": sorted(gelu), "weights_unsigned": True},
        "... and the last layer fp32": {"exclude": kept({last})},
        "... and layer 0 fp32": {"exclude": kept({0})},
        "... and layers 0 and last fp32": {"exclude": kept({0, last})},
        "... and the first third of the layers fp32": {"exclude": sorted(gelu | set(in_first_layers(graph, 1 / 3)))},
        "... and the first half of the layers fp32 (the recipe before smoothing)": {
            "exclude": sorted(gelu | set(in_first_layers(graph)))},
        "... uint8 weights": {"exclude": sorted(gelu | set(in_first_layers(graph))), "weights_unsigned": True},
        # SmoothQuant (export/smoothing.py) before quantizing, the smoothed MatMuls' inputs fixed too
        "smoothed, GELU outputs fp32": {"exclude": sorted(gelu), "smooth": True},
        "smoothed, GELU outputs fp32, uint8 weights": {"exclude": sorted(gelu), "smooth": True, "weights_unsigned": True},
        "smoothed, every MatMul, uint8 weights": {"exclude": [], "smooth": True, "weights_unsigned": True},
        "smoothed, every MatMul": {"exclude": [], "smooth": True},
        "smoothed, GELU outputs and the first third fp32": {
            "exclude": sorted(gelu | set(in_first_layers(graph, 1 / 3))), "smooth": True},
        "smoothed, GELU outputs and the first third fp32, uint8 weights": {
            "exclude": sorted(gelu | set(in_first_layers(graph, 1 / 3))), "smooth": True, "weights_unsigned": True},
        "smoothed, GELU outputs and the first half fp32, uint8 weights": {
            "exclude": sorted(gelu | set(in_first_layers(graph, 1 / 2))), "smooth": True, "weights_unsigned": True},
        "smoothed, GELU outputs and the first half fp32": {
            "exclude": sorted(gelu | set(in_first_layers(graph, 1 / 2))), "smooth": True},
        # outlier channels split off into fp32 (export/outliers.py) before quantizing
        "outliers split at 4x, every MatMul": {"exclude": [], "split": 4.0},
        "outliers split at 4x, every MatMul, uint8 weights": {"exclude": [], "split": 4.0, "weights_unsigned": True},
        "outliers split at 4x, the first third fp32": {"exclude": sorted(in_first_layers(graph, 1 / 3)), "split": 4.0},
        "outliers split at 4x, GELU outputs fp32": {"exclude": sorted(gelu), "split": 4.0},
        "outliers split at 3x, every MatMul": {"exclude": [], "split": 3.0},
        "outliers split at 2x, every MatMul": {"exclude": [], "split": 2.0},
        "outliers split at 2x, reduce_range": {"exclude": [], "split": 2.0, "reduce_range": True},
        "outliers split at 2x, layer 0 fp32": {"exclude": kept_layers({0}), "split": 2.0},
        "outliers split at 1.5x, every MatMul": {"exclude": [], "split": 1.5},
        "outliers split at 1.5x, layer 0 fp32": {"exclude": kept_layers({0}), "split": 1.5},
        "outliers split at 2x, layers 0 and last fp32": {"exclude": kept_layers({0, last}), "split": 2.0},
        "outliers split at 2x, layer 0 and the GELU outputs fp32": {"exclude": sorted(gelu | set(kept_layers({0}))),
                                                                     "split": 2.0},
        "outliers split at 2x, layers 0 and 1 fp32": {"exclude": kept_layers({0, 1}), "split": 2.0},
        # the smoothed recipe, but for the GELU outputs: split off instead of kept fp32
        "smoothed, GELU outputs split at 2x, the first third fp32, uint8 weights": {
            "exclude": sorted(set(in_first_layers(graph, 1 / 3))), "split": 2.0, "split_only": sorted(gelu),
            "smooth": True, "weights_unsigned": True},
        "smoothed, GELU outputs split at 1.5x, the first third fp32, uint8 weights": {
            "exclude": sorted(set(in_first_layers(graph, 1 / 3))), "split": 1.5, "split_only": sorted(gelu),
            "smooth": True, "weights_unsigned": True},
        "outliers split at 2x, then smoothed, uint8 weights": {"exclude": [], "split": 2.0, "smooth": True,
                                                                "weights_unsigned": True},
        "outliers split at 2x, then smoothed": {"exclude": [], "split": 2.0, "smooth": True},
        "outliers split at 2x, reduce_range, layer 0 fp32": {"exclude": kept_layers({0}), "split": 2.0,
                                                             "reduce_range": True},
        "outliers split at 2x, reduce_range, layer 0's GELU output fp32": {
            "exclude": sorted(gelu & set(kept_layers({0}))), "split": 2.0, "reduce_range": True},
        "outliers split at 2x, reduce_range, layer 0's query, key and value fp32": {
            "exclude": [name for name in kept_layers({0}) if "/self/" in name], "split": 2.0, "reduce_range": True},
    }


def main() -> None:
    import onnx

    from scorer.model import ScoringModel

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "valueeval23")
    parser.add_argument("--judge", default="arguments-test.tsv")
    parser.add_argument("--keep", type=Path, default=None,
                        help="copy the scratch model directory here at the end (with the last recipe's int8 file)")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes of fp32 and each recipe, interleaved")
    parser.add_argument("recipe", nargs="*", help="recipe names (default: all)")
    args = parser.parse_args()
    print("CPU flags:", " ".join(sorted(cpu_flags() & set(SPEED_FLAGS))) or "none of " + " ".join(SPEED_FLAGS))
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = args.model_dir
        if not (model_dir / VARIANT_FILES[FP32]).is_file():
            model_dir = widened_copy(model_dir, Path(scratch) / "model")
        else:
            model_dir = Path(shutil.copytree(model_dir, Path(scratch) / "model"))
        judged = read_arguments(args.data / args.judge)
        calibration = read_arguments(args.data / "arguments-training.tsv").sample(512, random_state=0)
        fp32 = ScoringModel(model_dir, device="cpu", variant=FP32, threads=1)
        thresholds = fp32.thresholds
        reference = fp32.probabilities(judged)
        reference_labels = apply_thresholds(reference, thresholds)
        feeds = [batch for _, batch in fp32.prepare(calibration, batch_size=1)]

        graph = onnx.load(str(model_dir / VARIANT_FILES[FP32]), load_external_data=False)
        chosen = recipes(graph)
        for name in args.recipe or list(chosen):
            recipe = chosen[name]
            source, exclude = model_dir / VARIANT_FILES[FP32], list(recipe["exclude"])
            if recipe.get("split"):
                source = Path(scratch) / "split.onnx"
                skip = set(recipe["exclude"])
                if "split_only" in recipe:  # every other MatMul's input left as it is (to be smoothed)
                    skip |= {node.name for nodes in weight_matmuls(graph).values() for node in nodes} - set(
                        recipe["split_only"])
                added = split_outliers(model_dir / VARIANT_FILES[FP32], source, feeds, recipe["split"],
                                       skip=frozenset(skip))
                exclude += added
            if recipe.get("smooth"):  # after a split: its inlier MatMuls' masked inputs
                smoothed = Path(scratch) / "smoothed.onnx"
                smooth_model(source, smoothed, feeds, skip=frozenset(exclude) | frozenset(recipe.get("split_only", ())))
                source = smoothed
            quantize_static_int8(source, model_dir / VARIANT_FILES[STATIC_INT8], feeds,
                                 exclude, weights_unsigned=recipe.get("weights_unsigned", False),
                                 reduce_range=recipe.get("reduce_range", False))
            int8 = ScoringModel(model_dir, device="cpu", variant=STATIC_INT8, threads=1)
            probabilities = int8.probabilities(judged)
            sample, speeds = judged.iloc[:256], {"fp32": 0.0, "int8": 0.0}
            for _ in range(args.repeats):
                for key, model in (("fp32", fp32), ("int8", int8)):
                    started = time.perf_counter()
                    model.probabilities(sample)
                    speeds[key] = max(speeds[key], len(sample) / (time.perf_counter() - started))
            agreement = float((apply_thresholds(probabilities, thresholds) == reference_labels).mean())
            print(json.dumps({"recipe": name, "kept_fp32": len(recipe["exclude"]), "labels_as_fp32": round(agreement, 5),
                              "labels": int(reference_labels.size),
                              "max_abs_difference": round(float(np.abs(probabilities - reference).max()), 4),
                              "int8_over_fp32": round(speeds["int8"] / speeds["fp32"], 2)}), flush=True)
        if args.keep:
            shutil.copytree(model_dir, args.keep, dirs_exist_ok=True)


if __name__ == "__main__":
    main()
