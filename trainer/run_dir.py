"""A training run's directory: its layout and its records, written by ``argvalues train`` and read
by ``--resume``, ``argvalues export`` and ``argvalues distill``.

  run-config.json      the configuration (``--resume`` refuses to continue under another one)
  folds/fold-K/        each fold: model/ (its best checkpoint: safetensors + tokenizer); while it
                       trains, checkpoints/ (epoch checkpoints) and epochs.json; when done,
                       record.json and held-out-probabilities.npy (what ``--resume`` picks up)
  best/                the fold checkpoint with the best official F1 (a :class:`CheckpointDir`)
  views/TEMPLATE/      a run of its own for each input view (``--views``), laid out like this one
  student/best/        the student of the fold models of the run and its views (what export takes)
  oof-probabilities.tsv, validation-probabilities.tsv (when validation files are given)
  cv-report.json, cv-report.md, plot-*.png

A checkpoint that ``argvalues export`` takes (a run's ``best/``, a student's) carries beside its
weights its scoring config (``argvalues.json``, :mod:`argvalues.model_config`) and the records of
the run that made it: a sample of held-out arguments with their labels (every exported variant is
checked on them) and ``cv-summary.json``.

Several runs on the same data join into one ensemble: their out-of-fold probabilities are averaged
and the joined thresholds chosen on that mean (:func:`joined_thresholds`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from argvalues.contract import ARGUMENT_COLUMNS, ID_COLUMN, LABELS, read_arguments, read_labels
from argvalues.errors import ArgvaluesError, ModelDirError
from argvalues.files import write_atomically, write_json_atomically
from argvalues.model_config import SCORING_CONFIG_NAME
from trainer.config import BEFORE_OPTIONS_EXISTED, TrainConfig, as_list
from trainer.training_data import read_training_pairs

RUN_CONFIG_NAME = "run-config.json"
OOF_PROBABILITIES_NAME = "oof-probabilities.tsv"
VALIDATION_PROBABILITIES_NAME = "validation-probabilities.tsv"
VALIDATION_TEXT_PROBABILITIES = "validation-text-probabilities.tsv"  # a student reading each premise alone
CV_REPORT_NAME = "cv-report.json"
CV_REPORT_MARKDOWN_NAME = "cv-report.md"
BEST_NAME = "best"
#: ``argvalues train --distill``: the fold ensemble's student, ``student/best`` (what export takes).
STUDENT_NAME = "student"
FOLDS_NAME = "folds"
#: ``argvalues train --views``: the run of each other input view, ``views/TEMPLATE``.
VIEWS_NAME = "views"
FOLD_PREFIX = "fold-"
FOLD_MODEL_NAME = "model"
FOLD_RECORD_NAME = "record.json"
FOLD_PROBABILITIES_NAME = "held-out-probabilities.npy"
EPOCHS_NAME = "epochs.json"
CHECKPOINTS_NAME = "checkpoints"
CV_SUMMARY_NAME = "cv-summary.json"
PARITY_SAMPLE_NAME = "parity-sample.tsv"
PARITY_LABELS_NAME = "parity-labels.tsv"
#: Held-out arguments kept with the best checkpoint: export checks every variant on them. The
#: int8 gate compares official F1 on this sample within 0.005; on 256 rows that macro F1 moved by
#: 0.012 between two runs whose int8 models lose 0.002 and 0.003 on the whole validation set.
PARITY_SAMPLE_ROWS = 1024


def write_probabilities(path: Path, ids: pd.Series, probabilities: np.ndarray, extra: dict | None = None) -> None:
    """A probabilities TSV: ``Argument ID``, the ``extra`` columns (e.g. ``fold``), the 20 labels."""
    frame = pd.DataFrame(probabilities, columns=LABELS)
    for position, (name, values) in enumerate((extra or {}).items()):
        frame.insert(position, name, values)
    frame.insert(0, ID_COLUMN, ids.to_numpy())
    frame.to_csv(path, sep="\t", index=False, float_format="%.6f")


@dataclass(frozen=True)
class CheckpointDir:
    """A checkpoint ready for export, with the records of the run that made it."""

    path: Path

    @property
    def parity_sample(self) -> Path:
        return self.path / PARITY_SAMPLE_NAME

    @property
    def parity_labels(self) -> Path:
        return self.path / PARITY_LABELS_NAME

    @property
    def summary_path(self) -> Path:
        return self.path / CV_SUMMARY_NAME

    def has_scoring_config(self) -> bool:
        return (self.path / SCORING_CONFIG_NAME).is_file()

    def write_parity_sample(self, arguments: pd.DataFrame, targets: np.ndarray) -> None:
        """Held-out arguments and their 0/1 labels, for export's checks."""
        arguments[ARGUMENT_COLUMNS].to_csv(self.parity_sample, sep="\t", index=False)
        labels = pd.DataFrame(targets.astype(int), columns=LABELS)
        labels.insert(0, ID_COLUMN, arguments[ID_COLUMN].to_numpy())
        labels.to_csv(self.parity_labels, sep="\t", index=False)

    def copy_parity_sample_from(self, other: CheckpointDir) -> None:
        for source, target in ((other.parity_sample, self.parity_sample), (other.parity_labels, self.parity_labels)):
            if source.is_file():
                shutil.copy2(source, target)

    def parity_arguments(self) -> pd.DataFrame | None:
        """The saved held-out arguments, or None when the checkpoint carries none."""
        return read_arguments(self.parity_sample) if self.parity_sample.is_file() else None

    def parity_truth(self, arguments: pd.DataFrame) -> np.ndarray | None:
        """The labels of ``arguments`` from the saved parity labels (for the official F1 of each
        variant), or None when they are not saved or do not cover every argument."""
        if not self.parity_labels.is_file():
            return None
        labels = read_labels(self.parity_labels).set_index(ID_COLUMN)
        if not arguments[ID_COLUMN].isin(labels.index).all():
            return None
        return labels.loc[arguments[ID_COLUMN], LABELS].to_numpy()

    def write_summary(self, summary: dict) -> None:
        """``cv-summary.json``: what the export manifest records of the run ("cv")."""
        write_atomically(self.summary_path, json.dumps(summary, indent=2, default=float).encode())

    def read_summary(self) -> dict | None:
        return json.loads(self.summary_path.read_text()) if self.summary_path.is_file() else None


