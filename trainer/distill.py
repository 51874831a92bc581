"""Distil a fold ensemble into one student model (``argvalues distill``).

The student learns the ensemble's probabilities, not the 0/1 labels: binary cross-entropy with
soft targets. Its targets are
  * for the run's training arguments, their out-of-fold probabilities (each argument scored by
    the fold model that did not train on it, so the targets carry no memorised labels; with
    ``--join``, the mean over the joined runs), and
  * for any unlabelled arguments passed with ``--unlabelled``, the exported ensemble's
    probabilities (``--teacher``, scored with the scorer's own code), or without a teacher the
    mean of the runs' fold models' probabilities (PyTorch, on the GPU when there is one).
There is no held-out set to pick an epoch on, so the last epoch is kept. The student takes the
run's thresholds (chosen out of fold for the ensemble's members; with ``--join``, those the joined
ensemble uses) and is written as a checkpoint
``OUTPUT/best`` that ``argvalues export`` takes like any other.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from argvalues.contract import (
    ARGUMENT_COLUMNS,
    ID_COLUMN,
    LABELS,
    PREMISE,
    read_arguments,
    read_labelled_arguments,
    read_labels,
)
from argvalues.errors import ArgvaluesError
from argvalues.model_config import ARGUMENTS, TEXT, TEXT_TEMPLATE, ScoringConfig
from trainer.config import BEFORE_OPTIONS_EXISTED, POOLINGS, TrainConfig, as_list
from trainer.run_dir import (
    BEST_NAME,
    CHECKPOINTS_NAME,
    VALIDATION_PROBABILITIES_NAME,
    VALIDATION_TEXT_PROBABILITIES,
    CheckpointDir,
    RunDir,
    joined_thresholds,
    mean_out_of_fold,
)

STUDENT_READS = ("both", ARGUMENTS)


@dataclass
class DistillConfig:
    run: str
    arguments: list[str]  # the run's training arguments (one or more files); empty: those the run recorded
    output: str
    teacher: str | None = None
    join: list[str] = field(default_factory=list)  # more runs whose fold models the teacher joined
    unlabelled: list[str] = field(default_factory=list)
    validation_arguments: str | None = None
    validation_labels: str | None = None
    # What the student starts from. None: the run's best fold model, encoder and head (+0.010 on
    # validation against a fresh head on the base model for the default recipe's student:
    # benchmarks/README.md, "Tried and not kept"); a base model starts it afresh.
    model: str | None = None
    # The student trains like a fold model unless told otherwise.
    epochs: int = TrainConfig.epochs
    lr: float = TrainConfig.lr
    warmup_ratio: float = TrainConfig.warmup_ratio
    weight_decay: float = TrainConfig.weight_decay
    batch_size: int = TrainConfig.batch_size
    seed: int = TrainConfig.seed
    pooling: str | None = None  # None: the run's own pooling
    # Targets centred on the ensemble's thresholds and sharpened: sigmoid(sharpness * (logit(p) -
    # logit(threshold))), so the student's threshold is 0.5 and the ensemble's labels are its
    # targets' (p > threshold exactly where the target > 0.5); 1 keeps the probabilities as they are.
    # 4: +0.005 on validation for the default recipe's student (benchmarks/README.md, "Recipe levers
    # on this CPU"), whose ensemble's probabilities crowd around its threshold.
    sharpness: float = 4.0
    # The share of the true labels in a labelled argument's target, the rest the ensemble's (centred)
    # target; 0: the ensemble's alone.
    gold_weight: float = 0.0
    # What the student learns to read: "arguments" (through the run's template) or "both": every
    # argument also as its premise alone, with the same target, so the student scores texts alone
    # (score --text-column) as well as arguments, for twice the training steps (benchmarks/README.md,
    # "Texts alone").
    reads: str = "both"

    @property
    def runs(self) -> list[str]:
        return [self.run, *self.join]

    def student_pooling(self, run_scoring: ScoringConfig) -> str:
        return self.pooling or (run_scoring.recipe or {}).get("pooling", BEFORE_OPTIONS_EXISTED["pooling"])

    def start(self) -> str:
        """The checkpoint or base model the student's training starts from."""
        return self.model or str(RunDir(self.run).best.path)

    def __post_init__(self) -> None:
        self.arguments, self.unlabelled, self.join = as_list(self.arguments), as_list(self.unlabelled), as_list(self.join)
        if self.epochs < 1 or self.batch_size < 1 or not 0 < self.lr < 1:
            raise ArgvaluesError("--epochs and --batch-size must be at least 1 and --lr in (0, 1)")
        if (self.validation_arguments is None) != (self.validation_labels is None):
            raise ArgvaluesError("--validation-arguments and --validation-labels go together")
        if not 0 < self.sharpness <= 20:
            raise ArgvaluesError(f"--sharpness must lie in (0, 20], got {self.sharpness}")
        if not 0 <= self.gold_weight <= 1:
            raise ArgvaluesError(f"--gold-weight must lie in [0, 1], got {self.gold_weight}")
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise ArgvaluesError(f"--pooling must be one of {list(POOLINGS)}, got {self.pooling!r}")
        if self.reads not in STUDENT_READS:
            raise ArgvaluesError(f"--reads must be one of {list(STUDENT_READS)}, got {self.reads!r}")
        if self.pooling and not self.model:
            raise ArgvaluesError("--pooling applies to a student started afresh from --model; the run's best fold "
                                 "model keeps its own pooling")


