import hashlib
import json
import logging

import numpy as np
import pytest
from tiny_models import EXAMPLES, FAMILIES, make_checkpoint

from argvalues.contract import read_arguments
from argvalues.errors import ExportParityError, ModelDirError
from export.onnx import ExportOptions, export_model

QUIET = dict(log=lambda _: None)


def torch_probabilities(checkpoint, arguments):
    from argvalues.model_config import ScoringConfig
    from trainer.data import ArgumentDataset, predict_probabilities
    from trainer.modeling import load_classifier, load_tokenizer

    scoring = ScoringConfig.load(checkpoint)
    tokenizer = load_tokenizer(str(checkpoint))
    dataset = ArgumentDataset(arguments, scoring.template, tokenizer, scoring.max_length)
    return predict_probabilities(load_classifier(str(checkpoint)), dataset, tokenizer, batch_size=7)


@pytest.mark.parametrize("family", FAMILIES)
def test_export_matches_pytorch(family, tmp_path):
    """The notebook's model families: ONNX through the scorer equals PyTorch on real text."""
    from scorer.model import ScoringModel

    checkpoint = make_checkpoint(family, tmp_path / "checkpoint", max_length=24)
    manifest = export_model(checkpoint, tmp_path / "model", **QUIET)
    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    onnx = ScoringModel(tmp_path / "model", device="cpu", long_text="truncate").probabilities(arguments, batch_size=5)
    expected = torch_probabilities(checkpoint, arguments)
    np.testing.assert_allclose(onnx, expected, atol=1e-5)
    assert onnx.std() > 0  # not a constant output that would match trivially
    assert manifest["parity"]["max_abs_difference"] <= 1e-4


def test_model_directory_is_self_contained(tmp_path):
    checkpoint = make_checkpoint("bert", tmp_path / "checkpoint", threshold=0.3)
    export_model(checkpoint, tmp_path / "model", **QUIET)
    model_dir = tmp_path / "model"
    for name in ("model.onnx", "config.json", "tokenizer.json", "argvalues.json", "manifest.json"):
        assert (model_dir / name).is_file(), name
    config = json.loads((model_dir / "config.json").read_text())
    assert config["id2label"]["0"] == "Self-direction: thought"
    scoring = json.loads((model_dir / "argvalues.json").read_text())
    assert scoring["thresholds"] == [0.3] * 20 and scoring["max_length"] == 64
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["onnx"]["sha256"] == hashlib.sha256((model_dir / "model.onnx").read_bytes()).hexdigest()
    assert {"torch", "transformers", "optimum"} <= set(manifest["versions"])
    assert {"onnxruntime", "onnxruntime-gpu"} & set(manifest["versions"])  # whichever package is installed
    assert manifest["source_checkpoint"] == str(checkpoint.resolve())


def test_parity_failure_leaves_nothing(tmp_path):
    checkpoint = make_checkpoint("bert", tmp_path / "checkpoint")
    with pytest.raises(ExportParityError, match="disagrees with PyTorch"):
        export_model(checkpoint, tmp_path / "model", ExportOptions(atol=-1.0), **QUIET)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_reexport_replaces_a_model_directory(tmp_path):
    checkpoint = make_checkpoint("bert", tmp_path / "checkpoint")
    export_model(checkpoint, tmp_path / "model", **QUIET)
    first = json.loads((tmp_path / "model" / "manifest.json").read_text())["created"]
    export_model(checkpoint, tmp_path / "model", **QUIET)
    assert (tmp_path / "model" / "manifest.json").is_file() and first


def test_refuses_to_overwrite_a_foreign_directory(tmp_path):
    checkpoint = make_checkpoint("bert", tmp_path / "checkpoint")
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(ModelDirError, match="not an argvalues model directory"):
        export_model(checkpoint, tmp_path / "precious", **QUIET)
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"


def test_source_must_be_a_run_or_checkpoint(tmp_path):
    with pytest.raises(ModelDirError, match="no such run or checkpoint"):
        export_model(tmp_path / "missing", tmp_path / "model", **QUIET)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelDirError, match="neither a training run"):
        export_model(tmp_path / "empty", tmp_path / "model", **QUIET)


