"""Score argument TSV files chunk by chunk: memory stays flat however large the input.

Output: ``Argument ID`` + the 20 label columns in official order (0/1, or probabilities), rows
in input order. A file target goes through :mod:`scorer.journal`: written beside the target,
journaled after every chunk (so ``--resume`` continues a crashed run) and renamed into place
only when every row is written. Rows that break the contract stop the run (``--on-bad-row
fail``) or are counted and written to a rejects file (``skip``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from argvalues.contract import ID_COLUMN, argument_rows
from argvalues.errors import ArgvaluesError, DataError, Interrupted, OutputError, Terminated, TerminateSignal
from argvalues.metrics import apply_thresholds
from argvalues.rows import REJECTS_HEADER, ON_BAD_ROW, Reject, SeenIds
from argvalues.digest import sha256_of
from argvalues.variants import onnx_files
from scorer.journal import Journal, Progress, sync_files
from scorer.model import TOKENIZER_NAME, ScoringModel

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

    def output_shaping(self, provider: str, variant: str) -> dict:
        """What decides the output bytes: a resumed run must agree on all of it."""
        keys = ("threshold", "batch_size", "batch_tokens", "probabilities", "chunk_rows", "on_bad_row")
        return {**{k: v for k, v in asdict(self).items() if k in keys}, "provider": provider, "variant": variant}


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


def output_values(model: ScoringModel, probabilities: np.ndarray, options: ScoreOptions) -> np.ndarray:
    """What the output holds for these rows: probabilities, or 0/1 at the chosen thresholds."""
    if options.probabilities:
        return probabilities
    thresholds = model.thresholds if options.threshold is None else np.float32(options.threshold)
    return apply_thresholds(probabilities, thresholds)


def format_rows(ids, values: np.ndarray, labels: list[str]) -> str:
    """Output lines (no header) for these IDs and values; both engines write through this."""
    if len(ids) == 0:
        return ""
    out = pd.DataFrame(values, columns=labels)
    out.insert(0, ID_COLUMN, np.asarray(ids))
    return out.to_csv(sep="\t", index=False, header=False, float_format="%.6f", lineterminator="\n")


def _frame_text(model: ScoringModel, frame: pd.DataFrame, prepared, options: ScoreOptions) -> str:
    if frame.empty:
        return ""
    values = output_values(model, model.infer(prepared), options)
    return format_rows(frame[ID_COLUMN].to_numpy(), values, model.labels)


def header_line(labels: list[str]) -> str:
    return "\t".join([ID_COLUMN] + labels) + "\n"


def _chunks(inputs: list[str], model: ScoringModel, options: ScoreOptions,
            done: tuple[int, int] = (0, 0)) -> Iterator[tuple[int, int, object, object]]:
    """(input index, chunk index within it, chunk, prepared batches) for every chunk of every input.

    Chunks before ``done`` (already written by an interrupted run) are read, to check IDs across
    chunks, but not tokenized.
    """
    seen = SeenIds()  # IDs must be unique across all inputs of a run
    for index, source in enumerate(inputs):
        rows = argument_rows(source, model.required_columns, options.on_bad_row, seen)
        for number, chunk in enumerate(rows.chunks(options.chunk_rows)):
            ready = (index, number) >= done and not chunk.frame.empty
            yield index, number, chunk, model.prepare(chunk.frame, options.batch_size) if ready else None


_END = object()


def _one_ahead(items: Iterator) -> Iterator:
    """Produce the next item in a second thread while the caller works on this one.

    Reading and tokenizing the next chunk then overlaps with inference on this one (ONNX Runtime
    and tokenizers both release the GIL). Worth it only with cores to spare: on 2 cores it
    measured slower, so :func:`prefetch_default` turns it on from 4 cores up.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="argvalues-prefetch") as pool:
        future = pool.submit(next, items, _END)
        while True:
            item = future.result()
            if item is _END:
                return
            future = pool.submit(next, items, _END)
            yield item


def prefetch_default() -> bool:
    return len(os.sched_getaffinity(0)) >= 4


