"""The k fold models of a run as one ONNX model that outputs the mean of their probabilities.

Each fold checkpoint is exported with Optimum; the graphs are joined with ``onnx.compose``
(member ``k``'s names get the prefix ``foldK_``, the inputs stay shared), and a small head takes
the sigmoid of each member's logits, averages them and turns the mean back into a logit. The
scorer applies a sigmoid to whatever the model outputs, so it scores an ensemble unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from argvalues.errors import ArgvaluesError, ModelDirError
from trainer.config import OOF_PROBABILITIES_NAME, RUN_CONFIG_NAME

EPSILON = 1e-7  # keeps logit(mean) finite when every member is certain


def fold_members(run_dir: Path) -> list[tuple[int, Path]]:
    """(fold, checkpoint) for every finished fold of a run, in fold order."""
    members = []
    for fold_dir in sorted((run_dir / "folds").glob("fold-*"), key=lambda p: int(p.name.split("-")[1])):
        if (fold_dir / "record.json").is_file() and (fold_dir / "model" / "model.safetensors").is_file():
            members.append((int(fold_dir.name.split("-")[1]), fold_dir / "model"))
    return members


#: What a run's fold models must share with the other runs of one ensemble: the scorer feeds every
#: member the same tokens, built by one template, one tokenizer and one length limit.
SHARED_INPUT = ("model", "template", "max_length")


def check_joinable(run_dirs: list[Path]) -> None:
    """Refuses unfinished runs, and runs whose members would need different inputs."""
    configs = []
    for run_dir in run_dirs:
        path = run_dir / RUN_CONFIG_NAME
        if not path.is_file() or not (run_dir / OOF_PROBABILITIES_NAME).is_file():
            raise ModelDirError(f"{run_dir}: not a finished training run "
                                f"(no {RUN_CONFIG_NAME} or {OOF_PROBABILITIES_NAME})")
        configs.append(json.loads(path.read_text()))
    for run_dir, config in zip(run_dirs[1:], configs[1:]):
        differing = [key for key in SHARED_INPUT if config.get(key) != configs[0].get(key)]
        if differing:
            raise ModelDirError(f"cannot join {run_dir} to {run_dirs[0]}: " + ", ".join(
                f"{key} {config.get(key)!r} vs {configs[0].get(key)!r}" for key in differing))


def mean_out_of_fold(run_dirs: list[Path]) -> pd.DataFrame:
    """The mean of the runs' out-of-fold probabilities, one row per argument (indexed by its ID, in
    the first run's order), with the first run's ``fold`` of each argument.

    Every argument's out-of-fold probability in each run comes from a model that did not train on
    it, so their mean is what the joined ensemble would have said without seeing it (the runs may
    split the folds differently).
    """
    from argvalues.contract import ID_COLUMN, LABELS

    check_joinable(run_dirs)
    frames = [pd.read_csv(run_dir / OOF_PROBABILITIES_NAME, sep="\t", dtype={ID_COLUMN: str}).set_index(ID_COLUMN)
              for run_dir in run_dirs]
    for run_dir, frame in zip(run_dirs[1:], frames[1:]):
        if len(frame) != len(frames[0]) or not frame.index.isin(frames[0].index).all():
            raise ModelDirError(f"cannot join {run_dir} to {run_dirs[0]}: their out-of-fold predictions cover "
                                "different arguments (trained on different data or --limit)")
    order = frames[0].index
    mean = frames[0][["fold"]].copy()
    mean[LABELS] = np.mean([frame.loc[order, LABELS].to_numpy(dtype=np.float64) for frame in frames], axis=0)
    return mean


def joined_out_of_fold(run_dirs: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets, the runs' mean out-of-fold probabilities (``mean_out_of_fold``) and the first run's
    folds. The targets are read from the labels the first run trained on."""
    from argvalues.contract import ID_COLUMN, LABELS
    from trainer.config import as_list
    from trainer.training_data import read_training_pairs

    mean = mean_out_of_fold(run_dirs)
    config = json.loads((run_dirs[0] / RUN_CONFIG_NAME).read_text())
    try:
        arguments, targets = read_training_pairs(as_list(config["arguments"]), as_list(config["labels"]))
    except (OSError, ArgvaluesError) as error:
        raise ModelDirError(f"{run_dirs[0]}: the training labels are needed to choose the joined ensemble's "
                            f"thresholds and could not be read: {error}") from None
    row_of = pd.Series(np.arange(len(arguments)), index=arguments[ID_COLUMN].astype(str))
    return targets[row_of.loc[mean.index].to_numpy()], mean[LABELS].to_numpy(), mean["fold"].to_numpy()


def joined_thresholds(run_dirs: list[Path], strategy: str) -> dict:
    """Thresholds for the mean of several runs' fold models, chosen on their joined out-of-fold
    predictions as a single run chooses its own (``choose_thresholds``)."""
    from argvalues.metrics import choose_thresholds

    targets, probabilities, folds = joined_out_of_fold(run_dirs)
    return choose_thresholds(targets, probabilities, folds, strategy)


