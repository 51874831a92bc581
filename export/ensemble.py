"""The k fold models of a run as one ONNX model that outputs the mean of their probabilities.

Each fold checkpoint is exported with Optimum; the graphs are joined with ``onnx.compose``
(member ``k``'s names get the prefix ``foldK_``, the inputs stay shared), and a small head takes
the sigmoid of each member's logits, averages them and turns the mean back into a logit. The
scorer applies a sigmoid to whatever the model outputs, so it scores an ensemble unchanged.
"""

from __future__ import annotations

from pathlib import Path

from trainer.run_dir import FoldDir

EPSILON = 1e-7  # keeps logit(mean) finite when every member is certain


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


def member_records(members: list[FoldDir]) -> list[dict]:
    """Each member fold with its checkpoint and best epoch, for the manifest."""
    records = []
    for fold in members:
        record = fold.read_record()
        best = record["epochs"][record["best_epoch"] - 1]
        records.append({"fold": fold.number, "checkpoint": str(fold.model.resolve()),
                        "best_epoch": record["best_epoch"],
                        "f1_at_its_best_global_threshold": best["f1_at_best_global_threshold"],
                        "its_best_global_threshold": best["best_global_threshold"]})
    return records
