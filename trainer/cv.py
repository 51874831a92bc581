"""Conclusion-grouped cross-validation with the Hugging Face Trainer.

A run trains one model per fold, picks each fold's best epoch by the official F1, chooses the
thresholds on the out-of-fold probabilities, and keeps the best fold's checkpoint in ``best/``,
ready for export. What it writes where is owned by :mod:`trainer.run_dir`.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from argvalues.contract import CONCLUSION, ID_COLUMN, LABELS, TEMPLATES, read_labelled_arguments
from argvalues.errors import DataError, ResumeError
from argvalues.metrics import choose_thresholds, full_metrics, tune_global_threshold
from argvalues.model_config import ARGUMENTS, ScoringConfig
from trainer.config import AFTER_TRAINING, TrainConfig
from trainer.data import ArgumentDataset, predict_probabilities
from trainer.evaluation import evaluate_checkpoint
from trainer.folds import crossfit_partition, grouped_folds
from trainer.modeling import load_classifier, load_tokenizer, save_checkpoint, training_arguments
from trainer.report import summarise_folds, write_reports
from trainer.run_dir import (
    CV_REPORT_MARKDOWN_NAME,
    CV_REPORT_NAME,
    PARITY_SAMPLE_ROWS,
    STUDENT_NAME,
    FoldDir,
    RunDir,
    joined_out_of_fold,
    joined_thresholds,
)
from trainer.training_data import (
    keep_conclusions,
    read_description_examples,
    read_level1_labels,
    read_training_pairs,
    read_value_descriptions,
)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def fold_callbacks(fold: int) -> list:
    """Extra Trainer callbacks for a fold (none; a seam for tests that interrupt training)."""
    return []


@dataclass
class TrainingData:
    """The labelled training arguments, the fold that holds out each one, and the validation set;
    ``learned``: what the model learns, the category targets followed by any level-1 targets."""

    arguments: pd.DataFrame
    targets: np.ndarray
    fold_of_row: np.ndarray
    validation: tuple[pd.DataFrame, np.ndarray] | None
    learned: np.ndarray
    # --description-examples: rows every fold trains on and none holds out (the out-of-fold
    # predictions, thresholds and F1 stay those of the real arguments).
    examples: tuple[pd.DataFrame, np.ndarray] | None = None

    @property
    def groups(self) -> pd.Series:
        return self.arguments[CONCLUSION]


def run_cross_validation(config: TrainConfig, log: Callable[[str], None] = print) -> dict:
    """Run the whole cross-validation described by ``config``; returns the report dict."""
    started = time.perf_counter()
    arguments, targets, validation = _read_data(config)
    learned = _with_level1(config, arguments, targets)
    head_options(config)  # unreadable value descriptions fail here, before anything is written
    tokenizer = load_tokenizer(config.model)
    examples = read_description_examples(config.description_examples, LABELS) if config.description_examples else None
    data = TrainingData(arguments, targets, _assign_folds(config, arguments, targets), validation, learned, examples)
    run = _prepare_run_dir(config, log)  # only once inputs, model and folds are known to be good
    log(f"{len(arguments)} arguments on {data.groups.nunique()} conclusions; "
        f"{config.folds} fold(s) grouped by conclusion: " +
        ", ".join(f"fold {k}: {(data.fold_of_row == k).sum()} rows" for k in _held_folds(config)))

    oof, fold_records = _train_folds(config, data, tokenizer, run, log)
    held = ~np.isnan(oof[:, 0])
    threshold_choice = _choose_thresholds(config, data, oof, held)
    thresholds = np.asarray(threshold_choice["thresholds"])
    _score_folds(fold_records, data, oof, thresholds)
    best = max(fold_records, key=lambda r: r["at_chosen_thresholds"]["f1"])
    scoring = _scoring_config(config, threshold_choice)
    _write_best(run, best["fold"], tokenizer, scoring, data)
    run.write_out_of_fold(arguments.loc[held, ID_COLUMN], oof[held], data.fold_of_row[held])

    report = _report(config, data, fold_records, oof, held, threshold_choice, best, run)
    if validation is not None:
        report["validation"] = evaluate_checkpoint(run.best.path, *validation, run.validation_probabilities_path,
                                                   config.eval_batch_size)
        log(f"validation ({config.validation_arguments}): official F1 {report['validation']['f1']:.4f} "
            f"with the {scoring.threshold_strategy} thresholds chosen out of fold")
    from trainer.plots import write_plots

    report["plots"] = write_plots(report, oof[held], targets[held], run.path)
    report["seconds"] = round(time.perf_counter() - started, 1)
    write_reports(report, run.path)
    run.best.write_summary({"best": report["best"], "summary": report["summary"], "thresholds": threshold_choice,
                            "validation": {k: v for k, v in report.get("validation", {}).items() if k != "per_label"}})
    log(f"wrote {run.path / CV_REPORT_MARKDOWN_NAME} and the best checkpoint to {run.best.path}")
    if config.distill:
        views = train_views(config, run, log)
        if views:
            report["views"] = views_report(run, views)
            log(f"the {1 + len(views)} views joined: official F1 out of fold "
                f"{report['views']['joined_out_of_fold_f1']:.4f}")
        report["student"] = distill_run(config, run, log, views)
        write_reports(report, run.path)  # cv-report.json records the views and the student too
    return report


def train_views(config: TrainConfig, run: RunDir, log: Callable[[str], None] = print) -> list[RunDir]:
    """Train (or, with ``--resume``, keep) the run of each other input view, ``views/TEMPLATE``."""
    views = []
    for template in config.trained_views():
        view = run.view(template)
        log(f"input view {template!r}: {config.folds} fold(s) of its own in {view.path}")
        run_cross_validation(config.view_config(template, view.path), log=lambda line, t=template: log(f"{t}: {line}"))
        views.append(view)
    return views


def views_report(run: RunDir, views: list[RunDir]) -> dict:
    """Each view's run in figures, and the out-of-fold F1 of all views' fold models joined (what
    the student learns)."""
    runs = [run.path, *(view.path for view in views)]
    targets, probabilities, folds = joined_out_of_fold(runs, same_input=False)
    # The strategy the run chose (auto resolved), as the student's joined thresholds are chosen.
    choice = choose_thresholds(targets, probabilities, folds, ScoringConfig.load(run.best.path).threshold_strategy)
    each = {}
    for view in views:
        view_report = json.loads((view.path / CV_REPORT_NAME).read_text())
        each[view.path.name] = {"run": str(view.path), "seconds": view_report["seconds"],
                                "out_of_fold_f1": view_report["out_of_fold"]["at_chosen_thresholds"]["f1"],
                                "validation_f1": view_report.get("validation", {}).get("f1")}
    return {"views": each, "joined_thresholds": choice,
            "joined_out_of_fold_f1": full_metrics(targets, probabilities, np.asarray(choice["thresholds"]))["f1"]}


def distill_run(config: TrainConfig, run: RunDir, log: Callable[[str], None] = print,
                views: list[RunDir] = ()) -> dict:
    """The run's fold ensemble (with its views' fold models) distilled into one student,
    ``student/best`` ('argvalues export RUN' takes it); with ``--resume`` a finished student of the
    same runs is kept, with the run's (maybe re-chosen) thresholds."""
    from trainer.distill import DistillConfig, run_distillation

    student = run.path / STUDENT_NAME
    report_path = student / "distill-report.json"
    teachers = [str(run.path), *(str(view.path) for view in views)]
    if config.resume and report_path.is_file() and run.student.has_scoring_config():
        run_scoring, student_scoring = ScoringConfig.load(run.best.path), ScoringConfig.load(run.student.path)
        recipe = student_scoring.recipe or {}
        centred_on = recipe.get("centred_on_thresholds")
        learnt = [Path(p).resolve() for p in recipe.get("distilled_from", [run.path])]
        if learnt != [Path(p).resolve() for p in teachers]:
            log(f"student: it learnt {', '.join(recipe.get('distilled_from', []))}, not {', '.join(teachers)}; "
                "training it again")
        elif recipe.get("reads", ARGUMENTS) != config.student_reads:
            log(f"student: it learnt to read {recipe.get('reads', ARGUMENTS)}, not {config.student_reads}; training it "
                "again")
        elif recipe.get("started_from") != "best fold":
            # trained before the student started from the best fold model (validation 0.4633 against 0.4733)
            log("student: it started from the base model, not the run's best fold model; training it again")
        else:
            # The thresholds of what it learnt: the run's, or those of the views joined.
            wanted = (joined_thresholds(teachers, run_scoring.threshold_strategy, same_input=False)["thresholds"]
                      if views else run_scoring.thresholds)
            if centred_on is None:
                # Its soft targets do not depend on the thresholds; a resumed run may have re-chosen them.
                student_scoring.thresholds = wanted
                student_scoring.threshold_strategy = run_scoring.threshold_strategy
                student_scoring.save(run.student.path)
                log(f"student: already done, kept ({run.student.path}), with the run's "
                    f"{run_scoring.threshold_strategy} thresholds")
                return json.loads(report_path.read_text())
            if list(centred_on) == list(wanted):
                log(f"student: already done, kept ({run.student.path})")
                return json.loads(report_path.read_text())
            log("student: its targets were centred on other thresholds than the run's now; training it again")
    # No --arguments: the student takes the arguments the run trained on (after --limit and
    # --conclusions-fraction), each with its out-of-fold probabilities as targets. No model: it
    # starts from the run's best fold model.
    return run_distillation(DistillConfig(
        run=str(run.path), join=teachers[1:], arguments=[], output=str(student), unlabelled=config.unlabelled,
        validation_arguments=config.validation_arguments, validation_labels=config.validation_labels,
        model=None, epochs=config.epochs, lr=config.lr, warmup_ratio=config.warmup_ratio,
        weight_decay=config.weight_decay, batch_size=config.batch_size, seed=config.seed,
        reads=config.student_reads), log=log)


