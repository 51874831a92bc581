"""The output library both scoring engines write through; an engine is only its loop.

An engine (:mod:`scorer.score` in this process, :mod:`scorer.ray_engine` on Ray) turns its inputs
into :class:`ScoredChunk` objects, in input order, and hands them to :func:`write_scores`.
Everything about where they go is decided here, once:

* the checks made before any row is read (:func:`check_inputs`; where ``-o`` and ``--rejects``
  point, and the rejects-file rule, are :mod:`scorer.target`'s), and the lock that keeps a second
  run off an output being written (:func:`claim`);
* the scores format (:class:`TsvScores`; a writer for another format provides the same three
  methods);
* the targets: :class:`FileOutput` (``-o OUT``: written beside the target, journaled after every
  chunk so ``--resume`` continues a crashed run, renamed into place with its sidecar
  ``OUT.meta.json`` when complete) and
  :class:`StreamOutput` (standard output; its rejects file is still renamed into place);
* ``--max-bad-rows``, and what a failure leaves behind, and the one-line errors Ctrl-C, SIGTERM
  and write errors become.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Protocol

import numpy as np
import pandas as pd

from argvalues.contract import ID_COLUMN
from argvalues.digest import sha256_of
from argvalues.errors import (
    ArgvaluesError,
    DataError,
    Interrupted,
    NothingScored,
    OutputError,
    RunFailed,
    Terminated,
    TerminateSignal,
)
from argvalues.files import fsync_directory, write_atomically
from argvalues.metrics import apply_thresholds
from argvalues.rows import REJECTS_HEADER, Reject
from argvalues.variants import onnx_files
from scorer.journal import Journal, Progress, partial_path, sync_files
from scorer.lock import OutputLock
from scorer.meta import sidecar, utc_now
from scorer.options import BadRowLimit, ScoreOptions, ScoreStats
from scorer.target import Destination, as_destination
from scorer.windows import LengthCounts


@dataclass
class ScoredChunk:
    """One reader chunk, scored: the IDs and values of its good rows, its rejects, and where the
    next chunk starts in the engine's own terms (journaled, so ``--resume`` can start there)."""

    ids: np.ndarray
    values: np.ndarray
    rejects: list[Reject]
    position: object = None
    kept: pd.DataFrame | None = None  # the --keep-columns values of the good rows
    lengths: LengthCounts = field(default_factory=LengthCounts)  # long rows, windows, cut rows


class TsvScores:
    """The scores format: a header (``Argument ID``, the ``--keep-columns``, the labels), then one
    tab-separated line per row; probabilities with six decimals. No quoting, as in the input: the
    reader refuses IDs and kept values holding a tab or a line break when the output is TSV. (The
    other formats: :mod:`scorer.output_formats`.)"""

    def __init__(self, labels: list[str], kept_columns: list[str] | tuple[str, ...] = ()):
        self.labels = labels
        self.kept_columns = list(kept_columns)

    def header(self) -> bytes:
        return header_line(self.labels, self.kept_columns).encode()

    def rows(self, ids, values: np.ndarray, kept: pd.DataFrame | None = None) -> bytes:
        return format_rows(ids, values, self.labels, kept).encode()

    @staticmethod
    def read_ids(handle: IO[bytes], size: int | None = None) -> Iterator[str]:
        """The Argument IDs in written output (header first), in order, up to byte ``size``."""
        handle.readline()
        while size is None or handle.tell() < size:
            line = handle.readline()
            if not line:
                return
            yield line.split(b"\t", 1)[0].decode()

    @classmethod
    def ids(cls, data: bytes) -> list[str]:
        return list(cls.read_ids(io.BytesIO(data)))


def output_values(model, probabilities: np.ndarray, options: ScoreOptions) -> np.ndarray:
    """What the output holds for these rows of ``model`` (a :class:`~scorer.model.ScoringModel`):
    probabilities, or 0/1 at the chosen thresholds."""
    if options.probabilities:
        return probabilities
    thresholds = model.thresholds if options.threshold is None else np.float32(options.threshold)
    return apply_thresholds(probabilities, thresholds)


