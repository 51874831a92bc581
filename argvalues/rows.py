"""Read argument files row by row, with one policy for rows that break the contract.

The formats (TSV, CSV, JSON Lines, Parquet; compressed or not) are read by
:mod:`argvalues.formats`; this module checks what a row must hold, the same for every format.
The ValueEval files are tab-separated with no quoting: a quote is ordinary text, and a field
cannot hold a tab or a newline (either one shows up as a row with the wrong number of fields).
Every row is checked: field count (CSV and TSV), UTF-8 (the text formats), a non-empty ``Argument ID``, non-empty text in the
fields the template uses, a known ``Stance`` when the template uses it, and IDs unique across
all inputs of a run. A bad row either stops the run (``fail``: an error naming file, line and
column) or is set aside as a :class:`Reject` (``skip``) for the caller to count and write out.

The TSV reader is hand-written rather than ``pandas.read_csv`` because pandas cannot report *which* row
broke, cannot skip it with a reason, and turns a short row into NaNs silently; parsing here is
well over 100k rows/s, hundreds of times the scoring speed, so it costs nothing measurable.
"""

from __future__ import annotations

import difflib
import hashlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from argvalues.errors import DataError, shown, shown_names
from argvalues.formats import DECOMPRESSION_ERRORS, Reader, header_hint, input_format, open_reader

ON_BAD_ROW = ("fail", "skip")
REJECT_COLUMNS = ["File", "Line", "Column", "Reason", "Row"]
REJECTS_HEADER = "\t".join(REJECT_COLUMNS) + "\n"


@dataclass(frozen=True)
class Reject:
    """A row set aside under ``--on-bad-row skip``."""

    file: str
    line: int
    column: str
    reason: str
    raw: str
    unit: str = "line"  # Parquet counts rows

    def message(self) -> str:
        """The one-line error ``--on-bad-row fail`` stops with."""
        column = f": column '{self.column}'" if self.column else ""
        return f"{self.file}: {self.unit} {self.line}{column}: {self.reason}"

    def tsv_line(self) -> str:
        row = self.raw.replace("\\", "\\\\").replace("\t", "\\t").replace("\r", "\\r").replace("\n", "\\n")
        return "\t".join([self.file, str(self.line), self.column, self.reason, row]) + "\n"


@dataclass
class Chunk:
    """Good rows (a frame of the required columns), their line numbers, and the rejects met since
    the last chunk."""

    frame: pd.DataFrame
    rejects: list[Reject] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    #: The ``--keep-columns`` values of the good rows (None when none are kept).
    kept: pd.DataFrame | None = None


class SeenIds:
    """Argument IDs seen so far in a run, as sorted 64-bit hashes: 8 bytes per row (a Python set of
    the strings would take ~70), merged in place into a buffer that grows by 1.5x, so memory grows
    by about 8 MB per million rows without the copies ``np.union1d`` would make. Two different IDs
    share a hash with probability about 3e-8 at 1M rows."""

    def __init__(self) -> None:
        self._buffer = np.empty(1 << 16, dtype=np.uint64)
        self._size = 0
        self._pending: set[int] = set()
        self.rows = 0  # records read so far in the run: row-number IDs count on across inputs

    @staticmethod
    def _hash(identifier: str) -> int:
        return int.from_bytes(hashlib.blake2b(identifier.encode(), digest_size=8).digest(), "little")

    def add(self, identifier: str) -> bool:
        """Record ``identifier``; False if it was seen before."""
        value = self._hash(identifier)
        if value in self._pending:
            return False
        sorted_part = self._buffer[: self._size]
        position = int(np.searchsorted(sorted_part, np.uint64(value)))
        if position < self._size and sorted_part[position] == np.uint64(value):
            return False
        self._pending.add(value)
        if len(self._pending) >= 8192:
            self._merge()
        return True

    def _merge(self) -> None:
        new = np.sort(np.fromiter(self._pending, dtype=np.uint64, count=len(self._pending)))
        self._pending.clear()
        size, total = self._size, self._size + len(new)
        if total > len(self._buffer):
            grown = np.empty(max(total, int(len(self._buffer) * 1.5)), dtype=np.uint64)
            grown[:size] = self._buffer[:size]
            self._buffer = grown
        buffer = self._buffer
        # Merge from the back: each block of old values moves right by the number of new values
        # that sort after it, then the new value goes in front of that block.
        positions = np.searchsorted(buffer[:size], new)
        end = size
        for i in range(len(new) - 1, -1, -1):
            start = int(positions[i])
            buffer[start + i + 1: end + i + 1] = buffer[start:end]
            buffer[start + i] = new[i]
            end = start
        self._size = total


