"""Crash-safe file output for ``score -o``: a partial file, a journal, and a rename at the end.

While a run goes, results grow in ``.NAME.partial`` beside the target. After every chunk the
partial file (and the rejects file) is flushed to disk, then the journal ``.NAME.journal`` is
replaced atomically with the progress made: where the next chunk starts (in the engine's own
terms), how many bytes of output. Only a complete run renames the partial file to the target.
So after a crash (kill -9, power loss) the target is absent or still the previous complete file, and ``--resume``
truncates the partial file to the last journaled byte and continues from the next chunk. Chunks
are cut the same way on every run, so the resumed output is byte-identical to an uninterrupted
one. The journal holds fingerprints of the inputs, the model and the options that shape the
output; resuming with any of them changed is refused.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from argvalues.errors import ResumeError
from argvalues.files import fsync_directory, write_atomically

JOURNAL_VERSION = 2


def sync_files(*handles) -> None:
    """Put what was written to these open files (None is skipped) on disk."""
    for handle in handles:
        if handle is not None:
            handle.flush()
            os.fsync(handle.fileno())


def partial_path(target: Path) -> Path:
    """Where a file grows before it is renamed to ``target``: hidden, beside it (same filesystem)."""
    return target.with_name(f".{target.name}.partial")


@dataclass
class Progress:
    position: object = None  # where the next chunk starts, in the engine's terms (None: at the start)
    output_bytes: int = 0
    rejects_bytes: int = 0
    rows: int = 0
    rejected: int = 0
    lengths: dict | None = None  # scorer.windows.LengthCounts so far (journals before it: None)


class Journal:
    """The progress record of one ``score -o TARGET`` run, and the paths it governs."""

    def __init__(self, target: Path, rejects_target: Path | None, fingerprint: dict):
        self.target = target
        self.partial = partial_path(target)
        self.path = target.with_name(f".{target.name}.journal")
        self.rejects_target = rejects_target
        self.rejects_partial = partial_path(rejects_target) if rejects_target else None
        self.meta_target = target.with_name(f"{target.name}.meta.json")  # the sidecar (scorer.meta)
        self.meta_partial = partial_path(self.meta_target)
        self.fingerprint = fingerprint
        self.finished = False
        self.started: str | None = None  # when the run began (kept through resumes)

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> Progress:
        """The journaled progress, after checking that it belongs to this very run.

        ``self.finished`` tells whether the run had already written everything and was only
        renaming its files into place when it stopped.
        """
        try:
            data = json.loads(self.path.read_text())
            progress = Progress(**data["progress"])
            self.finished = bool(data.get("finished", False))
            self.started = data.get("started")
        except (OSError, ValueError, KeyError, TypeError):
            raise ResumeError(f"{self.path}: the journal is unreadable; rerun without --resume to start over") from None
        if data.get("version") != JOURNAL_VERSION:
            raise ResumeError(f"{self.path}: written by another version; rerun without --resume to start over")
        for part in ("inputs", "model", "options"):
            if data.get("fingerprint", {}).get(part) != self.fingerprint[part]:
                raise ResumeError(
                    f"cannot resume {self.target}: the {part} changed since the interrupted run "
                    f"({_difference(data.get('fingerprint', {}).get(part), self.fingerprint[part])}); "
                    f"rerun without --resume to start over"
                )
        for partial, size, target in ((self.partial, progress.output_bytes, self.target),
                                      (self.rejects_partial, progress.rejects_bytes, self.rejects_target)):
            if self.finished and partial is not None and not partial.is_file() and target.is_file():
                continue  # already renamed into place
            if partial is not None and (not partial.is_file() or partial.stat().st_size < size):
                raise ResumeError(
                    f"cannot resume {self.target}: {partial} is missing or shorter than the journal records; "
                    f"rerun without --resume to start over"
                )
        return progress

    def save(self, progress: Progress, finished: bool = False) -> None:
        record = {"version": JOURNAL_VERSION, "target": str(self.target), "fingerprint": self.fingerprint,
                  "progress": asdict(progress), "finished": finished, "started": self.started}
        write_atomically(self.path, json.dumps(record, indent=1).encode())

    def discard(self) -> None:
        for path in (self.partial, self.rejects_partial, self.meta_partial, self.path,
                     self.path.with_name(self.path.name + ".tmp")):
            if path is not None:
                path.unlink(missing_ok=True)

    def finish(self, progress: Progress) -> None:
        """Rename the finished files into place, then drop the journal. Safe to repeat after a crash
        part-way through: the journal says the run is finished, and renames already done are skipped."""
        self.save(progress, finished=True)
        if self.rejects_partial is not None and self.rejects_partial.is_file():
            os.replace(self.rejects_partial, self.rejects_target)
        if self.meta_partial.is_file():  # before the output: a new output never appears without its sidecar
            os.replace(self.meta_partial, self.meta_target)
        if self.partial.is_file():
            os.replace(self.partial, self.target)
        fsync_directory(self.target.parent)
        self.path.unlink(missing_ok=True)


def _difference(before, now) -> str:
    if isinstance(before, list) and isinstance(now, list):
        if len(before) != len(now):
            return f"{len(before)} input(s) then, {len(now)} now"
        for old, new in zip(before, now):
            if old != new:
                return f"{new.get('path')} differs"
    if isinstance(before, dict) and isinstance(now, dict):
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        return ", ".join(f"{k}: {before.get(k)!r} then, {now.get(k)!r} now" for k in changed)[:300]
    return "fingerprint differs"
