"""``score --engine ray``: the same scoring spread over a Ray cluster, with Ray Data.

* Reading: a Ray Data datasource runs the contract's own row reader (:mod:`argvalues.rows`) on
  each file (local paths, directories, or any URI Ray's filesystems open, e.g. ``s3://``), so
  every row is checked exactly as the local engine checks it, and cut into the same chunks.
* Scoring: a pool of long-lived actors, each holding one ONNX Runtime session, loaded once from
  model files the driver puts in the object store (workers need no shared filesystem).
* Writing: the driver takes the scored blocks back in input order, puts each reader chunk back
  together, checks IDs across files, and writes through :mod:`scorer.output`, as the local
  engine does: same rows, same order, same bytes, the same atomic ``-o`` and rejects file.

A worker that dies has its unfinished blocks run again (on its restart or another worker); the
driver writes each chunk once, when its turn in input order comes, so no row is lost or written
twice. A run that fails as a whole keeps what it wrote: its journal records the reader chunks
written per file, and ``--resume`` has the read tasks skip them and the driver take the IDs
already written from the partial output.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import ray
from ray.data.datasource import FileBasedDatasource

from argvalues.contract import ID_COLUMN, argument_rows
from argvalues.errors import ArgvaluesError, DataError, RunFailed, shown
from argvalues.formats import split_name
from argvalues.model_config import ScoringConfig
from argvalues.rows import Reject, SeenIds
from argvalues.variants import onnx_files
from scorer.meta import run_record
from scorer.model import TOKENIZER_NAME, load_model_config, variant_file
from scorer.options import ScoreOptions, ScoreStats
from scorer.output import (
    FileOutput,
    ScoredChunk,
    ScoresOutput,
    StreamOutput,
    TsvScores,
    binary_stdout,
    check_inputs,
    claim,
    input_fingerprint,
    model_fingerprint,
    output_values,
    write_scores,
)
from scorer.target import STANDARD_OUTPUT, OutputTarget, output_target
from scorer.windows import LengthCounts

FILE_COLUMN, CHUNK_COLUMN, LINE_COLUMN, REJECT_COLUMN = "_file", "_chunk", "_line", "_reject"
#: Per scored row: its windows, whether it was longer than the max length, whether it was cut.
WINDOWS_COLUMN, LONG_COLUMN, CUT_COLUMN = "_windows", "_long", "_cut"
#: In a resumed run's progress: every chunk of this file is written.
FILE_DONE = -1
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

    def __init__(self, paths: list[str], required: list[str], on_bad_row: str, chunk_rows: int,
                 done: dict[str, int] | None = None, columns: dict | None = None,
                 field_names: dict | None = None, **kwargs):
        """``done``: chunks already written per file (:data:`FILE_DONE`: all of them), left out;
        ``columns``: --column, --text-column and --id-column; ``field_names``: as reasons name fields."""
        super().__init__(paths, **kwargs)
        self.required, self.on_bad_row, self.chunk_rows = required, on_bad_row, chunk_rows
        self.done = done or {}
        self.columns = columns or {}
        self.field_names = field_names

    def _read_stream(self, stream, path: str) -> Iterator[pd.DataFrame]:
        # IDs are checked within the file here and across files by the driver, in input order.
        done = self.done.get(path, 0)
        if done == FILE_DONE:
            return
        rows = argument_rows(_Lines(stream, path), self.required, self.on_bad_row, columns=self.columns,
                             file_format="tsv", field_names=self.field_names)
        for number, chunk in enumerate(rows.chunks(self.chunk_rows)):
            if number >= done:  # earlier chunks are read again only to check IDs within the file
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
        self.model = ScoringModel(self.directory, device, threads, variant, batch_tokens=self.options.batch_tokens,
                                  reading=self.options.reading, long_text=self.options.long_text,
                                  max_windows=self.options.max_windows, window_tokens=self.options.window_tokens)

    def __call__(self, block: pd.DataFrame) -> pd.DataFrame:
        good = (block[REJECT_COLUMN] == "").to_numpy()
        dtype = np.float32 if self.options.probabilities else np.int8
        values = np.zeros((len(block), len(self.model.labels)), dtype=dtype)
        windows, long, cut = (np.zeros(len(block), dtype=kind) for kind in (np.int64, bool, bool))
        # Ray cuts its batches its own way; scoring each reader chunk on its own gives every row
        # the batch-mates it has in the local engine, so even the last float bit agrees.
        chunk_of_row = block[FILE_COLUMN].astype(str) + "\0" + block[CHUNK_COLUMN].astype(str)
        for chunk in dict.fromkeys(chunk_of_row[good]):
            rows = good & (chunk_of_row == chunk).to_numpy()
            frame = block.loc[rows, self.model.required_columns].reset_index(drop=True)
            prepared = self.model.prepare(frame, self.options.batch_size)
            values[rows] = output_values(self.model, self.model.infer(prepared), self.options)
            windows[rows], long[rows], cut[rows] = prepared.windows_per_row, prepared.long, prepared.cut
        out = pd.DataFrame(values, columns=self.model.labels)
        for column in (ID_COLUMN, FILE_COLUMN, CHUNK_COLUMN, LINE_COLUMN, REJECT_COLUMN):
            out[column] = block[column].to_numpy()
        out[WINDOWS_COLUMN], out[LONG_COLUMN], out[CUT_COLUMN] = windows, long, cut
        return out

    def __del__(self):
        shutil.rmtree(getattr(self, "directory", ""), ignore_errors=True)


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
    return RunFailed(f"the Ray run failed: {text[-1] if text else type(error).__name__}")


@dataclass
class WorkerModel:
    """The model as the workers run it: the variant for their device, and the files they need."""

    directory: Path
    config: ScoringConfig
    provider: str
    variant: str
    onnx_path: Path

    @classmethod
    def choose(cls, options: ScoreOptions, ray_options: RayOptions) -> WorkerModel:
        """Check the model directory (before any worker starts) and pick the workers' variant."""
        directory = Path(options.model_dir)
        config = load_model_config(directory, options.variant)
        provider = "CUDAExecutionProvider" if ray_options.gpus_per_worker > 0 else "CPUExecutionProvider"
        variant, onnx_path = variant_file(directory, config, provider, options.variant)
        config.template_for(options.reading)  # a reading the model was not trained for: refused before Ray starts
        return cls(directory, config, provider, variant, onnx_path, options.reading)

    reading: str = "arguments"

    @property
    def device(self) -> str:
        return "cuda" if self.provider == "CUDAExecutionProvider" else "cpu"

    @property
    def required_columns(self) -> list[str]:
        """The columns the workers read (for a reading the model was not trained for: refused here)."""
        return self.config.required_columns_for(self.reading)

    def files(self) -> dict[str, bytes]:
        return _model_files(self.directory, self.onnx_path)

    def fingerprint(self) -> dict[str, str]:
        return model_fingerprint(self.directory, self.onnx_path, MODEL_SIDE_FILES)


