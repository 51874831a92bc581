"""The PNGs cv-report.md links: per-label F1 beside label frequency, official F1 against one
global threshold, and the spread of each metric over folds (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from argvalues.contract import LABELS
from argvalues.metrics import f1_by_global_threshold

PLOTS = {
    "per-label": "plot-per-label-f1.png",
    "threshold": "plot-f1-by-threshold.png",
    "folds": "plot-fold-spread.png",
}


def write_plots(report: dict, oof: np.ndarray, targets: np.ndarray, out: Path) -> dict[str, str]:
    """Write the plots into ``out``; returns {kind: file name}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_label = report["out_of_fold"]["at_chosen_thresholds"]["per_label"]
    frequency = targets.mean(0)
    figure, axis = plt.subplots(figsize=(10, 5.5))
    positions = np.arange(len(LABELS))
    axis.bar(positions - 0.2, [per_label[label]["f1"] for label in LABELS], 0.4, label="F1 (out of fold)")
    axis.bar(positions + 0.2, frequency, 0.4, label="share of arguments with the label")
    if "validation" in report:
        axis.plot(positions, [report["validation"]["per_label"][label]["f1"] for label in LABELS], "k.",
                  label="F1 (validation)")
    axis.set_xticks(positions, LABELS, rotation=70, ha="right", fontsize=8)
    axis.set_ylim(0, 1)
    axis.set_title("Per-label F1 at the chosen thresholds, beside label frequency")
    axis.legend(fontsize=8)
    _save(figure, out / PLOTS["per-label"])

    grid, f1 = f1_by_global_threshold(targets, oof)
    figure, axis = plt.subplots(figsize=(6.5, 4))
    axis.plot(grid, f1, label="out of fold, one global threshold")
    chosen = report["out_of_fold"]["at_chosen_thresholds"]["f1"]
    axis.axhline(chosen, color="grey", linestyle="--",
                 label=f"chosen {report['thresholds']['strategy']} thresholds (tuned on these rows)")
    best = int(np.argmax(f1))
    axis.plot(grid[best], f1[best], "o", color="C3", label=f"best global {grid[best]:.2f}: {f1[best]:.3f}")
    axis.set_xlabel("global threshold")
    axis.set_ylabel("official F1")
    axis.set_title("Official F1 against a global threshold")
    axis.legend(fontsize=8)
    _save(figure, out / PLOTS["threshold"])

    metrics = [("precision", "macro P"), ("recall", "macro R"), ("f1", "official F1"), ("micro_f1", "micro F1"),
               ("roc_auc", "ROC-AUC")]
    figure, axis = plt.subplots(figsize=(6.5, 4))
    for column, (key, _) in enumerate(metrics):
        values = [fold["at_chosen_thresholds"][key] for fold in report["folds"]]
        axis.plot([column] * len(values), values, "o", alpha=0.7, color="C0")
        axis.plot([column - 0.2, column + 0.2], [np.mean(values)] * 2, color="C3")
    axis.set_xticks(range(len(metrics)), [name for _, name in metrics])
    axis.set_ylim(0, 1)
    axis.set_title(f"Spread over {len(report['folds'])} fold(s) (dots: folds, bar: mean)")
    _save(figure, out / PLOTS["folds"])
    return dict(PLOTS)


def _save(figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
