"""The input formats a corpus comes in: TSV, CSV, JSON Lines and Parquet, plain or compressed.

Each reader turns one file into a list of column names and a stream of records, each the values
of the columns asked for (as text) or the reason the record cannot be read. What a row must hold
(non-empty fields, a known Stance, unique IDs) is checked once, for every format, by
:class:`argvalues.rows.ArgumentRows`.

* TSV: the ValueEval format; tabs, no quoting (a quote is ordinary text).
* CSV: RFC 4180 quoting through the csv module, so a quoted field may hold commas, tabs and line
  breaks; a record's line is the line it starts on.
* JSON Lines: one JSON object per line; the first object's keys stand for the header.
* Parquet: read with pyarrow, a batch at a time (memory stays flat); a record's "line" is its row
  number, counted from 1.

Text formats may be compressed (gzip, bz2, xz, zstd), chosen by the file name's last extension.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from argvalues.errors import DataError

FORMATS = ("tsv", "csv", "jsonl", "parquet")
_FORMAT_EXTENSIONS = {".tsv": "tsv", ".tab": "tsv", ".txt": "tsv", ".csv": "csv", ".jsonl": "jsonl",
                      ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSION_EXTENSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd", ".zstd": "zstd"}
#: What a failing decompressor raises.
DECOMPRESSION_ERRORS: tuple = (EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError)
try:
    from compression.zstd import ZstdError  # Python 3.14

    DECOMPRESSION_ERRORS += (ZstdError,)
except ImportError:
    pass
try:
    from zstandard import ZstdError as _ZstandardError

    DECOMPRESSION_ERRORS += (_ZstandardError,)
except ImportError:
    pass
#: A CSV field may be far longer than the csv module's default limit (128 KiB): a 1 MB premise is fine.
CSV_FIELD_LIMIT = 1 << 28


def split_name(name: str) -> tuple[str | None, str | None]:
    """(format, compression) that a file name's extensions name; None where they name none."""
    suffixes = [s.lower() for s in Path(name).suffixes]
    compression = _COMPRESSION_EXTENSIONS.get(suffixes[-1]) if suffixes else None
    if compression:
        suffixes = suffixes[:-1]
    return (_FORMAT_EXTENSIONS.get(suffixes[-1]) if suffixes else None), compression


def input_format(source: str, given: str | None = None) -> str:
    """The format to read ``source`` as: ``given`` (``--format``), else its extension, else TSV."""
    if given:
        if given not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {given!r}")
        return given
    if not isinstance(source, (str, Path)) or str(source) == "-":
        return "tsv"
    return split_name(str(source))[0] or "tsv"


class _ZstdReader(io.RawIOBase):
    """Zstandard frames decompressed with the zstandard package's decompressobj, which (unlike its
    stream reader, that returns a short read) tells a truncated file by a frame never ending. It
    returns all the output of what it is given, so it is given 32 KiB at a time: memory stays
    flat (measured: 26 MiB peak for 135 MB of text; fed 1 MiB at a time, 275 MiB)."""

    PIECE_BYTES = 1 << 15

    def __init__(self, path: Path):
        import zstandard

        self.file = open(path, "rb")
        self.context = zstandard.ZstdDecompressor()
        self.frame = self.context.decompressobj()
        self.in_frame = False
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending:
            data = self.file.read(self.PIECE_BYTES)
            if not data:
                if self.in_frame:
                    raise EOFError("the zstd file ends inside a frame")
                return 0
            pieces = []
            while data:
                self.in_frame = True
                pieces.append(self.frame.decompress(data))
                data = b""
                if self.frame.eof:  # a frame ended; what follows starts the next one
                    data, self.frame, self.in_frame = self.frame.unused_data, self.context.decompressobj(), False
            self.pending = b"".join(pieces)
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size

    def close(self) -> None:
        self.file.close()
        super().close()


def _zstd_open(path: Path) -> IO[bytes]:
    try:
        from compression import zstd  # Python 3.14

        return zstd.open(path, "rb")
    except ImportError:
        pass
    try:
        import zstandard  # noqa: F401
    except ImportError:
        raise DataError(f"{path}: reading zstd needs the zstandard package (pip install zstandard)") from None
    return io.BufferedReader(_ZstdReader(path), 1 << 20)