def merge_mean_probability(member_files: list[Path], output: Path, output_name: str = "logits") -> None:
    """Write one ONNX model whose output is logit(mean_k sigmoid(logits_k)) over the member models."""
    import onnx
    from onnx import compose, helper

    members = [onnx.load(str(path)) for path in member_files]
    first = members[0]
    opset = max(entry.version for entry in first.opset_import if entry.domain in ("", "ai.onnx"))
    nodes, initializers, value_info, member_probabilities = [], [], [], []
    for k, model in enumerate(members):
        graph = compose.add_prefix_graph(model.graph, f"fold{k}_", rename_inputs=False)
        nodes.extend(graph.node)
        initializers.extend(graph.initializer)
        value_info.extend(graph.value_info)
        logits = graph.output[0].name
        probability = f"fold{k}_probability"
        nodes.append(helper.make_node("Sigmoid", [logits], [probability], name=f"fold{k}_sigmoid"))
        member_probabilities.append(probability)
    k = len(members)
    initializers += [
        helper.make_tensor("ensemble_scale", onnx.TensorProto.FLOAT, [], [1.0 / k]),
        helper.make_tensor("ensemble_one", onnx.TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor("ensemble_low", onnx.TensorProto.FLOAT, [], [EPSILON]),
        helper.make_tensor("ensemble_high", onnx.TensorProto.FLOAT, [], [1.0 - EPSILON]),
    ]
    nodes += [
        helper.make_node("Sum", member_probabilities, ["ensemble_sum"], name="ensemble_sum"),
        helper.make_node("Mul", ["ensemble_sum", "ensemble_scale"], ["ensemble_mean"], name="ensemble_mean"),
        helper.make_node("Clip", ["ensemble_mean", "ensemble_low", "ensemble_high"], ["ensemble_p"],
                         name="ensemble_clip"),
        helper.make_node("Sub", ["ensemble_one", "ensemble_p"], ["ensemble_q"], name="ensemble_q"),
        helper.make_node("Log", ["ensemble_p"], ["ensemble_log_p"], name="ensemble_log_p"),
        helper.make_node("Log", ["ensemble_q"], ["ensemble_log_q"], name="ensemble_log_q"),
        helper.make_node("Sub", ["ensemble_log_p", "ensemble_log_q"], [output_name], name="ensemble_logit"),
    ]
    output_info = onnx.ValueInfoProto()
    output_info.CopyFrom(first.graph.output[0])
    output_info.name = output_name
    graph = helper.make_graph(nodes, "fold_ensemble", list(first.graph.input), [output_info], initializers,
                              value_info=value_info)
    merged = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                               producer_name="argvalues export --ensemble")
    merged.ir_version = first.ir_version
    save_onnx(merged, output)


#: Above this many bytes of tensors a model is saved with its tensors in one external file: protobuf
#: cannot serialize a message over 2 GB (ten all-mpnet-base-v2 members are 4.4 GB).
EXTERNAL_DATA_BYTES = 1 << 30


def save_onnx(model, output: Path) -> None:
    """``onnx.save``, with the tensors in ``output``.data (argvalues.variants.external_data_path) when
    they are too large for one file."""
    import onnx

    from argvalues.variants import external_data_path

    tensor_bytes = sum(len(t.raw_data) or t.ByteSize() for t in model.graph.initializer)
    external_data_path(output).unlink(missing_ok=True)
    if tensor_bytes <= EXTERNAL_DATA_BYTES:
        onnx.save(model, str(output))
    else:
        onnx.save(model, str(output), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=external_data_path(output).name, size_threshold=1024)


def pytorch_mean_probabilities(checkpoints: list[Path], arguments, scoring) -> np.ndarray:
    from trainer.data import ArgumentDataset, predict_probabilities
    from trainer.modeling import load_classifier, load_tokenizer

    tokenizer = load_tokenizer(str(checkpoints[0]))
    dataset = ArgumentDataset(arguments, scoring.template, tokenizer, scoring.max_length)
    return np.mean([predict_probabilities(load_classifier(str(c)), dataset, tokenizer) for c in checkpoints], axis=0)


def member_records(members: list[tuple[int, Path]]) -> list[dict]:
    """Each member fold with its checkpoint and best epoch, for the manifest."""
    records = []
    for fold, checkpoint in members:
        record = json.loads((checkpoint.parent / "record.json").read_text())
        best = record["epochs"][record["best_epoch"] - 1]
        records.append({"fold": fold, "checkpoint": str(checkpoint.resolve()), "best_epoch": record["best_epoch"],
                        "f1_at_its_best_global_threshold": best["f1_at_best_global_threshold"],
                        "its_best_global_threshold": best["best_global_threshold"]})
    return records