#: Arguments the text reading's thresholds are matched on (more moves them little and costs time).
MATCH_ROWS = 4096


def text_reading_thresholds(checkpoint: Path, arguments: pd.DataFrame, scoring: ScoringConfig, seed: int = 0
                            ) -> list[float]:
    """The text reading's thresholds: where a premise alone gives each value to as many of the
    arguments learnt as the whole arguments get at the student's thresholds. A premise alone says
    less, so the student is less sure of it; at the same thresholds it labels fewer values, and
    recall falls (on validation, a training-only run: official F1 0.4658 at the same thresholds,
    0.4700 matched, whole arguments 0.4727; benchmarks/README.md, "Texts alone and long texts"). Label-free:
    it uses no gold label, only the two readings of the same arguments."""
    from argvalues.metrics import matched_thresholds
    from trainer.evaluation import checkpoint_probabilities

    rows = arguments.sample(MATCH_ROWS, random_state=seed) if len(arguments) > MATCH_ROWS else arguments
    whole = checkpoint_probabilities([checkpoint], rows, scoring, TrainConfig.eval_batch_size, ARGUMENTS)
    alone = checkpoint_probabilities([checkpoint], rows, scoring, TrainConfig.eval_batch_size, TEXT)
    return matched_thresholds(whole, np.asarray(scoring.thresholds), alone)


def check_teacher_runs(config: DistillConfig) -> None:
    """Refuse a teacher exported from other runs than ``--run`` and ``--join`` name: its probabilities
    on the unlabelled arguments and the out-of-fold targets would come from different ensembles."""
    manifest = Path(config.teacher) / "manifest.json"
    ensemble = json.loads(manifest.read_text()).get("ensemble") if manifest.is_file() else None
    if not ensemble or "runs" not in ensemble:  # not an ensemble, or exported before --join existed
        return
    named = sorted(str(Path(run).resolve()) for run in config.runs)
    if sorted(ensemble["runs"]) != named:
        raise ArgvaluesError(f"--teacher {config.teacher} joins the runs {', '.join(ensemble['runs'])}; "
                             "name the same ones with --run and --join")


def soft_targets(config: DistillConfig, log: Callable[[str], None]) -> tuple[pd.DataFrame, np.ndarray]:
    """Arguments and the ensemble's probabilities for them (out of fold, plus the teacher's on unlabelled)."""
    oof = mean_out_of_fold(config.runs, same_input=False)
    paths = config.arguments or RunDir(config.run).config().arguments
    arguments = pd.concat([read_arguments(path) for path in paths], ignore_index=True)
    # The files a run recorded hold more arguments than it trained on after --limit or
    # --conclusions-fraction: the student learns those with out-of-fold targets.
    arguments = arguments[arguments[ID_COLUMN].isin(oof.index)] if not config.arguments else arguments
    known = arguments[ID_COLUMN].isin(oof.index)
    if not known.all():
        raise ArgvaluesError(f"{', '.join(paths)}: {int((~known).sum())} argument(s) have no out-of-fold probability "
                             f"in {config.run}; pass the run's own training arguments")
    frames, targets = [arguments[ARGUMENT_COLUMNS]], [oof.loc[arguments[ID_COLUMN], LABELS].to_numpy(np.float32)]
    if config.teacher:
        check_teacher_runs(config)
    if config.unlabelled:
        if config.teacher:
            from scorer.model import ScoringModel

            # truncated as the student reads its training arguments
            teacher = ScoringModel(config.teacher, device="auto", long_text="truncate").probabilities
        else:
            teacher = fold_ensemble([Path(run) for run in config.runs])
        for path in config.unlabelled:
            extra = read_arguments(path)
            log(f"teacher {config.teacher or 'the fold models of ' + ', '.join(config.runs)} scores {len(extra)} "
                f"unlabelled arguments from {path}")
            frames.append(extra[ARGUMENT_COLUMNS])
            targets.append(teacher(extra))
    return pd.concat(frames, ignore_index=True), np.concatenate(targets)


