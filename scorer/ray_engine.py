"""``score --engine ray``: the same scoring spread over a Ray cluster, with Ray Data.

* Reading: a Ray Data datasource runs the contract's own row reader (:mod:`argvalues.rows`) on
  each file (local paths, directories, or any URI Ray's filesystems open, e.g. ``s3://``), so
  every row is checked exactly as the local engine checks it, and cut into the same chunks.
* Scoring: a pool of long-lived actors, each holding one ONNX Runtime session, loaded once from
  model files the driver puts in the object store (workers need no shared filesystem).
* Writing: the driver takes the scored blocks back in input order, checks IDs across files,
  and writes through the local engine's formatter: same rows, same order, same bytes.

A worker that dies is restarted by Ray and its unfinished blocks run again; the driver writes
each block once, when its turn in input order comes, so no row is lost or written twice.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import ray
from ray.data.datasource import FileBasedDatasource

from argvalues.contract import ID_COLUMN, argument_rows
from argvalues.errors import ArgvaluesError, DataError, Interrupted, OutputError, Terminated, TerminateSignal
from argvalues.rows import REJECTS_HEADER, Reject, SeenIds
from argvalues.variants import onnx_files
from scorer.journal import fsync_directory, partial_path, sync_files
from scorer.model import TOKENIZER_NAME, load_model_config, variant_file
from scorer.score import (ScoreOptions, ScoreStats, default_rejects_path, format_rows, header_line, output_values,
                          record_rejects)

FILE_COLUMN, CHUNK_COLUMN, LINE_COLUMN, REJECT_COLUMN = "_file", "_chunk", "_line", "_reject"
#: File names a directory input contributes (explicitly named files are read whatever their name).
DIRECTORY_EXTENSIONS = ("tsv", "tsv.gz")
MODEL_SIDE_FILES = (TOKENIZER_NAME, "tokenizer_config.json", "special_tokens_map.json", "argvalues.json")


@dataclass
class RayOptions:
    address: str | None = None
    num_workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float | None = None  # None: this machine's cores shared out (local), else 1

    def __post_init__(self) -> None:
        if self.num_workers < 1:
            raise ArgvaluesError(f"--num-workers must be at least 1, got {self.num_workers}")
        if self.gpus_per_worker < 0:
            raise ArgvaluesError(f"--gpus-per-worker must not be negative, got {self.gpus_per_worker}")
        if self.cpus_per_worker is not None and self.cpus_per_worker <= 0:
            raise ArgvaluesError(f"--cpus-per-worker must be positive, got {self.cpus_per_worker}")

    def worker_cpus(self) -> float:
        if self.cpus_per_worker is not None:
            return self.cpus_per_worker
        if self.address:
            return 1.0
        return float(max(1, len(os.sched_getaffinity(0)) // self.num_workers))


class _Lines:
    """A pyarrow input stream as the binary line iterator the row reader expects (pyarrow's
    streams have no working ``readline``)."""

    BLOCK_BYTES = 1 << 20

    def __init__(self, stream, name: str):
        self.stream, self.name = stream, name

    def __iter__(self) -> Iterator[bytes]:
        tail = b""
        while block := self.stream.read(self.BLOCK_BYTES):
            lines = (tail + block).split(b"\n")
            tail = lines.pop()
            for line in lines:
                yield line + b"\n"
        if tail:
            yield tail


class ArgumentFiles(FileBasedDatasource):
    """Argument TSVs read by the contract's row reader, one read task per file, in chunks."""

    def __init__(self, paths: list[str], required: list[str], on_bad_row: str, chunk_rows: int, **kwargs):
        super().__init__(paths, **kwargs)
        self.required, self.on_bad_row, self.chunk_rows = required, on_bad_row, chunk_rows

    def _read_stream(self, stream, path: str) -> Iterator[pd.DataFrame]:
        # IDs are checked within the file here and across files by the driver, in input order.
        rows = argument_rows(_Lines(stream, path), self.required, self.on_bad_row)
        for number, chunk in enumerate(rows.chunks(self.chunk_rows)):
            yield _block(chunk, path, number, self.required)