def head_options(config: TrainConfig) -> dict:
    """What the model needs besides the categories: level-1 names, value phrasings (trainer.pooling)."""
    options = {}
    if config.level1_labels:
        options["level1_labels"] = read_level1_labels(config.level1_labels[:1], pd.Series([], dtype=str))[0]
    if config.descriptions:
        options["descriptions"] = read_value_descriptions(config.descriptions)
    return options


def _read_data(config: TrainConfig) -> tuple[pd.DataFrame, np.ndarray, tuple[pd.DataFrame, np.ndarray] | None]:
    """The training arguments and labels of every pair (the first ``--limit`` of them, those of the
    ``--conclusions-fraction`` drawn), and the validation set."""
    arguments, targets = read_training_pairs(config.arguments, config.labels)
    if config.limit:
        arguments, targets = arguments.iloc[: config.limit].reset_index(drop=True), targets[: config.limit]
    if config.conclusions_fraction < 1:
        kept = keep_conclusions(arguments, config.conclusions_fraction, config.seed)
        arguments, targets = arguments[kept].reset_index(drop=True), targets[kept]
    validation = None
    if config.validation_arguments:
        validation = read_labelled_arguments(config.validation_arguments, config.validation_labels)
    return arguments, targets, validation


def _with_level1(config: TrainConfig, arguments: pd.DataFrame, targets: np.ndarray) -> np.ndarray:
    """The category targets, followed by the level-1 ones when they are an auxiliary task."""
    if not config.level1_labels:
        return targets
    _, level1 = read_level1_labels(config.level1_labels, arguments[ID_COLUMN])
    return np.concatenate([targets, level1], axis=1)


