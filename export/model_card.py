"""The model card (``README.md``) ``argvalues export`` writes into a model directory.

Everything in it comes from records the directory or its run already hold: the scoring config
(labels, thresholds, template, base model, recipe), the manifest (cross-validation summary, parity
and variant checks, ensemble members, library versions) and, when the run is at hand, its config
and report (the training file and its size).
"""

from __future__ import annotations

import json
from pathlib import Path

from argvalues.contract import LABELS
from argvalues.error_rates import read_error_rates
from argvalues.model_config import ARGUMENTS, TEXT, ScoringConfig
from argvalues.variants import PREFERENCE
from trainer.config import as_list
from trainer.run_dir import CV_REPORT_NAME, RunDir

MODEL_CARD_NAME = "README.md"
DATASET = ("Touché23-ValueEval (Kiesel et al., 2023: \"SemEval-2023 Task 4: ValueEval: Identification of Human "
           "Values behind Arguments\"; Zenodo record 8248658), licensed CC BY 4.0")
INTENDED_USE = (
    "Finding which of the 20 value categories of Schwartz's refined theory, as used in SemEval-2023 Task 4, an "
    "argument draws on (an argument: a conclusion, the stance towards it, a premise), to analyse or filter "
    "collections of arguments in the aggregate.",
    "The training arguments are English arguments from debate portals and similar sources (the Touché23-ValueEval "
    "main corpus). Other languages, genres (social media, news, speech transcripts) and text that is not an "
    "argument are outside what it was trained and checked on; expect lower and unmeasured quality there. A text "
    "longer than the max length is read in overlapping windows of about one argument's length (`score --long-text "
    "windows`, the default; each value's largest probability over the windows), which recovers most of what "
    "scoring its parts alone finds (benchmarks/README.md, \"Texts alone and long texts\"); `--long-text truncate` "
    "reads its first max length only.",
    "Labels are subjective annotations by crowd workers; even the best systems of the shared task reach an official "
    "F1 of about 0.56 on its test set. Single predictions are often wrong: do not use them to judge or profile "
    "people, or for decisions about individuals.",
)


def write_model_card(model_dir: Path, manifest: dict, run: RunDir | None) -> Path:
    """Write ``model_dir/README.md`` from the directory's scoring config, ``manifest``, error rates and ``run``."""
    path = model_dir / MODEL_CARD_NAME
    path.write_text(render_model_card(ScoringConfig.load(model_dir), manifest, training_data(manifest, run),
                                      read_error_rates(model_dir)))
    return path


def training_data(manifest: dict, run: RunDir | None) -> dict | None:
    """The training file and its size, from the run (or, for a student, the run it was distilled from)."""
    distilled_from = (manifest.get("cv") or {}).get("distilled_from")
    source = run or (RunDir(distilled_from[0]) if distilled_from else None)
    if source is None or not source.config_path.is_file():
        return None
    config = source.config()
    data = {"arguments": config.arguments, "labels": config.labels, "limit": config.limit}
    report = source.path / CV_REPORT_NAME
    if report.is_file():
        record = json.loads(report.read_text())
        data.update(record.get("data", {}))
        thresholds = record.get("thresholds") or {}
        crossfit = (thresholds.get("crossfit_f1") or {}).get(thresholds.get("strategy"))
        if crossfit is not None:
            data["out_of_fold_f1"] = crossfit
    return data


def render_model_card(scoring: ScoringConfig, manifest: dict, training: dict | None, rates: dict | None = None) -> str:
    sections = [_overview(scoring, manifest, training), _model(scoring, manifest), _data(training), _recipe(scoring),
                _metrics(manifest.get("cv"), training), _per_value(rates), _thresholds(scoring, manifest),
                variants_section(manifest),
                ["## Intended use and limits", "", *[f"- {line}" for line in INTENDED_USE]]]
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


