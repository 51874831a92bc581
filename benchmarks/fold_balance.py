"""How balanced are conclusion-grouped folds? Compares trainer.folds with the library alternatives.

Usage: .venv/bin/python benchmarks/fold_balance.py [DATA_DIR]
Prints, per seed, the mean and max |fold prevalence / overall prevalence - 1| over the 20 labels
and 5 folds, and the largest/smallest fold size ratio.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
from sklearn.model_selection import StratifiedGroupKFold

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from argvalues.contract import read_labelled_arguments  # noqa: E402
from trainer.folds import grouped_folds  # noqa: E402

DATA = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/valueeval23")
arguments, targets = read_labelled_arguments(DATA / "arguments-training.tsv", DATA / "labels-training.tsv")
groups = arguments["Conclusion"]


def spread(folds):
    ratio = np.array([targets[folds == k].mean(0) / targets.mean(0) for k in range(5)])
    sizes = np.bincount(folds)
    return f"mean {np.abs(ratio - 1).mean():.3f}  max {np.abs(ratio - 1).max():.2f}  sizes {sizes.max() / sizes.min():.2f}x"


def iterstrat_on_conclusions(seed):
    codes, uniques = pd.factorize(groups)
    counts = np.zeros((len(uniques), targets.shape[1] + 1))
    np.add.at(counts[:, :-1], codes, targets)
    np.add.at(counts[:, -1], codes, 1)
    group_fold = np.zeros(len(uniques), dtype=int)
    splits = MultilabelStratifiedKFold(n_splits=5, shuffle=True, random_state=seed).split(np.zeros(len(uniques)), counts)
    for k, (_, held) in enumerate(splits):
        group_fold[held] = k
    return group_fold[codes]


def stratified_group_kfold(seed, label=16):
    folds = np.zeros(len(targets), dtype=int)
    splits = StratifiedGroupKFold(5, shuffle=True, random_state=seed).split(arguments, targets[:, label], groups)
    for k, (_, held) in enumerate(splits):
        folds[held] = k
    return folds


for seed in (1, 2, 3):
    print(f"seed {seed}")
    print(f"  trainer.folds (greedy, grouped)          {spread(grouped_folds(groups, targets, 5, seed))}")
    print(f"  iterative-stratification on conclusions {spread(iterstrat_on_conclusions(seed))}")
    print(f"  StratifiedGroupKFold on one label        {spread(stratified_group_kfold(seed))}")