def _block(chunk, path: str, number: int, required: list[str]) -> pd.DataFrame:
    """A chunk's rejects (first) and good rows as one frame; a reject's fields are left empty."""
    rejects = pd.DataFrame({column: [""] * len(chunk.rejects) for column in required})
    rejects[LINE_COLUMN] = np.array([r.line for r in chunk.rejects], dtype=np.int64)
    rejects[REJECT_COLUMN] = [json.dumps(asdict(r)) for r in chunk.rejects]
    good = chunk.frame.copy()
    good[LINE_COLUMN] = np.array(chunk.lines, dtype=np.int64)
    good[REJECT_COLUMN] = ""
    block = pd.concat([rejects, good], ignore_index=True)
    block[FILE_COLUMN] = path
    block[CHUNK_COLUMN] = number
    return block


class ScoringActor:
    """One worker: one ONNX Runtime session, loaded when the actor starts and kept for every block."""

    def __init__(self, model_files: list, variant: str, device: str, threads: int, options: dict):
        from scorer.model import ScoringModel

        files = ray.get(model_files[0])  # in a list, so Ray hands over the reference and this fetches it
        self.directory = Path(tempfile.mkdtemp(prefix="argvalues-model-"))
        for name, data in files.items():
            (self.directory / name).write_bytes(data)
        self.options = ScoreOptions(**options)
        self.model = ScoringModel(self.directory, device, threads, variant, batch_tokens=self.options.batch_tokens)

    def __call__(self, block: pd.DataFrame) -> pd.DataFrame:
        good = (block[REJECT_COLUMN] == "").to_numpy()
        dtype = np.float32 if self.options.probabilities else np.int8
        values = np.zeros((len(block), len(self.model.labels)), dtype=dtype)
        # Ray cuts its batches its own way; scoring each reader chunk on its own gives every row
        # the batch-mates it has in the local engine, so even the last float bit agrees.
        chunk_of_row = block[FILE_COLUMN].astype(str) + "\0" + block[CHUNK_COLUMN].astype(str)
        for chunk in dict.fromkeys(chunk_of_row[good]):
            rows = good & (chunk_of_row == chunk).to_numpy()
            frame = block.loc[rows, self.model.required_columns].reset_index(drop=True)
            probabilities = self.model.probabilities(frame, self.options.batch_size)
            values[rows] = output_values(self.model, probabilities, self.options)
        out = pd.DataFrame(values, columns=self.model.labels)
        for column in (ID_COLUMN, FILE_COLUMN, LINE_COLUMN, REJECT_COLUMN):
            out[column] = block[column].to_numpy()
        return out

    def __del__(self):
        shutil.rmtree(getattr(self, "directory", ""), ignore_errors=True)


def _check_inputs(inputs: list[str], options: ScoreOptions) -> None:
    if not inputs:
        raise ArgvaluesError("no input given; pass TSV files, directories of them, or URIs Ray can read")
    if "-" in inputs:
        raise ArgvaluesError("--engine ray reads files, directories or URIs, not standard input (-)")
    if options.resume:
        raise ArgvaluesError("--resume works with the local engine only; with --engine ray, Ray retries failed "
                             "workers within a run, and a failed run is started again")
    for source in inputs:
        if "://" not in source and not Path(source).exists():
            raise DataError(f"{source}: no such file or directory")


def _model_files(model_dir: Path, onnx_path: Path) -> dict[str, bytes]:
    """The files one variant of the model needs, read once here and shipped to every worker."""
    paths = [model_dir / name for name in MODEL_SIDE_FILES if (model_dir / name).is_file()] + onnx_files(onnx_path)
    return {path.name: path.read_bytes() for path in paths}


def _start_ray(ray_options: RayOptions) -> bool:
    """Connect to the cluster at ``address``, or start a local instance; True if this call started it."""
    if ray.is_initialized():
        return False
    settings = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                    configure_logging=True)
    if ray_options.address:
        ray.init(address=ray_options.address, **settings)
    else:
        # One logical CPU more than the workers take, for the read tasks and the driver's own work.
        cpus = max(len(os.sched_getaffinity(0)), ray_options.num_workers * ray_options.worker_cpus()) + 1
        ray.init(num_cpus=int(np.ceil(cpus)), **settings)
    return True