def centred_targets(probabilities: np.ndarray, thresholds: list[float], sharpness: float) -> np.ndarray:
    """The ensemble's probabilities moved so that each label's threshold sits at 0.5, spread by
    ``sharpness`` in log-odds: the same labels at 0.5, a margin ``sharpness`` times as wide."""
    clipped = np.clip(probabilities.astype(np.float64), 1e-6, 1 - 1e-6)
    limits = np.clip(np.asarray(thresholds, dtype=np.float64), 1e-6, 1 - 1e-6)
    margin = np.log(clipped / (1 - clipped)) - np.log(limits / (1 - limits))
    return (1 / (1 + np.exp(-sharpness * margin))).astype(np.float32)


def with_gold_labels(arguments: pd.DataFrame, targets: np.ndarray, gold: pd.DataFrame, weight: float) -> np.ndarray:
    """``targets`` with each labelled argument's (an ``Argument ID`` in ``gold``) moved ``weight`` of
    the way to its true labels; the unlabelled arguments' as they are."""
    mixed = targets.copy()
    labelled = arguments[ID_COLUMN].isin(gold.index).to_numpy()
    truth = gold.loc[arguments[ID_COLUMN][labelled], LABELS].to_numpy(np.float32)
    mixed[labelled] = (1 - weight) * targets[labelled] + weight * truth
    return mixed


def fold_ensemble(runs: list[Path]) -> Callable[[pd.DataFrame], np.ndarray]:
    """The mean probability of every fold model of ``runs`` (what 'export --ensemble --join' exports),
    in PyTorch (on the GPU when there is one); each run's models read the arguments through that
    run's own template (an ensemble over input views)."""
    from trainer.evaluation import checkpoint_probabilities

    members = [(ScoringConfig.load(RunDir(run).best.path), [fold.model for fold in RunDir(run).finished_folds()])
               for run in runs]

    def probabilities(arguments: pd.DataFrame) -> np.ndarray:
        total = sum(len(checkpoints) * checkpoint_probabilities(checkpoints, arguments, scoring)
                    for scoring, checkpoints in members)
        return total / sum(len(checkpoints) for _, checkpoints in members)

    return probabilities


def student_text_template(config: DistillConfig, run_scoring: ScoringConfig):
    """How the student reads a text alone: the premise alone when it learns both readings (or when
    the run's template reads the premise alone anyway); None: it reads arguments only."""
    if config.reads == "both" or run_scoring.template.fields() == [PREMISE]:
        return TEXT_TEMPLATE
    return None


