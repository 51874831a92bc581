"""Findings that hold: labelled shares against prevalence corrected with error rates, on the
validation set, by a model trained on the training set alone.

For each way of measuring a student's error rates out of sample (a student saw every training
argument, so its rates need a proxy), the rates are compared with the student's real rates on
validation, and the corrected prevalence with the gold share of each group: overall, by stance and
by source (the letter that starts each argument ID). Printed: per proxy, the rates' mean absolute
error, and per group the error of the labelled shares and of the corrected prevalence (mean over
the 20 categories; over the groups weighted by their size) and how often the 95% intervals cover
the gold share.

    .venv/bin/python benchmarks/findings.py RUN MODEL_DIR [--data ../shared/data/valueeval23]

RUN: the training run (its out-of-fold predictions); MODEL_DIR: its student, exported.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from argvalues.contract import ID_COLUMN, LABELS, PREMISE, STANCE, read_labelled_arguments
from argvalues.error_rates import reading_rates, rolled_up
from argvalues.metrics import apply_thresholds
from argvalues.model_config import ARGUMENTS, TEXT, ScoringConfig
from argvalues.prevalence import estimate, rate_draws
from argvalues.values import HIGHER_ORDER
from export.error_rates import choose_methods, out_of_fold_labels
from scorer.model import ScoringModel
from trainer.run_dir import RunDir
from trainer.training_data import read_training_pairs

LARGE = 250  # groups of at least this many arguments carry the targets


def groups_of(arguments: pd.DataFrame) -> dict[str, np.ndarray]:
    found = {"all": np.ones(len(arguments), dtype=bool)}
    for stance in arguments[STANCE].unique():
        found[f"Stance={stance}"] = (arguments[STANCE] == stance).to_numpy()
    sources = arguments[ID_COLUMN].str[0]
    for source in sorted(sources.unique()):
        found[f"source={source}"] = (sources == source).to_numpy()
    return found


def evaluate(rates: dict, predicted: np.ndarray, truth: np.ndarray, groups: dict[str, np.ndarray], seed: int = 0) -> dict:
    """Per group: mean absolute error of shares and of corrected prevalence, and interval coverage."""
    rng = np.random.default_rng(seed)
    entries = rates["categories"]
    draws = {value: rate_draws(entries[value], rng) for value in LABELS}
    found = {}
    for name, rows in groups.items():
        errors_share, errors_adjusted, covered = [], [], []
        for index, value in enumerate(LABELS):
            count, n = int(predicted[rows, index].sum()), int(rows.sum())
            gold = truth[rows, index].mean()
            result = estimate(count, n, entries[value], draws[value], rng)
            errors_share.append(abs(result.share - gold))
            errors_adjusted.append(abs(result.prevalence - gold))
            covered.append(result.low <= gold <= result.high)
        found[name] = (int(rows.sum()), float(np.mean(errors_share)), float(np.mean(errors_adjusted)),
                       float(np.mean(covered)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/valueeval23"))
    parser.add_argument("--variant", default="auto")
    args = parser.parse_args()
    run = RunDir(args.run)
    config = ScoringConfig.load(args.model_dir)
    validation, truth = read_labelled_arguments(args.data / "arguments-validation.tsv",
                                                args.data / "labels-validation.tsv")
    truth = truth.astype(bool)
    training, training_truth = read_training_pairs(run.config().arguments, run.config().labels)
    groups = groups_of(validation)
    readings = [r for r in (ARGUMENTS, TEXT) if r in config.readings]
    centred_on = (config.recipe or {}).get("centred_on_thresholds")  # a student's: the run's thresholds
    oof_truth, oof_predicted, folds, oof_arguments = out_of_fold_labels(run, centred_on)
    for reading in readings:
        model = ScoringModel(args.model_dir, device="cpu", variant=args.variant, reading=reading)
        frame = validation if reading == ARGUMENTS else validation[[ID_COLUMN, PREMISE]]
        predicted = apply_thresholds(model.probabilities(frame), model.thresholds).astype(bool)
        real = reading_rates(truth, predicted)
        in_sample_frame = training if reading == ARGUMENTS else training[[ID_COLUMN, PREMISE]]
        in_sample = apply_thresholds(model.probabilities(in_sample_frame), model.thresholds).astype(bool)
        proxies = {
            "the fold ensemble's out-of-fold rates": reading_rates(oof_truth, oof_predicted),
            "the student's own rates on the run's arguments": reading_rates(training_truth.astype(bool), in_sample),
            "(oracle) the student's rates on validation itself": real,
        }
        methods = choose_methods(oof_truth, oof_predicted, oof_arguments[STANCE].to_numpy(), folds)
        for rates in proxies.values():
            for group in ("categories", "higher_order"):
                for value, entry in rates[group].items():
                    entry["method"] = methods[value]
        print(f"\n## Reading: {reading} ({model.variant}); validation {len(validation)} arguments\n")
        print("| rates from | mean abs error of tpr / fpr vs validation | group | n | share error | "
              "corrected error | intervals covering the gold share |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name, rates in proxies.items():
            tpr = np.mean([abs(rates["categories"][v]["tpr"] - real["categories"][v]["tpr"]) for v in LABELS])
            fpr = np.mean([abs(rates["categories"][v]["fpr"] - real["categories"][v]["fpr"]) for v in LABELS])
            results = evaluate(rates, predicted, truth, groups)
            large = {g: r for g, r in results.items() if r[0] >= LARGE and g != "all"}
            weight = sum(r[0] for r in large.values())
            for group, (n, share_error, adjusted_error, coverage) in results.items():
                print(f"| {name} | {tpr:.3f} / {fpr:.3f} | {group} | {n} | {share_error:.4f} | {adjusted_error:.4f} | "
                      f"{100 * coverage:.0f}% |")
            print(f"| {name} | | groups of {LARGE}+ (weighted) | {weight} | "
                  f"{sum(r[0] * r[1] for r in large.values()) / weight:.4f} | "
                  f"{sum(r[0] * r[2] for r in large.values()) / weight:.4f} | "
                  f"{100 * sum(r[0] * r[3] for r in large.values()) / weight:.0f}% |")
        chosen = sum(m == "adjusted" for m in methods.values())
        print(f"\ncorrected on held-out folds better than the share for {chosen} of 20 categories: "
              f"{', '.join(v for v, m in methods.items() if m != 'adjusted')} keep the share")
    higher = rolled_up(truth).mean(axis=0)
    print("\ngold higher-order shares on validation: " + ", ".join(f"{g} {100 * s:.1f}%" for g, s in zip(HIGHER_ORDER, higher)))


if __name__ == "__main__":
    main()
