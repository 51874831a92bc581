"""What a scoring run is asked to do (:class:`ScoreOptions`) and what it reports (:class:`ScoreStats`),
the same for both engines."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import argvalues
from argvalues.contract import ARGUMENT_COLUMNS, ID_COLUMN, LABELS, PREMISE
from argvalues.errors import ArgvaluesError, TooManyBadRows
from argvalues.formats import FORMATS
from argvalues.model_config import ARGUMENTS, TEXT
from argvalues.rows import ON_BAD_ROW, Reject
from scorer.windows import DEFAULT_MAX_WINDOWS, DEFAULT_WINDOW_TOKENS, LONG_TEXT, MIN_WINDOW, LengthCounts

OUTPUT_FORMATS = ("tsv", "csv", "jsonl", "parquet")
DEFAULT_MODEL_DIR = "argvalues-model"
MODEL_ENV = "ARGVALUES_MODEL"
#: The model shipped in the package (docs/model.md): score's model when neither
#: --model, $ARGVALUES_MODEL nor ./argvalues-model names another.
PACKAGED_MODEL_DIR = Path(argvalues.__file__).resolve().parent / "packaged_model"


def default_model_dir() -> str:
    """``$ARGVALUES_MODEL``, else ``./argvalues-model`` (where ``argvalues export`` writes by default)
    when it exists, else the model that ships inside the package (:data:`PACKAGED_MODEL_DIR`)."""
    if MODEL_ENV in os.environ:
        return os.environ[MODEL_ENV]
    if os.path.isdir(DEFAULT_MODEL_DIR) or not PACKAGED_MODEL_DIR.is_dir():
        return DEFAULT_MODEL_DIR
    return str(PACKAGED_MODEL_DIR)


@dataclass(frozen=True)
class BadRowLimit:
    """``--max-bad-rows``: at most ``count`` rejected rows, or at most ``percent`` of the rows read."""

    count: int | None = None
    percent: float | None = None

    @classmethod
    def parse(cls, text: str) -> BadRowLimit:
        """``"10"`` (rows) or ``"0.5%"`` (of the rows read)."""
        try:
            limit = cls(percent=float(text[:-1])) if text.endswith("%") else cls(count=int(text))
        except ValueError:
            limit = None
        if limit is None or (limit.count or 0) < 0 or not 0 <= (limit.percent or 0) <= 100:
            raise ArgvaluesError(f"--max-bad-rows takes a number of rows (10) or a percentage of the rows read "
                                 f"(0.5%), got {text!r}")
        return limit

    def check(self, stats: ScoreStats, final: bool) -> None:
        """Raise :class:`TooManyBadRows` once the rejects exceed the limit. A count is checked after
        every chunk (no need to score the rest); a percentage only at the end, over every row read."""
        read = stats.rows + stats.rejected
        over = (self.count is not None and stats.rejected > self.count) or (
            final and self.percent is not None and stats.rejected > read * self.percent / 100)
        if over:
            allowed = f"{self.count}" if self.count is not None else f"{self.percent:g}% of {read} read"
            first = f"; the first: {stats.first_rejects[0].message()}" if stats.first_rejects else ""
            raise TooManyBadRows(f"{stats.rejected} bad row(s) rejected, more than --max-bad-rows allows "
                                 f"({allowed}){first}")


@dataclass
class ScoreOptions:
    model_dir: str = DEFAULT_MODEL_DIR
    threshold: float | None = None
    batch_size: int = 64
    batch_tokens: int | None = None  # None: a token budget on CUDA (scorer/batching.py), --batch-size on the CPU
    device: str = "auto"
    probabilities: bool = False
    chunk_rows: int = 8192
    threads: int | None = None
    variant: str = "auto"
    prefetch: bool | None = None  # None: on from 4 cores up
    on_bad_row: str = "fail"
    rejects: str | None = None
    resume: bool = False
    #: Reading: the input format (None: by extension), template field -> the input's column name,
    #: the ID column (None: 'Argument ID', else row numbers), input columns carried to the output.
    input_format: str | None = None
    columns: dict = field(default_factory=dict)
    id_column: str | None = None
    keep_columns: list = field(default_factory=list)
    output_format: str = "tsv"
    max_bad_rows: str | None = None  # "N" rows or "N%" of the rows read; with on_bad_row="skip"
    #: A text alone in this input column (None: arguments, through the model's template).
    text_column: str | None = None
    #: Rows longer than the model's max length: overlapping windows, or cut (scorer.windows).
    long_text: str = "windows"
    max_windows: int = DEFAULT_MAX_WINDOWS
    window_tokens: int = DEFAULT_WINDOW_TOKENS

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ArgvaluesError(f"--threshold must lie in [0, 1], got {self.threshold}")
        if self.batch_size < 1:
            raise ArgvaluesError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.batch_tokens is not None and self.batch_tokens < 0:
            raise ArgvaluesError(f"--batch-tokens must not be negative, got {self.batch_tokens}")
        if self.chunk_rows < 1:
            raise ArgvaluesError(f"chunk size must be at least 1, got {self.chunk_rows}")
        if self.on_bad_row not in ON_BAD_ROW:
            raise ArgvaluesError(f"--on-bad-row must be one of {ON_BAD_ROW}, got {self.on_bad_row!r}")
        if self.input_format is not None and self.input_format not in FORMATS:
            raise ArgvaluesError(f"--format must be one of {list(FORMATS)}, got {self.input_format!r}")
        if self.output_format not in OUTPUT_FORMATS:
            raise ArgvaluesError(f"--output-format must be one of {list(OUTPUT_FORMATS)}, got {self.output_format!r}")
        if self.output_format == "parquet" and self.resume:
            raise ArgvaluesError("--resume cannot continue a Parquet output (its footer is written last, so a file "
                                 "cut off by a crash cannot be appended to); write jsonl, csv or tsv for a resumable job")
        for name, value in self.columns.items():
            if name not in ARGUMENT_COLUMNS or name == ID_COLUMN:
                raise ArgvaluesError(f"--column {name}={value}: the fields are {ARGUMENT_COLUMNS[1:]} "
                                     f"(--id-column names the ID column)")
            if not value:
                raise ArgvaluesError(f"--column {name}=: the column name is empty")
        clash = [c for c in self.keep_columns if c == ID_COLUMN or c in LABELS]
        if clash:
            raise ArgvaluesError(f"--keep-columns {clash[0]}: the output has a column of that name already")
        if self.threshold is not None and self.probabilities:
            raise ArgvaluesError("--threshold and --probabilities do not go together: probabilities are written "
                                 "before any threshold; apply one to them afterwards, or drop --probabilities")
        if self.text_column is not None:
            if not self.text_column:
                raise ArgvaluesError("--text-column: the column name is empty")
            if self.columns:
                raise ArgvaluesError("--text-column reads a text alone; --column maps the fields of arguments "
                                     "(Premise, Stance, Conclusion): give one or the other")
        if self.long_text not in LONG_TEXT:
            raise ArgvaluesError(f"--long-text must be one of {list(LONG_TEXT)}, got {self.long_text!r}")
        if self.max_windows < 1:
            raise ArgvaluesError(f"--max-windows must be at least 1, got {self.max_windows}")
        if self.window_tokens < MIN_WINDOW:
            raise ArgvaluesError(f"--window-tokens must be at least {MIN_WINDOW}, got {self.window_tokens}")
        if self.max_bad_rows is not None:
            BadRowLimit.parse(self.max_bad_rows)
            if self.on_bad_row != "skip":
                raise ArgvaluesError("--max-bad-rows applies with --on-bad-row skip (fail stops at the first bad row)")

    @property
    def reading(self) -> str:
        """What each row is: an argument, or a text alone (``--text-column``)."""
        return TEXT if self.text_column is not None else ARGUMENTS

    @property
    def bad_row_limit(self) -> BadRowLimit | None:
        return BadRowLimit.parse(self.max_bad_rows) if self.max_bad_rows is not None else None

    def row_reading(self, required: list[str]) -> dict:
        """How :func:`argvalues.contract.argument_rows` reads the inputs for a model reading ``required``."""
        unread = [name for name in self.columns if name not in required]
        if unread:
            raise ArgvaluesError(f"--column {unread[0]}={self.columns[unread[0]]}: this model does not read "
                                 f"{unread[0]}; its template reads {[c for c in required if c != ID_COLUMN]}")
        fields = {PREMISE: self.text_column} if self.text_column is not None else self.columns
        columns = {**fields, **({ID_COLUMN: self.id_column} if self.id_column else {})}
        return dict(columns=columns, keep=list(self.keep_columns), file_format=self.input_format,
                    row_ids=self.id_column is None, one_line=self.output_format == "tsv",
                    field_names={PREMISE: "text"} if self.text_column is not None else None)

    def output_shaping(self, provider: str, variant: str, engine: str = "local") -> dict:
        """What decides the output bytes (and how a run's progress is recorded): a resumed run must
        agree on all of it."""
        keys = ("threshold", "batch_size", "batch_tokens", "probabilities", "chunk_rows", "on_bad_row", "input_format", "columns",
                "id_column", "keep_columns", "output_format", "text_column", "long_text", "max_windows",
                "window_tokens")
        return {**{k: v for k, v in asdict(self).items() if k in keys}, "provider": provider, "variant": variant,
                "engine": engine}


@dataclass
class ScoreStats:
    rows: int
    seconds: float
    provider: str
    rejected: int = 0
    resumed_rows: int = 0
    rejects_path: str | None = None
    first_rejects: list[Reject] = field(default_factory=list)
    lengths: LengthCounts = field(default_factory=LengthCounts)
    max_length: int = 0  # the model's, for the note on long rows

    @property
    def rows_per_second(self) -> float:
        scored = self.rows - self.resumed_rows
        return scored / self.seconds if self.seconds > 0 else float("inf")

    def long_texts(self) -> dict:
        """For the sidecar: the model's max length, rows longer than it, windows scored, rows cut."""
        return {"max_length": self.max_length, "rows_longer": self.lengths.long_rows,
                "windows": self.lengths.windows, "rows_cut": self.lengths.cut_rows}

    def record_rejects(self, rejects: list[Reject]) -> None:
        """Count ``rejects`` and keep the first five for the summary."""
        self.rejected += len(rejects)
        self.first_rejects.extend(rejects[: max(0, 5 - len(self.first_rejects))])


def parse_column_mappings(values: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``--column FIELD=NAME`` values as {field: name}."""
    columns: dict[str, str] = {}
    for value in values:
        field_name, equals, name = value.partition("=")
        if not equals:
            raise ArgvaluesError(f"--column {value}: expected FIELD=NAME, e.g. --column Premise=text")
        if field_name.strip() in columns:
            raise ArgvaluesError(f"--column {field_name.strip()} is given twice")
        columns[field_name.strip()] = name
    return columns
