"""Export a trained checkpoint to a self-contained ONNX model directory with Optimum.

The directory holds ``model.onnx``, ``config.json`` (id2label), the tokenizer files,
``argvalues.json`` (labels, thresholds, template, max length), ``manifest.json`` (source,
CV metrics, sha256 of the ONNX file, library versions, the parity check) and ``README.md``, the
model card made from them (:mod:`export.model_card`). It is built in a
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
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from argvalues import __version__
from argvalues.contract import ARGUMENT_COLUMNS
from argvalues.digest import sha256_of
from argvalues.errors import ExportParityError, ModelDirError
from argvalues.metrics import apply_thresholds
from argvalues.model_config import SCORING_CONFIG_NAME, ScoringConfig
from argvalues.variants import onnx_files
from trainer.run_dir import CheckpointDir, FoldDir, RunDir

MANIFEST_NAME = "manifest.json"
DEFAULT_OUTPUT = "argvalues-model"
DEFAULT_ATOL = 1e-4

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


@dataclass(frozen=True)
class ExportOptions:
    """What ``argvalues export`` makes of a checkpoint, named as its command-line options are.

    ``atol``: the largest probability difference allowed between ONNX and PyTorch; ``opset``: the
    ONNX opset (None: Optimum's choice); ``variants``: extra variants to build and check
    (``optimized``, ``int8``, ``int8-static``, ``bf16``, ``int8-openvino``, ``fp16``; the CLI's default:
    :func:`export.build_variants.default_variants`); ``ensemble``: export every fold model of the run as one model; ``join``:
    with ``ensemble``, more runs whose fold models join it.
    """

    atol: float = DEFAULT_ATOL
    opset: int | None = None
    variants: tuple[str, ...] = ()
    ensemble: bool = False
    join: tuple[str | Path, ...] = ()

    def __post_init__(self) -> None:
        if self.join and not self.ensemble:
            raise ModelDirError("--join adds runs to an ensemble: use it with --ensemble")


def resolve_checkpoint(source: str | Path) -> tuple[CheckpointDir, RunDir | None]:
    """The checkpoint to export from a run directory (its distilled student, ``student/best``, when
    the run made one, else its ``best/``) or a checkpoint directory, and the run it belongs to (None
    for a checkpoint outside a finished run)."""
    source = Path(source)
    if not source.exists():
        raise ModelDirError(f"{source}: no such run or checkpoint directory")
    run = RunDir(source)
    if run.best.has_scoring_config():
        return (run.student if run.student.has_scoring_config() else run.best), run
    if CheckpointDir(source).has_scoring_config():
        return CheckpointDir(source), RunDir.of_checkpoint(source)
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


def parity_arguments(checkpoint: CheckpointDir) -> pd.DataFrame:
    """The checkpoint's held-out sample, or :data:`FALLBACK_ARGUMENTS` when it carries none."""
    sample = checkpoint.parity_arguments()
    return sample if sample is not None else FALLBACK_ARGUMENTS


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


def check_parity(model_dir: Path, arguments: pd.DataFrame, atol: float, torch_probabilities: np.ndarray) -> dict:
    """Compare PyTorch and ONNX Runtime probabilities on real arguments; raise beyond ``atol``."""
    from scorer.model import ScoringModel

    scoring = ScoringConfig.load(model_dir)
    onnx_probabilities = ScoringModel(model_dir, device="cpu", variant="fp32",
                                     long_text="truncate").probabilities(arguments, batch_size=16)
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


def export_model(source: str | Path, output: str | Path = DEFAULT_OUTPUT, options: ExportOptions = ExportOptions(),
                 log: Callable[[str], None] = print) -> dict:
    """Export ``source`` (run or checkpoint) to the model directory ``output``; returns the manifest.

    With ``options.ensemble`` the fold models of the run, and of every run in ``options.join``,
    become one model.
    """
    checkpoint, run = resolve_checkpoint(source)
    output = Path(output)
    if output.exists() and not (output / MANIFEST_NAME).is_file() and any(output.iterdir()):
        raise ModelDirError(f"{output}: exists and is not an argvalues model directory; choose another --output")
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        manifest = _export_into(checkpoint, run, staging, options, log)
        _readable_as_umask_allows(staging)
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"exported {checkpoint.path} to {output} (parity: largest difference "
        f"{manifest['parity']['max_abs_difference']:.1e} on {manifest['parity']['rows']} arguments)")
    return manifest