def _check_formats(inputs: list[str], options: ScoreOptions) -> None:
    """Ray reads and writes TSV (plain or .gz) only: refuse anything else with one line."""
    refused = [f"--{name}" for name, given in (("format", options.input_format not in (None, "tsv")),
                                               ("output-format", options.output_format != "tsv"),
                                               ("keep-columns", bool(options.keep_columns))) if given]
    if refused:
        raise ArgvaluesError(f"--engine ray reads and writes TSV only ({', '.join(refused)} given): score other "
                             f"formats with the local engine")
    for source in inputs:
        if split_name(source)[0] not in (None, "tsv") or split_name(source)[1] not in (None, "gzip"):
            raise ArgvaluesError(f"{source}: --engine ray reads TSV only (plain or .gz): score it with the local "
                                 f"engine")


def score_with_ray(inputs: list[str], output: str | None, options: ScoreOptions, ray_options: RayOptions,
                   progress: bool = False, log=None, after_block=None) -> ScoreStats:
    """Score ``inputs`` on Ray into ``output`` (None or '-': standard output); see the module doc.

    ``after_block(rows_written)`` is called after each block is written (progress hooks, tests).
    """
    check_inputs(inputs, engine="ray")
    _check_formats(inputs, options)
    target = output_target(output, inputs, options)
    with claim(target.file):
        model = WorkerModel.choose(options, ray_options)
        options.row_reading(model.required_columns)  # a --column the model does not read: before Ray starts
        stats = ScoreStats(rows=0, seconds=0.0, provider=model.provider, max_length=model.config.max_length,
                           rejects_path=str(target.rejects) if target.rejects else None)
        sink, done = _output(target, inputs, model, options, stats, log)
        if not sink.complete:
            started = time.perf_counter()
            RayRun(inputs, model, options, ray_options, progress, log, after_block).write(sink, done, stats)
            stats.seconds = time.perf_counter() - started
    return stats


