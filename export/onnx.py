"""Export a trained checkpoint to a self-contained ONNX model directory with Optimum.

The directory holds ``model.onnx``, ``config.json`` (id2label), the tokenizer files,
``argvalues.json`` (labels, thresholds, template, max length) and ``manifest.json`` (source,
CV metrics, sha256 of the ONNX file, library versions, the parity check). It is built in a
temporary directory beside the target and renamed into place only once the ONNX model agrees
with the PyTorch one, so a failed export leaves nothing at the output path.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from argvalues import __version__
from argvalues.digest import sha256_of
from argvalues.contract import ARGUMENT_COLUMNS, ID_COLUMN, LABELS, read_arguments, read_labels
from argvalues.errors import ExportParityError, ModelDirError
from argvalues.metrics import apply_thresholds
from argvalues.model_config import SCORING_CONFIG_NAME, ScoringConfig
from argvalues.variants import VARIANT_FILES, onnx_files

MANIFEST_NAME = "manifest.json"
DEFAULT_OUTPUT = "argvalues-model"
DEFAULT_ATOL = 1e-4
PARITY_SAMPLE_NAME = "parity-sample.tsv"
#: Where 'argvalues train --distill' puts the run's student (trainer.cv.STUDENT_DIR).
STUDENT_CHECKPOINT = "student/best"

#: Used for the parity check when a checkpoint carries no sample of its own held-out arguments.
FALLBACK_ARGUMENTS = pd.DataFrame(
    [
        ["X1", "We should ban fast food", "in favor of", "fast food harms the health of children and costs the public"],
        ["X2", "We should subsidize public transport", "against", "people should be free to choose how they travel"],
        ["X3", "We should protect old forests", "in favor of", "nature has a value of its own and future generations need it"],
        ["X4", "We should abolish school uniforms", "against", "uniforms keep order and respect a long tradition"],
    ],
    columns=ARGUMENT_COLUMNS,
)

LIBRARIES = ["torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime-gpu", "onnxruntime", "tokenizers"]


def resolve_checkpoint(source: str | Path) -> tuple[Path, Path | None]:
    """The checkpoint to export from a run directory (its distilled ``student/best`` when the run
    made one, else its ``best/``) or a checkpoint directory."""
    source = Path(source)
    if not source.exists():
        raise ModelDirError(f"{source}: no such run or checkpoint directory")
    if (source / "best" / SCORING_CONFIG_NAME).is_file() and (source / STUDENT_CHECKPOINT / SCORING_CONFIG_NAME).is_file():
        return source / STUDENT_CHECKPOINT, source
    if (source / "best" / SCORING_CONFIG_NAME).is_file():
        return source / "best", source
    if (source / SCORING_CONFIG_NAME).is_file():
        return source, source.parent if (source.parent / "cv-report.json").is_file() else None
    raise ModelDirError(
        f"{source}: neither a training run (with best/{SCORING_CONFIG_NAME}) nor a checkpoint with {SCORING_CONFIG_NAME}"
    )


def check_safetensors(checkpoint: Path) -> None:
    """Weights are only ever read from safetensors: a pickled checkpoint could run code when loaded."""
    if not (checkpoint / "model.safetensors").is_file():
        pickled = [p.name for p in checkpoint.glob("*.bin")] + [p.name for p in checkpoint.glob("*.pt*")]
        hint = f" (found {', '.join(sorted(pickled))}: pickle files are never loaded)" if pickled else ""
        raise ModelDirError(f"{checkpoint}: missing model.safetensors{hint}")


def library_versions() -> dict:
    versions = {"argvalues": __version__}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


PARITY_LABELS_NAME = "parity-labels.tsv"


def parity_arguments(checkpoint: Path) -> pd.DataFrame:
    sample = checkpoint / PARITY_SAMPLE_NAME
    return read_arguments(sample) if sample.is_file() else FALLBACK_ARGUMENTS


def parity_truth(checkpoint: Path, arguments: pd.DataFrame) -> np.ndarray | None:
    """The labels of the parity sample, when the run saved them (for the official F1 of each variant)."""
    path = checkpoint / PARITY_LABELS_NAME
    if not path.is_file():
        return None
    labels = read_labels(path).set_index(ID_COLUMN)
    if not arguments[ID_COLUMN].isin(labels.index).all():
        return None
    return labels.loc[arguments[ID_COLUMN], LABELS].to_numpy()


def export_onnx(checkpoint: Path, target: Path, opset: int | None) -> None:
    """Optimum's ONNX export of one checkpoint into ``target``: model.onnx, its config, the tokenizer.

    A mean-pooling checkpoint is not a class Optimum can load by itself, so it is loaded here and
    exported with ``onnx_export_from_model`` (the same exporter and ONNX config, from a loaded model).
    """
    from optimum.exporters.onnx import main_export, onnx_export_from_model

    from trainer.pooling import checkpoint_pooling

    if checkpoint_pooling(str(checkpoint)) == "mean":
        from trainer.modeling import load_classifier

        model = load_classifier(str(checkpoint))
        # Optimum tells a model's library by the module its class is defined in; this one is a
        # transformers PreTrainedModel defined in argvalues, so it is exported as a subclass that says so.
        model.__class__ = type(type(model).__name__, (type(model),), {"__module__": "transformers.argvalues"})
        onnx_export_from_model(model, target, opset=opset, task="text-classification", do_validation=False)
    else:
        main_export(str(checkpoint), output=target, task="text-classification", library_name="transformers",
                    opset=opset, do_validation=False, local_files_only=True)


def pytorch_probabilities(checkpoint: Path, arguments: pd.DataFrame) -> np.ndarray:
    from trainer.data import ArgumentDataset, predict_probabilities
    from trainer.modeling import load_classifier, load_tokenizer

    scoring = ScoringConfig.load(checkpoint)
    tokenizer = load_tokenizer(str(checkpoint))
    dataset = ArgumentDataset(arguments, scoring.template, tokenizer, scoring.max_length)
    return predict_probabilities(load_classifier(str(checkpoint)), dataset, tokenizer)


def check_parity(checkpoint: Path, model_dir: Path, arguments: pd.DataFrame, atol: float,
                 torch_probabilities: np.ndarray | None = None) -> dict:
    """Compare PyTorch and ONNX Runtime probabilities on real arguments; raise beyond ``atol``."""
    from scorer.model import ScoringModel

    scoring = ScoringConfig.load(model_dir)
    if torch_probabilities is None:
        torch_probabilities = pytorch_probabilities(checkpoint, arguments)
    onnx_probabilities = ScoringModel(model_dir, device="cpu", variant="fp32").probabilities(arguments, batch_size=16)
    difference = float(np.abs(torch_probabilities - onnx_probabilities).max())
    thresholds = np.asarray(scoring.thresholds, dtype=np.float32)
    # a label may only flip where PyTorch's probability lies within the tolerance of its threshold
    flips = apply_thresholds(torch_probabilities, thresholds) != apply_thresholds(onnx_probabilities, thresholds)
    near = np.abs(torch_probabilities - thresholds) <= atol
    result = {"rows": len(arguments), "max_abs_difference": difference, "atol": atol,
              "label_flips": int(flips.sum()), "label_flips_beyond_tolerance": int((flips & ~near).sum())}
    if difference > atol or result["label_flips_beyond_tolerance"]:
        raise ExportParityError(
            f"the ONNX model disagrees with PyTorch on {len(arguments)} arguments: largest probability "
            f"difference {difference:.2e} > tolerance {atol:.0e}; nothing was written"
        )
    return result


def build_variants(names: list[str], checkpoint: Path, staging: Path, arguments: pd.DataFrame,
                   torch_probabilities: np.ndarray, log: Callable[[str], None]) -> dict:
    """Make each requested variant in ``staging`` and check it against PyTorch fp32 on the parity sample."""
    from export.variants import MAKERS, compare_with_pytorch
    from scorer.model import ScoringModel, cuda_usable

    thresholds = np.asarray(ScoringConfig.load(staging).thresholds, dtype=np.float32)
    truth = parity_truth(checkpoint, arguments)
    results = {}
    for name in names:
        started = time.perf_counter()
        info = MAKERS[name](staging)
        info["file"] = VARIANT_FILES[name]
        device = "cuda" if name == "fp16" and cuda_usable() else "cpu"
        try:
            probabilities = ScoringModel(staging, device=device, variant=name).probabilities(arguments, batch_size=16)
            info.update(checked_on=device, rows=len(arguments),
                        **compare_with_pytorch(torch_probabilities, probabilities, thresholds, truth))
        except Exception as error:  # e.g. an fp16 graph the CPU provider cannot run: recorded, never picked
            info.update(checked_on=None, default_ok=False, check_error=str(error).splitlines()[0][:300])
        info["sha256"] = sha256_of(staging / info["file"])
        info["bytes"] = (staging / info["file"]).stat().st_size
        info["seconds"] = round(time.perf_counter() - started, 1)
        results[name] = info
        drift = f", official F1 {info['f1']:.4f} vs PyTorch {info['f1_pytorch']:.4f}" if "f1" in info else ""
        log(f"variant {name}: " + (f"largest difference {info['max_abs_difference']:.1e}{drift}, "
                                   f"{'picked by default' if info['default_ok'] else 'NOT picked by default'}"
                                   if info.get("checked_on") else f"not checked here ({info['check_error']})"))
    return results


def _onnx_record(onnx_path: Path) -> dict:
    """The manifest's entry for the model file: name, sha256, size, and the same for its external tensors."""
    graph, *data = onnx_files(onnx_path)
    record = {"file": graph.name, "sha256": sha256_of(graph), "bytes": graph.stat().st_size}
    if data:
        record["external_data"] = {"file": data[0].name, "sha256": sha256_of(data[0]), "bytes": data[0].stat().st_size}
    return record