def run_distillation(config: DistillConfig, log: Callable[[str], None] = print) -> dict:
    from transformers import DataCollatorWithPadding, Trainer, set_seed

    from trainer.data import ArgumentDataset
    from trainer.evaluation import evaluate_checkpoint
    from trainer.modeling import load_classifier, load_tokenizer, save_checkpoint, training_arguments

    started = time.perf_counter()
    run_best = RunDir(config.run).best
    run_scoring = ScoringConfig.load(run_best.path)
    arguments, targets = soft_targets(config, log)
    thresholds, strategy = run_scoring.thresholds, run_scoring.threshold_strategy
    # With --join, the joined ensemble's own thresholds, as 'export --ensemble --join' chooses them;
    # chosen before training, so that unreadable training labels fail at once with nothing written.
    if config.join:
        choice = joined_thresholds(config.runs, strategy, same_input=False)
        thresholds, strategy = choice["thresholds"], choice["strategy"]
    centred_on = None
    if config.sharpness != 1:
        targets, centred_on = centred_targets(targets, thresholds, config.sharpness), list(thresholds)
        thresholds = [0.5] * len(thresholds)
    if config.gold_weight:
        gold = pd.concat([read_labels(path) for path in RunDir(config.run).config().labels]).set_index(ID_COLUMN)
        gold = gold[LABELS].astype(np.float32)
        targets = with_gold_labels(arguments, targets, gold[~gold.index.duplicated()], config.gold_weight)
    validation = (read_labelled_arguments(config.validation_arguments, config.validation_labels)
                  if config.validation_arguments else None)
    start = config.start()
    base_model = config.model or run_scoring.base_model
    tokenizer = load_tokenizer(start)
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    set_seed(config.seed)
    pooling = config.student_pooling(run_scoring)
    # The student reads the value descriptions when the run's models did (not the level-1 head:
    # there are no level-1 soft targets to learn).
    descriptions = (run_scoring.recipe or {}).get("descriptions") if pooling == "mean" else None
    from trainer.training_data import read_value_descriptions

    model = load_classifier(start, pooling=pooling,
                            descriptions=read_value_descriptions(descriptions) if descriptions else None)
    dataset = ArgumentDataset(arguments, run_scoring.template, tokenizer, run_scoring.max_length, targets)
    text_template = student_text_template(config, run_scoring)
    if text_template is not None and text_template != run_scoring.template:
        import torch

        dataset = torch.utils.data.ConcatDataset([dataset, ArgumentDataset(
            arguments, text_template, tokenizer, run_scoring.max_length, targets)])
    args = training_arguments(config, out / CHECKPOINTS_NAME, eval_strategy="no", save_strategy="no")
    started_from = config.model or f"the best fold model ({start})"
    reads = "each read whole and as its premise alone" if len(dataset) > len(arguments) else "each read whole"
    log(f"distilling into {started_from} ({pooling} pooling): {len(arguments)} arguments with soft targets, "
        f"{reads}, {config.epochs} epoch(s)")
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=DataCollatorWithPadding(tokenizer),
                      processing_class=tokenizer)
    output = trainer.train()
    best = CheckpointDir(out / BEST_NAME)
    shutil.rmtree(best.path, ignore_errors=True)
    save_checkpoint(trainer, best.path)
    shutil.rmtree(out / CHECKPOINTS_NAME, ignore_errors=True)
    scoring = ScoringConfig(thresholds=thresholds, threshold_strategy=strategy, text_template=text_template,
                            template=run_scoring.template, max_length=run_scoring.max_length, base_model=base_model,
                            recipe={"distilled_from": config.runs, "model": base_model,
                                    "started_from": "best fold" if not config.model else "base model",
                                    "pooling": pooling,
                                    "descriptions": descriptions,
                                    "epochs": config.epochs, "lr": config.lr, "batch_size": config.batch_size,
                                    "seed": config.seed, "sharpness": config.sharpness, "gold_weight": config.gold_weight,
                                    "reads": config.reads,
                                    "centred_on_thresholds": centred_on})
    scoring.save(best.path)
    if text_template is not None and text_template != run_scoring.template:
        scoring.text_thresholds = text_reading_thresholds(best.path, arguments, scoring, config.seed)
        scoring.save(best.path)
        log("text reading: thresholds where each value is labelled as often as for the whole arguments "
            f"(on {min(len(arguments), MATCH_ROWS)} of the arguments learnt): "
            + ", ".join(f"{t:.3f}" for t in scoring.text_thresholds))
    best.copy_parity_sample_from(run_best)
    report = {"config": asdict(config), "rows": len(arguments),
              "train_seconds": round(output.metrics["train_runtime"], 1),
              "train_samples_per_second": output.metrics.get("train_samples_per_second")}
    if validation is not None:
        report["validation"] = evaluate_checkpoint(best.path, *validation, out / VALIDATION_PROBABILITIES_NAME,
                                                   TrainConfig.eval_batch_size)
        log(f"student on validation: official F1 {report['validation']['f1']:.4f} at the ensemble's thresholds")
        if text_template is not None:
            report["validation_text"] = evaluate_checkpoint(best.path, *validation, out / VALIDATION_TEXT_PROBABILITIES,
                                                            TrainConfig.eval_batch_size, reading=TEXT)
            log(f"student on validation, each premise alone as a text: official F1 "
                f"{report['validation_text']['f1']:.4f}")
    report["seconds"] = round(time.perf_counter() - started, 1)
    (out / "distill-report.json").write_text(json.dumps(report, indent=2, default=float))
    best.write_summary({"distilled_from": config.runs, "teacher": config.teacher,
                        "validation": {k: v for k, v in report.get("validation", {}).items() if k != "per_label"},
                        "validation_text": {k: v for k, v in report.get("validation_text", {}).items()
                                            if k != "per_label"}})
    log(f"wrote the student to {best.path}")
    return report