def header_line(labels: list[str], kept_columns: list[str] | tuple[str, ...] = ()) -> str:
    return "\t".join([ID_COLUMN, *kept_columns] + labels) + "\n"


def scores_frame(ids, values: np.ndarray, labels: list[str], kept: pd.DataFrame | None = None) -> pd.DataFrame:
    """One chunk's output columns, in every format's order: Argument ID, the kept input columns, the labels."""
    out = pd.DataFrame(values, columns=labels)
    if kept is not None:
        for position, column in enumerate(kept.columns):
            out.insert(position, column, kept[column].to_numpy())
    out.insert(0, ID_COLUMN, np.asarray(ids))
    return out


def format_rows(ids, values: np.ndarray, labels: list[str], kept: pd.DataFrame | None = None) -> str:
    """Output lines (no header) for these IDs, kept values and values."""
    if len(ids) == 0:
        return ""
    out = scores_frame(ids, values, labels, kept)
    # QUOTE_NONE: a quote in an ID is written as it was read (TSV quotes nothing)
    return out.to_csv(sep="\t", index=False, header=False, float_format="%.6f", lineterminator="\n",
                      quoting=csv.QUOTE_NONE)


# -- before any row is read ------------------------------------------------------------------------

def check_inputs(inputs: list[str], engine: str = "local") -> None:
    """Refuse what no engine run could read: no input, missing files, standard input twice (or at
    all, on Ray, whose inputs may also be directories and URIs)."""
    if engine == "ray":
        if not inputs:
            raise ArgvaluesError("no input given; pass TSV files, directories of them, or URIs Ray can read")
        if "-" in inputs:
            raise ArgvaluesError("--engine ray reads files, directories or URIs, not standard input (-)")
        for source in inputs:
            if "://" not in source and not Path(source).exists():
                raise DataError(f"{source}: no such file or directory")
        return
    if not inputs:
        raise ArgvaluesError("no input file given; pass one or more files (TSV, CSV, JSON lines, Parquet), or - for "
                             "standard input")
    for source in inputs:
        if source != "-" and not Path(source).is_file():
            raise DataError(f"{source}: no such file")
    if inputs.count("-") > 1:
        raise ArgvaluesError("standard input (-) can be read only once")


def claim(target: Path | None) -> contextlib.AbstractContextManager:
    """Hold ``target``'s lock for the run (:mod:`scorer.lock`; a stream needs none): a second
    run on the same ``-o`` is refused at once with :class:`~argvalues.errors.OutputBusy`."""
    return OutputLock(target) if target is not None else contextlib.nullcontext()


def model_fingerprint(model_dir: Path, onnx_path: Path, side_files: Iterable[str]) -> dict[str, str]:
    """sha256 of the model files a run reads: the variant's ONNX files and the side files present."""
    paths = [*onnx_files(onnx_path), *(model_dir / name for name in side_files)]
    return {path.name: sha256_of(path) for path in paths if path.is_file()}


def input_fingerprint(path: str) -> dict:
    if path == "-":
        return {"path": "-"}  # standard input is read once and cannot be fingerprinted beforehand
    return {"path": str(Path(path).resolve()), "bytes": Path(path).stat().st_size, "sha256": sha256_of(Path(path))}


def stopped(stop: KeyboardInterrupt, detail: str) -> Interrupted:
    """Ctrl-C (or SIGTERM, raised as :class:`TerminateSignal`) as the one-line error with its exit code."""
    kind = Terminated if isinstance(stop, TerminateSignal) else Interrupted
    return kind(f"{kind.__name__.lower()} {detail}")


# -- the targets -------------------------------------------------------------------------------------