def _export_ensemble(checkpoint: CheckpointDir, run: RunDir | None, staging: Path, arguments: pd.DataFrame,
                     options: ExportOptions, log: Callable[[str], None]) -> tuple[dict, np.ndarray]:
    """Export every fold model (of the run and the ``options.join`` runs) and join them into
    ``staging/model.onnx``; returns the manifest part and PyTorch's mean probabilities on the parity
    sample. Writes ``staging``'s scoring config: the run's, with thresholds chosen on all the runs'
    out-of-fold predictions together when runs are joined."""
    from export.ensemble import member_records, merge_mean_probability
    from trainer.evaluation import checkpoint_probabilities
    from trainer.run_dir import joined_thresholds

    if run is None:
        raise ModelDirError(f"{checkpoint.path}: --ensemble needs a training run directory (with folds/), "
                            "not a checkpoint")
    runs = [run] + [RunDir(path) for path in options.join]
    if len({run_dir.path.resolve() for run_dir in runs}) < len(runs):
        raise ModelDirError("--join names a run twice (or the run itself)")
    folds_of_run = {run_dir: run_dir.finished_folds() for run_dir in runs}
    members: list[tuple[RunDir, FoldDir]] = [(run_dir, fold) for run_dir in runs for fold in folds_of_run[run_dir]]
    if len(members) < 2:
        raise ModelDirError(f"{run.path}: --ensemble needs at least 2 finished folds, found {len(members)}")
    scoring = ScoringConfig.load(checkpoint.path)
    part = {"runs": [str(run_dir.path.resolve()) for run_dir in runs], "combine": "mean of probabilities",
            "thresholds_from": "the run's out-of-fold predictions (each argument scored by the fold model that "
                               "did not train on it)"}
    if options.join:
        choice = joined_thresholds([run_dir.path for run_dir in runs], scoring.threshold_strategy)
        scoring.thresholds, scoring.threshold_strategy = choice["thresholds"], choice["strategy"]
        part["thresholds_from"] = ("the mean of the runs' out-of-fold predictions (each argument scored, in each "
                                   "run, by the fold model that did not train on it)")
        part["joined_out_of_fold"] = {key: choice[key] for key in ("crossfit_f1", "tuned_f1")}
        log(f"{len(runs)} runs joined: {choice['strategy']} thresholds chosen on their joined out-of-fold "
            f"predictions (cross-fitted F1 {choice['crossfit_f1'][choice['strategy']]:.4f})")
    member_files = []
    for run_dir, fold in members:
        check_safetensors(fold.model)
        target = staging if not member_files else staging / ".members" / f"{len(member_files)}"
        log(f"exporting fold {fold.number} of {run_dir.path} ({fold.model}) with Optimum's ONNX exporter")
        export_onnx(fold.model, target, options.opset)
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
    torch_probabilities = checkpoint_probabilities([fold.model for _, fold in members], arguments, scoring)
    records = [{"run": str(run_dir.path.resolve()), **record}
               for run_dir in runs for record in member_records(folds_of_run[run_dir])]
    part.update(members=records, thresholds=scoring.thresholds, threshold_strategy=scoring.threshold_strategy)
    log(f"joined {len(members)} fold models into one ONNX model (mean of their probabilities)")
    return part, torch_probabilities


def _export_into(checkpoint: CheckpointDir, run: RunDir | None, staging: Path, options: ExportOptions,
                 log: Callable[[str], None]) -> dict:
    from export.build_variants import build_variants, scoring_entries
    from export.error_rates import record_error_rates
    from export.heldout import held_out_rows
    from export.model_card import write_model_card
    from trainer.evaluation import checkpoint_probabilities

    check_safetensors(checkpoint.path)
    started = time.perf_counter()
    arguments = parity_arguments(checkpoint)
    ensemble = None
    if options.ensemble:
        ensemble, torch_probabilities = _export_ensemble(checkpoint, run, staging, arguments, options, log)
    else:
        log(f"exporting {checkpoint.path} with Optimum's ONNX exporter")
        export_onnx(checkpoint.path, staging, options.opset)
        torch_probabilities = checkpoint_probabilities([checkpoint.path], arguments)
        shutil.copy2(checkpoint.path / SCORING_CONFIG_NAME, staging / SCORING_CONFIG_NAME)
    parity = check_parity(staging, arguments, options.atol, torch_probabilities)
    built = {}
    if options.variants:
        held_out = held_out_rows(checkpoint, run, arguments, checkpoint.parity_truth(arguments))
        built = build_variants(list(options.variants), staging, held_out, log)
        scoring = ScoringConfig.load(staging)
        scoring.variants = scoring_entries(built)
        scoring.save(staging)
    manifest = {
        "format_version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source_checkpoint": str(checkpoint.path.resolve()),
        "run": str(run.path.resolve()) if run else None,
        "cv": checkpoint.read_summary(),
        "onnx": _onnx_record(staging / "model.onnx"),
        "parity": parity,
        "ensemble": ensemble,
        "variants": built,
        "versions": library_versions(),
        "export_seconds": round(time.perf_counter() - started, 1),
    }
    distilled_from = (manifest["cv"] or {}).get("distilled_from")
    measured_on = run if run is not None or not distilled_from else RunDir(distilled_from[0])
    manifest["error_rates"] = record_error_rates(staging, manifest, measured_on, log)
    (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    write_model_card(staging, manifest, run)
    return manifest