def _assign_folds(config: TrainConfig, arguments: pd.DataFrame, targets: np.ndarray) -> np.ndarray:
    try:
        return grouped_folds(arguments[CONCLUSION], targets, config.folds, config.seed)
    except ValueError as error:
        raise DataError(f"{', '.join(config.arguments)}: {error}") from None


def _held_folds(config: TrainConfig) -> list[int]:
    """The folds that are held out and trained: all of them, or the one hold-out split of ``--folds 1``."""
    return list(range(config.folds)) if config.folds > 1 else [0]


def _prepare_run_dir(config: TrainConfig, log: Callable[[str], None]) -> RunDir:
    """Create the run directory and record the config; with ``--resume``, refuse a run recorded
    under other options that shape training."""
    run = RunDir(config.output_dir)
    run.path.mkdir(parents=True, exist_ok=True)
    before = run.recorded_options() if config.resume else None
    if before is not None:
        identity = config.identity()
        changed = sorted(k for k in set(before) | set(identity)
                         if k not in AFTER_TRAINING and before.get(k) != identity.get(k))
        if changed:
            raise ResumeError(
                f"cannot resume {run.path}: " + ", ".join(f"{k} was {before.get(k)!r}, now {identity.get(k)!r}"
                                                          for k in changed) + "; rerun without --resume to start over")
        log(f"resuming the run in {run.path}")
    elif config.resume:
        log(f"nothing to resume in {run.path}; starting from the beginning")
    run.write_config(config)
    return run


