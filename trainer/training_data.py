"""What a training run learns from: argument/label file pairs joined into one set, the level-1
values beside the 20 categories, the value descriptions (as features or as examples), and a share of the conclusions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from argvalues.contract import CONCLUSION, ID_COLUMN, PREMISE, STANCE, read_labelled_arguments
from argvalues.errors import DataError


def read_training_pairs(arguments: list[str], labels: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """The arguments and 0/1 category targets of every (arguments, labels) pair, in order, as one set."""
    frames, targets = [], []
    for arguments_path, labels_path in zip(arguments, labels, strict=True):
        frame, target = read_labelled_arguments(arguments_path, labels_path)
        frames.append(frame)
        targets.append(target)
    joined = pd.concat(frames, ignore_index=True)
    repeated = joined[ID_COLUMN].duplicated()
    if repeated.any():
        raise DataError(f"{', '.join(arguments)}: argument ID {joined[ID_COLUMN][repeated].iloc[0]!r} occurs in more "
                        "than one file (or twice); each argument may be trained on once")
    return joined, np.concatenate(targets)


def read_level1_labels(paths: list[str], ids: pd.Series) -> tuple[list[str], np.ndarray]:
    """The level-1 value names (the first file's header) and a 0/1 matrix aligned with ``ids``.

    The files are the ValueEval ``level1-labels-*.tsv``: ``Argument ID`` and one 0/1 column per value.
    """
    frames = []
    names: list[str] | None = None
    for path in paths:
        try:
            frame = pd.read_csv(path, sep="\t", dtype={ID_COLUMN: str})
        except (OSError, ValueError) as error:
            raise DataError(f"{path}: cannot read level-1 labels: {error}") from None
        columns = [c for c in frame.columns if c != ID_COLUMN]
        if ID_COLUMN not in frame.columns or not columns:
            raise DataError(f"{path}: a level-1 labels file needs an {ID_COLUMN!r} column and value columns")
        if names is None:
            names = columns
        elif columns != names:
            raise DataError(f"{path}: its value columns differ from those of {paths[0]}")
        values = frame[columns]
        if not values.isin([0, 1]).all().all():
            raise DataError(f"{path}: level-1 labels must be 0 or 1")
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True).drop_duplicates(ID_COLUMN).set_index(ID_COLUMN)
    missing = ~ids.isin(table.index)
    if missing.any():
        raise DataError(f"{', '.join(paths)}: no level-1 labels for {int(missing.sum())} training argument(s), "
                        f"e.g. {ids[missing].iloc[0]!r}")
    return names, table.loc[ids, names].to_numpy(dtype=np.float32)


def _value_phrasings(path: str) -> list[tuple[str, str, str]]:
    """(category, value, phrasing) for every example phrasing in ``value-categories.json``
    (category -> value -> phrasings), in file order."""
    try:
        categories = json.loads(Path(path).read_text())
        examples = [(category, value, phrase) for category, values in categories.items()
                    for value, phrasings in values.items() for phrase in phrasings]
    except (OSError, ValueError, AttributeError) as error:
        raise DataError(f"{path}: cannot read value descriptions (category -> value -> phrasings): {error}") from None
    if not examples or not all(isinstance(p, str) and p.strip() for _, _, p in examples):
        raise DataError(f"{path}: no value descriptions (category -> value -> list of phrasings)")
    return examples


def read_value_descriptions(path: str) -> list[str]:
    """The example phrasings of every value in ``value-categories.json``, in file order: what the
    head compares each argument with."""
    return [phrase for _, _, phrase in _value_phrasings(path)]


def read_description_examples(path: str, labels: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """The example phrasings of ``value-categories.json`` as extra training arguments: one per
    phrasing, the phrasing as its premise and its level-1 value as its conclusion ("in favor of"),
    labelled with the value's category alone."""
    examples = _value_phrasings(path)
    unknown = sorted({category for category, _, _ in examples} - set(labels))
    if unknown:
        raise DataError(f"{path}: {unknown[0]!r} is not one of the {len(labels)} categories")
    frame = pd.DataFrame({ID_COLUMN: [f"description-{i}" for i in range(len(examples))],
                          CONCLUSION: [value for _, value, _ in examples],
                          STANCE: "in favor of",
                          PREMISE: [phrase for _, _, phrase in examples]})
    targets = np.zeros((len(examples), len(labels)), dtype=np.float32)
    for row, (category, _, _) in enumerate(examples):
        targets[row, labels.index(category)] = 1
    return frame, targets


def keep_conclusions(arguments: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """Rows of a random ``fraction`` of the conclusions (at least one), for learning curves. The
    conclusions are drawn in one seeded order, so a smaller share is a subset of a larger one."""
    if fraction >= 1:
        return np.ones(len(arguments), dtype=bool)
    conclusions = pd.unique(arguments[CONCLUSION])
    order = np.random.default_rng(seed).permutation(len(conclusions))
    kept = set(conclusions[order[: max(1, int(round(fraction * len(conclusions))))]])
    return arguments[CONCLUSION].isin(kept).to_numpy()

