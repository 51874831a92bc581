"""A model directory cut down to some of its ONNX files (to ship it: the packaged model), whose
records then name only what it holds.

``argvalues export`` writes ``model.onnx`` and its variants, and the directory's records
(``argvalues.json``, ``manifest.json``, the card) name them all. A package that keeps one or two of
those files would otherwise point its readers at files it does not have. :func:`keep_held_files`
makes the records true again: variants whose files are gone leave ``argvalues.json`` and the
manifest; the fp32 model the kept variants were judged against stays on record as the manifest's
``reference`` (its sha256, size, PyTorch parity and speed), without a file name.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from argvalues.error_rates import read_error_rates
from argvalues.model_config import ScoringConfig
from argvalues.variants import EXTERNAL_DATA_SUFFIXES, FP32, VARIANT_FILES, onnx_files
from export.model_card import MODEL_CARD_NAME, render_model_card
from export.onnx import MANIFEST_NAME


def held_variants(model_dir: Path, variants: dict) -> dict:
    """The entries of ``variants`` whose ONNX file ``model_dir`` holds."""
    return {name: info for name, info in variants.items()
            if (model_dir / (info.get("file") or VARIANT_FILES.get(name, ""))).is_file()}


def keep_held_files(model_dir: Path, training: dict | None = None, note: str | None = None) -> None:
    """Rewrite ``argvalues.json``, ``manifest.json`` and the card of ``model_dir`` for the ONNX files it holds.

    ``training``: the training data and the run's out-of-fold figures for the card (see
    :func:`export.model_card.training_data`), which a directory cut from its run can no longer find
    itself; ``note``: a paragraph the card opens with (what the package is). Both are kept in the
    manifest, so a later rewrite keeps them.
    """
    model_dir = Path(model_dir)
    scoring = ScoringConfig.load(model_dir)
    scoring.variants = held_variants(model_dir, scoring.variants)
    manifest = json.loads((model_dir / MANIFEST_NAME).read_text())
    if training is not None:
        manifest["training_data"] = training
    if note is not None:
        manifest["package_note"] = note
    variants = manifest.get("variants") or {}
    onnx = manifest.get("onnx") or {}
    if onnx and not (model_dir / onnx["file"]).is_file():
        manifest["reference"] = {
            "what": "the fp32 model this directory's variants were made from and judged against (not held here)",
            "sha256": onnx.get("sha256"), "bytes": onnx.get("bytes"), "parity": manifest.get("parity"),
            "rows_per_second": (variants.get(FP32) or {}).get("rows_per_second", {})}
        manifest.pop("onnx")
        manifest.pop("parity", None)
    manifest["variants"] = held_variants(model_dir, variants)
    if not manifest["variants"] and "onnx" not in manifest:
        raise ValueError(f"{model_dir} holds none of the ONNX files its records name")
    scoring.save(model_dir)
    (model_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    (model_dir / MODEL_CARD_NAME).write_text(
        render_model_card(scoring, manifest, manifest.get("training_data"), read_error_rates(model_dir)))


def cut_model_dir(source: Path, target: Path, keep: list[str], training: dict | None = None,
                  note: str | None = None) -> Path:
    """Copy ``source`` to ``target`` with only the ONNX files ``keep`` (names), records made true; atomic."""
    source, target = Path(source), Path(target)
    kept = {path.name for name in keep for path in onnx_files(source / name)}
    missing = [name for name in keep if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{source} has no {', '.join(missing)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx_suffixes = (".onnx", *(".onnx" + suffix for suffix in EXTERNAL_DATA_SUFFIXES))
    staged = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for path in source.iterdir():
            if path.is_file() and (not path.name.endswith(onnx_suffixes) or path.name in kept):
                shutil.copy2(path, staged / path.name)
        keep_held_files(staged, training, note)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)  # nothing half-made is left beside the target
        raise
    staged.chmod(0o755)
    if target.exists():
        shutil.rmtree(target)
    staged.rename(target)
    return target
