"""The formats scores are written in: TSV (the ValueEval layout), CSV, JSON lines and Parquet.

Each text format is a header and rows as bytes, appended chunk by chunk, so :mod:`scorer.output`
journals and resumes them byte for byte. The columns are always ``Argument ID``, the
``--keep-columns`` carried from the input (as text), then the 20 labels in official order: 0/1,
or probabilities (six decimals in the text formats; float32 as computed in Parquet).

Parquet keeps its footer (the index of its row groups) at the end of the file, written when the
writer closes, so a file cut off by a crash cannot be appended to, and the byte journal that makes
``--resume`` exact for the text formats cannot hold: :class:`ParquetOutput` writes one row group
per chunk to the hidden partial file and renames it into place when complete, and ``--resume`` is
refused for it with one line before anything is read (a job that must resume writes JSON lines or
CSV and converts at the end).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from argvalues.contract import ID_COLUMN
from argvalues.errors import OutputError
from argvalues.files import fsync_directory, write_atomically
from scorer.journal import partial_path
from scorer.output import PartialRejects, TsvScores, scores_frame, stopped

OUTPUT_FORMATS = ("tsv", "csv", "jsonl", "parquet")
#: What ``-o NAME`` implies when ``--output-format`` is not given.
OUTPUT_EXTENSIONS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
                     ".pq": "parquet"}


def output_format_of(output: str | None) -> str:
    """The format an ``-o`` name implies by its extension; TSV for standard output and other names."""
    if not output or output == "-":
        return "tsv"
    suffix = output[output.rfind("."):].lower() if "." in output else ""
    return OUTPUT_EXTENSIONS.get(suffix, "tsv")


class TextScores:
    """The text formats' shared shape: a header line, then each chunk's rows, as bytes."""

    def __init__(self, labels: list[str], kept_columns: list[str] | tuple[str, ...] = ()):
        self.labels = list(labels)
        self.kept_columns = list(kept_columns)
        self.columns = [ID_COLUMN, *self.kept_columns, *self.labels]


class CsvScores(TextScores):
    """Comma-separated, quoted where a field needs it (RFC 4180, through the csv module)."""

    def header(self) -> bytes:
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerow(self.columns)
        return text.getvalue().encode()

    def rows(self, ids, values: np.ndarray, kept: pd.DataFrame | None = None) -> bytes:
        if len(ids) == 0:
            return b""
        return scores_frame(ids, values, self.labels, kept).to_csv(
            index=False, header=False, float_format="%.6f", lineterminator="\n").encode()


class JsonLinesScores(TextScores):
    """One JSON object per row, keys in the column order; no header line."""

    def header(self) -> bytes:
        return b""

    def rows(self, ids, values: np.ndarray, kept: pd.DataFrame | None = None) -> bytes:
        if len(ids) == 0:
            return b""
        if values.dtype.kind == "f":
            cells = [[float(f"{v:.6f}") for v in row] for row in values.tolist()]
        else:
            cells = values.tolist()
        kept_rows = kept.itertuples(index=False, name=None) if kept is not None else iter(lambda: (), None)
        lines = []
        for identifier, extra, row in zip(ids, kept_rows, cells):
            record = {ID_COLUMN: identifier, **dict(zip(self.kept_columns, extra)), **dict(zip(self.labels, row))}
            lines.append(json.dumps(record, ensure_ascii=False))
        return ("\n".join(lines) + "\n").encode()


def text_scores(output_format: str, labels: list[str], kept_columns: list[str]):
    """The scores format of a text output (TSV's lives with :mod:`scorer.output`)."""
    kind = {"tsv": TsvScores, "csv": CsvScores, "jsonl": JsonLinesScores}[output_format]
    return kind(labels, kept_columns)


def parquet_schema(labels: list[str], kept_columns: list[str], probabilities: bool):
    import pyarrow as pa

    value = pa.float32() if probabilities else pa.int8()
    return pa.schema([(ID_COLUMN, pa.string()), *((c, pa.string()) for c in kept_columns),
                      *((label, value) for label in labels)])


def parquet_table(schema, ids, values: np.ndarray, kept: pd.DataFrame | None):
    """One chunk's rows as an Arrow table of ``schema`` (one row group when written)."""
    import pyarrow as pa

    labels = schema.names[1 + (0 if kept is None else len(kept.columns)):]
    columns = [pa.array(np.asarray(ids, dtype=object), type=pa.string())]
    if kept is not None:
        columns += [pa.array(kept[c].to_numpy(dtype=object), type=pa.string()) for c in kept.columns]
    value_type = schema.field(labels[0]).type if labels else None
    columns += [pa.array(values[:, i], type=value_type) for i in range(len(labels))]
    return pa.Table.from_arrays(columns, schema=schema)


class ParquetOutput:
    """``-o OUT`` in Parquet: one row group per chunk, written to the hidden partial file beside
    ``OUT`` (and the rejects file beside its target) and renamed into place when complete. A
    stopped run leaves nothing; it is started again (no ``--resume``: see the module doc)."""

    complete = False

    def __init__(self, target: Path, rejects: Path | None, labels: list[str], kept_columns: list[str],
                 probabilities: bool, run: dict | None = None):
        """``run``: what produced the output, for the sidecar (:func:`scorer.meta.sidecar`; None: no sidecar)."""
        from scorer.meta import utc_now

        self.target, self.run, self.started = target, run, utc_now()
        self.partial = partial_path(target)
        self.rejects = PartialRejects(rejects)
        self.schema = parquet_schema(labels, list(kept_columns), probabilities)
        self._writer = None

    def open(self) -> None:
        import pyarrow.parquet as pq

        self.target.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(self.partial, self.schema)
        self.rejects.open()

    def write(self, chunk, stats) -> None:
        if len(chunk.ids):
            self._writer.write_table(parquet_table(self.schema, chunk.ids, chunk.values, chunk.kept))
        stats.record_rejects(chunk.rejects)
        stats.lengths.add(chunk.lengths)
        self.rejects.write(chunk.rejects)
        stats.rows += len(chunk.ids)

    def finish(self, stats) -> None:
        self._writer.close()
        self._writer = None
        with open(self.partial, "rb") as handle:
            os.fsync(handle.fileno())
        self.rejects.finish()
        if self.run is not None:  # before the output: a new output never appears without its sidecar
            from scorer.meta import meta_path, sidecar

            meta = meta_path(self.target)
            write_atomically(meta, sidecar(self.run, self.target, self.partial, self.rejects.target, stats.rows,
                                           stats.rejected, self.started, False, stats.long_texts()))
        os.replace(self.partial, self.target)
        fsync_directory(self.target.parent)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.rejects.close()

    def failure(self, error: BaseException, stats) -> BaseException:
        self.close()
        self.rejects.discard()
        self.partial.unlink(missing_ok=True)
        if isinstance(error, KeyboardInterrupt):
            return stopped(error, f"after {stats.rows} rows; nothing is at {self.target} (a Parquet output is "
                                  f"written again from the start)")
        if isinstance(error, OSError):
            return OutputError(f"cannot write {self.partial}: {error.strerror or error}; nothing is at {self.target}")
        return error