def _suggest(missing: str, found: list[str]) -> str:
    close = difflib.get_close_matches(missing, found, n=1, cutoff=0.6)
    if not close:
        close = [c for c in found if c.strip().lower() == missing.lower()]
    return f" (is '{shown(close[0])}' meant to be '{missing}'?)" if close else ""


def spelling(value: str) -> str:
    """``value`` as it is looked up among a column's spellings: case, surrounding and repeated spaces ignored."""
    return " ".join(value.split()).lower()


def _other_spellings(spellings: dict[str, str]) -> str:
    others = [name for name, value in spellings.items() if name != value]
    return ", ".join(f"'{name}'" for name in others) + "; case and spaces aside"


#: Why a value cannot go into TSV output (which has no quoting).
_NOT_ONE_LINE = "holds a tab or a line break, which TSV output cannot hold (use --output-format csv, jsonl or parquet)"


class ArgumentRows:
    """Iterate the good rows of one input in chunks; ``seen`` is shared across a run's inputs.

    ``required`` are the contract's column names (the ID first); ``columns`` maps any of them to
    the input's own name (``--column``, ``--id-column``). With ``row_ids``, an input without the
    ID column gets the row number as its ID, counted across the inputs sharing ``seen`` (a
    rejected row keeps its number). ``keep`` names input columns carried through to the output
    (:attr:`Chunk.kept`). With ``one_line``, an ID or kept value holding a tab or a line break
    is a bad row (TSV output has no quoting). Chunk frames use the contract's names.
    """

    def __init__(self, source: str | Path | IO[bytes], required: list[str], *, on_bad_row: str = "fail",
                 seen: SeenIds | None = None, id_column: str = "Argument ID",
                 nonempty: tuple[str, ...] = (), spellings: dict[str, dict[str, str]] | None = None,
                 columns: dict[str, str] | None = None, keep: list[str] | tuple[str, ...] = (),
                 file_format: str | None = None, row_ids: bool = False, one_line: bool = False, log=None,
                 field_names: dict[str, str] | None = None):
        if on_bad_row not in ON_BAD_ROW:
            raise ValueError(f"on_bad_row must be one of {ON_BAD_ROW}")
        self.source = source
        self.required = required
        self.on_bad_row = on_bad_row
        self.seen = seen if seen is not None else SeenIds()
        self.id_column = id_column
        self.nonempty = [c for c in nonempty if c in required]
        # column -> {spelling: the value the row gets}; any other value is a bad row
        self.spellings = {c: v for c, v in (spellings or {}).items() if c in required}
        self.spelled = [(required.index(c), v) for c, v in self.spellings.items()]
        self.names = {c: (columns or {}).get(c, c) for c in required}  # contract name -> the input's name
        self.mappable = columns is not None  # the caller takes --column: a missing column's message says so
        self.keep = list(dict.fromkeys(keep))
        self.file_format = input_format(source, file_format)
        self.row_ids, self.one_line, self.log = row_ids, one_line, log
        self.field_names = field_names or {}  # what a field is called in reasons ("text" for a Premise read as a text)
        self.row_numbers = False  # True once the header showed no ID column and row_ids allows numbers
        self.name = str(source)

    def _wanted(self, header: list[str] | None, reader: Reader) -> list[str]:
        """The input columns to read, in the order: the required ones (but a numbered ID), then kept ones."""
        if header is None:
            raise DataError(f"{self.name}: the file is empty; expected a header line with {self.required}")
        duplicated = sorted({c for c in header if header.count(c) > 1})
        if duplicated:
            raise DataError(f"{self.name}: line 1: column(s) {shown_names(duplicated)} appear more than once")
        id_name = self.names[self.id_column]
        # A near miss ('argument_id') is more likely a misnamed ID column than none: that stays an error.
        if self.row_ids and id_name not in header and not _suggest(id_name, header):
            self.row_numbers = True
            if self.log:
                self.log(f"note: {self.name} has no '{self.id_column}' column: the output's {self.id_column} is "
                         f"the row number (pass --id-column NAME to use a column of the input)")
        read = [c for c in self.required if not (self.row_numbers and c == self.id_column)]
        expected = [self.names[c] for c in read]
        missing = [name for name in expected if name not in header]
        if missing:
            hint = (header_hint(header[0], self.file_format) if len(header) == 1 else "") or getattr(reader, "hint", "")
            mapped = any(self.names[c] != c for c in read)
            unmapped = any(self.names[c] == c for c in read if self.names[c] in missing)
            how = ("; for other names use --column FIELD=NAME (--id-column NAME for the ID)"
                   if self.mappable and unmapped else "")
            raise DataError(
                f"{self.name}: line 1: missing column(s) {missing}{_suggest(missing[0], header)}{hint}; expected "
                f"the columns {expected}{' (as mapped by --column/--id-column)' if mapped else ''} but found "
                f"{shown_names(header)}{how}"
            )
        absent = [name for name in self.keep if name not in header]
        if absent:
            raise DataError(f"{self.name}: line 1: --keep-columns names column(s) {absent} that the input lacks; "
                            f"found {shown_names(header)}")
        return list(dict.fromkeys(expected + self.keep))

    def _check(self, row: dict[str, str]) -> tuple[str, str] | None:
        """(column, reason) of the first contract rule ``row`` (contract names) breaks, else None."""
        identifier = row[self.id_column]
        if not identifier.strip():
            return self.names[self.id_column], f"empty {self.id_column}"
        for column in self.nonempty:
            if not row[column].strip():
                return self.names[column], f"empty {self.field_names.get(column, column)}"
        for column, spellings in self.spellings.items():
            if spelling(row[column]) not in spellings:
                return self.names[column], (f"unknown value '{shown(row[column])}'; expected one of "
                                            f"{list(dict.fromkeys(spellings.values()))} (or {_other_spellings(spellings)})")
        if self.one_line and ("\t" in identifier or "\n" in identifier or "\r" in identifier):
            return self.names[self.id_column], f"the {self.id_column} {_NOT_ONE_LINE}"
        if not self.seen.add(identifier):
            return self.names[self.id_column], f"duplicate {self.id_column} '{shown(identifier)}'"
        return None

    def chunks(self, chunk_rows: int) -> Iterator[Chunk]:
        """Chunks of up to ``chunk_rows`` good rows; a header-only file yields nothing."""
        reader = open_reader(self.source, self.file_format)
        self.name = name = reader.name
        try:
            wanted = self._wanted(reader.columns(), reader)
            read = [c for c in self.required if not (self.row_numbers and c == self.id_column)]
            positions = [wanted.index(self.names[c]) for c in read]
            kept_positions = [wanted.index(k) for k in self.keep]
            plain = positions == list(range(len(read))) and not self.row_numbers
            good: list[list[str]] = []
            kept: list[list[str]] = []
            good_lines: list[int] = []
            rejects: list[Reject] = []
            seen = self.seen
            for line, values, column, reason, raw in reader.records(wanted):
                seen.rows += 1
                if values is not None:
                    row_values = values[: len(read)] if plain else [values[p] for p in positions]
                    if self.row_numbers:
                        row_values.insert(0, str(seen.rows))
                    problem = self._check(dict(zip(self.required, row_values)))
                    if problem is None and self.one_line and kept_positions:
                        problem = next(((k, f"the kept column {_NOT_ONE_LINE}") for k, p in zip(self.keep, kept_positions)
                                        if "\t" in values[p] or "\n" in values[p] or "\r" in values[p]), None)
                    if problem is None:
                        for position, spellings in self.spelled:
                            row_values[position] = spellings[spelling(row_values[position])]
                        good.append(row_values)
                        if kept_positions:
                            kept.append([values[p] for p in kept_positions])
                        good_lines.append(line)
                        if len(good) == chunk_rows:
                            yield self._chunk(good, kept, rejects, good_lines)
                            good, kept, good_lines, rejects = [], [], [], []
                        continue
                    column, reason = problem
                reject = Reject(name, line, column, reason, reader.raw_text(raw), reader.unit)
                if self.on_bad_row == "fail":
                    raise DataError(reject.message())
                rejects.append(reject)
            if good or rejects:
                yield self._chunk(good, kept, rejects, good_lines)
        except DECOMPRESSION_ERRORS as error:
            raise DataError(f"{name}: after line {reader.line}: the compressed file is truncated or corrupt "
                            f"({error})") from None
        except OSError as error:
            raise DataError(f"{name}: after line {reader.line}: cannot read ({error})") from None
        finally:
            reader.close()
            handle = reader.handle
            if handle is not None and handle is not getattr(sys.stdin, "buffer", None) \
                    and isinstance(self.source, (str, Path)):
                handle.close()

    def _chunk(self, good, kept, rejects, lines) -> Chunk:
        return Chunk(pd.DataFrame(good, columns=self.required), rejects, lines,
                     pd.DataFrame(kept, columns=self.keep) if self.keep else None)
