"""Gives the packaged model (a directory that ships ``model_compact.onnx`` alone) export's int8
variants, judged as export judges a student, in place of the compact file when their labels hold.

    .venv/bin/python benchmarks/package_int8.py [PACKAGE] [--data ../shared/data/valueeval23]

The compact file is the model: fp32 arithmetic on weights that are fp16 values. Widened back to
``model.onnx`` in a scratch copy, it is what the int8 variants are made from (export's recipes,
``export.calibration``: dynamic int8 and static int8, both smoothed, calibrated on 512 of the
arguments the model learnt) and judged against (``export.build_variants``: labels as fp32's and the
official F1 change with its interval, on every other labelled argument the model learnt, training +
validation, as export judges a run's student). Each int8 file's remaining fp32 weights are then
stored as fp16 (``export.compact``): they were fp16 values already, so nothing changes (checked: the
same probabilities).

The package holds, of the variants whose labels held, the one that ran fastest here, then
int8-openvino and the other int8 while the package stays within :data:`MAX_PACKAGE_MB`; ``score``
runs the one measured fastest where the package was made, and elsewhere the one its CPU favours
(``argvalues.variants.preference``). int8-openvino is made only on a CPU with VNNI or AMX (where
OpenVINO's int8 computes what it was judged on); elsewhere the script says so: rebuild on such a
machine (the GPU machine's CPU is one) to ship it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from argvalues.contract import ID_COLUMN  # noqa: E402
from argvalues.digest import sha256_of  # noqa: E402
from argvalues.model_config import ScoringConfig  # noqa: E402
from argvalues.variants import (  # noqa: E402
    COMPACT,
    DYNAMIC_INT8,
    FP32,
    OPENVINO_INT8,
    SPEED_FLAGS,
    STATIC_INT8,
    VARIANT_FILES,
    cpu_flags,
    machine_signature,
    openvino_int8_capable,
)
from export.build_variants import build_variants, scoring_entries  # noqa: E402
from export.compact import compact_model, widened_model  # noqa: E402
from export.heldout import CALIBRATION_ROWS, HeldOut  # noqa: E402
from export.packaging import keep_held_files  # noqa: E402
from trainer.training_data import read_training_pairs  # noqa: E402

#: The most the package's model directory may weigh (issue 32: about 70 MB).
MAX_PACKAGE_MB = 70


def labelled_rows(data: Path, seed: int = 0) -> HeldOut:
    pairs = [("arguments-training.tsv", "labels-training.tsv"), ("arguments-validation.tsv", "labels-validation.tsv")]
    arguments, truth = read_training_pairs([str(data / a) for a, _ in pairs], [str(data / b) for _, b in pairs])
    calibration = arguments.sample(CALIBRATION_ROWS, random_state=seed)
    judged = ~arguments[ID_COLUMN].isin(calibration[ID_COLUMN]).to_numpy()
    return HeldOut(arguments[judged].reset_index(drop=True), truth[judged].astype(int), calibration.reset_index(drop=True),
                   f"{int(judged.sum())} arguments of the training and validation sets, all the packaged student "
                   f"learnt but the {len(calibration)} it is calibrated on")


def package_size(package: Path, files: list[Path]) -> float:
    """MB of ``package``'s files but its ONNX models, plus ``files``."""
    rest = sum(f.stat().st_size for f in package.iterdir() if not f.name.endswith(".onnx"))
    return (rest + sum(f.stat().st_size for f in files)) / 1e6