def _overview(scoring: ScoringConfig, manifest: dict, training: dict | None) -> list[str]:
    texts = " (or a file of texts alone: `--text-column NAME`)" if TEXT in scoring.readings else ""
    note = [manifest["package_note"], ""] if manifest.get("package_note") else []
    return [
        "# argvalues model: the human values behind arguments",
        "",
        *note,
        f"Labels an argument with the {len(scoring.labels)} value categories of SemEval-2023 Task 4 "
        f"(Touché23-ValueEval). {trained_and_judged_on(manifest, training)} Exported by argvalues "
        f"{manifest['versions'].get('argvalues', '?')} on {manifest['created']}. Score a file of arguments{texts} "
        "with `score --model THIS_DIRECTORY FILE` (ONNX Runtime, no PyTorch); `manifest.json` holds every check "
        "behind this card.",
    ]


def trained_and_judged_on(manifest: dict, training: dict | None) -> str:
    """One sentence: what the model learnt and what its figures were measured on."""
    cv = manifest.get("cv") or {}
    rows = f"{training['rows']:,} labelled arguments" if training and "rows" in training else "labelled arguments"
    files = (" (" + " + ".join(f"`{Path(path).name}`" for path in as_list(training["arguments"])) + ")"
             if training and training.get("arguments") else "")
    if (cv.get("validation") or {}).get("f1") is not None:
        judged = f"judged on the {cv['validation']['rows']:,} arguments of the validation set, which it never saw"
    elif training and training.get("out_of_fold_f1") is not None:
        judged = ("judged out of fold only: no labelled argument was left out of it, so its figures are those of the "
                  "fold models it was distilled from, each on the conclusions it had not learnt")
    elif cv.get("summary"):
        judged = "judged out of fold (each fold model on the conclusions it had not learnt)"
    else:
        judged = "not judged on held-out labels"
    return f"Trained on {rows}{files}; {judged}."


def _model(scoring: ScoringConfig, manifest: dict) -> list[str]:
    ensemble, cv = manifest.get("ensemble"), manifest.get("cv") or {}
    if ensemble:
        kind = (f"an ensemble of {len(ensemble['members'])} fold models from {len(ensemble['runs'])} run(s), "
                f"outputting the {ensemble['combine']}")
    elif cv.get("distilled_from"):
        kind = f"one student model distilled from the fold ensemble of {', '.join(cv['distilled_from'])}"
    else:
        kind = "one fine-tuned checkpoint" + (f" (fold {cv['best']['fold']}, the run's best)" if "best" in cv else "")
    template = scoring.template
    pair = f", paired with `{template.text_pair}`" if template.text_pair else ""
    reads = ("arguments, and a text alone (`score --text-column`: read as a premise alone, as it was trained to)"
             if TEXT in scoring.readings else "arguments only (trained on whole arguments: `score --text-column` is "
             "refused)")
    return [
        "## Model",
        "",
        f"- Base model: `{scoring.base_model or 'not recorded'}`, "
        f"pooling {scoring.recipe.get('pooling', 'not recorded')}",
        f"- What this directory holds: {kind}",
        f"- Input: `{template.text}`{pair}, at most {scoring.max_length} tokens a window",
        f"- Reads: {reads}",
        f"- Output: a probability for each of the {len(scoring.labels)} labels; a label is predicted at or above "
        "its threshold (below)",
        *_onnx_files(manifest),
    ]


def _onnx_files(manifest: dict) -> list[str]:
    if manifest.get("onnx"):
        return [f"- ONNX model `{manifest['onnx']['file']}`, sha256 `{manifest['onnx']['sha256']}`"]
    held = [f"`{info['file']}` ({name}" + (f", sha256 `{info['sha256']}`" if info.get("sha256") else "") + ")"
            for name, info in (manifest.get("variants") or {}).items()]
    return [f"- ONNX model{'s' if len(held) > 1 else ''}: {'; '.join(held)}. The fp32 model "
            f"{'they were' if len(held) > 1 else 'it was'} made from and judged against is not in this directory "
            "(`manifest.json`, `reference`)"]


