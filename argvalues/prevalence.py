"""From labels to findings: each value's share of a corpus (or of a group of it), corrected for
the model's errors, with a 95% interval.

A classifier's labelled share is biased: it adds the false positives of the rows without the
value and misses the rows it does not find. Adjusted classify-and-count (Forman 2008) undoes
that with the model's out-of-sample rates: prevalence = (share - fpr) / (tpr - fpr), clipped to
[0, 1]. Where a value's rates are close the division magnifies every error, so the model
directory records, per value, whether the correction measured better than the share itself
(``method``: ``adjusted`` or ``share``, chosen at export on held-out folds: :mod:`export.error_rates`);
where it did not, the share is reported and the table says so.

The interval is a bootstrap: the rows (the share of ``n`` 0/1 labels resampled is a binomial
draw, so only counts are needed and any corpus streams) and the rates' own uncertainty (the rows
they were measured on, resampled likewise), the same rate draws for every group so that a
difference between two groups carries only what differs. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DRAWS = 2000
ADJUSTED, SHARE = "adjusted", "share"
#: Below this gap between a value's true- and false-positive rates the correction is not applied.
MIN_RATE_GAP = 0.05


@dataclass
class GroupCounts:
    """Rows of one group and, per value, how many carry its label."""

    rows: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def add(self, labels: np.ndarray) -> None:
        labels = np.asarray(labels, dtype=bool)
        if not len(self.counts):
            self.counts = np.zeros(labels.shape[1], dtype=np.int64)
        self.rows += len(labels)
        self.counts += labels.sum(axis=0)


def rate_draws(entry: dict, rng: np.random.Generator, draws: int = DRAWS) -> tuple[np.ndarray, np.ndarray]:
    """Resampled true- and false-positive rates of one value: binomial draws on the rows they were measured on."""
    positives, negatives = entry["tp"] + entry["fn"], entry["fp"] + entry["tn"]
    tpr = rng.binomial(positives, entry["tpr"], draws) / max(positives, 1)
    fpr = rng.binomial(negatives, entry["fpr"], draws) / max(negatives, 1)
    return tpr, fpr


def adjusted(share, tpr, fpr):
    """Adjusted classify-and-count, clipped to [0, 1] (NaN where the rates are too close to divide by)."""
    gap = np.asarray(tpr) - np.asarray(fpr)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.clip((np.asarray(share) - fpr) / gap, 0.0, 1.0)
    return np.where(gap >= MIN_RATE_GAP, value, np.nan)


def method_of(entry: dict | None) -> str:
    """How a value's prevalence is estimated: the correction where its recorded choice and rates allow."""
    if entry is None or entry.get("method", ADJUSTED) != ADJUSTED or entry["tpr"] - entry["fpr"] < MIN_RATE_GAP:
        return SHARE
    return ADJUSTED


@dataclass
class Estimate:
    share: float
    prevalence: float
    low: float
    high: float
    method: str
    draws: np.ndarray  # the bootstrap draws of the prevalence, for differences between groups


def estimate(count: int, rows: int, entry: dict | None, rates: tuple[np.ndarray, np.ndarray] | None,
             rng: np.random.Generator, draws: int = DRAWS) -> Estimate:
    """A value's share of ``rows`` rows, ``count`` of them labelled, and its prevalence with a 95%
    interval; ``rates``: the value's rate draws (shared across groups), None for the share alone."""
    share = count / rows if rows else float("nan")
    shares = rng.binomial(rows, share, draws) / rows if rows else np.full(draws, np.nan)
    method = method_of(entry) if rates is not None else SHARE
    if method == ADJUSTED:
        point = float(adjusted(share, entry["tpr"], entry["fpr"]))
        sampled = adjusted(shares, *rates)
    else:
        point, sampled = share, shares
    if np.isnan(sampled).all():
        low = high = float("nan")
    else:
        low, high = (float(v) for v in np.nanquantile(sampled, [0.025, 0.975]))
    return Estimate(share, point, low, high, method, sampled)


def difference(first: Estimate, second: Estimate) -> tuple[float, float, float]:
    """The first group's prevalence minus the second's, and its 95% interval."""
    sampled = first.draws - second.draws
    if np.isnan(sampled).all():
        return first.prevalence - second.prevalence, float("nan"), float("nan")
    low, high = np.nanquantile(sampled, [0.025, 0.975])
    return first.prevalence - second.prevalence, float(low), float(high)
