"""Each fold model of a run on the validation set, and ways of combining them (diagnosis).

    .venv/bin/python benchmarks/ensemble_members.py runs/full [--data ../shared/data/valueeval23]

Scores every fold checkpoint of RUN on the validation arguments with PyTorch (cached as
folds/fold-K/validation-probabilities.npy), then prints the official F1 of each member and of
several combinations, all at the run's own out-of-fold thresholds: the mean of probabilities
(what `export --ensemble` ships), the mean of threshold-centred logits, and "at least m of k
members say yes". Only the first two are rules one could choose without the validation labels;
the vote rows show what a choice read off validation would be worth, for diagnosis only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from argvalues.contract import TEMPLATES, read_labelled_arguments
from argvalues.metrics import apply_thresholds, official_scores


def member_probabilities(run: Path, data: Path) -> tuple[np.ndarray, np.ndarray]:
    import torch

    from trainer.data import ArgumentDataset, predict_probabilities
    from trainer.modeling import load_classifier, load_tokenizer
    from trainer.run_dir import RunDir

    arguments, targets = read_labelled_arguments(data / "arguments-validation.tsv", data / "labels-validation.tsv")
    config = RunDir(run).config()
    members = []
    for fold in RunDir(run).finished_folds():
        cached = fold.path / "validation-probabilities.npy"
        if not cached.is_file():
            tokenizer = load_tokenizer(str(fold.model))
            dataset = ArgumentDataset(arguments, TEMPLATES[config.template], tokenizer, config.max_length)
            model = load_classifier(str(fold.model)).to("cuda" if torch.cuda.is_available() else "cpu")
            np.save(cached, predict_probabilities(model, dataset, tokenizer))
        members.append(np.load(cached))
    return np.stack(members), targets


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", default=Path("../shared/data/valueeval23"), type=Path)
    args = parser.parse_args()
    members, targets = member_probabilities(args.run, args.data)
    thresholds = np.asarray(json.loads((args.run / "cv-report.json").read_text())["thresholds"]["thresholds"])
    f1 = lambda predicted: official_scores(targets, predicted).f1  # noqa: E731
    print(f"run {args.run}: {len(members)} members, run thresholds {np.round(thresholds, 2).tolist()}")
    print("| combination (the run's thresholds) | validation F1 |\n| --- | --- |")
    for k, probabilities in enumerate(members):
        print(f"| fold {k} model alone | {f1(apply_thresholds(probabilities, thresholds)):.4f} |")
    print(f"| mean of probabilities (export --ensemble) | {f1(apply_thresholds(members.mean(0), thresholds)):.4f} |")
    centred = (logit(members) - logit(thresholds)).mean(0)
    print(f"| mean of threshold-centred logits | {f1((centred >= 0).astype(np.int8)):.4f} |")
    votes = (members >= thresholds).sum(0)
    for m in range(1, len(members) + 1):
        print(f"| at least {m} of {len(members)} members (read off validation: diagnosis) | "
              f"{f1((votes >= m).astype(np.int8)):.4f} |")


if __name__ == "__main__":
    main()