@dataclass(frozen=True)
class FoldDir:
    """``folds/fold-K``: one fold's best checkpoint, its record and its held-out probabilities."""

    path: Path
    number: int

    @property
    def model(self) -> Path:
        return self.path / FOLD_MODEL_NAME

    @property
    def checkpoints(self) -> Path:
        """The Trainer's epoch checkpoints while the fold trains."""
        return self.path / CHECKPOINTS_NAME

    @property
    def record_path(self) -> Path:
        return self.path / FOLD_RECORD_NAME

    @property
    def probabilities_path(self) -> Path:
        return self.path / FOLD_PROBABILITIES_NAME

    @property
    def epochs_path(self) -> Path:
        return self.path / EPOCHS_NAME

    def is_finished(self) -> bool:
        return self.record_path.is_file() and (self.model / "model.safetensors").is_file()

    def read_record(self) -> dict:
        return json.loads(self.record_path.read_text())

    def save_finished(self, record: dict, probabilities: np.ndarray) -> None:
        """The record is written last: its presence means the fold is complete."""
        temporary = self.path / (FOLD_PROBABILITIES_NAME + ".tmp")
        with open(temporary, "wb") as handle:
            np.save(handle, probabilities, allow_pickle=False)
        temporary.replace(self.probabilities_path)
        write_json_atomically(self.record_path, record)

    def load_finished(self, rows: int) -> tuple[dict, np.ndarray] | None:
        """The record and held-out probabilities of a finished fold of ``rows`` held-out arguments;
        None when the fold is unfinished or held out other rows."""
        if not self.is_finished():
            return None
        probabilities = np.load(self.probabilities_path, allow_pickle=False)
        if probabilities.shape != (rows, len(LABELS)):
            return None
        return self.read_record(), probabilities

    def write_epochs(self, epochs: list[dict]) -> None:
        """The metrics of every evaluated epoch so far, written before the epoch's checkpoint, so
        that ``--resume`` finds them for any checkpoint it continues from."""
        write_json_atomically(self.epochs_path, epochs)

    def read_epochs(self) -> list[dict]:
        return json.loads(self.epochs_path.read_text()) if self.epochs_path.is_file() else []

    def discard_training_files(self) -> None:
        shutil.rmtree(self.checkpoints, ignore_errors=True)
        self.epochs_path.unlink(missing_ok=True)