def _train_folds(config: TrainConfig, data: TrainingData, tokenizer, run: RunDir,
                 log: Callable[[str], None]) -> tuple[np.ndarray, list[dict]]:
    """Train (or, with ``--resume``, keep) every held-out fold; returns the out-of-fold probabilities
    (NaN for rows no fold holds out) and the fold records."""
    oof = np.full(data.targets.shape, np.nan, dtype=np.float32)
    fold_records = []
    held_folds = _held_folds(config)
    for fold in held_folds:
        train_rows, eval_rows = data.fold_of_row != fold, data.fold_of_row == fold
        extra = f" (and {len(data.examples[0])} description examples)" if data.examples is not None else ""
        log(f"fold {fold + 1}/{len(held_folds)}: training on {train_rows.sum()}{extra}, evaluating on {eval_rows.sum()}")
        fold_dir = run.fold(fold)
        finished = fold_dir.load_finished(int(eval_rows.sum())) if config.resume else None
        if finished is not None:
            record, probabilities = finished
            log(f"fold {fold + 1}: already done, kept")
        else:
            template = TEMPLATES[config.template]
            train_arguments, train_targets = data.arguments[train_rows], data.learned[train_rows]
            if data.examples is not None:
                train_arguments = pd.concat([train_arguments, data.examples[0]], ignore_index=True)
                train_targets = np.concatenate([train_targets, data.examples[1]])
            train_set = ArgumentDataset(train_arguments, template, tokenizer, config.max_length, train_targets)
            eval_set = ArgumentDataset(data.arguments[eval_rows], template, tokenizer, config.max_length,
                                       data.learned[eval_rows])
            record, probabilities = train_fold(config, fold, train_set, eval_set, tokenizer, fold_dir, log)
            fold_dir.save_finished(record, probabilities)
        oof[eval_rows] = probabilities
        fold_records.append(record)
        log(f"fold {fold + 1}: best epoch {record['best_epoch']}, official F1 at its best threshold "
            f"{record['epochs'][record['best_epoch'] - 1]['f1_at_best_global_threshold']:.4f}")
    return oof, fold_records


def _choose_thresholds(config: TrainConfig, data: TrainingData, oof: np.ndarray, held: np.ndarray) -> dict:
    partition = crossfit_partition(data.fold_of_row, held, data.groups, config.seed)
    return choose_thresholds(data.targets[held], oof[held], partition, config.thresholds)


def _score_folds(fold_records: list[dict], data: TrainingData, oof: np.ndarray, thresholds: np.ndarray) -> None:
    """Add each fold's metrics on its held-out rows, at 0.5 and at the chosen thresholds."""
    for record in fold_records:
        rows = data.fold_of_row == record["fold"]
        record["at_0.5"] = full_metrics(data.targets[rows], oof[rows], 0.5)
        record["at_chosen_thresholds"] = full_metrics(data.targets[rows], oof[rows], thresholds)


def _scoring_config(config: TrainConfig, threshold_choice: dict) -> ScoringConfig:
    return ScoringConfig(
        thresholds=[float(t) for t in threshold_choice["thresholds"]],
        threshold_strategy=threshold_choice["strategy"],
        template=TEMPLATES[config.template],
        max_length=config.max_length,
        base_model=config.model,
        recipe=config.recipe(),
    )


def _write_best(run: RunDir, fold: int, tokenizer, scoring: ScoringConfig, data: TrainingData) -> None:
    """Copy the best fold's checkpoint to ``best/`` with its tokenizer, its scoring config and a
    sample of its held-out arguments with their labels."""
    best = run.best
    shutil.rmtree(best.path, ignore_errors=True)
    shutil.copytree(run.fold(fold).model, best.path)
    tokenizer.save_pretrained(str(best.path))
    scoring.save(best.path)
    rows = np.flatnonzero(data.fold_of_row == fold)[:PARITY_SAMPLE_ROWS]
    best.write_parity_sample(data.arguments.iloc[rows], data.targets[rows])


def _report(config: TrainConfig, data: TrainingData, fold_records: list[dict], oof: np.ndarray, held: np.ndarray,
            threshold_choice: dict, best: dict, run: RunDir) -> dict:
    thresholds = np.asarray(threshold_choice["thresholds"])
    targets = data.targets
    return {
        "config": config.to_dict(),
        "data": {"rows": len(data.arguments), "conclusions": int(data.groups.nunique()),
                 "label_positives": {label: int(n) for label, n in zip(LABELS, targets.sum(0))}},
        "folds": fold_records,
        "summary": summarise_folds(fold_records),
        "out_of_fold": {"rows": int(held.sum()), "at_0.5": full_metrics(targets[held], oof[held], 0.5),
                        "at_chosen_thresholds": full_metrics(targets[held], oof[held], thresholds)},
        "thresholds": threshold_choice,
        "best": {"fold": best["fold"], "epoch": best["best_epoch"], "f1": best["at_chosen_thresholds"]["f1"],
                 "checkpoint": str(run.best.path)},
    }


