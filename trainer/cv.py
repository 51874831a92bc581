"""Conclusion-grouped cross-validation with the Hugging Face Trainer.

One run writes, under its output directory:
  run-config.json    the configuration (``--resume`` refuses to continue under another one)
  folds/fold-K/      each fold's best checkpoint (safetensors + tokenizer); while it trains, its
                     epoch checkpoints and epochs.json; when done, record.json and the held-out
                     probabilities (what ``--resume`` picks up)
  best/              the fold checkpoint with the best official F1, with its scoring config
  oof-probabilities.tsv, validation-probabilities.tsv (when validation files are given)
  cv-report.json, cv-report.md
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from argvalues.errors import ResumeError
from argvalues.contract import ARGUMENT_COLUMNS, CONCLUSION, ID_COLUMN, LABELS, TEMPLATES, read_labelled_arguments
from argvalues.metrics import choose_thresholds, full_metrics, tune_global_threshold
from argvalues.model_config import ScoringConfig
from trainer.config import (AFTER_TRAINING, BEFORE_OPTIONS_EXISTED, OOF_PROBABILITIES_NAME, RUN_CONFIG_NAME,
                            TrainConfig, as_list)
from trainer.data import ArgumentDataset, predict_probabilities
from trainer.folds import crossfit_partition, grouped_folds
from trainer.modeling import load_classifier, load_tokenizer
from trainer.report import summarise_folds, write_reports
from trainer.training_data import keep_conclusions, read_level1_labels, read_training_pairs, read_value_descriptions

PARITY_SAMPLE_NAME = "parity-sample.tsv"
#: Held-out arguments kept with the best checkpoint: export checks every variant on them. The
#: int8 gate compares official F1 on this sample within 0.005; on 256 rows that macro F1 moved by
#: 0.012 between two runs whose int8 models lose 0.002 and 0.003 on the whole validation set.
PARITY_SAMPLE_ROWS = 1024
#: The training choices a model directory records (argvalues.json "recipe").
RECIPE_KEYS = ("model", "template", "folds", "epochs", "lr", "warmup_ratio", "weight_decay", "batch_size",
               "max_length", "seed", "loss", "pooling", "early_stopping", "thresholds", "level1_labels",
               "descriptions", "conclusions_fraction")
PARITY_LABELS_NAME = "parity-labels.tsv"


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def _training_arguments(config: TrainConfig, output_dir: Path):
    import torch
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=config.epochs,
        learning_rate=config.lr,
        lr_scheduler_type="linear",
        warmup_ratio=config.warmup_ratio,
        weight_decay=config.weight_decay,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        save_only_model=True,
        load_best_model_at_end=True,
        metric_for_best_model="f1_tuned",
        greater_is_better=True,
        group_by_length=True,
        bf16=bf16,
        fp16=cuda and not bf16,
        logging_strategy="epoch",
        report_to=[],
        seed=config.seed,
        data_seed=config.seed,
        dataloader_num_workers=0,
        use_cpu=not cuda,
    )


def fold_callbacks(fold: int) -> list:
    """Extra Trainer callbacks for a fold (none; a seam for tests that interrupt training)."""
    return []


def _last_checkpoint(checkpoints: Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint

    return Path(found) if checkpoints.is_dir() and (found := get_last_checkpoint(str(checkpoints))) else None


def train_fold(config: TrainConfig, fold: int, train_set: ArgumentDataset, eval_set: ArgumentDataset,
               tokenizer, fold_dir: Path, log: Callable[[str], None] = print) -> tuple[dict, np.ndarray]:
    """Train one fold, keep its best epoch (official F1 at the fold's best global threshold).

    Returns the fold's record (per-epoch metrics) and its held-out probabilities. With
    ``config.resume`` it continues from the fold's last epoch checkpoint, if there is one.
    """
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, set_seed

    from trainer.losses import positive_weights, trainer_class

    checkpoints = fold_dir / "checkpoints"
    epochs_file = fold_dir / "epochs.json"
    resume_from = _last_checkpoint(checkpoints) if config.resume else None
    epochs: list[dict] = []
    if resume_from is not None:
        finished = int(round(json.loads((resume_from / "trainer_state.json").read_text())["epoch"]))
        epochs = json.loads(epochs_file.read_text())[:finished] if epochs_file.is_file() else []
        if len(epochs) != finished:
            raise ResumeError(f"{fold_dir}: epochs.json does not cover the {finished} epoch(s) of {resume_from.name}; "
                              f"rerun without --resume")
        log(f"fold {fold + 1}: resuming from {resume_from.name} (epoch {finished})")
    else:
        shutil.rmtree(fold_dir, ignore_errors=True)
    fold_dir.mkdir(parents=True, exist_ok=True)
    set_seed(config.seed + fold)
    model = load_classifier(config.model, pooling=config.pooling, **head_options(config))

    def compute_metrics(eval_pred) -> dict:
        probabilities = _sigmoid(np.asarray(eval_pred.predictions, dtype=np.float64))
        truth = np.asarray(eval_pred.label_ids)[:, :len(LABELS)]  # level-1 targets, if any, follow
        threshold, f1_tuned = tune_global_threshold(truth, probabilities)
        at_half = full_metrics(truth, probabilities, 0.5)
        epochs.append({"epoch": len(epochs) + 1, "at_0.5": at_half,
                       "best_global_threshold": threshold, "f1_at_best_global_threshold": f1_tuned})
        _write_json_atomically(epochs_file, epochs)
        return {"f1_tuned": f1_tuned, "f1": at_half["f1"], "micro_f1": at_half["micro_f1"],
                "roc_auc": at_half["roc_auc"]}

    callbacks = fold_callbacks(fold)
    if config.early_stopping:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping))
    pos_weight = positive_weights(np.asarray(train_set.targets)) if config.loss == "bce-pos-weight" else None
    trainer = trainer_class(config.loss, pos_weight)(
        model=model,
        args=_training_arguments(config, checkpoints),
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        callbacks=callbacks,
    )
    started = time.perf_counter()
    train_output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    seconds = time.perf_counter() - started
    probabilities = predict_probabilities(trainer.model, eval_set, tokenizer, config.eval_batch_size)
    trainer.save_model(str(fold_dir / "model"))
    (fold_dir / "model" / "training_args.bin").unlink(missing_ok=True)  # a pickle; the run records its config
    shutil.rmtree(checkpoints, ignore_errors=True)
    epochs_file.unlink(missing_ok=True)
    best_epoch = int(np.argmax([e["f1_at_best_global_threshold"] for e in epochs])) + 1
    record = {
        "fold": fold,
        "train_rows": len(train_set),
        "eval_rows": len(eval_set),
        "best_epoch": best_epoch,
        "epochs": epochs,
        "train_seconds": round(seconds, 1),
        "train_samples_per_second": round(train_output.metrics.get("train_samples_per_second", 0.0), 2),
    }
    return record, probabilities


def _write_json_atomically(path: Path, data) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=1))
    temporary.replace(path)


FOLD_RECORD = "record.json"
FOLD_PROBABILITIES = "held-out-probabilities.npy"


def _save_finished_fold(fold_dir: Path, record: dict, probabilities: np.ndarray) -> None:
    """The record is written last: its presence means the fold is complete."""
    temporary = fold_dir / (FOLD_PROBABILITIES + ".tmp")
    with open(temporary, "wb") as handle:
        np.save(handle, probabilities, allow_pickle=False)
    temporary.replace(fold_dir / FOLD_PROBABILITIES)
    _write_json_atomically(fold_dir / FOLD_RECORD, record)


def _load_finished_fold(fold_dir: Path, rows: int) -> tuple[dict, np.ndarray] | None:
    if not (fold_dir / FOLD_RECORD).is_file() or not (fold_dir / "model" / "model.safetensors").is_file():
        return None
    probabilities = np.load(fold_dir / FOLD_PROBABILITIES, allow_pickle=False)
    if probabilities.shape != (rows, len(LABELS)):
        return None
    return json.loads((fold_dir / FOLD_RECORD).read_text()), probabilities


def _check_resumable(out: Path, config: TrainConfig, log: Callable[[str], None]) -> None:
    saved = out / RUN_CONFIG_NAME
    if config.resume and saved.is_file():
        before = {**BEFORE_OPTIONS_EXISTED, **json.loads(saved.read_text())}
        before["arguments"], before["labels"] = as_list(before.get("arguments")), as_list(before.get("labels"))
        identity = config.identity()
        changed = sorted(k for k in set(before) | set(identity)
                         if k not in AFTER_TRAINING and before.get(k) != identity.get(k))
        if changed:
            raise ResumeError(
                f"cannot resume {out}: " + ", ".join(f"{k} was {before.get(k)!r}, now {identity.get(k)!r}"
                                                     for k in changed) + "; rerun without --resume to start over")
        log(f"resuming the run in {out}")
    elif config.resume:
        log(f"nothing to resume in {out}; starting from the beginning")
    _write_json_atomically(saved, {k: v for k, v in config.to_dict().items() if k != "resume"})


def _write_probabilities(path: Path, ids: pd.Series, probabilities: np.ndarray, extra: dict | None = None) -> None:
    frame = pd.DataFrame(probabilities, columns=LABELS)
    for position, (name, values) in enumerate((extra or {}).items()):
        frame.insert(position, name, values)
    frame.insert(0, ID_COLUMN, ids.to_numpy())
    frame.to_csv(path, sep="\t", index=False, float_format="%.6f")


def run_cross_validation(config: TrainConfig, log: Callable[[str], None] = print) -> dict:
    """Run the whole cross-validation described by ``config``; returns the report dict."""
    out = config.output_dir
    started = time.perf_counter()
    arguments, targets = read_training_pairs(config.arguments, config.labels)
    if config.limit:
        arguments, targets = arguments.iloc[: config.limit].reset_index(drop=True), targets[: config.limit]
    if config.conclusions_fraction < 1:
        kept = keep_conclusions(arguments, config.conclusions_fraction, config.seed)
        arguments, targets = arguments[kept].reset_index(drop=True), targets[kept]
    # What the model learns: the categories, then the level-1 values when they are an auxiliary task.
    learned = targets
    if config.level1_labels:
        _, level1 = read_level1_labels(config.level1_labels, arguments[ID_COLUMN])
        learned = np.concatenate([targets, level1], axis=1)
    validation = None
    if config.validation_arguments:
        validation = read_labelled_arguments(config.validation_arguments, config.validation_labels)
    template = TEMPLATES[config.template]
    tokenizer = load_tokenizer(config.model)
    groups = arguments[CONCLUSION]
    try:
        fold_of_row = grouped_folds(groups, targets, config.folds, config.seed)
    except ValueError as error:
        from argvalues.errors import DataError

        raise DataError(f"{', '.join(config.arguments)}: {error}") from None
    held_folds = list(range(config.folds)) if config.folds > 1 else [0]
    out.mkdir(parents=True, exist_ok=True)  # only once inputs, model and folds are known to be good
    _check_resumable(out, config, log)
    log(f"{len(arguments)} arguments on {groups.nunique()} conclusions; "
        f"{config.folds} fold(s) grouped by conclusion: " +
        ", ".join(f"fold {k}: {(fold_of_row == k).sum()} rows" for k in held_folds))

    oof = np.full(targets.shape, np.nan, dtype=np.float32)
    fold_records = []
    for fold in held_folds:
        train_rows, eval_rows = fold_of_row != fold, fold_of_row == fold
        log(f"fold {fold + 1}/{len(held_folds)}: training on {train_rows.sum()}, evaluating on {eval_rows.sum()}")
        fold_dir = out / "folds" / f"fold-{fold}"
        finished = _load_finished_fold(fold_dir, int(eval_rows.sum())) if config.resume else None
        if finished is not None:
            record, probabilities = finished
            log(f"fold {fold + 1}: already done, kept")
        else:
            train_set = ArgumentDataset(arguments[train_rows], template, tokenizer, config.max_length,
                                        learned[train_rows])
            eval_set = ArgumentDataset(arguments[eval_rows], template, tokenizer, config.max_length, learned[eval_rows])
            record, probabilities = train_fold(config, fold, train_set, eval_set, tokenizer, fold_dir, log)
            _save_finished_fold(fold_dir, record, probabilities)
        oof[eval_rows] = probabilities
        fold_records.append(record)
        log(f"fold {fold + 1}: best epoch {record['best_epoch']}, official F1 at its best threshold "
            f"{record['epochs'][record['best_epoch'] - 1]['f1_at_best_global_threshold']:.4f}")

    held = ~np.isnan(oof[:, 0])
    partition = crossfit_partition(fold_of_row, held, groups, config.seed)
    threshold_choice = choose_thresholds(targets[held], oof[held], partition, config.thresholds)
    thresholds = np.asarray(threshold_choice["thresholds"])
    for record in fold_records:
        rows = fold_of_row == record["fold"]
        record["at_0.5"] = full_metrics(targets[rows], oof[rows], 0.5)
        record["at_chosen_thresholds"] = full_metrics(targets[rows], oof[rows], thresholds)
    best = max(fold_records, key=lambda r: r["at_chosen_thresholds"]["f1"])

    best_dir = out / "best"
    shutil.rmtree(best_dir, ignore_errors=True)
    shutil.copytree(out / "folds" / f"fold-{best['fold']}" / "model", best_dir)
    tokenizer.save_pretrained(str(best_dir))
    scoring = ScoringConfig(
        thresholds=[float(t) for t in thresholds],
        threshold_strategy=threshold_choice["strategy"],
        template=template,
        max_length=config.max_length,
        base_model=config.model,
        recipe={key: config.to_dict()[key] for key in RECIPE_KEYS},
    )
    scoring.save(best_dir)
    best_rows = np.flatnonzero(fold_of_row == best["fold"])[:PARITY_SAMPLE_ROWS]
    arguments.iloc[best_rows][ARGUMENT_COLUMNS].to_csv(best_dir / PARITY_SAMPLE_NAME, sep="\t", index=False)
    parity_labels = pd.DataFrame(targets[best_rows].astype(int), columns=LABELS)
    parity_labels.insert(0, ID_COLUMN, arguments[ID_COLUMN].iloc[best_rows].to_numpy())
    parity_labels.to_csv(best_dir / PARITY_LABELS_NAME, sep="\t", index=False)
    _write_probabilities(out / OOF_PROBABILITIES_NAME, arguments.loc[held, ID_COLUMN], oof[held],
                         {"fold": fold_of_row[held]})

    report = {
        "config": config.to_dict(),
        "data": {"rows": len(arguments), "conclusions": int(groups.nunique()),
                 "label_positives": {label: int(n) for label, n in zip(LABELS, targets.sum(0))}},
        "folds": fold_records,
        "summary": summarise_folds(fold_records),
        "out_of_fold": {"rows": int(held.sum()), "at_0.5": full_metrics(targets[held], oof[held], 0.5),
                        "at_chosen_thresholds": full_metrics(targets[held], oof[held], thresholds)},
        "thresholds": threshold_choice,
        "best": {"fold": best["fold"], "epoch": best["best_epoch"], "f1": best["at_chosen_thresholds"]["f1"],
                 "checkpoint": str(best_dir)},
    }
    if validation is not None:
        report["validation"] = evaluate_checkpoint(best_dir, scoring, *validation, tokenizer, config,
                                                   out / "validation-probabilities.tsv")
        log(f"validation ({config.validation_arguments}): official F1 {report['validation']['f1']:.4f} "
            f"with the {scoring.threshold_strategy} thresholds chosen out of fold")
    from trainer.plots import write_plots

    report["plots"] = write_plots(report, oof[held], targets[held], out)
    report["seconds"] = round(time.perf_counter() - started, 1)
    write_reports(report, out)
    (best_dir / "cv-summary.json").write_text(json.dumps(
        {"best": report["best"], "summary": report["summary"], "thresholds": threshold_choice,
         "validation": {k: v for k, v in report.get("validation", {}).items() if k != "per_label"}}, indent=2))
    log(f"wrote {out / 'cv-report.md'} and the best checkpoint to {best_dir}")
    if config.distill:
        report["student"] = distill_run(config, log)
    return report


STUDENT_DIR = "student"


def distill_run(config: TrainConfig, log: Callable[[str], None] = print) -> dict:
    """The run's fold ensemble distilled into one student, OUTPUT/student/best ('argvalues export
    OUTPUT' takes it); with ``--resume`` a finished student is kept."""
    from trainer.distill import DistillConfig, run_distillation

    student = config.output_dir / STUDENT_DIR
    report_path = student / "distill-report.json"
    if config.resume and report_path.is_file() and (student / "best" / "argvalues.json").is_file():
        # Its soft targets do not depend on the thresholds; a resumed run may have re-chosen them.
        run_scoring, student_scoring = ScoringConfig.load(config.output_dir / "best"), ScoringConfig.load(student / "best")
        student_scoring.thresholds = run_scoring.thresholds
        student_scoring.threshold_strategy = run_scoring.threshold_strategy
        student_scoring.save(student / "best")
        log(f"student: already done, kept ({student / 'best'}), with the run's {run_scoring.threshold_strategy} thresholds")
        return json.loads(report_path.read_text())
    return run_distillation(DistillConfig(
        run=str(config.output_dir), arguments=[], output=str(student), unlabelled=config.unlabelled,
        validation_arguments=config.validation_arguments, validation_labels=config.validation_labels,
        model=config.model, epochs=config.epochs, lr=config.lr, warmup_ratio=config.warmup_ratio,
        weight_decay=config.weight_decay, batch_size=config.batch_size, seed=config.seed), log=log)


def head_options(config: TrainConfig) -> dict:
    """What the model needs besides the categories: level-1 names, value phrasings (trainer.pooling)."""
    options = {}
    if config.level1_labels:
        options["level1_labels"] = read_level1_labels(config.level1_labels[:1], pd.Series([], dtype=str))[0]
    if config.descriptions:
        options["descriptions"] = read_value_descriptions(config.descriptions)
    return options


def evaluate_checkpoint(checkpoint: Path, scoring: ScoringConfig, arguments: pd.DataFrame, targets: np.ndarray,
                        tokenizer, config: TrainConfig, probabilities_path: Path | None = None) -> dict:
    """Metrics of a saved checkpoint on labelled arguments, at the checkpoint's own thresholds."""
    model = load_classifier(str(checkpoint))
    dataset = ArgumentDataset(arguments, scoring.template, tokenizer, scoring.max_length)
    probabilities = predict_probabilities(model, dataset, tokenizer, config.eval_batch_size)
    if probabilities_path is not None:
        _write_probabilities(probabilities_path, arguments[ID_COLUMN], probabilities)
    metrics = full_metrics(targets, probabilities, np.asarray(scoring.thresholds))
    metrics["rows"] = len(arguments)
    metrics["at_0.5"] = {k: v for k, v in full_metrics(targets, probabilities, 0.5).items() if k != "per_label"}
    return metrics
