"""Texts longer than the model's max length: scored as overlapping windows (the default), or cut.

With ``windows``, a row whose tokens do not fit is read as windows of max-length tokens that
overlap by :func:`window_overlap` tokens, each scored like a row of its own; for an argument the
premise (the template's first segment) is windowed and every window keeps the stance and
conclusion. A row's probability for each value is the largest over its windows: a value argued
in one paragraph of a long text is found there (benchmarks/README.md, "Long texts"). A row gets
at most ``max_windows`` windows; the rest of it is cut, and counted. With ``truncate`` a row is
cut at the max length (the second segment is cut too when it is the longer one), as every model
was before windows.

Windows are made by the tokenizer itself (its truncation with overflow and stride), so they are
cut exactly where the model's own truncation would cut. A row's windows depend on that row alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LONG_TEXT = ("windows", "truncate")
DEFAULT_MAX_WINDOWS = 32


def window_overlap(max_length: int) -> int:
    """Tokens two neighbouring windows share: a quarter of the window, so a sentence cut at one
    window's end is read whole at the next one's start."""
    return max_length // 4


@dataclass
class Encoded:
    """A chunk's rows as the model reads them: ``encodings`` (one per window, rows in order, each
    row's windows together) and, per row, how many windows it has, whether it was longer than the
    max length and whether it was cut (more windows than allowed, or ``truncate``)."""

    encodings: list
    windows_per_row: np.ndarray
    long: np.ndarray
    cut: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.windows_per_row)

    @property
    def windowed(self) -> bool:
        return len(self.encodings) != self.rows


class RowEncoder:
    """Tokenizes rows of (text, pair) into windows or cut rows, with one tokenizer set up once."""

    def __init__(self, tokenizer, max_length: int, long_text: str = "windows", max_windows: int = DEFAULT_MAX_WINDOWS,
                 pair: bool = True):
        if long_text not in LONG_TEXT:
            raise ValueError(f"long_text must be one of {LONG_TEXT}, got {long_text!r}")
        if max_windows < 1:
            raise ValueError(f"max_windows must be at least 1, got {max_windows}")
        self.tokenizer, self.max_length = tokenizer, max_length
        self.long_text, self.max_windows = long_text, max_windows
        self.overlap = window_overlap(max_length) if long_text == "windows" else 0
        # only_first: the premise is windowed and every window keeps the whole second segment.
        strategy = "only_first" if pair and long_text == "windows" else "longest_first"
        tokenizer.enable_truncation(max_length=max_length, stride=self.overlap, strategy=strategy)
        # The longest second segment a window keeps whole: the tokenizer cannot make windows (it
        # stops the process) when the second segment leaves no more first-segment tokens than the overlap.
        self.longest_pair = max_length // 2
        self.specials = tokenizer.num_special_tokens_to_add(is_pair=True) if pair else 0

    def encode(self, text: list[str], pair: list[str] | None) -> Encoded:
        if pair is not None and self.long_text == "windows":
            pair = self._pairs_that_fit(text, pair)
        rows = self.tokenizer.encode_batch(list(zip(text, pair)) if pair is not None else text)
        long = np.fromiter((bool(e.overflowing) for e in rows), dtype=bool, count=len(rows))
        if self.long_text == "truncate":
            return Encoded(rows, np.ones(len(rows), dtype=np.int64), long, long.copy())
        encodings, counts = [], np.empty(len(rows), dtype=np.int64)
        for index, encoding in enumerate(rows):
            windows = [encoding, *encoding.overflowing][: self.max_windows]
            encodings.extend(windows)
            counts[index] = len(windows)
        cut = np.fromiter((len(e.overflowing) + 1 > self.max_windows for e in rows), dtype=bool, count=len(rows))
        return Encoded(encodings, counts, long, cut)

    def _pairs_that_fit(self, text: list[str], pair: list[str]) -> list[str]:
        """``pair`` with each second segment too long to share a window with the premise cut to
        :attr:`longest_pair` tokens (a row that fits whole is left as it is)."""
        pair_lengths = [len(e.ids) for e in self.tokenizer.encode_batch(pair, add_special_tokens=False)]
        suspects = [i for i, length in enumerate(pair_lengths) if length > self.longest_pair]
        if not suspects:
            return pair
        pair = list(pair)
        premises = self.tokenizer.encode_batch([text[i] for i in suspects], add_special_tokens=False)
        for index, premise in zip(suspects, premises):
            premise_length = len(premise.ids) + bool(premise.overflowing)  # enough to tell whether the row fits
            if premise_length + pair_lengths[index] + self.specials > self.max_length:
                kept = self.tokenizer.encode(pair[index], add_special_tokens=False).offsets[self.longest_pair - 1][1]
                pair[index] = pair[index][:kept]
        return pair


@dataclass
class LengthCounts:
    """Rows longer than the max length, windows scored and rows cut, over a chunk or a run."""

    long_rows: int = 0
    windows: int = 0
    cut_rows: int = 0

    @classmethod
    def of(cls, prepared) -> LengthCounts:
        """The counts of a chunk prepared for scoring (:class:`~scorer.model.Prepared` or :class:`Encoded`)."""
        return cls(int(prepared.long.sum()), int(prepared.windows_per_row.sum()), int(prepared.cut.sum()))

    def add(self, other: LengthCounts) -> None:
        self.long_rows += other.long_rows
        self.windows += other.windows
        self.cut_rows += other.cut_rows


def row_probabilities(window_probabilities: np.ndarray, windows_per_row: np.ndarray) -> np.ndarray:
    """Each row's probabilities: the largest over its windows (rows of one window as they are)."""
    if len(window_probabilities) == len(windows_per_row):
        return window_probabilities
    starts = np.concatenate([[0], np.cumsum(windows_per_row)[:-1]])
    return np.maximum.reduceat(window_probabilities, starts, axis=0)