def _work(inputs, model, options, done=(0, 0)) -> Iterator:
    items = _chunks(inputs, model, options, done)
    prefetch = prefetch_default() if options.prefetch is None else options.prefetch
    return _one_ahead(items) if prefetch else items


def _progress(enabled: bool):
    from tqdm import tqdm

    return tqdm(unit=" rows", unit_scale=True, file=sys.stderr, disable=not enabled, desc="scoring")


def _check_inputs(inputs: list[str]) -> None:
    if not inputs:
        raise ArgvaluesError("no input file given; pass one or more TSV files, or - for standard input")
    for source in inputs:
        if source != "-" and not Path(source).is_file():
            raise DataError(f"{source}: no such file")
    if inputs.count("-") > 1:
        raise ArgvaluesError("standard input (-) can be read only once")


def score_files(inputs: list[str], output: str | None, options: ScoreOptions, progress: bool = False,
                log=None, model: ScoringModel | None = None) -> ScoreStats:
    """Score ``inputs`` ('-' is standard input) into ``output`` (None or '-': standard output)."""
    _check_inputs(inputs)
    to_stdout = output is None or output == "-"
    if options.resume and to_stdout:
        raise ArgvaluesError("--resume needs -o OUTPUT: a run to standard output cannot be resumed")
    if options.resume and "-" in inputs:
        raise ArgvaluesError("--resume needs input files: standard input cannot be read again")
    if not to_stdout and Path(output).is_dir():
        raise ArgvaluesError(f"{output}: is a directory; -o takes a file path")
    model = model or ScoringModel(options.model_dir, options.device, options.threads, options.variant,
                                  batch_tokens=options.batch_tokens)
    if log:
        log(provider_line(model))
    started = time.perf_counter()
    with _progress(progress) as bar:
        if to_stdout:
            stats = _score_to_stream(inputs, sys.stdout, model, options, bar)
        else:
            stats = _score_to_file(inputs, Path(output), model, options, bar, log)
    stats.seconds = time.perf_counter() - started
    return stats


def provider_line(model: ScoringModel) -> str:
    """Which provider and variant run, and why a GPU that is present is not used."""
    batching = f"batches of up to {model.batch_tokens} tokens" if model.batch_tokens else None
    line = f"scoring with {model.provider}, {model.variant} variant" + (f", {batching}" if batching else "")
    line += f" (model {model.model_dir})"
    return line + (f"; GPU not used: {model.gpu_unused_reason}" if model.gpu_unused_reason else "")


def _score_to_stream(inputs, handle: IO[str], model, options, bar) -> ScoreStats:
    stats = ScoreStats(rows=0, seconds=0.0, provider=model.provider)
    rejects = open(options.rejects, "wb") if options.rejects else None
    try:
        # The header goes out with the first scored chunk, so input that fails at once writes nothing.
        header = header_line(model.labels)
        if rejects:
            rejects.write(REJECTS_HEADER.encode())
        for _, _, chunk, prepared in _work(inputs, model, options):
            handle.write(header + _frame_text(model, chunk.frame, prepared, options))
            handle.flush()
            header = ""
            record_rejects(stats, chunk.rejects, rejects)
            stats.rows += len(chunk.frame)
            bar.update(len(chunk.frame))
        handle.write(header)
    except KeyboardInterrupt as stop:
        kind = Terminated if isinstance(stop, TerminateSignal) else Interrupted
        raise kind(f"{kind.__name__.lower()} after {stats.rows} rows") from None
    finally:
        if rejects:
            rejects.close()
    stats.rejects_path = options.rejects
    return stats


def record_rejects(stats: ScoreStats, rejects: list[Reject], handle: IO[bytes] | None) -> None:
    """Count ``rejects``, keep the first five for the summary, append them to the rejects file."""
    stats.rejected += len(rejects)
    stats.first_rejects.extend(rejects[: max(0, 5 - len(stats.first_rejects))])
    if handle is not None and rejects:
        handle.write("".join(r.tsv_line() for r in rejects).encode())