class ScoresOutput(Protocol):
    """Where :func:`write_scores` puts scored chunks."""

    complete: bool  # everything is already in place (a resumed run that had finished)

    def open(self) -> None: ...
    def write(self, chunk: ScoredChunk, stats: ScoreStats) -> None: ...
    def finish(self, stats: ScoreStats) -> None: ...
    def close(self) -> None: ...
    def failure(self, error: BaseException, stats: ScoreStats) -> BaseException:
        """Clean up after ``error`` and return what to raise (``error`` itself, or its one-line form)."""


def write_scores(output: ScoresOutput, chunks: Iterable[ScoredChunk], stats: ScoreStats,
                 on_chunk: Callable[[int], object] | None = None, limit: BadRowLimit | None = None) -> ScoreStats:
    """Write ``chunks`` to ``output`` and put it in place, unless more rows were rejected than
    ``limit`` allows; on failure, ``output`` decides what stays."""
    try:
        try:
            output.open()
            for chunk in chunks:
                output.write(chunk, stats)
                if limit:
                    limit.check(stats, final=False)
                if on_chunk:
                    on_chunk(len(chunk.ids))
            if limit:
                limit.check(stats, final=True)
            check_something_scored(stats)
            output.finish(stats)
        finally:
            output.close()
    except BaseException as error:
        raised = output.failure(error, stats)
        if raised is error:
            raise
        raise raised from None
    return stats


def check_something_scored(stats: ScoreStats) -> None:
    """A run whose every row was rejected fails (exit 3, nothing published), whatever
    ``--max-bad-rows`` allows: a nightly job that scored nothing is no success. An input with a
    header and no rows rejects nothing and still gives a header-only output."""
    if stats.rows == 0 and stats.rejected:
        first = f"; the first: {stats.first_rejects[0].message()}" if stats.first_rejects else ""
        raise NothingScored(f"every row was rejected ({stats.rejected} bad row(s)), so nothing was scored and nothing "
                            f"is published{first}")


def _open_partial(path: Path, keep_bytes: int, header: bytes) -> IO[bytes]:
    """Open a partial file for appending after its first ``keep_bytes`` bytes (a new file: the header)."""
    if keep_bytes:
        handle = open(path, "r+b")
        handle.truncate(keep_bytes)
        handle.seek(keep_bytes)
        return handle
    handle = open(path, "wb")
    handle.write(header)
    return handle


def _rejects_lines(rejects: list[Reject]) -> bytes:
    return "".join(r.tsv_line() for r in rejects).encode()


class PartialRejects:
    """The rejects file of an output that is never resumed (a stream, Parquet): it grows beside its
    target, is renamed into place when the run completes and removed when it fails. A stream
    destination (``--rejects /dev/stderr``) is written in order instead, with nothing beside it."""

    def __init__(self, target: Destination | Path | None):
        self.destination = as_destination(target)
        self.target = self.destination.path if self.destination and not self.destination.is_stream else None
        self.partial = partial_path(self.target) if self.target else None
        self._handle: IO[bytes] | None = None

    def open(self) -> None:
        if self.destination is not None and self.destination.is_stream:
            self._handle = self.destination.open_stream()
            self._handle.write(REJECTS_HEADER.encode())
        elif self.partial:
            self.partial.parent.mkdir(parents=True, exist_ok=True)
            self._handle = _open_partial(self.partial, 0, REJECTS_HEADER.encode())

    def write(self, rejects: list[Reject]) -> None:
        if self._handle and rejects:
            self._handle.write(_rejects_lines(rejects))
            if self.partial is None:
                self._handle.flush()

    def finish(self) -> None:
        if self._handle and self.partial is None:
            self.close()
        elif self._handle:
            sync_files(self._handle)
            self.close()
            os.replace(self.partial, self.target)
            fsync_directory(self.target.parent)

    def close(self) -> None:
        if self._handle:
            handle, self._handle = self._handle, None
            handle.close()

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.close()
        if self.partial:
            self.partial.unlink(missing_ok=True)