@dataclass
class RayRun:
    """One run's inputs, model and settings, and how it reports."""

    inputs: list[str]
    model: WorkerModel
    options: ScoreOptions
    ray_options: RayOptions
    progress: bool = False
    log: Callable[[str], object] | None = None
    after_block: Callable[[int], object] | None = None

    def write(self, sink: ScoresOutput, done: dict[str, int], stats: ScoreStats) -> None:
        """Start (or join) Ray, score every chunk not ``done`` and write it to ``sink``; errors as one line."""
        started_here = _start_ray(self.ray_options)
        try:
            _check_resources(self.ray_options, local=not self.ray_options.address)
            _quiet_ray_data(self.progress)
            if self.log:
                self.log(_plan_line(self.ray_options, self.model.variant))
            write_scores(sink, self.chunks(done, _seen_ids(sink), stats), stats, limit=self.options.bad_row_limit)
        except (ArgvaluesError, OSError) as error:
            if isinstance(error, ray.exceptions.RayError):  # raised in a worker, wrapped by Ray
                raise _user_error(error) from None
            raise
        except Exception as error:  # Ray wraps what goes wrong while it sets the run up
            raise _user_error(error) from None
        finally:
            if started_here:
                ray.shutdown()

    def chunks(self, done: dict[str, int], seen: SeenIds, stats: ScoreStats) -> Iterator[ScoredChunk]:
        """The chunks not ``done``, scored on Ray, in input order."""
        blocks = _scored_blocks(_pipeline(self.inputs, self.model, self.options, self.ray_options, done))
        hook = (lambda: self.after_block(stats.rows)) if self.after_block else None
        return _driver_chunks(blocks, self.options, self.model.config.labels, hook, done, seen)


def _output(target: OutputTarget, inputs: list[str], model: WorkerModel, options: ScoreOptions,
            stats: ScoreStats, log) -> tuple[ScoresOutput, dict[str, int]]:
    """Where the scores go, and the chunks an interrupted run already wrote (reader chunks per file)."""
    scores = TsvScores(model.config.labels)
    rejects = target.rejects
    if target.file is None:
        stream = binary_stdout() if target.scores is STANDARD_OUTPUT else target.scores
        return StreamOutput(stream, rejects, scores), {}
    target = target.file
    fingerprint = {"inputs": [_input_fingerprint(p) for p in inputs], "model": model.fingerprint(),
                   "options": options.output_shaping(model.provider, model.variant, engine="ray")}
    run = run_record(model.directory, fingerprint, model.variant, model.provider, "ray", libraries=("ray",))
    sink = FileOutput(target, rejects, fingerprint, scores, log, run)
    return sink, dict(sink.begin(options.resume, stats).position or {})


def _seen_ids(sink: ScoresOutput) -> SeenIds:
    """The IDs an interrupted run already wrote: the driver checks new IDs against them."""
    seen = SeenIds()
    for identifier in sink.written_ids() if isinstance(sink, FileOutput) else ():
        seen.add(identifier)
    return seen


def _input_fingerprint(source: str) -> dict:
    """A file's sha256; a directory's files (those Ray reads) one by one; a URI's files by size and
    modification time (hashing them would read the whole corpus on the driver)."""
    if "://" in source:
        from pyarrow import fs

        filesystem, path = fs.FileSystem.from_uri(source)
        info = filesystem.get_file_info(path)
        infos = (filesystem.get_file_info(fs.FileSelector(path, recursive=True))
                 if info.type == fs.FileType.Directory else [info])
        return {"path": source, "files": [{"path": i.path, "bytes": i.size, "mtime": str(i.mtime)}
                                          for i in sorted(infos, key=lambda i: i.path) if i.type == fs.FileType.File]}
    if Path(source).is_dir():
        files = sorted(p for p in Path(source).rglob("*") if p.is_file() and p.name.endswith(
            tuple(f".{extension}" for extension in DIRECTORY_EXTENSIONS)))
        return {"path": str(Path(source).resolve()), "files": [input_fingerprint(str(p)) for p in files]}
    return input_fingerprint(source)


def _quiet_ray_data(progress: bool) -> None:
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # output in input order, as the local engine writes
    context.enable_progress_bars = progress
    # Ray Data logs every run's plan and its retries to stderr; they stay in Ray's own log files
    # (/tmp/ray/session_latest/logs), and what stops a run comes back as one line.
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)


def _plan_line(ray_options: RayOptions, variant: str) -> str:
    where = "cluster " + ray_options.address if ray_options.address else "local instance"
    return (f"scoring on Ray ({where}): {ray_options.num_workers} worker(s), {ray_options.worker_cpus():g} CPU(s) "
            f"and {ray_options.gpus_per_worker:g} GPU(s) each, {variant} variant")


def _pipeline(inputs: list[str], model: WorkerModel, options: ScoreOptions, ray_options: RayOptions,
              done: dict[str, int]):
    """The Ray Data pipeline: read tasks cut the inputs into the reader's chunks (those not ``done``),
    actors score them."""
    model_files = ray.put(model.files())  # the dataset holds it for the run: restarted workers fetch it again
    local_files = all(Path(p).is_file() for p in inputs if "://" not in p)
    # Files are read in parallel, so row numbers cannot be IDs: the ID column is required.
    reading = options.row_reading(model.required_columns)
    datasource = ArgumentFiles(inputs, model.required_columns, options.on_bad_row, options.chunk_rows, done,
                               columns=reading["columns"], field_names=reading["field_names"],
                               file_extensions=None if local_files else list(DIRECTORY_EXTENSIONS))
    return ray.data.read_datasource(datasource, num_cpus=0.25).map_batches(
        ScoringActor,
        fn_constructor_kwargs=dict(model_files=[model_files], variant=model.variant, device=model.device,
                                   threads=max(1, int(ray_options.worker_cpus())), options=asdict(options)),
        batch_size=options.chunk_rows, batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(size=ray_options.num_workers),
        num_cpus=ray_options.worker_cpus(), num_gpus=ray_options.gpus_per_worker or None,
    )


