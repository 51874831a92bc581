"""The batched low-precision variants (static int8, OpenVINO bf16 and int8): made and judged at export
on the run's held-out arguments, picked per machine, and labels independent of batch size and chunking."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from tiny_models import EXAMPLES, fake_run, make_checkpoint

from argvalues.contract import read_arguments
from argvalues.variants import (
    BF16,
    FP32,
    OPENVINO_INT8,
    PAD_TO_MULTIPLE,
    STATIC_INT8,
    machine_signature,
    pick_variant,
)
from export.judging import MIN_LABEL_AGREEMENT, judge_variant, paired_f1_change
from export.onnx import ExportOptions, export_model

QUIET = {"log": lambda _: None}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished run's records (fold = row % 2) with a tiny model as its best checkpoint, from fold 1."""
    run = fake_run(tmp_path_factory.mktemp("fast") / "run", seed=0, folds=2)
    make_checkpoint("bert", run.best.path, threshold=0.5)
    run.best.write_summary({"best": {"fold": 1, "epoch": 1, "f1": 0.2}})
    return run.path


@pytest.fixture(scope="module")
def static_int8(tiny_run, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("fast-model") / "model"
    manifest = export_model(tiny_run, model_dir, ExportOptions(variants=(STATIC_INT8, BF16, OPENVINO_INT8)), **QUIET)
    return model_dir, manifest


def test_variants_are_judged_on_every_held_out_argument_of_the_run(tiny_run, static_int8):
    from export.heldout import held_out_rows

    model_dir, manifest = static_int8
    folds = pd.read_csv(tiny_run / "oof-probabilities.tsv", sep="\t")
    held_out, best_fold = int((folds["fold"] == 1).sum()), 1
    check = manifest["variants"][STATIC_INT8]
    assert check["rows"] == held_out and check["labels"] == 20 * held_out
    assert held_out > 4  # more than the parity sample the old check used
    assert f"fold {best_fold}" in check["held_out"]
    for key in ("label_agreement", "f1_change", "f1_change_interval", "default_ok"):
        assert key in check
    low, high = check["f1_change_interval"]
    assert low <= check["f1_change"] <= high
    from trainer.run_dir import RunDir

    rows = held_out_rows(RunDir(tiny_run).best, RunDir(tiny_run), pd.DataFrame(), None)
    assert not set(rows.calibration["Argument ID"]) & set(rows.judged["Argument ID"])  # calibrated elsewhere
    scoring = json.loads((model_dir / "argvalues.json").read_text())
    assert set(scoring["variants"]) == {FP32, STATIC_INT8, BF16, OPENVINO_INT8}
    assert machine_signature() in scoring["variants"][FP32]["rows_per_second"]
    assert (model_dir / "model_static_int8.onnx").is_file()


def test_a_runs_student_is_judged_on_all_the_runs_arguments_but_its_calibration_sample(tiny_run, tmp_path):
    """The student learnt every argument of its run, so none is held out from it: it is judged on
    all of them but those it is calibrated on, not on one fold or its parity sample."""
    import shutil

    from export.heldout import held_out_rows
    from trainer.run_dir import RunDir

    run = RunDir(shutil.copytree(tiny_run, tmp_path / "run"))
    student = make_checkpoint("bert", run.student.path, threshold=0.5)
    run.student.write_summary({"distilled_from": [str(run.path)]})
    rows = held_out_rows(run.student, run, pd.DataFrame(), None)
    oof = run.read_out_of_fold()
    assert len(rows.judged) + len(rows.calibration) == len(oof) and len(rows.calibration) == len(oof) // 2
    assert not set(rows.calibration["Argument ID"]) & set(rows.judged["Argument ID"])
    assert set(rows.judged["Argument ID"]) <= set(oof.index) and "all the student learnt" in rows.source
    assert rows.truth.shape == (len(rows.judged), 20)
    manifest = export_model(run.path, tmp_path / "model", ExportOptions(variants=(STATIC_INT8,)), **QUIET)
    assert manifest["source_checkpoint"] == str(student.resolve())
    assert manifest["variants"][STATIC_INT8]["rows"] == len(rows.judged)


@pytest.mark.parametrize("variant", [STATIC_INT8, BF16, OPENVINO_INT8])
def test_labels_do_not_depend_on_batch_size_or_chunking(static_int8, tmp_path, variant):
    from scorer.model import ScoringModel
    from scorer.score import ScoreOptions, score_files

    model_dir, _ = static_int8
    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    # every third premise far beyond the max length: its windows are rows of their own too
    arguments["Premise"] = arguments["Premise"].where(arguments.index % 3 > 0, (arguments["Premise"] + " ") * 8)
    source = tmp_path / "arguments.tsv"
    arguments.to_csv(source, sep="\t", index=False)
    model = ScoringModel(model_dir, device="cpu", variant=variant)
    assert model.variant == variant and (model.equal_length_batches or model.rows_per_call == 1)
    assert model.encode(arguments).windowed
    results = [model.probabilities(arguments, batch_size) for batch_size in (1, 5, 64)]
    assert np.array_equal(results[0], results[1]) and np.array_equal(results[0], results[2])
    single = np.concatenate([model.probabilities(arguments.iloc[[i]]) for i in range(len(arguments))])
    assert np.array_equal(results[0], single)
    outputs = []
    for chunk_rows, batch_size in ((7, 3), (8192, 64)):
        options = ScoreOptions(model_dir=str(model_dir), variant=variant, chunk_rows=chunk_rows,
                               batch_size=batch_size, probabilities=True)
        target = tmp_path / f"{chunk_rows}.tsv"
        score_files([str(source)], str(target), options)
        outputs.append(target.read_bytes())
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("variant", [BF16, OPENVINO_INT8])
def test_openvino_batches_hold_rows_of_one_padded_width_each(static_int8, variant):
    """bf16 pads no row; int8-openvino pads each row up to the multiple of tokens export judged it with."""
    from scorer.model import ScoringModel

    model_dir, _ = static_int8
    scoring = json.loads((model_dir / "argvalues.json").read_text())
    multiple = PAD_TO_MULTIPLE.get(variant, 1)
    assert scoring["variants"][variant].get("pad_to_multiple", 1) == multiple
    assert multiple == (4 if variant == OPENVINO_INT8 else 1)
    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    model = ScoringModel(model_dir, device="cpu", variant=variant)
    assert model.pad_to_multiple == multiple
    batches = model.prepare(arguments, batch_size=4)
    assert sorted(np.concatenate([rows for rows, _ in batches]).tolist()) == list(range(len(arguments)))
    assert any(len(rows) > 1 for rows, _ in batches)
    lengths = np.array([len(encoding.ids) for encoding in model.encode(arguments).encodings])
    widths = []
    for rows, feeds in batches:
        width = feeds["attention_mask"].shape[1]
        assert len(rows) <= 4 and np.array_equal(feeds["attention_mask"].sum(axis=1), lengths[rows])
        assert width % multiple == 0 or width == model.config.max_length
        assert (lengths[rows] > width - multiple).all()  # each row padded by fewer than `multiple` tokens
        widths.append(width)
    assert widths == sorted(widths, reverse=True)  # longest first
    if multiple > 1:
        assert len(set(widths)) < len(set(lengths.tolist()))  # fewer shapes than lengths


def test_a_bad_recorded_multiple_is_a_model_directory_error(static_int8, tmp_path):
    import shutil

    from argvalues.errors import ModelDirError
    from scorer.model import ScoringModel

    model_dir = shutil.copytree(static_int8[0], tmp_path / "model")
    scoring = json.loads((model_dir / "argvalues.json").read_text())
    for bad in (0, "4", 2.5):
        scoring["variants"][OPENVINO_INT8]["pad_to_multiple"] = bad
        (model_dir / "argvalues.json").write_text(json.dumps(scoring))
        with pytest.raises(ModelDirError, match="pad_to_multiple"):
            ScoringModel(model_dir, device="cpu", variant=OPENVINO_INT8)


def test_padded_widths_stay_within_max_length(static_int8):
    from scorer.model import ScoringModel

    model = ScoringModel(static_int8[0], device="cpu", variant=OPENVINO_INT8)
    model.config.max_length = 10
    assert model._widths(np.array([1, 4, 5, 8, 9, 10])).tolist() == [4, 4, 8, 8, 10, 10]


def test_a_directory_without_a_recorded_multiple_runs_unpadded_as_it_was_judged(static_int8, tmp_path):
    """An int8-openvino judged before rows were padded (no pad_to_multiple in argvalues.json) runs unpadded."""
    import shutil

    from scorer.model import ScoringModel

    model_dir = shutil.copytree(static_int8[0], tmp_path / "model")
    scoring = json.loads((model_dir / "argvalues.json").read_text())
    del scoring["variants"][OPENVINO_INT8]["pad_to_multiple"]
    (model_dir / "argvalues.json").write_text(json.dumps(scoring))
    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    model = ScoringModel(model_dir, device="cpu", variant=OPENVINO_INT8)
    assert model.pad_to_multiple == 1
    assert all(feeds["attention_mask"].all() for _, feeds in model.prepare(arguments))
    padded = ScoringModel(static_int8[0], device="cpu", variant=OPENVINO_INT8).probabilities(arguments)
    np.testing.assert_allclose(model.probabilities(arguments), padded, atol=0.02)  # the padding is masked


def test_static_int8_runs_one_row_per_call_whatever_the_batch_size(static_int8):
    """ONNX Runtime's kernels round a row differently with the number of rows in its call (1e-7 on a
    real MiniLM): static int8 feeds each row alone, so no other row can change it."""
    from scorer.model import ScoringModel

    model_dir, _ = static_int8
    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    model = ScoringModel(model_dir, device="cpu", variant=STATIC_INT8)
    for batch_size in (1, 4, 64):
        batches = model.prepare(arguments, batch_size=batch_size)
        assert len(batches) == len(arguments) and all(len(rows) == 1 for rows, _ in batches)
        assert all(feeds["attention_mask"].all() for _, feeds in batches)


def test_static_int8_runs_its_one_row_calls_side_by_side_with_the_same_results(static_int8):
    from scorer.model import ScoringModel

    model_dir, _ = static_int8
    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    side_by_side = ScoringModel(model_dir, device="cpu", variant=STATIC_INT8, threads=2)
    one_call = ScoringModel(model_dir, device="cpu", variant=STATIC_INT8, threads=2, parallel_calls=1)
    assert side_by_side.parallel_calls == 2 and one_call.parallel_calls == 1
    assert ScoringModel(model_dir, device="cpu", variant=FP32, threads=2).parallel_calls == 1  # padded batches
    assert np.array_equal(side_by_side.probabilities(arguments, 4), one_call.probabilities(arguments, 4))


def test_static_int8_is_close_to_fp32(static_int8):
    from scorer.model import ScoringModel

    model_dir, _ = static_int8
    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    fp32 = ScoringModel(model_dir, device="cpu", variant=FP32).probabilities(arguments)
    int8 = ScoringModel(model_dir, device="cpu", variant=STATIC_INT8).probabilities(arguments)
    assert np.abs(fp32 - int8).max() < 0.05 and not np.array_equal(fp32, int8)


def test_openvino_int8_is_nncf_int8_run_by_openvino_close_to_fp32(static_int8):
    import onnx

    from scorer.model import ScoringModel

    model_dir, manifest = static_int8
    check = manifest["variants"][OPENVINO_INT8]
    assert check["file"] == "model_int8_openvino.onnx" and check["recipe"] == "every MatMul with weights"
    graph = onnx.load(str(model_dir / check["file"])).graph
    dequantized = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    matmuls = [node for node in graph.node if node.op_type == "MatMul" and "/layer." in node.name]
    int8_matmuls = [node for node in matmuls if set(node.input) <= dequantized]  # int8 activations and weights
    assert len(int8_matmuls) >= 12  # the tiny model's 2 layers: query, key, value, output, two feed-forward
    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    fp32 = ScoringModel(model_dir, device="cpu", variant=FP32).probabilities(arguments)
    model = ScoringModel(model_dir, device="cpu", variant=OPENVINO_INT8)
    assert model.provider.startswith("OpenVINO") and "int8" in model.provider
    assert model.session.precision == "f32"  # the unquantized rest: the same labels with or without bfloat16
    int8 = model.probabilities(arguments)
    assert np.abs(fp32 - int8).max() < 0.05 and not np.array_equal(fp32, int8)


def test_openvino_runs_with_the_performance_hint_export_measured_fastest_on_this_machine(static_int8, tmp_path):
    import shutil

    from argvalues.variants import OPENVINO_HINTS
    from scorer.model import ScoringModel

    model_dir = shutil.copytree(static_int8[0], tmp_path / "model")
    scoring = json.loads((model_dir / "argvalues.json").read_text())
    for name in (BF16, OPENVINO_INT8):
        assert set(scoring["variants"][name]["performance_hint"]) == {machine_signature()}
        assert scoring["variants"][name]["performance_hint"][machine_signature()] in OPENVINO_HINTS
    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    results = {}
    for recorded, expected in (({machine_signature(): "LATENCY"}, "LATENCY"), ({"another machine": "LATENCY"}, "THROUGHPUT"),
                               ({machine_signature(): "THROUGHPUT"}, "THROUGHPUT")):
        scoring["variants"][OPENVINO_INT8]["performance_hint"] = recorded
        (model_dir / "argvalues.json").write_text(json.dumps(scoring))
        model = ScoringModel(model_dir, device="cpu", variant=OPENVINO_INT8)
        assert str(model.session.compiled.get_property("PERFORMANCE_HINT")) == expected
        results[expected] = model.probabilities(arguments)
    assert np.array_equal(results["LATENCY"], results["THROUGHPUT"])  # the hint changes the speed only


def test_openvino_int8_falls_back_to_its_next_recipe_when_labels_do_not_hold(tiny_run, tmp_path, monkeypatch):
    import onnx

    import export.build_variants

    judged = []

    def judge(reference, candidate, thresholds, truth):  # the first recipe's labels do not hold
        judged.append(candidate)
        return {**judge_variant(reference, candidate, thresholds, truth), "default_ok": len(judged) > 1}

    monkeypatch.setattr(export.build_variants, "judge_variant", judge)
    logged = []
    manifest = export_model(tiny_run, tmp_path / "model", ExportOptions(variants=(OPENVINO_INT8,)), log=logged.append)
    check = manifest["variants"][OPENVINO_INT8]
    assert len(judged) == 2 and check["default_ok"] and check["unquantized"] == [r".*/layer\.0/.*"]
    assert any("not picked; trying the next recipe" in line for line in logged)
    graph = onnx.load(str(tmp_path / "model" / check["file"])).graph
    dequantized = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    first_layer = [node for node in graph.node if node.op_type == "MatMul" and "/layer.0/" in node.name]
    second_layer = [node for node in graph.node if node.op_type == "MatMul" and "/layer.1/" in node.name]
    assert first_layer and not any(set(node.input) & dequantized for node in first_layer)
    assert any(set(node.input) <= dequantized for node in second_layer)


def test_an_export_goes_on_without_openvino_int8_when_nncf_cannot_make_it(tiny_run, tmp_path, monkeypatch):
    import export.openvino_int8

    def fails(model_dir, calibration, recipe=0):
        (model_dir / "model_int8_openvino.onnx").write_bytes(b"half-written")
        raise RuntimeError("NNCF cannot quantize this graph\nmore detail")

    monkeypatch.setattr(export.openvino_int8, "make_openvino_int8", fails)
    logged = []
    manifest = export_model(tiny_run, tmp_path / "model", ExportOptions(variants=(OPENVINO_INT8, STATIC_INT8)),
                            log=logged.append)
    assert OPENVINO_INT8 not in manifest["variants"] and STATIC_INT8 in manifest["variants"]
    assert "variant int8-openvino: not made (NNCF cannot quantize this graph)" in logged, "\n".join(logged)
    assert not (tmp_path / "model" / "model_int8_openvino.onnx").exists()


def test_openvino_variants_run_only_where_the_cpu_computes_what_was_judged(monkeypatch):
    import argvalues.variants
    from argvalues.variants import usable_variants
    from export.build_variants import default_variants

    everything = {FP32, STATIC_INT8, BF16, OPENVINO_INT8}
    monkeypatch.setattr(argvalues.variants, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_vnni", "avx512_bf16"})
    assert usable_variants(everything) == everything
    assert OPENVINO_INT8 in default_variants() and BF16 in default_variants()
    monkeypatch.setattr(argvalues.variants, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_vnni"})
    assert usable_variants(everything) == {FP32, STATIC_INT8, OPENVINO_INT8}
    monkeypatch.setattr(argvalues.variants, "cpu_flags", lambda: {"avx2", "fma"})  # int8 products saturate
    assert usable_variants(everything) == {FP32, STATIC_INT8}
    assert OPENVINO_INT8 not in default_variants() and BF16 not in default_variants()


def test_static_int8_keeps_the_first_third_of_the_layers_and_the_gelu_outputs_fp32(static_int8):
    from onnx import helper

    from export.calibration import in_first_layers

    def matmuls(layers):
        names = [f"/encoder/layer.{layer}/{part}/MatMul" for layer in range(layers) for part in ("query", "output")]
        return helper.make_model(helper.make_graph([helper.make_node("MatMul", ["a", "b"], [n], name=n) for n in names],
                                                   "g", [], []))

    assert in_first_layers(matmuls(6)) == sorted(f"/encoder/layer.{layer}/{part}/MatMul"
                                                 for layer in (0, 1) for part in ("query", "output"))
    assert in_first_layers(matmuls(12))[-1] == "/encoder/layer.3/query/MatMul"
    assert in_first_layers(matmuls(6), 1 / 2)[-1] == "/encoder/layer.2/query/MatMul"
    assert in_first_layers(matmuls(2)) == []  # a share rounded down: both layers are quantized
    _, manifest = static_int8
    kept = manifest["variants"][STATIC_INT8]["kept_fp32"]
    # the tiny model's 2 layers: the MatMuls that read a GELU, and no others
    assert kept == ["/bert/encoder/layer.0/output/dense/MatMul", "/bert/encoder/layer.1/output/dense/MatMul"]


def test_paired_bootstrap_of_the_f1_change():
    rng = np.random.default_rng(3)
    truth = rng.random((600, 20)) < 0.2
    reference = truth ^ (rng.random((600, 20)) < 0.3)
    same = paired_f1_change(truth, reference, reference)
    assert same == (0.0, 0.0, 0.0)  # paired: no difference in any resample
    worse = reference.copy()
    worse[truth & (rng.random((600, 20)) < 0.5)] = False  # half the true positives lost
    change, low, high = paired_f1_change(truth, reference, worse)
    assert low <= change <= high < 0
    few = reference.copy()
    few[0, :3] = ~few[0, :3]  # three flipped labels: a narrow interval around a small change
    change, low, high = paired_f1_change(truth, reference, few)
    assert abs(change) < 0.01 and high - low < 0.02


def test_judge_needs_agreement_and_an_f1_interval_within_the_bound():
    rng = np.random.default_rng(4)
    truth = (rng.random((1000, 20)) < 0.2).astype(int)
    reference = np.clip(truth * 0.6 + rng.random((1000, 20)) * 0.5, 0, 1).astype(np.float32)
    thresholds = np.full(20, 0.5, dtype=np.float32)
    assert judge_variant(reference, reference + 1e-7, thresholds, truth)["default_ok"]
    noisy = np.clip(reference + rng.normal(0, 0.2, reference.shape), 0, 1).astype(np.float32)
    verdict = judge_variant(reference, noisy, thresholds, truth)
    assert verdict["label_agreement"] < MIN_LABEL_AGREEMENT and not verdict["default_ok"]
    assert verdict["rows"] == 1000 and verdict["labels"] == 20000


def test_the_pick_is_the_fastest_measured_on_this_machine_else_by_cpu_features():
    here, elsewhere = "this-machine", "another"
    variants = {FP32: {"default_ok": True, "rows_per_second": {here: 200, elsewhere: 190}},
                STATIC_INT8: {"default_ok": True, "rows_per_second": {here: 300, elsewhere: 150}},
                BF16: {"default_ok": True, "rows_per_second": {here: 500}},
                "int8": {"default_ok": False, "rows_per_second": {here: 900}}}
    assert pick_variant(variants, "CPUExecutionProvider", machine=here) == BF16
    assert pick_variant(variants, "CPUExecutionProvider", machine=here, available={FP32, STATIC_INT8}) == STATIC_INT8
    slower = {**variants, BF16: {"default_ok": True, "rows_per_second": {here: 100}}}
    assert pick_variant(slower, "CPUExecutionProvider", machine=here) == STATIC_INT8
    # bf16 was not measured on the other machine: there, the order by CPU features
    assert pick_variant(variants, "CPUExecutionProvider", machine=elsewhere) == BF16
    # without OpenVINO, all it can run was measured there, and fp32 was faster
    assert pick_variant(variants, "CPUExecutionProvider", machine=elsewhere, available={FP32, STATIC_INT8}) == FP32
    assert pick_variant(variants, "CPUExecutionProvider", machine="a third", available={FP32, STATIC_INT8}) == STATIC_INT8
    assert pick_variant(variants, "CUDAExecutionProvider", machine=here) == FP32


def test_a_checkpoint_without_its_run_is_judged_on_its_parity_sample(tmp_path):
    checkpoint = make_checkpoint("bert", tmp_path / "checkpoint", threshold=0.5)
    manifest = export_model(checkpoint, tmp_path / "model", ExportOptions(variants=(STATIC_INT8,)), **QUIET)
    check = manifest["variants"][STATIC_INT8]
    assert check["rows"] == 4 and "parity sample" in check["held_out"]


def test_export_without_variant_flags_writes_the_default_variants(monkeypatch, tmp_path):
    from click.testing import CliRunner

    import export.onnx
    from argvalues.cli import main
    from export.build_variants import default_variants

    asked = []
    monkeypatch.setattr(export.onnx, "export_model", lambda source, output, options, log: asked.append(options))
    runner = CliRunner()
    assert runner.invoke(main, ["export", str(tmp_path), "--output", str(tmp_path / "a")]).exit_code == 0
    assert runner.invoke(main, ["export", str(tmp_path), "--fp32-only", "--output", str(tmp_path / "b")]).exit_code == 0
    assert runner.invoke(main, ["export", str(tmp_path), "--static-int8", "--output", str(tmp_path / "c")]).exit_code == 0
    assert [options.variants for options in asked] == [default_variants(), (), (STATIC_INT8,)]
    assert {STATIC_INT8, "int8", "fp16"} <= set(default_variants())
    refused = runner.invoke(main, ["export", str(tmp_path), "--fp32-only", "--bf16"])
    assert refused.exit_code == 2 and "--fp32-only writes no variant" in refused.output


def test_the_compact_variant_is_fp32_arithmetic_on_fp16_weights_and_runs_without_model_onnx(tiny_run, tmp_path):
    """fp32-compact stores the large weights as fp16 (about half the file) and widens them when it
    loads: its probabilities are fp32's to fp16's rounding, it is judged like every variant, and a
    directory that ships it alone (as the packaged model does) runs it."""
    import shutil

    import onnx

    from argvalues.variants import COMPACT
    from scorer.model import ScoringModel

    model_dir = tmp_path / "model"
    manifest = export_model(tiny_run, model_dir, ExportOptions(variants=(COMPACT,)), **QUIET)
    check = manifest["variants"][COMPACT]
    assert check["default_ok"] and check["label_agreement"] >= MIN_LABEL_AGREEMENT
    compact_file, fp32_file = model_dir / "model_compact.onnx", model_dir / "model.onnx"
    weights = [t for t in onnx.load(str(compact_file)).graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    assert weights and all(t.name.endswith(".fp16") for t in weights)
    assert compact_file.stat().st_size < 0.75 * fp32_file.stat().st_size
    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    fp32 = ScoringModel(model_dir, device="cpu", variant=FP32).probabilities(arguments)
    compact = ScoringModel(model_dir, device="cpu", variant=COMPACT)
    assert np.abs(fp32 - compact.probabilities(arguments)).max() < 2e-3
    shipped = tmp_path / "shipped"
    shutil.copytree(model_dir, shipped)
    assert ScoringModel(shipped, device="cpu").variant != COMPACT  # fp32 itself where it is there
    (shipped / "model.onnx").unlink()
    alone = ScoringModel(shipped, device="cpu")
    assert alone.variant == COMPACT
    np.testing.assert_array_equal(alone.probabilities(arguments), compact.probabilities(arguments))
    # widened back (what quantisation needs from a directory that ships the compact file alone): the
    # original graph, fp32 weights, compact's probabilities
    from export.compact import widened_model

    assert widened_model(shipped / "model_compact.onnx", shipped / "model.onnx") == len(weights)
    widened = onnx.load(str(shipped / "model.onnx"))
    assert len(widened.graph.node) == len(onnx.load(str(fp32_file)).graph.node)
    assert not any(t.data_type == onnx.TensorProto.FLOAT16 for t in widened.graph.initializer)
    wide = ScoringModel(shipped, device="cpu", variant=FP32).probabilities(arguments)
    np.testing.assert_allclose(wide, compact.probabilities(arguments), atol=1e-5)


def test_smoothing_moves_an_outlier_channel_into_the_weights_and_computes_the_same(tmp_path):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from export.smoothing import SMOOTHED_SUFFIX, channel_ranges, smooth_model

    rng = np.random.default_rng(0)
    weights = {name: rng.normal(0, 0.2, (8, 4)).astype(np.float32) for name in ("w_query", "w_key")}
    nodes = [helper.make_node("MatMul", ["x", name], [f"y_{name}"], name=f"/{name}/MatMul") for name in weights]
    nodes.append(helper.make_node("Add", ["y_w_query", "y_w_key"], ["y"], name="add"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
                              [numpy_helper.from_array(value, name) for name, value in weights.items()])
    source, target = tmp_path / "plain.onnx", tmp_path / "smoothed.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(source))
    x = rng.normal(0, 1, (64, 8)).astype(np.float32)
    x[:, 3] *= 50  # an outlier channel, as layer norms' outputs have
    feeds = [{"x": x[i:i + 8]} for i in range(0, 64, 8)]

    smoothed = smooth_model(source, target, feeds, alpha=0.5)
    assert smoothed == ["/w_key/MatMul", "/w_query/MatMul"]
    model = onnx.load(str(target))
    muls = [node for node in model.graph.node if node.op_type == "Mul"]
    assert len(muls) == 1 and muls[0].name.endswith(SMOOTHED_SUFFIX)  # one Mul for the two MatMuls sharing x
    run = lambda path: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]  # noqa: E731
    assert np.allclose(run(source), run(target), atol=1e-4, rtol=1e-5)
    before = channel_ranges(source, ["x"], feeds)["x"]
    after = channel_ranges(target, [muls[0].output[0]], feeds)[muls[0].output[0]]
    spread = lambda ranges: ranges.max() / np.median(ranges)  # noqa: E731
    assert spread(before) > 20 and spread(after) < spread(before) / 4  # alpha 0.5: about its square root


def test_static_int8_smooths_what_it_quantizes_with_weights_the_cpu_multiplies_exactly(static_int8):
    import onnx

    from argvalues.variants import int8_products_saturate
    from export.smoothing import SMOOTHED_SUFFIX

    assert int8_products_saturate({"avx2", "fma"}) and not int8_products_saturate({"avx2", "avx512_vnni"})
    assert not int8_products_saturate({"avx2", "amx_int8"}) and not int8_products_saturate({"avx_vnni"})
    model_dir, manifest = static_int8
    check = manifest["variants"][STATIC_INT8]
    assert check["weights"] == ("uint8" if int8_products_saturate() else "int8") and check["smoothing_alpha"] == 0.5
    graph = onnx.load(str(model_dir / "model_static_int8.onnx"))
    smoothed = {node.output[0] for node in graph.graph.node if node.name.endswith(SMOOTHED_SUFFIX)}
    assert smoothed
    quantized = [node for node in graph.graph.node if node.op_type == "QuantizeLinear"]
    assert any(node.input[0] in smoothed for node in quantized)  # the smoothed inputs are what int8 reads
    kept = set(check["kept_fp32"])
    assert not any(node.name[:-len(SMOOTHED_SUFFIX)] in kept for node in graph.graph.node
                   if node.name.endswith(SMOOTHED_SUFFIX))  # MatMuls left fp32 are left as they were


def test_static_int8_with_int8_weights_is_not_picked_where_its_products_saturate(static_int8, tmp_path, monkeypatch):
    import shutil

    import scorer.model
    from scorer.model import ScoringModel

    model_dir = shutil.copytree(static_int8[0], tmp_path / "model")
    scoring = json.loads((model_dir / "argvalues.json").read_text())
    assert scoring["variants"][STATIC_INT8]["weights"] in ("uint8", "int8")
    scoring["variants"][STATIC_INT8].update(weights="int8", default_ok=True)
    scoring["variants"].pop(BF16, None)
    scoring["variants"].pop(OPENVINO_INT8, None)
    for variant in scoring["variants"].values():
        variant.pop("rows_per_second", None)  # picked by CPU features, not by the tiny model's speeds
    (model_dir / "argvalues.json").write_text(json.dumps(scoring))
    monkeypatch.setattr(scorer.model, "int8_products_saturate", lambda: True)  # an AVX2 CPU
    assert ScoringModel(model_dir, device="cpu").variant == FP32
    assert ScoringModel(model_dir, device="cpu", variant=STATIC_INT8).variant == STATIC_INT8  # asked for: runs
    monkeypatch.setattr(scorer.model, "int8_products_saturate", lambda: False)  # VNNI or AMX
    assert ScoringModel(model_dir, device="cpu").variant == STATIC_INT8


def test_a_static_int8_graph_made_from_fp16_values_is_stored_compact_without_changing_it(static_int8, tmp_path):
    """The packaged model's int8 file (benchmarks/package_int8.py): made from a compact model
    widened back, its fp32 weights are fp16 values, so storing them as fp16 changes nothing; the
    quantization parameters stay as they are (ONNX Runtime fuses Q/DQ pairs only on constants)."""
    import shutil

    import onnx

    from export.calibration import make_static_int8
    from export.compact import QDQ_OPERATORS, compact_model, widened_model
    from scorer.model import ScoringModel

    model_dir = shutil.copytree(static_int8[0], tmp_path / "model")
    compact_model(model_dir / "model.onnx", tmp_path / "compact.onnx")
    widened_model(tmp_path / "compact.onnx", model_dir / "model.onnx")  # fp32 weights holding fp16 values
    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    make_static_int8(model_dir, arguments)
    int8_file = model_dir / "model_static_int8.onnx"
    before = ScoringModel(model_dir, device="cpu", variant=STATIC_INT8).probabilities(arguments)
    assert compact_model(int8_file, tmp_path / "int8-compact.onnx") > 0
    graph = onnx.load(str(tmp_path / "int8-compact.onnx"))
    quantization = {name for node in graph.graph.node if node.op_type in QDQ_OPERATORS for name in node.input}
    assert quantization and not any(name.endswith(".fp16") for name in quantization)
    assert (tmp_path / "int8-compact.onnx").stat().st_size < 0.75 * int8_file.stat().st_size
    shutil.move(tmp_path / "int8-compact.onnx", int8_file)
    np.testing.assert_array_equal(ScoringModel(model_dir, device="cpu", variant=STATIC_INT8).probabilities(arguments),
                                  before)


def test_smoothing_gives_a_weight_read_by_two_inputs_a_scaled_copy_for_each(tmp_path):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from export.smoothing import smooth_model

    rng = np.random.default_rng(1)
    nodes = [helper.make_node("MatMul", [x, "w"], [f"y_{x}"], name=f"/{x}/MatMul") for x in ("a", "b")]
    nodes.append(helper.make_node("Add", ["y_a", "y_b"], ["y"], name="add"))
    inputs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [None, 8]) for x in ("a", "b")]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
                              [numpy_helper.from_array(rng.normal(0, 0.2, (8, 4)).astype(np.float32), "w")])
    source, target = tmp_path / "plain.onnx", tmp_path / "smoothed.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(source))
    feed = {"a": rng.normal(0, 1, (16, 8)).astype(np.float32), "b": rng.normal(0, 1, (16, 8)).astype(np.float32)}
    feed["a"][:, 2] *= 40  # other outliers in each input: other scales for the one weight
    feed["b"][:, 5] *= 40
    assert smooth_model(source, target, [feed]) == ["/a/MatMul", "/b/MatMul"]
    weights = {node.input[1] for node in onnx.load(str(target)).graph.node if node.op_type == "MatMul"}
    assert len(weights) == 2  # a scaled copy each, not one weight scaled twice
    run = lambda path: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]  # noqa: E731
    assert np.allclose(run(source), run(target), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("flags", [
    {"fp", "asimd", "asimdhp"},  # ARM (Graviton, Apple silicon under Linux)
    {"sse2", "sse4_2"},  # an old x86
    {"avx2", "fma"},  # AVX2 without VNNI
    {"avx2", "avx512f", "avx512_vnni"},  # VNNI
], ids=["arm", "old-x86", "avx2", "vnni"])
def test_score_picks_a_variant_that_runs_whatever_the_cpu(static_int8, tmp_path, monkeypatch, flags):
    import argvalues.variants
    from scorer.cli import score as score_main

    monkeypatch.setattr(argvalues.variants, "cpu_flags", lambda: flags)  # another machine: no speed measured there
    out = tmp_path / "scores.tsv"
    result = CliRunner().invoke(score_main, ["--model", str(static_int8[0]), "--quiet", str(EXAMPLES / "arguments.tsv"),
                                             "-o", str(out)])
    assert result.exit_code == 0, result.output
    picked = json.loads(out.with_name(out.name + ".meta.json").read_text())["variant"]
    assert picked in argvalues.variants.usable_variants(set(static_int8[1]["variants"]) | {FP32})
    if not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        assert picked not in (OPENVINO_INT8, BF16)
    assert len(pd.read_csv(out, sep="\t")) == len(pd.read_csv(EXAMPLES / "arguments.tsv", sep="\t"))