def compacted(staging: Path, name: str, sample) -> None:
    """Store ``name``'s remaining fp32 weights as fp16 in place, checking its output is unchanged."""
    from scorer.model import ScoringModel

    onnx_file = staging / VARIANT_FILES[name]
    before = ScoringModel(staging, device="cpu", variant=name).probabilities(sample)
    compact_model(onnx_file, onnx_file.with_name("compact-" + onnx_file.name))
    shutil.move(onnx_file.with_name("compact-" + onnx_file.name), onnx_file)
    after = ScoringModel(staging, device="cpu", variant=name).probabilities(sample)
    assert np.array_equal(before, after), f"storing the {name} file's fp32 weights as fp16 changed its output"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package", type=Path, nargs="?", default=ROOT / "argvalues" / "packaged_model")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "valueeval23")
    args = parser.parse_args()
    print("CPU flags:", " ".join(sorted(cpu_flags() & set(SPEED_FLAGS))) or "none of " + " ".join(SPEED_FLAGS))
    with tempfile.TemporaryDirectory(dir=args.package.parent) as scratch:
        staging = Path(shutil.copytree(args.package, Path(scratch) / "model"))
        widened_model(staging / VARIANT_FILES[COMPACT], staging / VARIANT_FILES[FP32])
        (staging / VARIANT_FILES[COMPACT]).unlink()
        held_out = labelled_rows(args.data)
        names = [DYNAMIC_INT8, STATIC_INT8]
        if openvino_int8_capable():
            names.append(OPENVINO_INT8)
        else:
            print("int8-openvino: not made here (needs OpenVINO and a CPU with VNNI or AMX, where it computes what it "
                  "is judged on)")
        results = build_variants(names, staging, held_out, log=print)
        machine = machine_signature()
        speed = {name: results[name]["rows_per_second"][machine] for name in names
                 if name in results and "rows_per_second" in results[name]}
        held = [name for name in names if (results.get(name) or {}).get("default_ok")]
        onnx_runtime = sorted((name for name in held if name != OPENVINO_INT8), key=speed.get, reverse=True)
        if not onnx_runtime:
            print("no int8 variant held the labels: the package is left as it was")
            return
        candidates = onnx_runtime[:1] + [name for name in held if name == OPENVINO_INT8] + onnx_runtime[1:]
        sample = held_out.judged.iloc[:256]
        shipped: dict[str, dict] = {}
        for name in candidates:
            if name != OPENVINO_INT8:
                compacted(staging, name, sample)
            files = [staging / VARIANT_FILES[n] for n in [*shipped, name]]
            size = package_size(args.package, files)
            if shipped and size > MAX_PACKAGE_MB:
                print(f"{name}: left out, the package would weigh {size:.0f} MB (at most {MAX_PACKAGE_MB})")
                continue
            check = results[name]
            check["bytes"] = (staging / VARIANT_FILES[name]).stat().st_size
            check["sha256"] = sha256_of(staging / VARIANT_FILES[name])
            shipped[name] = check
            print(name, json.dumps({k: check[k] for k in ("label_agreement", "f1_change", "f1_change_interval",
                                                           "default_ok", "rows", "weights", "bytes") if k in check}))
        for name in names:
            if name not in held and name in results:
                print(f"{name}: its labels did not hold ({100 * results[name].get('label_agreement', 0):.2f}% of "
                      "labels as fp32's): left out")
        manifest = json.loads((args.package / "manifest.json").read_text())
        manifest["variants"].update(shipped)
        reference = manifest.get("reference") or manifest["variants"].get(FP32, {})
        reference.setdefault("rows_per_second", {}).update(results[FP32]["rows_per_second"])
        scoring = ScoringConfig.load(args.package)
        scoring.variants = scoring_entries(shipped)
        for name in shipped:
            shutil.copy(staging / VARIANT_FILES[name], args.package / VARIANT_FILES[name])
        (args.package / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        scoring.save(args.package)
        (args.package / VARIANT_FILES[COMPACT]).unlink()
        keep_held_files(args.package)  # the compact file is gone: its records go too, the card is made anew
    print(f"{args.package}: {sum(p.stat().st_size for p in args.package.iterdir()) / 2**20:.0f} MiB, holding "
          + ", ".join(f"{name} ({100 * shipped[name]['label_agreement']:.2f}% of labels as fp32's, "
                      f"{speed.get(name, 0):.0f} rows/s here)" for name in shipped)
          + f"; fp32 {results[FP32]['rows_per_second'][machine]:.0f} rows/s here")


if __name__ == "__main__":
    main()