def _check_resources(ray_options: RayOptions, local: bool) -> None:
    """Refuse a run that could never be scheduled (Ray would wait for the resources forever).

    A local instance must hold every worker at once; a cluster may scale up, so there only a
    resource it has none of at all is refused."""
    resources = ray.cluster_resources()
    for name, each in (("GPU", ray_options.gpus_per_worker), ("CPU", ray_options.worker_cpus())):
        wanted, present = each * ray_options.num_workers, resources.get(name, 0)
        if wanted and (present < wanted if local else present == 0):
            raise ArgvaluesError(f"{ray_options.num_workers} worker(s) need {wanted:g} {name}(s) in all, but the Ray "
                                 f"cluster has {present:g}; lower --num-workers or the per-worker {name.lower()}s")


def _user_error(error: BaseException) -> ArgvaluesError:
    """The error a worker or read task raised, as the one-line error the local engine would give.

    Ray wraps it (``RayTaskError``, which also subclasses the original type) and appends retry
    notes to its message; the original is its ``cause``, and our messages are one line."""
    seen, stack = set(), [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ArgvaluesError) and not isinstance(current, ray.exceptions.RayError):
            return type(current)(str(current).strip().splitlines()[0])
        stack += [getattr(current, "cause", None), current.__cause__, current.__context__]
    text = str(error).strip().splitlines()
    return ArgvaluesError(f"the Ray run failed: {text[-1] if text else type(error).__name__}")


class _AtomicOutput:
    """The output (and rejects) written beside the target and renamed into place only when complete."""

    def __init__(self, target: Path | None, rejects_target: Path | None):
        self.targets = [t for t in (target, rejects_target) if t is not None]
        self.partials = [partial_path(t) for t in self.targets]
        self.handles = []

    def open(self) -> list:
        for path in self.partials:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.handles.append(open(path, "wb"))
        return self.handles

    def commit(self) -> None:
        sync_files(*self.handles)
        for handle in self.handles:
            handle.close()
        for partial, target in zip(self.partials, self.targets):
            os.replace(partial, target)
            fsync_directory(target.parent)

    def discard(self) -> None:
        for handle in self.handles:
            handle.close()
        for partial in self.partials:
            partial.unlink(missing_ok=True)