def test_a_pickled_checkpoint_is_never_loaded(tmp_path):
    """Weights come only from safetensors: a pytorch_model.bin is refused, not unpickled."""
    import torch

    from trainer.modeling import load_classifier

    checkpoint = make_checkpoint("bert", tmp_path / "checkpoint")
    state = load_classifier(str(checkpoint)).state_dict()
    (checkpoint / "model.safetensors").unlink()
    torch.save(state, checkpoint / "pytorch_model.bin")
    with pytest.raises(ModelDirError, match=r"missing model.safetensors \(found pytorch_model.bin"):
        export_model(checkpoint, tmp_path / "model", **QUIET)
    with pytest.raises(ModelDirError):
        load_classifier(str(checkpoint))
    assert not (tmp_path / "model").exists()


@pytest.fixture(scope="module")
def with_variants(tmp_path_factory):
    root = tmp_path_factory.mktemp("variants")
    checkpoint = make_checkpoint("bert", root / "checkpoint", threshold=0.5)
    manifest = export_model(checkpoint, root / "model", ExportOptions(variants=("optimized", "int8", "fp16")), **QUIET)
    return checkpoint, root / "model", manifest


def test_every_variant_is_written_and_checked_against_pytorch(with_variants):
    _, model_dir, manifest = with_variants
    for name, file in (("optimized", "model_optimized.onnx"), ("int8", "model_quantized.onnx"),
                       ("fp16", "model_fp16.onnx")):
        check = manifest["variants"][name]
        assert (model_dir / file).is_file() and check["file"] == file
        assert check["sha256"] == hashlib.sha256((model_dir / file).read_bytes()).hexdigest()
        assert check["rows"] == 4 and check["labels"] == 80 and "max_abs_difference" in check
    assert manifest["variants"]["optimized"]["max_abs_difference"] < 1e-4
    assert manifest["variants"]["int8"]["weights"] == "int8-7bit"
    scoring = json.loads((model_dir / "argvalues.json").read_text())
    assert set(scoring["variants"]) == {"fp32", "optimized", "int8", "fp16"}


def test_scorer_picks_the_fastest_variant_that_passed(with_variants, tmp_path):
    import shutil

    from argvalues.variants import machine_signature
    from scorer.model import ScoringModel

    _, model_dir, manifest = with_variants
    assert manifest["variants"]["int8"]["default_ok"]
    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    scoring = json.loads((model_dir / "argvalues.json").read_text())
    speeds = {name: scoring["variants"][name]["rows_per_second"][machine_signature()]
              for name in ("fp32", "optimized", "int8")}  # measured here at export: the fastest runs
    assert ScoringModel(model_dir, device="cpu").variant == max(speeds, key=speeds.get)
    elsewhere = tmp_path / "elsewhere"  # as if exported on another machine: the order by CPU features
    shutil.copytree(model_dir, elsewhere)
    for info in scoring["variants"].values():
        info["rows_per_second"] = {"another-machine": 1.0}
    (elsewhere / "argvalues.json").write_text(json.dumps(scoring))
    picked = ScoringModel(elsewhere, device="cpu")
    assert picked.variant == "int8"
    fp32 = ScoringModel(model_dir, device="cpu", variant="fp32").probabilities(arguments)
    np.testing.assert_allclose(picked.probabilities(arguments), fp32, atol=0.01)
    drifted = tmp_path / "drifted"
    shutil.copytree(elsewhere, drifted)
    scoring["variants"]["int8"]["default_ok"] = False
    (drifted / "argvalues.json").write_text(json.dumps(scoring))
    assert ScoringModel(drifted, device="cpu").variant == "optimized"
    assert ScoringModel(drifted, device="cpu", variant="int8").variant == "int8"  # asked for: given


def test_a_missing_variant_is_a_clear_error(tmp_path):
    from scorer.model import ScoringModel

    checkpoint = make_checkpoint("bert", tmp_path / "checkpoint")
    export_model(checkpoint, tmp_path / "model", **QUIET)
    assert ScoringModel(tmp_path / "model", device="cpu").variant == "fp32"
    with pytest.raises(ModelDirError, match=r"no int8 variant \(model_quantized.onnx\); export it with "
                                            r"'argvalues export --quantize'"):
        ScoringModel(tmp_path / "model", device="cpu", variant="int8")


