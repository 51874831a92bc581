"""Score argument TSV files chunk by chunk: memory stays flat however large the input.

Output: ``Argument ID`` + the 20 label columns in official order (0/1, or probabilities), rows
in input order. A file target is written to a temporary file beside it and renamed into place
only when every row is written, so a failed or interrupted run leaves nothing at the target.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from argvalues.contract import ID_COLUMN, iter_argument_chunks
from argvalues.errors import ArgvaluesError, DataError
from argvalues.metrics import apply_thresholds
from scorer.model import ScoringModel

DEFAULT_MODEL_DIR = "argvalues-model"
MODEL_ENV = "ARGVALUES_MODEL"


def default_model_dir() -> str:
    """``$ARGVALUES_MODEL``, else ``./argvalues-model`` (where ``argvalues export`` writes by default)."""
    return os.environ.get(MODEL_ENV, DEFAULT_MODEL_DIR)


@dataclass
class ScoreOptions:
    model_dir: str = DEFAULT_MODEL_DIR
    threshold: float | None = None
    batch_size: int = 64
    device: str = "auto"
    probabilities: bool = False
    chunk_rows: int = 8192
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ArgvaluesError(f"--threshold must lie in [0, 1], got {self.threshold}")
        if self.batch_size < 1:
            raise ArgvaluesError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.chunk_rows < 1:
            raise ArgvaluesError(f"chunk size must be at least 1, got {self.chunk_rows}")


@dataclass
class ScoreStats:
    rows: int
    seconds: float
    provider: str

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def scored_frames(model: ScoringModel, inputs: list[str], options: ScoreOptions) -> Iterator[pd.DataFrame]:
    """Output frames, chunk by chunk, for all ``inputs`` in order."""
    thresholds = model.thresholds if options.threshold is None else np.float32(options.threshold)
    for source in inputs:
        for chunk in iter_argument_chunks(source, model.required_columns, options.chunk_rows):
            probabilities = model.probabilities(chunk, options.batch_size)
            values = probabilities if options.probabilities else apply_thresholds(probabilities, thresholds)
            frame = pd.DataFrame(values, columns=model.labels)
            frame.insert(0, ID_COLUMN, chunk[ID_COLUMN].to_numpy())
            yield frame


def _write(frames: Iterator[pd.DataFrame], handle: IO[str], labels: list[str], progress) -> int:
    handle.write("\t".join([ID_COLUMN] + labels) + "\n")
    rows = 0
    for frame in frames:
        frame.to_csv(handle, sep="\t", index=False, header=False, float_format="%.6f", lineterminator="\n")
        rows += len(frame)
        progress.update(len(frame))
    return rows


def _progress(enabled: bool):
    from tqdm import tqdm

    return tqdm(unit=" rows", unit_scale=True, file=sys.stderr, disable=not enabled, desc="scoring")


def score_files(inputs: list[str], output: str | None, options: ScoreOptions, progress: bool = False,
                log=None, model: ScoringModel | None = None) -> ScoreStats:
    """Score ``inputs`` ('-' is standard input) into ``output`` (None: standard output)."""
    if not inputs:
        raise ArgvaluesError("no input file given; pass one or more TSV files, or - for standard input")
    for source in inputs:
        if source != "-" and not Path(source).is_file():
            raise DataError(f"{source}: no such file")
    model = model or ScoringModel(options.model_dir, options.device, options.threads)
    if log:
        log(f"scoring with {model.provider} (model {model.model_dir})")
    started = time.perf_counter()
    with _progress(progress) as bar:
        if output is None or output == "-":
            rows = _write(scored_frames(model, inputs, options), sys.stdout, model.labels, bar)
            sys.stdout.flush()
        else:
            rows = _write_atomically(Path(output), scored_frames(model, inputs, options), model.labels, bar)
    return ScoreStats(rows=rows, seconds=time.perf_counter() - started, provider=model.provider)


def _write_atomically(target: Path, frames: Iterator[pd.DataFrame], labels: list[str], progress) -> int:
    if target.is_dir():
        raise ArgvaluesError(f"{target}: is a directory; -o takes a file path")
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            rows = _write(frames, handle, labels, progress)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return rows
