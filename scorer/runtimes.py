"""OpenVINO behind the scorer: the ``bf16`` and ``int8-openvino`` variants (OpenVINO is a base
dependency on the machines it publishes wheels for).

``bf16``: OpenVINO reads the model directory's ``model.onnx`` as it is and runs it at bfloat16 on a
CPU with AMX-BF16 or AVX512-BF16. ``int8-openvino``: it runs NNCF's int8 QDQ file
(:mod:`export.openvino_int8`) with int8 kernels (VNNI, AMX) and everything not quantized at f32,
so its labels do not depend on whether the CPU has bfloat16 (f32 measured as fast as bf16 there:
the int8 MatMuls are the time). Their results for a row do not depend on how many rows share the
call, but they do depend on padding (a row padded by 5 tokens moved by up to 4e-3 in a measured
case): the scorer therefore feeds it batches of rows of one width only, each row padded (or not)
by a rule of its own length alone (:data:`argvalues.variants.PAD_TO_MULTIPLE`), which makes every
row's result independent of ``--batch-size`` and chunking, exactly.

Several calls run at once (OpenVINO's throughput mode picks how many streams the cores take),
so the small batches of equal-length rows keep the cores busy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from argvalues.errors import ArgvaluesError, ModelDirError
from argvalues.variants import BF16, OPENVINO_HINTS, OPENVINO_INT8

#: What the rest of the graph runs at, by variant.
INFERENCE_PRECISION = {BF16: "bf16", OPENVINO_INT8: "f32"}
OPENVINO_PROVIDER = {BF16: "OpenVINO CPU (bf16)", OPENVINO_INT8: "OpenVINO CPU (int8, f32 elsewhere)"}


class OpenVinoSession:
    """A compiled OpenVINO model with the few things :class:`scorer.model.ScoringModel` asks of a session."""

    def __init__(self, onnx_path: Path, variant: str | None = BF16, threads: int | None = None,
                 hint: str = OPENVINO_HINTS[0]):
        """``variant``: what the graph's unquantized part runs at (:data:`INFERENCE_PRECISION`);
        None: OpenVINO's own default for this CPU (the benchmarks' peer). ``hint``: OpenVINO's
        performance hint (the streams and threads per call; the results do not depend on it)."""
        try:
            import openvino
        except ImportError:
            raise ArgvaluesError(f"--variant {variant} needs OpenVINO, which is not installed (it has no wheel for "
                                 "every machine): pip install openvino") from None
        core = openvino.Core()
        config = {"PERFORMANCE_HINT": hint}
        if variant is not None:
            config["INFERENCE_PRECISION_HINT"] = INFERENCE_PRECISION[variant]
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            self.compiled = core.compile_model(core.read_model(str(onnx_path)), "CPU", config)
        except Exception as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ModelDirError(f"{onnx_path}: OpenVINO cannot load it ({first})") from None
        self.input_names = [port.get_any_name() for port in self.compiled.inputs]
        self.output_width = self.compiled.outputs[0].get_partial_shape()[-1]
        self.precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        count = max(1, int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self.requests = [self.compiled.create_infer_request() for _ in range(count)]

    def run_batches(self, feeds: list[dict]) -> list[np.ndarray]:
        """Logits of each batch, the batches run side by side in OpenVINO's infer requests.

        Round robin over the requests, waited for in turn: no Python callback runs on OpenVINO's
        threads (a callback needs the GIL, and a measured export hung when a queue with one was freed).
        """
        results: list[np.ndarray | None] = [None] * len(feeds)
        running: list[int | None] = [None] * len(self.requests)

        def collect(slot: int) -> None:
            if running[slot] is not None:
                self.requests[slot].wait()
                results[running[slot]] = self.requests[slot].get_output_tensor(0).data.copy()
                running[slot] = None

        for position, batch in enumerate(feeds):
            slot = position % len(self.requests)
            collect(slot)
            self.requests[slot].start_async({name: batch[name] for name in self.input_names})
            running[slot] = position
        for slot in range(len(self.requests)):
            collect(slot)
        return results
