"""Give a student trained before the text reading had its own thresholds what `train` now makes:
``text_thresholds`` (trainer.distill.text_reading_thresholds) in its checkpoint and in the model
directories exported from it.

    .venv/bin/python benchmarks/text_thresholds.py STUDENT_CHECKPOINT ARGUMENTS.tsv [ARGUMENTS.tsv ...] \\
        --model-dir MODEL_DIR [--model-dir ...]

ARGUMENTS: the files the student learnt (its run's arguments and unlabelled ones), as distill reads them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from argvalues.contract import ARGUMENT_COLUMNS, read_arguments
from argvalues.model_config import ScoringConfig
from trainer.distill import text_reading_thresholds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("arguments", type=Path, nargs="+")
    parser.add_argument("--model-dir", type=Path, action="append", default=[])
    args = parser.parse_args()
    arguments = pd.concat([read_arguments(path)[ARGUMENT_COLUMNS] for path in args.arguments], ignore_index=True)
    scoring = ScoringConfig.load(args.checkpoint)
    thresholds = text_reading_thresholds(args.checkpoint, arguments, scoring, (scoring.recipe or {}).get("seed", 0))
    print("text thresholds:", ", ".join(f"{t:.4f}" for t in thresholds))
    for directory in [args.checkpoint, *args.model_dir]:
        config = ScoringConfig.load(directory)
        config.text_thresholds = thresholds
        config.save(directory)


if __name__ == "__main__":
    main()