def _last_checkpoint(checkpoints: Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint

    return Path(found) if checkpoints.is_dir() and (found := get_last_checkpoint(str(checkpoints))) else None


def _epochs_before(fold: FoldDir, checkpoint: Path) -> list[dict]:
    """The epochs' metrics up to ``checkpoint``, the epoch checkpoint a fold resumes from."""
    finished = int(round(json.loads((checkpoint / "trainer_state.json").read_text())["epoch"]))
    epochs = fold.read_epochs()[:finished]
    if len(epochs) != finished:
        raise ResumeError(f"{fold.path}: epochs.json does not cover the {finished} epoch(s) of {checkpoint.name}; "
                          f"rerun without --resume")
    return epochs


def _epoch_metrics(epochs: list[dict]) -> Callable:
    """The Trainer's ``compute_metrics``: official F1 at the epoch's best global threshold (what picks
    the best epoch), and the full metrics at 0.5; each epoch's are appended to ``epochs``."""

    def compute_metrics(eval_pred) -> dict:
        probabilities = _sigmoid(np.asarray(eval_pred.predictions, dtype=np.float64))
        truth = np.asarray(eval_pred.label_ids)[:, :len(LABELS)]  # level-1 targets, if any, follow
        threshold, f1_tuned = tune_global_threshold(truth, probabilities)
        at_half = full_metrics(truth, probabilities, 0.5)
        epochs.append({"epoch": len(epochs) + 1, "at_0.5": at_half,
                       "best_global_threshold": threshold, "f1_at_best_global_threshold": f1_tuned})
        return {"f1_tuned": f1_tuned, "f1": at_half["f1"], "micro_f1": at_half["micro_f1"],
                "roc_auc": at_half["roc_auc"]}

    return compute_metrics


def _epochs_writer(fold: FoldDir, epochs: list[dict]):
    """A Trainer callback that writes the epochs' metrics after each evaluation, before the epoch's
    checkpoint is saved: ``--resume`` reads them for the checkpoint it continues from."""
    from transformers import TrainerCallback

    class WriteEpochs(TrainerCallback):
        def on_evaluate(self, args, state, control, **kwargs):
            fold.write_epochs(epochs)

    return WriteEpochs()


def train_fold(config: TrainConfig, fold: int, train_set: ArgumentDataset, eval_set: ArgumentDataset,
               tokenizer, fold_dir: FoldDir, log: Callable[[str], None] = print) -> tuple[dict, np.ndarray]:
    """Train one fold, keep its best epoch (official F1 at the fold's best global threshold).

    Returns the fold's record (per-epoch metrics) and its held-out probabilities. With
    ``config.resume`` it continues from the fold's last epoch checkpoint, if there is one.
    """
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, set_seed

    from trainer.losses import label_priors, positive_weights, trainer_class

    resume_from = _last_checkpoint(fold_dir.checkpoints) if config.resume else None
    epochs: list[dict] = []
    if resume_from is not None:
        epochs = _epochs_before(fold_dir, resume_from)
        log(f"fold {fold + 1}: resuming from {resume_from.name} (epoch {len(epochs)})")
    else:
        shutil.rmtree(fold_dir.path, ignore_errors=True)
    fold_dir.path.mkdir(parents=True, exist_ok=True)
    set_seed(config.seed + fold)
    model = load_classifier(config.model, pooling=config.pooling, **head_options(config))
    callbacks = [_epochs_writer(fold_dir, epochs), *fold_callbacks(fold)]
    if config.early_stopping:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping))
    train_targets = np.asarray(train_set.targets)
    pos_weight = positive_weights(train_targets) if config.loss == "bce-pos-weight" else None
    arguments = training_arguments(
        config, fold_dir.checkpoints, per_device_eval_batch_size=config.eval_batch_size, eval_strategy="epoch",
        save_strategy="epoch", save_total_limit=1, save_only_model=True, load_best_model_at_end=True,
        metric_for_best_model="f1_tuned", greater_is_better=True, dataloader_num_workers=0)
    trainer = trainer_class(config.loss, pos_weight, priors=label_priors(train_targets), rows=len(train_targets))(
        model=model,
        args=arguments,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=_epoch_metrics(epochs),
        callbacks=callbacks,
    )
    started = time.perf_counter()
    train_output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    seconds = time.perf_counter() - started
    probabilities = predict_probabilities(trainer.model, eval_set, tokenizer, config.eval_batch_size)
    save_checkpoint(trainer, fold_dir.model)
    fold_dir.discard_training_files()
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