def open_binary(source: str | Path | IO[bytes]) -> tuple[str, IO[bytes]]:
    """(name, binary handle) of a path (decompressed by its extension), '-' (standard input) or a stream."""
    if not isinstance(source, (str, Path)):
        return getattr(source, "name", "<stream>"), getattr(source, "buffer", source)
    if str(source) == "-":
        return "<stdin>", sys.stdin.buffer
    path = Path(source)
    if not path.is_file():
        raise DataError(f"{source}: no such file")
    compression = split_name(path.name)[1]
    if compression == "gzip":
        return str(source), gzip.open(path, "rb")
    if compression == "bz2":
        return str(source), bz2.open(path, "rb")
    if compression == "xz":
        return str(source), lzma.open(path, "rb")
    if compression == "zstd":
        return str(source), _zstd_open(path)
    return str(source), open(path, "rb")


def header_hint(first: str, expected: str) -> str:
    """A hint when a header line looks like another format than the one it is read as."""
    if first.startswith("\x1f\x8b"):
        return " (it looks gzip-compressed: name the file .gz)"
    if first.startswith("PAR1"):
        return " (it looks like Parquet: use --format parquet)"
    if first.lstrip().startswith("{") and expected != "jsonl":
        return " (it looks like JSON lines: use --format jsonl)"
    if expected != "tsv" and "\t" in first and "," not in first:
        return " (it looks tab-separated: use --format tsv)"
    if expected != "csv" and "\t" not in first and "," in first:
        return " (it looks comma-separated: use --format csv)"
    return ""


def _utf8_problem(value: str) -> str | None:
    """The reason a text decoded with ``surrogateescape`` holds bytes that are not UTF-8, else None."""
    try:
        value.encode("utf-8")
        return None
    except UnicodeEncodeError as error:
        return f"bytes that are not UTF-8 at byte {len(value[: error.start].encode('utf-8', 'surrogateescape'))}"


class Reader:
    """One input file: its columns, then its records.

    ``records(wanted)`` yields ``(line, values, column, reason, raw)``: ``values`` are the texts of
    the ``wanted`` columns in that order, or None when the record is bad, with the ``column`` at
    fault ('' for the whole record) and the ``reason``; ``raw`` becomes the rejects file's Row
    through :meth:`raw_text`. ``line`` tells where the record is, and ``self.line`` how far
    reading got (for errors about a truncated file).
    """

    unit = "line"

    def __init__(self, handle: IO[bytes], name: str):
        self.handle, self.name, self.line = handle, name, 0

    def columns(self) -> list[str] | None:
        """The column names (None: the file is empty)."""
        raise NotImplementedError

    def records(self, wanted: list[str]) -> Iterator[tuple]:
        raise NotImplementedError

    @staticmethod
    def raw_text(raw) -> str:
        return raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else str(raw)

    def close(self) -> None:
        pass


class TsvReader(Reader):
    """Tab-separated, no quoting: a field cannot hold a tab or a line break."""

    def columns(self) -> list[str] | None:
        self.lines = iter(self.handle)
        raw = next(self.lines, None)
        if raw is None:
            return None
        self.line = 1
        try:
            header = raw.decode("utf-8-sig").rstrip("\r\n").split("\t")
        except UnicodeDecodeError:
            raise DataError(f"{self.name}: line 1: the header is not UTF-8 text"
                            f"{header_hint(raw.decode('latin-1'), 'tsv')}") from None
        self.header = header
        return header

    def records(self, wanted: list[str]) -> Iterator[tuple]:
        positions = [self.header.index(c) for c in wanted]
        width = len(self.header)
        line = 1
        for raw in self.lines:
            line += 1
            self.line = line
            raw = raw.rstrip(b"\n").rstrip(b"\r")
            if not raw.strip():
                continue  # blank lines carry no row
            fields = raw.split(b"\t")
            if len(fields) != width:
                hint = ("a tab inside a field?" if len(fields) > width else
                        "a line break inside a field? if so, the line before this one was cut short too")
                yield line, None, "", f"{len(fields)} fields, expected {width} ({hint})", raw
                continue
            values = []
            for column, position in zip(wanted, positions):
                try:
                    values.append(fields[position].decode("utf-8"))
                except UnicodeDecodeError as error:
                    yield line, None, column, f"bytes that are not UTF-8 at byte {error.start}", raw
                    break
            else:
                yield line, values, "", "", raw