def score_with_ray(inputs: list[str], output: str | None, options: ScoreOptions, ray_options: RayOptions,
                   progress: bool = False, log=None, after_block=None) -> ScoreStats:
    """Score ``inputs`` on Ray into ``output`` (None or '-': standard output); see the module doc.

    ``after_block(rows_written)`` is called after each block is written (progress hooks, tests).
    """
    _check_inputs(inputs, options)
    to_stdout = output is None or output == "-"
    if not to_stdout and Path(output).is_dir():
        raise ArgvaluesError(f"{output}: is a directory; -o takes a file path")
    model_dir = Path(options.model_dir)
    config = load_model_config(model_dir, options.variant)
    device = "cuda" if ray_options.gpus_per_worker > 0 else "cpu"
    provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    variant, onnx_path = variant_file(model_dir, config, provider, options.variant)  # the workers' variant
    files = _model_files(model_dir, onnx_path)

    rejects_target = None
    if options.on_bad_row == "skip" and (options.rejects or not to_stdout):
        rejects_target = Path(options.rejects or default_rejects_path(output))
    writer = _AtomicOutput(None if to_stdout else Path(output), rejects_target)
    started_here = _start_ray(ray_options)
    stats = ScoreStats(rows=0, seconds=0.0, provider=provider, rejects_path=str(rejects_target or "") or None)
    started = time.perf_counter()
    try:
        _check_resources(ray_options, local=not ray_options.address)
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # output in input order, as the local engine writes
        context.enable_progress_bars = progress
        # Ray Data logs every run's plan and its retries to stderr; they stay in Ray's own log
        # files (/tmp/ray/session_latest/logs), and what stops a run comes back as one line.
        logging.getLogger("ray.data").setLevel(logging.CRITICAL)
        if log:
            log(f"scoring on Ray ({'cluster ' + ray_options.address if ray_options.address else 'local instance'}): "
                f"{ray_options.num_workers} worker(s), {ray_options.worker_cpus():g} CPU(s) and "
                f"{ray_options.gpus_per_worker:g} GPU(s) each, {variant} variant")
        model_files = ray.put(files)  # held here for the whole run: restarted workers fetch it again
        datasource = ArgumentFiles(inputs, config.required_columns, options.on_bad_row, options.chunk_rows,
                                   file_extensions=None if all(Path(p).is_file() for p in inputs if "://" not in p)
                                   else list(DIRECTORY_EXTENSIONS))
        scored = ray.data.read_datasource(datasource, num_cpus=0.25).map_batches(
            ScoringActor,
            fn_constructor_kwargs=dict(model_files=[model_files], variant=variant, device=device,
                                       threads=max(1, int(ray_options.worker_cpus())), options=asdict(options)),
            batch_size=options.chunk_rows, batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(size=ray_options.num_workers),
            num_cpus=ray_options.worker_cpus(), num_gpus=ray_options.gpus_per_worker or None,
        )
        handles = writer.open()
        out = sys.stdout.buffer if to_stdout else handles[0]
        rejects = handles[-1] if rejects_target else None
        header = header_line(config.labels).encode()
        if rejects:
            rejects.write(REJECTS_HEADER.encode())
        if not to_stdout:
            out.write(header)
            header = b""
        seen = SeenIds()
        value_type = np.float32 if options.probabilities else np.int8
        for block in scored.iter_batches(batch_size=None, batch_format="pandas", prefetch_batches=1):
            keep = _take_rejects(block, seen, options.on_bad_row, stats, rejects)
            values = block.loc[keep, config.labels].to_numpy(dtype=value_type)
            text = format_rows(block.loc[keep, ID_COLUMN].to_numpy(), values, config.labels).encode()
            out.write(header + text)
            header = b""
            stats.rows += int(keep.sum())
            if after_block:
                after_block(stats.rows)
        out.write(header)
        if to_stdout:
            out.flush()
        writer.commit()
    except KeyboardInterrupt as stop:
        writer.discard()
        kind = Terminated if isinstance(stop, TerminateSignal) else Interrupted
        raise kind(f"{kind.__name__.lower()} after {stats.rows} rows; nothing is at {output or 'the output'}") from None
    except ArgvaluesError as error:
        writer.discard()
        if isinstance(error, ray.exceptions.RayError):  # raised in a worker, wrapped by Ray
            raise _user_error(error) from None
        raise
    except OSError as error:
        writer.discard()
        raise OutputError(f"cannot write {output or 'standard output'}: {error.strerror or error}") from None
    except Exception as error:  # Ray wraps what workers and read tasks raise
        writer.discard()
        raise _user_error(error) from None
    finally:
        if started_here:
            ray.shutdown()
    stats.seconds = time.perf_counter() - started
    return stats


def _take_rejects(block: pd.DataFrame, seen: SeenIds, on_bad_row: str, stats: ScoreStats, handle) -> np.ndarray:
    """Rows of ``block`` to write: not rejected by the reader, and IDs not seen in an earlier input."""
    keep = (block[REJECT_COLUMN] == "").to_numpy()
    rejects = [Reject(**json.loads(text)) for text in block.loc[~keep, REJECT_COLUMN]]
    for position in np.flatnonzero(keep):
        identifier = block[ID_COLUMN].iat[position]
        if not seen.add(identifier):
            # The raw line stays with the reader; the Row column holds the ID (the local engine's, the line).
            reject = Reject(block[FILE_COLUMN].iat[position], int(block[LINE_COLUMN].iat[position]), ID_COLUMN,
                            f"duplicate Argument ID '{identifier[:80]}'", identifier)
            if on_bad_row == "fail":
                raise DataError(reject.message())
            keep[position] = False
            rejects.append(reject)
    # The local engine writes rejects in input order: by file (files come in input order), then line.
    file_rank = {name: rank for rank, name in enumerate(dict.fromkeys(block[FILE_COLUMN]))}
    rejects.sort(key=lambda r: (file_rank[r.file], r.line))
    record_rejects(stats, rejects, handle)
    return keep
