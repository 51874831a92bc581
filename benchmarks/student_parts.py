"""Carry a trained checkpoint off the GPU machine, whose calls return at most 8 files of 16 MiB.

    python3 benchmarks/student_parts.py pack RUN/student/best OUT [--records RUN]   # on the device
    .venv/bin/python benchmarks/student_parts.py unpack FILES_DIR TARGET             # here

``pack`` stores the weights as fp16 (a MiniLM-L6 student: 91 MB -> 45 MB; fp16 keeps 11 bits of
mantissa, a relative error below 5e-4), tars them with the checkpoint's other files (and, with
``--records``, the run's reports) and cuts the tar into ``student.tar.00``, ``.01``, ... of 15 MiB.
``unpack`` joins the parts and widens the weights back to fp32 ``model.safetensors``.
"""

from __future__ import annotations

import argparse
import io
import shutil
import tarfile
from pathlib import Path

PART_BYTES = 15 * 1024 * 1024
WEIGHTS = "model.safetensors"
HALF_WEIGHTS = "model.fp16.safetensors"
RECORDS = ("cv-report.json", "cv-report.md", "run-config.json", "oof-probabilities.tsv",
           "student/distill-report.json", "student/validation-probabilities.tsv", "validation-probabilities.tsv")


def pack(checkpoint: Path, out: Path, records: Path | None) -> list[Path]:
    from safetensors.torch import load_file, save

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(checkpoint.iterdir()):
            if path.is_file() and path.name != WEIGHTS:
                tar.add(path, arcname=f"checkpoint/{path.name}")
        weights = load_file(checkpoint / WEIGHTS)
        half = save({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in weights.items()})
        info = tarfile.TarInfo(f"checkpoint/{HALF_WEIGHTS}")
        info.size = len(half)
        tar.addfile(info, io.BytesIO(half))
        for name in RECORDS if records else ():
            if (records / name).is_file():
                tar.add(records / name, arcname=f"records/{name}")
    data = buffer.getvalue()
    parts = []
    for k, start in enumerate(range(0, len(data), PART_BYTES)):
        parts.append(out / f"student.tar.{k:02d}")
        parts[-1].write_bytes(data[start:start + PART_BYTES])
    return parts


def unpack(files: Path, target: Path) -> None:
    from safetensors.torch import load_file, save_file

    data = b"".join(path.read_bytes() for path in sorted(files.glob("student.tar.*")))
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(target, filter="data")
    checkpoint = target / "checkpoint"
    weights = load_file(checkpoint / HALF_WEIGHTS)
    save_file({k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in weights.items()},
              checkpoint / WEIGHTS, metadata={"format": "pt"})
    (checkpoint / HALF_WEIGHTS).unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    packing = commands.add_parser("pack")
    packing.add_argument("checkpoint", type=Path)
    packing.add_argument("out", type=Path)
    packing.add_argument("--records", type=Path)
    unpacking = commands.add_parser("unpack")
    unpacking.add_argument("files", type=Path)
    unpacking.add_argument("target", type=Path)
    args = parser.parse_args()
    if args.command == "pack":
        for path in pack(args.checkpoint, args.out, args.records):
            print(path, path.stat().st_size)
    else:
        unpack(args.files, args.target)
        print(f"wrote {args.target / 'checkpoint'}")


if __name__ == "__main__":
    main()
