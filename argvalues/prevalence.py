"""From labels to findings: each value's share of a corpus (or of a group of it), corrected for
the model's errors, with a 95% interval.

A classifier's labelled share is biased: it adds the false positives of the rows without the
value and misses the rows it does not find. Three corrections use what the model directory records
(:mod:`argvalues.error_rates`, measured out of fold):

- ``scaled``: the share times the model's ratio, the true share out of fold over the share it
  labelled there (a model that labels a value in half again as many rows as carry it labels it so
  in a corpus where the value is rarer, too);
- ``corrected``: the share minus the model's bias, the share it labelled out of fold minus the
  true share there (an additive correction);
- ``adjusted``: adjusted classify-and-count (Forman 2008), (share - fpr) / (tpr - fpr), which
  divides by the gap between the rates and magnifies their drift where it is small.

Which one a model uses (one for all its values) is recorded with each value (``method``), chosen
at export on the run's held-out folds (:mod:`export.error_rates`); ``share`` reports the labelled share as it is.

The interval is a bootstrap. Its draws carry the rows (the share of ``n`` 0/1 labels resampled is
a binomial draw, so only counts are needed and any corpus streams) and the correction's own
uncertainty: for ``scaled``, the spread of the ratio's logarithm between the run's folds, and for
``corrected``, the bias's spread between them (sets of conclusions the
model did not learn: a new corpus differs from the training arguments at least as much), drawn
from Student's t with one degree of freedom fewer than the folds; for ``adjusted``, the rows the
rates were measured on. The same correction draws serve every group, so that a difference
between two groups carries only what differs. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DRAWS = 2000
ADJUSTED, CORRECTED, SCALED, SHARE = "adjusted", "corrected", "scaled", "share"
METHODS = (SHARE, SCALED, CORRECTED, ADJUSTED)
#: Below this gap between a value's true- and false-positive rates ``adjusted`` is not applied.
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


def adjusted(share, tpr, fpr):
    """Adjusted classify-and-count, clipped to [0, 1] (NaN where the rates are too close to divide by)."""
    gap = np.asarray(tpr) - np.asarray(fpr)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.clip((np.asarray(share) - fpr) / gap, 0.0, 1.0)
    return np.where(gap >= MIN_RATE_GAP, value, np.nan)


def corrected(share, bias):
    """The share minus the model's bias, clipped to [0, 1]."""
    return np.clip(np.asarray(share) - bias, 0.0, 1.0)


def scaled(share, ratio):
    """The share times the model's ratio (true share over labelled share), clipped to [0, 1]."""
    return np.clip(np.asarray(share) * ratio, 0.0, 1.0)


def method_of(entry: dict | None) -> str:
    """How a value's prevalence is estimated: its recorded method, where the entry allows it."""
    method = (entry or {}).get("method", SHARE)
    if method == ADJUSTED and entry["tpr"] - entry["fpr"] < MIN_RATE_GAP:
        return SHARE
    if method == CORRECTED and "bias" not in entry:
        return SHARE
    if method == SCALED and not entry.get("ratio"):  # the model never labelled the value out of fold
        return CORRECTED if "bias" in entry else SHARE
    return method if method in METHODS else SHARE


def correction_draws(entry: dict, rng: np.random.Generator, draws: int = DRAWS) -> dict[str, np.ndarray]:
    """Draws of what a value's correction rests on (shared by every group): its bias, or its rates."""
    method = method_of(entry)
    if method == SCALED:
        degrees = max(1, entry.get("folds", 5) - 1)
        return {"ratio": entry["ratio"] * np.exp(entry.get("ratio_log_spread", 0.0) * rng.standard_t(degrees, draws))}
    if method == CORRECTED:
        degrees = max(1, entry.get("folds", 5) - 1)
        return {"bias": entry["bias"] + entry.get("bias_spread", 0.0) * rng.standard_t(degrees, draws)}
    if method == ADJUSTED:
        positives, negatives = entry["tp"] + entry["fn"], entry["fp"] + entry["tn"]
        return {"tpr": rng.binomial(positives, entry["tpr"], draws) / max(positives, 1),
                "fpr": rng.binomial(negatives, entry["fpr"], draws) / max(negatives, 1)}
    return {}


@dataclass
class Estimate:
    share: float
    prevalence: float
    low: float
    high: float
    method: str
    draws: np.ndarray  # the bootstrap draws of the prevalence, for differences between groups


def estimate(count: int, rows: int, entry: dict | None, draws_of: dict[str, np.ndarray] | None,
             rng: np.random.Generator, draws: int = DRAWS) -> Estimate:
    """A value's share of ``rows`` rows, ``count`` of them labelled, and its prevalence with a 95%
    interval; ``draws_of``: the value's :func:`correction_draws` (shared across groups), None for
    the share alone."""
    share = count / rows if rows else float("nan")
    shares = rng.binomial(rows, share, draws) / rows if rows else np.full(draws, np.nan)
    method = method_of(entry) if draws_of is not None else SHARE
    if method == SCALED:
        point, sampled = float(scaled(share, entry["ratio"])), scaled(shares, draws_of["ratio"])
    elif method == CORRECTED:
        point, sampled = float(corrected(share, entry["bias"])), corrected(shares, draws_of["bias"])
    elif method == ADJUSTED:
        point, sampled = float(adjusted(share, entry["tpr"], entry["fpr"])), adjusted(shares, draws_of["tpr"],
                                                                                       draws_of["fpr"])
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