class CsvReader(Reader):
    """RFC 4180 CSV through the csv module (strict: a stray quote makes the record bad)."""

    def __init__(self, handle: IO[bytes], name: str, delimiter: str = ","):
        super().__init__(handle, name)
        csv.field_size_limit(CSV_FIELD_LIMIT)
        # surrogateescape keeps bytes that are not UTF-8 in the text, so the record they are in
        # (and its column) can be named instead of the whole read failing.
        self.text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="surrogateescape", newline="")
        self.pending: list[str] = []  # the physical lines of the record being read
        self.reader = csv.reader(self._lines(), delimiter=delimiter, strict=True)

    def _lines(self) -> Iterator[str]:
        for line in self.text:
            self.pending.append(line)
            yield line

    def _next(self):
        """The next record (a list, or the csv.Error it raised), the line it starts on, its raw text."""
        start = self.reader.line_num + 1
        try:
            record = next(self.reader)
        except StopIteration:
            return None, start, ""
        except csv.Error as error:
            record = error
        raw, self.pending = "".join(self.pending), []
        self.line = self.reader.line_num
        return record, start, raw

    def columns(self) -> list[str] | None:
        header, _, raw = self._next()
        if header is None:
            return None
        if isinstance(header, csv.Error):
            raise DataError(f"{self.name}: line 1: the header is not valid CSV ({header})")
        for name in header:
            if _utf8_problem(name):
                raise DataError(f"{self.name}: line 1: the header is not UTF-8 text")
        if len(header) == 1:
            self.hint = header_hint(raw, "csv")
        self.header = header
        return header

    def records(self, wanted: list[str]) -> Iterator[tuple]:
        positions = [self.header.index(c) for c in wanted]
        width = len(self.header)
        while True:
            record, line, raw = self._next()
            if record is None:
                return
            if isinstance(record, csv.Error):
                yield line, None, "", f"not valid CSV ({record})", raw
                continue
            if not record or (len(record) == 1 and not record[0].strip() and width > 1):
                continue  # blank lines carry no row
            if len(record) != width:
                yield line, None, "", f"{len(record)} fields, expected {width}", raw
                continue
            values = [record[p] for p in positions]
            for column, value in zip(wanted, values):
                problem = _utf8_problem(value)
                if problem:
                    yield line, None, column, problem, raw
                    break
            else:
                yield line, values, "", "", raw

    @staticmethod
    def raw_text(raw) -> str:
        return raw.rstrip("\r\n").encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")

    def close(self) -> None:
        self.text.detach()  # the binary handle is closed (or, for standard input, kept) by its owner


def _json_text(value, column: str) -> tuple[str | None, str]:
    """A JSON value as a field's text, or (None, reason)."""
    if isinstance(value, str):
        problem = _utf8_problem(value)
        return (None, problem) if problem else (value, "")
    if value is None:
        return "", ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f"'{column}' is a JSON {type(value).__name__}, expected text"
    return str(value), ""


class JsonLinesReader(Reader):
    """One JSON object per line; the first object's keys are the columns."""

    def columns(self) -> list[str] | None:
        self.lines = iter(self.handle)
        for raw in self.lines:
            self.line += 1
            if raw.strip():
                self.first = (self.line, raw)
                record, reason = self._parse(raw)
                if record is None:
                    raise DataError(f"{self.name}: line {self.line}: {reason}"
                                    f"{header_hint(raw.decode('latin-1'), 'jsonl')}")
                return list(record)
        return None

    @staticmethod
    def _parse(raw: bytes) -> tuple[dict | None, str]:
        try:
            record = json.loads(raw.decode("utf-8", "surrogateescape"))
        except ValueError as error:
            return None, f"not a JSON object ({error})"
        if not isinstance(record, dict):
            return None, f"a JSON {type(record).__name__}, expected an object"
        return record, ""

    def records(self, wanted: list[str]) -> Iterator[tuple]:
        def rows():
            yield self.first
            for raw in self.lines:
                self.line += 1
                yield self.line, raw

        for line, raw in rows():
            if not raw.strip():
                continue
            raw = raw.rstrip(b"\n").rstrip(b"\r")
            record, reason = self._parse(raw)
            if record is None:
                yield line, None, "", reason, raw
                continue
            values = []
            for column in wanted:
                if column not in record:
                    yield line, None, column, f"no '{column}' key", raw
                    break
                value, reason = _json_text(record[column], column)
                if value is None:
                    yield line, None, column, reason, raw
                    break
                values.append(value)
            else:
                yield line, values, "", "", raw