def _data(training: dict | None) -> list[str]:
    lines = ["## Training data", "", f"The label scheme and training arguments of {DATASET}."]
    if training is None:
        return lines + ["", "The training file was not recorded with this checkpoint."]
    size = (f": {training['rows']} arguments on {training['conclusions']} conclusions" if "rows" in training else "")
    limit = f" (its first {training['limit']} arguments)" if training.get("limit") else ""
    files = lambda key: " + ".join(f"`{Path(path).name}`" for path in as_list(training[key]))  # noqa: E731
    return lines + ["", f"Trained on {files('arguments')}{limit}{size}, labels {files('labels')}."]


def _recipe(scoring: ScoringConfig) -> list[str]:
    if not scoring.recipe:
        return ["## Recipe", "", "Not recorded with this checkpoint."]
    rows = [f"| {key} | {value} |" for key, value in scoring.recipe.items()]
    return ["## Recipe", "", "| setting | value |", "| --- | --- |", *rows]


def _metrics(cv: dict | None, training: dict | None = None) -> list[str]:
    lines = ["## Metrics", "", "Official ValueEval scores (macro precision and recall over the labels, F1 their "
             "harmonic mean), at this model's thresholds."]
    header = len(lines)
    if not cv:
        return lines + ["", "No cross-validation or validation scores were recorded with this checkpoint."]
    chosen = (cv.get("summary") or {}).get("at_chosen_thresholds")
    if chosen:
        lines += ["", "Cross-validation grouped by conclusion (mean ± std over folds, each fold scored on its "
                      "held-out conclusions):", "", "| metric | value |", "| --- | --- |"]
        lines += [f"| {name} | {chosen[key]['mean']:.4f} ± {chosen[key]['std']:.4f} |"
                  for key, name in (("f1", "official F1"), ("precision", "macro precision"),
                                    ("recall", "macro recall"))]
    if "best" in cv:
        lines += ["", f"Best fold: {cv['best']['fold']} (epoch {cv['best']['epoch']}, official F1 "
                      f"{cv['best']['f1']:.4f} on its held-out arguments)."]
    validation = cv.get("validation")
    if validation:
        lines += ["", f"Validation set ({validation['rows']} arguments): official F1 **{validation['f1']:.4f}** "
                      f"(precision {validation['precision']:.4f}, recall {validation['recall']:.4f})."]
    text = cv.get("validation_text")
    if validation and text:
        lines += ["", f"The same arguments' premises alone, as texts (`score --text-column`): official F1 "
                      f"{text['f1']:.4f}."]
    if not validation and training and training.get("out_of_fold_f1") is not None:
        lines += ["", f"Out of fold: the fold models it was distilled from score **{training['out_of_fold_f1']:.4f}** "
                      "(official F1 at thresholds chosen on the other folds, each fold on conclusions its model had not "
                      "learnt). The model itself learnt every labelled argument, so no held-out figure of its own exists."]
    if len(lines) == header:
        lines += ["", "No cross-validation or validation scores were recorded with this checkpoint."]
    return lines


