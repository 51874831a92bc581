"""The sidecar ``OUT.meta.json`` written with every ``-o OUT``: what produced the scores file.

It names the model (directory, the sha256 of its ``manifest.json`` and of each file the run read),
the variant and provider, the engine and the options that shape the output, the library versions,
each input's fingerprint, the rows read, scored and rejected, and the start and end time (UTC).
It also holds the sha256 of ``OUT`` itself, so a reader can tell that the two belong together.
"""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from argvalues.digest import sha256_of

MANIFEST_NAME = "manifest.json"
LIBRARIES = ("argvalues", "onnxruntime-gpu", "onnxruntime", "tokenizers", "numpy", "pandas")


def meta_path(target: Path) -> Path:
    return target.with_name(f"{target.name}.meta.json")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def library_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Versions of the installed libraries the scoring path runs on (those not installed are left out)."""
    versions = {"python": platform.python_version()}
    for name in (*LIBRARIES, *extra):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def model_record(model_dir: Path, files: dict[str, str]) -> dict:
    """The model directory, the sha256 of its manifest (which lists every file's), and of the files read."""
    manifest = model_dir / MANIFEST_NAME
    return {"directory": str(model_dir.resolve()),
            "manifest_sha256": sha256_of(manifest) if manifest.is_file() else None,
            "files": files}


def sidecar(run: dict, target: Path, written: Path, rejects: Path | None, rows: int, rejected: int, started: str,
            resumed: bool, long_texts: dict | None = None) -> bytes:
    """The sidecar's bytes: ``run`` (model, variant, provider, engine, options, versions, inputs),
    the output ``target`` (whose bytes are still at ``written``, before the rename) and the counts
    (``long_texts``: the model's max length, the rows longer, the windows scored, the rows cut)."""
    record = {
        "output": {"path": str(target.resolve()), "sha256": sha256_of(written), "bytes": written.stat().st_size},
        "rejects_file": str(rejects) if rejects else None,
        **run,
        "rows": {"read": rows + rejected, "scored": rows, "rejected": rejected},
        "long_texts": long_texts,
        "started": started,
        "finished": utc_now(),
        "resumed": resumed,
    }
    return (json.dumps(record, indent=1) + "\n").encode()


def run_record(model_dir: Path, fingerprint: dict, variant: str, provider: str, engine: str,
               libraries: tuple[str, ...] = ()) -> dict:
    """What a run is, for the sidecar: from its journal ``fingerprint`` (inputs, model files, options)."""
    return {"model": model_record(model_dir, fingerprint["model"]), "variant": variant, "provider": provider,
            "engine": engine, "options": fingerprint["options"], "versions": library_versions(libraries),
            "inputs": fingerprint["inputs"]}