class StreamOutput:
    """A stream, which cannot be taken back: standard output, or what ``-o`` names when it is a
    device, a FIFO or a socket (:mod:`scorer.target`), opened when the run starts. The header goes
    out with the first scored row (so input that fails at once, or whose every row is rejected,
    writes nothing) and each chunk is flushed as it is scored. The rejects file, if any, is
    written beside its target and renamed into place at the end."""

    complete = False  # nothing to resume: always written from the start

    def __init__(self, stream: IO[bytes] | Destination, rejects: Destination | Path | None, scores: TsvScores):
        self.destination = stream if isinstance(stream, Destination) else None
        self.stream = None if self.destination else stream
        self.scores = scores
        self.rejects = PartialRejects(rejects)
        self._header = scores.header()

    def open(self) -> None:
        if self.destination is not None:
            self.stream = self.destination.open_stream()
        self.rejects.open()

    def write(self, chunk: ScoredChunk, stats: ScoreStats) -> None:
        if len(chunk.ids):
            self.stream.write(self._header + self.scores.rows(chunk.ids, chunk.values, chunk.kept))
            self.stream.flush()
            self._header = b""
        stats.record_rejects(chunk.rejects)
        stats.lengths.add(chunk.lengths)
        self.rejects.write(chunk.rejects)
        stats.rows += len(chunk.ids)

    def finish(self, stats: ScoreStats) -> None:
        self.stream.write(self._header)
        self.stream.flush()
        self.rejects.finish()

    def close(self) -> None:
        self.rejects.close()
        if self.destination is not None and self.stream is not None:
            stream, self.stream = self.stream, None
            stream.close()

    def failure(self, error: BaseException, stats: ScoreStats) -> BaseException:
        """Nothing written to a stream can be resumed: the rejects file goes too. A write error is
        left to the command's edge (a closed pipe is no error at all)."""
        self.rejects.discard()
        if self.destination is not None and self.stream is not None:
            with contextlib.suppress(OSError):
                self.close()
        if isinstance(error, KeyboardInterrupt):
            return stopped(error, f"after {stats.rows} rows")
        if isinstance(error, OSError) and not isinstance(error, BrokenPipeError) and self.destination is not None:
            return OutputError(f"cannot write {self.destination.given}: {error.strerror or error}")
        return error


def binary_stdout() -> IO[bytes]:
    sys.stdout.flush()
    return sys.stdout.buffer