def _readable_as_umask_allows(directory: Path) -> None:
    """Give the model directory the modes a plain ``mkdir`` and ``open`` would: ``mkdtemp`` makes it
    0700 and onnx writes external tensors 0600, which would hide the model from the account that
    scores with it."""
    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)
    for path in directory.iterdir():
        if path.is_file():
            path.chmod(0o666 & ~umask)


def export_model(source: str | Path, output: str | Path = DEFAULT_OUTPUT, atol: float = DEFAULT_ATOL,
                 opset: int | None = None, log: Callable[[str], None] = print, variants: tuple[str, ...] = (),
                 ensemble: bool = False, join: tuple[str | Path, ...] = ()) -> dict:
    """Export ``source`` (run or checkpoint) to the model directory ``output``; returns the manifest.

    With ``ensemble`` the fold models of the run, and of every run in ``join``, become one model.
    """
    checkpoint, run_dir = resolve_checkpoint(source)
    if join and not ensemble:
        raise ModelDirError("--join adds runs to an ensemble: use it with --ensemble")
    joined = [Path(run) for run in join]
    output = Path(output)
    if output.exists() and not (output / MANIFEST_NAME).is_file() and any(output.iterdir()):
        raise ModelDirError(f"{output}: exists and is not an argvalues model directory; choose another --output")
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        manifest = _export_into(checkpoint, run_dir, staging, atol, opset, log, list(variants), ensemble, joined)
        _readable_as_umask_allows(staging)
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"exported {checkpoint} to {output} (parity: largest difference "
        f"{manifest['parity']['max_abs_difference']:.1e} on {manifest['parity']['rows']} arguments)")
    return manifest