def _scored_blocks(dataset) -> Iterator[pd.DataFrame]:
    """The scored blocks in input order; what a worker or read task raised, as a one-line error."""
    blocks = iter(dataset.iter_batches(batch_size=None, batch_format="pandas", prefetch_batches=1))
    try:
        while True:
            try:
                block = next(blocks)
            except StopIteration:
                return
            except Exception as error:  # Ray wraps it, and retries or loses workers on the way
                raise _user_error(error) from None
            yield block
    finally:
        if hasattr(blocks, "close"):
            blocks.close()  # a run stopped early stops Ray Data's executor too


def _whole_chunks(blocks: Iterator[pd.DataFrame], after_block: Callable[[], object] | None = None
                  ) -> Iterator[pd.DataFrame]:
    """The rows of each reader chunk as one frame, in input order: Ray cuts its blocks its own way,
    so a chunk may arrive in pieces; the last piece of a block is held until the next block shows
    whether the chunk goes on."""
    held = None
    for block in blocks:
        keys = block[FILE_COLUMN].astype(str) + "\0" + block[CHUNK_COLUMN].astype(str)
        starts = [0, *np.flatnonzero(keys.to_numpy()[1:] != keys.to_numpy()[:-1]) + 1, len(block)]
        for start, end in zip(starts[:-1], starts[1:]):
            piece = block.iloc[start:end]
            if held is not None and _chunk_key(held) == _chunk_key(piece):
                held = pd.concat([held, piece], ignore_index=True)
                continue
            if held is not None:
                yield held
            held = piece
        if after_block:
            after_block()
    if held is not None:
        yield held


def _chunk_key(frame: pd.DataFrame) -> tuple[str, int]:
    return frame[FILE_COLUMN].iat[0], int(frame[CHUNK_COLUMN].iat[0])


def _driver_chunks(blocks: Iterator[pd.DataFrame], options: ScoreOptions, labels: list[str],
                   after_block: Callable[[], object] | None = None, done: dict[str, int] | None = None,
                   seen: SeenIds | None = None) -> Iterator[ScoredChunk]:
    """Each reader chunk as the output writes it: IDs checked across files (in input order, by this
    driver alone), rejects in line order, and the chunks written so far per file (the position a
    resumed run starts from)."""
    seen = seen if seen is not None else SeenIds()
    position = dict(done or {})
    value_type = np.float32 if options.probabilities else np.int8
    for frame in _whole_chunks(blocks, after_block):
        keep, rejects = _take_rejects(frame, seen, options.on_bad_row)
        values = frame.loc[keep, labels].to_numpy(dtype=value_type)
        lengths = LengthCounts(int(frame.loc[keep, LONG_COLUMN].sum()), int(frame.loc[keep, WINDOWS_COLUMN].sum()),
                               int(frame.loc[keep, CUT_COLUMN].sum()))
        path, number = _chunk_key(frame)
        for earlier in position:  # files come in input order: those before this one are complete
            position[earlier] = FILE_DONE if earlier != path else position[earlier]
        position[path] = number + 1
        yield ScoredChunk(frame.loc[keep, ID_COLUMN].to_numpy(), values, rejects, position=dict(position),
                          lengths=lengths)


def _take_rejects(chunk: pd.DataFrame, seen: SeenIds, on_bad_row: str) -> tuple[np.ndarray, list[Reject]]:
    """Rows of one chunk to write (not rejected by the reader, IDs not seen in an earlier input), and
    its rejects in line order, as the local engine writes them."""
    keep = (chunk[REJECT_COLUMN] == "").to_numpy()
    rejects = [Reject(**json.loads(text)) for text in chunk.loc[~keep, REJECT_COLUMN]]
    for position in np.flatnonzero(keep):
        identifier = chunk[ID_COLUMN].iat[position]
        if not seen.add(identifier):
            # The raw line stays with the reader; the Row column holds the ID (the local engine's, the line).
            reject = Reject(chunk[FILE_COLUMN].iat[position], int(chunk[LINE_COLUMN].iat[position]), ID_COLUMN,
                            f"duplicate Argument ID '{shown(identifier)}'", identifier)
            if on_bad_row == "fail":
                raise DataError(reject.message())
            keep[position] = False
            rejects.append(reject)
    rejects.sort(key=lambda r: r.line)
    return keep, rejects
