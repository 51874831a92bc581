"""The local engine: score argument TSV files chunk by chunk in this process; memory stays flat
however large the input.

Output: ``Argument ID`` + the 20 label columns in official order (0/1, or probabilities), rows
in input order, written through :mod:`scorer.output` (atomic ``-o`` files, ``--resume``, the
rejects file). Rows that break the contract stop the run (``--on-bad-row fail``) or are counted
and set aside (``skip``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator

from argvalues.contract import ID_COLUMN, argument_rows
from argvalues.rows import SeenIds
from scorer.meta import run_record
from scorer.model import TOKENIZER_NAME, ScoringModel
from scorer.options import ScoreOptions, ScoreStats
from scorer.output import (
    FileOutput,
    ScoredChunk,
    ScoresOutput,
    StreamOutput,
    binary_stdout,
    check_inputs,
    claim,
    input_fingerprint,
    model_fingerprint,
    output_values,
    write_scores,
)
from scorer.output_formats import ParquetOutput, text_scores
from scorer.target import STANDARD_OUTPUT, OutputTarget, output_target
from scorer.windows import LengthCounts

MODEL_SIDE_FILES = (TOKENIZER_NAME, "argvalues.json")


def _read_chunks(inputs: list[str], model: ScoringModel, options: ScoreOptions,
                 log=None) -> Iterator[tuple[int, int, object]]:
    """(input index, chunk index within it, chunk) for every chunk of every input, in order."""
    seen = SeenIds()  # IDs must be unique across all inputs of a run
    for index, source in enumerate(inputs):
        rows = argument_rows(source, model.required_columns, options.on_bad_row, seen,
                             **options.row_reading(model.required_columns), log=log)
        for number, chunk in enumerate(rows.chunks(options.chunk_rows)):
            yield index, number, chunk


def _prepared_chunks(chunks: Iterator, model: ScoringModel, options: ScoreOptions,
                     done: tuple[int, int] = (0, 0)) -> Iterator[tuple[int, int, object, object]]:
    """(input index, chunk index, chunk, prepared batches) for every chunk from ``done`` on.

    Chunks before ``done`` (already written by an interrupted run) were read, to check IDs across
    chunks, but are neither tokenized nor passed on.
    """
    for index, number, chunk in chunks:
        if (index, number) >= done:
            prepared = None if chunk.frame.empty else model.prepare(chunk.frame, options.batch_size)
            yield index, number, chunk, prepared


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


def scored_chunks(inputs: list[str], model: ScoringModel, options: ScoreOptions,
                  done: tuple[int, int] = (0, 0), log=None) -> Iterator[ScoredChunk]:
    """Every chunk from ``done`` (input index, chunks of it already written) on, scored.

    With prefetching, reading, tokenizing and inference are three stages in three threads, each a
    chunk ahead of the next: on a GPU the reader (about 70k rows/s) and the tokenizer (about 42k)
    sharing one thread held the whole run to about 26k rows/s (benchmarks/README.md, "GPU").
    """
    prefetch = prefetch_default() if options.prefetch is None else options.prefetch
    chunks = _read_chunks(inputs, model, options, log)
    items = _prepared_chunks(_one_ahead(chunks) if prefetch else chunks, model, options, done)
    for index, number, chunk, prepared in _one_ahead(items) if prefetch else items:
        values = output_values(model, model.infer(prepared), options) if prepared else None
        yield ScoredChunk(chunk.frame[ID_COLUMN].to_numpy(), values, chunk.rejects, position=[index, number + 1],
                          kept=chunk.kept, lengths=LengthCounts.of(prepared) if prepared else LengthCounts())


def _progress(enabled: bool):
    from tqdm import tqdm

    return tqdm(unit=" rows", unit_scale=True, file=sys.stderr, disable=not enabled, desc="scoring")


def run_fingerprint(inputs: list[str], model: ScoringModel, options: ScoreOptions) -> dict:
    """Content hashes of the inputs and the model files, and the options that shape the output."""
    return {
        "inputs": [input_fingerprint(p) for p in inputs],
        "model": model_fingerprint(model.model_dir, model.onnx_path, MODEL_SIDE_FILES),
        "options": options.output_shaping(model.provider, model.variant),
    }


def long_rows_note(stats: ScoreStats, options: ScoreOptions) -> str | None:
    """What happened to rows longer than the model's max length (None: there were none)."""
    counts = stats.lengths
    if not counts.long_rows:
        return None
    longer = f"note: {counts.long_rows} of {stats.rows} rows were longer than the model's {stats.max_length} tokens"
    if options.long_text == "truncate":
        return f"{longer} and were cut there (--long-text truncate)"
    cut = (f"; {counts.cut_rows} had more than {options.max_windows} windows and were cut there (--max-windows)"
           if counts.cut_rows else "")
    return (f"{longer}: read in overlapping windows of {min(options.window_tokens, stats.max_length)} tokens, "
            f"{counts.windows} windows scored in all{cut}")