def test_int8_keeps_the_gelu_readers_and_the_first_layer_fp32_and_its_weights_in_7_bits(with_variants):
    """Weights in [-64, 64]: AVX2's vpmaddubsw adds two uint8-by-int8 products in int16, and
    255 * 64 * 2 stays below 2**15, so the file computes the same products on every CPU."""
    import onnx
    from onnx import TensorProto, numpy_helper

    from export.calibration import DYNAMIC_FP32_LAYER_SHARE, after_gelu, in_first_layers

    _, model_dir, manifest = with_variants
    fp32 = onnx.load(str(model_dir / "model.onnx"))
    kept = set(after_gelu(fp32)) | set(in_first_layers(fp32, DYNAMIC_FP32_LAYER_SHARE))
    assert kept and sorted(kept) == manifest["variants"]["int8"]["kept_fp32"]
    int8 = onnx.load(str(model_dir / "model_quantized.onnx"))
    assert {node.name for node in int8.graph.node if node.op_type == "MatMul"} >= kept  # still plain fp32 MatMuls
    assert sum(node.op_type == "MatMulInteger" for node in int8.graph.node) > 0
    weights = [numpy_helper.to_array(t) for t in int8.graph.initializer if t.data_type == TensorProto.INT8 and len(t.dims) == 2]
    assert weights and min(w.min() for w in weights) >= -64 and max(w.max() for w in weights) <= 64


def test_quantizing_leaves_no_advice_in_the_export_log(with_variants, tmp_path, caplog):
    """ONNX Runtime's quantizer advises "pre-processing" on the root logger at every call."""
    import shutil

    from export.calibration import make_dynamic_int8

    model_dir = shutil.copytree(with_variants[1], tmp_path / "model")
    (model_dir / "model_quantized.onnx").unlink()
    with caplog.at_level(logging.WARNING):
        make_dynamic_int8(model_dir, read_arguments(EXAMPLES / "arguments.tsv"))
    assert (model_dir / "model_quantized.onnx").is_file()
    assert not [record for record in caplog.records if "pre-processing" in record.getMessage()]
    assert logging.getLogger().level == logging.WARNING  # the root logger's level is given back


def test_variant_preference_by_provider_and_cpu():
    from argvalues.variants import STATIC_INT8, pick_variant, preference

    every = {name: {"default_ok": True} for name in ("optimized", "int8", "fp16")}
    assert pick_variant(every, "CPUExecutionProvider") == "int8"
    # where int8 products saturate (AVX2), dynamic int8 (7-bit weights) before static; with VNNI, static first
    avx2, vnni = preference("cpu", {"avx2", "fma"}), preference("cpu", {"avx2", "avx512_vnni"})
    assert avx2.index("int8") < avx2.index(STATIC_INT8) and vnni.index(STATIC_INT8) < vnni.index("int8")
    assert sorted(avx2) == sorted(vnni) and preference("cuda", {"avx2"})[0] == "fp16"
    assert pick_variant(every, "CUDAExecutionProvider") == "fp16"
    assert pick_variant({**every, "fp16": {"default_ok": False}}, "CUDAExecutionProvider") == "optimized"
    assert pick_variant({}, "CUDAExecutionProvider") == "fp32"


def test_int8_labels_do_not_depend_on_the_batch(with_variants):
    from scorer.model import ScoringModel

    _, model_dir, _ = with_variants
    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    model = ScoringModel(model_dir, device="cpu", variant="int8")
    results = [model.probabilities(arguments, batch_size) for batch_size in (1, 5, 64)]
    assert np.array_equal(results[0], results[1]) and np.array_equal(results[0], results[2])
    single = np.concatenate([model.probabilities(arguments.iloc[[i]]) for i in range(len(arguments))])
    assert np.array_equal(results[0], single)


def test_int8_calls_side_by_side_give_the_same_probabilities(with_variants):
    from scorer.model import ScoringModel

    _, model_dir, _ = with_variants
    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    side_by_side = ScoringModel(model_dir, device="cpu", variant="int8", threads=2)
    in_turn = ScoringModel(model_dir, device="cpu", variant="int8", threads=2, parallel_calls=1)
    assert side_by_side.parallel_calls == 2 and in_turn.parallel_calls == 1
    assert ScoringModel(model_dir, device="cpu", variant="fp32", threads=2).parallel_calls == 1  # batched: no need
    np.testing.assert_array_equal(side_by_side.probabilities(arguments), in_turn.probabilities(arguments))
    assert side_by_side._pool is not None  # the calls did go through the thread pool


def test_io_binding_path_gives_the_same_probabilities(tiny_exported):
    """The CUDA path's I/O binding, exercised on the CPU provider (all a CPU machine can check)."""
    from scorer.model import ScoringModel

    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    model = ScoringModel(tiny_exported, device="cpu")
    plain = model.probabilities(arguments, batch_size=7)
    model.io_binding = True
    np.testing.assert_array_equal(model.probabilities(arguments, batch_size=7), plain)