def _fold_number(path: Path) -> int | None:
    suffix = path.name.removeprefix(FOLD_PREFIX)
    return int(suffix) if path.name.startswith(FOLD_PREFIX) and suffix.isdigit() else None


@dataclass(frozen=True)
class RunDir:
    """A training run's directory (see the module docstring for its layout)."""

    path: Path

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    @classmethod
    def of_checkpoint(cls, checkpoint: Path) -> RunDir | None:
        """The run whose ``best/`` ``checkpoint`` is, if it is one (a finished run has its report)."""
        run = cls(checkpoint.parent)
        return run if (run.path / CV_REPORT_NAME).is_file() else None

    @property
    def config_path(self) -> Path:
        return self.path / RUN_CONFIG_NAME

    @property
    def oof_path(self) -> Path:
        return self.path / OOF_PROBABILITIES_NAME

    @property
    def validation_probabilities_path(self) -> Path:
        return self.path / VALIDATION_PROBABILITIES_NAME

    @property
    def best(self) -> CheckpointDir:
        return CheckpointDir(self.path / BEST_NAME)

    @property
    def student(self) -> CheckpointDir:
        return CheckpointDir(self.path / STUDENT_NAME / BEST_NAME)

    def view(self, template: str) -> RunDir:
        """The run of the input view ``template`` trained beside this one."""
        return RunDir(self.path / VIEWS_NAME / template)

    def fold(self, number: int) -> FoldDir:
        return FoldDir(self.path / FOLDS_NAME / f"{FOLD_PREFIX}{number}", number)

    def finished_folds(self) -> list[FoldDir]:
        """Every finished fold of the run, in fold order."""
        numbers = sorted(n for p in (self.path / FOLDS_NAME).glob(f"{FOLD_PREFIX}*")
                         if (n := _fold_number(p)) is not None)
        return [fold for fold in map(self.fold, numbers) if fold.is_finished()]

    def write_config(self, config: TrainConfig) -> None:
        write_json_atomically(self.config_path, {k: v for k, v in config.to_dict().items() if k != "resume"})

    def recorded_options(self) -> dict | None:
        """The options the run recorded, as they were (options it predates: as they were before they
        existed); None when it recorded none."""
        if not self.config_path.is_file():
            return None
        options = {**BEFORE_OPTIONS_EXISTED, **json.loads(self.config_path.read_text())}
        for name in ("arguments", "labels"):  # one path each, before several pairs were allowed
            options[name] = as_list(options.get(name))
        return options

    def config(self) -> TrainConfig:
        """The run's configuration (``TrainConfig.from_dict`` of its run-config.json)."""
        return TrainConfig.from_dict(json.loads(self.config_path.read_text()))

    def is_finished(self) -> bool:
        return self.config_path.is_file() and self.oof_path.is_file()

    def write_out_of_fold(self, ids: pd.Series, probabilities: np.ndarray, folds: np.ndarray) -> None:
        write_probabilities(self.oof_path, ids, probabilities, {"fold": folds})

    def read_out_of_fold(self) -> pd.DataFrame:
        """The out-of-fold probabilities, indexed by argument ID, with each argument's ``fold``."""
        return pd.read_csv(self.oof_path, sep="\t", dtype={ID_COLUMN: str}).set_index(ID_COLUMN)