def _export_ensemble(checkpoint: Path, run_dir: Path | None, joined: list[Path], staging: Path,
                     arguments: pd.DataFrame, opset: int | None, log: Callable[[str], None]) -> tuple[dict, np.ndarray]:
    """Export every fold model (of the run and the ``joined`` runs) and join them into
    ``staging/model.onnx``; returns the manifest part and PyTorch's mean probabilities on the parity
    sample. Writes ``staging``'s scoring config: the run's, with thresholds chosen on all the runs'
    out-of-fold predictions together when runs are joined."""
    from export.ensemble import (fold_members, joined_thresholds, member_records, merge_mean_probability,
                                 pytorch_mean_probabilities)

    if run_dir is None:
        raise ModelDirError(f"{checkpoint}: --ensemble needs a training run directory (with folds/), not a checkpoint")
    runs = [run_dir] + joined
    if len({run.resolve() for run in runs}) < len(runs):
        raise ModelDirError("--join names a run twice (or the run itself)")
    folds_of_run = {run: fold_members(run) for run in runs}
    members = [(run, fold, model) for run in runs for fold, model in folds_of_run[run]]
    if len(members) < 2:
        raise ModelDirError(f"{run_dir}: --ensemble needs at least 2 finished folds, found {len(members)}")
    scoring = ScoringConfig.load(checkpoint)
    part = {"runs": [str(run.resolve()) for run in runs], "combine": "mean of probabilities",
            "thresholds_from": "the run's out-of-fold predictions (each argument scored by the fold model that "
                               "did not train on it)"}
    if joined:
        choice = joined_thresholds(runs, scoring.threshold_strategy)
        scoring.thresholds, scoring.threshold_strategy = choice["thresholds"], choice["strategy"]
        part["thresholds_from"] = ("the mean of the runs' out-of-fold predictions (each argument scored, in each "
                                   "run, by the fold model that did not train on it)")
        part["joined_out_of_fold"] = {key: choice[key] for key in ("crossfit_f1", "tuned_f1")}
        log(f"{len(runs)} runs joined: {choice['strategy']} thresholds chosen on their joined out-of-fold "
            f"predictions (cross-fitted F1 {choice['crossfit_f1'][choice['strategy']]:.4f})")
    member_files = []
    for run, fold, member in members:
        check_safetensors(member)
        target = staging if not member_files else staging / ".members" / f"{len(member_files)}"
        log(f"exporting fold {fold} of {run} ({member}) with Optimum's ONNX exporter")
        export_onnx(member, target, opset)
        member_files.append(target / "model.onnx")
    merged = staging / ".members" / "merged" / "model.onnx"
    merged.parent.mkdir()
    merge_mean_probability(member_files, merged)
    for path in onnx_files(staging / "model.onnx"):  # the first member's, exported there with its config
        path.unlink()
    for path in onnx_files(merged):  # the graph and, for a large ensemble, its tensors (model.onnx.data)
        path.replace(staging / path.name)
    shutil.rmtree(staging / ".members")
    scoring.save(staging)  # the run's thresholds, or the joined ensemble's
    torch_probabilities = pytorch_mean_probabilities([m for _, _, m in members], arguments, scoring)
    records = [{"run": str(run.resolve()), **record} for run in runs for record in member_records(folds_of_run[run])]
    part.update(members=records, thresholds=scoring.thresholds, threshold_strategy=scoring.threshold_strategy)
    log(f"joined {len(members)} fold models into one ONNX model (mean of their probabilities)")
    return part, torch_probabilities