def _per_value(rates: dict | None) -> list[str]:
    """Each value's out-of-sample precision, recall, rates and bias: which values to trust."""
    lines = ["## How well each value is found", ""]
    if rates is None:
        return lines + ["Not measured with this export (no training run to measure it out of sample on)."]
    reading = rates["readings"].get(ARGUMENTS) or next(iter(rates["readings"].values()))
    choice = reading.get("method_choice", {})
    lines += [f"Out of sample, on {rates['source']} (`error-rates.json`). Support: the arguments that carry the "
              "value. Ratio: the share of arguments that carry the value over the share labelled with it, and how much "
              "that varied between folds (sets of conclusions; the standard deviation of its logarithm); bias: the "
              "labelled share minus the true share. `argvalues summarize` estimates a corpus's "
              f"prevalence by **{choice.get('method', 'share')}** (chosen on held-out folds: mean absolute error "
              + ", ".join(f"{m} {e:.4f}" for m, e in choice.get("mean_absolute_error", {}).items()) + ").", "",
              "| value | support | precision | recall | F1 | true-positive rate | false-positive rate | ratio (spread) | bias |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for group in ("categories", "higher_order"):
        for value, entry in reading[group].items():
            ratio = f"{entry['ratio']:.2f} ({entry['ratio_log_spread']:.2f})" if "ratio" in entry else "-"
            bias = f"{entry['bias']:+.3f}" if "bias" in entry else "-"
            lines.append(f"| {value} | {entry['tp'] + entry['fn']} | {entry['precision']:.2f} | {entry['recall']:.2f} | "
                         f"{entry['f1']:.2f} | {entry['tpr']:.2f} | {entry['fpr']:.3f} | {ratio} | {bias} |")
    return lines


def _thresholds(scoring: ScoringConfig, manifest: dict) -> list[str]:
    ensemble, cv = manifest.get("ensemble"), manifest.get("cv") or {}
    if ensemble:
        chosen = f", chosen on {ensemble['thresholds_from']}"
    elif cv.get("distilled_from") and (scoring.recipe or {}).get("centred_on_thresholds"):
        chosen = (", 0.5: it learned the ensemble's probabilities centred on the ensemble's thresholds (chosen on "
                  "out-of-fold predictions; recipe: centred_on_thresholds)")
    elif cv.get("distilled_from"):
        chosen = ", those of the ensemble it was distilled from (chosen on out-of-fold predictions)"
    elif "thresholds" in cv:
        chosen = ", chosen on the run's out-of-fold predictions"
    else:
        chosen = ""
    lines = ["## Thresholds", "", f"Strategy: {scoring.threshold_strategy}{chosen}."]
    if scoring.text_thresholds is not None:
        return lines + ["", "A text alone (`score --text-column`) has thresholds of its own: where the premises alone "
                        "get each value as often as the whole arguments do, on the arguments the model learnt.", "",
                        "| label | threshold | a text alone |", "| --- | --- | --- |",
                        *[f"| {label} | {threshold:.2f} | {text:.3f} |" for label, threshold, text
                          in zip(LABELS, scoring.thresholds, scoring.text_thresholds)]]
    if len(set(scoring.thresholds)) == 1:
        return lines + ["", f"One threshold for every label: {scoring.thresholds[0]:.2f}."]
    return lines + ["", "| label | threshold |", "| --- | --- |",
                    *[f"| {label} | {threshold:.2f} |" for label, threshold in zip(LABELS, scoring.thresholds)]]


def variants_section(manifest: dict) -> list[str]:
    held = "onnx" in manifest
    parity = manifest["parity"] if held else manifest["reference"]["parity"]
    fp32_file = manifest["onnx"]["file"] if held else "not in this directory"
    fp32_picked = "yes (the reference)" if held else "no (the reference, not held)"
    lines = ["## Variants and their checks", "",
             "Each variant was scored with the scorer's own code on the run's held-out arguments and judged "
             "against fp32 there: the share of labels as fp32's, and the official F1 change with its 95% interval "
             "(paired bootstrap). `score` runs the fastest variant (as measured at export, on the machine that "
             "exported; elsewhere, on the CPU, " + ", then ".join(PREFERENCE["cpu"]) + "; on CUDA, "
             + ", then ".join(PREFERENCE["cuda"]) + ") that may be picked: labels at least 99.5% as fp32's and "
             "the interval above -0.005.", "",
             "| variant | file | labels as fp32 | official F1 change (95%) | may be picked by default |",
             "| --- | --- | --- | --- | --- |",
             f"| fp32 | {fp32_file} | PyTorch's within {parity['max_abs_difference']:.1e} on "
             f"{parity['rows']} arguments | - | {fp32_picked} |"]
    for name, info in (manifest.get("variants") or {}).items():
        if name == "fp32":
            continue
        if info.get("checked_on"):
            change = (f"{info['f1_change']:+.4f} ({info['f1_change_interval'][0]:+.4f} to "
                      f"{info['f1_change_interval'][1]:+.4f})" if "f1_change" in info else "-")
            lines.append(f"| {name} | {info['file']} | {100 * info['label_agreement']:.2f}% of "
                         f"{info['labels']} | {change} | {'yes' if info['default_ok'] else 'no'} |")
        else:
            lines.append(f"| {name} | {info['file']} | not checked here ({info['check_error']}) | - | no |")
    return lines