class FileOutput:
    """``-o OUT``: the output (and the rejects file) grow beside their targets, are journaled after
    every chunk and are renamed into place only when complete (:mod:`scorer.journal`). Rejects
    sent to a stream (``--rejects /dev/stderr``) go out as they come, outside the journal."""

    def __init__(self, target: Path, rejects: Destination | Path | None, fingerprint: dict, scores: TsvScores,
                 log=None, run: dict | None = None):
        """``run``: what produced the output, for the sidecar (:func:`scorer.meta.sidecar`; None: no sidecar)."""
        self.target, self.scores, self.log, self.run = target, scores, log or (lambda _: None), run
        rejects = as_destination(rejects)
        self.stream_rejects = PartialRejects(rejects) if rejects is not None and rejects.is_stream else None
        self.journal = Journal(target, None if self.stream_rejects else rejects and rejects.path, fingerprint)
        self.progress = Progress()
        self.complete = False
        self.resumed = False
        self._output: IO[bytes] | None = None
        self._rejects: IO[bytes] | None = None

    @property
    def rejects_target(self) -> Path | str | None:
        """Where rejected rows went: the rejects file, or the stream's name (``/dev/stderr``)."""
        return self.stream_rejects.destination.given if self.stream_rejects else self.journal.rejects_target

    def begin(self, resume: bool, stats: ScoreStats) -> Progress:
        """Take up an unfinished run's progress (``resume``), or start afresh; ``self.complete``
        tells that the run had already written everything (it is then put in place)."""
        self.target.parent.mkdir(parents=True, exist_ok=True)
        journal, done = self.journal, Progress()
        if resume and journal.exists():
            done = journal.load()
            stats.rows = stats.resumed_rows = done.rows
            stats.rejected = done.rejected
            stats.lengths = LengthCounts(**(done.lengths or {}))
            if journal.finished:  # it stopped while renaming its finished files into place
                journal.finish(done)
                self.complete = True
                self.log(f"{self.target} was already complete ({done.rows} rows)")
                return done
            self.log(f"resuming {self.target}: {done.rows} rows already scored")
            self.resumed = True
        else:
            if journal.exists():
                self.log(f"note: starting {self.target} over; an unfinished run's progress is discarded "
                         f"(--resume continues it)")
            if resume:
                self.log(f"nothing to resume for {self.target}; starting from the beginning")
        journal.started = journal.started or utc_now()
        self.progress = done
        return done

    def open(self) -> None:
        journal, done = self.journal, self.progress
        self._output = _open_partial(journal.partial, done.output_bytes, self.scores.header())
        if journal.rejects_partial:
            self._rejects = _open_partial(journal.rejects_partial, done.rejects_bytes, REJECTS_HEADER.encode())
        if self.stream_rejects:
            self.stream_rejects.open()
        if done.output_bytes == 0:  # a fresh start: record the header as the first progress
            sync_files(self._output, self._rejects)  # the journal may record only bytes already on disk
            done.output_bytes = self._output.tell()
            done.rejects_bytes = self._rejects.tell() if self._rejects else 0
            journal.save(done)

    def write(self, chunk: ScoredChunk, stats: ScoreStats) -> None:
        self._output.write(self.scores.rows(chunk.ids, chunk.values, chunk.kept))
        stats.record_rejects(chunk.rejects)
        stats.lengths.add(chunk.lengths)
        if self._rejects and chunk.rejects:
            self._rejects.write(_rejects_lines(chunk.rejects))
        if self.stream_rejects:
            self.stream_rejects.write(chunk.rejects)
        sync_files(self._output, self._rejects)
        stats.rows += len(chunk.ids)
        self.progress = Progress(position=chunk.position, output_bytes=self._output.tell(),
                                 rejects_bytes=self._rejects.tell() if self._rejects else 0, rows=stats.rows,
                                 rejected=stats.rejected, lengths=asdict(stats.lengths))
        self.journal.save(self.progress)

    def written_ids(self) -> Iterator[str]:
        """The IDs an interrupted run wrote before this one took it up, in order."""
        if self.progress.output_bytes:
            with open(self.journal.partial, "rb") as handle:
                yield from self.scores.read_ids(handle, self.progress.output_bytes)

    def finish(self, stats: ScoreStats) -> None:
        if self.stream_rejects:
            self.stream_rejects.finish()
        self.close()
        journal = self.journal
        if self.run is not None:
            write_atomically(journal.meta_partial, sidecar(
                self.run, self.target, journal.partial, self.rejects_target, stats.rows, stats.rejected,
                journal.started, self.resumed, stats.long_texts()))
        journal.finish(self.progress)

    def close(self) -> None:
        for handle in (self._output, self._rejects):
            if handle is not None:
                handle.close()
        if self.stream_rejects:
            with contextlib.suppress(OSError):
                self.stream_rejects.close()

    def failure(self, error: BaseException, stats: ScoreStats) -> BaseException:
        """Bad input or options fail the same way on every retry: everything goes. Ctrl-C, SIGTERM,
        a write error or a crash keep the partial files and the journal for ``--resume``."""
        self.close()
        if isinstance(error, ArgvaluesError) and not error.keeps_progress:
            self.journal.discard()
        if isinstance(error, KeyboardInterrupt):
            return stopped(error, f"after {stats.rows} rows; nothing is at {self.target}. "
                                  f"Rerun with --resume to continue from there")
        if isinstance(error, RunFailed):
            return RunFailed(f"{error}; nothing is at {self.target}. {stats.rows} rows are kept: rerun with --resume "
                             f"to continue")
        if isinstance(error, OSError):
            return OutputError(f"cannot write {self.journal.partial}: {error.strerror or error}; nothing is at "
                               f"{self.target}. {stats.rows} rows are kept: free space and rerun with --resume to "
                               f"continue")
        return error