class ParquetReader(Reader):
    """A Parquet file through pyarrow, ``batch_rows`` rows at a time; only the wanted columns are read."""

    unit = "row"
    batch_rows = 8192

    def __init__(self, path: str, name: str):
        super().__init__(None, name)
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        try:
            self.file = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as error:
            raise DataError(f"{name}: not a readable Parquet file ({str(error).strip().splitlines()[0]})") from None

    def columns(self) -> list[str] | None:
        self.schema = self.file.schema_arrow
        return list(self.schema.names)

    def _text_column(self, array, column: str) -> list:
        pa = self.pa
        kind = array.type
        if pa.types.is_dictionary(kind):
            array, kind = array.dictionary_decode(), kind.value_type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind) or \
                pa.types.is_large_binary(kind) or getattr(pa.types, "is_string_view", lambda _: False)(kind):
            # as bytes: bytes that are not UTF-8 are then named per row, not a failure of the whole batch
            return array.cast(pa.large_binary()).to_pylist()
        if pa.types.is_null(kind):  # a column with no value at all (e.g. an empty table's)
            return [None] * len(array)
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) or \
                pa.types.is_temporal(kind) or pa.types.is_decimal(kind):
            return [None if v is None else v.encode() for v in array.cast(pa.large_string()).to_pylist()]
        raise DataError(f"{self.name}: column '{column}' holds {kind}, expected text")

    def records(self, wanted: list[str]) -> Iterator[tuple]:
        for column in wanted:
            self._text_column(self.pa.array([], type=self.schema.field(column).type), column)  # type check first
        try:
            batches = self.file.iter_batches(batch_size=self.batch_rows, columns=wanted, use_threads=False)
            yield from self._rows(batches, wanted)
        except self.pa.ArrowException as error:
            raise DataError(f"{self.name}: after row {self.line}: the Parquet file is corrupt "
                            f"({str(error).strip().splitlines()[0]})") from None

    def _rows(self, batches, wanted: list[str]) -> Iterator[tuple]:
        row = 0
        for batch in batches:
            columns = [self._text_column(batch.column(i), column) for i, column in enumerate(wanted)]
            for cells in zip(*columns):
                row += 1
                self.line = row
                values = []
                for column, cell in zip(wanted, cells):
                    try:
                        values.append("" if cell is None else cell.decode("utf-8"))
                    except UnicodeDecodeError as error:
                        raw = {c: (v.decode("utf-8", "backslashreplace") if v is not None else None)
                               for c, v in zip(wanted, cells)}
                        yield row, None, column, f"bytes that are not UTF-8 at byte {error.start}", raw
                        break
                else:
                    yield row, values, "", "", cells

    def raw_text(self, raw) -> str:
        if isinstance(raw, dict):
            return json.dumps(raw, ensure_ascii=False)
        return json.dumps([None if v is None else v.decode("utf-8", "backslashreplace") for v in raw],
                          ensure_ascii=False)


def open_reader(source: str | Path | IO[bytes], file_format: str) -> Reader:
    """A reader of ``source`` in ``file_format``; Parquet needs a file it can seek in (no stream, no
    outer compression: Parquet compresses inside)."""
    if file_format == "parquet":
        if not isinstance(source, (str, Path)) or str(source) == "-":
            raise DataError(f"{getattr(source, 'name', source) if not isinstance(source, str) else '<stdin>'}: "
                            f"Parquet is read from a file, not a stream or standard input")
        if not Path(source).is_file():
            raise DataError(f"{source}: no such file")
        if split_name(str(source))[1]:
            raise DataError(f"{source}: a compressed Parquet file cannot be read; Parquet compresses inside, "
                            f"so decompress the file first")
        return ParquetReader(str(source), str(source))
    name, handle = open_binary(source)
    if file_format == "csv":
        return CsvReader(handle, name)
    if file_format == "jsonl":
        return JsonLinesReader(handle, name)
    return TsvReader(handle, name)
