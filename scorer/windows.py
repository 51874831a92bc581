"""Texts longer than the model's max length: scored as overlapping windows (the default), or cut.

With ``windows``, a row whose tokens do not fit the max length is read as windows of
``window_tokens`` tokens (:data:`DEFAULT_WINDOW_TOKENS`, at most the max length) that overlap by
:func:`window_overlap` tokens, each scored like a row of its own; a row that fits is read whole,
as it always was. For an argument the
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
#: A long row's windows: about the length of the arguments the models learnt from (3 in 4 of the
#: training arguments fit 43 tokens), not the max length: on documents joined from 8 held-out
#: arguments, each fold model's windows of 48 tokens closed 86% of the gap between truncation and
#: scoring each argument alone, windows of 128 tokens 44% (benchmarks/README.md, "Long texts").
DEFAULT_WINDOW_TOKENS = 48
DEFAULT_MAX_WINDOWS = 64
MIN_WINDOW = 16


def window_overlap(max_length: int) -> int:
    """Tokens two neighbouring windows share: a quarter of the window, so a sentence cut at one
    window's end is read whole at the next one's start."""
    return max_length // 4


#: Rows tokenized per call: the tokenizer's own objects (several KB a window) live for one call only.
ENCODE_ROWS = 1024


class Window:
    """One window's token ids and token type ids, as arrays: a tokenizer Encoding holds tokens,
    offsets and masks too, about ten times the memory, which a chunk of long rows multiplies
    (measured: peak RSS 1.8 GB for a chunk of 8,192 rows of 11 windows each, kept as Encodings)."""

    __slots__ = ("ids", "type_ids")

    def __init__(self, encoding):
        self.ids = np.asarray(encoding.ids, dtype=np.int64)
        self.type_ids = np.asarray(encoding.type_ids, dtype=np.int8)


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
                 pair: bool = True, window_tokens: int | None = None):
        """``window_tokens``: the length of a long row's windows (default: the max length); a row
        that fits the max length is read whole whatever it is."""
        if long_text not in LONG_TEXT:
            raise ValueError(f"long_text must be one of {LONG_TEXT}, got {long_text!r}")
        if max_windows < 1:
            raise ValueError(f"max_windows must be at least 1, got {max_windows}")
        window = min(window_tokens or max_length, max_length)
        if window < MIN_WINDOW:
            raise ValueError(f"window_tokens must be at least {MIN_WINDOW}, got {window}")
        self.tokenizer, self.max_length, self.window = tokenizer, max_length, window
        self.long_text, self.max_windows = long_text, max_windows
        self.overlap = window_overlap(window) if long_text == "windows" else 0
        # only_first: the premise is windowed and every window keeps the whole second segment.
        strategy = "only_first" if pair and long_text == "windows" else "longest_first"
        if window == max_length or long_text == "truncate":
            tokenizer.enable_truncation(max_length=max_length, stride=self.overlap, strategy=strategy)
            self.windower = None
        else:  # rows that fit are read whole; those that do not, again, in windows of their own length
            from tokenizers import Tokenizer

            tokenizer.enable_truncation(max_length=max_length, strategy=strategy)
            self.windower = Tokenizer.from_str(tokenizer.to_str())
            self.windower.no_padding()
            self.windower.enable_truncation(max_length=window, stride=self.overlap, strategy=strategy)
        # The longest second segment a window keeps whole: the tokenizer cannot make windows (it
        # stops the process) when the second segment leaves no more first-segment tokens than the overlap.
        self.longest_pair = window // 2
        self.specials = tokenizer.num_special_tokens_to_add(is_pair=True) if pair else 0

    def encode(self, text: list[str], pair: list[str] | None) -> Encoded:
        if pair is not None and self.long_text == "windows":
            pair = self._pairs_that_fit(text, pair)
        windows: list[Window] = []
        counts, long, cut = (np.zeros(len(text), dtype=kind) for kind in (np.int64, bool, bool))
        for start in range(0, len(text), ENCODE_ROWS):
            stop = min(start + ENCODE_ROWS, len(text))
            batch = list(zip(text[start:stop], pair[start:stop])) if pair is not None else text[start:stop]
            encodings = self.tokenizer.encode_batch(batch)
            if self.windower is not None:
                longer = [i for i, e in enumerate(encodings) if e.overflowing]
                for i, again in zip(longer, self.windower.encode_batch([batch[i] for i in longer])):
                    encodings[i] = again  # longer than the max length: longer than a window too
            for index, encoding in enumerate(encodings, start):
                overflowing = encoding.overflowing
                long[index] = bool(overflowing)
                if self.long_text == "truncate":
                    windows.append(Window(encoding))
                    counts[index], cut[index] = 1, long[index]
                    continue
                kept = [encoding, *overflowing][: self.max_windows]
                windows.extend(Window(window) for window in kept)
                counts[index], cut[index] = len(kept), len(overflowing) + 1 > self.max_windows
        return Encoded(windows, counts, long, cut)

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