#: What a run's fold models must share with the other runs of one ensemble: the scorer feeds every
#: member the same tokens, built by one template, one tokenizer and one length limit.
SHARED_INPUT = ("model", "template", "max_length")


def check_joinable(runs: list[RunDir], same_input: bool = True) -> None:
    """Refuses unfinished runs, and (``same_input``) runs whose members would need different inputs:
    one exported ensemble feeds every member the same tokens. A student learns the joined
    probabilities through its own input, so for distillation the runs may read the arguments
    differently (other templates: an ensemble over input views)."""
    for run in runs:
        if not run.is_finished():
            raise ModelDirError(f"{run.path}: not a finished training run "
                                f"(no {RUN_CONFIG_NAME} or {OOF_PROBABILITIES_NAME})")
    if not same_input:
        return
    first = runs[0].recorded_options()
    for run in runs[1:]:
        options = run.recorded_options()
        differing = [key for key in SHARED_INPUT if options.get(key) != first.get(key)]
        if differing:
            raise ModelDirError(f"cannot join {run.path} to {runs[0].path}: " + ", ".join(
                f"{key} {options.get(key)!r} vs {first.get(key)!r}" for key in differing))


def mean_out_of_fold(run_paths: list[str | Path], same_input: bool = True) -> pd.DataFrame:
    """The mean of the runs' out-of-fold probabilities, one row per argument (indexed by its ID, in
    the first run's order), with the first run's ``fold`` of each argument.

    Every argument's out-of-fold probability in each run comes from a model that did not train on
    it, so their mean is what the joined ensemble would have said without seeing it (the runs may
    split the folds differently).
    """
    runs = [RunDir(path) for path in run_paths]
    check_joinable(runs, same_input)
    frames = [run.read_out_of_fold() for run in runs]
    for run, frame in zip(runs[1:], frames[1:]):
        if len(frame) != len(frames[0]) or not frame.index.isin(frames[0].index).all():
            raise ModelDirError(f"cannot join {run.path} to {runs[0].path}: their out-of-fold predictions cover "
                                "different arguments (trained on different data or --limit)")
    order = frames[0].index
    mean = frames[0][["fold"]].copy()
    mean[LABELS] = np.mean([frame.loc[order, LABELS].to_numpy(dtype=np.float64) for frame in frames], axis=0)
    return mean


def joined_out_of_fold(run_paths: list[str | Path], same_input: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets, the runs' mean out-of-fold probabilities (:func:`mean_out_of_fold`) and the first
    run's folds. The targets are read from the labels the first run trained on."""
    mean = mean_out_of_fold(run_paths, same_input)
    first = RunDir(run_paths[0])
    config = first.config()
    try:
        arguments, targets = read_training_pairs(config.arguments, config.labels)
    except (OSError, ArgvaluesError) as error:
        raise ModelDirError(f"{first.path}: the training labels are needed to choose the joined ensemble's "
                            f"thresholds and could not be read: {error}") from None
    row_of = pd.Series(np.arange(len(arguments)), index=arguments[ID_COLUMN].astype(str))
    return targets[row_of.loc[mean.index].to_numpy()], mean[LABELS].to_numpy(), mean["fold"].to_numpy()


def joined_thresholds(run_paths: list[str | Path], strategy: str, same_input: bool = True) -> dict:
    """Thresholds for the mean of several runs' fold models, chosen on their joined out-of-fold
    predictions as a single run chooses its own (``choose_thresholds``)."""
    from argvalues.metrics import choose_thresholds

    targets, probabilities, folds = joined_out_of_fold(run_paths, same_input)
    return choose_thresholds(targets, probabilities, folds, strategy)
