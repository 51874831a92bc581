"""Findings that hold: labelled shares against the prevalence corrected with what the model
directory records (``error-rates.json``), on the validation set, by a model trained on the
training set alone.

For each estimator (the labelled share; ``corrected``: the share minus the bias measured out of
fold; ``adjusted``: adjusted classify-and-count with the out-of-fold rates) and each group (all,
by stance, by source: the letter that starts each argument ID), printed: the mean absolute error
against the group's gold share over the 20 categories, how often the 95% intervals cover the gold
share, and the intervals' mean width; then the groups of at least 250 arguments, weighted by
size. The model directory's own choice (chosen at export on the run's folds, without validation)
is marked.

    .venv/bin/python benchmarks/findings.py MODEL_DIR [--data ../shared/data/valueeval23]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from argvalues.contract import ID_COLUMN, LABELS, PREMISE, STANCE, read_labelled_arguments
from argvalues.error_rates import read_error_rates
from argvalues.metrics import apply_thresholds
from argvalues.model_config import ARGUMENTS, TEXT, ScoringConfig
from argvalues.prevalence import METHODS, correction_draws, estimate
from argvalues.variants import cpu_flags, cpu_name
from scorer.model import ScoringModel

LARGE = 250  # groups of at least this many arguments carry the targets


def groups_of(arguments: pd.DataFrame) -> dict[str, np.ndarray]:
    found = {"all": np.ones(len(arguments), dtype=bool)}
    for stance in arguments[STANCE].unique():
        found[f"Stance={stance}"] = (arguments[STANCE] == stance).to_numpy()
    sources = arguments[ID_COLUMN].str[0]
    for source in sorted(sources.unique()):
        found[f"source={source}"] = (sources == source).to_numpy()
    return found


def evaluate(entries: dict, method: str, predicted: np.ndarray, truth: np.ndarray,
             groups: dict[str, np.ndarray], seed: int = 0) -> dict[str, tuple[int, float, float, float, float]]:
    """Per group: rows, the share's error, the estimate's error, coverage and mean interval width."""
    rng = np.random.default_rng(seed)
    entries = {value: {**entries[value], "method": method} for value in LABELS}
    shared = {value: correction_draws(entries[value], rng) for value in LABELS}
    found = {}
    for name, rows in groups.items():
        share_errors, errors, covered, widths = [], [], [], []
        for index, value in enumerate(LABELS):
            gold = truth[rows, index].mean()
            result = estimate(int(predicted[rows, index].sum()), int(rows.sum()), entries[value], shared[value], rng)
            share_errors.append(abs(result.share - gold))
            errors.append(abs(result.prevalence - gold))
            covered.append(result.low <= gold <= result.high)
            widths.append(result.high - result.low)
        found[name] = (int(rows.sum()), float(np.mean(share_errors)), float(np.mean(errors)), float(np.mean(covered)),
                       float(np.mean(widths)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/valueeval23"))
    parser.add_argument("--variant", default="auto")
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}, flags: {' '.join(sorted(cpu_flags()))}")
    config = ScoringConfig.load(args.model_dir)
    rates = read_error_rates(args.model_dir)
    if rates is None:
        raise SystemExit(f"{args.model_dir} records no error rates: export it from its training run")
    validation, truth = read_labelled_arguments(args.data / "arguments-validation.tsv",
                                                args.data / "labels-validation.tsv")
    truth = truth.astype(bool)
    groups = groups_of(validation)
    for reading in [r for r in (ARGUMENTS, TEXT) if r in config.readings]:
        recorded = rates["readings"][reading]
        chosen = recorded["method_choice"]["method"]
        model = ScoringModel(args.model_dir, device="cpu", variant=args.variant, reading=reading)
        frame = validation if reading == ARGUMENTS else validation[[ID_COLUMN, PREMISE]]
        predicted = apply_thresholds(model.probabilities(frame), model.thresholds).astype(bool)
        print(f"\n## Reading: {reading} ({model.variant}); validation {len(validation)} arguments; "
              f"the model's choice: {chosen} (held-out folds: "
              + ", ".join(f"{m} {e:.4f}" for m, e in recorded["method_choice"]["mean_absolute_error"].items()) + ")\n")
        print("| estimator | group | n | share error | estimate error | error vs share | intervals covering the gold "
              "share | mean interval width |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for method in METHODS:
            results = evaluate(recorded["categories"], method, predicted, truth, groups)
            large = {g: r for g, r in results.items() if r[0] >= LARGE and g != "all"}
            weight = sum(r[0] for r in large.values())
            rows = [*results.items(), (f"groups of {LARGE}+ (weighted)",
                                       (weight, *(sum(r[0] * r[i] for r in large.values()) / weight
                                                  for i in range(1, 5))))]
            name = f"**{method}** (chosen)" if method == chosen else method
            for group, (n, share_error, error, coverage, width) in rows:
                print(f"| {name} | {group} | {n} | {share_error:.4f} | {error:.4f} | {100 * error / share_error:.0f}% | "
                      f"{100 * coverage:.0f}% | {width:.3f} |")


if __name__ == "__main__":
    main()
