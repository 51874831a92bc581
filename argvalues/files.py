"""Replacing files so that a reader sees the old content or the new, never a mix (run records,
the scoring journal)."""

from __future__ import annotations

import json
import os
from pathlib import Path


def fsync_directory(directory: Path) -> None:
    """Put a rename inside ``directory`` on disk (where the platform allows opening a directory)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: a reader sees the old content or the new, never a mix."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_directory(path.parent)


def write_json_atomically(path: Path, data, indent: int = 1) -> None:
    """:func:`write_atomically` for a JSON document."""
    write_atomically(path, json.dumps(data, indent=indent).encode())
