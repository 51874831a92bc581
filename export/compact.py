"""The compact variant: fp32 arithmetic on weights stored as fp16, half the size of ``model.onnx``.

Every large fp32 weight is stored as fp16 and widened back by a ``Cast`` node that reads only that
weight; ONNX Runtime folds such casts when it loads the model, so the session it runs is an fp32
graph whose weights carry fp16's 11-bit mantissa (relative rounding below 5e-4), at fp32's speed.
It is for shipping a model in little space (the packaged model) where dynamic int8, the smaller
file, moves too many labels; it is judged against fp32 like every variant.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from argvalues.variants import COMPACT, FP32, VARIANT_FILES

#: Smaller tensors (biases, layer-norm scales, the position of the pad id) stay fp32: they weigh
#: little and some feed integer or shape arithmetic.
MIN_ELEMENTS = 1024
#: Operators whose parameters stay as they are: a quantized graph's scales must stay constants for
#: ONNX Runtime to fuse its QDQ pairs into int8 kernels.
QDQ_OPERATORS = {"QuantizeLinear", "DequantizeLinear"}
#: How ONNX Runtime's quantizers name a weight's quantization parameters; dynamic int8 multiplies by
#: its scales in plain Mul nodes, and fp16 would round them.
QUANTIZATION_SUFFIXES = ("_scale", "_zero_point")
#: What the compact format names: each narrowed weight ``NAME.fp16``, the cast that widens it ``NAME.widen``.
NARROWED_SUFFIX, WIDEN_SUFFIX = ".fp16", ".widen"


def compact_model(source: Path, target: Path) -> int:
    """Write ``source`` (an fp32 ONNX model) to ``target`` with its large weights stored as fp16;
    returns how many tensors were narrowed."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from export.ensemble import save_onnx

    model = onnx.load(str(source))
    quantization = {name for node in model.graph.node if node.op_type in QDQ_OPERATORS for name in node.input}
    widen = []
    for tensor in model.graph.initializer:
        if (tensor.data_type != TensorProto.FLOAT or int(np.prod(tensor.dims)) < MIN_ELEMENTS
                or tensor.name in quantization or tensor.name.endswith(QUANTIZATION_SUFFIXES)):
            continue
        name = tensor.name
        narrow = numpy_helper.to_array(tensor).astype(np.float16)
        tensor.CopyFrom(numpy_helper.from_array(narrow, name + NARROWED_SUFFIX))
        widen.append(helper.make_node("Cast", [name + NARROWED_SUFFIX], [name], to=TensorProto.FLOAT,
                                      name=name + WIDEN_SUFFIX))
    nodes = widen + list(model.graph.node)  # the casts first: the nodes stay in topological order
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    save_onnx(model, target)
    return len(widen)


def widened_model(source: Path, target: Path) -> int:
    """The inverse of :func:`compact_model`: write ``source`` (a compact model) to ``target`` as a plain
    fp32 model, its fp16 weights widened and their casts removed (for tools that need ``model.onnx``,
    such as quantisation, from a directory that ships the compact file alone); returns how many
    tensors were widened."""
    import onnx
    from onnx import numpy_helper

    from export.ensemble import save_onnx

    model = onnx.load(str(source))
    widened = 0
    for tensor in model.graph.initializer:
        if tensor.name.endswith(NARROWED_SUFFIX):
            wide = numpy_helper.to_array(tensor).astype(np.float32)
            tensor.CopyFrom(numpy_helper.from_array(wide, tensor.name[:-len(NARROWED_SUFFIX)]))
            widened += 1
    nodes = [node for node in model.graph.node if not node.name.endswith(WIDEN_SUFFIX)]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    save_onnx(model, target)
    return widened


def make_compact(model_dir: Path) -> dict:
    narrowed = compact_model(model_dir / VARIANT_FILES[FP32], model_dir / VARIANT_FILES[COMPACT])
    return {"how": f"fp32 arithmetic; {narrowed} weight tensors stored as fp16 and widened when the model loads"}
