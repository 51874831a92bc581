"""What a scoring run is asked to do (:class:`ScoreOptions`) and what it reports (:class:`ScoreStats`),
the same for both engines."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from argvalues.errors import ArgvaluesError, TooManyBadRows
from argvalues.rows import ON_BAD_ROW, Reject

DEFAULT_MODEL_DIR = "argvalues-model"
MODEL_ENV = "ARGVALUES_MODEL"


def default_model_dir() -> str:
    """``$ARGVALUES_MODEL``, else ``./argvalues-model`` (where ``argvalues export`` writes by default)."""
    return os.environ.get(MODEL_ENV, DEFAULT_MODEL_DIR)


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
    device: str = "auto"
    probabilities: bool = False
    chunk_rows: int = 8192
    threads: int | None = None
    variant: str = "auto"
    prefetch: bool | None = None  # None: on from 4 cores up
    on_bad_row: str = "fail"
    rejects: str | None = None
    resume: bool = False
    max_bad_rows: str | None = None  # "N" rows or "N%" of the rows read; with on_bad_row="skip"

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ArgvaluesError(f"--threshold must lie in [0, 1], got {self.threshold}")
        if self.batch_size < 1:
            raise ArgvaluesError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.chunk_rows < 1:
            raise ArgvaluesError(f"chunk size must be at least 1, got {self.chunk_rows}")
        if self.on_bad_row not in ON_BAD_ROW:
            raise ArgvaluesError(f"--on-bad-row must be one of {ON_BAD_ROW}, got {self.on_bad_row!r}")
        if self.max_bad_rows is not None:
            BadRowLimit.parse(self.max_bad_rows)
            if self.on_bad_row != "skip":
                raise ArgvaluesError("--max-bad-rows applies with --on-bad-row skip (fail stops at the first bad row)")

    @property
    def bad_row_limit(self) -> BadRowLimit | None:
        return BadRowLimit.parse(self.max_bad_rows) if self.max_bad_rows is not None else None

    def output_shaping(self, provider: str, variant: str, engine: str = "local") -> dict:
        """What decides the output bytes (and how a run's progress is recorded): a resumed run must
        agree on all of it."""
        keys = ("threshold", "batch_size", "probabilities", "chunk_rows", "on_bad_row")
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

    @property
    def rows_per_second(self) -> float:
        scored = self.rows - self.resumed_rows
        return scored / self.seconds if self.seconds > 0 else float("inf")

    def record_rejects(self, rejects: list[Reject]) -> None:
        """Count ``rejects`` and keep the first five for the summary."""
        self.rejected += len(rejects)
        self.first_rejects.extend(rejects[: max(0, 5 - len(self.first_rejects))])
