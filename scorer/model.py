"""An exported model directory, loaded for scoring: ONNX Runtime + tokenizers, no torch.

Everything the scorer needs comes from the directory: ``model.onnx``, ``tokenizer.json`` and
``argvalues.json`` (labels, thresholds, template, max length). Every file is checked before any
row is read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from argvalues.errors import ArgvaluesError, ModelDirError
from argvalues.model_config import ARGUMENTS, ScoringConfig
from argvalues.variants import (
    DYNAMIC_INT8,
    OPENVINO_INT8,
    OPENVINO_VARIANTS,
    STATIC_INT8,
    VARIANT_FILES,
    int8_products_saturate,
    pad_multiple,
    performance_hint,
    pick_variant,
    usable_variants,
)
from scorer.batching import DEFAULT_CUDA_BATCH_TOKENS, batch_bounds
from scorer.runtime import check_one_runtime, cuda_check
from scorer.windows import DEFAULT_MAX_WINDOWS, DEFAULT_WINDOW_TOKENS, Encoded, RowEncoder, row_probabilities

TOKENIZER_NAME = "tokenizer.json"
DEVICES = ("auto", "cpu", "cuda")


def cuda_usable() -> bool:
    return cuda_check().usable


def _providers_for(device: str) -> tuple[list[str], str | None]:
    """ONNX Runtime providers for ``device``, and why a present GPU is not used (None if it is, or if none)."""
    if device not in DEVICES:
        raise ArgvaluesError(f"--device must be one of {DEVICES}, got {device!r}")
    check_one_runtime()
    if device == "cpu":
        return ["CPUExecutionProvider"], None
    cuda = cuda_check()
    if device == "cuda" and not cuda.usable:
        raise ArgvaluesError(f"--device cuda: ONNX Runtime's CUDA provider is not usable here: "
                             f"{cuda.reason or 'no NVIDIA GPU driver is loaded'}; use --device cpu or auto")
    if cuda.usable:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"], None
    return ["CPUExecutionProvider"], cuda.reason


def load_model_config(model_dir: Path, variant: str = "auto") -> ScoringConfig:
    """Check a model directory (and a requested variant's name) and read its scoring config.

    Every file is checked before any row is read (and, for ``--engine ray``, before any worker starts).
    """
    if not model_dir.is_dir():
        raise ModelDirError(
            f"model directory {model_dir} does not exist; create one with "
            f"'argvalues export RUN_DIR --output {model_dir}' or pass --model"
        )
    if not (model_dir / TOKENIZER_NAME).is_file():
        raise ModelDirError(f"{model_dir}: missing {TOKENIZER_NAME}; re-export the model with 'argvalues export'")
    config = ScoringConfig.load(model_dir)
    if variant != "auto" and variant not in VARIANT_FILES:
        raise ArgvaluesError(f"--variant must be auto or one of {sorted(VARIANT_FILES)}, got {variant!r}")
    return config


def variant_file(model_dir: Path, config: ScoringConfig, provider: str, variant: str = "auto") -> tuple[str, Path]:
    """The variant to run on ``provider`` and its ONNX file, which must exist."""
    # A directory may hold only some variants (the packaged model ships int8 alone, for its size).
    available = usable_variants({name for name, file in VARIANT_FILES.items() if (model_dir / file).is_file()})
    if (config.variants.get(STATIC_INT8) or {}).get("weights") == "int8" and int8_products_saturate():
        # judged where uint8-by-int8 products are exact (VNNI, AMX): here they can saturate
        available.discard(STATIC_INT8)
    variant = pick_variant(config.variants, provider, variant, available=available)
    onnx_path = model_dir / VARIANT_FILES[variant]
    if not onnx_path.is_file():
        flag = {"optimized": "--optimize", DYNAMIC_INT8: "--quantize", "fp16": "--fp16",
                STATIC_INT8: "--static-int8", OPENVINO_INT8: "--openvino-int8"}.get(variant, "")
        raise ModelDirError(f"{model_dir}: no {variant} variant ({onnx_path.name}); "
                            f"export it with 'argvalues export {flag}'" if flag else
                            f"{model_dir}: missing {onnx_path.name}")
    return variant, onnx_path


class Prepared:
    """A chunk tokenized and batched for :meth:`ScoringModel.infer`: the batches (window positions
    and feeds; iterating gives them) and, per row, its windows and whether it was long or cut."""

    def __init__(self, batches: list[tuple[np.ndarray, dict]], encoded: Encoded):
        self.batches = batches
        self.windows_per_row, self.long, self.cut = encoded.windows_per_row, encoded.long, encoded.cut

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    @property
    def rows(self) -> int:
        return len(self.windows_per_row)


class ScoringModel:
    """Tokenizer, template, thresholds and an ONNX Runtime session of one model directory."""

    def __init__(self, model_dir: str | Path, device: str = "auto", threads: int | None = None,
                 variant: str = "auto", parallel_calls: int | None = None, batch_tokens: int | None = None,
                 openvino_hint: str | None = None, pad_to_multiple: int | None = None, reading: str = ARGUMENTS,
                 long_text: str = "windows", max_windows: int = DEFAULT_MAX_WINDOWS,
                 window_tokens: int | None = DEFAULT_WINDOW_TOKENS):
        """``openvino_hint``, ``pad_to_multiple``: for OpenVINO's variants, instead of what export
        recorded (the hint it measured fastest on this machine; the token multiple it judged with).
        ``reading``: arguments, or a text alone (refused for a model not trained to read texts).
        ``long_text``, ``max_windows``, ``window_tokens``: rows longer than the max length
        (:mod:`scorer.windows`; ``window_tokens`` None: windows of the max length)."""
        self.model_dir = Path(model_dir)
        self.config = load_model_config(self.model_dir, variant)
        self.reading = reading
        self.template = self.config.template_for(reading)
        providers, self.gpu_unused_reason = _providers_for(device)
        self.variant, self.onnx_path = variant_file(self.model_dir, self.config, providers[0], variant)
        self.tokenizer, self.pad_id = self._load_tokenizer()
        self.long_text, self.max_windows = long_text, max_windows
        self.encoder = RowEncoder(self.tokenizer, self.config.max_length, long_text, max_windows,
                                  pair=self.template.text_pair is not None, window_tokens=window_tokens)
        # Dynamic int8 scales activations by each batch's range, so a row's labels would depend on
        # its batch-mates (measured: 190 of 37,920 validation labels changed between batch sizes 64
        # and 16). Static int8 has fixed scales, but ONNX Runtime's CPU kernels still round a row
        # differently with the number of rows in its call (a real MiniLM, AVX512-VNNI: up to 1.5e-7
        # in probability between calls of 1, 2, 3 and 64 rows of one token length, fp32 alike;
        # benchmarks/README.md, "Tried and not kept"). Both run one row per
        # call: every row then sees only itself, whatever --batch-size or chunking, and no row is
        # padded at all (static int8 paid 9% for it there).
        self.rows_per_call = 1 if self.variant in (DYNAMIC_INT8, STATIC_INT8) else None
        # OpenVINO (bf16, int8) batches rows of one width only, each row padded up to a multiple of
        # pad_to_multiple tokens (1 for bf16: no padding), a width that depends on the row alone; its
        # result for a row does not depend on how many rows share the call (measured: bit-identical
        # for calls of 1, 2, 3 and 64 rows; scorer/runtimes.py). Fewer widths are fewer input shapes
        # for OpenVINO to prepare kernels for (argvalues.variants.PAD_TO_MULTIPLE).
        self.equal_length_batches = self.variant in OPENVINO_VARIANTS
        if pad_to_multiple is None:
            pad_to_multiple = pad_multiple(self.config.variants.get(self.variant))
        self.pad_to_multiple = pad_to_multiple if self.equal_length_batches else 1
        # One row per call keeps few of an operator's threads busy; on the CPU such calls run side by
        # side instead, one ONNX Runtime thread each (benchmarks/README.md, "Ray": two
        # single-threaded workers beat one two-threaded engine 1.47x on 2 cores; for static int8 on an
        # AVX2 CPU 1.19x-1.35x, with the same probabilities: a figure in that file's git history).
        cores = threads or len(os.sched_getaffinity(0)) or 1
        if parallel_calls is None:
            parallel_calls = cores if self.rows_per_call and providers[0] == "CPUExecutionProvider" else 1
        self.parallel_calls = parallel_calls
        self._pool = None
        if self.variant in OPENVINO_VARIANTS:
            from scorer.runtimes import OPENVINO_PROVIDER, OpenVinoSession

            hint = openvino_hint or performance_hint(self.config.variants.get(self.variant))
            self.session = OpenVinoSession(self.onnx_path, self.variant, threads, hint)
            self.provider, self.io_binding = OPENVINO_PROVIDER[self.variant], False
            self.input_names = self.session.input_names
            self._check_width(self.session.output_width)
        else:
            self.session = self._load_session(providers, 1 if self.parallel_calls > 1 else cores)
            self.provider = self.session.get_providers()[0]
            if providers[0] != self.provider:  # ONNX Runtime fell back (its own error is in its log above)
                self.gpu_unused_reason = f"ONNX Runtime could not start its {providers[0]} (its log above says why)"
            self.io_binding = self.provider == "CUDAExecutionProvider"
            self.input_names = [i.name for i in self.session.get_inputs()]
            outputs = self.session.get_outputs()
            self._check_width(outputs[0].shape[-1] if outputs and outputs[0].shape else None)
        self._check_inputs()
        # On CUDA, batches by a budget of padded tokens (scorer/batching.py); 0 turns it off.
        if batch_tokens is None:
            batch_tokens = DEFAULT_CUDA_BATCH_TOKENS if self.provider == "CUDAExecutionProvider" else 0
        self.batch_tokens = None if self.rows_per_call else (batch_tokens or None)

    @property
    def labels(self) -> list[str]:
        return self.config.labels

    @property
    def thresholds(self) -> np.ndarray:
        return np.asarray(self.config.thresholds_for(self.reading), dtype=np.float32)

    @property
    def required_columns(self) -> list[str]:
        return self.config.required_columns_for(self.reading)

    def _load_tokenizer(self):
        from tokenizers import Tokenizer

        path = self.model_dir / TOKENIZER_NAME
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as error:  # the Rust library raises its own exception type
            raise ModelDirError(f"{path}: the tokenizer does not load ({error})") from None
        tokenizer.no_padding()  # truncation and windows: scorer.windows.RowEncoder
        pad_id = 0
        tokenizer_config = self.model_dir / "tokenizer_config.json"
        if tokenizer_config.is_file():
            pad_token = json.loads(tokenizer_config.read_text()).get("pad_token")
            if isinstance(pad_token, dict):
                pad_token = pad_token.get("content")
            if pad_token and tokenizer.token_to_id(pad_token) is not None:
                pad_id = tokenizer.token_to_id(pad_token)
        return tokenizer, pad_id

    def _load_session(self, providers: list[str], threads: int | None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # one batch at a time: all cores on each operator, none spent on parallel branches
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads or len(os.sched_getaffinity(0)) or 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            return ort.InferenceSession(str(self.onnx_path), options, providers=providers)
        except Exception as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ModelDirError(f"{self.onnx_path}: not a loadable ONNX model ({first})") from None

    def _check_width(self, width) -> None:
        width = width.get_length() if hasattr(width, "get_length") and width.is_static else width
        if isinstance(width, int) and width != len(self.labels):
            raise ModelDirError(
                f"{self.model_dir}: the ONNX model outputs {width} scores but {len(self.labels)} labels are configured"
            )

    def _check_inputs(self) -> None:
        missing = {"input_ids", "attention_mask"} - set(self.input_names)
        if missing:
            raise ModelDirError(f"{self.onnx_path}: inputs {sorted(missing)} are missing")

    def encode(self, arguments: pd.DataFrame) -> Encoded:
        """The rows through this reading's template, tokenized: windows or cut where too long."""
        text, text_pair = self.template.render(arguments)
        return self.encoder.encode(text, text_pair)

    def probabilities(self, arguments: pd.DataFrame, batch_size: int = 64) -> np.ndarray:
        """Probabilities of every label for every row, in row order.

        Rows (windows) are sorted by token length and batched, each batch padded only to its
        longest row; the results go back to input order, a long row's windows joined.
        """
        return self.infer(self.prepare(arguments, batch_size))

    def prepare(self, arguments: pd.DataFrame, batch_size: int = 64, equal_length: bool | None = None) -> Prepared:
        """Tokenize and build the padded, length-sorted batches (window positions, feeds); no inference.

        Split from :meth:`infer` so a second thread can prepare the next chunk while this one runs.
        ``equal_length``: batches of rows of one width (default: as this variant runs), each row
        padded up to a multiple of :attr:`pad_to_multiple` tokens. A long row's windows are rows here.
        """
        batch_size = self.rows_per_call or batch_size
        equal_length = self.equal_length_batches if equal_length is None else equal_length
        encoded = self.encode(arguments)
        encodings = encoded.encodings
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        widths = self._widths(lengths) if equal_length else lengths
        order = np.argsort(widths, kind="stable")
        if equal_length:  # cut the sorted rows wherever the width changes, too
            cuts = np.flatnonzero(np.diff(widths[order])) + 1
            runs = np.split(order, cuts) if len(order) else []
            groups = [run[start:start + batch_size] for run in runs for start in range(0, len(run), batch_size)]
        else:
            groups = [order[start:end] for start, end in batch_bounds(lengths[order], batch_size, self.batch_tokens)]
        if self.variant in OPENVINO_VARIANTS:
            # longest first: OpenVINO grows its buffers once, not at every longer batch (the first pass
            # over 5,688 arguments ran 1.04x-1.11x faster; the results do not depend on the order)
            groups.reverse()
        return Prepared([(rows, self._feeds([encodings[i] for i in rows], lengths[rows], int(widths[rows].max())))
                         for rows in groups], encoded)

    def _widths(self, lengths: np.ndarray) -> np.ndarray:
        """Each row's padded width: its length up to a multiple of :attr:`pad_to_multiple`, within max_length."""
        if self.pad_to_multiple == 1:
            return lengths
        padded = -(-lengths // self.pad_to_multiple) * self.pad_to_multiple
        return np.maximum(lengths, np.minimum(padded, self.config.max_length))

    def infer(self, prepared: Prepared) -> np.ndarray:
        """Each row's probabilities, in row order (a long row's: the largest over its windows)."""
        batches = prepared.batches
        rows = sum(len(positions) for positions, _ in batches)
        out = np.empty((rows, len(self.labels)), dtype=np.float32)
        run = self._run_bound if self.io_binding else self._run_plain
        if self.variant in OPENVINO_VARIANTS:
            results = self.session.run_batches([feeds for _, feeds in batches])
        elif self.parallel_calls > 1 and len(batches) > 1:
            if self._pool is None:  # ONNX Runtime sessions take concurrent run() calls
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.parallel_calls, thread_name_prefix="argvalues-onnx")
            results = self._pool.map(lambda batch: run(batch[1]), batches)
        else:
            results = (run(feeds) for _, feeds in batches)
        for (positions, _), logits in zip(batches, results):
            out[positions] = 1.0 / (1.0 + np.exp(-logits.astype(np.float32)))
        return row_probabilities(out, prepared.windows_per_row)

    def _run_plain(self, feeds: dict) -> np.ndarray:
        return self.session.run(None, feeds)[0]

    def _run_bound(self, feeds: dict) -> np.ndarray:
        """I/O binding: inputs copied to the device once, outputs left where the provider puts them
        and fetched in one copy (on CUDA this avoids ONNX Runtime's extra staging copies)."""
        binding = self.session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        output = self.session.get_outputs()[0].name
        binding.bind_output(output, "cuda" if self.provider == "CUDAExecutionProvider" else "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def _feeds(self, encodings: list, lengths: np.ndarray, width: int) -> dict:
        """Padded int64 inputs of one batch, ``width`` tokens wide; each row's tokens left-aligned,
        filled in one step."""
        real = np.arange(width) < lengths[:, None]  # row-major order = each row's tokens in turn
        feeds = {"input_ids": np.full(real.shape, self.pad_id, dtype=np.int64), "attention_mask": real.astype(np.int64)}
        feeds["input_ids"][real] = np.concatenate([e.ids for e in encodings])
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros(real.shape, dtype=np.int64)
            feeds["token_type_ids"][real] = np.concatenate([e.type_ids for e in encodings])
        return feeds
