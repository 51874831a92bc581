"""Ensembles of several training runs' fold models (seeds, templates) on the validation set.

    .venv/bin/python benchmarks/run_ensembles.py runs/a runs/b runs/c [--data ../shared/data/valueeval23]

For each prefix of the runs given (the first run, the first two, ...) and each run alone, the
mean of all their fold models' validation probabilities is scored at the thresholds chosen on the
runs' joined out-of-fold predictions (trainer.run_dir.joined_thresholds: what `argvalues export
RUN [RUN ...] --ensemble` ships). Validation labels are used for the score only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ensemble_members import member_probabilities  # this folder is on sys.path when run as a script

from argvalues.metrics import apply_thresholds, official_scores
from trainer.run_dir import RunDir, joined_thresholds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--data", default=Path("../shared/data/valueeval23"), type=Path)
    args = parser.parse_args()
    members, targets = {}, None
    for run in args.runs:
        members[run], targets = member_probabilities(run, args.data)
    groups = [[run] for run in args.runs] + [args.runs[:k] for k in range(2, len(args.runs) + 1)]
    print("| runs joined | members | strategy, threshold(s) | cross-fitted out-of-fold F1 | validation F1 |")
    print("| --- | --- | --- | --- | --- |")
    for group in groups:
        strategy = RunDir(group[0]).config().thresholds
        choice = joined_thresholds(group, strategy, same_input=False)  # each run reads through its own template
        probabilities = np.concatenate([members[run] for run in group]).mean(0)
        f1 = official_scores(targets, apply_thresholds(probabilities, np.asarray(choice["thresholds"]))).f1
        shown = (f"{choice['strategy']} {choice['thresholds'][0]:.2f}" if choice["strategy"] == "global"
                 else choice["strategy"])
        print(f"| {' + '.join(run.name for run in group)} | {sum(len(members[r]) for r in group)} | {shown} | "
              f"{choice['crossfit_f1'][choice['strategy']]:.4f} | {f1:.4f} |", flush=True)


if __name__ == "__main__":
    main()
