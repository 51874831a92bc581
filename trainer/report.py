"""The run's reports: cv-report.json (everything) and cv-report.md (for people)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from argvalues.contract import LABELS
from trainer.run_dir import CV_REPORT_MARKDOWN_NAME, CV_REPORT_NAME, VIEWS_NAME

SUMMARY_METRICS = [
    ("precision", "Official macro precision"),
    ("recall", "Official macro recall"),
    ("f1", "Official F1"),
    ("micro_f1", "Micro F1"),
    ("roc_auc", "ROC-AUC (macro, on probabilities)"),
    ("subset_accuracy", "Subset accuracy"),
]


def summarise_folds(fold_records: list[dict]) -> dict:
    """Mean and standard deviation over folds, at threshold 0.5 and at the chosen thresholds."""
    summary = {}
    for setting in ("at_0.5", "at_chosen_thresholds"):
        if not all(setting in record for record in fold_records):
            continue
        summary[setting] = {}
        for key, _ in SUMMARY_METRICS:
            values = np.array([record[setting][key] for record in fold_records], dtype=float)
            summary[setting][key] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
    return summary


def _pm(stat: dict) -> str:
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def render_markdown(report: dict) -> str:
    config, summary = report["config"], report["summary"]
    thresholds = report["thresholds"]
    lines = [
        "# Cross-validation report",
        "",
        f"Model `{config['model']}`, template `{config['template']}`, {config['folds']} fold(s) grouped by "
        f"conclusion, {config['epochs']} epoch(s), lr {config['lr']}, batch {config['batch_size']}, "
        f"max length {config['max_length']}, seed {config['seed']}.",
        f"Data: {report['data']['rows']} arguments on {report['data']['conclusions']} conclusions. "
        f"Run time {report.get('seconds', 0) / 60:.1f} min.",
        "",
        "## Folds (mean ± std over folds, each fold scored on its held-out conclusions)",
        "",
        "| metric | threshold 0.5 | chosen thresholds |",
        "| --- | --- | --- |",
    ]
    for key, name in SUMMARY_METRICS:
        lines.append(f"| {name} | {_pm(summary['at_0.5'][key])} | {_pm(summary['at_chosen_thresholds'][key])} |")
    lines += [
        "",
        "| fold | held-out rows | best epoch | official F1 (chosen thresholds) | train time |",
        "| --- | --- | --- | --- | --- |",
    ]
    for record in report["folds"]:
        lines.append(f"| {record['fold']} | {record['eval_rows']} | {record['best_epoch']} | "
                     f"{record['at_chosen_thresholds']['f1']:.4f} | {record['train_seconds'] / 60:.1f} min |")
    crossfit = thresholds["crossfit_f1"]
    lines += [
        "",
        "## Thresholds",
        "",
        f"Chosen on out-of-fold predictions: **{thresholds['strategy']}** (cross-fitted official F1: "
        f"global {crossfit['global']:.4f}, per-label {crossfit['per-label']:.4f}; each strategy tuned on the other "
        f"folds and applied to the held-out one: the honest estimate). The final thresholds are then tuned on all "
        f"out-of-fold rows; on those same rows they score {report['out_of_fold']['at_chosen_thresholds']['f1']:.4f}, "
        f"which is optimistic for that reason.",
        "",
        f"Best fold: {report['best']['fold']} (epoch {report['best']['epoch']}, official F1 {report['best']['f1']:.4f}),"
        f" copied to `{report['best']['checkpoint']}`.",
    ]
    validation = report.get("validation")
    if validation:
        lines += [
            "",
            "## Validation set (best checkpoint, thresholds chosen out of fold)",
            "",
            f"{validation['rows']} arguments: official F1 **{validation['f1']:.4f}** "
            f"(P {validation['precision']:.4f}, R {validation['recall']:.4f}), micro F1 {validation['micro_f1']:.4f}, "
            f"ROC-AUC {validation['roc_auc']:.4f}, subset accuracy {validation['subset_accuracy']:.4f}; "
            f"at threshold 0.5: official F1 {validation['at_0.5']['f1']:.4f}.",
        ]
    lines += _views_and_student(report)
    if report.get("plots"):
        lines += ["", "## Plots", ""]
        captions = {"per-label": "Per-label F1 beside label frequency", "threshold": "Official F1 against a global "
                    "threshold", "folds": "Spread over folds"}
        lines += [f"![{captions.get(kind, kind)}]({name})" for kind, name in report["plots"].items()]
    lines += ["", "## Per label (out of fold, chosen thresholds)", ""]
    header = "| label | positives | threshold | P | R | F1 | TN | FP | FN | TP |"
    if validation:
        header += " validation F1 |"
    lines += [header, "|" + " --- |" * (header.count("|") - 1)]
    per_label = report["out_of_fold"]["at_chosen_thresholds"]["per_label"]
    for label, threshold in zip(LABELS, thresholds["thresholds"]):
        row = per_label[label]
        c = row["confusion"]
        line = (f"| {label} | {row['support']} | {threshold:.2f} | {row['precision']:.3f} | {row['recall']:.3f} | "
                f"{row['f1']:.3f} | {c['tn']} | {c['fp']} | {c['fn']} | {c['tp']} |")
        if validation:
            line += f" {validation['per_label'][label]['f1']:.3f} |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _views_and_student(report: dict) -> list[str]:
    lines = []
    views = report.get("views")
    if views:
        lines += ["", "## Input views (each a run of its own, thresholds chosen out of fold)", "",
                  "| view | out-of-fold F1 | validation F1 (its best fold) | minutes |", "| --- | --- | --- | --- |"]
        for name, view in views["views"].items():
            validation = f"{view['validation_f1']:.4f}" if view.get("validation_f1") is not None else "-"
            link = f"{VIEWS_NAME}/{name}/{CV_REPORT_MARKDOWN_NAME}"
            lines.append(f"| [{name}]({link}) | {view['out_of_fold_f1']:.4f} | {validation} | "
                         f"{view['seconds'] / 60:.0f} |")
        choice = views["joined_thresholds"]
        at = f"global threshold {choice['thresholds'][0]:.2f}" if choice["strategy"] == "global" else "per-label thresholds"
        lines += ["", f"All views' fold models joined (what the student learns): official F1 out of fold "
                      f"**{views['joined_out_of_fold_f1']:.4f}** ({at})."]
    student = report.get("student")
    if student:
        validation = student.get("validation")
        lines += ["", "## Student (what `argvalues export` takes)", "",
                  f"Learnt {student['rows']} arguments' ensemble probabilities in {student['train_seconds'] / 60:.0f} "
                  "minutes" + (f"; validation official F1 **{validation['f1']:.4f}**." if validation else ".")]
    return lines


def write_reports(report: dict, out: Path) -> None:
    (out / CV_REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    (out / CV_REPORT_MARKDOWN_NAME).write_text(render_markdown(report))