def run_fingerprint(inputs: list[str], model: ScoringModel, options: ScoreOptions) -> dict:
    """Content hashes of the inputs and the model files, and the options that shape the output."""
    return {
        "inputs": [{"path": str(Path(p).resolve()), "bytes": Path(p).stat().st_size, "sha256": sha256_of(Path(p))}
                   for p in inputs],
        "model": {path.name: sha256_of(path)
                  for path in [*onnx_files(model.onnx_path), model.model_dir / TOKENIZER_NAME,
                               model.model_dir / "argvalues.json"]
                  if path.is_file()},
        "options": options.output_shaping(model.provider, model.variant),
    }


def default_rejects_path(output: str) -> str:
    return f"{output}.rejects.tsv"


def _score_to_file(inputs, target: Path, model, options: ScoreOptions, bar, log) -> ScoreStats:
    target.parent.mkdir(parents=True, exist_ok=True)
    rejects_target = None
    if options.on_bad_row == "skip":
        rejects_target = Path(options.rejects or default_rejects_path(str(target)))
    journal = Journal(target, rejects_target, run_fingerprint(inputs, model, options))
    stats = ScoreStats(rows=0, seconds=0.0, provider=model.provider,
                       rejects_path=str(rejects_target) if rejects_target else None)
    done = Progress()
    if options.resume and journal.exists():
        done = journal.load()
        stats.rows = stats.resumed_rows = done.rows
        stats.rejected = done.rejected
        if journal.finished:  # it stopped while renaming its finished files into place
            journal.finish(done)
            if log:
                log(f"{target} was already complete ({done.rows} rows)")
            return stats
        if log:
            log(f"resuming {target}: {done.rows} rows already scored")
    else:
        if journal.exists() and log:
            log(f"note: starting {target} over; an unfinished run's progress is discarded (--resume continues it)")
        if options.resume and log:
            log(f"nothing to resume for {target}; starting from the beginning")
    try:
        output = _open_partial(journal.partial, done.output_bytes, header_line(model.labels))
        rejects = (_open_partial(journal.rejects_partial, done.rejects_bytes, REJECTS_HEADER)
                   if journal.rejects_partial else None)
        with output, (rejects or contextlib.nullcontext()):
            if done.output_bytes == 0:  # a fresh start: record the header as the first progress
                sync_files(output, rejects)  # the journal may record only bytes already on disk
                done.output_bytes = output.tell()
                done.rejects_bytes = rejects.tell() if rejects else 0
                journal.save(done)
            bar.update(done.rows)
            for index, number, chunk, prepared in _work(inputs, model, options, (done.input, done.chunks)):
                if (index, number) < (done.input, done.chunks):
                    continue  # finished before the crash; read again only to check IDs across chunks
                output.write(_frame_text(model, chunk.frame, prepared, options).encode())
                record_rejects(stats, chunk.rejects, rejects)
                sync_files(output, rejects)
                stats.rows += len(chunk.frame)
                done = Progress(input=index, chunks=number + 1, output_bytes=output.tell(),
                                rejects_bytes=rejects.tell() if rejects else 0, rows=stats.rows,
                                rejected=stats.rejected)
                journal.save(done)
                bar.update(len(chunk.frame))
        journal.finish(done)
    except ArgvaluesError as error:
        if isinstance(error, Interrupted):
            raise
        journal.discard()  # the same input would fail the same way: nothing worth resuming
        raise
    except KeyboardInterrupt as stop:
        kind = Terminated if isinstance(stop, TerminateSignal) else Interrupted
        raise kind(f"{kind.__name__.lower()} after {stats.rows} rows; nothing is at {target}. "
                   f"Rerun with --resume to continue from there") from None
    except OSError as error:
        raise OutputError(f"cannot write {journal.partial}: {error.strerror or error}; nothing is at {target}. "
                          f"{stats.rows} rows are kept: free space and rerun with --resume to continue") from None
    return stats


def _open_partial(path: Path, keep_bytes: int, header: str):
    """Open a partial file for appending after its first ``keep_bytes`` bytes (a new file: the header)."""
    if keep_bytes:
        handle = open(path, "r+b")
        handle.truncate(keep_bytes)
        handle.seek(keep_bytes)
        return handle
    handle = open(path, "wb")
    handle.write(header.encode())
    return handle
