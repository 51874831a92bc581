import numpy as np
import pytest

from argvalues.contract import read_labelled_arguments
from trainer.folds import crossfit_partition, grouped_folds


@pytest.fixture(scope="module")
def training(data_dir):
    return read_labelled_arguments(data_dir / "arguments-training.tsv", data_dir / "labels-training.tsv")


@pytest.mark.integration
@pytest.mark.parametrize("seed", [0, 1])
def test_each_conclusion_stays_in_one_fold(training, seed):
    arguments, targets = training
    folds = grouped_folds(arguments["Conclusion"], targets, 5, seed)
    assert (arguments.groupby("Conclusion")[[]].size() > 0).all()
    assert (arguments.assign(fold=folds).groupby("Conclusion")["fold"].nunique() == 1).all()
    assert sorted(np.unique(folds)) == [0, 1, 2, 3, 4]


@pytest.mark.integration
def test_folds_are_balanced_in_size_and_labels(training):
    arguments, targets = training
    folds = grouped_folds(arguments["Conclusion"], targets, 5, 1)
    sizes = np.bincount(folds)
    assert sizes.max() / sizes.min() < 1.15
    prevalence = np.array([targets[folds == k].mean(0) for k in range(5)]) / targets.mean(0)
    assert np.abs(prevalence - 1).mean() < 0.15


@pytest.mark.integration
def test_balance_beats_iterative_stratification_of_conclusions(training):
    """The reason folds.py has its own assignment (see its docstring)."""
    import pandas as pd
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    arguments, targets = training
    codes, uniques = pd.factorize(arguments["Conclusion"])
    counts = np.zeros((len(uniques), 21))
    np.add.at(counts[:, :-1], codes, targets)
    np.add.at(counts[:, -1], codes, 1)
    group_fold = np.zeros(len(uniques), dtype=int)
    splitter = MultilabelStratifiedKFold(n_splits=5, shuffle=True, random_state=1)
    for k, (_, held) in enumerate(splitter.split(np.zeros(len(uniques)), counts)):
        group_fold[held] = k

    def spread(folds):
        return np.abs(np.array([targets[folds == k].mean(0) for k in range(5)]) / targets.mean(0) - 1).mean()

    assert spread(grouped_folds(arguments["Conclusion"], targets, 5, 1)) < spread(group_fold[codes])


@pytest.mark.integration
def test_single_fold_is_a_grouped_80_20_holdout(training):
    arguments, targets = training
    folds = grouped_folds(arguments["Conclusion"], targets, 1, 0)
    assert set(arguments["Conclusion"][folds == 0]).isdisjoint(arguments["Conclusion"][folds == 1])
    assert 0.15 < (folds == 0).mean() < 0.25


def test_too_few_conclusions():
    with pytest.raises(ValueError, match="3 distinct conclusions cannot make 5 folds"):
        grouped_folds(pd_series(["a", "b", "c"]), np.ones((3, 20)), 5, 0)


@pytest.mark.integration
def test_crossfit_partition_splits_a_holdout_by_conclusion(training):
    arguments, targets = training
    folds = grouped_folds(arguments["Conclusion"], targets, 1, 0)
    held = folds == 0
    parts = crossfit_partition(folds, held, arguments["Conclusion"], 0)
    groups = arguments["Conclusion"][held].to_numpy()
    assert set(np.unique(parts)) == {0, 1}
    assert set(groups[parts == 0]).isdisjoint(groups[parts == 1])


def pd_series(values):
    import pandas as pd

    return pd.Series(values)