def _export_into(checkpoint: Path, run_dir: Path | None, staging: Path, atol: float, opset: int | None,
                 log: Callable[[str], None], variants: list[str], ensemble_of_folds: bool = False,
                 joined: list[Path] | None = None) -> dict:
    check_safetensors(checkpoint)
    started = time.perf_counter()
    arguments = parity_arguments(checkpoint)
    ensemble = None
    if ensemble_of_folds:
        ensemble, torch_probabilities = _export_ensemble(checkpoint, run_dir, joined or [], staging, arguments,
                                                         opset, log)
    else:
        log(f"exporting {checkpoint} with Optimum's ONNX exporter")
        export_onnx(checkpoint, staging, opset)
        torch_probabilities = pytorch_probabilities(checkpoint, arguments)
        shutil.copy2(checkpoint / SCORING_CONFIG_NAME, staging / SCORING_CONFIG_NAME)
    parity = check_parity(checkpoint, staging, arguments, atol, torch_probabilities)
    built = build_variants(variants, checkpoint, staging, arguments, torch_probabilities, log) if variants else {}
    if built:
        scoring = ScoringConfig.load(staging)
        scoring.variants = {name: {"file": info["file"], "default_ok": info["default_ok"]} for name, info in built.items()}
        scoring.save(staging)
    cv_summary = checkpoint / "cv-summary.json"
    manifest = {
        "format_version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source_checkpoint": str(checkpoint.resolve()),
        "run": str(run_dir.resolve()) if run_dir else None,
        "cv": json.loads(cv_summary.read_text()) if cv_summary.is_file() else None,
        "onnx": _onnx_record(staging / "model.onnx"),
        "parity": parity,
        "ensemble": ensemble,
        "variants": built,
        "versions": library_versions(),
        "export_seconds": round(time.perf_counter() - started, 1),
    }
    (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
