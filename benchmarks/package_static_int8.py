"""Gives the packaged model (a directory that ships ``model_compact.onnx`` alone) export's static int8
variant, judged as export judges a student, in place of the compact file when its labels hold.

    .venv/bin/python benchmarks/package_static_int8.py [PACKAGE] [--data ../shared/data/valueeval23]

The compact file is the model: fp32 arithmetic on weights that are fp16 values. Widened back to
``model.onnx`` in a scratch copy, it is what the static int8 variant is made from (export's recipe,
``export.calibration.make_static_int8``: smoothed, calibrated on 512 of the arguments the model
learnt) and judged against (``export.build_variants``: labels as fp32's and the official F1 change
with its interval, on every other labelled argument the model learnt, training + validation, as
export judges a run's student). The int8 file's remaining fp32 weights are then stored as fp16
(``export.compact``): they were fp16 values already, so nothing changes (checked: the same
probabilities). If the variant's labels held, the package holds it instead of the compact file (40
MiB instead of 44; both together would not fit the package's 50 MB) and ``score`` runs it by default.

On a CPU with VNNI or AMX (where OpenVINO's int8 computes what it was judged on) it also makes and
judges int8-openvino from the same fp32 model, and the package carries it beside static int8 when
its labels hold and both fit in :data:`MAX_PACKAGE_MB`: `score` then runs it on such CPUs and static
int8 elsewhere. On any other CPU it says so and the package holds static int8 alone; rebuild on a
VNNI or AMX machine (the GPU machine's CPU is one) to ship both.
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
    FP32,
    OPENVINO_INT8,
    SPEED_FLAGS,
    STATIC_INT8,
    VARIANT_FILES,
    cpu_flags,
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


def main() -> None:
    from scorer.model import ScoringModel

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
        names = [STATIC_INT8]
        if openvino_int8_capable():
            names.append(OPENVINO_INT8)
        else:
            print("int8-openvino: not made here (needs OpenVINO and a CPU with VNNI or AMX, where it computes what it "
                  "is judged on): the package holds static int8 alone")
        results = build_variants(names, staging, held_out, log=print)
        check = results[STATIC_INT8]
        int8_file = staging / VARIANT_FILES[STATIC_INT8]
        sample = held_out.judged.iloc[:256]
        before = ScoringModel(staging, device="cpu", variant=STATIC_INT8).probabilities(sample)
        compact_model(int8_file, Path(scratch) / "compact.onnx")
        shutil.move(Path(scratch) / "compact.onnx", int8_file)
        after = ScoringModel(staging, device="cpu", variant=STATIC_INT8).probabilities(sample)
        assert np.array_equal(before, after), "storing the int8 file's fp32 weights as fp16 changed its output"
        check["bytes"] = int8_file.stat().st_size
        check["sha256"] = sha256_of(int8_file)
        print(json.dumps({k: check[k] for k in ("label_agreement", "f1_change", "f1_change_interval", "default_ok",
                                                "rows", "weights", "bytes")}))
        if not check["default_ok"]:
            print("the static int8 variant did not hold the labels: the package is left as it was")
            return
        shipped = {STATIC_INT8: check}
        openvino = results.get(OPENVINO_INT8)
        if openvino is not None and openvino.get("default_ok"):
            openvino_file = staging / VARIANT_FILES[OPENVINO_INT8]
            size = (int8_file.stat().st_size + openvino_file.stat().st_size + sum(
                f.stat().st_size for f in args.package.iterdir() if not f.name.endswith(".onnx"))) / 1e6
            if size <= MAX_PACKAGE_MB:
                openvino["bytes"], openvino["sha256"] = openvino_file.stat().st_size, sha256_of(openvino_file)
                shipped[OPENVINO_INT8] = openvino
                shutil.copy(openvino_file, args.package / openvino_file.name)
            else:
                print(f"int8-openvino: left out, the package would weigh {size:.0f} MB (at most {MAX_PACKAGE_MB})")
        elif openvino is not None:
            print("int8-openvino: its labels did not hold: left out")
        manifest = json.loads((args.package / "manifest.json").read_text())
        manifest["variants"].update(shipped)
        reference = manifest.get("reference") or manifest["variants"].get(FP32, {})
        reference.setdefault("rows_per_second", {}).update(results[FP32]["rows_per_second"])
        scoring = ScoringConfig.load(args.package)
        scoring.variants = scoring_entries(shipped)
        shutil.copy(int8_file, args.package / int8_file.name)
        (args.package / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        scoring.save(args.package)
        (args.package / VARIANT_FILES[COMPACT]).unlink()
        keep_held_files(args.package)  # the compact file is gone: its records go too, the card is made anew
    print(f"{args.package}: {sum(p.stat().st_size for p in args.package.iterdir()) / 2**20:.0f} MiB, "
          f"static int8 {100 * check['label_agreement']:.2f}% of labels as fp32's")


if __name__ == "__main__":
    main()