def provider_line(model: ScoringModel) -> str:
    """Which provider and variant run, and why a GPU that is present is not used."""
    batching = f", batches of up to {model.batch_tokens} tokens" if model.batch_tokens else ""
    line = f"scoring with {model.provider}, {model.variant} variant{batching} (model {model.model_dir})"
    return line + (f"; GPU not used: {model.gpu_unused_reason}" if model.gpu_unused_reason else "")


def score_files(inputs: list[str], output: str | None, options: ScoreOptions, progress: bool = False,
                log=None, model: ScoringModel | None = None) -> ScoreStats:
    """Score ``inputs`` ('-' is standard input) into ``output`` (None or '-': standard output; a
    device, FIFO or socket is written as a stream: :mod:`scorer.target`)."""
    check_inputs(inputs)
    target = output_target(output, inputs, options)
    with claim(target.file):
        model = model or ScoringModel(options.model_dir, options.device, options.threads, options.variant,
                                      batch_tokens=options.batch_tokens, reading=options.reading,
                                      long_text=options.long_text, max_windows=options.max_windows,
                                      window_tokens=options.window_tokens)
        options.row_reading(model.required_columns)  # a --column the model does not read fails before any row is read
        if log:
            log(provider_line(model))
        started = time.perf_counter()
        stats = ScoreStats(rows=0, seconds=0.0, provider=model.provider, max_length=model.config.max_length,
                           rejects_path=str(target.rejects) if target.rejects else None)
        sink, done = _output(target, inputs, model, options, stats, log)
        if not sink.complete:
            with _progress(progress) as bar:
                bar.update(stats.rows)
                write_scores(sink, scored_chunks(inputs, model, options, done, log), stats, bar.update,
                             options.bad_row_limit)
    stats.seconds = time.perf_counter() - started
    return stats


def _output(target: OutputTarget, inputs, model, options, stats, log) -> tuple[ScoresOutput, tuple[int, int]]:
    """Where the scores go, and the (input, chunk) to start from (after an interrupted run's)."""
    scores = None if options.output_format == "parquet" else \
        text_scores(options.output_format, model.labels, options.keep_columns)
    rejects = target.rejects
    if target.file is None:
        stream = binary_stdout() if target.scores is STANDARD_OUTPUT else target.scores
        return StreamOutput(stream, rejects, scores), (0, 0)
    target = target.file
    fingerprint = run_fingerprint(inputs, model, options)
    run = run_record(model.model_dir, fingerprint, model.variant, model.provider, "local")
    if scores is None:  # Parquet: written whole, never resumed (scorer.output_formats)
        return ParquetOutput(target, rejects, model.labels, options.keep_columns, options.probabilities, run), (0, 0)
    sink = FileOutput(target, rejects, fingerprint, scores, log, run)
    return sink, tuple(sink.begin(options.resume, stats).position or (0, 0))
